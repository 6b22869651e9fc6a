//! The session's lifecycle as one enum, and the one function that moves it.
//!
//! The stored record keeps CRUS-era fields (`stage`, `completed`,
//! `cancelled`, `paused`, `halted`), so sessions stored by earlier releases
//! load as they are; [`Lifecycle`] is what those fields mean together, and
//! [`Rollout::transition`] is the only code that writes them, through one
//! `match (lifecycle, input)` table that refuses a move it does not list.

use serde::Serialize;

use super::{GateHold, NodePhase, Rollout, RolloutState, Stage, Timer};
use crate::time::Timestamp;

/// Where a session as a whole stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "lifecycle")]
pub enum Lifecycle {
    /// Reading the starting group.
    Snapshot,
    /// Making sure the upgrading and failed groups exist and are empty.
    PreparingGroups,
    /// Upgrading nodes, unless something holds it from taking new ones.
    Running {
        /// What keeps it from taking new nodes, if anything.
        hold: Option<Hold>,
    },
    /// Deletion was requested: nodes in flight finish, the others go back.
    Cancelling,
    /// Every node is through; emptying the upgrading group.
    Cleanup,
    /// Nothing left to do.
    Finished {
        /// How it ended.
        outcome: Outcome,
    },
}

/// What keeps a running session from taking new nodes (nodes in flight finish).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// More nodes failed than the failure budget allows, until an operator resumes it.
    Halted,
    /// An operator (or a canary) paused it, until an operator resumes it.
    Paused,
    /// The maintenance windows are closed, until one opens.
    OutsideWindows,
    /// An alert gate blocks (or cannot be asked), until it clears.
    Gated,
}

/// How a finished session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every node upgraded (or skipped).
    Upgraded,
    /// Some nodes failed.
    SomeFailed,
    /// It was deleted before it ended.
    Deleted,
}

/// What moves a session's lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionInput {
    /// The starting group was read; `empty` when it has no members.
    SnapshotTaken {
        /// Whether there is nothing to upgrade.
        empty: bool,
    },
    /// The upgrading and failed groups are ready.
    GroupsPrepared,
    /// An operator or a canary asks it to take no new node.
    Pause,
    /// An operator asks it to take nodes again.
    Resume,
    /// The alert gates block (again, or for other reasons).
    Gate {
        /// What blocks, one sentence per gate.
        reasons: Vec<String>,
    },
    /// Every alert gate is clear again.
    GatesCleared,
    /// Too many nodes failed.
    Halt {
        /// Why.
        reason: String,
    },
    /// A halted session starts booting the nodes it upgraded back to the
    /// rollback template (`revert_upgraded_on_halt`).
    RevertUpgraded {
        /// Why it halted.
        reason: String,
    },
    /// Deletion was requested.
    Cancel,
    /// No step is active and nothing is left to take.
    Settled,
    /// The upgrading group is empty: the session is over.
    Finish,
}

/// A lifecycle move the table does not allow: a bug in the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session in {from:?}: {input:?} is not a move from there")]
pub struct RefusedSessionMove {
    /// Where the session stood (and stays).
    pub from: Lifecycle,
    /// What was asked.
    pub input: SessionInput,
}

impl Lifecycle {
    /// What the stored fields of `state` mean together; `outside_windows`
    /// when nodes wait for a maintenance window to open.
    pub fn of(state: &RolloutState, outside_windows: bool) -> Lifecycle {
        Lifecycle::counting(state, outside_windows, || state.count(NodePhase::Failed))
    }

    /// [`Lifecycle::of`], with how many nodes failed asked of `failed`, and
    /// only when it matters (a finished session not deleted): a rollout
    /// knows it from its census, without a pass over every node.
    fn counting(
        state: &RolloutState,
        outside_windows: bool,
        failed: impl FnOnce() -> usize,
    ) -> Lifecycle {
        match state.stage {
            Stage::Snapshot => Lifecycle::Snapshot,
            Stage::PrepareGroups => Lifecycle::PreparingGroups,
            Stage::Running if state.cancelled => Lifecycle::Cancelling,
            Stage::Running => Lifecycle::Running {
                hold: if state.halted.is_some() {
                    Some(Hold::Halted)
                } else if state.paused {
                    Some(Hold::Paused)
                } else if state.gated.is_some() {
                    Some(Hold::Gated)
                } else if outside_windows {
                    Some(Hold::OutsideWindows)
                } else {
                    None
                },
            },
            Stage::Cleanup => Lifecycle::Cleanup,
            Stage::Finished => Lifecycle::Finished {
                outcome: if state.cancelled {
                    Outcome::Deleted
                } else if failed() > 0 {
                    Outcome::SomeFailed
                } else {
                    Outcome::Upgraded
                },
            },
        }
    }

    /// Whether `input` is a move from here.
    pub fn allows(self, input: &SessionInput) -> bool {
        use Lifecycle as L;
        use SessionInput as In;
        matches!(
            (self, input),
            (L::Snapshot, In::SnapshotTaken { .. })
                | (L::PreparingGroups, In::GroupsPrepared)
                | (
                    L::Snapshot | L::PreparingGroups | L::Running { .. } | L::Cleanup,
                    In::Pause | In::Resume
                )
                | (L::Running { .. }, In::Halt { .. } | In::Gate { .. } | In::GatesCleared)
                | (
                    L::Running {
                        hold: Some(Hold::Halted)
                    },
                    In::RevertUpgraded { .. }
                )
                // A finished session is marked deleting too, as CRUS did.
                | (_, In::Cancel)
                | (L::Running { .. } | L::Cancelling, In::Settled)
                | (
                    L::Snapshot | L::PreparingGroups | L::Running { .. } | L::Cancelling | L::Cleanup,
                    In::Finish
                )
        )
    }
}

impl Rollout {
    /// Where the session stands now.
    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle::counting(
            &self.state,
            self.timers.get(Timer::WindowOpens).is_some(),
            || self.census.count(NodePhase::Failed),
        )
    }

    // What the engine asks of where the session stands, beyond matching
    // `lifecycle()`: what the enum does not show (a pause under a halt, a
    // halt or a deletion kept through cleanup), and questions asked for
    // every node, which read only the fields they need (`lifecycle()` looks
    // up the window timer and, once finished, counts the failed nodes). The
    // tests check each one against the fields it stands for and against
    // `Lifecycle::of`, over every combination of them.

    /// Whether the session has nothing left to do: [`Lifecycle::Finished`].
    /// (`completed` is written with the stage, by `Finish` alone, so it
    /// says the same.)
    pub fn is_finished(&self) -> bool {
        self.state.stage == Stage::Finished
    }

    /// Whether deletion was requested: [`Lifecycle::Cancelling`], and the
    /// [`Lifecycle::Cleanup`] and [`Lifecycle::Finished`] after a deletion.
    pub(super) fn deletion_requested(&self) -> bool {
        self.state.cancelled
    }

    /// Whether an operator (or a canary) paused the session, in any
    /// lifecycle and halted or not: a halt shows over a pause
    /// ([`Hold::Halted`]), and both stay until one resume lifts them.
    pub(super) fn is_paused(&self) -> bool {
        self.state.paused
    }

    /// Why the session halted, if it did: kept through
    /// [`Lifecycle::Cleanup`] and [`Lifecycle::Finished`] (a deletion
    /// shows over it), until an operator resumes it.
    pub(super) fn halt_reason(&self) -> Option<&str> {
        self.state.halted.as_deref()
    }

    /// Whether the session halted (see `halt_reason`).
    pub(super) fn is_halted(&self) -> bool {
        self.state.halted.is_some()
    }

    /// Whether a halt is still to come: neither halted already nor deleted,
    /// in any lifecycle.
    pub(super) fn may_halt(&self) -> bool {
        !self.is_halted() && !self.deletion_requested()
    }

    /// Whether nodes are being taken through their upgrade:
    /// [`Lifecycle::Running`], whatever holds it.
    pub(super) fn is_running(&self) -> bool {
        self.state.stage == Stage::Running && !self.state.cancelled
    }

    /// Whether nodes are in their upgrade's stage: [`Lifecycle::Running`]
    /// or [`Lifecycle::Cancelling`] (whose nodes in flight finish).
    pub(super) fn running_or_cancelling(&self) -> bool {
        self.state.stage == Stage::Running
    }

    /// Whether the session takes no new node whatever the gates and the
    /// windows say, in any lifecycle: deleted, halted or paused (only an
    /// operator's resume lifts the last two).
    pub(super) fn stopped_taking(&self) -> bool {
        self.deletion_requested() || self.is_paused() || self.is_halted()
    }

    /// Whether the session takes nodes once the gates and the windows let
    /// it: [`Lifecycle::Running`] held by nothing but those
    /// ([`Hold::Gated`], [`Hold::OutsideWindows`]).
    pub(super) fn may_take_nodes(&self) -> bool {
        self.state.stage == Stage::Running && !self.stopped_taking()
    }

    /// The session lifecycle moves refused so far: empty unless the engine
    /// has a bug.
    pub fn refused_session_moves(&self) -> &[RefusedSessionMove] {
        &self.refused_session_moves
    }

    /// Moves the session by `input`: the only writer of the stored
    /// lifecycle fields. A move the table does not allow changes nothing
    /// and is kept (see [`Rollout::refused_session_moves`]).
    pub(super) fn transition(&mut self, now: Timestamp, input: SessionInput) -> bool {
        let from = self.lifecycle();
        if !from.allows(&input) {
            let refused = RefusedSessionMove { from, input };
            tracing::error!(upgrade_id = %self.state.upgrade_id, "{refused}; the session is left as it is");
            self.refused_session_moves.push(refused);
            return false;
        }
        let state = &mut self.state;
        match input {
            SessionInput::SnapshotTaken { empty: true } => state.stage = Stage::Cleanup,
            SessionInput::SnapshotTaken { empty: false } => state.stage = Stage::PrepareGroups,
            SessionInput::GroupsPrepared => state.stage = Stage::Running,
            SessionInput::Pause => state.paused = true,
            SessionInput::Resume => {
                state.paused = false;
                state.halted = None;
                // The operator takes the session on again: no more nodes
                // are booted back (those in flight finish their revert).
                state.reverting = None;
                // An operator's resume gives the gates a new `max_hold`.
                if let Some(hold) = &mut state.gated {
                    hold.since = now;
                }
            }
            SessionInput::Gate { reasons } => {
                let since = state.gated.as_ref().map_or(now, |hold| hold.since);
                state.gated = Some(GateHold { since, reasons });
            }
            SessionInput::GatesCleared => state.gated = None,
            SessionInput::Halt { reason } => state.halted = Some(reason),
            SessionInput::RevertUpgraded { reason } => {
                state.reverting = Some(super::RevertOnHalt { since: now, reason });
            }
            SessionInput::Cancel => {
                state.cancelled = true;
                if state.stage == Stage::PrepareGroups {
                    state.stage = Stage::Cleanup;
                }
            }
            SessionInput::Settled => state.stage = Stage::Cleanup,
            SessionInput::Finish => {
                state.stage = Stage::Finished;
                state.completed = true;
                state.finished_at = Some(now);
                self.timers.clear(Timer::WindowOpens);
            }
        }
        self.dirty = true;
        self.arm_hold_expiry();
        true
    }
}
