//! `--log-format journald` through the binary: log entries reach the
//! journal's socket with the session, node and step as their own fields, and
//! a machine without a journal gets text on standard error and a warning.
//!
//! The journal's socket path is fixed (`/run/systemd/journal/socket`): where
//! no journald listens there (CI's container, run as root), the test listens
//! on it itself for the test's length, and removes it after; where a real
//! journald runs, the field test is skipped (its entries would go there).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, client, create_session, session_body};

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// One test, as both parts depend on the socket's presence: first without
/// a journal, then with the test's own in its place.
#[tokio::test(flavor = "multi_thread")]
async fn journald_logs_fields_and_falls_back_to_text() {
    if Path::new(JOURNAL_SOCKET).exists() {
        eprintln!("skipped: a journal listens on {JOURNAL_SOCKET}; entries would go there");
        return;
    }
    without_a_journal_the_log_is_text_with_a_warning().await;
    let Ok(()) = std::fs::create_dir_all("/run/systemd/journal") else {
        panic!("cannot make /run/systemd/journal: run as root (scripts/test.sh does in CI)");
    };
    let journal = UnixDatagram::bind(JOURNAL_SOCKET).expect("a socket in place of the journal's");
    struct Remove;
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(JOURNAL_SOCKET);
            // The directory too, when the test made it (it is empty then).
            let _ = std::fs::remove_dir("/run/systemd/journal");
        }
    }
    let _remove = Remove;
    let dir = tempfile::tempdir().unwrap();
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let server = Server::start(
        &[
            "--log-format",
            "journald",
            "--no-auth",
            "--db",
            &common::path_in(dir.path(), "crus.db"),
            "--sim",
            "--sim-nodes",
            "4",
            "--sim-trace",
            "none",
        ],
        &[],
    );
    let client = client();
    let session = create_session(&client, &server.url, None, &session_body(2)).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut node_entry, mut step_entry) = (None, None);
    let mut buffer = vec![0u8; 64 * 1024];
    while Instant::now() < deadline && (node_entry.is_none() || step_entry.is_none()) {
        let Ok(length) = journal.recv(&mut buffer) else {
            continue;
        };
        let entry = fields(&buffer[..length]);
        if entry.get("CRUS_SESSION") != Some(&session) {
            continue;
        }
        if entry.contains_key("CRUS_NODE") {
            node_entry = Some(entry);
        } else if entry.contains_key("CRUS_STEP") {
            step_entry = Some(entry);
        }
    }
    let node_entry = node_entry.expect("an entry of a node of the session, with CRUS_NODE");
    let step_entry = step_entry.expect("an entry of a step of the session, with CRUS_STEP");
    for entry in [&node_entry, &step_entry] {
        assert_eq!(
            entry.get("SYSLOG_IDENTIFIER").map(String::as_str),
            Some("crus"),
            "{entry:?}"
        );
        assert!(entry.contains_key("PRIORITY"), "{entry:?}");
        assert!(entry.contains_key("MESSAGE"), "{entry:?}");
    }
    assert!(node_entry["CRUS_NODE"].starts_with('x'), "{node_entry:?}");
    serving(&server).await;
    assert_eq!(server.terminate(), Some(0));
}

/// The fields of one entry of the journal's native protocol: `KEY=value`
/// lines, or `KEY`, a little-endian 64-bit length and the value's bytes.
fn fields(mut datagram: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while let Some(end) = datagram
        .iter()
        .position(|&byte| byte == b'\n' || byte == b'=')
    {
        let key = String::from_utf8_lossy(&datagram[..end]).into_owned();
        let value;
        if datagram[end] == b'=' {
            let rest = &datagram[end + 1..];
            let stop = rest
                .iter()
                .position(|&byte| byte == b'\n')
                .unwrap_or(rest.len());
            value = &rest[..stop];
            datagram = rest.get(stop + 1..).unwrap_or_default();
        } else {
            let rest = &datagram[end + 1..];
            let length = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            value = &rest[8..8 + length];
            datagram = rest.get(8 + length + 1..).unwrap_or_default();
        }
        fields.insert(key, String::from_utf8_lossy(value).into_owned());
    }
    fields
}

/// Waits until `server` answers: its SIGTERM handler is in place from then
/// (a signal between its "listening" line and its first request would end
/// it at once).
async fn serving(server: &Server) {
    common::get_text(&client(), &server.url, "/healthz", None).await;
}

async fn without_a_journal_the_log_is_text_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let server = Server::start_logged(
        &[
            "--log-format",
            "journald",
            "--no-auth",
            "--db",
            &common::path_in(dir.path(), "crus.db"),
            "--sim",
        ],
        &[],
        &log,
    );
    serving(&server).await;
    assert_eq!(server.terminate(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("cannot write to the systemd journal"),
        "no warning in:\n{text}"
    );
    assert!(text.contains("stopped"), "no text log in:\n{text}");
}
