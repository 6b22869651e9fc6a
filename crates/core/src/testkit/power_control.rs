//! Conformance suite for [`PowerControl`] backends.
//!
//! The checks power the fixture's nodes off, on and through restarts, and wait
//! for `power_state` to show the result. Each check leaves the nodes powered on
//! (or asked to be) whether it passed or not.
//!
//! A restart may be too quick to observe the node off, and the trait does not
//! promise that it can be seen, so the restart checks only require the call to
//! succeed and the nodes to be on again afterwards.

use std::time::Duration;

use super::{CallResultExt, ConformanceError, NodeList, wait_until};
use crate::node::NodeId;
use crate::ports::{PowerControl, PowerOperation, PowerState};

/// What the power controller under test has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerControlFixture {
    /// At least one node the suite may power off, on and restart.
    pub nodes: Vec<NodeId>,
    /// How long a power operation may take to show in `power_state`.
    pub settle_timeout: Duration,
    /// Pause between two `power_state` calls while waiting.
    pub poll_interval: Duration,
}

impl PowerControlFixture {
    /// The nodes, or a failure of `check` if the fixture has none.
    fn nodes(&self, check: &'static str) -> Result<&[NodeId], ConformanceError> {
        if self.nodes.is_empty() {
            return Err(ConformanceError::new(
                check,
                "the fixture needs at least one node, it has none",
            ));
        }
        Ok(&self.nodes)
    }
}

/// Runs every power control check in turn, stopping at the first failure.
pub async fn run_all(
    power_control: &dyn PowerControl,
    fixture: &PowerControlFixture,
) -> Result<(), ConformanceError> {
    power_state_one_per_node(power_control, fixture).await?;
    force_off_powers_off(power_control, fixture).await?;
    on_powers_on(power_control, fixture).await?;
    graceful_restart_comes_back_on(power_control, fixture).await?;
    force_restart_comes_back_on(power_control, fixture).await?;
    Ok(())
}

/// `power_state` answers one state per node asked, for all the nodes and for each alone.
pub async fn power_state_one_per_node(
    power_control: &dyn PowerControl,
    fixture: &PowerControlFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "power_control::power_state_one_per_node";
    let nodes = fixture.nodes(CHECK)?;
    states(CHECK, power_control, nodes).await?;
    for node in nodes {
        states(CHECK, power_control, std::slice::from_ref(node)).await?;
    }
    Ok(())
}

/// `ForceOff` turns the nodes off; repeating it succeeds and keeps them off.
pub async fn force_off_powers_off(
    power_control: &dyn PowerControl,
    fixture: &PowerControlFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "power_control::force_off_powers_off";
    let suite = Suite::new(CHECK, power_control, fixture)?;
    suite.power_on_first().await?;
    let result = async {
        suite.power(PowerOperation::ForceOff).await?;
        suite.wait_for(PowerState::Off, "after ForceOff").await?;
        suite.power(PowerOperation::ForceOff).await?;
        suite
            .expect_now(PowerState::Off, "after ForceOff again")
            .await
    }
    .await;
    suite.finish(result).await
}

/// `On` turns off nodes on; repeating it succeeds and keeps them on.
pub async fn on_powers_on(
    power_control: &dyn PowerControl,
    fixture: &PowerControlFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "power_control::on_powers_on";
    let suite = Suite::new(CHECK, power_control, fixture)?;
    let result = async {
        suite.power(PowerOperation::ForceOff).await?;
        suite.wait_for(PowerState::Off, "after ForceOff").await?;
        suite.power(PowerOperation::On).await?;
        suite.wait_for(PowerState::On, "after On").await?;
        suite.power(PowerOperation::On).await?;
        suite.expect_now(PowerState::On, "after On again").await
    }
    .await;
    suite.finish(result).await
}

/// `GracefulRestart` of powered-on nodes succeeds and they are on again afterwards.
pub async fn graceful_restart_comes_back_on(
    power_control: &dyn PowerControl,
    fixture: &PowerControlFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "power_control::graceful_restart_comes_back_on";
    restart_comes_back_on(
        CHECK,
        power_control,
        fixture,
        PowerOperation::GracefulRestart,
    )
    .await
}

/// `ForceRestart` of powered-on nodes succeeds and they are on again afterwards.
pub async fn force_restart_comes_back_on(
    power_control: &dyn PowerControl,
    fixture: &PowerControlFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "power_control::force_restart_comes_back_on";
    restart_comes_back_on(CHECK, power_control, fixture, PowerOperation::ForceRestart).await
}

async fn restart_comes_back_on(
    check: &'static str,
    power_control: &dyn PowerControl,
    fixture: &PowerControlFixture,
    restart: PowerOperation,
) -> Result<(), ConformanceError> {
    let suite = Suite::new(check, power_control, fixture)?;
    suite.power_on_first().await?;
    let result = async {
        suite.power(restart).await?;
        suite
            .wait_for(PowerState::On, &format!("after {restart:?}"))
            .await
    }
    .await;
    suite.finish(result).await
}

/// `power_state(nodes)`, checked to answer one state per node.
async fn states(
    check: &'static str,
    power_control: &dyn PowerControl,
    nodes: &[NodeId],
) -> Result<Vec<PowerState>, ConformanceError> {
    let call = format!("power_state({})", NodeList(nodes));
    let reported = power_control
        .power_state(nodes)
        .await
        .or_fail(check, &call)?;
    check_shape(nodes, &reported).map_err(|detail| ConformanceError::new(check, detail))?;
    Ok(reported)
}

fn check_shape(nodes: &[NodeId], reported: &[PowerState]) -> Result<(), String> {
    if reported.len() == nodes.len() {
        Ok(())
    } else {
        Err(format!(
            "power_state({}) should answer one state per node, but answered {reported:?}",
            NodeList(nodes)
        ))
    }
}

/// States paired with their nodes, as `x1: On, x2: Off`.
fn describe(nodes: &[NodeId], reported: &[PowerState]) -> String {
    nodes
        .iter()
        .zip(reported)
        .map(|(node, state)| format!("{node}: {state:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One check's access to the power controller, naming the check in every failure.
struct Suite<'a> {
    check: &'static str,
    power_control: &'a dyn PowerControl,
    fixture: &'a PowerControlFixture,
    nodes: &'a [NodeId],
}

impl<'a> Suite<'a> {
    fn new(
        check: &'static str,
        power_control: &'a dyn PowerControl,
        fixture: &'a PowerControlFixture,
    ) -> Result<Self, ConformanceError> {
        Ok(Suite {
            check,
            power_control,
            fixture,
            nodes: fixture.nodes(check)?,
        })
    }

    async fn power(&self, operation: PowerOperation) -> Result<(), ConformanceError> {
        self.power_control
            .power(self.nodes, operation)
            .await
            .or_fail(
                self.check,
                format!("power({}, {operation:?})", NodeList(self.nodes)),
            )
    }

    /// Waits until every node is in `state`.
    async fn wait_for(&self, state: PowerState, when: &str) -> Result<(), ConformanceError> {
        let nodes = self.nodes;
        let power_control = self.power_control;
        // A wrong shape ends the wait at once (as `Err`) instead of waiting it out.
        let observed = wait_until(
            self.fixture.settle_timeout,
            self.fixture.poll_interval,
            move || async move {
                let reported = power_control.power_state(nodes).await?;
                Ok(check_shape(nodes, &reported).map(|()| reported))
            },
            |observation| match observation {
                Ok(reported) => reported.iter().all(|reported| *reported == state),
                Err(_) => true,
            },
        )
        .await
        .map_err(|error| {
            error.into_conformance_error(
                self.check,
                format_args!("every node of {} to be {state:?} {when}", NodeList(nodes)),
                |observation| match observation {
                    Ok(reported) => describe(nodes, reported),
                    Err(shape) => shape.clone(),
                },
            )
        })?;
        observed
            .map(drop)
            .map_err(|detail| ConformanceError::new(self.check, detail))
    }

    /// Checks that every node is in `state` now.
    async fn expect_now(&self, state: PowerState, when: &str) -> Result<(), ConformanceError> {
        let reported = states(self.check, self.power_control, self.nodes).await?;
        if reported.iter().all(|reported| *reported == state) {
            Ok(())
        } else {
            Err(ConformanceError::new(
                self.check,
                format!(
                    "{when}, every node should be {state:?}, but power_state reported {}",
                    describe(self.nodes, &reported)
                ),
            ))
        }
    }

    /// Precondition of the checks that start from powered-on nodes.
    async fn power_on_first(&self) -> Result<(), ConformanceError> {
        self.power(PowerOperation::On).await?;
        self.wait_for(PowerState::On, "after On, before the check")
            .await
    }

    /// Asks for the nodes to be on whatever `result` is, and returns the first failure.
    async fn finish(&self, result: Result<(), ConformanceError>) -> Result<(), ConformanceError> {
        let powered_on = self.power(PowerOperation::On).await;
        result?;
        powered_on
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use tokio::time::Instant;

    use super::*;
    use crate::error::Result;
    use crate::testkit::test_support::{ExpectFailure, lock};

    /// Ways the fake can break the contract, to prove the suite notices.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Bug {
        None,
        /// A forced restart leaves the node off.
        ForceRestartStaysOff,
        /// `On` changes nothing.
        OnDoesNothing,
        /// `power_state` answers for the first node only.
        FirstNodeOnly,
    }

    /// Power that reaches its target `delay` of tokio time after each operation.
    #[derive(Debug)]
    struct FakePower {
        bug: Bug,
        delay: Duration,
        /// Per node: the state it goes to, and when.
        nodes: Mutex<HashMap<NodeId, (PowerState, Instant)>>,
    }

    impl FakePower {
        fn new(bug: Bug, fixture: &PowerControlFixture) -> Self {
            let now = Instant::now();
            FakePower {
                bug,
                delay: Duration::from_secs(30),
                nodes: Mutex::new(
                    fixture
                        .nodes
                        .iter()
                        .map(|node| (node.clone(), (PowerState::On, now)))
                        .collect(),
                ),
            }
        }
    }

    #[async_trait]
    impl PowerControl for FakePower {
        async fn power_state(&self, nodes: &[NodeId]) -> Result<Vec<PowerState>> {
            let now = Instant::now();
            let known = lock(&self.nodes);
            let mut states: Vec<PowerState> = nodes
                .iter()
                .map(|node| match known.get(node) {
                    None => PowerState::Unknown,
                    Some((target, at)) if *at <= now => *target,
                    Some((PowerState::On, _)) => PowerState::PoweringOn,
                    Some(_) => PowerState::PoweringOff,
                })
                .collect();
            if self.bug == Bug::FirstNodeOnly {
                states.truncate(1);
            }
            Ok(states)
        }

        async fn power(&self, nodes: &[NodeId], operation: PowerOperation) -> Result<()> {
            let at = Instant::now() + self.delay;
            let mut known = lock(&self.nodes);
            for node in nodes {
                let Some(entry) = known.get_mut(node) else {
                    continue;
                };
                let target = match operation {
                    PowerOperation::On if self.bug == Bug::OnDoesNothing => entry.0,
                    PowerOperation::On | PowerOperation::GracefulRestart => PowerState::On,
                    PowerOperation::ForceRestart if self.bug == Bug::ForceRestartStaysOff => {
                        PowerState::Off
                    }
                    PowerOperation::ForceRestart => PowerState::On,
                    PowerOperation::ForceOff | PowerOperation::GracefulShutdown => PowerState::Off,
                };
                if target != entry.0
                    || matches!(
                        operation,
                        PowerOperation::GracefulRestart | PowerOperation::ForceRestart
                    )
                {
                    *entry = (target, at);
                }
            }
            Ok(())
        }
    }

    fn fixture() -> PowerControlFixture {
        PowerControlFixture {
            nodes: vec![NodeId::from("x1000c0s0b0n0"), NodeId::from("x1000c0s0b0n1")],
            settle_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_secs(2),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_correct_power_control_passes() -> Result<(), ConformanceError> {
        let fixture = fixture();
        run_all(&FakePower::new(Bug::None, &fixture), &fixture).await
    }

    #[tokio::test(start_paused = true)]
    async fn each_bug_fails_the_check_that_covers_it() {
        let fixture = fixture();
        for (bug, failing_check) in [
            (
                Bug::FirstNodeOnly,
                "power_control::power_state_one_per_node",
            ),
            (Bug::OnDoesNothing, "power_control::on_powers_on"),
            (
                Bug::ForceRestartStaysOff,
                "power_control::force_restart_comes_back_on",
            ),
        ] {
            let error = run_all(&FakePower::new(bug, &fixture), &fixture)
                .await
                .failure();
            assert_eq!(error.check, failing_check, "{bug:?}: {error}");
        }
    }

    #[test]
    fn suite_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let fixture = fixture();
        let power = FakePower::new(Bug::None, &fixture);
        assert_send(&run_all(&power, &fixture));
    }
}
