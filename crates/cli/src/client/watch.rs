//! `crus session watch`: live progress of one session until it completes.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::{Answer, ApiClient, ClientError};

/// Follows session `upgrade_id`, printing each new message and a progress bar
/// (from the additive `nodes` counts when the server sends them), until the
/// session completes or is removed. Returns its last answer.
pub async fn watch(
    client: &ApiClient,
    upgrade_id: &str,
    interval: Duration,
) -> Result<Answer, ClientError> {
    let on_terminal = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        None,
        if on_terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40.green/blue}] {pos}/{len} nodes  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut printed = 0usize;
    let mut last: Option<Answer> = None;
    loop {
        let answer = match client.get(upgrade_id).await {
            Ok(answer) => answer,
            // A deleted session disappears once the controller has stopped it safely.
            Err(ClientError::Server { status: 404, .. }) if last.is_some() => {
                bar.finish_and_clear();
                eprintln!("session {upgrade_id} was deleted and removed");
                return last.ok_or_else(|| ClientError::Local("no answer".into()));
            }
            Err(error) => {
                bar.finish_and_clear();
                return Err(error);
            }
        };
        let session = &answer.json;
        if let Some(messages) = session["messages"].as_array() {
            // CRUS clears messages when a session becomes READY; never print twice.
            if messages.len() < printed {
                printed = 0;
            }
            for message in &messages[printed..] {
                bar.suspend(|| eprintln!("{}", message.as_str().unwrap_or_default()));
            }
            printed = messages.len();
        }
        show(&bar, session);
        if session["completed"].as_bool() == Some(true) {
            bar.finish_and_clear();
            return Ok(answer);
        }
        last = Some(answer);
        tokio::time::sleep(interval).await;
    }
}

fn show(bar: &ProgressBar, session: &Value) {
    let count = |phase: &str| session["nodes"][phase].as_u64().unwrap_or(0);
    let total = session["nodes"]["total"].as_u64();
    if let Some(total) = total {
        bar.set_length(total);
        bar.set_position(count("done") + count("failed") + count("skipped"));
    }
    bar.set_message(session["state"].as_str().unwrap_or("?").to_string());
    bar.tick();
}
