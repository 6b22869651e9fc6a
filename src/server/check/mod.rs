//! Whether `crus serve` would start on a configuration, and work, checked
//! before it is put in service (`crus config check`, and the packaged
//! unit's `ExecStartPre`): every secret file the chosen backends and auth
//! name is read, the API must accept some credential, and each configured
//! backend can be reached once ([`reach_backends`]). Problems are collected
//! rather than stopping at the first, so one run lists everything to fix,
//! each naming its key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{BackendKind, Config, StoreKind};

mod reach;

pub use reach::{Target, reach_backends};

/// One thing wrong, at its key (`auth.tokens_file`, `bos.base_url`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key at fault.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The problems found without reaching anything: secret files that
/// cannot be read or are empty, environment variables named and not set,
/// and an API that would accept no credential. `raw` is the file as TOML,
/// for the `*_file` keys of the sections in use.
pub fn offline_problems(config: &Config, raw: &toml::Value) -> Vec<Problem> {
    let mut problems = check_secrets(config, raw);
    problems.extend(check_auth(config));
    problems
}

/// What `crus serve` would run with `config`, one line per part.
pub fn summary(path: &Path, config: &Config) -> String {
    let mut lines = vec![format!("configuration: {} (valid)", path.display())];
    let server = &config.server;
    lines.push(format!(
        "server: listen {}, log format {:?}",
        server.listen, server.log_format
    ));
    lines.push(match config.store.kind {
        StoreKind::Sqlite => format!("store: sqlite {}", server.db.display()),
        StoreKind::Etcd => format!(
            "store: etcd {} (prefix {})",
            config.etcd.endpoints.join(","),
            config.etcd.prefix
        ),
    });
    let backends = &config.backends;
    let power = backends.power.map_or_else(
        || {
            if backends.boot.name() == "sim" {
                "sim"
            } else {
                "none"
            }
        },
        BackendKind::name,
    );
    let (inventory, workload_manager, boot) = (
        backends.inventory.name(),
        backends.workload_manager.name(),
        backends.boot.name(),
    );
    lines.push(format!(
        "backends: inventory {inventory}, workload manager {workload_manager}, boot {boot}, power {power}"
    ));
    if [inventory, workload_manager, boot, power].contains(&"sim") {
        lines.push(format!(
            "simulated cluster: {} nodes at {}x",
            config.sim.nodes, config.sim.speed
        ));
    }
    lines.push(format!(
        "rollout: default boot timeout {}, poll interval {}",
        humantime::format_duration(config.default_boot_timeout()),
        humantime::format_duration(config.rollout.poll_interval)
    ));
    let kinds = auth_kinds(config);
    lines.push(if kinds.is_empty() {
        "auth: none configured".to_string()
    } else {
        format!("auth: {}", kinds.join(", "))
    });
    lines.push(if config.webhooks.is_empty() {
        "webhooks: none".to_string()
    } else {
        format!(
            "webhooks: {}",
            config
                .webhooks
                .iter()
                .map(|webhook| webhook.url.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    lines.push(format!(
        "health checks: commands {}, HTTP hosts {}",
        if config.health.allow_commands {
            "allowed"
        } else {
            "refused"
        },
        config.health.allowed_http_hosts.join(", ")
    ));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The kinds of credential the API accepts with `config` (and the
/// environment `crus serve` reads: `CRUS_TOKENS`, `CRUS_JWT_SECRET`).
fn auth_kinds(config: &Config) -> Vec<String> {
    let auth = &config.auth;
    let mut kinds = Vec::new();
    if !auth.tokens.is_empty() {
        kinds.push(format!("{} static token(s)", auth.tokens.len()));
    }
    if let Some(path) = &auth.tokens_file {
        kinds.push(format!("tokens file {}", path.display()));
    }
    if std::env::var_os("CRUS_TOKENS").is_some() {
        kinds.push("tokens from CRUS_TOKENS".to_string());
    }
    if auth.jwt_secret_file.is_some() || std::env::var_os("CRUS_JWT_SECRET").is_some() {
        kinds.push("HS256 JWTs".to_string());
    }
    if auth.jwt_public_key_file.is_some() {
        kinds.push("JWTs signed by a public key".to_string());
    }
    if auth.jwks_file.is_some() {
        kinds.push("JWTs of a JWKS file".to_string());
    }
    if let Some(url) = &auth.jwks_url {
        kinds.push(format!("JWTs of the JWKS URL {url}"));
    }
    if auth.no_auth {
        kinds.push("no authentication (no_auth: every request accepted)".to_string());
    }
    kinds
}

fn check_auth(config: &Config) -> Option<Problem> {
    auth_kinds(config).is_empty().then(|| Problem {
        key: "auth".to_string(),
        message: "nothing would accept a request: set auth.tokens_file, \
                  auth.jwt_public_key_file, auth.jwks_file or auth.jwks_url \
                  (or auth.no_auth = true on a laptop)"
            .to_string(),
    })
}

/// The sections `crus serve` reads with `config`: the others, present or
/// not, are ignored, so their files are not required.
fn sections_in_use(config: &Config) -> BTreeSet<&'static str> {
    let backends = &config.backends;
    let power = backends.power.map_or("none", BackendKind::name);
    let mut sections = BTreeSet::from(["auth", "webhooks"]);
    if config.store.kind == StoreKind::Etcd {
        sections.insert("etcd");
    }
    if backends.inventory.name() == "hsm" {
        sections.insert("hsm");
    }
    if matches!(backends.boot.name(), "bos" | "bos-v1") {
        sections.insert("bos");
    }
    if power == "redfish" {
        sections.insert("redfish");
    }
    if backends.boot.name() == "kadeploy" || power == "kadeploy" {
        sections.insert("kadeploy");
    }
    if !config.cyclecloud_ports().is_empty() {
        sections.insert("cyclecloud");
    }
    sections
}

/// `*_file` keys that are not secrets to read: a Kadeploy
/// `authorized_keys` location is sent to Kadeploy as it is, and the
/// CycleCloud state file is crus's own, made at its first write.
const NOT_READ_BY_CRUS: &[&str] = &["ssh_authorized_keys_file", "state_file"];

/// Every `*_file` key of the sections in use, with its value, as
/// `(key, path)` (`auth.tokens_file`, `webhooks[1].secret_file`, ...).
pub fn secret_files(config: &Config, raw: &toml::Value) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    let Some(table) = raw.as_table() else {
        return files;
    };
    for section in sections_in_use(config) {
        if let Some(value) = table.get(section) {
            collect_files(section, value, &mut files);
        }
    }
    files
}

fn collect_files(key: &str, value: &toml::Value, files: &mut Vec<(String, PathBuf)>) {
    match value {
        toml::Value::Table(table) => {
            for (name, value) in table {
                let child = format!("{key}.{name}");
                match value {
                    toml::Value::String(path)
                        if name.ends_with("_file")
                            && !NOT_READ_BY_CRUS.contains(&name.as_str()) =>
                    {
                        files.push((child, PathBuf::from(path)));
                    }
                    _ => collect_files(&child, value, files),
                }
            }
        }
        toml::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                collect_files(&format!("{key}[{index}]"), item, files);
            }
        }
        _ => {}
    }
}

/// Each secret file read as `crus serve` (or a backend, at its first call)
/// would; an environment variable named by `*_env` must be set.
fn check_secrets(config: &Config, raw: &toml::Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (key, path) in secret_files(config, raw) {
        match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => problems.push(Problem {
                key,
                message: format!("{} is empty; put the secret in it", path.display()),
            }),
            Ok(_) => {}
            Err(error) => problems.push(Problem {
                key,
                message: format!(
                    "cannot read {}: {error} (the server reads it as its own user; check the path and its permissions)",
                    path.display()
                ),
            }),
        }
    }
    let mut variables = Vec::new();
    for (section, name) in [
        (
            "hsm",
            config.hsm.as_ref().and_then(|hsm| hsm.token_env.clone()),
        ),
        (
            "bos",
            config.bos.as_ref().and_then(|bos| bos.token_env.clone()),
        ),
    ] {
        if let Some(name) = name {
            variables.push((format!("{section}.token_env"), section, name));
        }
    }
    if let Some(name) = config
        .cyclecloud
        .as_ref()
        .and_then(|section| section.password_env.clone())
    {
        variables.push(("cyclecloud.password_env".to_string(), "cyclecloud", name));
    }
    let in_use = sections_in_use(config);
    for (key, section, name) in variables {
        if in_use.contains(section) && std::env::var_os(&name).is_none() {
            problems.push(Problem {
                key,
                message: format!("the environment variable {name} is not set"),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> (Config, toml::Value) {
        (toml::from_str(text).unwrap(), toml::from_str(text).unwrap())
    }

    #[test]
    fn secret_files_are_those_of_the_sections_in_use() {
        let (config, raw) = config(
            "[auth]\ntokens_file = \"/t\"\n\
             [backends]\ninventory = \"hsm\"\nworkload_manager = \"none\"\nboot = \"sim\"\n\
             [hsm]\nbase_url = \"https://hsm\"\noauth2_client_secret_file = \"/s\"\nca_file = \"/ca\"\n\
             [bos]\nbase_url = \"https://bos\"\ntoken_file = \"/unused\"\n\
             [[webhooks]]\nurl = \"https://hook\"\nsecret_file = \"/w\"\n\
             [cyclecloud]\nbase_url = \"https://cc\"\ncluster = \"c\"\nusername = \"u\"\npassword_env = \"P\"\nstate_file = \"/s\"\n",
        );
        let files = secret_files(&config, &raw);
        let keys: Vec<&str> = files.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "auth.tokens_file",
                "hsm.ca_file",
                "hsm.oauth2_client_secret_file",
                "webhooks[0].secret_file"
            ]
        );
    }

    #[test]
    fn no_credential_at_all_is_a_problem_of_auth() {
        let (config, _) = config("");
        if std::env::var_os("CRUS_TOKENS").is_none()
            && std::env::var_os("CRUS_JWT_SECRET").is_none()
        {
            assert_eq!(
                check_auth(&config).map(|problem| problem.key),
                Some("auth".into())
            );
        }
        let (open, _) = config_with_no_auth();
        assert_eq!(check_auth(&open), None);
    }

    fn config_with_no_auth() -> (Config, toml::Value) {
        config("[auth]\nno_auth = true\n")
    }

    #[test]
    fn a_kadeploy_authorized_keys_location_is_not_read() {
        let (config, raw) = config(
            "[backends]\ninventory = \"file\"\nworkload_manager = \"none\"\nboot = \"kadeploy\"\n\
             [kadeploy]\nbase_url = \"https://k\"\nssh_authorized_keys_file = \"server:///k\"\npassword_file = \"/p\"\n",
        );
        let files = secret_files(&config, &raw);
        assert_eq!(
            files,
            [("kadeploy.password_file".to_string(), PathBuf::from("/p"))]
        );
    }

    #[test]
    fn the_cyclecloud_state_file_is_crus_own_not_a_secret() {
        let (config, raw) = config(
            "[backends]\ninventory = \"cyclecloud\"\nworkload_manager = \"none\"\nboot = \"cyclecloud\"\n\
             [cyclecloud]\nbase_url = \"https://cc\"\ncluster = \"c\"\nusername = \"u\"\n\
             password_file = \"/p\"\nstate_file = \"/var/lib/crus/groups.json\"\n",
        );
        let files = secret_files(&config, &raw);
        assert_eq!(
            files,
            [("cyclecloud.password_file".to_string(), PathBuf::from("/p"))]
        );
    }
}
