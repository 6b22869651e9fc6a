//! `crus`: rolling upgrades of HPC compute nodes from the command line.
//!
//! The binary holds no domain logic: it parses arguments into settings and
//! hands them to the library (`crus-core`, `crus-backends`).

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Upgrade HPC compute nodes a few at a time, keeping the machine running jobs.
#[derive(Debug, Parser)]
#[command(name = "crus", version, about, long_about = None)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a rolling upgrade of a simulated cluster replaying a real job trace.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
