//! An HTTP hook: the policy's URL called with POST (or PUT) and a JSON
//! body naming the hook, session, template, step and nodes; a 2xx answer is
//! success. Sent once: a hook is not idempotent unless the policy says so.

use crus_core::ports::HookRequest;
use crus_core::rollout::HookHttp;

/// How much of a refusing answer's body goes into the failure's reason.
const BODY_KEPT: usize = 200;

/// Calls `call` for `request`: `None` on a 2xx answer, why it failed otherwise.
pub(super) async fn call(
    client: &reqwest::Client,
    call: &HookHttp,
    request: &HookRequest,
) -> Option<String> {
    let method = match call.method.as_str() {
        "PUT" => reqwest::Method::PUT,
        _ => reqwest::Method::POST,
    };
    let shown = format!("{} {}", call.method, call.url);
    let answer = client
        .request(method, &call.url)
        .timeout(request.hook.timeout)
        .json(&request.body())
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) if error.is_timeout() => {
            return Some(format!(
                "{shown} did not answer within {}",
                humantime::format_duration(request.hook.timeout)
            ));
        }
        Err(error) => return Some(format!("{shown} failed: {error}")),
    };
    let status = response.status();
    if status.is_success() {
        return None;
    }
    let text = response.text().await.unwrap_or_default();
    let text = text.trim();
    let said = match text.char_indices().nth(BODY_KEPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    };
    Some(if said.is_empty() {
        format!("{shown} answered {status}")
    } else {
        format!("{shown} answered {status}: {said}")
    })
}
