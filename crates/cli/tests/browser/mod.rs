//! A real headless Chromium driven through chromedriver (WebDriver), for the
//! dashboard's browser test: starting both on free loopback ports, waiting on
//! the page, screenshots, and the browser's console log.

#![allow(dead_code)] // Not every helper is used by every test.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// How long one wait on the page may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(45);

/// A chromedriver process (and the browsers it starts); killed when dropped.
pub struct Driver {
    /// The process, leader of its own process group.
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// A fresh Chromium profile, removed with the driver.
    profile: tempfile::TempDir,
}

fn find_program(names: &[&str]) -> PathBuf {
    for name in names {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
            let path = Path::new(dir).join(name);
            if path.is_file() {
                return path;
            }
        }
    }
    panic!(
        "none of {names:?} is installed: the dashboard test needs Debian's chromium and \
         chromium-driver packages (scripts/test.sh installs them)"
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is ready.
    pub async fn start() -> Driver {
        let program = find_program(&["chromedriver"]);
        let port = free_port();
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so the browsers it starts die with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("{} does not start: {error}", program.display()));
        let url = format!("http://127.0.0.1:{port}");
        let driver = Driver {
            child,
            url,
            profile: tempfile::tempdir().expect("a profile directory"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = http.get(format!("{}/status", driver.url)).send().await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not get ready on port {port} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium session, console messages recorded.
    pub async fn browser(&self) -> Client {
        let chromium = find_program(&["chromium", "chromium-browser"]);
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                // As root and without network: no sandbox, and none of the
                // background connections Chromium would otherwise try.
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1366,1000",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|error| panic!("chromedriver cannot start Chromium: {error}"))
    }

    /// The browser console messages since the last call (chromedriver's log endpoint).
    pub async fn console(&self, browser: &Client) -> Vec<Value> {
        let session = browser
            .session_id()
            .await
            .expect("a session id")
            .expect("an open session");
        let response = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("chromedriver answers");
        let body: Value = response.json().await.expect("a JSON log");
        body["value"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium process it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Runs `script` (a function body; `arguments` as in WebDriver) in the page.
pub async fn eval(browser: &Client, script: &str, args: Vec<Value>) -> Value {
    browser
        .execute(script, args)
        .await
        .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
}

/// Clicks the element `selector` finds, failing the test if there is none.
pub async fn click(browser: &Client, selector: &str) {
    browser
        .find(fantoccini::Locator::Css(selector))
        .await
        .unwrap_or_else(|error| panic!("no element {selector}: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("cannot click {selector}: {error}"));
}

/// The text of the first element matching `selector`, or "" when there is none.
pub async fn text_of(browser: &Client, selector: &str) -> String {
    let value = eval(
        browser,
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
        vec![json!(selector)],
    )
    .await;
    value.as_str().unwrap_or_default().to_string()
}

/// Whether the first element matching `selector` is shown (exists and not hidden).
pub async fn shown(browser: &Client, selector: &str) -> bool {
    eval(
        browser,
        "const e = document.querySelector(arguments[0]); return !!e && e.offsetParent !== null;",
        vec![json!(selector)],
    )
    .await
        == json!(true)
}

/// Polls `probe` until it returns `Some`, for at most [`WAIT`]; `what` names the wait on failure.
pub async fn until<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    until_or_explain(what, probe, async || String::new()).await
}

/// As [`until`]; a wait that times out also says what `explain` finds then
/// (what the page and the server last showed).
pub async fn until_or_explain<T, F, Fut>(
    what: &str,
    mut probe: F,
    explain: impl AsyncFnOnce() -> String,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out waiting for {what} ({WAIT:?}); {}",
                explain().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves a screenshot of the page as `target/dashboard/NAME.png` and returns its path.
pub async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let png = browser.screenshot().await.expect("a screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard");
    std::fs::create_dir_all(&dir).expect("target/dashboard can be made");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("the screenshot can be saved");
    path
}

/// The legend's count of each phase, as the page shows it.
pub async fn legend(browser: &Client) -> BTreeMap<String, usize> {
    let value = eval(
        browser,
        "return [...document.querySelectorAll('#legend li')].map(li => [li.dataset.phase, li.textContent]);",
        vec![],
    )
    .await;
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let phase = pair[0].as_str().unwrap().to_string();
            let count = pair[1]
                .as_str()
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (phase, count)
        })
        .collect()
}

/// Opens session `id`'s page of the dashboard at `url` signed in with
/// `token`, and drains the console log of the sign-in page (its first read,
/// before the token was set, is refused): what the console logs from then on
/// is the session page's.
pub async fn open_session_page(
    driver: &Driver,
    browser: &Client,
    url: &str,
    token: &str,
    id: &str,
) {
    browser.goto(&format!("{url}/ui/")).await.unwrap();
    browser
        .execute(
            "sessionStorage.setItem('crus.token', arguments[0]);",
            vec![Value::from(token)],
        )
        .await
        .unwrap();
    browser
        .goto(&format!("{url}/ui/#/session/{id}"))
        .await
        .unwrap();
    let _ = driver.console(browser).await;
    // Only the fragment changed: load the page again, with the token kept.
    browser.refresh().await.unwrap();
}
