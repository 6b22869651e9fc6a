//! `crus bench`: the benchmarks that run from the command line. Only
//! `efficiency` for now, the same code as
//! `cargo bench -p crus-backends --bench efficiency`
//! (`crus_backends::sim::efficiency`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use crus_backends::sim::efficiency::{self, EfficiencySettings, TraceChoice};

/// Options of `crus bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    benchmark: Benchmark,
}

#[derive(Debug, Subcommand)]
enum Benchmark {
    /// Rollout efficiency in simulation: CRUS's policy against crus's on a
    /// real job trace and a synthetic one, from many start points, against
    /// a lower bound (see BENCHMARKS.md).
    Efficiency(EfficiencyArgs),
}

/// Options of `crus bench efficiency`.
#[derive(Debug, Args)]
struct EfficiencyArgs {
    /// A smoke run: 2 start points and a shorter synthetic trace.
    #[arg(long)]
    quick: bool,
    /// Where to write every figure as JSON.
    #[arg(long, default_value = "target/bench/efficiency.json")]
    output: PathBuf,
    /// Which trace to replay: `nasa` (the bundled NASA iPSC/860 trace, 128
    /// nodes), `synthetic` (a seeded high-utilisation trace, 128 nodes),
    /// `both`, or the path of any Standard Workload Format file, gzip or
    /// plain (then --nodes gives the cluster's size).
    #[arg(long, default_value = "both", value_name = "nasa|synthetic|both|PATH")]
    trace: String,
    /// The cluster's size when --trace is a file: jobs wider than it are
    /// left out.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    nodes: Option<u32>,
}

/// Why `crus bench` failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The flags do not name a trace the benchmark can replay.
    #[error("{0}")]
    Usage(String),
    /// The benchmark could not run or its output could not be written.
    #[error("{0}")]
    Run(#[from] efficiency::EfficiencyError),
    /// It ran, but a run broke an invariant (a bug, not a slow figure).
    #[error(
        "{0} invariant violation(s), listed above with the figures; the figures were still written"
    )]
    Violations(usize),
}

/// Runs `crus bench ...`.
pub fn run(args: BenchArgs) -> Result<(), BenchError> {
    match args.benchmark {
        Benchmark::Efficiency(args) => run_efficiency(args),
    }
}

fn run_efficiency(args: EfficiencyArgs) -> Result<(), BenchError> {
    let nodes = args.nodes.map(|nodes| nodes as usize);
    let traces = TraceChoice::parse_with_nodes(&args.trace, nodes).map_err(BenchError::Usage)?;
    let settings = if args.quick {
        EfficiencySettings::quick(traces)
    } else {
        EfficiencySettings::full(traces)
    };
    let new_runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
    };
    let progress = |done: usize, total: usize| {
        if done == total || done % (total / 10).max(1) == 0 {
            eprintln!("efficiency: {done}/{total} simulated runs");
        }
    };
    let report = efficiency::run(&settings, &new_runtime, &progress)?;
    print!("{}", report.table());
    report.write_json(&args.output)?;
    println!("figures written to {}", args.output.display());
    if report.passed() {
        Ok(())
    } else {
        Err(BenchError::Violations(report.violations.len()))
    }
}
