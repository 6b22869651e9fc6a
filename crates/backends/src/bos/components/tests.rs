//! Tests of the paged component listing against wiremock fakes of BOS that
//! page as documented, that predate paging, and that page wrongly.

use std::time::Duration;

use crus_core::error::Error;
use crus_core::node::NodeId;
use crus_core::ports::{BootHandle, BootOrchestrator, NodeBootState};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::{Paging, session_components};
use crate::bos::BosOrchestrator;
use crate::service::{ServiceClient, ServiceConfig};

fn config(server: &MockServer) -> ServiceConfig {
    let mut config = ServiceConfig::new(server.uri());
    config.retries = 0;
    config.timeout = Duration::from_secs(5);
    config
}

fn client(server: &MockServer) -> ServiceClient {
    ServiceClient::new("bos", &config(server)).unwrap()
}

fn paging(page_size: usize) -> Paging {
    Paging {
        page_size,
        max_pages: 100,
    }
}

/// `count` node ids that sort by id as BOS sorts them (lexically).
fn node_ids(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("x1000c0s{n:02}b0n0")).collect()
}

fn component(id: &str) -> Value {
    json!({"id": id, "enabled": false, "error": "", "session": "s",
           "status": {"phase": "", "status": "stable", "status_override": ""}})
}

fn query(request: &Request, key: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.into_owned())
}

/// How a fake BOS treats `page_size` and `start_after_id`.
#[derive(Clone, Copy)]
enum Pages {
    /// As documented: at most `page_size`, after `start_after_id`.
    Documented,
    /// As BOS before 2.32: both ignored, the whole list every time.
    Ignored,
    /// `page_size` honoured, `start_after_id` ignored: always the first page.
    CursorIgnored,
    /// Always a full page of ids never sent before.
    Endless,
}

struct FakeBos {
    ids: Vec<String>,
    pages: Pages,
}

impl Respond for FakeBos {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let page_size = query(request, "page_size")
            .and_then(|size| size.parse::<usize>().ok())
            .filter(|size| *size > 0)
            .unwrap_or(usize::MAX);
        let after = query(request, "start_after_id");
        let ids: Vec<String> = match self.pages {
            Pages::Documented => self
                .ids
                .iter()
                .filter(|id| after.as_ref().is_none_or(|after| *id > after))
                .take(page_size)
                .cloned()
                .collect(),
            Pages::Ignored => self.ids.clone(),
            Pages::CursorIgnored => self.ids.iter().take(page_size).cloned().collect(),
            Pages::Endless => {
                let start = after
                    .and_then(|id| id.strip_prefix("n").and_then(|n| n.parse::<usize>().ok()))
                    .map_or(0, |n| n + 1);
                (start..start + page_size.min(1000))
                    .map(|n| format!("n{n:09}"))
                    .collect()
            }
        };
        let body: Vec<Value> = ids.iter().map(|id| component(id)).collect();
        ResponseTemplate::new(200).set_body_json(body)
    }
}

async fn fake_bos(ids: Vec<String>, pages: Pages) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/components"))
        .and(query_param("session", "s"))
        .respond_with(FakeBos { ids, pages })
        .mount(&server)
        .await;
    server
}

async fn listed(server: &MockServer, page_size: usize) -> Result<Vec<String>, Error> {
    session_components(&client(server), "s", paging(page_size))
        .await
        .map(|components| {
            components
                .into_iter()
                .map(|component| component.id)
                .collect()
        })
}

/// `(page_size, start_after_id)` of each request the fake received.
async fn requests(server: &MockServer) -> Vec<(Option<String>, Option<String>)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|request| {
            (
                query(request, "page_size"),
                query(request, "start_after_id"),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_page_is_read_each_after_the_last_id_of_the_one_before() {
    let ids = node_ids(5);
    let server = fake_bos(ids.clone(), Pages::Documented).await;
    assert_eq!(listed(&server, 2).await.unwrap(), ids);
    let two = Some("2".to_string());
    assert_eq!(
        requests(&server).await,
        vec![
            (two.clone(), None),
            (two.clone(), Some(ids[1].clone())),
            (two, Some(ids[3].clone())),
        ]
    );
}

#[tokio::test]
async fn a_last_page_that_is_full_is_followed_by_an_empty_one() {
    let ids = node_ids(4);
    let server = fake_bos(ids.clone(), Pages::Documented).await;
    assert_eq!(listed(&server, 2).await.unwrap(), ids);
    assert_eq!(requests(&server).await.len(), 3);

    let server = fake_bos(Vec::new(), Pages::Documented).await;
    assert_eq!(listed(&server, 2).await.unwrap(), Vec::<String>::new());
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_bos_without_paging_is_read_whole_from_its_first_answer() {
    // Longer than a page: it sent everything at once.
    let ids = node_ids(5);
    let server = fake_bos(ids.clone(), Pages::Ignored).await;
    assert_eq!(listed(&server, 2).await.unwrap(), ids);
    assert_eq!(requests(&server).await.len(), 1);

    // Exactly a page: the next page repeats it, and so does the probe for
    // one more component.
    let ids = node_ids(2);
    let server = fake_bos(ids.clone(), Pages::Ignored).await;
    assert_eq!(listed(&server, 2).await.unwrap(), ids);
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[2], (Some("3".to_string()), None));
}

#[tokio::test]
async fn a_bos_that_repeats_its_first_page_is_an_error_naming_the_id() {
    let ids = node_ids(5);
    let server = fake_bos(ids.clone(), Pages::CursorIgnored).await;
    let error = listed(&server, 2).await.unwrap_err();
    assert!(
        matches!(error, Error::Other { backend: "bos", .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(
        message.contains("repeats component") && message.contains(&ids[0]),
        "{message}"
    );
    assert!(message.contains("start_after_id"), "{message}");
}

#[tokio::test]
async fn a_bos_that_never_stops_paging_is_stopped() {
    let server = fake_bos(Vec::new(), Pages::Endless).await;
    let error = session_components(
        &client(&server),
        "s",
        Paging {
            page_size: 3,
            max_pages: 4,
        },
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(error, Error::Other { backend: "bos", .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("after 4 pages of 3"), "{error}");
    assert_eq!(requests(&server).await.len(), 4);
}

#[tokio::test]
async fn boot_status_reports_nodes_from_every_page() {
    let ids = node_ids(5);
    let server = fake_bos(ids.clone(), Pages::Documented).await;
    Mock::given(method("GET"))
        .and(path("/v2/sessions/s"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"name": "s", "limit": ids.join(","), "status": {"status": "complete"}}),
        ))
        .mount(&server)
        .await;
    let mut bos = BosOrchestrator::new(&config(&server)).unwrap();
    bos.paging = paging(2);
    let reported = bos
        .boot_status(&BootHandle {
            key: "k".into(),
            id: "s".into(),
        })
        .await
        .unwrap();
    let expected: Vec<(NodeId, NodeBootState)> = ids
        .iter()
        .map(|id| (NodeId::from(id.as_str()), NodeBootState::Ok))
        .collect();
    let reported: Vec<(NodeId, NodeBootState)> = reported
        .into_iter()
        .map(|status| (status.node, status.state))
        .collect();
    assert_eq!(reported, expected);
}
