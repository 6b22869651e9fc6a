//! The ports a configuration describes: each from its backend's settings;
//! the simulated ones share one simulated cluster (and its clock).

use std::sync::Arc;

use crus_backends::cyclecloud::{
    CycleCloudBootOrchestrator, CycleCloudClient, CycleCloudInventory, CycleCloudPowerControl,
};
use crus_backends::file_inventory::FileInventory;
use crus_backends::hsm::HsmInventory;
use crus_backends::kadeploy::{KadeployBootOrchestrator, KadeployPowerControl};
use crus_backends::redfish::RedfishPowerControl;
use crus_backends::slurm::{SlurmConfig, SlurmRebootOrchestrator, SlurmWorkloadManager};
use crus_core::clock::Clock;
use crus_core::ports::{BootOrchestrator, Inventory, Ports, PowerControl, WorkloadManager};

use super::ServerError;
use super::config::{
    BackendKind, BootBackend, Config, InventoryBackend, PowerBackend, WorkloadManagerBackend,
};

/// The ports of a configuration, its clock, and the Redfish power control
/// to log out of at shutdown.
pub struct Assembled {
    /// The ports the controller drives sessions with.
    pub ports: Ports,
    /// The clock of the simulated cluster, or the system clock.
    pub clock: Arc<dyn Clock>,
    /// The Redfish power control, whose BMC sessions are ended at shutdown.
    pub redfish: Option<Arc<RedfishPowerControl>>,
}

/// Makes the ports `settings` describe. A setting that cannot be used
/// (an unreadable secret file, a service that does not answer where the
/// start needs it) is refused, naming its key.
pub async fn ports(settings: &Config) -> Result<Assembled, ServerError> {
    let backends = &settings.backends;
    let (sim_ports, clock): (Option<Ports>, Arc<dyn Clock>) = if backends.uses_sim() {
        let (ports, clock) = settings.sim.build()?;
        (Some(ports), clock)
    } else {
        (None, Arc::new(crus_core::clock::SystemClock))
    };
    let sim = |key: &str| {
        sim_ports.clone().ok_or_else(|| {
            ServerError::BackendChoice(format!("{key} = \"sim\": no simulated cluster"))
        })
    };
    // One client for every cyclecloud port: one connection pool, and the
    // password read once.
    let cyclecloud = match &settings.cyclecloud {
        Some(section) if !backends.cyclecloud_ports().is_empty() => Some(Arc::new(
            CycleCloudClient::new(section.to_config(&settings.server.db)?)
                .map_err(ServerError::backend("[cyclecloud]"))?,
        )),
        _ => None,
    };
    let cyclecloud_client = |key: &str| {
        cyclecloud.clone().ok_or_else(|| {
            ServerError::BackendChoice(format!(
                "{key} = \"cyclecloud\" needs the [cyclecloud] section"
            ))
        })
    };
    let mut nids = NidSource::None;
    let inventory: Arc<dyn Inventory> = match backends.inventory {
        InventoryBackend::Sim => sim(InventoryBackend::KEY)?.inventory,
        InventoryBackend::File => {
            let inventory = FileInventory::open(&settings.file.path)
                .map_err(ServerError::backend("backends.inventory = \"file\""))?;
            nids = NidSource::File(inventory.clone());
            Arc::new(inventory)
        }
        InventoryBackend::Hsm => {
            let config = required(settings.hsm.as_ref(), "hsm")?.to_config("hsm")?;
            let inventory =
                Arc::new(HsmInventory::new(&config).map_err(ServerError::backend("[hsm]"))?);
            nids = NidSource::Hsm {
                inventory: inventory.clone(),
                base_url: config.base_url.clone(),
            };
            inventory
        }
        InventoryBackend::CycleCloud => Arc::new(CycleCloudInventory::new(cyclecloud_client(
            InventoryBackend::KEY,
        )?)),
    };
    // Built once for both Slurm ports: with `nid` names from HSM, building it
    // lists every node's NID.
    let slurm = if backends.uses_slurm() {
        Some(slurm_config(settings, nids).await?)
    } else {
        None
    };
    let slurm_for = |key: &str| {
        slurm
            .clone()
            .ok_or_else(|| ServerError::BackendChoice(format!("{key} needs the [slurm] settings")))
    };
    let workload_manager: Arc<dyn WorkloadManager> = match backends.workload_manager {
        WorkloadManagerBackend::Sim => sim(WorkloadManagerBackend::KEY)?.workload_manager,
        WorkloadManagerBackend::Slurm => Arc::new(SlurmWorkloadManager::new(slurm_for(
            WorkloadManagerBackend::KEY,
        )?)),
        WorkloadManagerBackend::None => {
            tracing::warn!(
                "workload_manager = \"none\": nodes are rebooted without draining; use it only where nothing else runs jobs"
            );
            Arc::new(crus_backends::no_workload_manager::NoWorkloadManager)
        }
    };
    let (boot_orchestrator, sim_power): (Arc<dyn BootOrchestrator>, Option<Arc<dyn PowerControl>>) =
        match backends.boot {
            BootBackend::Sim => {
                let ports = sim(BootBackend::KEY)?;
                (ports.boot_orchestrator, ports.power_control)
            }
            BootBackend::Bos => {
                let section = required(settings.bos.as_ref(), "bos")?;
                let bos = crus_backends::bos::BosOrchestrator::new(&section.to_config()?)
                    .and_then(|bos| bos.with_tenant(section.tenant.as_deref().unwrap_or_default()))
                    .map_err(ServerError::backend("[bos]"))?;
                (Arc::new(bos), None)
            }
            BootBackend::BosV1 => {
                let config = required(settings.bos.as_ref(), "bos")?.to_config()?;
                let bos = crus_backends::bos::v1::BosV1Orchestrator::new(&config)
                    .map_err(ServerError::backend("[bos]"))?;
                (Arc::new(bos), None)
            }
            BootBackend::SlurmReboot => (
                Arc::new(SlurmRebootOrchestrator::new(
                    slurm_for("backends.boot = \"slurm-reboot\"")?,
                    settings.slurm_reboot.to_config(),
                )),
                None,
            ),
            BootBackend::Kadeploy => {
                let config = required(settings.kadeploy.as_ref(), "kadeploy")?.to_config()?;
                let kadeploy = KadeployBootOrchestrator::new(&config)
                    .map_err(ServerError::backend("[kadeploy]"))?;
                (Arc::new(kadeploy), None)
            }
            BootBackend::CycleCloud => (
                Arc::new(CycleCloudBootOrchestrator::new(cyclecloud_client(
                    BootBackend::KEY,
                )?)),
                None,
            ),
        };
    // Without backends.power, what crus did before it existed: the
    // simulator's power with simulated boots, none otherwise.
    let mut redfish = None;
    let power_control: Option<Arc<dyn PowerControl>> = match backends.power {
        None => sim_power,
        Some(PowerBackend::None) => None,
        Some(PowerBackend::Sim) => sim(PowerBackend::KEY)?.power_control,
        Some(PowerBackend::Redfish) => {
            let config = required(settings.redfish.as_ref(), "redfish")?.to_config()?;
            let power = Arc::new(
                RedfishPowerControl::new(config).map_err(ServerError::backend("[redfish]"))?,
            );
            redfish = Some(power.clone());
            Some(power)
        }
        Some(PowerBackend::CycleCloud) => Some(Arc::new(CycleCloudPowerControl::new(
            cyclecloud_client(PowerBackend::KEY)?,
        ))),
        Some(PowerBackend::Kadeploy) => {
            let config = required(settings.kadeploy.as_ref(), "kadeploy")?.to_config()?;
            Some(Arc::new(
                KadeployPowerControl::new(&config).map_err(ServerError::backend("[kadeploy]"))?,
            ))
        }
    };
    let health_probe = crus_backends::health::SiteHealthProbe::new(settings.health.to_config())
        .map_err(ServerError::backend("[health]"))?;
    let alert_gate = crus_backends::alert_gate::SiteAlertGate::new(
        settings.alert_gates.to_config(),
        &settings.gates,
    )
    .map_err(ServerError::backend("[alert_gates]"))?;
    let hook_runner = crus_backends::hooks::SiteHookRunner::new(settings.hooks.to_config())
        .map_err(ServerError::backend("[hooks]"))?;
    Ok(Assembled {
        ports: Ports {
            inventory,
            workload_manager,
            boot_orchestrator,
            power_control,
            health_probe: Some(Arc::new(health_probe)),
            alert_gate: Some(Arc::new(alert_gate)),
            hook_runner: Some(Arc::new(hook_runner)),
        },
        clock,
        redfish,
    })
}

/// The section `[key]`, which `[backends]` requires.
fn required<'a, T>(section: Option<&'a T>, key: &str) -> Result<&'a T, ServerError> {
    section.ok_or_else(|| {
        ServerError::BackendChoice(format!("the [{key}] section is required by [backends]"))
    })
}

/// Where `slurm.node_names = "nid"` finds each node's NID: the inventory
/// backend of the same server.
enum NidSource {
    /// `backends.inventory = "file"`: the NIDs in the file.
    File(FileInventory),
    /// `backends.inventory = "hsm"`: the NIDs HSM lists at `base_url`.
    Hsm {
        inventory: Arc<HsmInventory>,
        base_url: String,
    },
    /// An inventory that has no NIDs.
    None,
}

/// Slurm settings; `nid` naming reads each node's NID from the inventory.
///
/// The NIDs are read once, here, at start. A node added to the inventory
/// afterwards has no Slurm name until the server restarts; a drain or
/// resume naming it fails as for a node Slurm does not know. With HSM, a
/// start that cannot list the NIDs (HSM down after the client's retries,
/// wrong URL, refused token) is refused rather than running with no names.
async fn slurm_config(settings: &Config, source: NidSource) -> Result<SlurmConfig, ServerError> {
    let section = &settings.slurm;
    if !section.names_from_nids() {
        return Ok(section.to_config(None)?);
    }
    let nids = match source {
        NidSource::File(inventory) => Some(
            inventory
                .nodes()
                .into_iter()
                .filter_map(|node| node.nid.map(|nid| (node.id, nid)))
                .collect(),
        ),
        NidSource::Hsm {
            inventory,
            base_url,
        } => {
            let nids = match inventory.node_nids().await {
                Ok(nids) => nids,
                Err(source) => return Err(ServerError::SlurmNids { base_url, source }),
            };
            if nids.is_empty() {
                tracing::warn!(
                    %base_url,
                    "slurm.node_names = \"nid\": HSM lists no node with a NID; every node will be unknown to Slurm"
                );
            } else {
                tracing::info!(nodes = nids.len(), "Slurm node names from the NIDs in HSM");
            }
            Some(nids)
        }
        NidSource::None => None,
    };
    Ok(section.to_config(nids)?)
}
