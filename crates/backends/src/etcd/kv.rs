//! Key-value calls that ask another member when the one asked is down.
//!
//! etcd-client spreads calls over every endpoint, and reconnects to each
//! lazily, per call: with one member of three down, about one call in three
//! fails at once with a connect error, though the cluster keeps its quorum.
//! A session save takes several calls, so most saves failed until the
//! member came back, and the session held ("the session store refused to
//! save this session") while etcd was healthy. The Go client asks again in
//! the same cases: a call that never reached a member, and a read after any
//! transport failure (reading twice changes nothing). A write whose fate is
//! unknown (sent, then the connection broke) is not asked again here: the
//! revision checks of the caller decide what happened.

use std::time::Duration;

use etcd_client::{
    Error, GetOptions, GetResponse, KvClient, PutOptions, PutResponse, Txn, TxnResponse,
};

/// How many times a call is made at most: enough that a call reaches a
/// live member with one of three down, unless the cluster is down.
const ATTEMPTS: u32 = 5;

/// The pause between two attempts, so a member that is starting is not
/// hammered.
const PAUSE: Duration = Duration::from_millis(20);

/// gRPC's `UNKNOWN` and `UNAVAILABLE` codes (fixed by the gRPC spec; the
/// enum lives in tonic, which etcd-client does not re-export).
const UNKNOWN: i32 = 2;
const UNAVAILABLE: i32 = 14;

/// A KV client whose calls are asked again as the module says.
pub(super) struct Kv(pub(super) KvClient);

impl Kv {
    /// Reads `key` (a range, with `options`).
    pub(super) async fn get(
        self,
        key: impl Into<Vec<u8>>,
        options: Option<GetOptions>,
    ) -> Result<GetResponse, Error> {
        let key = key.into();
        asked_again(may_read_again, || {
            let (mut client, key, options) = (self.0.clone(), key.clone(), options.clone());
            async move { client.get(key, options).await }
        })
        .await
    }

    /// Writes `value` at `key`.
    pub(super) async fn put(
        self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: Option<PutOptions>,
    ) -> Result<PutResponse, Error> {
        let (key, value) = (key.into(), value.into());
        asked_again(never_sent, || {
            let mut client = self.0.clone();
            let (key, value, options) = (key.clone(), value.clone(), options.clone());
            async move { client.put(key, value, options).await }
        })
        .await
    }

    /// Runs `txn` (a write, as far as asking again goes).
    pub(super) async fn txn(self, txn: Txn) -> Result<TxnResponse, Error> {
        asked_again(never_sent, || {
            let (mut client, txn) = (self.0.clone(), txn.clone());
            async move { client.txn(txn).await }
        })
        .await
    }
}

/// Makes `call` again, after a short pause, while it fails with an error
/// `again` allows, at most [`ATTEMPTS`] times in all.
async fn asked_again<T, F, Answer>(again: fn(&Error) -> bool, mut call: F) -> Result<T, Error>
where
    F: FnMut() -> Answer,
    Answer: std::future::Future<Output = Result<T, Error>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(error) if attempt < ATTEMPTS && again(&error) => {
                attempt += 1;
                tokio::time::sleep(PAUSE).await;
            }
            answer => return answer,
        }
    }
}

/// Whether the call failed before it reached a member: the connection to
/// the member it was sent to could not be made (tonic reports a connect
/// error as `UNAVAILABLE` with the connector's message).
fn never_sent(error: &Error) -> bool {
    match error {
        Error::GRpcStatus(status) => {
            status.code() as i32 == UNAVAILABLE && status.message().contains("connect error")
        }
        _ => false,
    }
}

/// Whether a read may be asked again: it failed in transport, wherever.
fn may_read_again(error: &Error) -> bool {
    match error {
        Error::GRpcStatus(status) => matches!(status.code() as i32, UNKNOWN | UNAVAILABLE),
        Error::TransportError(_) | Error::IoError(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: tonic::Code, message: &str) -> Error {
        Error::GRpcStatus(tonic::Status::new(code, message))
    }

    #[test]
    fn only_a_write_that_never_reached_a_member_is_sent_again() {
        assert!(never_sent(&status(
            tonic::Code::Unavailable,
            "tcp connect error"
        )));
        // Sent, then the connection broke: it may have been applied.
        assert!(!never_sent(&status(
            tonic::Code::Unknown,
            "transport error"
        )));
        assert!(!never_sent(&status(
            tonic::Code::Unavailable,
            "etcdserver: leader changed"
        )));
        assert!(!never_sent(&status(
            tonic::Code::FailedPrecondition,
            "etcdserver: requested lease not found"
        )));
    }

    #[test]
    fn a_read_is_asked_again_after_any_transport_failure() {
        assert!(may_read_again(&status(
            tonic::Code::Unavailable,
            "tcp connect error"
        )));
        assert!(may_read_again(&status(
            tonic::Code::Unknown,
            "transport error"
        )));
        assert!(may_read_again(&status(
            tonic::Code::Unavailable,
            "etcdserver: leader changed"
        )));
        assert!(!may_read_again(&status(
            tonic::Code::PermissionDenied,
            "etcdserver: permission denied"
        )));
        assert!(!may_read_again(&status(
            tonic::Code::DeadlineExceeded,
            "Timeout expired"
        )));
    }
}
