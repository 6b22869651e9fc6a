//! `[store]` of `crus.toml`: which session store. The etcd cluster several
//! replicas share is `[etcd]`, `crus_backends::etcd::EtcdSettings`.

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
