//! The four ports through which crus acts on a site, each a small object-safe
//! trait that backends implement.
//!
//! Every method documents its idempotency: the controller may call it again
//! after a restart, and a second call must not do the work twice.

mod alert_gate;
mod boot_orchestrator;
mod health_probe;
mod hook_runner;
mod inventory;
mod power_control;
mod workload_manager;
mod workload_queue;

use std::sync::Arc;

pub use alert_gate::{AlertGate, BlockWhen, GateCheck, GateFields, GateVerdict};
pub use boot_orchestrator::{
    BootHandle, BootOrchestrator, BootRequest, NodeBootState, NodeBootStatus, NodeImage,
    current_images_not_supported,
};
pub use health_probe::{HEALTH_CHECK_FAILED, HealthCheck, HealthProbe};
pub use hook_runner::{HookBody, HookRequest, HookRunner};
pub use inventory::Inventory;
pub use power_control::{PowerControl, PowerOperation, PowerState};
pub use workload_manager::{WorkloadManager, WorkloadNode, WorkloadState};
pub use workload_queue::{PastJob, PendingJob, RunningJob, WorkloadQueue};

/// The set of backends a controller acts through.
#[derive(Clone)]
pub struct Ports {
    /// Groups and node facts (HSM).
    pub inventory: Arc<dyn Inventory>,
    /// Drain, resume and node states (Slurm).
    pub workload_manager: Arc<dyn WorkloadManager>,
    /// Boots nodes into the new image (BOS).
    pub boot_orchestrator: Arc<dyn BootOrchestrator>,
    /// Power control for escalation (Redfish); `None` when the site has none.
    pub power_control: Option<Arc<dyn PowerControl>>,
    /// Runs policies' health commands and HTTP probes; `None` when the
    /// server runs none (a session whose policy asks for one then never
    /// finds its nodes healthy, and says why).
    pub health_probe: Option<Arc<dyn HealthProbe>>,
    /// Asks the site's monitoring whether a session with `gates` may take
    /// more nodes; `None` when the server asks none (a session with gates
    /// then holds, and says why: gates fail closed).
    pub alert_gate: Option<Arc<dyn AlertGate>>,
    /// Runs policies' site hooks (commands and HTTP calls); `None` when the
    /// server runs none (a session whose policy names hooks is then refused).
    pub hook_runner: Option<Arc<dyn HookRunner>>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Ports")
            .field("power_control", &self.power_control.is_some())
            .field("alert_gate", &self.alert_gate.is_some())
            .field("hook_runner", &self.hook_runner.is_some())
            .finish_non_exhaustive()
    }
}
