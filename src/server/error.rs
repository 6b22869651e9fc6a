//! `ServerError`: why a server could not start or stopped serving, one
//! variant per failure (the configuration, a file, the store, a backend,
//! etcd, the listener), each keeping the message operators see.

use std::net::SocketAddr;
use std::path::PathBuf;

use crus_backends::settings::InvalidSetting;

use super::config::{ConfigError, ETCD_NOT_BUILT};

/// A backend's error, whatever its type.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Why a server could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A setting could not be used at start (an unreadable secret file, a
    /// trace that does not parse), named by its key.
    #[error(transparent)]
    Setting(#[from] InvalidSetting),
    /// A file `[auth]` names could not be read.
    #[error("cannot read the {what} {}: {source}", path.display())]
    AuthFile {
        /// What the file holds, e.g. `tokens file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The API's authentication could not be built from `[auth]`.
    #[error(transparent)]
    Auth(#[from] crus_http::AuthError),
    /// `store.kind = "etcd"` in a build without the `etcd` feature.
    #[error("store.kind: {ETCD_NOT_BUILT}")]
    EtcdNotBuilt,
    /// The session database could not be opened (or is held by another
    /// server).
    #[error("cannot open the session database {}: {source}", path.display())]
    StoreOpen {
        /// The database file (`server.db`).
        path: PathBuf,
        /// Why.
        source: crus_core::Error,
    },
    /// The stored sessions could not be read to resume them.
    #[error("cannot read the stored sessions: {0}")]
    StoredSessions(#[source] crus_core::Error),
    /// A backend could not be built.
    #[error("{backend}: {source}")]
    Backend {
        /// The backend, as its section or key: `[bos]`,
        /// `backends.inventory = "file"`.
        backend: String,
        /// Why.
        source: BackendError,
    },
    /// A backend chosen in `[backends]` lacks what it needs (a section,
    /// the simulated cluster).
    #[error("{0}")]
    BackendChoice(String),
    /// `slurm.node_names = "nid"` with HSM: the nodes' NIDs could not be
    /// listed.
    #[error(
        "slurm.node_names = \"nid\": cannot list the nodes' NIDs from HSM at {base_url} (hsm.base_url): {source}"
    )]
    SlurmNids {
        /// HSM's base URL.
        base_url: String,
        /// Why.
        source: crus_core::Error,
    },
    /// The `[[webhooks]]` could not be started.
    #[error("{0}")]
    Webhooks(String),
    /// The etcd settings could not be used (an unreadable password file).
    #[error("{0}")]
    EtcdSettings(crus_backends::settings::InvalidSetting),
    /// etcd could not be reached to join the leader election.
    #[error("cannot connect to etcd at {endpoints} (etcd.endpoints, --etcd-endpoints): {source}")]
    EtcdConnect {
        /// The endpoints, comma-separated.
        endpoints: String,
        /// Why.
        source: crus_core::Error,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address (`server.listen`).
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed while serving.
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl ServerError {
    /// What `map_err` takes to report that the backend `backend` (its
    /// section or key, e.g. `[bos]`) could not be built.
    pub(super) fn backend<E: Into<BackendError>>(
        backend: impl Into<String>,
    ) -> impl FnOnce(E) -> ServerError {
        let backend = backend.into();
        move |source| ServerError::Backend {
            backend,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::ServerError;
    use crate::server::{Config, Server, bind};

    /// The defaults (a simulated cluster) with the database at `db`.
    fn config_with_db(db: &Path) -> Config {
        let mut config = Config::default();
        config.server.db = db.to_path_buf();
        config.auth.tokens = vec!["a-token-of-sixteen-chars-at-least".into()];
        config
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_opened_is_a_store_open_error_naming_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let db = directory.path().join("missing-directory").join("crus.db");
        let error = match Server::from_config(config_with_db(&db))
            .unwrap()
            .start()
            .await
        {
            Ok(_) => panic!("a database in a missing directory opened"),
            Err(error) => error,
        };
        assert!(
            matches!(&error, ServerError::StoreOpen { path, .. } if *path == db),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with(&format!(
                "cannot open the session database {}: ",
                db.display()
            )),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_unreadable_tokens_file_is_an_auth_file_error_naming_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let mut config = config_with_db(&directory.path().join("crus.db"));
        let tokens = directory.path().join("no-tokens");
        config.auth.tokens_file = Some(tokens.clone());
        let error = match Server::from_config(config).unwrap().start().await {
            Ok(_) => panic!("a missing tokens file was read"),
            Err(error) => error,
        };
        assert!(
            matches!(&error, ServerError::AuthFile { what: "tokens file", path, .. } if *path == tokens),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with(&format!(
                "cannot read the tokens file {}: ",
                tokens.display()
            )),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_address_in_use_is_a_bind_error_naming_it() {
        let taken = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = taken.local_addr().unwrap();
        let error = bind(address).await.unwrap_err();
        assert!(
            matches!(&error, ServerError::Bind { address: named, .. } if *named == address),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot listen on {address}: ")),
            "{error}"
        );
    }
}
