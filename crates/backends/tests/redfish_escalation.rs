//! End to end: a session through the `Controller` whose node never comes
//! back from its boot (simulated inventory, workload manager and boot
//! orchestrator) is escalated through `RedfishPowerControl` to a real
//! Redfish service, sushy-tools' emulator (see `redfish_harness`): the
//! restarts reach the node's system there, and only that one; the node,
//! still hung for the simulator, then fails after the configured attempts.
#![cfg(feature = "redfish")]
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod redfish_harness;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crus_backends::redfish::{RedfishConfig, RedfishPowerControl, SystemLocation};
use crus_backends::sim::{Faults, SimConfig, Workload};
use crus_core::controller::{Controller, ControllerConfig};
use crus_core::ports::{Ports, PowerControl, PowerState};
use crus_core::rollout::{NodePhase, RolloutPolicy};
use crus_core::session::PolicyRequest;
use crus_core::store::SessionStore;
use crus_core::testkit::wait_until;
use crus_core::{NodeId, SessionSpec};
use serde_json::json;

use common::{clock, memory_store, node, sim, spec};
use redfish_harness::{EmulatorOptions, RedfishEmulator};

/// The emulator's log lines of resets posted to system `uuid`.
fn resets_of(emulator: &RedfishEmulator, uuid: &str) -> usize {
    emulator
        .log()
        .lines()
        .filter(|line| {
            line.contains(&format!(
                "POST /redfish/v1/Systems/{uuid}/Actions/ComputerSystem.Reset"
            ))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_node_is_reset_through_the_emulator_and_fails_after_its_attempts() {
    let emulator = RedfishEmulator::start(EmulatorOptions {
        power_delay: Some(2),
        ..EmulatorOptions::new(2)
    });
    let hung = node(1);
    let healthy = node(2);
    let (hung_system, healthy_system) = (emulator.uuid(0), emulator.uuid(1));
    let place = |system: &str| SystemLocation {
        bmc_url: emulator.url.clone(),
        system: Some(system.to_string()),
    };
    let redfish = Arc::new(
        RedfishPowerControl::new(RedfishConfig {
            nodes: HashMap::from([
                (hung.clone(), place(&hung_system)),
                (healthy.clone(), place(&healthy_system)),
            ]),
            ..RedfishConfig::new()
        })
        .unwrap(),
    );

    // Real time: the emulator's power changes take real seconds. Boots take
    // about a second; a node not back within 3 s is escalated.
    let clock = clock();
    let sim = sim(
        SimConfig {
            nodes: 4,
            seed: 7,
            workload: Workload::None,
            boot_time: Duration::from_secs(1),
            faults: Faults {
                never_return: [hung.clone()].into(),
                ..Faults::default()
            },
            ..SimConfig::default()
        },
        &clock,
    );
    let ports = Ports {
        power_control: Some(redfish.clone() as Arc<dyn PowerControl>),
        ..sim.ports()
    };
    let store = memory_store();
    let controller = Controller::new(
        ports,
        store.clone(),
        clock.clone(),
        ControllerConfig::default(),
    );
    let policy = RolloutPolicy {
        boot_timeout: Duration::from_secs(3),
        poll_interval: Duration::from_millis(250),
        ..RolloutPolicy::default()
    };
    let spec = SessionSpec {
        policy: Some(
            PolicyRequest::from_json(&json!({
                "escalate_power_cycle": true,
                "power_cycle_grace": "3s",
            }))
            .unwrap(),
        ),
        ..spec(2)
    };
    let id = controller
        .create_session(spec, policy)
        .await
        .unwrap()
        .upgrade_id;
    tokio::time::timeout(Duration::from_secs(90), controller.drive(id))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the session did not end within 90 s; emulator log:\n{}",
                emulator.log()
            )
        })
        .unwrap();

    let state = store.get(id).await.unwrap().unwrap().value.rollout;
    assert!(state.completed, "{state:?}");
    let record = |id: &NodeId| state.nodes.iter().find(|record| &record.id == id).unwrap();
    let hung_record = record(&hung);
    assert_eq!(hung_record.phase, NodePhase::Failed, "{hung_record:?}");
    // Gracefully first, then by force after the grace period.
    assert_eq!(hung_record.power_restarts, 2, "{hung_record:?}");
    for other in state.nodes.iter().filter(|record| record.id != hung) {
        assert_eq!(other.phase, NodePhase::Done, "{other:?}");
        assert_eq!(other.power_restarts, 0, "{other:?}");
    }
    assert!(
        state
            .messages
            .iter()
            .any(|message| message.starts_with(&format!("Node {hung} did not come back"))),
        "{:?}",
        state.messages
    );

    // Each restart the controller asked for reached the hung node's system
    // on the emulator, and none reached the other system.
    let log = emulator.log();
    assert_eq!(
        resets_of(&emulator, &hung_system),
        usize::try_from(hung_record.power_restarts).unwrap(),
        "{hung_record:?}\n{log}"
    );
    assert_eq!(resets_of(&emulator, &healthy_system), 0, "{log}");
    // A restart turned the system off at once and it comes back on.
    let nodes = [hung.clone(), healthy.clone()];
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || redfish.power_state(&nodes),
        |states| states.iter().all(|state| *state == PowerState::On),
    )
    .await
    .unwrap();
}
