//! [`HttpClientSettings`]: the `reqwest` client of a backend, built the same
//! way for all: rustls, the site's CA file added to the system roots, an
//! optional switch that skips certificate checks, timeouts.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why no HTTP client could be built; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The CA file could not be read.
    #[error("{key} {} cannot be read: {source}", path.display())]
    CaFileUnreadable {
        /// The setting naming the file, e.g. `kadeploy.ca_file`.
        key: String,
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The CA file is not a PEM bundle of certificates.
    #[error("{key} {} is not PEM: {source}", path.display())]
    CaFileNotPem {
        /// The setting naming the file.
        key: String,
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        source: reqwest::Error,
    },
    /// The client could not be built (no TLS roots on this system).
    #[error("cannot build the HTTP client: {0}")]
    Build(reqwest::Error),
}

/// How a backend's HTTP client is made.
#[derive(Debug)]
pub struct HttpClientSettings {
    /// How long one request (connect, send, answer) may take.
    timeout: Duration,
    /// How long connecting may take; unbounded apart from `timeout` if unset.
    connect_timeout: Option<Duration>,
    /// A PEM bundle of the CA certificates the site's services use, added to
    /// the system roots, and the setting that names it.
    ca_file: Option<(String, PathBuf)>,
    /// Accept any server certificate (test BMCs with self-signed ones).
    insecure: bool,
    /// Which redirects are followed; reqwest's default (up to 10) if unset.
    redirect: Option<reqwest::redirect::Policy>,
}

impl HttpClientSettings {
    /// A client whose requests each take at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        HttpClientSettings {
            timeout,
            connect_timeout: None,
            ca_file: None,
            insecure: false,
            redirect: None,
        }
    }

    /// Connecting takes at most `timeout`.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Trusts the CA certificates of `ca_file` too (when given); `key` is
    /// the setting that names it (`redfish.ca_file`), for errors.
    pub fn ca_file(mut self, key: impl Into<String>, ca_file: Option<&Path>) -> Self {
        self.ca_file = ca_file.map(|path| (key.into(), path.to_path_buf()));
        self
    }

    /// Skips the checks of the server's certificate when `insecure`.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Follows redirects as `policy` says.
    pub fn redirect(mut self, policy: reqwest::redirect::Policy) -> Self {
        self.redirect = Some(policy);
        self
    }

    /// The client; reads the CA file now, so a bad one stops the start.
    pub fn build(self) -> Result<reqwest::Client, TransportError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(self.timeout)
            .danger_accept_invalid_certs(self.insecure);
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(policy) = self.redirect {
            builder = builder.redirect(policy);
        }
        if let Some((key, path)) = self.ca_file {
            for certificate in read_ca_file(key, path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        builder.build().map_err(TransportError::Build)
    }
}

/// The certificates of the PEM bundle at `path`, named by setting `key`.
fn read_ca_file(key: String, path: PathBuf) -> Result<Vec<reqwest::Certificate>, TransportError> {
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(source) => return Err(TransportError::CaFileUnreadable { key, path, source }),
    };
    reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| TransportError::CaFileNotPem {
        key,
        path,
        source,
    })
}
