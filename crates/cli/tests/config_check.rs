//! `crus config check` through the binary: every shipped configuration
//! passes offline (the annotated example, the site examples and the file the
//! packages install), broken files fail with exit 1 naming each key at
//! fault, and the online check reaches (wiremock) backends once each.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The workspace root, where `docs/` and `packaging/` are.
fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Runs `crus config check ARGS --config FILE` with `envs` and nothing of the
/// caller's auth environment.
fn check(file: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crus"))
        .args(["config", "check", "--config"])
        .arg(file)
        .args(args)
        .env_remove("CRUS_TOKENS")
        .env_remove("CRUS_JWT_SECRET")
        .envs(envs.iter().copied())
        .output()
        .expect("crus runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `text` with every absolute path of a `*_file` key made under `dir` (as a
/// stand-in secret) and rewritten to it: the examples name the site's files.
fn with_secret_files(text: &str, dir: &Path) -> String {
    let mut lines = Vec::new();
    for line in text.lines() {
        let setting = line.split_once('=').and_then(|(key, value)| {
            let key = key.trim();
            let path = value.trim().strip_prefix("\"/")?.strip_suffix('"')?;
            (key.ends_with("_file") && !key.starts_with('#')).then_some((key, path))
        });
        match setting {
            Some((key, path)) => {
                let stand_in = dir.join(path.replace('/', "_"));
                std::fs::write(&stand_in, "stand-in secret\n").unwrap();
                lines.push(format!("{key} = \"{}\"", stand_in.display()));
            }
            None => lines.push(line.to_string()),
        }
    }
    lines.join("\n")
}

#[test]
fn every_shipped_configuration_passes_offline() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![root().join("docs/crus.example.toml")];
    for entry in std::fs::read_dir(root().join("docs/examples")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let packaged = Command::new("sh")
        .arg(root().join("packaging/default-config.sh"))
        .arg(root().join("docs/crus.example.toml"))
        .output()
        .expect("sh runs");
    assert!(packaged.status.success(), "{}", text(&packaged.stderr));
    let packaged_path = dir.path().join("packaged-crus.toml");
    std::fs::write(&packaged_path, &packaged.stdout).unwrap();
    files.push(packaged_path);

    for file in files {
        let original = std::fs::read_to_string(&file).unwrap();
        let rewritten = dir.path().join("check.toml");
        std::fs::write(&rewritten, with_secret_files(&original, dir.path())).unwrap();
        // The annotated example configures no credential: crus serve takes
        // them from CRUS_TOKENS then, as the check does.
        let output = check(
            &rewritten,
            &["--offline"],
            &[
                ("CRUS_TOKENS", "token"),
                ("CRUS_SERVICE_TOKEN", "token"),
                ("CRUS_CYCLECLOUD_PASSWORD", "password"),
            ],
        );
        assert!(
            output.status.success(),
            "{} fails the check:\n{}{}",
            file.display(),
            text(&output.stdout),
            text(&output.stderr)
        );
        let said = text(&output.stdout);
        for part in ["store:", "backends:", "auth:", "webhooks:"] {
            assert!(
                said.contains(part),
                "{}: no {part} in\n{said}",
                file.display()
            );
        }
    }
}

#[test]
fn the_packaged_file_runs_the_simulator_with_the_installed_token_file() {
    let packaged = Command::new("sh")
        .arg(root().join("packaging/default-config.sh"))
        .arg(root().join("docs/crus.example.toml"))
        .output()
        .expect("sh runs");
    let file = text(&packaged.stdout);
    let settings: Vec<&str> = file
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .collect();
    assert_eq!(
        settings,
        [
            "[server]",
            "db = \"/var/lib/crus/crus.db\"",
            "[auth]",
            "tokens_file = \"/etc/crus/tokens\""
        ]
    );
}

/// Exit 1, and standard error names `key`.
fn assert_refused(file_text: &str, key: &str, envs: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crus.toml");
    std::fs::write(
        &file,
        file_text.replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    std::fs::write(dir.path().join("tokens"), "a-token\n").unwrap();
    let output = check(&file, &["--offline"], envs);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{file_text}\n{stderr}");
    assert!(
        stderr.contains(key),
        "{file_text}\nthe error does not name {key}:\n{stderr}"
    );
}

#[test]
fn broken_files_are_refused_naming_the_key() {
    let auth = "[auth]\ntokens_file = \"{dir}/tokens\"\n";
    assert_refused(
        &format!("{auth}[server]\nlisten_address = \"x\"\n"),
        "listen_address",
        &[],
    );
    assert_refused(
        &format!("{auth}[backends]\nboot = \"pxe\"\n"),
        "backends.boot",
        &[],
    );
    assert_refused(
        &format!("{auth}[server]\nrequest_timeout = \"0s\"\n"),
        "server.request_timeout",
        &[],
    );
    assert_refused(
        "[auth]\ntokens_file = \"{dir}/missing\"\n",
        "auth.tokens_file",
        &[],
    );
    assert_refused(
        "[auth]\njwks_file = \"{dir}/empty\"\n",
        "auth.jwks_file",
        &[],
    );
    assert_refused("[auth]\ntokens = []\n", "auth", &[]);
    assert_refused(
        &format!(
            "{auth}[backends]\ninventory = \"hsm\"\nworkload_manager = \"none\"\nboot = \"bos\"\n\
             [hsm]\nbase_url = \"https://hsm\"\ntoken_env = \"CRUS_CHECK_UNSET_TOKEN\"\n\
             [bos]\nbase_url = \"https://bos\"\nca_file = \"{{dir}}/no-ca.pem\"\ntoken_file = \"{{dir}}/tokens\"\n"
        ),
        "hsm.token_env",
        &[],
    );
    // Every problem is listed, not only the first.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crus.toml");
    std::fs::write(
        &file,
        "[auth]\ntokens_file = \"/nonexistent/tokens\"\n[[webhooks]]\nurl = \"https://hook\"\nsecret_file = \"/nonexistent/hook\"\n",
    )
    .unwrap();
    let output = check(&file, &["--offline"], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("auth.tokens_file"), "{stderr}");
    assert!(stderr.contains("webhooks[0].secret_file"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_online_check_reaches_each_backend_once() {
    let hsm = MockServer::start().await;
    let bos = MockServer::start().await;
    // Any answer means the backend is there (its API needs a token crus
    // sends only when serving).
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&hsm)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&bos)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), "a-token\n").unwrap();
    let config = |bos_url: &str| {
        format!(
            "[auth]\ntokens_file = \"{dir}/tokens\"\n\
             [backends]\ninventory = \"hsm\"\nworkload_manager = \"none\"\nboot = \"bos\"\n\
             [hsm]\nbase_url = \"{hsm}/apis/smd\"\ntoken_file = \"{dir}/tokens\"\n\
             [bos]\nbase_url = \"{bos_url}\"\ntoken_file = \"{dir}/tokens\"\n",
            dir = dir.path().display(),
            hsm = hsm.uri(),
        )
    };
    let file = dir.path().join("crus.toml");
    std::fs::write(&file, config(&format!("{}/apis/bos", bos.uri()))).unwrap();
    let file_for_check = file.clone();
    let output = tokio::task::spawn_blocking(move || check(&file_for_check, &[], &[]))
        .await
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("reached hsm.base_url"), "{stdout}");
    assert!(stdout.contains("reached bos.base_url"), "{stdout}");
    assert!(stdout.contains("401"), "{stdout}");
    hsm.verify().await;
    bos.verify().await;
    hsm.reset().await;

    // A backend that does not answer fails the check, naming its key; so
    // does nothing with --offline.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/apis/bos", closed.local_addr().unwrap());
    drop(closed);
    std::fs::write(&file, config(&closed_url)).unwrap();
    let file_for_check = file.clone();
    let output = tokio::task::spawn_blocking(move || check(&file_for_check, &[], &[]))
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bos.base_url: cannot reach"), "{stderr}");
    let output = tokio::task::spawn_blocking(move || check(&file, &["--offline"], &[]))
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
}
