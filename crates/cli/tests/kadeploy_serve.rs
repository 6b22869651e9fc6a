//! `crus serve` with `backends.boot = "kadeploy"`, as a real process: the
//! file inventory, no workload manager, and boots as deployments on a fake
//! Kadeploy3 (wiremock keeping its deployments, each done with every node
//! `ok` after a few reads). A session upgrades every node, one deployment
//! per step with the step's hosts, the session's environment and the
//! authorized_keys location exactly as configured (Kadeploy fetches that
//! file itself; no local file is needed); a `[kadeploy]` that cannot work
//! stops the server at start, naming the key.
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod site_backends;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use common::Server;
use site_backends::{assert_no_members, session_body, start_failure, upgrade_all};

/// Where the Grid'5000 API serves the site's Kadeploy.
const SITE: &str = "/4.0/sites/nantes";
const DOMAIN: &str = "nantes.grid5000.fr";
const NODES: [&str; 4] = ["econome-1", "econome-2", "econome-3", "econome-4"];
const ENVIRONMENT: &str = "debian12-nfs";
/// Where Kadeploy finds the authorized_keys file: a path on the site, which
/// does not exist on the machine crus runs on.
const AUTHORIZED_KEYS: &str = "/home/crus/.ssh/authorized_keys";
/// Reads of a deployment before it is done with every node ok.
const READS_TO_FINISH: u32 = 2;

/// A Kadeploy that keeps the deployments posted to it.
#[derive(Clone, Default)]
struct FakeKadeploy {
    deployments: Arc<Mutex<Vec<FakeDeployment>>>,
}

struct FakeDeployment {
    wid: String,
    hosts: Vec<String>,
    reads: u32,
}

impl FakeDeployment {
    fn json(&self) -> Value {
        let done = self.reads >= READS_TO_FINISH;
        let nodes = if done {
            json!({"ok": self.hosts, "ko": []})
        } else {
            json!({"ok": [], "ko": [], "processing": self.hosts})
        };
        json!({
            "wid": self.wid, "user": "crus", "done": done, "error": false,
            "environment": {"id": 7, "name": ENVIRONMENT, "version": 2024012315u64, "user": "deploy"},
            "nodes": nodes,
        })
    }
}

impl Respond for FakeKadeploy {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut deployments = self.deployments.lock().unwrap();
        let Some(rest) = request.url.path().strip_prefix(SITE) else {
            return ResponseTemplate::new(404);
        };
        let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["environments"]) => ResponseTemplate::new(200).set_body_json(json!([{
                "name": ENVIRONMENT, "version": 2024012315u64, "user": "deploy",
                "visibility": "public", "os": "linux",
            }])),
            ("GET", ["deployment"]) => ResponseTemplate::new(200).set_body_json(
                deployments
                    .iter()
                    .map(FakeDeployment::json)
                    .collect::<Vec<_>>(),
            ),
            ("POST", ["deployment"]) => {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                let wid = format!("D-{}", deployments.len() + 1);
                deployments.push(FakeDeployment {
                    wid: wid.clone(),
                    hosts: serde_json::from_value(body["nodes"].clone()).unwrap(),
                    reads: 0,
                });
                ResponseTemplate::new(200).set_body_json(json!({"wid": wid}))
            }
            ("GET", ["deployment", wid]) => {
                match deployments.iter_mut().find(|found| found.wid == *wid) {
                    Some(found) => {
                        found.reads += 1;
                        ResponseTemplate::new(200).set_body_json(found.json())
                    }
                    None => ResponseTemplate::new(404),
                }
            }
            _ => ResponseTemplate::new(405),
        }
    }
}

/// A config of the file inventory (group `compute` with [`NODES`]), no
/// workload manager and Kadeploy boots, with `kadeploy` as its section.
fn write_config(dir: &Path, kadeploy: &str) -> PathBuf {
    let inventory = json!({
        "nodes": NODES.iter().map(|node| json!({"id": node})).collect::<Vec<_>>(),
        "groups": {"compute": NODES},
    });
    let inventory_path = dir.join("inventory.json");
    std::fs::write(&inventory_path, inventory.to_string()).unwrap();
    let config = format!(
        "[server]\ndb = \"{db}\"\n\n[rollout]\npoll_interval = \"200ms\"\n\n\
         [backends]\ninventory = \"file\"\nworkload_manager = \"none\"\nboot = \"kadeploy\"\n\
         power = \"kadeploy\"\n\n\
         [file]\npath = \"{inventory}\"\n\n{kadeploy}",
        db = dir.join("crus.db").display(),
        inventory = inventory_path.display(),
    );
    let path = dir.join("crus.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn kadeploy_section(base_url: &str, authorized_keys: &str) -> String {
    format!(
        "[kadeploy]\nbase_url = \"{base_url}{SITE}\"\nuser = \"crus\"\ntimeout = \"5s\"\nretries = 1\n\
         ssh_authorized_keys = \"{authorized_keys}\"\nhost_domain = \"{DOMAIN}\"\n\
         power_base_url = \"{base_url}{SITE}/kadeploy\"\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_deploys_each_step_with_kadeploy_and_upgrades_every_node() {
    let kadeploy = MockServer::start().await;
    let fake = FakeKadeploy::default();
    Mock::given(any())
        .respond_with(fake.clone())
        .mount(&kadeploy)
        .await;
    let dir = tempfile::tempdir().unwrap();
    // No local file is needed: crus only passes the location on.
    assert!(!Path::new(AUTHORIZED_KEYS).exists());
    let config = write_config(
        dir.path(),
        &kadeploy_section(&kadeploy.uri(), AUTHORIZED_KEYS),
    );
    let server = Server::start(
        &["--config", &config.display().to_string(), "--no-auth"],
        &[],
    );

    let body = session_body("compute", ENVIRONMENT, 2, json!({}));
    upgrade_all(&server.url, &body, NODES.len()).await;

    // One deployment per step of two, together every node once, each with
    // the session's environment, the authorized_keys location as it was
    // configured, and crus's user.
    let posts: Vec<Request> = kadeploy
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|request| request.method.as_str() == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "one deployment per step");
    let mut deployed = BTreeSet::new();
    for post in &posts {
        assert_eq!(post.url.path(), format!("{SITE}/deployment"));
        assert_eq!(
            post.headers
                .get("X-Remote-Ident")
                .map(|value| value.to_str().unwrap()),
            Some("crus")
        );
        let body: Value = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(body["environment"]["name"], ENVIRONMENT, "{body:#}");
        assert_eq!(body["ssh_authorized_keys"], AUTHORIZED_KEYS, "{body:#}");
        let hosts = body["nodes"].as_array().unwrap();
        assert_eq!(hosts.len(), 2, "{body:#}");
        for host in hosts {
            assert!(
                deployed.insert(host.as_str().unwrap().to_string()),
                "{host} twice"
            );
        }
    }
    let expected: BTreeSet<String> = NODES
        .iter()
        .map(|node| format!("{node}.{DOMAIN}"))
        .collect();
    assert_eq!(deployed, expected);

    // Nobody failed, nobody left upgrading, in the inventory file.
    let inventory: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("inventory.json")).unwrap())
            .unwrap();
    assert_no_members(&inventory, "crus-failed");
    assert_no_members(&inventory, "crus-upgrading");
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn a_kadeploy_configuration_that_cannot_work_stops_the_server_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // The keys themselves where their location belongs.
    let config = write_config(
        dir.path(),
        &kadeploy_section(
            "http://127.0.0.1:9",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake crus@frontend",
        ),
    );
    let stderr = start_failure(&config, &[]);
    assert!(
        stderr.contains("kadeploy.ssh_authorized_keys") && stderr.contains("white space"),
        "{stderr}"
    );

    let config = write_config(dir.path(), "");
    let stderr = start_failure(&config, &[]);
    assert!(
        stderr.contains("[kadeploy]") && stderr.contains("backends.boot"),
        "{stderr}"
    );
}
