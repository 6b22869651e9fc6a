//! `crus session ...`: a client of the CRUS API, with the same flags as
//! `cray crus session ...`, for any server that speaks it (crus or CRUS).
//! The flags become the core's request types and [`crus::client::Client`]
//! sends them; this module parses and prints.

mod hook_flags;
mod options;
mod output;
mod plan_left_out;
pub(crate) mod policy;
mod watch;

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use crus::client::{Client, ClientError};
use crus_core::rollout::FailureBudget;
use crus_core::session::SessionSpec;

pub use options::{OptionsCommand, run as run_options};

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Base URL of the API (`/session` is appended), e.g. `https://api-gw/apis/crus`.
    #[arg(
        long,
        env = "CRUS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Bearer token sent with every request.
    #[arg(long, env = "CRUS_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// How to print answers: the server's JSON unchanged, or a table.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,
    /// Give up on a request after this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The server's JSON, unchanged.
    Json,
    /// A table for people.
    Table,
}

/// `crus session` subcommands.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Start a rolling upgrade (POST /session).
    Create {
        /// The session.
        #[command(flatten)]
        args: Box<CreateArgs>,
        /// Makes the request safe to repeat (after a timeout, say): the same
        /// key and flags answer the session the first request created. A UUID
        /// is a good key.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List every session, newest first (GET /session).
    List,
    /// Show one session (GET /session/{upgrade_id}).
    Describe {
        /// The session's upgrade id.
        upgrade_id: String,
    },
    /// Stop a session safely and remove it (DELETE /session/{upgrade_id}).
    Delete {
        /// The session's upgrade id.
        upgrade_id: String,
    },
    /// Follow a session with live progress until it completes, then show it
    /// (from its event stream, or by polling a server without one).
    Watch {
        /// The session's upgrade id.
        upgrade_id: String,
        /// How often to ask a server that has no event stream.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
    },
    /// Take no new node until resumed; nodes in flight finish (POST /session/{upgrade_id}/pause).
    Pause {
        /// The session's upgrade id.
        upgrade_id: String,
    },
    /// Take nodes again after a pause or a halt (POST /session/{upgrade_id}/resume).
    Resume {
        /// The session's upgrade id.
        upgrade_id: String,
        /// A new failure budget: a count (3) or a percentage (10%); a halted
        /// session needs one larger than its failures.
        #[arg(long, value_name = "N|P%", value_parser = policy::parse_failure_budget)]
        max_failures: Option<FailureBudget>,
    },
    /// Show each node of a session: phase, step, boots, times (GET /session/{upgrade_id}/nodes).
    Nodes {
        /// The session's upgrade id.
        upgrade_id: String,
    },
}

/// The fields of `POST /session`, flag for flag as `cray crus session create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Group holding the nodes to upgrade.
    #[arg(long)]
    pub starting_label: String,
    /// Group for the nodes of the step being upgraded.
    #[arg(long)]
    pub upgrading_label: String,
    /// Group receiving the nodes whose upgrade failed.
    #[arg(long)]
    pub failed_label: String,
    /// Largest number of nodes out of service at once (optional with --step-percent).
    #[arg(long, required_unless_present = "step_percent")]
    pub upgrade_step_size: Option<i64>,
    /// Boot template (BOS session template) to boot the nodes with.
    #[arg(long)]
    pub upgrade_template_id: String,
    /// Workload manager type.
    #[arg(long, default_value = "slurm")]
    pub workload_manager_type: String,
    /// The rollout policy (crus additions; CRUS's body without them).
    #[command(flatten)]
    pub policy: policy::PolicyArgs,
}

impl CreateArgs {
    /// The session these flags ask for. The step size is sent as given (a 0
    /// is the server's to refuse, so its own validation speaks, as with
    /// `cray crus`); only one no session could have is refused here.
    fn to_spec(&self) -> Result<SessionSpec, ClientError> {
        let upgrade_step_size = match self.upgrade_step_size {
            // --step-percent sizes the steps; the server derives the field.
            None => 0,
            // A 0 beside --step-percent would read as "derive it" (see
            // `SessionSpec::to_request_json`): refused here as the server
            // refused it.
            Some(size) if size < 1 && self.policy.step_percent.is_some() => {
                return Err(ClientError::Local(format!(
                    "--upgrade-step-size {size}: must be at least 1 (or leave it out to size the steps with --step-percent)"
                )));
            }
            Some(size) => u32::try_from(size).map_err(|_| {
                ClientError::Local(format!(
                    "--upgrade-step-size {size}: must be a whole number from 1 to {}",
                    u32::MAX
                ))
            })?,
        };
        Ok(SessionSpec {
            failed_label: self.failed_label.clone(),
            starting_label: self.starting_label.clone(),
            upgrade_step_size,
            upgrade_template_id: self.upgrade_template_id.clone(),
            upgrading_label: self.upgrading_label.clone(),
            workload_manager_type: self.workload_manager_type.clone(),
            policy: self.policy.to_request().map_err(ClientError::Local)?,
        })
    }
}

/// The client of `connection`.
fn connect(connection: &ConnectionArgs) -> Result<Client, ClientError> {
    Client::new(
        &connection.url,
        connection.token.clone(),
        connection.timeout,
    )
}

/// `crus plan`: what `crus session create` with the same flags would do,
/// asked of the server (`POST /session?dry_run=true`), nothing created.
pub fn plan(args: &CreateArgs, connection: ConnectionArgs) -> Result<(), ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| ClientError::Local(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(async {
        let client = connect(&connection)?;
        let plan = client.plan(&args.to_spec()?).await?;
        output::print_plan(&plan, connection.format);
        Ok(())
    })
}

/// Runs a `crus session` subcommand.
pub fn run(command: SessionCommand, connection: ConnectionArgs) -> Result<(), ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| ClientError::Local(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(run_async(command, connection))
}

async fn run_async(command: SessionCommand, connection: ConnectionArgs) -> Result<(), ClientError> {
    let client = connect(&connection)?;
    let format = connection.format;
    match command {
        SessionCommand::Create {
            args,
            idempotency_key,
        } => {
            let session = client
                .create(&args.to_spec()?, idempotency_key.as_deref())
                .await?;
            output::print_session(&session, format);
        }
        SessionCommand::List => {
            let sessions = client.list().await?;
            output::print_sessions(&sessions, format);
        }
        SessionCommand::Describe { upgrade_id } => {
            let session = client.get(&upgrade_id).await?;
            output::print_session(&session, format);
        }
        SessionCommand::Delete { upgrade_id } => {
            let session = client.delete(&upgrade_id).await?;
            output::print_session(&session, format);
        }
        SessionCommand::Watch {
            upgrade_id,
            interval,
        } => {
            let session = watch::watch(&client, &upgrade_id, interval).await?;
            output::print_watch_end(&session, format);
        }
        SessionCommand::Pause { upgrade_id } => {
            let session = client.pause(&upgrade_id).await?;
            output::print_session(&session, format);
        }
        SessionCommand::Resume {
            upgrade_id,
            max_failures,
        } => {
            let session = client.resume(&upgrade_id, max_failures).await?;
            output::print_session(&session, format);
        }
        SessionCommand::Nodes { upgrade_id } => {
            let nodes = client.nodes(&upgrade_id).await?;
            output::print_nodes(&nodes, format);
        }
    }
    Ok(())
}
