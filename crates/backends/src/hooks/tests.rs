//! The hook runner against real processes and a wiremock server.

use std::time::{Duration, Instant};

use crus_core::node::NodeId;
use crus_core::ports::{HookRequest, HookRunner};
use crus_core::rollout::{
    DEFAULT_HOOK_TIMEOUT, Hook, HookHttp, HookOnFailure, HookPoint, HookScope,
};
use uuid::Uuid;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

fn runner(allow_commands: bool) -> SiteHookRunner {
    SiteHookRunner::new(HookRunnerConfig {
        allow_commands,
        allowed_http_hosts: vec!["127.0.0.1".into()],
    })
    .unwrap()
}

fn request(per: HookScope, command: Option<Vec<String>>, http: Option<HookHttp>) -> HookRequest {
    HookRequest {
        hook: Hook {
            at: HookPoint::PreBoot,
            per,
            command,
            http,
            timeout: DEFAULT_HOOK_TIMEOUT,
            idempotent: false,
            on_failure: HookOnFailure::FailNode,
        },
        session: Uuid::from_u128(7),
        template: "compute-image".into(),
        step: 2,
        nodes: vec![NodeId::from("x1000c0s0b0n0"), NodeId::from("x1000c0s0b0n1")],
    }
}

fn sh(script: &str) -> Option<Vec<String>> {
    Some(vec!["/bin/sh".into(), "-c".into(), script.into()])
}

#[tokio::test]
async fn a_command_gets_the_hook_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let script = format!(
        "echo \"$CRUS_HOOK|$CRUS_SESSION|$CRUS_TEMPLATE|$CRUS_STEP|${{CRUS_NODE-unset}}|$CRUS_NODES\" > {}",
        out.display()
    );
    let mut one = request(HookScope::Node, sh(&script), None);
    one.nodes.truncate(1);
    assert_eq!(runner(true).run(&one).await.unwrap(), None);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        format!(
            "pre_boot|{}|compute-image|2|x1000c0s0b0n0|x1000c0s0b0n0",
            Uuid::from_u128(7)
        )
    );
    let step = request(HookScope::Step, sh(&script), None);
    assert_eq!(runner(true).run(&step).await.unwrap(), None);
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .ends_with("|unset|x1000c0s0b0n0 x1000c0s0b0n1\n")
    );
}

#[tokio::test]
async fn a_failing_command_says_why() {
    let failing = request(
        HookScope::Node,
        sh("echo flashing; echo 'no BMC' >&2; exit 3"),
        None,
    );
    let why = runner(true).run(&failing).await.unwrap().unwrap();
    assert!(why.ends_with("exited with status 3: no BMC"), "{why}");
    let missing = request(
        HookScope::Node,
        Some(vec!["/nonexistent/hook".into()]),
        None,
    );
    let why = runner(true).run(&missing).await.unwrap().unwrap();
    assert!(why.contains("could not be started"), "{why}");
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("late");
    // The child sleeps in the background and would write the marker later.
    let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
    let mut slow = request(HookScope::Node, sh(&script), None);
    slow.hook.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let why = runner(true).run(&slow).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(why.contains("did not finish within 300ms"), "{why}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!marker.exists(), "the hook's child outlived it");
}

#[tokio::test]
async fn commands_run_only_where_the_site_allows_them() {
    let hook = request(HookScope::Node, sh("true"), None);
    let refusal = runner(false).refuses(&hook.hook).unwrap();
    assert!(refusal.contains("allow_commands = true"), "{refusal}");
    assert!(refusal.contains("[hooks]"), "{refusal}");
    let failure = runner(false).run(&hook).await.unwrap().unwrap();
    assert!(failure.contains("allow_commands = true"), "{failure}");
    assert_eq!(runner(true).refuses(&hook.hook), None);
}

#[tokio::test]
async fn an_http_hook_posts_the_body_and_a_refusal_fails_it() {
    let server = MockServer::start().await;
    let body = serde_json::json!({
        "hook": "pre_boot", "per": "step", "session": Uuid::from_u128(7),
        "template": "compute-image", "step": 2,
        "nodes": ["x1000c0s0b0n0", "x1000c0s0b0n1"],
    });
    Mock::given(method("POST"))
        .and(path("/ok"))
        .and(body_json(&body))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/refuse"))
        .respond_with(ResponseTemplate::new(409).set_body_string("chassis busy"))
        .mount(&server)
        .await;
    let http = |route: &str| HookHttp {
        url: format!("{}/{route}", server.uri()),
        method: "POST".into(),
    };
    let ok = request(HookScope::Step, None, Some(http("ok")));
    // No command: allowed without allow_commands.
    assert_eq!(runner(false).refuses(&ok.hook), None);
    assert_eq!(runner(false).run(&ok).await.unwrap(), None);
    // A host the site did not list is refused at creation and never called.
    let elsewhere = request(
        HookScope::Step,
        None,
        Some(HookHttp {
            url: "http://169.254.169.254/latest".into(),
            method: "POST".into(),
        }),
    );
    let refusal = runner(false).refuses(&elsewhere.hook).unwrap();
    assert!(refusal.contains("allowed_http_hosts"), "{refusal}");
    assert!(runner(false).run(&elsewhere).await.unwrap().is_some());
    let refused = request(HookScope::Step, None, Some(http("refuse")));
    let why = runner(false).run(&refused).await.unwrap().unwrap();
    assert!(
        why.contains("409") && why.ends_with("chassis busy"),
        "{why}"
    );
}
