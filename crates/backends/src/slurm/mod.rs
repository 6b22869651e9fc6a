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

mod command;
mod names;
mod parse;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::node::NodeId;
use crus_core::ports::{WorkloadManager, WorkloadNode};

pub use names::NodeNaming;

use command::{SlurmCommands, SlurmError};
use names::Names;
use parse::{ShownNode, latest_end_time, map_state, needs_resume, parse_show_node};

/// The backend name in errors.
const BACKEND: &str = "slurm";

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
    commands: SlurmCommands,
    names: Names,
}

impl SlurmWorkloadManager {
    /// A workload manager running Slurm's commands as `config` says.
    pub fn new(config: SlurmConfig) -> Self {
        SlurmWorkloadManager {
            commands: SlurmCommands::new(&config),
            names: Names::new(&config.node_names),
            config,
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SlurmConfig {
        &self.config
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
        self.commands.run("scontrol", &args).await.map(drop)
    }

    async fn take_out(&self, nodes: &[NodeId], reason: &str, update: Update) -> Result<()> {
        let verb = match update {
            Update::Fail => "fail",
            Update::Drain | Update::Resume => "drain",
        };
        if reason.trim().is_empty() {
            return Err(SlurmError::MissingReason(verb).into());
        }
        let names = self.names.slurm_names(nodes)?;
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
            .commands
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
            .commands
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
        let names = self.names.slurm_names(nodes)?;
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
