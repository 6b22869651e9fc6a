//! `crus serve` stops gracefully (exit 0) on SIGTERM however soon it comes,
//! even right after the server says it listens, as a service manager may
//! send it (systemd's `systemctl stop` during start-up).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Server;

#[test]
fn sigterm_right_after_listening_is_a_graceful_stop() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(
            &[
                "--no-auth",
                "--sim",
                "--db",
                &common::path_in(dir.path(), "crus.db"),
            ],
            &[],
        );
        assert_eq!(
            server.terminate(),
            Some(0),
            "SIGTERM ended the server abruptly"
        );
    }
}
