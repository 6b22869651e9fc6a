//! How to reach an etcd cluster: endpoints, key prefix, credentials and TLS.

use std::path::PathBuf;
use std::time::Duration;

use crus_core::{Error, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::error::from_etcd;

/// Where the etcd cluster is and how to log in.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs of the members, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Prefix of every key crus writes (default [`super::DEFAULT_PREFIX`]).
    pub prefix: String,
    /// User name, with `password`, when etcd has authentication on.
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<String>,
    /// TLS settings when the endpoints are `https://`.
    pub tls: Option<EtcdTls>,
    /// How long to wait for a connection, and for each request.
    pub timeout: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: super::DEFAULT_PREFIX.into(),
            user: None,
            password: None,
            tls: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// TLS files: the CA that signed the members' certificates, and the client's
/// own certificate and key when the cluster asks for one.
#[derive(Debug, Clone, Default)]
pub struct EtcdTls {
    /// PEM file of the CA to trust; the system roots are not used.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's key.
    pub key_file: Option<PathBuf>,
}

/// Reads a PEM file, naming it and the setting when it cannot.
fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| {
        Error::invalid(format!(
            "cannot read the etcd {what} {}: {error}",
            path.display()
        ))
    })
}

impl EtcdConfig {
    /// Connects to the cluster.
    pub async fn connect(&self) -> Result<Client> {
        if self.endpoints.is_empty() {
            return Err(Error::invalid(
                "no etcd endpoint given; set etcd.endpoints (or --etcd-endpoints)",
            ));
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            .with_timeout(self.timeout)
            .with_keep_alive(Duration::from_secs(2), self.timeout)
            .with_keep_alive_while_idle(true);
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => options = options.with_user(user, password),
            (None, None) => {}
            _ => {
                return Err(Error::invalid(
                    "etcd user and password go together; give both or neither",
                ));
            }
        }
        if let Some(tls) = &self.tls {
            let mut tls_options = TlsOptions::new();
            if let Some(ca) = &tls.ca_file {
                tls_options =
                    tls_options.ca_certificate(Certificate::from_pem(read(ca, "CA file")?));
            }
            match (&tls.cert_file, &tls.key_file) {
                (Some(cert), Some(key)) => {
                    tls_options = tls_options.identity(Identity::from_pem(
                        read(cert, "client certificate")?,
                        read(key, "client key")?,
                    ));
                }
                (None, None) => {}
                _ => {
                    return Err(Error::invalid(
                        "the etcd client certificate and key go together; give both or neither",
                    ));
                }
            }
            options = options.with_tls(tls_options);
        }
        Client::connect(&self.endpoints, Some(options))
            .await
            .map_err(from_etcd)
    }
}
