//! A session's event stream (`GET /session/{id}/events`) read message by
//! message as it arrives.

use std::collections::VecDeque;

use super::sse::{SseMessage, SseParser};

/// An open event stream.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    parser: SseParser,
    /// Messages read but not handed out yet (one chunk may end several).
    ready: VecDeque<SseMessage>,
}

impl EventStream {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        EventStream {
            response,
            parser: SseParser::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next message, or `None` once the stream ended. A cut connection
    /// ends it too: the caller reads the session again and resumes from the
    /// last message's `id` ([`super::Client::events`]).
    pub async fn next_message(&mut self) -> Option<SseMessage> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Some(message);
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.ready.extend(self.parser.feed(&bytes)),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}
