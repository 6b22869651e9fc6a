//! Writing down what happened: node phases, the CRUS state, events and messages.

use super::*;

impl Rollout {
    pub(super) fn set_phase(&mut self, node: usize, phase: NodePhase, now: Timestamp) {
        let record = &mut self.state.nodes[node];
        if record.phase == phase {
            return;
        }
        let from = record.phase;
        record.phase = phase;
        record.since = now;
        self.census.phase_changed(node, record.step, from, phase);
        if phase == NodePhase::Draining {
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
            NodePhase::Failing | NodePhase::Failed | NodePhase::Releasing | NodePhase::Skipped
        )
        .then(|| record.reason.clone())
        .flatten();
        let id = record.id.clone();
        self.dirty = true;
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

    pub(super) fn post(&mut self, now: Timestamp, message: String) {
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
    pub(super) fn post_once(&mut self, now: Timestamp, message: String) {
        if !self.state.messages.contains(&message) {
            self.post(now, message);
        }
    }
}
