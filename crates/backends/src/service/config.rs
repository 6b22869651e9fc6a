//! Where a Cray service is and how crus talks to it.

use std::path::PathBuf;
use std::time::Duration;

/// How a [`ServiceClient`](super::ServiceClient) obtains the bearer token it
/// sends with each request.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// No `Authorization` header (in-cluster access to `cray-smd`, `cray-bos`).
    None,
    /// This token, as given.
    Static(String),
    /// The token in this file, read again at each call so a rotated token
    /// (a Kubernetes secret mount) is picked up without a restart.
    File(PathBuf),
    /// The token in this environment variable, read at each call.
    Env(String),
    /// A token from an OAuth2 token endpoint (Keycloak on the API gateway),
    /// fetched with the client-credentials grant, cached, and fetched again
    /// shortly before it expires.
    OAuth2ClientCredentials {
        /// The token endpoint, e.g.
        /// `https://api-gw/keycloak/realms/shasta/protocol/openid-connect/token`.
        token_url: String,
        /// The OAuth2 client id.
        client_id: String,
        /// The OAuth2 client secret.
        client_secret: String,
    },
}

// Hand-written so that secrets never reach logs through `{:?}`.
impl std::fmt::Debug for TokenSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::None => formatter.write_str("None"),
            TokenSource::Static(_) => formatter.write_str("Static(<redacted>)"),
            TokenSource::File(path) => formatter.debug_tuple("File").field(path).finish(),
            TokenSource::Env(variable) => formatter.debug_tuple("Env").field(variable).finish(),
            TokenSource::OAuth2ClientCredentials {
                token_url,
                client_id,
                ..
            } => formatter
                .debug_struct("OAuth2ClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
        }
    }
}

/// Where a Cray service is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The service's base URL, to which API paths such as `/hsm/v2/groups` are
    /// appended: `https://api-gw-service-nmn.local/apis/smd` through the
    /// gateway, `http://cray-smd` inside the cluster.
    pub base_url: String,
    /// Where the bearer token comes from.
    pub token: TokenSource,
    /// A PEM file with the CA certificate(s) that signed the service's TLS
    /// certificate (the site's platform CA), added to the system roots.
    pub ca_file: Option<PathBuf>,
    /// How long one HTTP request (connect, send, answer) may take.
    pub timeout: Duration,
    /// How many times a request that failed in a way that may pass
    /// (connection error, timeout, 5xx) is tried again.
    pub retries: u32,
    /// The first pause before a retry; each further retry doubles it, with
    /// jitter so that many clients do not retry in step.
    pub retry_base_delay: Duration,
}

impl ServiceConfig {
    /// A configuration for the service at `base_url`, without a token, with
    /// a 30 s timeout and 3 retries starting at 200 ms.
    pub fn new(base_url: impl Into<String>) -> Self {
        ServiceConfig {
            base_url: base_url.into(),
            token: TokenSource::None,
            ca_file: None,
            timeout: Duration::from_secs(30),
            retries: 3,
            retry_base_delay: Duration::from_millis(200),
        }
    }

    /// This configuration with the token taken from `token`.
    pub fn with_token(mut self, token: TokenSource) -> Self {
        self.token = token;
        self
    }
}
