//! The client's `X-Request-Id`, kept only when it is a reasonable id: it is
//! echoed in the response and written into every log line of the request,
//! so an id of kilobytes (or of control characters) is replaced by a fresh
//! one rather than copied around.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::REQUEST_ID_HEADER;

/// The longest client request id kept; a UUID is 36 characters.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether `value` is kept as the request's id: 1 to [`MAX_REQUEST_ID_LEN`]
/// visible ASCII characters.
fn acceptable(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value.iter().all(|byte| byte.is_ascii_graphic())
}

/// Middleware, outside the layer that sets missing ids: removes a client's
/// id that is not [`acceptable`] (and every id but the first, when several
/// are sent), so the request gets a fresh UUID instead.
pub(crate) async fn drop_unacceptable_ids(mut request: Request, next: Next) -> Response {
    let headers = request.headers_mut();
    let kept = headers
        .get(REQUEST_ID_HEADER)
        .filter(|value| acceptable(value.as_bytes()))
        .cloned();
    if headers.get_all(REQUEST_ID_HEADER).iter().count() > 1 || kept.is_none() {
        headers.remove(REQUEST_ID_HEADER);
        if let Some(value) = kept {
            headers.insert(REQUEST_ID_HEADER, value);
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn ids_are_short_visible_ascii() {
        assert!(acceptable(b"3f1c9a2e-0b7d-4c55-9a8e-1d2f3a4b5c6d"));
        assert!(acceptable(&[b'a'; 128]));
        assert!(!acceptable(&[b'a'; 129]));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"with space"));
        assert!(!acceptable("caf\u{e9}".as_bytes()));
    }
}
