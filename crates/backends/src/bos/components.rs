//! The BOS v2 components of one session, read page by page.
//!
//! `GET /v2/components` answers a JSON array of components (the BOS API
//! document, `/v2/components` `get`: response `V2ComponentArray`). Since BOS
//! 2.32 it takes two paging parameters: `page_size` ("Maximum number of
//! Components to include in response … 0 means no limit") and
//! `start_after_id` ("Begin listing Components after the specified ID").
//! BOS sorts components by id, so the next page starts after the last id of
//! the page before; a page shorter than `page_size` is the last one.
//!
//! Older BOS versions do not know either parameter and ignore them: their
//! first answer is the whole list. Such an answer is recognised because it
//! is longer than `page_size`, or, when it is exactly `page_size` long,
//! because the second request returns the very same page and a request for
//! one more component does too.

use std::collections::HashSet;

use crus_core::error::{Error, Result};
use serde::Deserialize;

use super::BACKEND;
use crate::service::ServiceClient;

/// The parts of a BOS v2 component crus reads.
#[derive(Debug, Deserialize)]
pub(super) struct Component {
    pub(super) id: String,
    #[serde(default)]
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) error: String,
    #[serde(default)]
    pub(super) status: ComponentStatus,
}

/// A component's `status`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ComponentStatus {
    #[serde(default)]
    pub(super) phase: String,
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) status_override: String,
}

/// How many components one request asks for, and how many requests a
/// listing may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Paging {
    /// `page_size` of each request. Large enough that a step of a rollout
    /// usually fits in one page, small enough to keep each answer (a few
    /// hundred bytes per component) well below a megabyte.
    pub(super) page_size: usize,
    /// Full pages after which the listing gives up: a BOS that keeps sending
    /// new ids forever must not hang a rollout. 10 000 pages of 1 000 is far
    /// more components than any system has.
    pub(super) max_pages: usize,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            page_size: 1000,
            max_pages: 10_000,
        }
    }
}

/// Why a listing was stopped; both mean BOS is not paging as documented, so
/// asking again would meet the same answer.
#[derive(Debug, thiserror::Error)]
enum PagingError {
    #[error(
        "GET /v2/components?session={session}: page {page} (start_after_id={cursor}) repeats component {id} of an earlier page; BOS is not paging by start_after_id as its API documents, so the listing stopped"
    )]
    Repeated {
        session: String,
        page: usize,
        cursor: String,
        id: String,
    },
    #[error(
        "GET /v2/components?session={session}: still more components after {pages} pages of {page_size}; the listing stopped"
    )]
    TooManyPages {
        session: String,
        pages: usize,
        page_size: usize,
    },
}

impl From<PagingError> for Error {
    fn from(error: PagingError) -> Self {
        Error::Other {
            backend: BACKEND,
            source: Box::new(error),
        }
    }
}

/// Every component whose `session` is `session`, across all pages.
///
/// Fails with [`Error::Other`] when a page repeats components of an earlier
/// one (other than a BOS without paging sending its whole list again), or
/// when there are still more after [`Paging::max_pages`] full pages.
pub(super) async fn session_components(
    client: &ServiceClient,
    session: &str,
    paging: Paging,
) -> Result<Vec<Component>> {
    // `page_size=0` means "no limit" to BOS, which would make every page
    // look short; one is the smallest size that pages.
    let page_size = paging.page_size.max(1);
    let page_size_text = page_size.to_string();
    let mut components: Vec<Component> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    for page_number in 1..=paging.max_pages {
        let mut query = vec![("session", session), ("page_size", page_size_text.as_str())];
        if let Some(cursor) = &cursor {
            query.push(("start_after_id", cursor.as_str()));
        }
        let page: Vec<Component> = client.get_json("/v2/components", &query).await?;
        if page_number == 2
            && same_ids(&page, &components)
            && whole_list_again(client, session, page_size, &components).await?
        {
            return Ok(components);
        }
        if let Some(repeated) = page.iter().find(|component| seen.contains(&component.id)) {
            return Err(PagingError::Repeated {
                session: session.to_string(),
                page: page_number,
                cursor: cursor.unwrap_or_default(),
                id: repeated.id.clone(),
            }
            .into());
        }
        // Shorter than asked: the last page. Longer: a BOS without paging
        // sent everything at once.
        let more = page.len() == page_size;
        seen.extend(page.iter().map(|component| component.id.clone()));
        cursor = page.last().map(|component| component.id.clone());
        components.extend(page);
        if !more {
            return Ok(components);
        }
    }
    Err(PagingError::TooManyPages {
        session: session.to_string(),
        pages: paging.max_pages,
        page_size,
    }
    .into())
}

/// Whether BOS ignores the paging parameters, as BOS versions before them
/// do, so that `first_page` (exactly `page_size` long) was the whole list.
///
/// The second page repeated the first one; that is either such a BOS, or a
/// BOS that honours `page_size` but not `start_after_id`, which would loop.
/// One more request for one more component tells them apart: the first kind
/// sends the same list, the second a longer one.
async fn whole_list_again(
    client: &ServiceClient,
    session: &str,
    page_size: usize,
    first_page: &[Component],
) -> Result<bool> {
    let larger = page_size.saturating_add(1).to_string();
    let probe: Vec<Component> = client
        .get_json(
            "/v2/components",
            &[("session", session), ("page_size", larger.as_str())],
        )
        .await?;
    Ok(same_ids(&probe, first_page))
}

/// Whether `page` lists exactly the components of `earlier`, in order.
fn same_ids(page: &[Component], earlier: &[Component]) -> bool {
    page.len() == earlier.len()
        && page
            .iter()
            .zip(earlier)
            .all(|(component, other)| component.id == other.id)
}

#[cfg(test)]
mod tests;
