//! The innermost cause of an error, for messages about HTTP calls: reqwest's
//! own text only says a request failed, its innermost source says why
//! ("connection refused").

/// The text of `error`'s innermost source (or of `error` itself).
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
