//! The dashboard at 10,000 nodes (issue 25), in a real headless Chromium on
//! the page `crus serve --sim --sim-nodes 10000` ships: the session page
//! draws every node of a running 10,000-node session, follows its events
//! until the end, and shows the same counts as the server when it is done.
//!
//! It prints what the page's Performance API measured (time to the first
//! drawing, the longest frame spent applying events, how many events each
//! frame applied, and how long after the server finished the page showed
//! it); BENCHMARKS.md records those figures. No figure is asserted: speed
//! is measured, not tested (timings depend on the machine).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use browser::*;
use common::*;

const TOKEN: &str = "dashboard-scale-token-0123456789";

const NODES: usize = 10_000;
const STEP: u32 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_node_session_is_drawn_and_followed_to_its_end() {
    tokio::time::timeout(Duration::from_secs(170), run())
        .await
        .expect("the browser test finished within its bound");
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = NODES.to_string();
    // The server logs every node's every move: 60,000 lines, kept out of
    // the test's output.
    let server = Server::start_logged(
        &[
            "--sim",
            "--sim-nodes",
            &nodes,
            "--sim-trace",
            "none",
            // A 4-minute boot takes two seconds: ten steps in well under a minute.
            "--sim-speed",
            "120",
            "--db",
            &path_in(dir.path(), "crus.db"),
            "--token",
            TOKEN,
        ],
        &[],
        &dir.path().join("server.log"),
    );
    let http = client();
    let id = create_session(&http, &server.url, Some(TOKEN), &session_body(STEP)).await;

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    open_session_page(&driver, &browser, &server.url, TOKEN, &id).await;

    // Every node drawn: the page's own mark, from the page's start. A page
    // that could not read the session says so in `#session-error` at once;
    // either way a failure shows what the page and the server last said.
    let log = dir.path().join("server.log");
    let drawn = until_or_explain(
        "the session's nodes drawn",
        || {
            let browser = &browser;
            async move {
                let seen = eval(
                    browser,
                    "const m = performance.getEntriesByName('crus-session-drawn')[0]; \
                     if (m) return {drawn: [m.startTime, m.detail.nodes]}; \
                     const e = document.getElementById('session-error').textContent; \
                     return e ? {error: e} : null;",
                    vec![],
                )
                .await;
                if let Some(pair) = seen["drawn"].as_array() {
                    return Some(Ok((
                        pair[0].as_f64().unwrap(),
                        pair[1].as_u64().unwrap() as usize,
                    )));
                }
                seen["error"].as_str().map(|error| Err(error.to_string()))
            }
        },
        async || what_page_and_server_said(&browser, &log).await,
    )
    .await
    .unwrap_or_else(|error| {
        panic!("the page could not read the session: {error}");
    });
    assert_eq!(drawn.1, NODES, "the page drew every node of the session");
    let cells = legend(&browser).await.values().sum::<usize>();
    assert_eq!(cells, NODES, "the legend counts every node");

    // The server finishes; the page shows it soon after.
    let done = wait_for(
        &http,
        &server.url,
        Some(TOKEN),
        &id,
        Duration::from_secs(120),
        |status| status["completed"] == true,
    )
    .await;
    assert_eq!(done["state"], "READY", "{done:#}");
    let server_done = Instant::now();
    let counts = until_or_explain(
        "every node done on the page",
        || {
            let browser = &browser;
            async move {
                let counts = legend(browser).await;
                (counts.get("done").copied() == Some(NODES)).then_some(counts)
            }
        },
        async || what_page_and_server_said(&browser, &log).await,
    )
    .await;
    let page_lag = server_done.elapsed();
    assert_eq!(counts.values().sum::<usize>(), NODES, "{counts:?}");

    let keeping_up = eval(&browser, "return window.crusDashboard;", vec![]).await;
    let events = keeping_up["events"].as_u64().unwrap();
    // Each node moves at least pending -> draining -> ... -> done while the
    // page watches, unless it was done before the page loaded.
    assert!(events > 0, "the page applied no event: {keeping_up}");
    let heap = eval(
        &browser,
        "return performance.memory ? performance.memory.usedJSHeapSize : null;",
        vec![],
    )
    .await;
    println!(
        "dashboard at {NODES} nodes: drawn {:.0} ms after the page started; {} events in {} frames, \
         at most {} in one frame; longest frame applying events {:.1} ms; the page showed the \
         end {} ms after the server reported it (polling every 100 ms); JS heap {} MB",
        drawn.0,
        events,
        keeping_up["frames"],
        keeping_up["largestBatch"],
        keeping_up["longestFrameMs"].as_f64().unwrap_or_default(),
        page_lag.as_millis(),
        heap.as_f64()
            .map_or("unknown".to_string(), |bytes| format!("{:.0}", bytes / 1e6)),
    );
    screenshot(&browser, "scale-10000-done").await;
    let errors: Vec<Value> = driver
        .console(&browser)
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

/// What the page and the server last said, for a wait that failed: the
/// page's connection line, its legend, what it applied, its finished
/// requests with their timings and the end of the server's log.
async fn what_page_and_server_said(browser: &fantoccini::Client, log: &std::path::Path) -> String {
    let connection = text_of(browser, "#connection").await;
    let counts = legend(browser).await;
    let keeping_up = eval(browser, "return window.crusDashboard;", vec![]).await;
    // The page's finished requests (ms from its start); one still waiting
    // for its answer is not listed.
    let requests = eval(
        browser,
        "return performance.getEntriesByType('resource').map(r => \
             [r.name, Math.round(r.startTime), Math.round(r.responseStart), Math.round(r.responseEnd)]);",
        vec![],
    )
    .await;
    let said = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = said.lines().rev().take(40).collect();
    format!(
        "the page's connection line {connection:?}, its legend {counts:?}, what it applied {keeping_up}, \
         its finished requests [url, start, first byte, end] {requests}; the server's last log lines:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    )
}
