//! A health command: `/bin/sh -c '<command> "$CRUS_NODE"'`, so a site may
//! write `ssh -o BatchMode=yes` or `/opt/site/nodecheck --quick` and get the
//! node name as the last argument.

use std::process::Stdio;
use std::time::Duration;

use crus_core::error::{Error, Result};
use crus_core::node::NodeId;

use super::BACKEND;

/// How much of a failing command's output is kept in the node's reason.
const OUTPUT_KEPT: usize = 200;

/// Runs `command` for `node`: `None` when it exits 0, the failure otherwise.
/// An error only when the shell itself cannot be started.
pub(super) async fn run(command: &str, node: &NodeId, timeout: Duration) -> Result<Option<String>> {
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{command} \"$CRUS_NODE\""))
        .env("CRUS_NODE", node.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A command that outlives its timeout is killed with its future.
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| Error::unavailable(BACKEND, format!("cannot start /bin/sh: {error}")))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => {
            return Ok(Some(format!(
                "`{command}` did not finish within {} and was killed",
                humantime::format_duration(timeout)
            )));
        }
        Ok(Err(error)) => {
            return Err(Error::unavailable(
                BACKEND,
                format!("cannot read the output of `{command}`: {error}"),
            ));
        }
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        return Ok(None);
    }
    let said = last_line(&output.stderr).or_else(|| last_line(&output.stdout));
    let status = match output.status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_string(),
    };
    Ok(Some(match said {
        Some(said) => format!("`{command}` {status}: {said}"),
        None => format!("`{command}` {status}"),
    }))
}

/// The last non-empty line of a command's output, shortened.
fn last_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().map(str::trim).rfind(|line| !line.is_empty())?;
    Some(match line.char_indices().nth(OUTPUT_KEPT) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    })
}
