//! `[sim]` of `crus.toml`: the simulated cluster a server runs on, read with
//! serde, checked, and built into ports and a scaled clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crus_core::clock::Clock;
use crus_core::ports::Ports;
use serde::Deserialize;

use super::{Faults, ScaledClock, SimCluster, SimConfig, SyntheticWorkload, Workload};
use crate::settings::{InvalidSetting, humantime_duration};

/// `sim.trace`: the job trace the simulated cluster replays. Any name but
/// the three keywords is the path of an SWF file (read when the cluster is
/// built, a failure naming `sim.trace`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum SimTrace {
    /// `none`: no jobs.
    None,
    /// `nasa`: the bundled NASA iPSC/860 trace.
    Nasa,
    /// `synthetic`: jobs generated from the seed.
    Synthetic,
    /// An SWF file.
    SwfFile(PathBuf),
}

impl From<String> for SimTrace {
    fn from(name: String) -> Self {
        match name.as_str() {
            "none" => SimTrace::None,
            "nasa" => SimTrace::Nasa,
            "synthetic" => SimTrace::Synthetic,
            _ => SimTrace::SwfFile(PathBuf::from(name)),
        }
    }
}

/// `[sim]`: the simulated cluster.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSettings {
    /// Number of nodes.
    pub nodes: usize,
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    /// Job trace: an SWF file, `nasa` (the bundled trace), `synthetic` or `none`.
    pub trace: SimTrace,
    /// Fraction of boots that fail.
    pub fail_rate: f64,
    /// Fraction of boots that never finish: the node hangs until it is
    /// power-restarted (a session's `escalate_power_cycle` does that).
    pub never_return_rate: f64,
    /// Fraction of calls to the simulated backends (inventory, workload
    /// manager, boots, power) that fail: half before reaching the cluster,
    /// half as a timeout after taking effect.
    pub port_fault_rate: f64,
    /// Typical time a node takes to boot (each boot varies by ±25%).
    #[serde(with = "humantime_duration")]
    pub boot_time: Duration,
    /// File the simulated cluster keeps its state in, so it outlives the server.
    pub state: Option<PathBuf>,
    /// Seed of every random choice.
    pub seed: u64,
    /// The boot timeout of sessions whose policy sets none, unless
    /// `rollout.boot_timeout` is set; absent:
    /// [`SimSettings::DEFAULT_BOOT_TIMEOUT`].
    #[serde(with = "crate::settings::humantime_duration_option")]
    pub boot_timeout: Option<Duration>,
    /// Fraction of session store writes made to fail (`--sim-store-fault-rate`,
    /// a hidden flag for fault-soak tests; not a configuration key).
    #[serde(skip)]
    pub store_fault_rate: f64,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            nodes: 64,
            speed: 600.0,
            trace: SimTrace::Synthetic,
            fail_rate: 0.0,
            never_return_rate: 0.0,
            port_fault_rate: 0.0,
            boot_time: Duration::from_secs(4 * 60),
            state: None,
            seed: 1,
            boot_timeout: None,
            store_fault_rate: 0.0,
        }
    }
}

impl SimSettings {
    /// Boots take `boot_time` (4 minutes by default, ±25%); this is what
    /// every session had before backends had their own defaults.
    pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

    /// The boot timeout of sessions whose policy sets none (unless the
    /// server sets one for all): `boot_timeout`, or the default.
    pub fn boot_timeout(&self) -> Duration {
        self.boot_timeout.unwrap_or(Self::DEFAULT_BOOT_TIMEOUT)
    }

    /// Checks what the types alone do not.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.nodes == 0 {
            return Err(InvalidSetting::new("sim.nodes", "must be at least 1"));
        }
        if !(self.speed > 0.0 && self.speed.is_finite()) {
            return Err(InvalidSetting::new(
                "sim.speed",
                format!("{} is not a positive number", self.speed),
            ));
        }
        for (key, rate) in [
            ("sim.fail_rate", self.fail_rate),
            ("sim.never_return_rate", self.never_return_rate),
            ("--sim-store-fault-rate", self.store_fault_rate),
            ("sim.port_fault_rate", self.port_fault_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(InvalidSetting::new(
                    key,
                    format!("{rate} is not between 0 and 1"),
                ));
            }
        }
        if self.fail_rate + self.never_return_rate > 1.0 {
            return Err(InvalidSetting::new(
                "sim.never_return_rate",
                format!(
                    "sim.fail_rate + sim.never_return_rate is {}, more than 1: a boot \
                     cannot both fail and hang",
                    self.fail_rate + self.never_return_rate
                ),
            ));
        }
        if self.boot_time.is_zero() {
            return Err(InvalidSetting::new(
                "sim.boot_time",
                "must be longer than zero",
            ));
        }
        if self.boot_timeout.is_some_and(|timeout| timeout.is_zero()) {
            return Err(InvalidSetting::new(
                "sim.boot_timeout",
                "must be longer than zero",
            ));
        }
        Ok(())
    }

    /// The simulated cluster's ports and its clock, running `speed` times
    /// faster than the wall clock; kept in `state` when given.
    pub fn build(&self) -> Result<(Ports, Arc<dyn Clock>), InvalidSetting> {
        self.check()?;
        let workload = match &self.trace {
            SimTrace::None => Workload::None,
            SimTrace::Nasa => Workload::nasa_ipsc()
                .map_err(|error| InvalidSetting::new("sim.trace", error.to_string()))?,
            SimTrace::Synthetic => Workload::synthetic(&SyntheticWorkload {
                nodes: self.nodes,
                seed: self.seed,
                duration: Duration::from_secs(90 * 24 * 3600),
                ..SyntheticWorkload::default()
            }),
            SimTrace::SwfFile(path) => Workload::from_swf_file(path)
                .map_err(|error| InvalidSetting::new("sim.trace", error.to_string()))?,
        };
        let config = SimConfig {
            nodes: self.nodes,
            seed: self.seed,
            workload,
            boot_time: self.boot_time,
            faults: Faults {
                boot_fail_rate: self.fail_rate,
                never_return_rate: self.never_return_rate,
                port_error_rate: self.port_fault_rate / 2.0,
                port_timeout_rate: self.port_fault_rate / 2.0,
                ..Faults::default()
            },
            ..SimConfig::default()
        };
        let (sim, clock) = match &self.state {
            Some(path) => SimCluster::open_scaled_with_state_file(path, config, self.speed)
                .map_err(|error| {
                    InvalidSetting::new(
                        "sim.state",
                        format!(
                            "cannot open the simulated cluster state {}: {error}",
                            path.display()
                        ),
                    )
                })?,
            None => {
                let clock = Arc::new(
                    ScaledClock::new(crus_core::Timestamp::now(), self.speed)
                        .map_err(|error| InvalidSetting::new("sim.speed", error.to_string()))?,
                );
                let sim =
                    SimCluster::new(config, clock.clone() as Arc<dyn Clock>).map_err(|error| {
                        InvalidSetting::new(
                            "sim",
                            format!("cannot build the simulated cluster: {error}"),
                        )
                    })?;
                (sim, clock)
            }
        };
        tracing::info!(
            nodes = self.nodes,
            speed = self.speed,
            group = "compute",
            template = "compute-image",
            "simulated cluster ready"
        );
        Ok((sim.ports(), clock))
    }
}
