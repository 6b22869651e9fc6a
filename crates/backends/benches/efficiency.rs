//! The rollout-efficiency benchmark: `cargo bench -p crus-backends --bench efficiency`.
//!
//! Same code as `crus bench efficiency` (see
//! `crus_backends::sim::efficiency`). Flags, after `--`: `--quick` (a smoke
//! run), `--trace nasa|synthetic|both|PATH` (both), `--nodes N` (the
//! cluster's size for a trace file), `--output PATH`
//! (`target/bench/efficiency.json` in the workspace's target directory).
//! Since `cargo bench` passes flags to every bench, a site's own trace can
//! also be given as `CRUS_BENCH_TRACE=PATH CRUS_BENCH_NODES=N` (any
//! Standard Workload Format file, gzip or plain; flags win).
//!
//! It prints a table and writes every figure as JSON. It never fails on a
//! figure or a missed target; it exits non-zero only when it could not run,
//! or when a run broke an invariant (more nodes out of service than the
//! step, a node rebooted under a job), which is a bug, not a timing.

use std::path::PathBuf;
use std::process::ExitCode;

use crus_backends::sim::efficiency::{self, EfficiencySettings, TraceChoice};

/// Parsed flags.
struct Flags {
    quick: bool,
    traces: Vec<TraceChoice>,
    output: PathBuf,
}

fn parse_flags() -> Result<Flags, String> {
    let mut flags = Flags {
        quick: false,
        traces: vec![TraceChoice::Nasa, TraceChoice::Synthetic],
        output: default_output(),
    };
    let mut trace = std::env::var("CRUS_BENCH_TRACE").ok();
    let mut nodes = match std::env::var("CRUS_BENCH_NODES") {
        Ok(text) => Some(
            text.parse::<usize>()
                .map_err(|_| format!("CRUS_BENCH_NODES={text:?} is not a number of nodes"))?,
        ),
        Err(_) => None,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            // cargo bench passes --bench to every harness = false target.
            "--bench" => {}
            "--quick" => flags.quick = true,
            "--trace" => {
                let value = arguments
                    .next()
                    .ok_or("--trace needs a value: nasa, synthetic, both or a trace file")?;
                trace = Some(value);
            }
            "--nodes" => {
                let value = arguments.next().ok_or("--nodes needs a number")?;
                nodes = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--nodes {value:?} is not a number of nodes"))?,
                );
            }
            "--output" => {
                flags.output = arguments.next().ok_or("--output needs a path")?.into();
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; the flags are --quick, --trace nasa|synthetic|both|PATH, --nodes N, --output PATH"
                ));
            }
        }
    }
    if let Some(trace) = trace {
        flags.traces = TraceChoice::parse_with_nodes(&trace, nodes)?;
    } else if nodes.is_some() {
        return Err(
            "--nodes (CRUS_BENCH_NODES) is for a trace file given with --trace (CRUS_BENCH_TRACE)"
                .to_string(),
        );
    }
    Ok(flags)
}

/// `<target>/bench/efficiency.json`: the bench runs from
/// `<target>/<profile>/deps/`, wherever the target directory is.
fn default_output() -> PathBuf {
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench").join("efficiency.json")
}

fn paused_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
}

fn main() -> ExitCode {
    let flags = match parse_flags() {
        Ok(flags) => flags,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let settings = if flags.quick {
        EfficiencySettings::quick(flags.traces)
    } else {
        EfficiencySettings::full(flags.traces)
    };
    let progress = |done: usize, total: usize| {
        if done == total || done % (total / 10).max(1) == 0 {
            eprintln!("efficiency: {done}/{total} simulated runs");
        }
    };
    let report = match efficiency::run(&settings, &paused_runtime, &progress) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.table());
    if let Err(error) = report.write_json(&flags.output) {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    println!("figures written to {}", flags.output.display());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: invariants were broken; see the VIOLATION lines above");
        ExitCode::FAILURE
    }
}
