//! Live progress of the demo's session: overall nodes done, and nodes by phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crus_backends::sim::SimCluster;
use crus_core::rollout::{NodePhase, RolloutState};
use crus_core::store::SessionStore;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Notify;
use uuid::Uuid;

/// How often (in simulated time) the bars are refreshed.
const TICK: Duration = Duration::from_secs(60);

/// Progress bars on standard error, or nothing when disabled.
pub struct Progress {
    /// Whether anything is drawn.
    enabled: bool,
    /// Keeps the bars together on the terminal.
    _bars: MultiProgress,
    /// Nodes finished (upgraded or failed) of all.
    overall: ProgressBar,
    /// Nodes by phase, and the latest message.
    phases: ProgressBar,
    /// Set when the session has finished.
    stopped: AtomicBool,
    /// Wakes the follower when the session has finished.
    stop: Notify,
}

impl Progress {
    /// Bars for a session of `total` nodes, drawn only if `enabled`.
    pub fn new(enabled: bool, total: u64) -> Self {
        let bars = MultiProgress::with_draw_target(if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let overall = bars.add(ProgressBar::new(total));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>9} [{bar:40.green/blue}] {pos}/{len} nodes  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.set_prefix("upgrade");
        let phases = bars.add(ProgressBar::new_spinner());
        phases.set_style(
            ProgressStyle::with_template("{prefix:>9} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        phases.set_prefix("nodes");
        Progress {
            enabled,
            _bars: bars,
            overall,
            phases,
            stopped: AtomicBool::new(false),
            stop: Notify::new(),
        }
    }

    /// Refreshes the bars from the stored session every simulated minute until
    /// [`Progress::stop`]. With `pace`, sleeps in wall time so that `pace`
    /// simulated seconds pass per second, and a person can watch.
    pub async fn follow(
        &self,
        store: Arc<dyn SessionStore>,
        sim: &SimCluster,
        upgrade_id: Uuid,
        pace: Option<f64>,
    ) {
        if !self.enabled {
            return;
        }
        while !self.stopped.load(Ordering::SeqCst) {
            if let Ok(Some(record)) = store.get(upgrade_id).await {
                let state = &record.value.rollout;
                self.show(state);
                if let Some(started) = state.started_at {
                    let elapsed = sim.now().saturating_since(started);
                    let minutes = elapsed.as_secs() / 60;
                    self.overall.set_message(format!(
                        "{}  t+{}h{:02}m  jobs running {} queued {}",
                        self.overall.message(),
                        minutes / 60,
                        minutes % 60,
                        sim.running_jobs(),
                        sim.queued_jobs()
                    ));
                }
            }
            if let Some(pace) = pace {
                // Blocking the (single) runtime thread slows simulated time
                // down to the chosen pace; nothing else needs the thread.
                std::thread::sleep(TICK.div_f64(pace));
            }
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = self.stop.notified() => {}
            }
        }
    }

    fn show(&self, state: &RolloutState) {
        let done = state.count(NodePhase::Done)
            + state.count(NodePhase::Failed)
            + state.count(NodePhase::Reverted);
        self.overall.set_length(state.nodes.len().max(1) as u64);
        self.overall.set_position(done as u64);
        let active = state.active_step_numbers();
        self.overall.set_message(match active.as_slice() {
            [] => String::new(),
            [step] => format!("step {step}"),
            [first, .., last] => format!("steps {first}–{last}"),
        });
        let counts: Vec<String> = NodePhase::ALL
            .iter()
            .filter(|phase| !matches!(phase, NodePhase::Releasing | NodePhase::Skipped))
            .map(|&phase| format!("{} {}", phase.as_str(), state.count(phase)))
            .collect();
        let last = state.messages.last().map(String::as_str).unwrap_or("");
        self.phases
            .set_message(format!("{}\n{:>9} {last}", counts.join(" · "), ""));
    }

    /// Tells the follower the session has finished.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop.notify_one();
    }

    /// Clears the bars.
    pub fn finish(&self) {
        self.overall.finish_and_clear();
        self.phases.finish_and_clear();
    }
}
