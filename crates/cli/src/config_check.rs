//! `crus config check [--config FILE] [--offline]`: tells whether `crus
//! serve` would start on a configuration file, before it is put in service
//! (and before every start of the packaged unit, as its `ExecStartPre`).
//!
//! The checks are the library's (`crus::server::check`); this file parses
//! the flags and prints what would run, or every problem found, each naming
//! its key.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crus::server::Config;
use crus::server::check::{Problem, offline_problems, reach_backends, summary};

/// `crus config ...`
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// `crus config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file and the secret files it names, reach
    /// each configured backend once, and print what `crus serve` would run
    /// (exit 0), or every problem with its key (exit 1).
    Check {
        /// The configuration file.
        #[arg(long, value_name = "PATH", default_value = "/etc/crus/crus.toml")]
        config: PathBuf,
        /// Do not reach the backends: check the file and its secret files only.
        #[arg(long)]
        offline: bool,
    },
}

/// Runs `crus config ...`; an error means the file is not usable (exit 1).
pub fn run(args: ConfigArgs) -> Result<(), String> {
    match args.command {
        ConfigCommand::Check { config, offline } => check(&config, offline),
    }
}

fn check(path: &Path, offline: bool) -> Result<(), String> {
    // The same loading and validation as `crus serve --config`.
    let config = Config::load(path).map_err(|error| {
        format!(
            "{error}\n{} is not usable; crus serve would not start",
            path.display()
        )
    })?;
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let raw: toml::Value =
        toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;

    let mut problems = offline_problems(&config, &raw);
    let mut reached = Vec::new();
    if !offline {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the async runtime: {error}"))?;
        for (target, result) in runtime.block_on(reach_backends(&config)) {
            match result {
                Ok(answer) => reached.push(format!("{} ({}): {answer}", target.key, target.what)),
                Err(message) => problems.push(Problem {
                    key: target.key,
                    message,
                }),
            }
        }
    }

    let mut report = summary(path, &config);
    if offline {
        report.push_str("backends: not reached (--offline)\n");
    } else if reached.is_empty() {
        report.push_str("backends: none to reach (simulated or local)\n");
    } else {
        for line in &reached {
            report.push_str(&format!("reached {line}\n"));
        }
    }
    crate::write_stdout(report.as_bytes())?;
    if problems.is_empty() {
        return Ok(());
    }
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    Err(format!(
        "{} has {} problem(s); crus serve would not start (or not work) with it",
        path.display(),
        problems.len()
    ))
}
