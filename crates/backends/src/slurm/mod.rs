//! Slurm as the [`WorkloadManager`]: drains, resumes, fails and observes
//! nodes by running Slurm's own commands (`scontrol`, `squeue`), as CRUS did.
//!
//! Slurm 22.05 has no REST endpoint that changes nodes and no `--json` for
//! `scontrol`, so every call runs a command and parses its formatted output.
//! Each command runs with a timeout; one that does not finish in time is killed
//! and the call fails with [`Error::Unavailable`] (retryable).
//!
//! Written against Slurm 22.05.8 (Debian 12); the mapping of Slurm states to
//! [`WorkloadState`] is documented on the parser (`parse::map_state`).

mod parse;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::node::NodeId;
use crus_core::ports::{WorkloadManager, WorkloadNode};

use parse::{ShownNode, latest_end_time, map_state, needs_resume, parse_show_node};

/// The backend name in errors.
const BACKEND: &str = "slurm";

/// How crus node ids become Slurm node names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NodeNaming {
    /// The node id is the Slurm node name.
    #[default]
    Identity,
    /// Slurm names nodes `nid` + the six-digit NID (`nid000042`), as on Cray
    /// EX systems; the map gives each node id's (xname's) NID, filled by the
    /// caller from its inventory. A node id missing from the map is treated
    /// as a node Slurm does not know.
    NidFromInventory(HashMap<NodeId, u32>),
}

/// How to run Slurm's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmConfig {
    /// Directory holding `scontrol` and `squeue`; `None` looks them up in `PATH`.
    pub bin_dir: Option<PathBuf>,
    /// The `slurm.conf` to use, passed as `SLURM_CONF`; `None` keeps Slurm's default.
    pub conf: Option<PathBuf>,
    /// How long one command may run before it is killed.
    pub command_timeout: Duration,
    /// How node ids become Slurm node names.
    pub node_names: NodeNaming,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            bin_dir: None,
            conf: None,
            // scontrol itself retries the controller for a while; 30 s covers
            // a busy slurmctld without hanging a rollout on a dead one.
            command_timeout: Duration::from_secs(30),
            node_names: NodeNaming::Identity,
        }
    }
}

/// Node id → Slurm node name. (Only this direction is needed: every call
/// starts from the node ids asked about.)
#[derive(Debug, Clone)]
enum Names {
    Identity,
    Mapped(HashMap<NodeId, String>),
}

impl Names {
    fn new(naming: &NodeNaming) -> Self {
        match naming {
            NodeNaming::Identity => Names::Identity,
            NodeNaming::NidFromInventory(nids) => Names::Mapped(
                nids.iter()
                    .map(|(node, nid)| (node.clone(), format!("nid{nid:06}")))
                    .collect(),
            ),
        }
    }

    fn slurm_name(&self, node: &NodeId) -> Option<String> {
        match self {
            Names::Identity => Some(node.as_str().to_string()),
            Names::Mapped(to_slurm) => to_slurm.get(node).cloned(),
        }
    }
}

/// Why a Slurm command failed, before it is mapped into [`Error`].
#[derive(Debug, thiserror::Error)]
enum SlurmError {
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

/// Slurm's node updates as `scontrol update` spells them.
#[derive(Debug, Clone, Copy)]
enum Update {
    Drain,
    Fail,
    Resume,
}

impl Update {
    fn state(self) -> &'static str {
        match self {
            Update::Drain => "DRAIN",
            // FAIL, as CRUS used: the node takes no new job, running jobs may
            // finish, and resume clears it at once (DOWN would kill running
            // jobs and leave the node NOT_RESPONDING until the next ping).
            Update::Fail => "FAIL",
            Update::Resume => "RESUME",
        }
    }
}

/// The Slurm workload manager, driven through `scontrol` and `squeue`.
#[derive(Debug, Clone)]
pub struct SlurmWorkloadManager {
    config: SlurmConfig,
    names: Names,
}

impl SlurmWorkloadManager {
    /// A workload manager running Slurm's commands as `config` says.
    pub fn new(config: SlurmConfig) -> Self {
        let names = Names::new(&config.node_names);
        SlurmWorkloadManager { config, names }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SlurmConfig {
        &self.config
    }

    /// Runs `program` with `args`, killing it after the configured timeout,
    /// and returns its standard output.
    async fn run(&self, program: &str, args: &[String]) -> Result<String, SlurmError> {
        let path = match &self.config.bin_dir {
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
        if let Some(conf) = &self.config.conf {
            command.env("SLURM_CONF", conf);
        }
        let child = command.spawn().map_err(|source| SlurmError::Spawn {
            command: path.display().to_string(),
            source,
        })?;
        let timeout = self.config.command_timeout;
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

    /// Slurm names of `nodes`, refusing ids Slurm cannot know or parse.
    fn slurm_names(&self, nodes: &[NodeId]) -> Result<Vec<String>, SlurmError> {
        nodes
            .iter()
            .map(|node| {
                let name = self
                    .names
                    .slurm_name(node)
                    .ok_or_else(|| SlurmError::UnknownNode(node.to_string()))?;
                // A comma or blank would split the NodeName= list; `=` would
                // be read as another key.
                if name.is_empty()
                    || name
                        .chars()
                        .any(|c| c == ',' || c == '=' || c.is_whitespace())
                {
                    return Err(SlurmError::InvalidName(name));
                }
                Ok(name)
            })
            .collect()
    }

    /// `scontrol update NodeName=<names> State=<state> [Reason=<reason>]`.
    async fn update(
        &self,
        names: &[String],
        update: Update,
        reason: Option<&str>,
    ) -> Result<(), SlurmError> {
        if names.is_empty() {
            return Ok(());
        }
        let mut args = vec![
            "update".to_string(),
            format!("NodeName={}", names.join(",")),
            format!("State={}", update.state()),
        ];
        if let Some(reason) = reason {
            // One argv element, so a reason with spaces needs no quoting.
            args.push(format!("Reason={reason}"));
        }
        self.run("scontrol", &args).await.map(drop)
    }

    async fn take_out(&self, nodes: &[NodeId], reason: &str, update: Update) -> Result<()> {
        let verb = match update {
            Update::Fail => "fail",
            Update::Drain | Update::Resume => "drain",
        };
        if reason.trim().is_empty() {
            return Err(SlurmError::MissingReason(verb).into());
        }
        let names = self.slurm_names(nodes)?;
        // Slurm keeps a drain or fail mark when it is set again, and replaces
        // the reason, so both updates are idempotent as they are.
        self.update(&names, update, Some(reason)).await?;
        Ok(())
    }

    /// Every node `scontrol -o show node` lists, by Slurm name.
    ///
    /// All nodes are asked for because naming one unknown node makes scontrol
    /// fail for the whole list; the output is one short line per node.
    async fn show_nodes(&self) -> Result<HashMap<String, ShownNode>, SlurmError> {
        let output = self
            .run(
                "scontrol",
                &["-o".to_string(), "show".into(), "node".into()],
            )
            .await?;
        Ok(parse_show_node(&output)
            .into_iter()
            .map(|node| (node.name.clone(), node))
            .collect())
    }

    /// When the jobs on Slurm node `name` should end, from `squeue`.
    async fn jobs_end_by(&self, name: &str) -> Result<Option<crus_core::Timestamp>, SlurmError> {
        let output = self
            .run(
                "squeue",
                &[
                    "-h".to_string(),
                    "-t".into(),
                    "RUNNING,COMPLETING,SUSPENDED".into(),
                    "-w".into(),
                    name.to_string(),
                    "-o".into(),
                    "%e".into(),
                ],
            )
            .await?;
        Ok(latest_end_time(&output))
    }
}

#[async_trait]
impl WorkloadManager for SlurmWorkloadManager {
    async fn drain(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        self.take_out(nodes, reason, Update::Drain).await
    }

    async fn resume(&self, nodes: &[NodeId]) -> Result<()> {
        let names = self.slurm_names(nodes)?;
        let shown = self.show_nodes().await?;
        if let Some(unknown) = names.iter().find(|name| !shown.contains_key(*name)) {
            return Err(SlurmError::UnknownNode(unknown.clone()).into());
        }
        // Slurm refuses to resume a node that is in service ("Invalid node
        // state specified"), so only marked nodes are named.
        let marked: Vec<String> = names
            .into_iter()
            .filter(|name| {
                shown
                    .get(name)
                    .is_some_and(|node| needs_resume(&node.state))
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        match self.update(&marked, Update::Resume, None).await {
            // A node resumed by someone else since `show_nodes` is already
            // where resume puts it; Slurm still resumes the other nodes named.
            Err(SlurmError::Failed { stderr, .. })
                if stderr.contains("Invalid node state specified") =>
            {
                tracing::debug!(%stderr, "resume found nodes already in service");
                Ok(())
            }
            result => result.map_err(Error::from),
        }
    }

    async fn fail(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        self.take_out(nodes, reason, Update::Fail).await
    }

    async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>> {
        let shown = self.show_nodes().await?;
        let mut reported = Vec::with_capacity(nodes.len());
        for node in nodes {
            let found = self
                .names
                .slurm_name(node)
                .and_then(|name| shown.get(&name));
            let Some(found) = found else {
                reported.push(WorkloadNode {
                    node: node.clone(),
                    state: crus_core::ports::WorkloadState::Unknown,
                    responding: false,
                    jobs_end_by: None,
                    reason: None,
                });
                continue;
            };
            let mapped = map_state(&found.state);
            let jobs_end_by = if matches!(
                mapped.state,
                crus_core::ports::WorkloadState::Allocated
                    | crus_core::ports::WorkloadState::Draining
            ) {
                self.jobs_end_by(&found.name).await?
            } else {
                None
            };
            reported.push(WorkloadNode {
                node: node.clone(),
                state: mapped.state,
                responding: mapped.responding,
                jobs_end_by,
                reason: found.reason.clone(),
            });
        }
        Ok(reported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nids_become_six_digit_names() {
        let names = Names::new(&NodeNaming::NidFromInventory(HashMap::from([(
            NodeId::from("x1000c0s0b0n0"),
            42,
        )])));
        assert_eq!(
            names.slurm_name(&NodeId::from("x1000c0s0b0n0")).as_deref(),
            Some("nid000042")
        );
        assert_eq!(names.slurm_name(&NodeId::from("x1000c0s0b0n1")), None);
    }

    #[test]
    fn names_that_would_break_the_node_list_are_refused() {
        let slurm = SlurmWorkloadManager::new(SlurmConfig::default());
        for bad in ["a,b", "a b", "a=b", ""] {
            assert!(
                matches!(
                    slurm.slurm_names(&[NodeId::from(bad)]),
                    Err(SlurmError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            slurm.slurm_names(&[NodeId::from("nid000001")]).ok(),
            Some(vec!["nid000001".to_string()])
        );
    }

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
