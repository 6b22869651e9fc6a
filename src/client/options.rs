//! What `PATCH /options` answers, read by [`Client::patch_options`](super::Client::patch_options).

use crus_core::options::ServerOptions;
use serde::Deserialize;

/// The options after a change, and to what the change applies.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OptionsChanged {
    /// The options now in force.
    pub options: ServerOptions,
    /// To what the change applies (sessions created from now on), in
    /// words; empty from a server that does not say.
    #[serde(default)]
    pub applies_to: String,
}
