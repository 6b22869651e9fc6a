//! The web dashboard of `crus serve --sim` in a real headless Chromium shows
//! a session held by an alert gate prominently: which gate, what it says,
//! since when and how much of `max_hold` is left; and it shows reverted
//! nodes in their own colour (issue 23). The gate is an Alertmanager that
//! cannot be reached, which holds the session (fail closed).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod common;

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::{Value, json};

use browser::*;
use common::*;

const TOKEN: &str = "dashboard-hold-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_hold_by_a_gate_and_the_reverted_colour() {
    tokio::time::timeout(Duration::from_secs(110), run())
        .await
        .expect("the browser test finished within its bound");
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crus.toml");
    std::fs::write(&config, "[alert_gates]\nallowed_hosts = [\"127.0.0.1\"]\n").unwrap();
    let (config, db) = (config.display().to_string(), path_in(dir.path(), "crus.db"));
    let server = Server::start(
        &[
            "--config",
            &config,
            "--sim",
            "--sim-nodes",
            "4",
            "--sim-trace",
            "none",
            "--poll-interval",
            "1s",
            "--db",
            &db,
            "--token",
            TOKEN,
        ],
        &[],
    );
    // Nothing listens on port 9: the gate cannot be asked, and holds.
    let mut body = session_body(2);
    body["policy"] = json!({
        "gates": [{"alertmanager": "http://127.0.0.1:9", "filter": ["severity=critical"]}],
        "max_hold": "2h",
        "rollback": {"template": "compute-image", "revert_upgraded_on_halt": true, "batch": 1}
    });
    let created: Value = client()
        .post(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["upgrade_id"].as_str().unwrap().to_string();

    let driver = Driver::start().await;
    let session = driver.browser().await;
    let browser = &session;
    browser.goto(&format!("{}/", server.url)).await.unwrap();
    until("the sign-in box", || async move {
        shown(browser, "#sign-in").await.then_some(())
    })
    .await;
    let input = browser.find(Locator::Css("#token")).await.unwrap();
    input.send_keys(TOKEN).await.unwrap();
    input
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    until("the sessions view", || async move {
        shown(browser, "#sessions-view").await.then_some(())
    })
    .await;
    browser
        .goto(&format!("{}/ui/#/session/{id}", server.url))
        .await
        .unwrap();
    let hold = until("the gate's hold", || async move {
        let text = text_of(browser, "#gate-hold").await;
        (shown(browser, "#gate-hold").await && !text.is_empty()).then_some(text)
    })
    .await;
    screenshot(browser, "hold-01-held-by-a-gate").await;
    assert!(hold.starts_with("Held by alert gates since "), "{hold}");
    assert!(hold.contains("max_hold halts the session at "), "{hold}");
    assert!(hold.contains("left"), "{hold}");
    assert!(hold.contains("No new node is taken"), "{hold}");
    assert!(
        hold.contains("alertmanager http://127.0.0.1:9 (severity=critical)"),
        "{hold}"
    );
    // The hold's box is styled to stand out, before the summary.
    let style = eval(
        browser,
        "const box = document.getElementById('gate-hold'); const css = getComputedStyle(box); \
         return [css.borderLeftStyle, css.fontWeight, box.nextElementSibling.nextElementSibling.id];",
        vec![],
    )
    .await;
    assert_eq!(style[0], "solid", "{style}");
    assert_eq!(style[2], "session-summary", "{style}");
    assert!(!shown(browser, "#revert").await);

    // Reverted nodes have their own colour in the legend (and the grid).
    let reverted = eval(
        browser,
        "const item = document.querySelector('#legend li[data-phase=reverted]'); \
         return [getComputedStyle(item.querySelector('.swatch')).backgroundColor, item.textContent];",
        vec![],
    )
    .await;
    assert_eq!(reverted[0], "rgb(106, 61, 154)", "{reverted}");
    assert!(
        reverted[1].as_str().unwrap().starts_with("reverted"),
        "{reverted}"
    );

    // No node was taken while held.
    let status: Value = client()
        .get(format!("{}/session/{id}", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["phase"], "gated", "{status:#}");
    assert_eq!(status["nodes"]["pending"], 4, "{status:#}");
    assert!(status["gate_hold"]["halts_at"].is_string(), "{status:#}");
    // The metrics count the hold, and no revert.
    let metrics = client()
        .get(format!("{}/apis/crus/metrics", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("crus_sessions_gated 1"), "{metrics}");
    assert!(metrics.contains("crus_sessions_reverting 0"), "{metrics}");
    let errors: Vec<Value> = driver
        .console(browser)
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        // The page's first read, before the sign-in, is refused.
        .filter(|entry| {
            let message = entry["message"].as_str().unwrap_or_default();
            !(entry["source"] == "network" && message.contains("401"))
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    session.close().await.unwrap();
}
