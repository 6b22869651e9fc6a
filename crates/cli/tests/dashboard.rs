//! The web dashboard of `crus serve --sim` in a real headless Chromium,
//! through WebDriver: a wrong token is refused with a clear message, a
//! session is previewed and started from the form, its grid changes as it
//! runs, a pause stops it taking nodes, a resume finishes it, and it is
//! deleted after a confirmation. Screenshots of each stage are saved under
//! `target/dashboard/`; the page logs no console error.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::{Value, json};

use browser::*;
use common::*;

const TOKEN: &str = "dashboard-token-0123456789";

/// Bound of the whole test.
const WHOLE_TEST: Duration = Duration::from_secs(110);

/// The nodes of the simulated cluster and the step size of the session.
const NODES: usize = 64;
const STEP: usize = 8;

/// Phases in which a node is out of service (taken, not finished).
const IN_FLIGHT: [&str; 7] = [
    "draining",
    "drained",
    "booting",
    "verifying",
    "resuming",
    "failing",
    "releasing",
];

fn in_flight(counts: &BTreeMap<String, usize>) -> usize {
    IN_FLIGHT
        .iter()
        .map(|phase| counts.get(*phase).copied().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_signs_in_previews_starts_follows_pauses_resumes_and_deletes_a_session() {
    tokio::time::timeout(WHOLE_TEST, run())
        .await
        .expect("the browser test finished within its bound");
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = NODES.to_string();
    let server = Server::start(
        &[
            "--sim",
            "--sim-nodes",
            &nodes,
            "--sim-trace",
            "none",
            // A 4-minute boot takes two seconds: long enough to see phases change.
            "--sim-speed",
            "120",
            "--db",
            &path_in(dir.path(), "crus.db"),
            "--token",
            TOKEN,
        ],
        &[],
    );
    let driver = Driver::start().await;
    let session = driver.browser().await;
    // A reference the waits' `async move` blocks can copy.
    let browser = &session;

    // `/` leads to the dashboard, which asks for a token.
    browser.goto(&format!("{}/", server.url)).await.unwrap();
    until("the sign-in box", || async move {
        shown(browser, "#sign-in").await.then_some(())
    })
    .await;
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/ui/")
    );

    // A wrong token is refused, and the page says so.
    let input = browser.find(Locator::Css("#token")).await.unwrap();
    input.send_keys("not-the-token").await.unwrap();
    click(browser, "#sign-in-form button").await;
    let refusal = until("the wrong-token message", || async move {
        let text = text_of(browser, "#sign-in-error").await;
        text.contains("refused").then_some(text)
    })
    .await;
    assert!(refusal.contains("401"), "{refusal}");
    assert!(!shown(browser, "#sessions-view").await);
    screenshot(browser, "01-wrong-token").await;
    let wrong_token_log = driver.console(browser).await;

    // The right one shows the sessions: none yet.
    let input = browser.find(Locator::Css("#token")).await.unwrap();
    input.send_keys(TOKEN).await.unwrap();
    input
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    until("the sessions view", || async move {
        shown(browser, "#sessions-empty").await.then_some(())
    })
    .await;
    screenshot(browser, "02-signed-in").await;

    // Preview first: the plan, and Start enabled only then.
    let start = browser.find(Locator::Css("#start")).await.unwrap();
    assert!(!start.is_enabled().await.unwrap());
    let step_field = browser
        .find(Locator::Css("input[name=upgrade_step_size]"))
        .await
        .unwrap();
    step_field.clear().await.unwrap();
    step_field.send_keys(&STEP.to_string()).await.unwrap();
    browser
        .find(Locator::Css("input[name=max_failures]"))
        .await
        .unwrap()
        .send_keys("2")
        .await
        .unwrap();
    click(browser, "#preview").await;
    let plan = until("the dry-run plan", || async move {
        let text = text_of(browser, "#plan h3").await;
        (!text.is_empty()).then_some(text)
    })
    .await;
    let steps = NODES / STEP;
    assert!(
        plan.contains(&format!("{NODES} nodes in {steps} steps of at most {STEP}")),
        "{plan}"
    );
    assert!(start.is_enabled().await.unwrap());
    screenshot(browser, "03-preview").await;
    // Nothing was started by the preview.
    let sessions: Value = client()
        .get(format!("{}/session", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions, json!([]));

    // Start: the page moves to the session.
    start.click().await.unwrap();
    let id = until("the session page", || async move {
        let url = browser.current_url().await.ok()?;
        let fragment = url.fragment()?.strip_prefix("/session/")?.to_string();
        shown(browser, "#session-view").await.then_some(fragment)
    })
    .await;
    assert_eq!(id.len(), 36, "{id}");

    // The first node, read from the grid with the keyboard, changes phase as the session runs.
    until("the grid's nodes", || async move {
        (legend(browser).await.values().sum::<usize>() == NODES).then_some(())
    })
    .await;
    let grid = browser.find(Locator::Css("#grid")).await.unwrap();
    grid.send_keys(&char::from(Key::Home).to_string())
        .await
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = text_of(browser, "#tooltip").await;
        assert!(text.starts_with("x1000c0s0b0n0"), "{text}");
        let phase = text
            .split("phase: ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_default()
            .to_string();
        if seen.last() != Some(&phase) {
            seen.push(phase.clone());
            if seen.len() == 2 {
                // Mid-run: the picture of the README.
                screenshot(browser, "04-running").await;
            }
        }
        if phase == "done" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first node never got done: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.len() >= 2,
        "the first node's cell never changed: {seen:?}"
    );
    assert!(
        seen.iter().any(|phase| IN_FLIGHT.contains(&phase.as_str())),
        "{seen:?}"
    );
    let tooltip = text_of(browser, "#tooltip").await;
    assert!(tooltip.contains("1 boot attempt"), "{tooltip}");

    // Pause: nodes in flight finish, no new one is taken.
    click(browser, "#pause").await;
    until("the paused phase", || async move {
        (text_of(browser, "#session-phase").await == "phase paused").then_some(())
    })
    .await;
    let settled = until("the nodes in flight to finish", || async move {
        let counts = legend(browser).await;
        (in_flight(&counts) == 0).then_some(counts)
    })
    .await;
    let pending = settled["pending"];
    assert!(pending > 0 && pending < NODES, "{settled:?}");
    assert!(
        text_of(browser, "#pause").await == "Pause"
            && !browser
                .find(Locator::Css("#pause"))
                .await
                .unwrap()
                .is_enabled()
                .await
                .unwrap()
    );
    // Four boot times of the simulator: a running session would take nodes.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let still = legend(browser).await;
    assert_eq!(
        still["pending"], pending,
        "a paused session took nodes: {still:?}"
    );
    assert_eq!(in_flight(&still), 0, "{still:?}");
    let nodes: Value = client()
        .get(format!("{}/session/{id}/nodes", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pending_on_server = nodes
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["phase"] == "pending")
        .count();
    assert_eq!(pending_on_server, pending, "the grid matches the server");
    screenshot(browser, "05-paused").await;

    // Resume, and follow it to the end.
    click(browser, "#resume").await;
    until("the session to complete", || async move {
        (text_of(browser, "#session-state").await == "state READY").then_some(())
    })
    .await;
    let done = until("every node done on the grid", || async move {
        let counts = legend(browser).await;
        (counts["done"] == NODES).then_some(counts)
    })
    .await;
    assert_eq!(in_flight(&done), 0, "{done:?}");
    until("the succeeded phase", || async move {
        (text_of(browser, "#session-phase").await == "phase succeeded").then_some(())
    })
    .await;
    let messages = text_of(browser, "#messages").await;
    assert!(
        messages.contains(&format!("{NODES} of {NODES} nodes upgraded")),
        "{messages}"
    );
    let timeline = eval(
        browser,
        "return document.getElementById('timeline').getAttribute('aria-label');",
        vec![],
    )
    .await;
    assert_eq!(
        timeline,
        json!(format!(
            "0 nodes out of service of a step budget of {STEP}; 0 failed"
        ))
    );
    screenshot(browser, "06-complete").await;

    // The list shows it finished; deleting asks first.
    browser
        .goto(&format!("{}/ui/#/", server.url))
        .await
        .unwrap();
    let row_selector = format!("tr[data-upgrade-id='{id}']");
    let row = row_selector.as_str();
    until("the finished session in the list", || async move {
        let text = text_of(browser, row).await;
        text.contains("READY").then_some(())
    })
    .await;
    let progress = text_of(browser, &format!("{row} .progress-text")).await;
    assert_eq!(
        progress,
        format!("{NODES} done, 0 failed, 0 in flight of {NODES}")
    );
    screenshot(browser, "07-list").await;
    browser
        .find(Locator::Css(&format!("{row} a")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until("the session page again", || async move {
        (text_of(browser, "#session-state").await == "state READY").then_some(())
    })
    .await;
    click(browser, "#delete").await;
    until("the confirmation", || async move {
        shown(browser, "#confirm-ok").await.then_some(())
    })
    .await;
    screenshot(browser, "08-confirm-delete").await;
    click(browser, "#confirm-ok").await;
    until("the session to be gone", || async move {
        shown(browser, "#sessions-empty").await.then_some(())
    })
    .await;

    // The only console errors are the refused sign-in's 401.
    let mut log = wrong_token_log;
    log.extend(driver.console(browser).await);
    let errors: Vec<&Value> = log
        .iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .filter(|entry| {
            let message = entry["message"].as_str().unwrap_or_default();
            !(entry["source"] == "network" && message.contains("401"))
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    assert!(
        log.iter().any(|entry| entry["source"] == "network"),
        "the browser log was read (it holds the refused sign-in): {log:#?}"
    );
    session.close().await.unwrap();
}
