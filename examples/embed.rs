//! Embedding crus: a rolling upgrade of a simulated 32-node cluster, driven by
//! the library's controller, in virtual time.
//!
//! Run with `cargo run --example embed`. To upgrade a real site, build `Ports`
//! from real backends instead of the simulator; everything else stays the same.

use std::sync::Arc;
use std::time::Duration;

use crus::backends::sim::{SimCluster, SimConfig};
use crus::core::clock::{Clock, TokioClock};
use crus::core::controller::{AdmissionRequest, Controller, ControllerConfig};
use crus::core::rollout::RolloutPolicy;
use crus::core::store::{MemoryStore, SessionStore};
use crus::{SessionSpec, SessionState};

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A simulated cluster: 32 nodes in group `compute`, boot template `compute-image`.
    let clock = Arc::new(TokioClock::starting_at(crus::core::Timestamp::from_secs(
        1_800_000_000,
    )));
    let sim = SimCluster::new(
        SimConfig {
            nodes: 32,
            ..SimConfig::default()
        },
        clock.clone() as Arc<dyn Clock>,
    )?;

    // The controller persists every transition to the store before acting on it.
    let store = Arc::new(MemoryStore::new());
    let controller = Controller::new(
        sim.ports(),
        store.clone(),
        clock,
        ControllerConfig::default(),
    );

    // The same six fields as `POST /session` in the CRUS API.
    let spec = SessionSpec {
        starting_label: "compute".into(),
        upgrading_label: "upgrading".into(),
        failed_label: "failed".into(),
        upgrade_step_size: 8,
        upgrade_template_id: "compute-image".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    };
    let policy = RolloutPolicy {
        boot_timeout: Duration::from_secs(15 * 60),
        ..RolloutPolicy::default()
    };
    // Checked against the site (groups, template, overlaps) and stored with
    // a claim on each node, as `POST /session` does.
    let session = controller
        .admit(AdmissionRequest::new(spec).with_base_policy(policy))
        .await?
        .status;
    controller.drive(session.upgrade_id).await?;

    let record = store
        .get(session.upgrade_id)
        .await?
        .ok_or("session vanished")?;
    let status = record.value.status();
    assert_eq!(status.state, SessionState::Ready);
    for message in &status.messages {
        println!("{message}");
    }
    println!("boots counted by the simulator: {}", sim.report().boots);
    Ok(())
}
