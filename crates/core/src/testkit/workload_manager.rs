//! Conformance suite for [`WorkloadManager`] backends.
//!
//! The checks drain, fail and resume the fixture's idle nodes and wait for the
//! workload manager to report the result, so they hold for backends where a
//! change shows only after a while (Slurm). Every check that takes a node out of
//! service resumes it before returning, passed or failed.

use std::fmt::{self, Display};
use std::time::Duration;

use super::{CallResultExt, ConformanceError, NodeList, unique_suffix, wait_until};
use crate::node::NodeId;
use crate::ports::{WorkloadManager, WorkloadNode, WorkloadState};

/// What the workload manager under test has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadManagerFixture {
    /// At least two nodes that are idle, responding and run no job, and stay so
    /// unless the suite changes them (no other jobs may be scheduled on them).
    pub idle_nodes: Vec<NodeId>,
    /// A node the workload manager does not know.
    pub unknown_node: NodeId,
    /// A node running a job when the suite starts, whose job keeps running
    /// until the drain has been observed (at least a few `poll_interval`s) and
    /// ends on its own within `jobs_end_within`; `None` skips the busy-drain check.
    pub busy_node: Option<NodeId>,
    /// How long the busy node's job may run after the drain; ignored without `busy_node`.
    pub jobs_end_within: Duration,
    /// How long a drain, fail or resume may take to show in `node_states`.
    pub settle_timeout: Duration,
    /// Pause between two `node_states` calls while waiting.
    pub poll_interval: Duration,
}

/// Runs every workload manager check in turn, stopping at the first failure.
pub async fn run_all(
    workload_manager: &dyn WorkloadManager,
    fixture: &WorkloadManagerFixture,
) -> Result<(), ConformanceError> {
    node_states_one_per_node_in_order(workload_manager, fixture).await?;
    unknown_node_is_unknown(workload_manager, fixture).await?;
    drain_idle_node_becomes_drained(workload_manager, fixture).await?;
    drain_is_idempotent(workload_manager, fixture).await?;
    resume_returns_to_idle(workload_manager, fixture).await?;
    fail_takes_node_out_of_service(workload_manager, fixture).await?;
    resume_after_fail_returns_to_service(workload_manager, fixture).await?;
    drain_busy_node_waits_for_jobs(workload_manager, fixture).await?;
    Ok(())
}

/// `node_states` answers one entry per node asked, in the order asked, unknown
/// nodes included, and the idle nodes are idle.
pub async fn node_states_one_per_node_in_order(
    workload_manager: &dyn WorkloadManager,
    fixture: &WorkloadManagerFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "workload_manager::node_states_one_per_node_in_order";
    let (first, second) = fixture.two_nodes(CHECK)?;
    let nodes = [second.clone(), fixture.unknown_node.clone(), first.clone()];
    states(CHECK, workload_manager, &nodes).await?;
    let idle = states(CHECK, workload_manager, &fixture.idle_nodes).await?;
    if let Some(busy) = idle.iter().find(|node| node.state != WorkloadState::Idle) {
        return Err(ConformanceError::new(
            CHECK,
            format!(
                "the fixture's idle_nodes should be idle, but {} is {:?}: {}",
                busy.node,
                busy.state,
                describe(&idle)
            ),
        ));
    }
    Ok(())
}

/// A node the workload manager does not know is reported
/// [`WorkloadState::Unknown`], alone or among known nodes, not as an error.
pub async fn unknown_node_is_unknown(
    workload_manager: &dyn WorkloadManager,
    fixture: &WorkloadManagerFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "workload_manager::unknown_node_is_unknown";
    let (first, _) = fixture.two_nodes(CHECK)?;
    for nodes in [
        vec![fixture.unknown_node.clone()],
        vec![first.clone(), fixture.unknown_node.clone()],
    ] {
        let reported = states(CHECK, workload_manager, &nodes).await?;
        let unknown = reported.last().map(|node| node.state);
        if unknown != Some(WorkloadState::Unknown) {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "node_states({}) should report the unknown node {} as Unknown, but reported {}",
                    NodeList(&nodes),
                    fixture.unknown_node,
                    describe(&reported)
                ),
            ));
        }
    }
    Ok(())
}

/// Draining an idle node makes it drained, with the reason given, and leaves
/// other nodes alone.
pub async fn drain_idle_node_becomes_drained(
    workload_manager: &dyn WorkloadManager,
    fixture: &WorkloadManagerFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "workload_manager::drain_idle_node_becomes_drained";
    let (drained, bystander) = fixture.two_nodes(CHECK)?;
    let suite = Suite::new(CHECK, workload_manager, fixture);
    suite.wait_idle(&fixture.idle_nodes).await?;
    let reason = reason("drain");
    let target = std::slice::from_ref(drained);
    let result = async {
        suite.drain(target, &reason).await?;
        suite
            .wait_for(
                &[
                    Expect::drained(drained, &reason),
                    Expect::state(bystander, WorkloadState::Idle),
                ],
                fixture.settle_timeout,
            )
            .await
    }
    .await;
    suite.finish(result, target).await
}

/// Draining twice succeeds, and draining a drained node keeps it drained.
pub async fn drain_is_idempotent(
    workload_manager: &dyn WorkloadManager,
    fixture: &WorkloadManagerFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "workload_manager::drain_is_idempotent";
    let (first, second) = fixture.two_nodes(CHECK)?;
    let suite = Suite::new(CHECK, workload_manager, fixture);
    let nodes = [first.clone(), second.clone()];
    suite.wait_idle(&nodes).await?;
    let reason = reason("drain-twice");
    let result = async {
        suite.drain(&nodes, &reason).await?;
        suite.drain(&nodes, &reason).await?;
        let drained = [
            Expect::drained(first, &reason),
            Expect::drained(second, &reason),
        ];
        suite.wait_for(&drained, fixture.settle_timeout).await?;
        suite.drain(&nodes, &reason).await?;
        suite
            .expect_now(&drained, "after draining drained nodes again")
            .await
    }
    .await;
    suite.finish(result, &nodes).await
}

/// Resuming idle nodes succeeds and keeps them idle; resuming drained nodes
/// makes them idle again; resuming twice succeeds.
pub async fn resume_returns_to_idle(
    workload_manager: &dyn WorkloadManager,
    fixture: &WorkloadManagerFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "workload_manager::resume_returns_to_idle";
    let (first, second) = fixture.two_nodes(CHECK)?;
    let suite = Suite::new(CHECK, workload_manager, fixture);
    let nodes = [first.clone(), second.clone()];
    suite.wait_idle(&nodes).await?;
    let idle = [
        Expect::state(first, WorkloadState::Idle),
        Expect::state(second, WorkloadState::Idle),
    ];
    let reason = reason("resume");
    let result = async {
        suite.resume(&nodes).await?;
        suite
            .expect_now(&idle, "after resuming nodes that were idle")
            .await?;
        suite.drain(&nodes, &reason).await?;
        suite
            .wait_for(
                &[
                    Expect::drained(first, &reason),
                    Expect::drained(second, &reason),
                ],
                fixture.settle_timeout,
            )
            .await?;
        suite.resume(&nodes).await?;
        suite.wait_for(&idle, fixture.settle_timeout).await?;
        suite.resume(&nodes).await?;
        suite.expect_now(&idle, "after resuming them again").await
    }
    .await;
    suite.finish(result, &nodes).await
}

/// Failing a node takes it out of service as [`WorkloadState::Down`] with the
/// reason given, leaves other nodes alone, and failing it again succeeds.
pub async fn fail_takes_node_out_of_service(
    workload_manager: &dyn WorkloadManager,
    fixture: &WorkloadManagerFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "workload_manager::fail_takes_node_out_of_service";
    let (failed, bystander) = fixture.two_nodes(CHECK)?;
    let suite = Suite::new(CHECK, workload_manager, fixture);
    suite.wait_idle(&fixture.idle_nodes).await?;
    let reason = reason("fail");
    let target = std::slice::from_ref(failed);
    let result = async {
        suite.fail(target, &reason).await?;
        let expected = [
            Expect::down(failed, &reason),
            Expect::state(bystander, WorkloadState::Idle),
        ];
        suite.wait_for(&expected, fixture.settle_timeout).await?;
        suite.fail(target, &reason).await?;
        suite
            .expect_now(&expected, "after failing the node again")
            .await
    }
    .await;
    suite.finish(result, target).await
}

/// Resuming a failed node returns it to service.
pub async fn resume_after_fail_returns_to_service(
    workload_manager: &dyn WorkloadManager,
    fixture: &WorkloadManagerFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "workload_manager::resume_after_fail_returns_to_service";
    let (failed, _) = fixture.two_nodes(CHECK)?;
    let suite = Suite::new(CHECK, workload_manager, fixture);
    let target = std::slice::from_ref(failed);
    suite.wait_idle(target).await?;
    let reason = reason("fail-resume");
    let result = async {
        suite.fail(target, &reason).await?;
        suite
            .wait_for(&[Expect::down(failed, &reason)], fixture.settle_timeout)
            .await?;
        suite.resume(target).await?;
        suite
            .wait_for(&[Expect::in_service(failed)], fixture.settle_timeout)
            .await
    }
    .await;
    suite.finish(result, target).await
}

/// Draining a node that runs a job makes it [`WorkloadState::Draining`] while
/// the job runs and [`WorkloadState::Drained`] once it ends. Passes without
/// doing anything when the fixture has no `busy_node`.
pub async fn drain_busy_node_waits_for_jobs(
    workload_manager: &dyn WorkloadManager,
    fixture: &WorkloadManagerFixture,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "workload_manager::drain_busy_node_waits_for_jobs";
    let Some(busy) = &fixture.busy_node else {
        tracing::info!("{CHECK} skipped: the fixture has no busy_node");
        return Ok(());
    };
    let suite = Suite::new(CHECK, workload_manager, fixture);
    let target = std::slice::from_ref(busy);
    suite
        .wait_for(
            &[Expect::state(busy, WorkloadState::Allocated)],
            fixture.settle_timeout,
        )
        .await?;
    let reason = reason("drain-busy");
    let result = async {
        suite.drain(target, &reason).await?;
        let leaving = [Expect {
            node: busy,
            states: &[WorkloadState::Draining, WorkloadState::Drained],
            reason: None,
        }];
        let seen = suite.wait_for(&leaving, fixture.settle_timeout).await?;
        if seen.first().map(|node| node.state) != Some(WorkloadState::Draining) {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "after drain of the busy node {busy}, it should be Draining while its job runs, \
                     but was reported {} (if the job had ended already, give the fixture a longer job)",
                    describe(&seen)
                ),
            ));
        }
        suite
            .wait_for(
                &[Expect::drained(busy, &reason)],
                fixture.jobs_end_within.saturating_add(fixture.settle_timeout),
            )
            .await
    }
    .await;
    suite.finish(result, target).await?;
    suite
        .wait_for(&[Expect::in_service(busy)], fixture.settle_timeout)
        .await
        .map(drop)
}

impl WorkloadManagerFixture {
    /// The first two idle nodes, or a failure of `check` if the fixture has fewer.
    fn two_nodes(&self, check: &'static str) -> Result<(&NodeId, &NodeId), ConformanceError> {
        match self.idle_nodes.as_slice() {
            [first, second, ..] => Ok((first, second)),
            nodes => Err(ConformanceError::new(
                check,
                format!(
                    "the fixture needs at least two idle_nodes, it has {}",
                    NodeList(nodes)
                ),
            )),
        }
    }
}

/// A drain or fail reason unique to this run, so a check cannot pass on a reason left by an earlier run.
fn reason(purpose: &str) -> String {
    format!("crus conformance {purpose} {}", unique_suffix())
}

/// What one node should be reported as.
#[derive(Debug, Clone, Copy)]
struct Expect<'a> {
    node: &'a NodeId,
    /// Any of these states will do.
    states: &'static [WorkloadState],
    /// Text the node's reason must contain.
    reason: Option<&'a str>,
}

impl<'a> Expect<'a> {
    fn state(node: &'a NodeId, state: WorkloadState) -> Self {
        let states: &'static [WorkloadState] = match state {
            WorkloadState::Idle => &[WorkloadState::Idle],
            WorkloadState::Allocated => &[WorkloadState::Allocated],
            WorkloadState::Draining => &[WorkloadState::Draining],
            WorkloadState::Drained => &[WorkloadState::Drained],
            WorkloadState::Down => &[WorkloadState::Down],
            WorkloadState::Unknown => &[WorkloadState::Unknown],
        };
        Expect {
            node,
            states,
            reason: None,
        }
    }

    fn drained(node: &'a NodeId, reason: &'a str) -> Self {
        Expect {
            reason: Some(reason),
            ..Expect::state(node, WorkloadState::Drained)
        }
    }

    fn down(node: &'a NodeId, reason: &'a str) -> Self {
        Expect {
            reason: Some(reason),
            ..Expect::state(node, WorkloadState::Down)
        }
    }

    fn in_service(node: &'a NodeId) -> Self {
        Expect {
            node,
            states: &[WorkloadState::Idle, WorkloadState::Allocated],
            reason: None,
        }
    }

    fn holds_for(&self, reported: &WorkloadNode) -> bool {
        self.states.contains(&reported.state)
            && self.reason.is_none_or(|text| {
                reported
                    .reason
                    .as_deref()
                    .is_some_and(|reason| reason.contains(text))
            })
    }
}

impl Display for Expect<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} ", self.node)?;
        for (index, state) in self.states.iter().enumerate() {
            if index > 0 {
                formatter.write_str(" or ")?;
            }
            write!(formatter, "{state:?}")?;
        }
        if let Some(reason) = self.reason {
            write!(formatter, " with a reason containing {reason:?}")?;
        }
        Ok(())
    }
}

fn describe_expectations(expectations: &[Expect<'_>]) -> String {
    expectations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reported states as `x1: Drained (reason "..."), x2: Idle`.
fn describe(reported: &[WorkloadNode]) -> String {
    if reported.is_empty() {
        return "no node".to_string();
    }
    reported
        .iter()
        .map(|node| {
            let mut text = format!("{}: {:?}", node.node, node.state);
            if let Some(reason) = &node.reason {
                text.push_str(&format!(" (reason {reason:?})"));
            }
            if !node.responding {
                text.push_str(" (not responding)");
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `node_states(nodes)`, checked to answer one entry per node in the order asked.
async fn states(
    check: &'static str,
    workload_manager: &dyn WorkloadManager,
    nodes: &[NodeId],
) -> Result<Vec<WorkloadNode>, ConformanceError> {
    let call = format!("node_states({})", NodeList(nodes));
    let reported = workload_manager
        .node_states(nodes)
        .await
        .or_fail(check, &call)?;
    check_shape(nodes, &reported).map_err(|detail| ConformanceError::new(check, detail))?;
    Ok(reported)
}

/// Whether `reported` has one entry per node of `nodes`, in the same order.
fn check_shape(nodes: &[NodeId], reported: &[WorkloadNode]) -> Result<(), String> {
    if reported.len() == nodes.len()
        && reported
            .iter()
            .zip(nodes)
            .all(|(node, id)| &node.node == id)
    {
        Ok(())
    } else {
        Err(format!(
            "node_states({}) should answer one entry per node in the same order, but answered {}",
            NodeList(nodes),
            describe(reported)
        ))
    }
}

/// One check's access to the workload manager, naming the check in every failure.
struct Suite<'a> {
    check: &'static str,
    workload_manager: &'a dyn WorkloadManager,
    fixture: &'a WorkloadManagerFixture,
}

impl<'a> Suite<'a> {
    fn new(
        check: &'static str,
        workload_manager: &'a dyn WorkloadManager,
        fixture: &'a WorkloadManagerFixture,
    ) -> Self {
        Suite {
            check,
            workload_manager,
            fixture,
        }
    }

    async fn drain(&self, nodes: &[NodeId], reason: &str) -> Result<(), ConformanceError> {
        self.workload_manager.drain(nodes, reason).await.or_fail(
            self.check,
            format!("drain({}, {reason:?})", NodeList(nodes)),
        )
    }

    async fn fail(&self, nodes: &[NodeId], reason: &str) -> Result<(), ConformanceError> {
        self.workload_manager
            .fail(nodes, reason)
            .await
            .or_fail(self.check, format!("fail({}, {reason:?})", NodeList(nodes)))
    }

    async fn resume(&self, nodes: &[NodeId]) -> Result<(), ConformanceError> {
        self.workload_manager
            .resume(nodes)
            .await
            .or_fail(self.check, format!("resume({})", NodeList(nodes)))
    }

    /// Waits until every expectation holds at once; returns the states then
    /// reported, in the order of `expectations`.
    async fn wait_for(
        &self,
        expectations: &[Expect<'_>],
        timeout: Duration,
    ) -> Result<Vec<WorkloadNode>, ConformanceError> {
        let nodes: Vec<NodeId> = expectations
            .iter()
            .map(|expect| expect.node.clone())
            .collect();
        let nodes = nodes.as_slice();
        let workload_manager = self.workload_manager;
        // A wrong shape ends the wait at once (as `Err`) instead of waiting it out.
        let observed = wait_until(
            timeout,
            self.fixture.poll_interval,
            move || async move {
                let reported = workload_manager.node_states(nodes).await?;
                Ok(check_shape(nodes, &reported).map(|()| reported))
            },
            |observation| match observation {
                Ok(reported) => expectations
                    .iter()
                    .zip(reported)
                    .all(|(expect, node)| expect.holds_for(node)),
                Err(_) => true,
            },
        )
        .await
        .map_err(|error| {
            error.into_conformance_error(
                self.check,
                format_args!(
                    "node_states to report {}",
                    describe_expectations(expectations)
                ),
                |observation| match observation {
                    Ok(reported) => describe(reported),
                    Err(shape) => shape.clone(),
                },
            )
        })?;
        observed.map_err(|detail| ConformanceError::new(self.check, detail))
    }

    /// Checks that every expectation holds now, `when` saying after what.
    async fn expect_now(
        &self,
        expectations: &[Expect<'_>],
        when: &str,
    ) -> Result<Vec<WorkloadNode>, ConformanceError> {
        let nodes: Vec<NodeId> = expectations
            .iter()
            .map(|expect| expect.node.clone())
            .collect();
        let reported = states(self.check, self.workload_manager, &nodes).await?;
        if expectations
            .iter()
            .zip(&reported)
            .all(|(expect, node)| expect.holds_for(node))
        {
            Ok(reported)
        } else {
            Err(ConformanceError::new(
                self.check,
                format!(
                    "{when}, node_states should report {}, but reported {}",
                    describe_expectations(expectations),
                    describe(&reported)
                ),
            ))
        }
    }

    /// Precondition of the checks that change nodes: the nodes are idle (the
    /// previous check may still be resuming them).
    async fn wait_idle(&self, nodes: &[NodeId]) -> Result<(), ConformanceError> {
        let idle: Vec<Expect<'_>> = nodes
            .iter()
            .map(|node| Expect::state(node, WorkloadState::Idle))
            .collect();
        self.wait_for(&idle, self.fixture.settle_timeout)
            .await
            .map(drop)
            .map_err(|mut error| {
                error.detail = format!(
                    "precondition: the fixture's idle_nodes should be idle before the check: {}",
                    error.detail
                );
                error
            })
    }

    /// Resumes `nodes` whatever `result` is (so a failed check leaves no node
    /// out of service), and returns the first failure.
    async fn finish<T>(
        &self,
        result: Result<T, ConformanceError>,
        nodes: &[NodeId],
    ) -> Result<(), ConformanceError> {
        let resumed = self.resume(nodes).await;
        result?;
        resumed
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
    use crate::time::Timestamp;

    /// Ways the fake can break the contract, to prove the suite notices.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Bug {
        None,
        /// `drain` records no reason.
        DrainForgetsReason,
        /// `resume` clears drains but not failures.
        ResumeIgnoresFailed,
        /// A draining node is reported drained while its job still runs.
        DrainedWhileJobsRun,
        /// Unknown nodes are left out of `node_states`.
        SkipsUnknownNodes,
        /// `drain` drains every node.
        DrainsEveryone,
    }

    #[derive(Debug, Default)]
    struct FakeNode {
        /// When the drain takes effect.
        drained_from: Option<Instant>,
        /// When the failure takes effect.
        failed_from: Option<Instant>,
        reason: Option<String>,
        /// When the running job ends.
        job_ends_at: Option<Instant>,
    }

    /// A workload manager whose changes show after `delay` of tokio time.
    #[derive(Debug)]
    struct FakeWorkloadManager {
        bug: Bug,
        delay: Duration,
        nodes: Mutex<HashMap<NodeId, FakeNode>>,
    }

    impl FakeWorkloadManager {
        fn new(bug: Bug, fixture: &WorkloadManagerFixture, job_length: Duration) -> Self {
            let mut nodes: HashMap<NodeId, FakeNode> = fixture
                .idle_nodes
                .iter()
                .map(|node| (node.clone(), FakeNode::default()))
                .collect();
            if let Some(busy) = &fixture.busy_node {
                nodes.insert(
                    busy.clone(),
                    FakeNode {
                        job_ends_at: Some(Instant::now() + job_length),
                        ..FakeNode::default()
                    },
                );
            }
            FakeWorkloadManager {
                bug,
                delay: Duration::from_secs(20),
                nodes: Mutex::new(nodes),
            }
        }
    }

    #[async_trait]
    impl WorkloadManager for FakeWorkloadManager {
        async fn drain(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
            let effective = Instant::now() + self.delay;
            let mut known = lock(&self.nodes);
            let everyone: Vec<NodeId> = known.keys().cloned().collect();
            let targets = if self.bug == Bug::DrainsEveryone {
                &everyone[..]
            } else {
                nodes
            };
            for node in targets {
                if let Some(fake) = known.get_mut(node) {
                    fake.drained_from.get_or_insert(effective);
                    if self.bug != Bug::DrainForgetsReason {
                        fake.reason = Some(reason.to_string());
                    }
                }
            }
            Ok(())
        }

        async fn resume(&self, nodes: &[NodeId]) -> Result<()> {
            let mut known = lock(&self.nodes);
            for node in nodes {
                if let Some(fake) = known.get_mut(node) {
                    fake.drained_from = None;
                    if self.bug != Bug::ResumeIgnoresFailed {
                        fake.failed_from = None;
                    }
                    fake.reason = None;
                }
            }
            Ok(())
        }

        async fn fail(&self, nodes: &[NodeId], reason: &str) -> Result<()> {
            let effective = Instant::now() + self.delay;
            let mut known = lock(&self.nodes);
            for node in nodes {
                if let Some(fake) = known.get_mut(node) {
                    fake.failed_from.get_or_insert(effective);
                    fake.reason = Some(reason.to_string());
                }
            }
            Ok(())
        }

        async fn node_states(&self, nodes: &[NodeId]) -> Result<Vec<WorkloadNode>> {
            let now = Instant::now();
            let known = lock(&self.nodes);
            Ok(nodes
                .iter()
                .filter_map(|node| {
                    let Some(fake) = known.get(node) else {
                        return (self.bug != Bug::SkipsUnknownNodes).then(|| WorkloadNode {
                            node: node.clone(),
                            state: WorkloadState::Unknown,
                            responding: false,
                            jobs_end_by: None,
                            reason: None,
                        });
                    };
                    let running = fake.job_ends_at.is_some_and(|end| end > now);
                    let reached = |from: Option<Instant>| from.is_some_and(|from| from <= now);
                    let state = if reached(fake.failed_from) {
                        WorkloadState::Down
                    } else if reached(fake.drained_from) {
                        if running && self.bug != Bug::DrainedWhileJobsRun {
                            WorkloadState::Draining
                        } else {
                            WorkloadState::Drained
                        }
                    } else if running {
                        WorkloadState::Allocated
                    } else {
                        WorkloadState::Idle
                    };
                    Some(WorkloadNode {
                        node: node.clone(),
                        state,
                        responding: true,
                        jobs_end_by: running.then_some(Timestamp::EPOCH),
                        reason: fake.reason.clone(),
                    })
                })
                .collect())
        }
    }

    fn fixture() -> WorkloadManagerFixture {
        WorkloadManagerFixture {
            idle_nodes: vec![NodeId::from("nid000001"), NodeId::from("nid000002")],
            unknown_node: NodeId::from("nid999999"),
            busy_node: Some(NodeId::from("nid000003")),
            jobs_end_within: Duration::from_secs(3600),
            settle_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_secs(5),
        }
    }

    fn fake(bug: Bug) -> FakeWorkloadManager {
        // The busy node's job ends 30 minutes after the suite starts, well after the drain shows.
        FakeWorkloadManager::new(bug, &fixture(), Duration::from_secs(1800))
    }

    #[tokio::test(start_paused = true)]
    async fn a_correct_workload_manager_passes_in_virtual_time() -> Result<(), ConformanceError> {
        let started = Instant::now();
        run_all(&fake(Bug::None), &fixture()).await?;
        // The drains waited for the fake's delay and the busy job's end, in virtual time.
        assert!(
            started.elapsed() >= Duration::from_secs(1800),
            "{:?}",
            started.elapsed()
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn the_busy_check_is_skipped_without_a_busy_node() -> Result<(), ConformanceError> {
        let fixture = WorkloadManagerFixture {
            busy_node: None,
            ..fixture()
        };
        let started = Instant::now();
        drain_busy_node_waits_for_jobs(&fake(Bug::DrainedWhileJobsRun), &fixture).await?;
        assert_eq!(started.elapsed(), Duration::ZERO);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn each_bug_fails_the_check_that_covers_it() {
        for (bug, failing_check) in [
            (
                Bug::SkipsUnknownNodes,
                "workload_manager::node_states_one_per_node_in_order",
            ),
            (
                Bug::DrainForgetsReason,
                "workload_manager::drain_idle_node_becomes_drained",
            ),
            (
                Bug::DrainsEveryone,
                "workload_manager::drain_idle_node_becomes_drained",
            ),
            (
                Bug::ResumeIgnoresFailed,
                "workload_manager::resume_after_fail_returns_to_service",
            ),
            (
                Bug::DrainedWhileJobsRun,
                "workload_manager::drain_busy_node_waits_for_jobs",
            ),
        ] {
            let error = run_all(&fake(bug), &fixture()).await.failure();
            assert_eq!(error.check, failing_check, "{bug:?}: {error}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_reports_what_was_expected_and_seen() {
        let error = drain_idle_node_becomes_drained(&fake(Bug::DrainForgetsReason), &fixture())
            .await
            .failure();
        let message = error.to_string();
        assert!(
            message.contains("node_states to report nid000001 Drained with a reason containing \"crus conformance drain "),
            "{message}"
        );
        assert!(message.contains("did not happen within 120s"), "{message}");
        assert!(
            message.contains("last observed nid000001: Drained, nid000002: Idle"),
            "{message}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_check_leaves_no_node_out_of_service() -> Result<()> {
        let workload_manager = fake(Bug::DrainForgetsReason);
        drain_idle_node_becomes_drained(&workload_manager, &fixture())
            .await
            .failure();
        let reported = workload_manager.node_states(&fixture().idle_nodes).await?;
        assert!(
            reported
                .iter()
                .all(|node| node.state == WorkloadState::Idle),
            "{reported:?}"
        );
        Ok(())
    }

    #[test]
    fn suite_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let workload_manager = fake(Bug::None);
        let fixture = fixture();
        assert_send(&run_all(&workload_manager, &fixture));
    }
}
