//! The online half of `crus config check`: each configured backend reached
//! once (HSM, BOS, Kadeploy, CycleCloud, named Redfish BMCs, the JWKS URL,
//! etcd, Slurm), each answer saying what answered or what failed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crus_backends::transport::HttpClientSettings;

use crate::server::{BackendKind, Config, StoreKind};

use super::sections_in_use;

/// One backend to reach: the key naming it and what it is.
#[derive(Debug, Clone)]
pub struct Target {
    /// The key that configures it (`bos.base_url`, `etcd.endpoints[0]`, ...).
    pub key: String,
    /// What it is (`BOS`, `etcd`, `Slurm controller`, ...).
    pub what: &'static str,
    how: Reach,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    /// An HTTP GET: any answer means it is there.
    Http { url: String, tls: Tls },
    /// A TCP connection (etcd's gRPC port).
    Tcp { address: String },
    /// `scontrol ping` (Slurm's controller).
    Slurm {
        bin_dir: Option<PathBuf>,
        conf: Option<PathBuf>,
    },
}

/// How a backend's certificate is checked: as its section says, so the
/// check trusts what `crus serve` would trust and no more.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tls {
    /// The key naming the CA file (`cyclecloud.ca_file`), for its errors.
    ca_key: String,
    /// The section's CA file, added to the system roots.
    ca_file: Option<PathBuf>,
    /// The section's `insecure` switch (only Redfish and CycleCloud have one).
    insecure: bool,
}

impl Tls {
    /// The client settings of the shared transport, as the backend's own
    /// client is built.
    fn client_settings(&self) -> HttpClientSettings {
        HttpClientSettings::new(REACH_TIMEOUT)
            .ca_file(self.ca_key.clone(), self.ca_file.as_deref())
            .insecure(self.insecure)
    }
}

/// How long one backend may take to answer the check.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

fn targets(config: &Config) -> Vec<Target> {
    let mut targets = Vec::new();
    let in_use = sections_in_use(config);
    // `section` names the keys: `{section}.base_url`, `{section}.ca_file`.
    let http = |section: &str,
                what: &'static str,
                url: &str,
                ca_file: &Option<PathBuf>,
                insecure: bool| Target {
        key: format!("{section}.base_url"),
        what,
        how: Reach::Http {
            url: url.to_string(),
            tls: Tls {
                ca_key: format!("{section}.ca_file"),
                ca_file: ca_file.clone(),
                insecure,
            },
        },
    };
    if in_use.contains("hsm")
        && let Some(hsm) = &config.hsm
    {
        targets.push(http("hsm", "HSM", &hsm.base_url, &hsm.ca_file, false));
    }
    if in_use.contains("bos")
        && let Some(bos) = &config.bos
    {
        targets.push(http("bos", "BOS", &bos.base_url, &bos.ca_file, false));
    }
    if in_use.contains("kadeploy")
        && let Some(kadeploy) = &config.kadeploy
    {
        targets.push(http(
            "kadeploy",
            "Kadeploy3",
            &kadeploy.base_url,
            &kadeploy.ca_file,
            false,
        ));
    }
    if in_use.contains("cyclecloud")
        && let Some(cyclecloud) = &config.cyclecloud
    {
        targets.push(http(
            "cyclecloud",
            "CycleCloud",
            &cyclecloud.base_url,
            &cyclecloud.ca_file,
            cyclecloud.insecure,
        ));
    }
    if in_use.contains("redfish")
        && let Some(redfish) = &config.redfish
    {
        // The BMCs placed by name; template-placed ones are known only
        // once the inventory names the nodes.
        let mut seen = BTreeSet::new();
        for (node, placed) in &redfish.nodes {
            if seen.insert(placed.bmc_url.clone()) {
                targets.push(Target {
                    key: format!("redfish.nodes.{node}.bmc_url"),
                    what: "Redfish BMC",
                    how: Reach::Http {
                        url: format!("{}/redfish/v1/", placed.bmc_url.trim_end_matches('/')),
                        tls: Tls {
                            ca_key: "redfish.ca_file".to_string(),
                            ca_file: redfish.ca_file.clone(),
                            insecure: redfish.insecure,
                        },
                    },
                });
            }
        }
    }
    if let Some(url) = &config.auth.jwks_url {
        targets.push(Target {
            key: "auth.jwks_url".to_string(),
            what: "JWKS",
            how: Reach::Http {
                url: url.clone(),
                tls: Tls {
                    ca_key: "auth.jwks_ca_file".to_string(),
                    ca_file: config.auth.jwks_ca_file.clone(),
                    insecure: false,
                },
            },
        });
    }
    if config.store.kind == StoreKind::Etcd {
        for (index, endpoint) in config.etcd.endpoints.iter().enumerate() {
            let address = endpoint
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string();
            targets.push(Target {
                key: format!("etcd.endpoints[{index}]"),
                what: "etcd",
                how: Reach::Tcp { address },
            });
        }
    }
    if config.backends.workload_manager.name() == "slurm"
        || config.backends.boot.name() == "slurm-reboot"
    {
        targets.push(Target {
            key: "slurm".to_string(),
            what: "Slurm controller",
            how: Reach::Slurm {
                bin_dir: config.slurm.bin_dir.clone(),
                conf: config.slurm.conf.clone(),
            },
        });
    }
    targets
}

/// Reaches each backend `config` uses once, one after another; each
/// result says what answered, or what failed and what to check.
pub async fn reach_backends(config: &Config) -> Vec<(Target, Result<String, String>)> {
    let targets = targets(config);
    let results = futures_join(targets.iter().map(reach)).await;
    targets.into_iter().zip(results).collect()
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut results = Vec::with_capacity(handles.len());
    for future in handles {
        results.push(future.await);
    }
    results
}

async fn reach(target: &Target) -> Result<String, String> {
    match &target.how {
        Reach::Http { url, tls } => {
            let client = tls
                .client_settings()
                .build()
                .map_err(|error| error.to_string())?;
            let response = client.get(url).send().await.map_err(|error| {
                format!("cannot reach {url}: {error} (check the URL, DNS, the route and the CA)")
            })?;
            Ok(format!("{url} answered {}", response.status()))
        }
        Reach::Tcp { address } => {
            match tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(address)).await
            {
                Ok(Ok(_)) => Ok(format!("{address} accepts connections")),
                Ok(Err(error)) => Err(format!("cannot connect to {address}: {error}")),
                Err(_) => Err(format!(
                    "no connection to {address} within {}",
                    humantime::format_duration(REACH_TIMEOUT)
                )),
            }
        }
        Reach::Slurm { bin_dir, conf } => {
            let program = bin_dir
                .as_ref()
                .map_or_else(|| PathBuf::from("scontrol"), |dir| dir.join("scontrol"));
            let mut command = tokio::process::Command::new(&program);
            command.arg("ping").kill_on_drop(true);
            if let Some(conf) = conf {
                command.env("SLURM_CONF", conf);
            }
            let output = tokio::time::timeout(REACH_TIMEOUT, command.output())
                .await
                .map_err(|_| format!("{} ping did not finish in time", program.display()))?
                .map_err(|error| {
                    format!(
                        "cannot run {}: {error} (set slurm.bin_dir to where scontrol is)",
                        program.display()
                    )
                })?;
            let text = String::from_utf8_lossy(&output.stdout);
            if output.status.success() && text.contains("UP") {
                Ok(text.trim().to_string())
            } else {
                Err(format!(
                    "scontrol ping: the Slurm controller is not up: {}{}",
                    text.trim(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
