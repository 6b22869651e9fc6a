//! `RedfishPowerControl` against a real Redfish service: sushy-tools'
//! emulator with its fake driver, started by the test itself (see
//! `redfish_harness`): the power control conformance suite, basic auth
//! accepted and refused, session auth on a BMC without a session service,
//! reset-type fallback, and nodes placed by UUID.
#![cfg(feature = "redfish")]
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redfish_harness;

use std::collections::HashMap;
use std::time::Duration;

use crus_backends::redfish::{
    NamingRule, RedfishAuth, RedfishConfig, RedfishPowerControl, SystemLocation,
};
use crus_core::ports::{PowerControl, PowerOperation, PowerState};
use crus_core::testkit::{self, PowerControlFixture, wait_until};
use crus_core::{Error, NodeId};

use redfish_harness::{EmulatorOptions, RedfishEmulator};

/// The longest the emulator takes to show a power change (its random
/// delay is at most 11 s), with margin for a loaded machine.
const SETTLE: Duration = Duration::from_secs(20);

fn config(emulator: &RedfishEmulator) -> RedfishConfig {
    RedfishConfig {
        rule: Some(NamingRule {
            bmc_url: emulator.url.clone(),
            system: Some("{node}".into()),
        }),
        poll_interval: Duration::from_millis(200),
        power_off_wait: SETTLE,
        ..RedfishConfig::new()
    }
}

fn nodes(emulator: &RedfishEmulator) -> Vec<NodeId> {
    emulator
        .systems
        .iter()
        .map(|name| NodeId::from(name.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_against_the_emulator() {
    // The emulator's own random delays: the suite's waits must tolerate them.
    let emulator = RedfishEmulator::start(EmulatorOptions::new(3));
    let power = RedfishPowerControl::new(config(&emulator)).unwrap();
    let fixture = PowerControlFixture {
        nodes: nodes(&emulator),
        settle_timeout: SETTLE,
        poll_interval: Duration::from_millis(250),
    };
    if let Err(error) = testkit::power_control::run_all(&power, &fixture).await {
        panic!("{error}\nemulator log:\n{}", emulator.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_works_and_a_wrong_password_is_a_clear_error() {
    let emulator = RedfishEmulator::start(EmulatorOptions {
        credentials: Some(("admin".into(), "s3cret-pw".into())),
        power_delay: Some(2),
        ..EmulatorOptions::new(2)
    });
    let with = |username: &str, password: &str| {
        RedfishPowerControl::new(RedfishConfig {
            auth: RedfishAuth::Basic {
                username: username.into(),
                password: password.into(),
            },
            ..config(&emulator)
        })
        .unwrap()
    };
    let nodes = nodes(&emulator);
    let states = with("admin", "s3cret-pw")
        .power_state(&nodes)
        .await
        .unwrap();
    assert_eq!(states, [PowerState::On, PowerState::On]);

    for (username, password) in [("admin", "not-it"), ("root", "s3cret-pw")] {
        let error = with(username, password)
            .power_state(&nodes)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains(&emulator.url)
                && text.contains("refused the credentials")
                && text.contains(&format!("{username:?}"))
                && text.contains("redfish.password_file"),
            "{text}"
        );
        assert!(!text.contains(password), "{text}");
    }

    // Without credentials too: the error says none were set.
    let error = RedfishPowerControl::new(config(&emulator))
        .unwrap()
        .power(&nodes, PowerOperation::ForceOff)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("redfish.username is not set"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_auth_on_a_bmc_without_a_session_service_says_to_use_basic() {
    // The emulator has no SessionService: the login is answered 404.
    let emulator = RedfishEmulator::start(EmulatorOptions {
        power_delay: Some(2),
        ..EmulatorOptions::new(1)
    });
    let power = RedfishPowerControl::new(RedfishConfig {
        auth: RedfishAuth::Session {
            username: "admin".into(),
            password: "password".into(),
        },
        ..config(&emulator)
    })
    .unwrap();
    let error = power.power_state(&nodes(&emulator)).await.unwrap_err();
    assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
    assert!(
        error.to_string().contains("no session service")
            && error.to_string().contains("redfish.auth = \"basic\""),
        "{error}"
    );
    // Nothing was logged in, so there is nothing to log out of.
    power.logout().await.unwrap();
}

/// Waits until `node` reports `state`, or fails with the emulator's log.
async fn wait_for(
    power: &RedfishPowerControl,
    emulator: &RedfishEmulator,
    node: &NodeId,
    state: PowerState,
) {
    let nodes = std::slice::from_ref(node);
    if let Err(error) = wait_until(
        SETTLE,
        Duration::from_millis(200),
        || power.power_state(nodes),
        |states| states[0] == state,
    )
    .await
    {
        panic!(
            "{node} never {state:?}: {error}\nemulator log:\n{}",
            emulator.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cycle_the_system_does_not_allow_falls_back_to_force_restart() {
    // The emulator does not advertise PowerCycle (and answers 501 to it);
    // its ForceRestart shows Off at once, then On after the delay.
    let emulator = RedfishEmulator::start(EmulatorOptions {
        power_delay: Some(3),
        ..EmulatorOptions::new(2)
    });
    let power = RedfishPowerControl::new(RedfishConfig {
        prefer_power_cycle: true,
        ..config(&emulator)
    })
    .unwrap();
    let node = nodes(&emulator)[0].clone();
    power
        .power(std::slice::from_ref(&node), PowerOperation::ForceRestart)
        .await
        .unwrap();
    // Only a reset that was sent turns the system off.
    wait_for(&power, &emulator, &node, PowerState::Off).await;
    wait_for(&power, &emulator, &node, PowerState::On).await;
    // One reset reached the emulator, answered 204: PowerCycle, which it
    // would have answered 501, was never sent. Only a restart (not an Off)
    // comes back On by itself.
    let log = emulator.log();
    let resets: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("POST ") && line.contains("ComputerSystem.Reset"))
        .collect();
    assert_eq!(resets.len(), 1, "{log}");
    assert!(resets[0].ends_with(" 204 -"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_placed_by_uuid_in_the_explicit_map() {
    let emulator = RedfishEmulator::start(EmulatorOptions {
        power_delay: Some(2),
        ..EmulatorOptions::new(2)
    });
    let node = NodeId::from("x1000c0s0b0n0");
    let location = |system: Option<String>| SystemLocation {
        bmc_url: emulator.url.clone(),
        system,
    };
    let power = RedfishPowerControl::new(RedfishConfig {
        nodes: HashMap::from([(node.clone(), location(Some(emulator.uuid(1))))]),
        ..config(&emulator)
    })
    .unwrap();
    power
        .power(std::slice::from_ref(&node), PowerOperation::ForceOff)
        .await
        .unwrap();
    wait_for(&power, &emulator, &node, PowerState::Off).await;
    // It was node002 that went off, not node001.
    let names = nodes(&emulator);
    assert_eq!(
        power.power_state(&names).await.unwrap(),
        [PowerState::On, PowerState::Off]
    );

    // Several systems and none named: the error lists them.
    let unnamed = RedfishPowerControl::new(RedfishConfig {
        nodes: HashMap::from([(node.clone(), location(None))]),
        ..RedfishConfig::new()
    })
    .unwrap();
    let error = unnamed
        .power_state(std::slice::from_ref(&node))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(
        error.to_string().contains("node001") && error.to_string().contains("node002"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_bmc_is_refused_unless_insecure_is_set() {
    let emulator = RedfishEmulator::start(EmulatorOptions {
        tls: true,
        power_delay: Some(2),
        ..EmulatorOptions::new(1)
    });
    assert!(emulator.url.starts_with("https://"), "{}", emulator.url);
    let nodes = nodes(&emulator);
    let insecure = RedfishPowerControl::new(RedfishConfig {
        insecure: true,
        ..config(&emulator)
    })
    .unwrap();
    // The emulator may still be loading its TLS context: allow it a moment.
    let states = wait_until(
        SETTLE,
        Duration::from_millis(200),
        || insecure.power_state(&nodes),
        |_| true,
    )
    .await
    .unwrap();
    assert_eq!(states, [PowerState::On]);

    // The same BMC, now known to answer, with certificates checked.
    let strict = RedfishPowerControl::new(RedfishConfig {
        retries: 0,
        ..config(&emulator)
    })
    .unwrap();
    let error = strict.power_state(&nodes).await.unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains(&emulator.url)
            && text.contains("certificate")
            && text.contains("redfish.insecure"),
        "{text}"
    );
}
