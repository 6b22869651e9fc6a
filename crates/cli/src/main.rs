//! `crus`: rolling upgrades of HPC compute nodes from the command line.
//!
//! The binary holds no domain logic: it parses arguments into settings and
//! hands them to the library (`crus-core`, `crus-backends`).

mod bench;
mod client;
mod config_check;
mod demo;
mod generate;
mod serve;

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
    /// Run a benchmark (`crus bench efficiency`; see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Run a rolling upgrade of a simulated cluster replaying a real job trace.
    Demo(demo::DemoArgs),
    /// Serve the CRUS API, running sessions on the configured backends.
    Serve(Box<serve::ServeArgs>),
    /// Create, list, describe, delete and watch sessions on a CRUS API server.
    Session {
        /// What to do.
        #[command(subcommand)]
        command: client::SessionCommand,
        /// The server.
        #[command(flatten)]
        connection: client::ConnectionArgs,
    },
    /// Show or change the server-wide options of a crus server (GET and
    /// PATCH /options): default policy of new sessions, log level, boot
    /// rate, default boot timeouts.
    Options {
        /// What to do.
        #[command(subcommand)]
        command: client::OptionsCommand,
        /// The server.
        #[command(flatten)]
        connection: client::ConnectionArgs,
    },
    /// Ask a CRUS API server what `crus session create` with these flags
    /// would do (POST /session?dry_run=true): steps, nodes, expected times
    /// and why, nothing created.
    Plan {
        /// The session to plan.
        #[command(flatten)]
        args: Box<client::CreateArgs>,
        /// The server.
        #[command(flatten)]
        connection: client::ConnectionArgs,
    },
    /// Check a configuration file (`crus config check`) before serving with it.
    Config(config_check::ConfigArgs),
    /// Write the man pages or the completion scripts into a directory (packaging).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
    /// Print a shell completion script (e.g. `crus completions bash > /etc/bash_completion.d/crus`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Writes to standard output; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(format!("cannot write to standard output: {error}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(args).map_err(|error| error.to_string()),
        Command::Demo(args) => demo::run(args).map_err(|error| error.to_string()),
        Command::Serve(args) => serve::run(*args),
        Command::Session {
            command,
            connection,
        } => client::run(command, connection).map_err(|error| error.to_string()),
        Command::Options {
            command,
            connection,
        } => client::run_options(command, connection).map_err(|error| error.to_string()),
        Command::Plan { args, connection } => {
            client::plan(&args, connection).map_err(|error| error.to_string())
        }
        Command::Config(args) => config_check::run(args),
        Command::Generate(args) => generate::run(args, <Cli as clap::CommandFactory>::command()),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "crus", &mut script);
            write_stdout(&script)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
