//! `GET /session/{upgrade_id}/nodes` (a crus addition): where each node of a
//! session stands, for operators following a rollout node by node. Pages of
//! it with `?limit=&after=` (a 100,000-node session is tens of MB of JSON at
//! once); without `limit`, every node, as before.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use crus_core::session::NodeStatus;
use crus_core::store::{PageAfter, PageRead};
use serde::Deserialize;

use crate::problem::{AppError, Problem};
use crate::routes::session::parse_upgrade_id;
use crate::state::AppState;

/// The most nodes one page holds.
pub(crate) const MAX_PAGE: usize = 10_000;

/// `?limit=&after=` of `GET /session/{upgrade_id}/nodes`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct NodesPage {
    /// At most this many nodes (1 to 10,000); without it, every node.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
    /// Start after this node (the last id of the previous page); without
    /// it, at the first node.
    after: Option<String>,
    /// Where `after` is in the session, from 0 (the `Link` header gives it):
    /// the page is read without looking `after` up. A wrong one is ignored.
    after_position: Option<usize>,
}

/// `GET /session/{upgrade_id}/nodes`: every node of the session, in the order
/// they are taken, or a page of them.
#[utoipa::path(
    get,
    path = "/session/{upgrade_id}/nodes",
    tag = "controls",
    operation_id = "list_session_nodes",
    summary = "List the nodes of a session",
    description = "Every node of the session with its phase, step, boot attempts and times, in the order the session takes them. Empty until the session has read its starting group. With `limit`, a page of at most that many nodes, starting after the node `after` names; while nodes remain, the answer has a `Link` header (`rel=\"next\"`) with the next page's query (`after_position` there says where `after` is, so the page is read without looking it up).",
    params(("upgrade_id" = Uuid, Path, description = "Upgrade ID"), NodesPage),
    responses(
        (status = 200, description = "The session's nodes, or a page of them", body = Vec<NodeStatus>, content_type = "application/json",
            headers(("Link" = String, description = "The next page, `<...?limit=N&after=ID&after_position=P>; rel=\"next\"`, while nodes remain"))),
        (status = 400, description = "`limit` is not 1 to 10,000, or `after` is not a node of the session", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No session has this id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_session_nodes(
    State(state): State<AppState>,
    upgrade_id: Result<Path<String>, PathRejection>,
    page: Result<Query<NodesPage>, QueryRejection>,
) -> Result<Response, AppError> {
    let upgrade_id = parse_upgrade_id(upgrade_id)?;
    let Query(page) = page.map_err(|rejection| {
        AppError::BadRequest(format!(
            "the query is not `limit` (1 to {MAX_PAGE}) and `after` (a node id): {rejection}"
        ))
    })?;
    if page
        .limit
        .is_some_and(|limit| limit == 0 || limit > MAX_PAGE)
    {
        return Err(AppError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let after = page.after.as_deref().map(|id| PageAfter {
        id,
        position: page.after_position,
    });
    // The store reads the page's nodes alone, not the whole session.
    let read = state
        .controller()
        .store()
        .get_node_page(upgrade_id, after, page.limit.unwrap_or(usize::MAX))
        .await?
        .ok_or(AppError::SessionNotFound)?;
    let found = match read {
        PageRead::Page(found) => found,
        PageRead::UnknownAfter => {
            return Err(AppError::BadRequest(format!(
                "after: {} is not a node of session {upgrade_id}",
                page.after.as_deref().unwrap_or_default()
            )));
        }
    };
    let listed: Vec<NodeStatus> = found.nodes.iter().map(NodeStatus::from).collect();
    let mut response = Json(listed).into_response();
    if let (Some(limit), Some(last)) = (page.limit, found.nodes.last())
        && found.more
    {
        let next = format!(
            "<?limit={limit}&after={}&after_position={}>; rel=\"next\"",
            utf8_percent_encode(last.id.as_str()),
            found.start + found.nodes.len() - 1
        );
        if let Ok(value) = axum::http::HeaderValue::from_str(&next) {
            response.headers_mut().insert(LINK, value);
        }
    }
    Ok(response)
}

/// `text` with every byte outside unreserved URL characters percent-encoded.
fn utf8_percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}
