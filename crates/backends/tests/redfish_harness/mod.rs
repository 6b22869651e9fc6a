//! A private Redfish BMC for tests: `sushy-emulator` (sushy-tools, from the
//! virtualenv scripts/test.sh makes) with its fake driver, serving several
//! systems `node001`, `node002`... on a free loopback port, its state in a
//! temp dir of its own (the emulator's default state file outlives runs).
//!
//! The emulator addresses systems by UUID (a system's name redirects to it)
//! and applies a power change 1 to 11 s after it is asked for, on the next
//! read. [`EmulatorOptions::power_delay`] fixes that delay, through a launcher
//! that pins the emulator's random draw, for tests that need to be quick.
//! With [`EmulatorOptions::credentials`], basic auth is on (bcrypt htpasswd);
//! with [`EmulatorOptions::tls`], it serves HTTPS with a self-signed
//! certificate made by `openssl` for 127.0.0.1.
//!
//! Dropping the emulator kills the one process it started (also when the
//! test panicked). A missing emulator fails loudly, naming scripts/test.sh.

// Each test binary that includes the harness uses a different part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable scripts/test.sh sets to the emulator it installed.
const EMULATOR_VARIABLE: &str = "CRUS_SUSHY_EMULATOR";

/// Starts the emulator with the power-change delay pinned to its argument;
/// the rest of the command line goes to the emulator.
const PINNED_DELAY_LAUNCHER: &str = "\
import random, sys
delay = int(sys.argv.pop(1))
random.randint = lambda low, high: delay
from sushy_tools.emulator.main import main
sys.exit(main())
";

/// How to set an emulator up.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Number of systems, `node001` ...
    pub systems: usize,
    /// `Some((user, password))`: basic auth on.
    pub credentials: Option<(String, String)>,
    /// `Some(seconds)`: every power change lands this long (less up to 1 s,
    /// the emulator truncates to whole seconds) after it is asked for;
    /// `None`: the emulator's own random 1 to 11 s.
    pub power_delay: Option<u64>,
    /// Serve HTTPS with a fresh self-signed certificate.
    pub tls: bool,
}

impl EmulatorOptions {
    /// `systems` systems, no auth, the emulator's own delays.
    pub fn new(systems: usize) -> Self {
        EmulatorOptions {
            systems,
            credentials: None,
            power_delay: None,
            tls: false,
        }
    }
}

/// A running emulator; dropping it stops it.
pub struct RedfishEmulator {
    dir: tempfile::TempDir,
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The systems' names, `node001` ...
    pub systems: Vec<String>,
}

/// The `sushy-emulator` to run: `CRUS_SUSHY_EMULATOR`, or the workspace's
/// `target/py` virtualenv.
fn emulator_binary() -> PathBuf {
    let path = std::env::var_os(EMULATOR_VARIABLE).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py/bin/sushy-emulator"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the Redfish emulator {} is not installed ({EMULATOR_VARIABLE} is {}), so the Redfish tests \
         cannot run: run scripts/test.sh, which installs sushy-tools in target/py",
        path.display(),
        std::env::var(EMULATOR_VARIABLE).unwrap_or_else(|_| "not set".into()),
    );
    path
}

fn uuid(index: usize) -> String {
    format!("00000000-0000-4000-8000-{index:012}")
}

impl RedfishEmulator {
    /// Starts an emulator as `options` say and waits until it serves
    /// `/redfish/v1/Systems`.
    pub fn start(options: EmulatorOptions) -> RedfishEmulator {
        let binary = emulator_binary();
        let python = binary.with_file_name("python");
        let dir = tempfile::Builder::new()
            .prefix("crus-redfish-")
            .tempdir()
            .expect("create a temp dir");
        let systems: Vec<String> = (1..=options.systems)
            .map(|index| format!("node{index:03}"))
            .collect();
        let port = free_port();
        let mut config = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n\
             SUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_FAKE_DRIVER = True\n\
             SUSHY_EMULATOR_STATE_DIR = '{}'\n\
             SUSHY_EMULATOR_FAKE_SYSTEMS = [\n",
            dir.path().join("state").display()
        );
        for (index, name) in systems.iter().enumerate() {
            config.push_str(&format!(
                "    {{'uuid': '{}', 'name': '{name}', 'power_state': 'On', \
                 'nics': [{{'mac': '52:54:00:00:{:02x}:{:02x}', 'ip': '127.0.0.1'}}]}},\n",
                uuid(index + 1),
                (index + 1) / 256,
                (index + 1) % 256,
            ));
        }
        config.push_str("]\n");
        if let Some((user, password)) = &options.credentials {
            let htpasswd = dir.path().join("htpasswd");
            // The emulator takes bcrypt entries only; sushy-tools brings bcrypt.
            let output = Command::new(&python)
                .args([
                    "-c",
                    "import bcrypt, sys; print(sys.argv[1] + ':' + bcrypt.hashpw(sys.argv[2].encode(), bcrypt.gensalt()).decode())",
                    user,
                    password,
                ])
                .output()
                .unwrap_or_else(|error| panic!("could not run {}: {error}", python.display()));
            assert!(
                output.status.success(),
                "could not make the htpasswd entry: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::fs::write(&htpasswd, &output.stdout).expect("write the htpasswd file");
            config.push_str(&format!(
                "SUSHY_EMULATOR_AUTH_FILE = '{}'\n",
                htpasswd.display()
            ));
        }
        if options.tls {
            let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let output = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"])
                .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&certificate)
                .output()
                .unwrap_or_else(|error| {
                    panic!("could not run openssl (Debian package openssl): {error}; run scripts/test.sh")
                });
            assert!(
                output.status.success(),
                "openssl could not make a certificate: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            config.push_str(&format!(
                "SUSHY_EMULATOR_SSL_CERT = '{}'\nSUSHY_EMULATOR_SSL_KEY = '{}'\n",
                certificate.display(),
                key.display()
            ));
        }
        let config_path = dir.path().join("emulator.conf");
        std::fs::write(&config_path, config).expect("write the emulator config");
        let log = std::fs::File::create(dir.path().join("emulator.log")).expect("create the log");
        let mut command = match options.power_delay {
            Some(delay) => {
                let mut command = Command::new(&python);
                command.args(["-c", PINNED_DELAY_LAUNCHER, &delay.to_string()]);
                command
            }
            None => Command::new(&binary),
        };
        let child = command
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "could not start {}: {error}; run scripts/test.sh, which installs sushy-tools",
                    binary.display()
                )
            });
        let mut emulator = RedfishEmulator {
            dir,
            child,
            url: format!(
                "{}://127.0.0.1:{port}",
                if options.tls { "https" } else { "http" }
            ),
            systems,
        };
        emulator.wait_until_serving(port, options.tls, Duration::from_secs(30));
        emulator
    }

    /// The UUID of system number `index` (0 for `node001`).
    pub fn uuid(&self, index: usize) -> String {
        uuid(index + 1)
    }

    /// The emulator's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }

    fn wait_until_serving(&mut self, port: u16, tls: bool, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the emulator") {
                panic!(
                    "sushy-emulator exited ({status}) before serving; its log:\n{}",
                    self.log()
                );
            }
            // 200, or 401 with auth on: either way it serves the collection.
            // Over TLS, which this plain probe cannot speak, a listening
            // port is the sign (the server binds once it is set up).
            let serving = if tls {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            } else {
                status_of(port, "/redfish/v1/Systems")
                    .is_some_and(|status| status == 200 || status == 401)
            };
            if serving {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "sushy-emulator did not serve /redfish/v1/Systems within {timeout:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedfishEmulator {
    fn drop(&mut self) {
        // Only the process this harness started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind a free loopback port")
}

/// The HTTP status of `GET path` on the loopback `port`, or `None` when
/// nothing answers yet.
fn status_of(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
