//! `crus demo`: a full rolling upgrade of a simulated cluster that replays a
//! real job trace, in virtual time, with live progress and a summary.

mod progress;
mod summary;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use crus_backends::sim::{Faults, SimCluster, SimConfig, Workload};
use crus_core::clock::{Clock, TokioClock};
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::rollout::RolloutPolicy;
use crus_core::store::{MemoryStore, SessionStore};
use crus_core::{SessionSpec, Timestamp};

use crate::client::policy::PolicyArgs;
use crus_core::session::PolicyRequest;
use summary::Summary;

/// Options of `crus demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of nodes of the simulated cluster.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    nodes: u32,
    /// Largest number of nodes out of service at once (CRUS's upgrade_step_size).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    step: u32,
    /// Job trace to replay: a Standard Workload Format file (gzip or plain),
    /// `synthetic` for a seeded synthetic workload, or `none`.
    /// Default: the bundled NASA iPSC/860 trace (1993, 128 nodes) for up to
    /// 128 nodes, the synthetic workload sized to the machine above.
    #[arg(long, value_name = "PATH|synthetic|none")]
    trace: Option<String>,
    /// How far into the trace the simulation starts. The default, 7 days into
    /// the NASA trace, is a busy working day (Friday 8 October 1993).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    trace_offset: Duration,
    /// How long the cluster runs jobs before the upgrade starts, so it is busy.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Typical time a node takes to reboot (each boot varies by ±25%).
    #[arg(long, default_value = "4m", value_parser = parse_positive_duration)]
    boot_time: Duration,
    /// Fraction of node boots that fail (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    fail_rate: f64,
    /// Seed of every random choice, so a run can be repeated exactly.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object with the results instead of progress and a table.
    #[arg(long)]
    json: bool,
    /// Simulated seconds per wall-clock second while progress is shown on a
    /// terminal (0: as fast as possible). Ignored with --json.
    #[arg(long, default_value_t = 3600.0)]
    speed: f64,
    /// The session's rollout policy: the flags of `crus session create`,
    /// so the effect of a policy can be seen on a site's own trace.
    /// `--boot-timeout` defaults here to the larger of 10 minutes and three
    /// boot times.
    #[command(flatten)]
    policy: Box<PolicyArgs>,
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("{error} (examples: 90s, 4m, 1h30m)"))?;
    if duration.is_zero() {
        return Err("must be longer than zero".to_string());
    }
    Ok(duration)
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("{value} is not between 0 and 1"));
    }
    Ok(value)
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The trace could not be read.
    #[error(
        "{message}\n(--trace takes a Standard Workload Format file, gzip or plain, or `synthetic` or `none`)"
    )]
    Trace {
        /// What went wrong, naming the file.
        message: String,
    },
    /// The policy flags do not make a policy the server would accept.
    #[error("{0}")]
    Policy(String),
    /// The simulation or the controller failed.
    #[error("{0}")]
    Run(String),
}

/// The timestamp the simulated cluster's clock starts at (any fixed time works;
/// a fixed one keeps runs identical).
const SIMULATION_EPOCH: Timestamp = Timestamp::from_secs(1_798_761_600); // 2027-01-01T00:00:00Z

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<(), DemoError> {
    // Checked before the trace is read: a wrong flag fails at once.
    let policy = session_policy(&args)?;
    let workload = load_workload(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|error| DemoError::Run(format!("cannot start the async runtime: {error}")))?;
    let summary = runtime.block_on(simulate(&args, workload, policy))?;
    if args.json {
        let json = serde_json::to_string_pretty(&summary)
            .map_err(|error| DemoError::Run(format!("cannot encode the results: {error}")))?;
        println!("{json}");
    } else {
        summary.print_table();
    }
    Ok(())
}

fn load_workload(args: &DemoArgs) -> Result<Workload, DemoError> {
    match args.trace.as_deref() {
        None if !workload::nasa_fits(args.nodes) => Ok(Workload::synthetic(&workload::synthetic(
            args.nodes,
            args.seed,
            args.trace_offset,
            args.warmup,
        ))),
        None => Workload::nasa_ipsc().map_err(|error| DemoError::Trace {
            message: format!("the bundled NASA iPSC/860 trace is damaged: {error}"),
        }),
        Some("none") => Ok(Workload::None),
        Some("synthetic") => Ok(Workload::synthetic(&workload::synthetic(
            args.nodes,
            args.seed,
            args.trace_offset,
            args.warmup,
        ))),
        Some(path) => {
            Workload::from_swf_file(&PathBuf::from(path)).map_err(|error| DemoError::Trace {
                message: error.to_string(),
            })
        }
    }
}

/// The policy the policy flags give, checked as the server checks the
/// `policy` object of `POST /session` (the same messages, under the same
/// names), over the demo's defaults.
fn session_policy(args: &DemoArgs) -> Result<RolloutPolicy, DemoError> {
    let defaults = RolloutPolicy {
        boot_timeout: Duration::from_secs(600).max(args.boot_time * 3),
        ..RolloutPolicy::default()
    };
    let Some(request) = args.policy.to_request().map_err(DemoError::Policy)? else {
        return Ok(defaults);
    };
    let json = serde_json::to_value(&request)
        .map_err(|error| DemoError::Policy(format!("cannot encode the policy: {error}")))?;
    let request = PolicyRequest::from_json(&json).map_err(|errors| {
        let problems: Vec<String> = errors
            .iter()
            .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
            .collect();
        DemoError::Policy(format!("invalid policy flags: {}", problems.join("; ")))
    })?;
    Ok(request.apply(&defaults))
}

async fn simulate(
    args: &DemoArgs,
    workload: Workload,
    policy: RolloutPolicy,
) -> Result<Summary, DemoError> {
    let clock = Arc::new(TokioClock::starting_at(SIMULATION_EPOCH));
    let boot_timeout = policy.boot_timeout;
    let config = SimConfig {
        nodes: args.nodes as usize,
        seed: args.seed,
        workload,
        trace_offset: args.trace_offset,
        boot_time: args.boot_time,
        faults: Faults {
            boot_fail_rate: args.fail_rate,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let group = config.group.clone();
    let template = config.template.clone();
    let sim = SimCluster::new(config, clock.clone() as Arc<dyn Clock>)
        .map_err(|error| DemoError::Run(format!("cannot build the simulated cluster: {error}")))?;

    // Let the cluster fill up with jobs before the upgrade starts.
    tokio::time::sleep(args.warmup).await;
    sim.advance_to(clock.now());

    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let controller = Controller::new(
        sim.ports(),
        store.clone(),
        clock.clone(),
        ControllerConfig {
            // Only this process writes requests; no need to poll for them often.
            command_poll_interval: Duration::from_secs(600),
            ..ControllerConfig::default()
        },
    );
    let spec = SessionSpec {
        failed_label: "crus-failed".into(),
        starting_label: group,
        upgrade_step_size: args.step,
        upgrade_template_id: template,
        upgrading_label: "crus-upgrading".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    };
    let status = controller
        .create_session(spec.clone(), policy)
        .await
        .map_err(|error| DemoError::Run(format!("cannot create the session: {error}")))?;
    let upgrade_id = status.upgrade_id;

    let show_progress = !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let pace = if show_progress && args.speed > 0.0 {
        Some(args.speed)
    } else {
        None
    };
    let watcher = progress::Progress::new(show_progress, args.nodes as u64);
    let drive = controller.drive(upgrade_id);
    let watch = watcher.follow(store.clone(), &sim, upgrade_id, pace);
    let (driven, ()) = tokio::join!(
        async {
            let result = drive.await;
            watcher.stop();
            result
        },
        watch
    );
    driven.map_err(|error| DemoError::Run(format!("the session stopped: {error}")))?;
    watcher.finish();

    let record = store
        .get(upgrade_id)
        .await
        .map_err(|error| DemoError::Run(error.to_string()))?
        .ok_or_else(|| DemoError::Run("the session record vanished".to_string()))?;
    sim.advance_to(clock.now());
    Ok(Summary::new(
        &record.value.rollout,
        &sim,
        &spec,
        args,
        boot_timeout,
    ))
}
