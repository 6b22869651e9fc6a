//! `crus session ...`: a client of the CRUS API, with the same flags as
//! `cray crus session ...`, for any server that speaks it (crus or CRUS).

mod http;
mod output;
mod watch;

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

pub use http::{Answer, ApiClient, ClientError};

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
    Create(CreateArgs),
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
    /// Follow a session with live progress until it completes, then show it.
    Watch {
        /// The session's upgrade id.
        upgrade_id: String,
        /// How often to ask the server.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
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
    /// Largest number of nodes out of service at once.
    #[arg(long)]
    pub upgrade_step_size: i64,
    /// Boot template (BOS session template) to boot the nodes with.
    #[arg(long)]
    pub upgrade_template_id: String,
    /// Workload manager type.
    #[arg(long, default_value = "slurm")]
    pub workload_manager_type: String,
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
    let client = ApiClient::new(
        &connection.url,
        connection.token.clone(),
        connection.timeout,
    )?;
    let format = connection.format;
    match command {
        SessionCommand::Create(args) => {
            // Sent as given (a step size of 0 is the server's to refuse), so
            // the server's own validation speaks, as with `cray crus`.
            let body = json!({
                "starting_label": args.starting_label,
                "upgrading_label": args.upgrading_label,
                "failed_label": args.failed_label,
                "upgrade_step_size": args.upgrade_step_size,
                "upgrade_template_id": args.upgrade_template_id,
                "workload_manager_type": args.workload_manager_type,
            });
            let session = client.create(&body).await?;
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
    }
    Ok(())
}
