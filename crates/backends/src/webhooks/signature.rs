//! The `X-Crus-Signature-256` header: `sha256=` and the hex HMAC-SHA256 of
//! the request body under the hook's secret, so a receiver can check that
//! an event came from this server and was not altered.

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-crus-signature-256";

/// `sha256=<hex>` of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256=");
    for byte in tag.as_ref() {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}
