//! Writing down what happened: node phases, the CRUS state, events and messages.

use super::*;

impl Rollout {
    /// Moves `node` by `input` through the node phase table
    /// ([`NodePhase::after`]). A move the table does not allow leaves the
    /// node as it is and is kept as a [`RefusedMove`] (see
    /// [`Rollout::refused_moves`]): it is a bug in the engine, which tests
    /// and property tests catch.
    pub(super) fn move_node(&mut self, node: usize, input: NodeInput, now: Timestamp) {
        let record = &mut self.state.nodes[node];
        let from = record.phase;
        let Some(phase) = from.after(input) else {
            let refused = RefusedMove {
                node: record.id.clone(),
                from,
                input,
            };
            tracing::error!(upgrade_id = %self.state.upgrade_id, "{refused}: the node is left as it is");
            self.refused_moves.push(refused);
            return;
        };
        record.phase = phase;
        record.since = now;
        if self.state.policy.steer_jobs {
            self.weights_touched.insert(node);
        }
        self.census.phase_changed(node, record.step, from, phase);
        if phase == NodePhase::Draining {
            // A new stay in `draining`: its drain is asked for anew, but a
            // node drained ahead of its step was drained already.
            record.drain_asked_at = self.state.drained_ahead.contains(&node).then_some(now);
        }
        if phase != NodePhase::Draining && !self.state.drained_ahead.contains(&node) {
            self.drains_unconfirmed.remove(&node);
        }
        if phase == NodePhase::Draining && record.foreign.is_none() {
            self.drain_owed.insert(node);
        } else {
            self.drain_owed.remove(&node);
        }
        if !matches!(phase, NodePhase::Booting | NodePhase::Verifying) {
            record.escalation = None;
        }
        if phase.is_terminal() {
            record.finished_at = Some(now);
        }
        let reason = matches!(
            phase,
            NodePhase::Failing
                | NodePhase::Failed
                | NodePhase::Releasing
                | NodePhase::Skipped
                | NodePhase::Reverted
        )
        .then(|| record.reason.clone())
        .flatten();
        let id = record.id.clone();
        self.dirty = true;
        self.note_pending_move(node, from, phase);
        self.reservation_node_moved(node, from, phase, now);
        // A node's timers exist only in these phases: a move that neither
        // enters nor leaves one has none to set or clear (most moves, and
        // each costs map lookups).
        let awaited = |phase: NodePhase| matches!(phase, NodePhase::Booting | NodePhase::Verifying);
        if awaited(from) || awaited(phase) {
            self.arm_come_back(node);
        }
        if from == NodePhase::Draining || phase == NodePhase::Draining {
            self.arm_drain_timers(node);
        }
        self.emit(
            now,
            EventKind::NodePhase {
                node: id,
                from,
                to: phase,
                reason,
            },
        );
    }

    pub(super) fn set_state(&mut self, state: SessionState, now: Timestamp) {
        if self.state.state != state {
            self.state.state = state;
            self.dirty = true;
            self.emit(now, EventKind::State { state });
        }
    }

    pub(super) fn emit(&mut self, at: Timestamp, kind: EventKind) {
        self.events.push(RolloutEvent {
            upgrade_id: self.state.upgrade_id,
            at,
            kind,
        });
    }

    /// Posts what `said` says in its words (all written in one place, the
    /// `said` module): logged, sent as an event and kept in the session's
    /// messages.
    pub(super) fn say(&mut self, now: Timestamp, said: Said) {
        self.post(now, said.to_string());
    }

    /// [`Rollout::say`], unless the same message was posted already.
    pub(super) fn say_once(&mut self, now: Timestamp, said: Said) {
        self.post_once(now, said.to_string());
    }

    /// Logs `message`, emits it and appends it to the session's messages.
    fn post(&mut self, now: Timestamp, message: String) {
        tracing::info!(upgrade_id = %self.state.upgrade_id, "{message}");
        self.emit(
            now,
            EventKind::Message {
                text: message.clone(),
            },
        );
        messages::push(
            &mut self.state.messages,
            &mut self.state.messages_folded,
            message,
        );
        self.dirty = true;
    }

    /// Posts `message` unless the same message was posted already (repeated
    /// errors would otherwise flood the list, as in CRUS).
    fn post_once(&mut self, now: Timestamp, message: String) {
        if !self.state.messages.contains(&message) {
            self.post(now, message);
        }
    }
}
