//! Running one Slurm command: a timeout, a fixed environment, and the
//! command's failures in terms the ports understand.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crus_core::error::Error;

use super::{BACKEND, SlurmConfig};

/// Why a Slurm command failed, before it is mapped into [`Error`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum SlurmError {
    /// The command could not be started (missing binary, permissions).
    #[error("could not run {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    /// The command did not finish within the timeout and was killed.
    #[error("{command} did not finish within {timeout:?} and was killed")]
    TimedOut { command: String, timeout: Duration },
    /// The command exited non-zero.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// A node id has no Slurm name, or Slurm does not know the name.
    #[error("node {0} not found in Slurm")]
    UnknownNode(String),
    /// A node id cannot be passed to Slurm as a node name.
    #[error("{0:?} is not a valid Slurm node name")]
    InvalidName(String),
    /// A drain or fail without a reason, which Slurm refuses.
    #[error("Slurm needs a reason to {0} a node")]
    MissingReason(&'static str),
}

/// Messages by which scontrol/squeue say the controller could not be reached;
/// repeating the call later may succeed.
const UNREACHABLE: &[&str] = &[
    "Unable to contact slurm controller",
    "Connection refused",
    "Socket timed out",
    "Zero Bytes were transmitted or received",
    "Communication connection failure",
    "Slurm backup controller in standby mode",
];

impl From<SlurmError> for Error {
    fn from(error: SlurmError) -> Self {
        match &error {
            SlurmError::TimedOut { .. } => Error::unavailable(BACKEND, error.to_string()),
            SlurmError::Failed { stderr, .. }
                if UNREACHABLE.iter().any(|text| stderr.contains(text)) =>
            {
                Error::unavailable(BACKEND, error.to_string())
            }
            SlurmError::Failed { stderr, .. } if stderr.contains("Invalid node name specified") => {
                Error::not_found(format!("node in Slurm ({})", stderr.trim()))
            }
            SlurmError::UnknownNode(name) => Error::not_found(format!("node {name} in Slurm")),
            SlurmError::InvalidName(_) | SlurmError::MissingReason(_) => {
                Error::invalid(error.to_string())
            }
            SlurmError::Spawn { .. } | SlurmError::Failed { .. } => Error::Other {
                backend: BACKEND,
                source: Box::new(error),
            },
        }
    }
}

/// Runs Slurm's client commands as a [`SlurmConfig`] says.
#[derive(Debug, Clone)]
pub(crate) struct SlurmCommands {
    bin_dir: Option<PathBuf>,
    conf: Option<PathBuf>,
    timeout: Duration,
}

impl SlurmCommands {
    pub(crate) fn new(config: &SlurmConfig) -> Self {
        SlurmCommands {
            bin_dir: config.bin_dir.clone(),
            conf: config.conf.clone(),
            timeout: config.command_timeout,
        }
    }

    /// Runs `program` with `args`, killing it after the configured timeout,
    /// and returns its standard output.
    pub(crate) async fn run(&self, program: &str, args: &[String]) -> Result<String, SlurmError> {
        let path = match &self.bin_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let command_text = format!("{program} {}", args.join(" "));
        let mut command = tokio::process::Command::new(&path);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the future on timeout must not leave the command running.
            .kill_on_drop(true)
            // End times come as epoch seconds, independent of the site's format;
            // TZ=UTC makes the ISO fallback unambiguous (see parse::parse_end_time).
            .env("SLURM_TIME_FORMAT", "%s")
            .env("TZ", "UTC");
        if let Some(conf) = &self.conf {
            command.env("SLURM_CONF", conf);
        }
        let child = command.spawn().map_err(|source| SlurmError::Spawn {
            command: path.display().to_string(),
            source,
        })?;
        let timeout = self.timeout;
        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Err(_elapsed) => {
                return Err(SlurmError::TimedOut {
                    command: command_text,
                    timeout,
                });
            }
            Ok(Err(source)) => {
                return Err(SlurmError::Spawn {
                    command: command_text,
                    source,
                });
            }
            Ok(Ok(output)) => output,
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            tracing::debug!(command = %command_text, "slurm command succeeded");
            Ok(stdout)
        } else {
            Err(SlurmError::Failed {
                command: command_text,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_ports_kinds() {
        let failed = |stderr: &str| SlurmError::Failed {
            command: "scontrol update".into(),
            status: std::process::ExitStatus::default(),
            stderr: stderr.into(),
        };
        assert!(matches!(
            Error::from(failed("slurm_update error: Invalid node name specified")),
            Error::NotFound { .. }
        ));
        assert!(
            Error::from(failed(
                "slurm_update error: Unable to contact slurm controller (connect failure)"
            ))
            .is_retryable()
        );
        assert!(
            Error::from(SlurmError::TimedOut {
                command: "squeue".into(),
                timeout: Duration::from_secs(1),
            })
            .is_retryable()
        );
        let other = Error::from(failed("slurm_update error: Access/permission denied"));
        assert!(matches!(other, Error::Other { .. }), "{other:?}");
        assert!(other.to_string().contains("Access/permission denied"));
        assert!(matches!(
            Error::from(SlurmError::MissingReason("drain")),
            Error::Invalid { .. }
        ));
    }
}
