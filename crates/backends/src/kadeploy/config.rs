//! Where the Kadeploy3 server is, who crus is to it, and the deployment
//! options a site sets once for every boot.

use std::path::PathBuf;
use std::time::Duration;

/// HTTP basic credentials, as the Grid'5000 API asks of requests that come
/// from outside the platform.
#[derive(Clone, PartialEq, Eq)]
pub struct KadeployBasicAuth {
    /// The account name.
    pub username: String,
    /// Its password.
    pub password: String,
}

// Hand-written so that the password never reaches logs through `{:?}`.
impl std::fmt::Debug for KadeployBasicAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KadeployBasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where a Kadeploy3 server is and how crus deploys with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KadeployConfig {
    /// The API root to which `/deployment` and `/environments` are appended:
    /// `https://api.grid5000.fr/4.0/sites/nantes` through the Grid'5000 API,
    /// or the site's kadeploy-server itself.
    pub base_url: String,
    /// The user crus deploys as, sent in the `X-Remote-Ident` header (how a
    /// trusted front end such as the Grid'5000 API names the user to the
    /// kadeploy-server). When set, deployments of other users are never
    /// adopted as a boot's (see `start_boot`). `None`: no such header, the
    /// server identifies the caller itself.
    pub user: Option<String>,
    /// HTTP basic credentials, needed when the API is reached from outside
    /// the site; `None` from a frontend, where the API trusts the source.
    pub basic_auth: Option<KadeployBasicAuth>,
    /// A PEM file with the CA certificate(s) of the server's TLS certificate,
    /// added to the system roots.
    pub ca_file: Option<PathBuf>,
    /// How long one HTTP request (connect, send, answer) may take.
    pub timeout: Duration,
    /// How many times a request that may be repeated (a GET, a DELETE, or a
    /// POST that never reached the server) is tried again after no answer or
    /// a 5xx.
    pub retries: u32,
    /// The first pause before a retry; each further retry doubles it, with
    /// jitter.
    pub retry_base_delay: Duration,
    /// The `ssh_authorized_keys` of every deployment: where the
    /// authorized_keys file the deployed nodes get is, so that health checks
    /// can log in. Kadeploy fetches it itself (`GrabFile`), so it is sent as
    /// it is, never read by crus: a path (`/home/crus/.ssh/authorized_keys`,
    /// fetched through the deployment's client export), a `server://` path
    /// on the kadeploy-server, or an `http(s)://` URL. `None`: Kadeploy's
    /// default. See [`check_authorized_keys_location`].
    pub ssh_authorized_keys: Option<String>,
    /// The DNS domain Kadeploy knows the nodes under: node `econome-8` is
    /// host `econome-8.nantes.grid5000.fr` with `nantes.grid5000.fr`.
    /// `None`: crus node ids are Kadeploy host names already.
    pub host_domain: Option<String>,
    /// The block device to deploy on (`block_device`, e.g. `/dev/sda`);
    /// `None`: the cluster's default in the Kadeploy configuration.
    pub block_device: Option<String>,
    /// The partition of `block_device` to deploy on (`deploy_partition`,
    /// e.g. `3`); `None`: the cluster's default.
    pub deploy_partition: Option<String>,
    /// The API root to which `/power` and `/reboot` (Kadeploy's native power
    /// and reboot operations, for [`KadeployPowerControl`]) are appended;
    /// `None`: `base_url`. Through the Grid'5000 API these are under the
    /// site's `/kadeploy` path (`https://api.grid5000.fr/4.0/sites/nantes/kadeploy`).
    ///
    /// [`KadeployPowerControl`]: super::KadeployPowerControl
    pub power_base_url: Option<String>,
}

/// The schemes Kadeploy fetches a file from (`FetchFile.[]`): a path with no
/// scheme is `local`.
const FILE_SCHEMES: [&str; 4] = ["local", "server", "http", "https"];

/// Checks that `location` is something Kadeploy can fetch an
/// authorized_keys file from: a path, or a `local://`, `server://`,
/// `http://` or `https://` location. The file itself is not read: it is on
/// Kadeploy's side.
pub fn check_authorized_keys_location(location: &str) -> Result<(), String> {
    if location.trim().is_empty() {
        return Err(
            "is empty; give the path or URL of an authorized_keys file Kadeploy can \
                    fetch, or leave it out"
                .to_string(),
        );
    }
    if location.chars().any(char::is_whitespace) {
        return Err(format!(
            "{location:?} contains white space: it is the location of an authorized_keys file \
             (a path, server:// or http(s):// URL), not the keys themselves"
        ));
    }
    if let Some((scheme, _)) = location.split_once("://")
        && !FILE_SCHEMES.contains(&scheme)
    {
        return Err(format!(
            "{location:?}: Kadeploy fetches files only from a path or from {}",
            FILE_SCHEMES.map(|scheme| format!("{scheme}://")).join(", ")
        ));
    }
    Ok(())
}

impl KadeployConfig {
    /// A configuration for the API at `base_url` with no credentials, node
    /// ids used as host names, Kadeploy's default partition, a 30 s timeout
    /// and 3 retries starting at 200 ms.
    pub fn new(base_url: impl Into<String>) -> Self {
        KadeployConfig {
            base_url: base_url.into(),
            user: None,
            basic_auth: None,
            ca_file: None,
            timeout: Duration::from_secs(30),
            retries: 3,
            retry_base_delay: Duration::from_millis(200),
            ssh_authorized_keys: None,
            host_domain: None,
            block_device: None,
            deploy_partition: None,
            power_base_url: None,
        }
    }
}
