//! What a simulation run measured: the counters and time integrals that tests,
//! the demo and the rollout-efficiency benchmark read.

use std::collections::BTreeMap;

use crus_core::NodeId;
use serde::{Deserialize, Serialize};

/// Measurements of a simulated cluster from its time zero to its `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// Seconds of simulated time since time zero.
    pub elapsed_s: f64,
    /// Boots started through the boot orchestrator, per node (nodes never
    /// booted are left out).
    pub node_boots: BTreeMap<NodeId, u32>,
    /// Boots started through the boot orchestrator, in total.
    pub boots: u64,
    /// The most nodes out of service by crus at once: drained (or draining)
    /// or booting, not counting nodes marked failed.
    pub max_out_of_service: usize,
    /// The most nodes out of service by crus at once that ran no job
    /// (drained and idle, or booting): the nodes a step bounds when nodes
    /// drain ahead (`drain_ahead`), whose draining ones still run jobs.
    #[serde(default)]
    pub max_idle_out_of_service: usize,
    /// Integral over time of the number of nodes out of service by crus, in node-seconds.
    pub out_of_service_node_s: f64,
    /// Integral over time of the number of drained nodes that run no job, are
    /// not booting and are not marked failed, in node-seconds: capacity the
    /// upgrade holds idle.
    pub drained_idle_node_s: f64,
    /// Jobs that arrived in the queue.
    pub jobs_submitted: u64,
    /// Jobs that started (including the never-ending jobs of `Faults::stuck_jobs`).
    pub jobs_started: u64,
    /// Jobs that ran to their end.
    pub jobs_completed: u64,
    /// Jobs killed because a node they ran on was rebooted or powered off.
    pub jobs_killed: u64,
    /// Jobs put back in the queue by a requeue (`on_drain_timeout: requeue`).
    #[serde(default)]
    pub jobs_requeued: u64,
    /// Sum over started jobs of their wait (start - submit), in seconds.
    pub job_wait_s_total: f64,
    /// Node boots, restarts and power-offs of a node that was running a job.
    /// crus must never cause one: tests check this stays 0.
    pub reboots_with_running_jobs: u64,
    /// Power operations requested, one per node per call.
    pub power_operations: u64,
}

/// Running totals kept by the model; a [`SimReport`] is made from them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Tally {
    /// See [`SimReport::boots`].
    pub boots: u64,
    /// Nodes out of service by crus right now.
    pub out_of_service: usize,
    /// Drained idle nodes right now.
    pub drained_idle: usize,
    /// See [`SimReport::max_out_of_service`].
    pub max_out_of_service: usize,
    /// See [`SimReport::max_idle_out_of_service`].
    #[serde(default)]
    pub max_idle_out_of_service: usize,
    /// Node-milliseconds out of service by crus (integers, so sums are exact).
    pub out_of_service_node_ms: u64,
    /// Node-milliseconds drained and idle.
    pub drained_idle_node_ms: u64,
    /// See [`SimReport::jobs_submitted`].
    pub jobs_submitted: u64,
    /// See [`SimReport::jobs_started`].
    pub jobs_started: u64,
    /// See [`SimReport::jobs_completed`].
    pub jobs_completed: u64,
    /// See [`SimReport::jobs_killed`].
    pub jobs_killed: u64,
    /// See [`SimReport::jobs_requeued`].
    #[serde(default)]
    pub jobs_requeued: u64,
    /// Total job wait in milliseconds.
    pub job_wait_ms_total: u64,
    /// See [`SimReport::reboots_with_running_jobs`].
    pub reboots_with_running_jobs: u64,
    /// See [`SimReport::power_operations`].
    pub power_operations: u64,
}

impl Tally {
    /// Adds `elapsed_ms` milliseconds at the current gauges to the integrals.
    pub fn integrate(&mut self, elapsed_ms: u64) {
        let node_ms = |nodes: usize| (nodes as u64).saturating_mul(elapsed_ms);
        self.out_of_service_node_ms = self
            .out_of_service_node_ms
            .saturating_add(node_ms(self.out_of_service));
        self.drained_idle_node_ms = self
            .drained_idle_node_ms
            .saturating_add(node_ms(self.drained_idle));
    }

    /// Sets the gauges after a change of state: the nodes out of service by
    /// crus, those of them drained and idle, and those running no job
    /// (drained and idle, or booting).
    pub fn set_gauges(
        &mut self,
        out_of_service: usize,
        drained_idle: usize,
        idle_out_of_service: usize,
    ) {
        self.out_of_service = out_of_service;
        self.drained_idle = drained_idle;
        self.max_out_of_service = self.max_out_of_service.max(out_of_service);
        self.max_idle_out_of_service = self.max_idle_out_of_service.max(idle_out_of_service);
    }

    /// The report, given the elapsed time and the per-node boots.
    pub fn report(&self, elapsed_ms: u64, node_boots: BTreeMap<NodeId, u32>) -> SimReport {
        let seconds = |millis: u64| millis as f64 / 1000.0;
        SimReport {
            elapsed_s: seconds(elapsed_ms),
            node_boots,
            boots: self.boots,
            max_out_of_service: self.max_out_of_service,
            max_idle_out_of_service: self.max_idle_out_of_service,
            out_of_service_node_s: seconds(self.out_of_service_node_ms),
            drained_idle_node_s: seconds(self.drained_idle_node_ms),
            jobs_submitted: self.jobs_submitted,
            jobs_started: self.jobs_started,
            jobs_completed: self.jobs_completed,
            jobs_killed: self.jobs_killed,
            jobs_requeued: self.jobs_requeued,
            job_wait_s_total: seconds(self.job_wait_ms_total),
            reboots_with_running_jobs: self.reboots_with_running_jobs,
            power_operations: self.power_operations,
        }
    }
}
