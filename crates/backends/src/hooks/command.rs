//! A hook command: the policy's program and arguments, run without a
//! shell, in a process group of its own (a timeout kills the whole group,
//! children included), told what it runs for in its environment:
//! `CRUS_HOOK`, `CRUS_SESSION`, `CRUS_TEMPLATE`, `CRUS_STEP`, `CRUS_NODES`
//! (space-separated) and, for a per-node hook, `CRUS_NODE`.

use std::process::Stdio;

use crus_core::ports::HookRequest;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of each of a command's stdout and stderr is kept; the rest is
/// read and dropped, so a chatty command neither blocks nor fills memory.
const OUTPUT_KEPT: usize = 64 * 1024;

/// How much of the output's last line goes into a failure's reason.
const REASON_KEPT: usize = 200;

/// Runs `argv` for `request`: `None` when it exits 0, why it failed otherwise.
pub(super) async fn run(argv: &[String], request: &HookRequest) -> Option<String> {
    let Some((program, arguments)) = argv.split_first() else {
        return Some("the hook's command names no program".to_string());
    };
    let body = request.body();
    let nodes: Vec<&str> = body.nodes.iter().map(|node| node.as_str()).collect();
    let mut command = tokio::process::Command::new(program);
    command
        .args(arguments)
        .env("CRUS_HOOK", body.hook)
        .env("CRUS_SESSION", body.session.to_string())
        .env("CRUS_TEMPLATE", &body.template)
        .env("CRUS_STEP", body.step.to_string())
        .env("CRUS_NODES", nodes.join(" "))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true);
    match &body.node {
        Some(node) => command.env("CRUS_NODE", node.as_str()),
        None => command.env_remove("CRUS_NODE"),
    };
    let shown = format!("`{}`", argv.join(" "));
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return Some(format!("{shown} could not be started: {error}")),
    };
    let group = child.id();
    let stdout = child
        .stdout
        .take()
        .map(|pipe| tokio::spawn(read_bounded(pipe)));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| tokio::spawn(read_bounded(pipe)));
    let timeout = request.hook.timeout;
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Err(_) => {
            kill_group(group);
            let _ = child.kill().await;
            return Some(format!(
                "{shown} did not finish within {} and was killed with its process group",
                humantime::format_duration(timeout)
            ));
        }
        Ok(Err(error)) => return Some(format!("{shown} could not be waited for: {error}")),
        Ok(Ok(status)) => status,
    };
    if status.success() {
        return None;
    }
    let collected = |task: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
        match task {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let (out, err) = (collected(stdout).await, collected(stderr).await);
    let said = last_line(&err).or_else(|| last_line(&out));
    let status = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_string(),
    };
    Some(match said {
        Some(said) => format!("{shown} {status}: {said}"),
        None => format!("{shown} {status}"),
    })
}

/// Reads `pipe` to its end, keeping the first [`OUTPUT_KEPT`] bytes.
async fn read_bounded(mut pipe: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return kept,
            Ok(read) => {
                let room = OUTPUT_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..read.min(room)]);
            }
        }
    }
}

/// Kills the process group the hook leads (its id is the group's).
fn kill_group(group: Option<u32>) {
    let Some(pid) = group
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(error) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        tracing::warn!(%error, "could not kill the process group of a hook that timed out");
    }
}

/// The last non-empty line of a command's output, shortened.
fn last_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().map(str::trim).rfind(|line| !line.is_empty())?;
    Some(match line.char_indices().nth(REASON_KEPT) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    })
}
