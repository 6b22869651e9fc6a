//! The etcd store's own errors, and how they map into the core error.

use crus_core::Error;

/// The backend name in core errors.
pub(super) const BACKEND: &str = "etcd";

/// What can go wrong in the etcd store besides etcd's own errors.
#[derive(Debug, thiserror::Error)]
pub(super) enum EtcdError {
    /// A stored value is not a session record.
    #[error("the value at {key} is not a crus session record ({source}); remove or repair the key")]
    Damaged {
        /// The key read.
        key: String,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// A claim key is not what crus writes there.
    #[error("the node claim at {key} is damaged: {problem}; remove or repair the key")]
    DamagedClaim {
        /// The key read.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A session's node key is not what crus writes there.
    #[error(
        "the session nodes at {key} are damaged: {problem}; restore the session from a backup \
         or remove its keys"
    )]
    DamagedNodes {
        /// The key read.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A record could not be turned into JSON.
    #[error("cannot encode a session record: {0}")]
    Encode(#[from] serde_json::Error),
    /// A fenced write found the leader key gone or held by another lease.
    #[error(
        "this replica is no longer the leader (its lease expired or another replica took over); nothing was written"
    )]
    NotLeader,
}

impl From<EtcdError> for Error {
    fn from(error: EtcdError) -> Self {
        match error {
            // Not retryable by this replica: the new leader carries on.
            EtcdError::NotLeader => Error::unavailable(BACKEND, error.to_string()),
            other => Error::Other {
                backend: BACKEND,
                source: Box::new(other),
            },
        }
    }
}

/// Maps an etcd client error: transport failures and the gRPC codes that mean
/// "try again later" (no leader, no quorum, timeouts) are retryable.
pub(super) fn from_etcd(error: etcd_client::Error) -> Error {
    use etcd_client::Error as Etcd;
    match &error {
        Etcd::TransportError(_) | Etcd::IoError(_) | Etcd::LeaseKeepAliveError(_) => {
            Error::unavailable(
                BACKEND,
                format!("{error}; check that the etcd endpoints are up"),
            )
        }
        Etcd::GRpcStatus(status) => {
            // gRPC status codes (the numbers are fixed by the gRPC spec; the
            // enum lives in tonic, which etcd-client does not re-export).
            const CANCELLED: i32 = 1;
            const UNKNOWN: i32 = 2;
            const DEADLINE_EXCEEDED: i32 = 4;
            const PERMISSION_DENIED: i32 = 7;
            const RESOURCE_EXHAUSTED: i32 = 8;
            const ABORTED: i32 = 10;
            const UNAVAILABLE: i32 = 14;
            const UNAUTHENTICATED: i32 = 16;
            let code = status.code();
            match code as i32 {
                CANCELLED | UNKNOWN | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | ABORTED
                | UNAVAILABLE => Error::unavailable(
                    BACKEND,
                    format!(
                        "{} ({code:?}); the cluster may have lost its quorum",
                        status.message()
                    ),
                ),
                PERMISSION_DENIED | UNAUTHENTICATED => Error::invalid(format!(
                    "etcd refused the request: {}; check the etcd user and password",
                    status.message()
                )),
                _ => Error::Other {
                    backend: BACKEND,
                    source: Box::new(error),
                },
            }
        }
        _ => Error::Other {
            backend: BACKEND,
            source: Box::new(error),
        },
    }
}
