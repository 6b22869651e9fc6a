//! Conformance suite for [`BootOrchestrator`] backends.
//!
//! Only [`boot_runs_to_completion`] boots nodes (once per run, under a fresh
//! idempotency key); the other checks start nothing on a correct backend.

use std::collections::HashMap;
use std::time::Duration;

use super::{CallResultExt, ConformanceError, NodeList, expect_error, unique_suffix, wait_until};
use crate::error::Error;
use crate::node::NodeId;
use crate::ports::{BootHandle, BootOrchestrator, BootRequest, NodeBootState, NodeBootStatus};

/// What the boot orchestrator under test has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOrchestratorFixture {
    /// A template that exists and boots `nodes` successfully.
    pub template: String,
    /// At least one node the suite may boot with `template`.
    pub nodes: Vec<NodeId>,
    /// How long booting `nodes` may take.
    pub boot_timeout: Duration,
    /// Pause between two `boot_status` calls while waiting.
    pub poll_interval: Duration,
}

impl BootOrchestratorFixture {
    /// The nodes, or a failure of `check` if the fixture has none.
    fn nodes(&self, check: &'static str) -> Result<&[NodeId], ConformanceError> {
        if self.nodes.is_empty() {
            return Err(ConformanceError::new(
                check,
                "the fixture needs at least one node to boot, it has none",
            ));
        }
        Ok(&self.nodes)
    }
}

/// Runs every boot orchestrator check in turn, stopping at the first failure.
pub async fn run_all(
    orchestrator: &dyn BootOrchestrator,
    fixture: &BootOrchestratorFixture,
) -> Result<(), ConformanceError> {
    template_exists_answers(orchestrator, fixture).await?;
    unknown_template_is_rejected(orchestrator, fixture).await?;
    unknown_handle_is_not_found(orchestrator, fixture).await?;
    boot_runs_to_completion(orchestrator, fixture).await?;
    Ok(())
}

/// `template_exists` is true for the fixture's template and false for a made-up one.
pub async fn template_exists_answers(
    orchestrator: &dyn BootOrchestrator,
    fixture: &BootOrchestratorFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "boot_orchestrator::template_exists_answers";
    let made_up = made_up_template();
    for (template, expected) in [(fixture.template.as_str(), true), (made_up.as_str(), false)] {
        let call = format!("template_exists({template:?})");
        let exists = orchestrator
            .template_exists(template)
            .await
            .or_fail(CHECK, &call)?;
        if exists != expected {
            return Err(ConformanceError::new(
                CHECK,
                format!("{call} should be {expected}, but was {exists}"),
            ));
        }
    }
    Ok(())
}

/// Starting a boot with a template that does not exist fails with
/// [`Error::NotFound`] or [`Error::Invalid`].
pub async fn unknown_template_is_rejected(
    orchestrator: &dyn BootOrchestrator,
    fixture: &BootOrchestratorFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "boot_orchestrator::unknown_template_is_rejected";
    let nodes = fixture.nodes(CHECK)?;
    let request = BootRequest {
        key: fresh_key(),
        template: made_up_template(),
        nodes: nodes[..1].to_vec(),
    };
    let result = orchestrator.start_boot(&request).await;
    if let Ok(handle) = &result {
        // Best effort: do not leave a boot of a broken backend running.
        if let Err(error) = orchestrator.cancel_boot(handle).await {
            tracing::warn!(%error, ?handle, "could not cancel a boot started with an unknown template");
        }
    }
    expect_error(
        CHECK,
        describe_request(&request),
        result,
        "NotFound or Invalid",
        |error| matches!(error, Error::NotFound { .. } | Error::Invalid { .. }),
    )
}

/// `boot_status` of a boot the orchestrator never started is [`Error::NotFound`].
pub async fn unknown_handle_is_not_found(
    orchestrator: &dyn BootOrchestrator,
    _fixture: &BootOrchestratorFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "boot_orchestrator::unknown_handle_is_not_found";
    // Orchestrators name boots with UUIDs (BOS sessions, Kadeploy workflows), so
    // a fresh one is well formed and unknown.
    let handle = BootHandle {
        key: fresh_key(),
        id: uuid::Uuid::new_v4().to_string(),
    };
    expect_error(
        CHECK,
        format!("boot_status({handle:?}) of a boot never started"),
        orchestrator.boot_status(&handle).await,
        "NotFound",
        |error| matches!(error, Error::NotFound { .. }),
    )
}

/// A boot reports every node exactly once, is found again under its key (while
/// it runs and after it finished, without booting again), and ends with every
/// node [`NodeBootState::Ok`] within the fixture's `boot_timeout`.
pub async fn boot_runs_to_completion(
    orchestrator: &dyn BootOrchestrator,
    fixture: &BootOrchestratorFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "boot_orchestrator::boot_runs_to_completion";
    let nodes = fixture.nodes(CHECK)?;
    let request = BootRequest {
        key: fresh_key(),
        template: fixture.template.clone(),
        nodes: nodes.to_vec(),
    };
    let call = describe_request(&request);
    let handle = orchestrator
        .start_boot(&request)
        .await
        .or_fail(CHECK, &call)?;
    if handle.key != request.key {
        return Err(ConformanceError::new(
            CHECK,
            format!(
                "{call} returned {handle:?}, whose key should be the request's {:?}",
                request.key
            ),
        ));
    }
    status(CHECK, orchestrator, &handle, nodes).await?;
    same_handle(
        CHECK,
        orchestrator,
        &request,
        &handle,
        "while the boot runs",
    )
    .await?;
    status(CHECK, orchestrator, &handle, nodes).await?;

    let observed = wait_until(
        fixture.boot_timeout,
        fixture.poll_interval,
        || async {
            let reported = orchestrator.boot_status(&handle).await?;
            Ok(check_shape(&handle, nodes, &reported).map(|()| reported))
        },
        // A wrong shape or a failed node ends the wait at once.
        |observation| match observation {
            Ok(reported) => {
                all_ok(reported)
                    || reported
                        .iter()
                        .any(|node| matches!(node.state, NodeBootState::Failed { .. }))
            }
            Err(_) => true,
        },
    )
    .await
    .map_err(|error| {
        error.into_conformance_error(
            CHECK,
            format_args!("every node of {handle:?} to boot"),
            |observation| match observation {
                Ok(reported) => describe(reported),
                Err(shape) => shape.clone(),
            },
        )
    })?;
    let reported = observed.map_err(|detail| ConformanceError::new(CHECK, detail))?;
    if !all_ok(&reported) {
        return Err(ConformanceError::new(
            CHECK,
            format!(
                "every node of {handle:?} should boot with the fixture's template, but boot_status reported {}",
                describe(&reported)
            ),
        ));
    }

    same_handle(
        CHECK,
        orchestrator,
        &request,
        &handle,
        "after the boot finished",
    )
    .await?;
    let reported = status(CHECK, orchestrator, &handle, nodes).await?;
    if !all_ok(&reported) {
        return Err(ConformanceError::new(
            CHECK,
            format!(
                "start_boot again with the key of a finished boot should start nothing, \
                 but boot_status of {handle:?} then reported {}",
                describe(&reported)
            ),
        ));
    }
    Ok(())
}

/// A key no boot has used yet.
fn fresh_key() -> String {
    format!("crus-conformance-{}", unique_suffix())
}

fn made_up_template() -> String {
    format!("crus-conformance-no-such-template-{}", unique_suffix())
}

fn describe_request(request: &BootRequest) -> String {
    format!(
        "start_boot(key {:?}, template {:?}, nodes {})",
        request.key,
        request.template,
        NodeList(&request.nodes)
    )
}

fn all_ok(reported: &[NodeBootStatus]) -> bool {
    reported.iter().all(|node| node.state == NodeBootState::Ok)
}

/// Per-node states as `x1: ok, x2: failed ("...")`.
fn describe(reported: &[NodeBootStatus]) -> String {
    if reported.is_empty() {
        return "no node".to_string();
    }
    reported
        .iter()
        .map(|node| match &node.state {
            NodeBootState::InProgress => format!("{}: in progress", node.node),
            NodeBootState::Ok => format!("{}: ok", node.node),
            NodeBootState::Failed { reason } => format!("{}: failed ({reason:?})", node.node),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `reported` names every node of `nodes` exactly once and no other.
fn check_shape(
    handle: &BootHandle,
    nodes: &[NodeId],
    reported: &[NodeBootStatus],
) -> Result<(), String> {
    let mut expected: HashMap<&NodeId, usize> = HashMap::new();
    for node in nodes {
        *expected.entry(node).or_default() += 1;
    }
    let mut seen: HashMap<&NodeId, usize> = HashMap::new();
    for node in reported {
        *seen.entry(&node.node).or_default() += 1;
    }
    if seen == expected {
        Ok(())
    } else {
        Err(format!(
            "boot_status({handle:?}) should report each of {} exactly once, but reported {}",
            NodeList(nodes),
            describe(reported)
        ))
    }
}

async fn status(
    check: &'static str,
    orchestrator: &dyn BootOrchestrator,
    handle: &BootHandle,
    nodes: &[NodeId],
) -> Result<Vec<NodeBootStatus>, ConformanceError> {
    let reported = orchestrator
        .boot_status(handle)
        .await
        .or_fail(check, format!("boot_status({handle:?})"))?;
    check_shape(handle, nodes, &reported).map_err(|detail| ConformanceError::new(check, detail))?;
    Ok(reported)
}

/// Starts `request` again and checks that it answers the first boot's handle.
async fn same_handle(
    check: &'static str,
    orchestrator: &dyn BootOrchestrator,
    request: &BootRequest,
    first: &BootHandle,
    when: &str,
) -> Result<(), ConformanceError> {
    let call = format!("{} again {when}", describe_request(request));
    let again = orchestrator
        .start_boot(request)
        .await
        .or_fail(check, &call)?;
    if &again != first {
        return Err(ConformanceError::new(
            check,
            format!(
                "{call} should return the first boot's handle {first:?}, but returned {again:?}"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        /// Every `start_boot` starts a new boot.
        IgnoresKey,
        /// `boot_status` lists the first node twice.
        RepeatsNode,
        /// An unknown handle reports an empty boot.
        UnknownHandleIsEmpty,
        /// Unknown templates are booted anyway.
        AcceptsAnyTemplate,
        /// Nodes never finish booting.
        NeverFinishes,
    }

    #[derive(Debug)]
    struct FakeBoot {
        handle: BootHandle,
        nodes: Vec<NodeId>,
        done_at: Instant,
    }

    /// An orchestrator whose boots take `boot_time` of tokio time.
    #[derive(Debug)]
    struct FakeOrchestrator {
        bug: Bug,
        template: String,
        boot_time: Duration,
        boots: Mutex<Vec<FakeBoot>>,
    }

    #[async_trait]
    impl BootOrchestrator for FakeOrchestrator {
        async fn template_exists(&self, template: &str) -> Result<bool> {
            Ok(template == self.template)
        }

        async fn start_boot(&self, request: &BootRequest) -> Result<BootHandle> {
            if request.template != self.template && self.bug != Bug::AcceptsAnyTemplate {
                return Err(Error::not_found(format!("template {:?}", request.template)));
            }
            let mut boots = lock(&self.boots);
            if self.bug != Bug::IgnoresKey
                && let Some(boot) = boots.iter().find(|boot| boot.handle.key == request.key)
            {
                return Ok(boot.handle.clone());
            }
            let handle = BootHandle {
                key: request.key.clone(),
                id: format!("session-{}", boots.len()),
            };
            boots.push(FakeBoot {
                handle: handle.clone(),
                nodes: request.nodes.clone(),
                done_at: Instant::now() + self.boot_time,
            });
            Ok(handle)
        }

        async fn boot_status(&self, handle: &BootHandle) -> Result<Vec<NodeBootStatus>> {
            let boots = lock(&self.boots);
            let Some(boot) = boots.iter().find(|boot| &boot.handle == handle) else {
                return if self.bug == Bug::UnknownHandleIsEmpty {
                    Ok(Vec::new())
                } else {
                    Err(Error::not_found(format!("boot {}", handle.id)))
                };
            };
            let state = if Instant::now() >= boot.done_at && self.bug != Bug::NeverFinishes {
                NodeBootState::Ok
            } else {
                NodeBootState::InProgress
            };
            let mut reported: Vec<NodeBootStatus> = boot
                .nodes
                .iter()
                .map(|node| NodeBootStatus {
                    node: node.clone(),
                    state: state.clone(),
                })
                .collect();
            if self.bug == Bug::RepeatsNode {
                reported.push(reported[0].clone());
            }
            Ok(reported)
        }
    }

    fn fixture() -> BootOrchestratorFixture {
        BootOrchestratorFixture {
            template: "compute-2.5".to_string(),
            nodes: vec![NodeId::from("x1000c0s0b0n0"), NodeId::from("x1000c0s0b0n1")],
            boot_timeout: Duration::from_secs(1200),
            poll_interval: Duration::from_secs(15),
        }
    }

    fn fake(bug: Bug) -> FakeOrchestrator {
        FakeOrchestrator {
            bug,
            template: fixture().template,
            boot_time: Duration::from_secs(600),
            boots: Mutex::new(Vec::new()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_correct_orchestrator_passes() -> Result<(), ConformanceError> {
        let orchestrator = fake(Bug::None);
        run_all(&orchestrator, &fixture()).await?;
        run_all(&orchestrator, &fixture()).await?;
        // Two runs, one boot each.
        assert_eq!(lock(&orchestrator.boots).len(), 2);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn each_bug_fails_the_check_that_covers_it() {
        for (bug, failing_check) in [
            (
                Bug::IgnoresKey,
                "boot_orchestrator::boot_runs_to_completion",
            ),
            (
                Bug::RepeatsNode,
                "boot_orchestrator::boot_runs_to_completion",
            ),
            (
                Bug::UnknownHandleIsEmpty,
                "boot_orchestrator::unknown_handle_is_not_found",
            ),
            (
                Bug::AcceptsAnyTemplate,
                "boot_orchestrator::unknown_template_is_rejected",
            ),
            (
                Bug::NeverFinishes,
                "boot_orchestrator::boot_runs_to_completion",
            ),
        ] {
            let error = run_all(&fake(bug), &fixture()).await.failure();
            assert_eq!(error.check, failing_check, "{bug:?}: {error}");
        }
        let error = run_all(&fake(Bug::NeverFinishes), &fixture())
            .await
            .failure();
        assert!(
            error
                .detail
                .contains("x1000c0s0b0n0: in progress, x1000c0s0b0n1: in progress"),
            "{error}"
        );
    }

    #[test]
    fn suite_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let orchestrator = fake(Bug::None);
        let fixture = fixture();
        assert_send(&run_all(&orchestrator, &fixture));
    }
}
