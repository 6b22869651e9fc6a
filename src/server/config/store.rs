//! `[store]` and `[etcd]` of `crus.toml`: which session store, and the etcd
//! cluster several replicas share.

use std::path::PathBuf;
use std::time::Duration;

use crus_backends::settings::{InvalidSetting, humantime_duration, humantime_duration_option};
use serde::Deserialize;

/// `[store]`: where sessions are kept.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite` (the file `server.db`, one replica) or `etcd` (several
    /// replicas share the `[etcd]` cluster; one leads).
    pub kind: StoreKind,
}

/// Which session store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One SQLite file; one replica.
    #[default]
    Sqlite,
    /// An etcd cluster; several replicas, one of them leading (needs a
    /// build with `--features etcd`).
    Etcd,
}

/// What a `crus` built without the etcd feature says about `store.kind = "etcd"`.
pub const ETCD_NOT_BUILT: &str = "\"etcd\" needs a crus built with the etcd feature: \
     cargo build --release -p crus-cli --features etcd (the build needs protoc: \
     apt-get install protobuf-compiler); this build has only \"sqlite\"";

/// `[etcd]`: the cluster several replicas share, when `store.kind = "etcd"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdSection {
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

impl Default for EtcdSection {
    fn default() -> Self {
        EtcdSection {
            endpoints: Vec::new(),
            prefix: "/crus/".into(),
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

impl EtcdSection {
    /// The keep-alive interval: `keep_alive`, or a third of the TTL.
    pub fn keep_alive_interval(&self) -> Duration {
        self.keep_alive.unwrap_or(self.lease_ttl / 3)
    }

    /// Checks what the types alone do not (only with `store.kind = "etcd"`).
    pub(super) fn check(&self) -> Result<(), InvalidSetting> {
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
}
