//! `crus options get|set`: the server-wide options of a crus server
//! (`GET`/`PATCH /options`): the default policy of new sessions, the log
//! level, the server-wide boot rate, the default boot timeouts.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Map, Value};

use crus::client::{Client, ClientError};
use crus_core::options::ServerOptions;

use super::{ConnectionArgs, Format};

/// `crus options` subcommands.
#[derive(Debug, Subcommand)]
pub enum OptionsCommand {
    /// Show the server-wide options (GET /options).
    Get,
    /// Change server-wide options (PATCH /options); they apply to sessions
    /// created afterwards, the log level at once.
    ///
    /// Each KEY=VALUE sets one option: `log_level=debug`,
    /// `max_boots_per_minute=30`, `boot_timeouts.bos=45m`,
    /// `default_policy.retries=2`, `default_policy.max_failures=10%`. A VALUE
    /// that is JSON (a number, true, false, null, an object) is sent as
    /// such, anything else as text; `null` unsets the option.
    Set {
        /// Options to change, as KEY=VALUE.
        #[arg(value_name = "KEY=VALUE", required_unless_present = "file")]
        assignments: Vec<String>,
        /// A JSON file holding the patch (`-` for standard input), e.g.
        /// `{"default_policy": {"retries": 2}, "log_level": "info"}`; the
        /// KEY=VALUE given too are applied over it.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Runs a `crus options` subcommand.
pub fn run(command: OptionsCommand, connection: ConnectionArgs) -> Result<(), ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| ClientError::Local(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(async {
        let client = Client::new(
            &connection.url,
            connection.token.clone(),
            connection.timeout,
        )?;
        match command {
            OptionsCommand::Get => {
                let answer = client.options().await?;
                print_options(&answer.raw, &answer.value, connection.format);
            }
            OptionsCommand::Set { assignments, file } => {
                let patch = patch_of(file.as_deref(), &assignments)?;
                let answer = client.patch_options(&patch).await?;
                print_options(&answer.raw, &answer.value.options, connection.format);
                let note = &answer.value.applies_to;
                if connection.format == Format::Table && !note.is_empty() {
                    println!("\n{note}");
                }
            }
        }
        Ok(())
    })
}

/// The `PATCH /options` body of `--file` and the assignments over it.
fn patch_of(file: Option<&std::path::Path>, assignments: &[String]) -> Result<Value, ClientError> {
    let mut patch = match file {
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|error| {
                    ClientError::Local(format!("cannot read standard input: {error}"))
                })?
            } else {
                std::fs::read_to_string(path).map_err(|error| {
                    ClientError::Local(format!("cannot read --file {}: {error}", path.display()))
                })?
            };
            match serde_json::from_str(&text) {
                Ok(Value::Object(members)) => members,
                Ok(_) => {
                    return Err(ClientError::Local(format!(
                        "--file {} must hold a JSON object of options",
                        path.display()
                    )));
                }
                Err(error) => {
                    return Err(ClientError::Local(format!(
                        "--file {} is not JSON: {error}",
                        path.display()
                    )));
                }
            }
        }
        None => Map::new(),
    };
    for assignment in assignments {
        assign(&mut patch, assignment)?;
    }
    Ok(Value::Object(patch))
}

/// Sets `KEY=VALUE` (KEY an option, or `option.member`) in `patch`.
fn assign(patch: &mut Map<String, Value>, assignment: &str) -> Result<(), ClientError> {
    let Some((key, text)) = assignment.split_once('=') else {
        return Err(ClientError::Local(format!(
            "{assignment:?} is not KEY=VALUE (e.g. log_level=debug, default_policy.retries=2)"
        )));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(ClientError::Local(format!(
            "{assignment:?} names no option before '='"
        )));
    }
    // JSON where it parses (numbers, booleans, null, objects), text otherwise.
    let value =
        serde_json::from_str(text.trim()).unwrap_or_else(|_| Value::String(text.to_string()));
    match key.split_once('.') {
        None => {
            patch.insert(key.to_string(), value);
        }
        Some((option, member)) => {
            let entry = patch
                .entry(option.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(members) => {
                    members.insert(member.to_string(), value);
                }
                _ => {
                    return Err(ClientError::Local(format!(
                        "{assignment:?}: {option} is set as a whole already; set it or its members, not both"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Prints `options` (from the answer `raw`): JSON unchanged, or one
/// `key = value` a line.
fn print_options(raw: &str, options: &ServerOptions, format: Format) {
    match format {
        Format::Json => println!("{}", raw.trim_end()),
        Format::Table => {
            // The options as the server wrote them: every key, `null` for
            // one not set (serialising these fields cannot fail).
            let options = serde_json::to_value(options).unwrap_or(Value::Null);
            let mut lines = Vec::new();
            flatten("", &options, &mut lines);
            if lines.is_empty() {
                println!("(no option set: the server's configuration applies)");
            }
            for (key, value) in lines {
                println!("{key} = {value}");
            }
        }
    }
}

/// The leaves of `value` under `prefix`, as `a.b` keys; unset options show
/// as `(not set)`.
fn flatten(prefix: &str, value: &Value, lines: &mut Vec<(String, String)>) {
    match value {
        Value::Object(members) if prefix.is_empty() || prefix.matches('.').count() == 0 => {
            if members.is_empty() && !prefix.is_empty() {
                lines.push((prefix.to_string(), "(not set)".to_string()));
            }
            for (key, member) in members {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, member, lines);
            }
        }
        Value::Null => lines.push((prefix.to_string(), "(not set)".to_string())),
        Value::String(text) => lines.push((prefix.to_string(), text.clone())),
        other => lines.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assignments_make_a_merge_patch() {
        let patch = patch_of(
            None,
            &[
                "log_level=debug".to_string(),
                "max_boots_per_minute=30".to_string(),
                "boot_timeouts.bos=45m".to_string(),
                "default_policy.retries=2".to_string(),
                "default_policy.max_failures=10%".to_string(),
                "default_policy.canary={\"size\": 2}".to_string(),
                "boot_timeouts.sim=null".to_string(),
            ],
        )
        .unwrap();
        assert_eq!(
            patch,
            json!({
                "log_level": "debug",
                "max_boots_per_minute": 30,
                "boot_timeouts": {"bos": "45m", "sim": null},
                "default_policy": {"retries": 2, "max_failures": "10%", "canary": {"size": 2}}
            })
        );
        assert!(patch_of(None, &["log_level".to_string()]).is_err());
        assert!(patch_of(None, &["=debug".to_string()]).is_err());
    }
}
