//! `[etcd]` of `crus.toml`: the cluster several `crus serve` replicas share
//! (used when `store.kind = "etcd"`), read with serde, checked, and turned
//! into an [`EtcdConfig`] (the password read from its file).
//!
//! Built even without the `etcd` feature: a server built without it still
//! reads the section (its keys are known, so a typo is refused by name) and
//! says how to build one with etcd; only [`EtcdSettings::to_config`] needs
//! the etcd client.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::settings::{InvalidSetting, humantime_duration, humantime_duration_option};

/// The default key prefix under which crus keeps its data in etcd.
pub const DEFAULT_PREFIX: &str = "/crus/";

/// `[etcd]`: the cluster several replicas share, when `store.kind = "etcd"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdSettings {
    /// Client URLs of the members, e.g. `http://10.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Prefix of every key crus writes; replicas with the same prefix share sessions.
    pub prefix: String,
    /// How long the leader's lease outlives its last keep-alive: a leader that
    /// dies is replaced about this long after. Whole seconds, at least 1 s.
    #[serde(with = "humantime_duration")]
    pub lease_ttl: Duration,
    /// How often the leader refreshes its lease; absent: a third of `lease_ttl`.
    #[serde(default, with = "humantime_duration_option")]
    pub keep_alive: Option<Duration>,
    /// How long to wait for a connection, and for each request.
    #[serde(with = "humantime_duration")]
    pub timeout: Duration,
    /// This replica's name in the leader key (for operators); absent:
    /// `<host name>-<process id>`.
    pub replica_name: Option<String>,
    /// PEM file of the CA that signed the members' certificates (`https://` endpoints).
    pub ca_file: Option<PathBuf>,
    /// PEM file of this client's certificate, when the members ask for one.
    pub cert_file: Option<PathBuf>,
    /// PEM file of that certificate's key.
    pub key_file: Option<PathBuf>,
    /// The etcd user, when etcd has authentication on.
    pub user: Option<String>,
    /// A file holding the user's password (kept out of this file).
    pub password_file: Option<PathBuf>,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        EtcdSettings {
            endpoints: Vec::new(),
            prefix: DEFAULT_PREFIX.into(),
            lease_ttl: Duration::from_secs(5),
            keep_alive: None,
            timeout: Duration::from_secs(5),
            replica_name: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            user: None,
            password_file: None,
        }
    }
}

impl EtcdSettings {
    /// The keep-alive interval: `keep_alive`, or a third of the TTL.
    pub fn keep_alive_interval(&self) -> Duration {
        self.keep_alive.unwrap_or(self.lease_ttl / 3)
    }

    /// Checks what the types alone do not; the server calls it only with
    /// `store.kind = "etcd"`, so an unused section is not held to it.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let invalid =
            |key: &str, message: String| InvalidSetting::new(format!("etcd.{key}"), message);
        if self.endpoints.is_empty() {
            return Err(invalid(
                "endpoints",
                "give the client URL of at least one member (e.g. [\"http://127.0.0.1:2379\"], or --etcd-endpoints)".into(),
            ));
        }
        if let Some(url) = self
            .endpoints
            .iter()
            .find(|url| !(url.starts_with("http://") || url.starts_with("https://")))
        {
            return Err(invalid(
                "endpoints",
                format!("{url:?} must start with http:// or https://"),
            ));
        }
        if !self.prefix.starts_with('/') {
            return Err(invalid(
                "prefix",
                format!("{:?} must start with /", self.prefix),
            ));
        }
        if self.lease_ttl < Duration::from_secs(1) || self.lease_ttl.subsec_nanos() != 0 {
            return Err(invalid(
                "lease_ttl",
                format!(
                    "{} is not a whole number of seconds of at least 1 s (etcd leases count seconds)",
                    humantime::format_duration(self.lease_ttl)
                ),
            ));
        }
        let keep_alive = self.keep_alive_interval();
        if keep_alive.is_zero() || keep_alive >= self.lease_ttl {
            return Err(invalid(
                "keep_alive",
                format!(
                    "{} must be more than zero and well under lease_ttl ({})",
                    humantime::format_duration(keep_alive),
                    humantime::format_duration(self.lease_ttl)
                ),
            ));
        }
        if self.timeout.is_zero() {
            return Err(invalid("timeout", "must be longer than zero".into()));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(invalid(
                "cert_file",
                "cert_file and key_file go together; give both or neither".into(),
            ));
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err(invalid(
                "user",
                "user and password_file go together; give both or neither".into(),
            ));
        }
        Ok(())
    }

    /// How to reach the cluster, with the password read from its file. The
    /// TLS files are read when connecting, which names each one it cannot.
    #[cfg(feature = "etcd")]
    pub fn to_config(&self) -> Result<super::EtcdConfig, InvalidSetting> {
        let password = match &self.password_file {
            // An empty password is etcd's business, not refused here.
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|error| {
                        InvalidSetting::new(
                            "etcd.password_file",
                            format!(
                                "cannot read the etcd password file {}: {error}",
                                path.display()
                            ),
                        )
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            None => None,
        };
        let tls = (self.ca_file.is_some() || self.cert_file.is_some()).then(|| super::EtcdTls {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        });
        Ok(super::EtcdConfig {
            endpoints: self.endpoints.clone(),
            prefix: self.prefix.clone(),
            user: self.user.clone(),
            password,
            tls,
            timeout: self.timeout,
        })
    }
}

#[cfg(all(test, feature = "etcd"))]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_read_without_its_line_ending_and_tls_follows_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let password_file = dir.path().join("etcd-password");
        std::fs::write(&password_file, "s3cret\n").unwrap();
        let settings = EtcdSettings {
            endpoints: vec!["https://10.0.0.1:2379".into()],
            user: Some("crus".into()),
            password_file: Some(password_file),
            ca_file: Some("/etc/crus/etcd-ca.pem".into()),
            ..EtcdSettings::default()
        };
        settings.check().unwrap();
        let config = settings.to_config().unwrap();
        assert_eq!(config.password.as_deref(), Some("s3cret"));
        assert_eq!(config.prefix, DEFAULT_PREFIX);
        let tls = config.tls.unwrap();
        assert_eq!(tls.ca_file, Some("/etc/crus/etcd-ca.pem".into()));
        assert_eq!(tls.cert_file, None);
        // No CA and no client certificate: plain connections.
        let plain = EtcdSettings {
            endpoints: vec!["http://10.0.0.1:2379".into()],
            ..EtcdSettings::default()
        };
        assert!(plain.to_config().unwrap().tls.is_none());
    }

    #[test]
    fn an_unreadable_password_file_names_its_key() {
        let settings = EtcdSettings {
            endpoints: vec!["http://10.0.0.1:2379".into()],
            user: Some("crus".into()),
            password_file: Some("/nonexistent/etcd-password".into()),
            ..EtcdSettings::default()
        };
        let error = settings.to_config().unwrap_err();
        assert_eq!(error.key, "etcd.password_file");
        assert!(
            error.message.contains("/nonexistent/etcd-password"),
            "{error}"
        );
    }
}
