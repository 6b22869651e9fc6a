//! Slurm as the [`WorkloadManager`]: drains, resumes, fails and observes
//! nodes by running Slurm's own commands (`scontrol`, `sinfo`, `squeue`), as
//! CRUS did.
//!
//! Slurm 22.05 has no REST endpoint that changes nodes and no `--json` for
//! `scontrol`, so every change runs `scontrol update`. Each command runs with
//! a timeout; one that does not finish in time is killed and the call fails
//! with [`Error::Unavailable`] (retryable).
//!
//! Reads take one call for all nodes, whatever the number of nodes asked
//! about, in one of two [`ReadMode`]s found out on the first read:
//!
//! - [`ReadMode::Json`]: node states from `sinfo --json`, job ends from
//!   `squeue --json` (Slurm 21.08 and later; see `json.rs` for the shapes).
//!   Slurm ignores node filters with `--json`, so jobs are sorted to their
//!   nodes here.
//! - [`ReadMode::Formatted`], when `sinfo` rejects `--json` or prints
//!   something that is not its JSON: `scontrol -o show node`, and
//!   `squeue -h -t RUNNING,COMPLETING,SUSPENDED -o '%N|%e'` split by node
//!   with a host-list expander (one `squeue -w` per node if a list cannot be
//!   expanded).
//!
//! A first read that fails because the controller is unreachable or slow
//! decides nothing; the next read tries again. Both modes feed the same
//! mapping of Slurm states to [`WorkloadState`], documented on the parser
//! (`parse::map_state`).
//!
//! Written against Slurm 22.05.8 (Debian 12).

mod command;
mod features;
mod hostlist;
mod json;
mod names;
mod parse;
mod queue;
mod reboot;
mod reservations;
mod settings;
mod weights;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use crus_core::error::{Error, Result};
use crus_core::node::NodeId;
use crus_core::ports::{WorkloadManager, WorkloadNode, WorkloadQueue, WorkloadState};
use crus_core::time::Timestamp;

pub use names::NodeNaming;
pub use reboot::{SlurmRebootConfig, SlurmRebootOrchestrator};
pub use settings::{SlurmNodeNames, SlurmRebootSettings, SlurmSettings};

use command::{SlurmCommands, SlurmError};
use json::JsonError;
use names::Names;
use parse::{
    ShownNode, ends_by_node, latest_end_time, map_state, needs_resume, not_registered_yet,
    parse_show_node,
};

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
    Down,
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
            // Only to put back a node someone else had down: it is idle
            // then (crus just upgraded it), so no job is killed.
            Update::Down => "DOWN",
            Update::Resume => "RESUME",
        }
    }
}

/// How node and job state is read from Slurm; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadMode {
    /// `sinfo --json` and `squeue --json`.
    Json,
    /// `scontrol -o show node` and `squeue -o '%N|%e'`, for a Slurm without
    /// `--json` (before 21.08, or built without its JSON plugins).
    Formatted,
}

/// Messages by which `sinfo`/`squeue` say they cannot print JSON: getopt's
/// for an unknown option, and Slurm's for a missing serializer or OpenAPI
/// plugin. Compared in lower case.
const JSON_UNSUPPORTED: &[&str] = &[
    "unrecognized option",
    "unknown option",
    "invalid option",
    "json",
    "serializer",
    "openapi",
    "data_parser",
];

/// The Slurm workload manager, driven through `scontrol`, `sinfo` and `squeue`.
#[derive(Debug, Clone)]
pub struct SlurmWorkloadManager {
    config: SlurmConfig,
    commands: SlurmCommands,
    names: Names,
    /// How this Slurm is read, once a first read has found out. Shared by
    /// clones so the detection happens once for them all.
    read_mode: Arc<OnceLock<ReadMode>>,
}

impl SlurmWorkloadManager {
    /// A workload manager running Slurm's commands as `config` says.
    pub fn new(config: SlurmConfig) -> Self {
        SlurmWorkloadManager {
            commands: SlurmCommands::new(&config),
            names: Names::new(&config.node_names),
            config,
            read_mode: Arc::new(OnceLock::new()),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SlurmConfig {
        &self.config
    }

    /// How node and job state is read, or `None` before a read has found
    /// out (none has run yet, or each failed with the controller unreachable).
    pub fn read_mode(&self) -> Option<ReadMode> {
        self.read_mode.get().copied()
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
            Update::Down => "set down",
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

    /// Every node Slurm knows, by Slurm name, from `sinfo --json` or
    /// `scontrol -o show node` as the [`ReadMode`] says (finding it out on
    /// the first call).
    ///
    /// All nodes are asked for because naming one unknown node makes scontrol
    /// fail for the whole list (and sinfo ignores names with `--json`); the
    /// output is short per node.
    async fn show_nodes(&self) -> Result<HashMap<String, ShownNode>, SlurmError> {
        let json = match self.read_mode() {
            Some(ReadMode::Formatted) => None,
            Some(ReadMode::Json) | None => {
                self.read_json("sinfo", &["--all", "--Node", "--json"], json::parse_nodes)
                    .await?
            }
        };
        let nodes = match json {
            Some(nodes) => nodes,
            None => parse_show_node(
                &self
                    .commands
                    .run("scontrol", &arguments(&["-o", "show", "node"]))
                    .await?,
            ),
        };
        Ok(nodes
            .into_iter()
            .map(|node| (node.name.clone(), node))
            .collect())
    }

    /// Runs `program` with `args` (which ask for JSON) and parses its output,
    /// deciding the [`ReadMode`] if this answer settles it.
    ///
    /// `Ok(None)` means "read the formatted output this time": the JSON was
    /// refused or unreadable (and then it is for good), or it carried
    /// Slurm's own errors. Slurm prints those with exit status 0 and no
    /// detail ("Unspecified error", also for an unreachable controller), so
    /// the formatted command is what tells a retryable failure from another.
    /// A failure that says the controller is unreachable or slow is returned
    /// as it is and decides nothing.
    async fn read_json<T>(
        &self,
        program: &str,
        args: &[&str],
        parse: impl FnOnce(&str) -> Result<T, JsonError>,
    ) -> Result<Option<T>, SlurmError> {
        let output = match self.commands.run(program, &arguments(args)).await {
            Ok(output) => output,
            Err(error) if is_transient(&error) => return Err(error),
            Err(error) => {
                if json_unsupported(&error) {
                    self.decide(ReadMode::Formatted);
                }
                tracing::warn!(%error, "reading Slurm's formatted output instead of its JSON");
                return Ok(None);
            }
        };
        match parse(&output) {
            Ok(parsed) => {
                self.decide(ReadMode::Json);
                Ok(Some(parsed))
            }
            Err(error) => {
                self.decide(if error.shape_understood() {
                    ReadMode::Json
                } else {
                    ReadMode::Formatted
                });
                tracing::warn!(%error, "reading Slurm's formatted output instead of its JSON");
                Ok(None)
            }
        }
    }

    /// Records the first decision; later ones (a concurrent first read, or
    /// squeue disagreeing with sinfo) change nothing.
    fn decide(&self, mode: ReadMode) {
        if self.read_mode.set(mode).is_ok() {
            tracing::info!(?mode, "Slurm read mode found out");
        }
    }

    /// When the jobs on each of `names` should end, by Slurm name (`None`
    /// for a node without a job, or with a job of no known end), from one
    /// `squeue` call for all jobs however many nodes are asked about.
    async fn jobs_end_by_node(
        &self,
        names: &[&str],
    ) -> Result<HashMap<String, Option<Timestamp>>, SlurmError> {
        // Only sinfo finds the mode out: node states are always read first.
        if self.read_mode() == Some(ReadMode::Json) {
            let now = Timestamp::now();
            let parse = |text: &str| json::parse_job_ends(text, now);
            if let Some(jobs) = self.read_json("squeue", &["--json"], parse).await? {
                return Ok(ends_by_node(&jobs));
            }
        }
        let output = self
            .commands
            .run(
                "squeue",
                &arguments(&["-h", "-t", "RUNNING,COMPLETING,SUSPENDED", "-o", "%N|%e"]),
            )
            .await?;
        match parse::parse_job_ends(&output) {
            Ok(jobs) => Ok(ends_by_node(&jobs)),
            Err(error) => {
                // Squeue's own node filter still works where the expander
                // does not; slow for many nodes, but right.
                tracing::warn!(%error, "asking squeue for job ends node by node");
                let mut ends = HashMap::with_capacity(names.len());
                for name in names {
                    ends.insert((*name).to_string(), self.jobs_end_by(name).await?);
                }
                Ok(ends)
            }
        }
    }

    /// When the jobs on Slurm node `name` should end, from `squeue -w`: the
    /// way left when a job's node list cannot be expanded.
    async fn jobs_end_by(&self, name: &str) -> Result<Option<Timestamp>, SlurmError> {
        let output = self
            .commands
            .run(
                "squeue",
                &arguments(&[
                    "-h",
                    "-t",
                    "RUNNING,COMPLETING,SUSPENDED",
                    "-w",
                    name,
                    "-o",
                    "%e",
                ]),
            )
            .await?;
        Ok(latest_end_time(&output))
    }
}

fn arguments(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_string()).collect()
}

/// Whether `error` is one command.rs calls retryable (the controller is
/// unreachable or slow): such a failure says nothing about `--json`.
fn is_transient(error: &SlurmError) -> bool {
    match error {
        SlurmError::TimedOut { .. } => true,
        // command.rs owns the list of "unreachable" messages; ask it.
        SlurmError::Failed { status, stderr, .. } => Error::from(SlurmError::Failed {
            command: String::new(),
            status: *status,
            stderr: stderr.clone(),
        })
        .is_retryable(),
        _ => false,
    }
}

/// Whether `error` says this Slurm cannot print JSON at all.
fn json_unsupported(error: &SlurmError) -> bool {
    match error {
        SlurmError::Failed { stderr, .. } => {
            let stderr = stderr.to_ascii_lowercase();
            JSON_UNSUPPORTED.iter().any(|text| stderr.contains(text))
        }
        // No sinfo at all: the formatted path reads nodes with scontrol.
        SlurmError::Spawn { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
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

    /// Puts nodes back as someone else had them: `State=DOWN` for a node
    /// that was down (not FAIL, the default's stand-in, which reads back as
    /// another state and which `scontrol` shows differently), `State=DRAIN`
    /// otherwise, each with the reason byte for byte.
    async fn restore(&self, nodes: &[NodeId], state: WorkloadState, reason: &str) -> Result<()> {
        let update = match state {
            WorkloadState::Down => Update::Down,
            _ => Update::Drain,
        };
        self.take_out(nodes, reason, update).await
    }

    async fn requeue_jobs(&self, nodes: &[NodeId]) -> Result<()> {
        let names = self.names.slurm_names(nodes)?;
        if names.is_empty() {
            return Ok(());
        }
        // Job ids first: `scontrol requeue` takes jobs, not nodes.
        let listed = self
            .commands
            .run(
                "squeue",
                &[
                    "-h".to_string(),
                    "-t".into(),
                    "RUNNING,SUSPENDED".into(),
                    "-w".into(),
                    names.join(","),
                    "-o".into(),
                    "%i".into(),
                ],
            )
            .await?;
        let jobs: Vec<&str> = listed
            .lines()
            .map(str::trim)
            .filter(|job| !job.is_empty())
            .collect();
        if jobs.is_empty() {
            return Ok(());
        }
        match self
            .commands
            .run("scontrol", &["requeue".to_string(), jobs.join(",")])
            .await
        {
            // A job that ended since squeue listed it needs no requeue.
            Err(SlurmError::Failed { stderr, .. })
                if stderr.contains("Job has already finished")
                    || stderr.contains("Invalid job id specified") =>
            {
                tracing::debug!(%stderr, "requeue found jobs already gone");
                Ok(())
            }
            result => result.map(drop).map_err(Error::from),
        }
    }

    async fn fail(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
        self.take_out(nodes, reason, Update::Fail).await
    }

    /// Running and pending jobs from `squeue`, the last day's jobs from
    /// `sacct` (none, and no history, where the site keeps no accounting).
    async fn queue(&self) -> Result<WorkloadQueue> {
        let output = self
            .commands
            .run(
                "squeue",
                &arguments(&[
                    "-h",
                    "-a",
                    "-t",
                    queue::SQUEUE_STATES,
                    "-o",
                    queue::SQUEUE_FORMAT,
                ]),
            )
            .await?;
        let (running, pending) = queue::parse_squeue(&output, |name| self.names.node_id(name));
        let history = format!("now-{}hours", queue::HISTORY_HOURS);
        let recent = self
            .commands
            .run(
                "sacct",
                &arguments(&[
                    "-a",
                    "-X",
                    "-n",
                    "-P",
                    "-S",
                    &history,
                    "-o",
                    queue::SACCT_FIELDS,
                ]),
            )
            .await;
        let (recent, recent_since) = match recent {
            Ok(output) => (
                queue::parse_sacct(&output),
                Some(Timestamp::now() - Duration::from_secs(queue::HISTORY_HOURS * 3600)),
            ),
            Err(error) => {
                tracing::debug!(%error, "no job accounting: the forecast learns no arrivals");
                (Vec::new(), None)
            }
        };
        Ok(WorkloadQueue {
            running,
            pending,
            recent,
            recent_since,
        })
    }

    async fn node_weights(&self, nodes: &[NodeId]) -> Result<Vec<u32>> {
        self.read_weights(nodes).await
    }

    async fn set_weights(&self, weights: &[(NodeId, u32)]) -> Result<()> {
        self.write_weights(weights).await
    }

    fn features_supported(&self) -> Result<()> {
        Ok(())
    }

    async fn node_features(&self, nodes: &[NodeId]) -> Result<Vec<Vec<String>>> {
        self.read_features(nodes).await
    }

    async fn set_features(&self, features: &[(NodeId, Vec<String>)]) -> Result<()> {
        self.write_features(features).await
    }

    fn reservations_supported(&self) -> Result<()> {
        Ok(())
    }

    async fn reserve_from(&self, reservations: &[(NodeId, Timestamp)]) -> Result<()> {
        self.write_reservations(reservations).await
    }

    async fn reserved_nodes(&self, nodes: &[NodeId]) -> Result<Vec<NodeId>> {
        self.read_reservations(nodes).await
    }

    async fn unreserve(&self, nodes: &[NodeId]) -> Result<()> {
        self.remove_reservations(nodes).await
    }

    async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>> {
        let shown = self.show_nodes().await?;
        let found: Vec<Option<&ShownNode>> = nodes
            .iter()
            .map(|node| {
                self.names
                    .slurm_name(node)
                    .and_then(|name| shown.get(&name))
            })
            .collect();
        // Right after a slurmctld (re)start, nodes are listed as UNKNOWN
        // until their slurmd registers: Slurm cannot say yet what they do.
        // That is a read to repeat, not a node Slurm does not know (which
        // would fail it) nor a quiet one (its job may still run).
        if let Some(node) = found
            .iter()
            .flatten()
            .find(|node| not_registered_yet(&node.state))
        {
            return Err(Error::Unavailable {
                backend: BACKEND,
                message: format!(
                    "Slurm lists node {} in state UNKNOWN: slurmctld has not heard from its \
                     slurmd since it started; asking again later",
                    node.name
                ),
            });
        }
        let runs_jobs = |node: &ShownNode| {
            matches!(
                map_state(&node.state).state,
                WorkloadState::Allocated | WorkloadState::Draining
            )
        };
        let busy: Vec<&str> = found
            .iter()
            .flatten()
            .filter(|node| runs_jobs(node))
            .map(|node| node.name.as_str())
            .collect();
        // squeue is asked only when a node runs jobs, and then once for all.
        let ends = if busy.is_empty() {
            HashMap::new()
        } else {
            self.jobs_end_by_node(&busy).await?
        };
        Ok(nodes
            .iter()
            .zip(found)
            .map(|(node, found)| match found {
                None => WorkloadNode {
                    node: node.clone(),
                    state: WorkloadState::Unknown,
                    responding: false,
                    jobs_end_by: None,
                    reason: None,
                },
                Some(found) => {
                    let mapped = map_state(&found.state);
                    let jobs_end_by = if runs_jobs(found) {
                        ends.get(&found.name).copied().flatten()
                    } else {
                        None
                    };
                    WorkloadNode {
                        node: node.clone(),
                        state: mapped.state,
                        responding: mapped.responding,
                        jobs_end_by,
                        reason: found.reason.clone(),
                    }
                }
            })
            .collect())
    }
}
