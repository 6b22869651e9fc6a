//! crus's additions to the session resource: pause and resume, the nodes of
//! a session, and the server-sent event streams.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::{PREFIXES, TOKEN, TestServer, session_body};

/// Creates a session over the whole sim and returns its id.
async fn create(server: &TestServer, prefix: &str, body: &Value) -> String {
    let created = server.post_json(&format!("{prefix}/session"), body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.json()["upgrade_id"].as_str().unwrap().to_string()
}

/// `GET path` with the test token and `Last-Event-ID` if given, unread.
async fn open_stream(
    server: &TestServer,
    path: &str,
    last_event_id: Option<&str>,
) -> axum::response::Response {
    use tower::ServiceExt;
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    server
        .app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

/// One SSE message: its fields (`id`, `event`, `data`), comments left out.
#[derive(Debug, Default, Clone)]
struct Message {
    id: Option<u64>,
    event: String,
    data: String,
}

/// The messages of a whole stream's text.
fn parse_messages(text: &str) -> Vec<Message> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut message = Message::default();
            let mut any = false;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    message.id = Some(value.trim().parse().unwrap());
                    any = true;
                } else if let Some(value) = line.strip_prefix("event:") {
                    message.event = value.trim().to_string();
                    any = true;
                } else if let Some(value) = line.strip_prefix("data:") {
                    message.data.push_str(value.trim_start());
                    any = true;
                }
            }
            any.then_some(message)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn pause_and_resume_answer_the_status_with_its_phase() {
    for prefix in PREFIXES {
        let server = TestServer::new();
        let id = create(&server, prefix, &session_body("compute", 2)).await;

        let paused = server
            .call(Method::POST, &format!("{prefix}/session/{id}/pause"))
            .await;
        assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
        assert_eq!(paused.content_type(), "application/json");
        assert_eq!(paused.json()["phase"], "paused");
        assert_eq!(paused.json()["upgrade_id"], id.as_str());
        // The controller takes it up; nothing more is taken while paused.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let status = server.get(&format!("{prefix}/session/{id}")).await.json();
        assert_eq!(status["phase"], "paused", "{status}");
        assert_eq!(status["completed"], false, "{status}");

        let resumed = server
            .post_json(
                &format!("{prefix}/session/{id}/resume"),
                &json!({"max_failures": "25%"}),
            )
            .await;
        assert_eq!(resumed.status, StatusCode::OK, "{:?}", resumed.body);
        let resumed = resumed.json();
        assert_eq!(resumed["phase"], "running", "{resumed}");
        assert_eq!(resumed["policy"]["max_failures"], "25%", "{resumed}");

        tokio::time::sleep(Duration::from_secs(3600)).await;
        let status = server.get(&format!("{prefix}/session/{id}")).await.json();
        assert_eq!(status["state"], "READY", "{status}");

        // Finished: neither can be asked any more.
        for action in ["pause", "resume"] {
            let refused = server
                .call(Method::POST, &format!("{prefix}/session/{id}/{action}"))
                .await;
            let problem = refused.problem(StatusCode::CONFLICT);
            assert!(
                problem["detail"].as_str().unwrap().contains("finished"),
                "{problem}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_being_deleted_refuses_pause_with_409() {
    let server = TestServer::new();
    let id = create(&server, "", &session_body("compute", 2)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        server.delete(&format!("/session/{id}")).await.status,
        StatusCode::OK
    );
    let problem = server
        .call(Method::POST, &format!("/session/{id}/pause"))
        .await
        .problem(StatusCode::CONFLICT);
    assert!(
        problem["detail"].as_str().unwrap().contains("deleted"),
        "{problem}"
    );
}

#[tokio::test(start_paused = true)]
async fn resume_bodies_are_optional_and_checked() {
    let server = TestServer::new();
    let id = create(&server, "", &session_body("compute", 2)).await;
    let path = format!("/session/{id}/resume");
    // Empty body, with or without a content type.
    for content_type in [None, Some("application/json")] {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = server.send(request.body(Body::empty()).unwrap()).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    }
    let invalid = server
        .post_json(&path, &json!({"max_failures": "lots", "colour": "blue"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid["errors"]["max_failures"].is_array(), "{invalid}");
    assert!(invalid["errors"]["colour"].is_array(), "{invalid}");
    let not_json = server
        .send(
            Request::builder()
                .method(Method::POST)
                .uri(&path)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{nope"))
                .unwrap(),
        )
        .await;
    not_json.problem(StatusCode::BAD_REQUEST);
}

#[tokio::test(start_paused = true)]
async fn unknown_sessions_are_404_on_every_new_route() {
    let server = TestServer::new();
    for prefix in PREFIXES {
        for id in ["c926acf6-b5c6-411e-ba6c-ea0448cab2ee", "not-a-uuid"] {
            for (method, action) in [
                (Method::POST, "pause"),
                (Method::POST, "resume"),
                (Method::GET, "nodes"),
                (Method::GET, "events"),
            ] {
                server
                    .call(method, &format!("{prefix}/session/{id}/{action}"))
                    .await
                    .problem(StatusCode::NOT_FOUND);
            }
        }
    }
    // And they need the token like the rest.
    let response = server
        .send(
            Request::builder()
                .uri("/events")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    response.problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test(start_paused = true)]
async fn nodes_list_each_node_with_its_phase_step_and_times() {
    for prefix in PREFIXES {
        let server = TestServer::new();
        let id = create(&server, prefix, &session_body("compute", 3)).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let response = server.get(&format!("{prefix}/session/{id}/nodes")).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        assert_eq!(response.content_type(), "application/json");
        let nodes = response.json();
        let nodes = nodes.as_array().unwrap();
        assert_eq!(nodes.len(), 8);
        let mut ids: Vec<&str> = nodes
            .iter()
            .map(|node| node["id"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        let mut expected: Vec<String> = server
            .sim
            .node_ids()
            .iter()
            .map(ToString::to_string)
            .collect();
        expected.sort_unstable();
        assert_eq!(ids, expected);
        for node in nodes {
            assert_eq!(node["phase"], "done", "{node}");
            assert_eq!(node["attempts"], 1, "{node}");
            assert_eq!(node["forced"], false, "{node}");
            assert!(node["reason"].is_null(), "{node}");
            assert!(node["step"].as_u64().unwrap() <= 2, "{node}");
            assert!(node["since"].is_string(), "{node}");
            assert!(node["taken_at"].is_string(), "{node}");
            assert!(node["finished_at"].is_string(), "{node}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_an_administrator_holds_shows_their_reason_and_what_crus_did() {
    let server = TestServer::new();
    let held = server.sim.node_ids()[1].clone();
    server
        .sim
        .admin_drain(&held, "bad DIMM  [ticket 42]")
        .await
        .unwrap();
    let id = create(&server, "", &session_body("compute", 3)).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let response = server.get(&format!("/session/{id}/nodes")).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let nodes = response.json();
    let node = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["id"] == held.as_str())
        .unwrap()
        .clone();
    // Upgraded and put back as the administrator left it (the default
    // `upgrade_and_restore`), their reason byte for byte.
    assert_eq!(node["phase"], "done", "{node}");
    assert_eq!(node["attempts"], 1, "{node}");
    assert_eq!(node["foreign_reason"], "bad DIMM  [ticket 42]", "{node}");
    assert_eq!(
        server.sim.workload_view(&held).unwrap(),
        (
            crus_core::ports::WorkloadState::Drained,
            Some("bad DIMM  [ticket 42]".to_string())
        )
    );
    for other in nodes.as_array().unwrap() {
        if other["id"] != held.as_str() {
            assert!(other["foreign_reason"].is_null(), "{other}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn nodes_come_in_pages_that_link_to_the_next_and_add_up_to_every_node() {
    let server = TestServer::new();
    let id = create(&server, "", &session_body("compute", 3)).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let every = server.get(&format!("/session/{id}/nodes")).await.json();
    let every: Vec<String> = every
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(every.len(), 8);

    // Pages of 3 follow their Link headers: 3, 3, then the last 2 without a link.
    let mut paged = Vec::new();
    let mut query = "?limit=3".to_string();
    let mut pages = 0;
    loop {
        let response = server.get(&format!("/session/{id}/nodes{query}")).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        pages += 1;
        let page = response.json();
        let page = page.as_array().unwrap();
        assert!(page.len() <= 3);
        paged.extend(
            page.iter()
                .map(|node| node["id"].as_str().unwrap().to_string()),
        );
        let Some(link) = response.headers.get("link") else {
            break;
        };
        let link = link.to_str().unwrap();
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        // The link says where the page starts, so the store reads it alone.
        assert!(
            link.contains(&format!("&after_position={}", paged.len() - 1)),
            "{link}"
        );
        query = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string();
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, every, "the pages add up to every node, in order");

    // Bad pages say why and change nothing.
    for query in [
        "?limit=0",
        "?limit=10001",
        "?limit=many",
        "?limit=2&after=no-such-node",
    ] {
        let response = server.get(&format!("/session/{id}/nodes{query}")).await;
        response.problem(StatusCode::BAD_REQUEST);
    }
    // A wrong position is only a hint: the page starts after the node named.
    let response = server
        .get(&format!(
            "/session/{id}/nodes?limit=2&after={}&after_position=6",
            every[1]
        ))
        .await;
    let page: Vec<String> = response
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(page, every[2..4]);
    // Past the last node: an empty page.
    let last = every.last().unwrap();
    let response = server
        .get(&format!("/session/{id}/nodes?limit=5&after={last}"))
        .await;
    assert_eq!(response.json(), serde_json::json!([]));
    assert!(response.headers.get("link").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_session_stream_sends_its_events_and_ends_when_it_is_ready() {
    let server = TestServer::new();
    let id = create(&server, "", &session_body("compute", 3)).await;
    // From the first event kept, so the events the session already told are in.
    let response = open_stream(&server, &format!("/session/{id}/events"), Some("0")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
    // The stream ends by itself once the session is READY (time runs on meanwhile).
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let messages = parse_messages(std::str::from_utf8(&body).unwrap());
    let kinds: Vec<&str> = messages
        .iter()
        .map(|message| message.event.as_str())
        .collect();
    assert!(kinds.contains(&"step_started"), "{kinds:?}");
    assert!(kinds.contains(&"node_phase"), "{kinds:?}");
    assert!(!kinds.contains(&"gap"), "{kinds:?}");
    let last = messages.last().unwrap();
    assert_eq!(last.event, "state");
    let data: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(data["state"], "READY");
    assert_eq!(data["upgrade_id"], id.as_str());
    let ids: Vec<u64> = messages.iter().map(|message| message.id.unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    for message in &messages {
        let data: Value = serde_json::from_str(&message.data).unwrap();
        assert_eq!(data["type"], message.event.as_str());
    }

    // Reconnecting after an event gets only the later ones.
    let middle = ids[ids.len() / 2];
    let response = open_stream(
        &server,
        &format!("/session/{id}/events"),
        Some(&middle.to_string()),
    )
    .await;
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let again = parse_messages(std::str::from_utf8(&body).unwrap());
    let later: Vec<u64> = again.iter().map(|message| message.id.unwrap()).collect();
    assert_eq!(
        later,
        ids.iter()
            .copied()
            .filter(|id| *id > middle)
            .collect::<Vec<_>>()
    );

    // An id the log never gave (from before a restart) is a gap.
    let response = open_stream(&server, &format!("/session/{id}/events"), Some("999999")).await;
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let messages = parse_messages(std::str::from_utf8(&body).unwrap());
    assert_eq!(
        messages.first().map(|message| message.event.as_str()),
        Some("gap")
    );
    assert_eq!(messages.first().and_then(|message| message.id), None);
}

#[tokio::test(start_paused = true)]
async fn the_stream_of_every_session_sends_events_as_they_happen() {
    let server = TestServer::new();
    let response = open_stream(&server, "/apis/crus/events", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let id = create(&server, "", &session_body("compute", 4)).await;
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let first = loop {
        let chunk = body.next().await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if let Some(message) = parse_messages(&text)
            .into_iter()
            .find(|message| message.id.is_some())
        {
            break message;
        }
    };
    assert_eq!(first.id, Some(1));
    let data: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(data["upgrade_id"], id.as_str());
    assert_eq!(data["type"], first.event.as_str());
}

#[tokio::test(start_paused = true)]
async fn a_deleted_session_ends_its_stream() {
    let server = TestServer::new();
    let id = create(&server, "", &session_body("compute", 2)).await;
    let response = open_stream(&server, &format!("/session/{id}/events"), None).await;
    assert_eq!(
        server.delete(&format!("/session/{id}")).await.status,
        StatusCode::OK
    );
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let messages = parse_messages(std::str::from_utf8(&body).unwrap());
    let last = messages.last().unwrap();
    assert!(
        last.event == "deleted" || last.event == "state",
        "{messages:?}"
    );
}

/// `count` progress messages of one session, as a controller pass publishes them.
fn burst(count: usize) -> Vec<crus_core::rollout::RolloutEvent> {
    let upgrade_id = uuid::Uuid::new_v4();
    (0..count)
        .map(|n| crus_core::rollout::RolloutEvent {
            upgrade_id,
            at: crus_core::Timestamp::from_secs(1_800_000_000),
            kind: crus_core::rollout::EventKind::Message {
                text: format!("message {n}"),
            },
        })
        .collect()
}

#[tokio::test]
async fn events_published_together_leave_as_one_chunk() {
    let server = TestServer::new();
    let response = open_stream(&server, "/events", None).await;
    // Published in one go, as the controller publishes a pass's events
    // (a step of 500 nodes moving at once is 500 events).
    server.state.controller().events().publish(burst(500));
    let mut body = response.into_body().into_data_stream();
    let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("the stream sends the burst")
        .unwrap()
        .unwrap();
    let messages = parse_messages(std::str::from_utf8(&chunk).unwrap());
    assert_eq!(messages.len(), 500, "one chunk holds the whole burst");
    let ids: Vec<u64> = messages.iter().map(|message| message.id.unwrap()).collect();
    assert_eq!(ids, (1..=500).collect::<Vec<u64>>());
    assert!(messages.iter().all(|message| message.event == "message"));
    assert!(
        std::str::from_utf8(&chunk)
            .unwrap()
            .starts_with("id: 1\nevent: message\ndata: {"),
        "the wire format is id, event, data"
    );
}

#[tokio::test]
async fn a_burst_larger_than_a_chunk_arrives_whole_in_several() {
    let server = TestServer::new();
    let response = open_stream(&server, "/events", None).await;
    // About 130 bytes a message: more than 256 KiB in all.
    server.state.controller().events().publish(burst(3_000));
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let mut chunks = 0;
    while parse_messages(&text).len() < 3_000 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("the stream sends the rest of the burst")
            .unwrap()
            .unwrap();
        assert!(chunk.len() <= 256 * 1024, "{} bytes", chunk.len());
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        chunks += 1;
    }
    assert!(chunks > 1, "{chunks} chunk(s)");
    let ids: Vec<u64> = parse_messages(&text)
        .iter()
        .map(|message| message.id.unwrap())
        .collect();
    assert_eq!(ids, (1..=3_000).collect::<Vec<u64>>());
}

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_sends_a_keep_alive_comment() {
    let server = TestServer::new();
    let response = open_stream(&server, "/events", None).await;
    let mut body = response.into_body().into_data_stream();
    // Nothing happens: after 15 s (paused time runs on) a comment comes.
    let chunk = body.next().await.unwrap().unwrap();
    assert_eq!(&chunk[..], b":\n\n");
    assert!(parse_messages(std::str::from_utf8(&chunk).unwrap()).is_empty());
}
