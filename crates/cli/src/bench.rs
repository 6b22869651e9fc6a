//! `crus bench`: the benchmarks that run from the command line. Only
//! `efficiency` for now, the same code as
//! `cargo bench -p crus-backends --bench efficiency`
//! (`crus_backends::sim::efficiency`).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
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
    /// Which trace to replay.
    #[arg(long, value_enum, default_value_t = TraceArg::Both)]
    trace: TraceArg,
}

/// `--trace` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum TraceArg {
    /// The bundled NASA iPSC/860 trace (128 nodes).
    Nasa,
    /// A seeded synthetic high-utilisation trace (128 nodes).
    Synthetic,
    /// Both.
    Both,
}

impl TraceArg {
    fn traces(self) -> Vec<TraceChoice> {
        match self {
            TraceArg::Nasa => vec![TraceChoice::Nasa],
            TraceArg::Synthetic => vec![TraceChoice::Synthetic],
            TraceArg::Both => vec![TraceChoice::Nasa, TraceChoice::Synthetic],
        }
    }
}

/// Why `crus bench` failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
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
    let traces = args.trace.traces();
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
