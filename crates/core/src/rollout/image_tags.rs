//! Image tags for jobs (`image_features`, issue 20): each node this session
//! upgrades gets the workload-manager feature naming its image
//! (`img_<template>`, see `image_features.rs`) in place of any older `img_*`
//! one, so a multi-node job can ask (`--constraint=img_<template>`) to run on
//! one image only. Every other node keeps exactly its own features.
//!
//! Each node's own feature list is read before the session first changes
//! the node (once it is taken) and kept in its record, so a controller
//! resuming after a crash restores it exactly. A node is tagged when it is
//! returned to service upgraded (`resuming`, `done`); one that fails, is
//! skipped or reverted keeps (or gets back) its own list.
//!
//! What a session leaves behind, however it ends: the tag stays on the nodes
//! it upgraded, because it is true (they run that image) and it is the point
//! of the tag; the old image's `img_*` is gone from them. A session that
//! finishes, halts for good or is deleted leaves every node it did not
//! upgrade with exactly its own features. The session does not end (its
//! cleanup waits) until every node's features are what they are to be.
//!
//! Which lists were set is not persisted: a resumed rollout sets the list of
//! every node whose own features it knows again, which is idempotent. A list
//! set with `scontrol update` may not outlive a `slurmctld` restart or
//! `scontrol reconfigure` (Slurm then takes the features from `slurm.conf`
//! again), so while the session runs the lists set are read back every
//! [`FEATURE_CHECK_INTERVAL`], and once more when it cleans up before its
//! end, and set again when they changed. A loss after the session's end
//! (the tags of upgraded nodes gone at the next restart) is beyond any
//! session: where Slurm forgets features, a site that wants the tags to
//! stay puts them in `slurm.conf`.

use std::time::Duration;

use super::image_features::with_image_feature;
use super::*;

/// How often the features set are read back, to set again those the
/// workload manager lost (a `slurmctld` restart, `scontrol reconfigure`).
pub const FEATURE_CHECK_INTERVAL: Duration = Duration::from_secs(60);

impl Rollout {
    /// Whether this session manages node features: asked for, and the
    /// workload manager has not answered that it cannot.
    fn image_tags_on(&self) -> bool {
        self.state.policy.image_features && !self.image_features_unsupported
    }

    /// Whether `node` carries its image's tag: this session upgraded it and
    /// it is (being) returned to service. A node resuming after it was
    /// booted back to the rollback template is not upgraded.
    fn tagged(&self, node: usize) -> bool {
        let record = &self.state.nodes[node];
        match record.phase {
            NodePhase::Done => true,
            NodePhase::Resuming => record.rollback_reason.is_none(),
            _ => false,
        }
    }

    /// Whether the session has changed, or is about to change, `node`: taken
    /// and not let go untouched. Its own features are read from here on.
    fn taken(&self, node: usize) -> bool {
        matches!(
            self.state.nodes[node].phase,
            NodePhase::Draining
                | NodePhase::Drained
                | NodePhase::Booting
                | NodePhase::Verifying
                | NodePhase::Resuming
                | NodePhase::Done
        )
    }

    /// The features `node` is to have, once its own are known.
    fn wanted_features(&self, node: usize) -> Option<Vec<String>> {
        let own = self.state.nodes[node].own_features.as_ref()?;
        Some(if self.tagged(node) {
            with_image_feature(own, &self.state.spec.upgrade_template_id)
        } else {
            own.clone()
        })
    }

    /// The features `node` is still to be given: the ones it is to have,
    /// when they are not the ones this process last set.
    fn features_to_set(&self, node: usize) -> Option<Vec<String>> {
        let wanted = self.wanted_features(node)?;
        (self.features_set.get(&node) != Some(&wanted)).then_some(wanted)
    }

    /// Whether `node`'s own features are still to be read.
    fn own_features_unread(&self, node: usize) -> bool {
        self.state.nodes[node].own_features.is_none() && self.taken(node)
    }

    /// Whether some node's features still differ from what they are to be,
    /// or are still to be read: a session does not end before they are all
    /// set.
    pub(super) fn features_owed(&self) -> bool {
        if !self.image_tags_on() {
            return false;
        }
        self.final_check_owed()
            || (0..self.state.nodes.len())
                .any(|node| self.own_features_unread(node) || self.features_to_set(node).is_some())
    }

    /// Whether the features set are still to be read back once before the
    /// session ends.
    fn final_check_owed(&self) -> bool {
        self.lifecycle() == Lifecycle::Cleanup
            && !self.features_verified
            && !self.features_set.is_empty()
    }

    /// Whether the periodic read-back of the features set is to wake the
    /// session: while it runs, and not while a read is in flight.
    pub(super) fn feature_check_armed(&self) -> bool {
        self.image_tags_on()
            && self.running_or_cancelling()
            && !self.features_set.is_empty()
            && !self.is_in_flight(|action| matches!(action, Action::ReadFeatures { .. }))
    }

    /// Queues the feature reads and settings owed, one action of each kind
    /// at a time: the own features still to read, the lists that differ
    /// from what the nodes' phases want, and the periodic check of the lists
    /// set.
    pub(super) fn queue_feature_actions(&mut self, now: Timestamp) {
        if !self.image_tags_on() {
            return;
        }
        if !self.timers.passed(Timer::FeatureRetry, now) {
            return;
        }
        // Passed: forgotten, so it is not reported as a deadline again.
        self.timers.clear(Timer::FeatureRetry);
        let reading = self.is_in_flight(|action| matches!(action, Action::ReadFeatures { .. }));
        let setting = self.is_in_flight(|action| matches!(action, Action::SetFeatures { .. }));
        if !setting {
            let features: Vec<(NodeId, Vec<String>)> = (0..self.state.nodes.len())
                .filter_map(|node| {
                    self.features_to_set(node)
                        .map(|list| (self.state.nodes[node].id.clone(), list))
                })
                .collect();
            if !features.is_empty() {
                self.queue(Action::SetFeatures { features });
            }
        }
        if reading {
            return;
        }
        let unread: Vec<usize> = (0..self.state.nodes.len())
            .filter(|&node| self.own_features_unread(node))
            .collect();
        let final_check = self.final_check_owed() && !setting;
        let check_due = final_check
            || (self.running_or_cancelling()
                && !self.features_set.is_empty()
                && self.timers.passed(Timer::FeatureCheck, now));
        let to_read: Vec<usize> = if !unread.is_empty() {
            unread
        } else if check_due {
            self.features_verify_asked = final_check;
            self.timers
                .set(Timer::FeatureCheck, now + FEATURE_CHECK_INTERVAL);
            self.features_set.keys().copied().collect()
        } else {
            Vec::new()
        };
        if !to_read.is_empty() {
            let nodes = self.ids_of(&to_read);
            self.queue(Action::ReadFeatures { nodes });
        }
    }

    /// The features read: a node's first reading is its own list (kept in
    /// its record before anything is set); a later one that differs from
    /// what was set means the workload manager lost it, and it is set again.
    pub(super) fn features_read(&mut self, now: Timestamp, features: &[(NodeId, Vec<String>)]) {
        let verifying = std::mem::take(&mut self.features_verify_asked);
        let mut lost = 0;
        for (id, list) in features {
            let Some(&node) = self.index.get(id) else {
                continue;
            };
            if self.state.nodes[node].own_features.is_none() {
                self.state.nodes[node].own_features = Some(list.clone());
                self.dirty = true;
            } else if let Some(set) = self.features_set.get(&node)
                && set != list
            {
                self.features_set.remove(&node);
                lost += 1;
            }
        }
        if verifying && lost == 0 && self.lifecycle() == Lifecycle::Cleanup {
            self.features_verified = true;
        }
        if lost > 0 {
            self.say_once(now, Said::FeaturesLost);
        }
    }

    /// The features were set as asked.
    pub(super) fn features_applied(&mut self, features: &[(NodeId, Vec<String>)]) {
        for (id, list) in features {
            if let Some(&node) = self.index.get(id) {
                self.features_set.insert(node, list.clone());
            }
        }
    }

    /// A feature read or setting failed for good: without support for
    /// features the session goes on without image tags (said once);
    /// otherwise it is tried again after the policy's retry interval.
    pub(super) fn features_refused(
        &mut self,
        now: Timestamp,
        action: &Action,
        error: &ActionError,
    ) {
        if matches!(action, Action::ReadFeatures { .. }) {
            self.features_verify_asked = false;
        }
        if error.kind == ActionErrorKind::NotSupported {
            self.image_features_unsupported = true;
            self.say_once(
                now,
                Said::FeaturesUnsupported {
                    error: error.message.clone(),
                },
            );
            return;
        }
        self.retry_after_refusal(now, Timer::FeatureRetry, action, error);
    }
}
