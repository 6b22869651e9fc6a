//! The online half of `crus config check`: each configured backend reached
//! once (HSM, BOS, Kadeploy, CycleCloud, named Redfish BMCs, the JWKS URL,
//! etcd, Slurm), each answer saying what answered or what failed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

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

#[derive(Debug, Clone)]
enum Reach {
    /// An HTTP GET: any answer means it is there.
    Http {
        url: String,
        ca_file: Option<PathBuf>,
        insecure: bool,
    },
    /// A TCP connection (etcd's gRPC port).
    Tcp { address: String },
    /// `scontrol ping` (Slurm's controller).
    Slurm {
        bin_dir: Option<PathBuf>,
        conf: Option<PathBuf>,
    },
}

/// How long one backend may take to answer the check.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

fn targets(config: &Config) -> Vec<Target> {
    let mut targets = Vec::new();
    let in_use = sections_in_use(config);
    let http = |key: &str, what: &'static str, url: &str, ca_file: Option<PathBuf>| Target {
        key: key.to_string(),
        what,
        how: Reach::Http {
            url: url.to_string(),
            ca_file,
            insecure: false,
        },
    };
    if in_use.contains("hsm")
        && let Some(hsm) = &config.hsm
    {
        targets.push(http(
            "hsm.base_url",
            "HSM",
            &hsm.base_url,
            hsm.ca_file.clone(),
        ));
    }
    if in_use.contains("bos")
        && let Some(bos) = &config.bos
    {
        targets.push(http(
            "bos.base_url",
            "BOS",
            &bos.base_url,
            bos.ca_file.clone(),
        ));
    }
    if in_use.contains("kadeploy")
        && let Some(kadeploy) = &config.kadeploy
    {
        targets.push(http(
            "kadeploy.base_url",
            "Kadeploy3",
            &kadeploy.base_url,
            kadeploy.ca_file.clone(),
        ));
    }
    if in_use.contains("cyclecloud")
        && let Some(cyclecloud) = &config.cyclecloud
    {
        targets.push(http(
            "cyclecloud.base_url",
            "CycleCloud",
            &cyclecloud.base_url,
            cyclecloud.ca_file.clone(),
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
                        ca_file: redfish.ca_file.clone(),
                        insecure: redfish.insecure,
                    },
                });
            }
        }
    }
    if let Some(url) = &config.auth.jwks_url {
        targets.push(http(
            "auth.jwks_url",
            "JWKS",
            url,
            config.auth.jwks_ca_file.clone(),
        ));
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
        Reach::Http {
            url,
            ca_file,
            insecure,
        } => {
            let mut builder = reqwest::Client::builder()
                .timeout(REACH_TIMEOUT)
                .danger_accept_invalid_certs(*insecure);
            if let Some(path) = ca_file {
                let pem = std::fs::read(path).map_err(|error| {
                    format!("cannot read the CA file {}: {error}", path.display())
                })?;
                let certificate = reqwest::Certificate::from_pem(&pem).map_err(|error| {
                    format!("the CA file {} is not PEM: {error}", path.display())
                })?;
                builder = builder.add_root_certificate(certificate);
            }
            let client = builder
                .build()
                .map_err(|error| format!("cannot make an HTTP client: {error}"))?;
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
