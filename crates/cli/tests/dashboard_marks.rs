//! The dashboard's colours for nodes someone else holds out of service and
//! for skipped nodes (issue 21), checked in a real headless Chromium on the
//! page `crus serve --sim` ships: each has its own colour, distinct from
//! every other phase's, and its own legend entry; a node someone else holds
//! is drawn as such unless crus is working on it; the legend counts it once.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use browser::*;
use common::*;

const TOKEN: &str = "dashboard-marks-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_skipped_nodes_have_their_own_colours_and_legend_entries() {
    tokio::time::timeout(Duration::from_secs(90), run())
        .await
        .expect("the browser test finished within its bound");
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &[
            "--sim",
            "--sim-nodes",
            "4",
            "--sim-trace",
            "none",
            "--db",
            &path_in(dir.path(), "crus.db"),
            "--token",
            TOKEN,
        ],
        &[],
    );
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    browser.goto(&format!("{}/ui/", server.url)).await.unwrap();

    // The grid module the page itself loads, as the browser runs it.
    let answer = browser
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               import("./grid.js").then((grid) => done({
                 phases: grid.PHASES,
                 looks: [
                   grid.lookOf({ phase: "pending", foreign_reason: "bad DIMM" }),
                   grid.lookOf({ phase: "skipped", foreign_reason: "bad DIMM" }),
                   grid.lookOf({ phase: "done", foreign_reason: "bad DIMM" }),
                   grid.lookOf({ phase: "booting", foreign_reason: "bad DIMM" }),
                   grid.lookOf({ phase: "skipped", foreign_reason: null }),
                   grid.lookOf({ phase: "done" }),
                 ],
                 tooltips: [
                   grid.describeNode({ id: "x1c0s0b0n1", phase: "skipped", attempts: 0,
                     reason: "held out of service by someone else: bad DIMM", foreign_reason: "bad DIMM" }),
                   grid.describeNode({ id: "x1c0s0b0n2", phase: "done", attempts: 1, reason: null, foreign_reason: null }),
                 ],
               }), (error) => done({ error: String(error) }));"#,
            vec![],
        )
        .await
        .unwrap();
    assert!(answer.get("error").is_none(), "{answer}");
    let phases: Vec<(String, String, String)> = answer["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let text = |at: usize| entry[at].as_str().unwrap().to_string();
            (text(0), text(1), text(2))
        })
        .collect();
    let colour_of = |phase: &str| {
        phases
            .iter()
            .find(|(name, _, _)| name == phase)
            .map(|(_, colour, label)| (colour.clone(), label.clone()))
            .unwrap_or_else(|| panic!("no legend entry for {phase}: {phases:?}"))
    };
    let (foreign, foreign_label) = colour_of("foreign");
    let (skipped, _) = colour_of("skipped");
    assert_eq!(foreign_label, "out of service by someone else");
    let colours: BTreeSet<&str> = phases
        .iter()
        .map(|(_, colour, _)| colour.as_str())
        .collect();
    assert_eq!(
        colours.len(),
        phases.len(),
        "every phase its own colour: {phases:?}"
    );
    assert_ne!(foreign, skipped);
    assert_eq!(
        answer["looks"],
        json!([
            "foreign", "foreign", "foreign", "booting", "skipped", "done"
        ])
    );
    // The tooltip says whose the node is and why, in the owner's words.
    assert_eq!(
        answer["tooltips"],
        json!([
            "x1c0s0b0n1 — phase: skipped; 0 boot attempts; last reason: held out of service by someone else: bad DIMM; out of service by someone else: \"bad DIMM\"",
            "x1c0s0b0n2 — phase: done; 1 boot attempt",
        ])
    );

    // The legend the session page draws has both entries, and counts a
    // node someone else holds once, as such (a session of the simulated
    // cluster, whose nodes nobody holds: every count is its phase's).
    let http = client();
    let body = session_body(4);
    let id = create_session(&http, &server.url, Some(TOKEN), &body).await;
    wait_for(
        &http,
        &server.url,
        Some(TOKEN),
        &id,
        Duration::from_secs(60),
        |s| s["completed"] == true,
    )
    .await;
    open_session_page(&driver, &browser, &server.url, TOKEN, &id).await;
    let entries = until("the legend", || {
        let browser = &browser;
        async move {
            let value = eval(
                browser,
                "return [...document.querySelectorAll('#legend li')].map(li => [li.dataset.phase, li.textContent]);",
                vec![],
            )
            .await;
            let entries = value.as_array().cloned().unwrap_or_default();
            (!entries.is_empty()).then_some(entries)
        }
    })
    .await;
    let names: Vec<&str> = entries.iter().filter_map(|e| e[0].as_str()).collect();
    assert!(names.contains(&"foreign"), "{entries:?}");
    assert!(names.contains(&"skipped"), "{entries:?}");
    let foreign_entry = entries.iter().find(|e| e[0] == "foreign").unwrap();
    assert_eq!(
        foreign_entry[1].as_str().unwrap(),
        "out of service by someone else 0",
        "{entries:?}"
    );
}
