//! Nodes already on the target image (`skip_matching`): at the snapshot the
//! boot orchestrator is asked which image each node runs, and those that
//! run the session's template are left alone, reported skipped "already on
//! the target image", so a session re-run after a partial one redoes
//! nothing.
//!
//! The decision is taken once, before the session leaves its snapshot
//! stage, and is kept in the node records (phase `skipped` with the
//! reason), so a restarted controller never drains a node it skipped. A
//! node whose image the orchestrator cannot tell is upgraded as any other:
//! skipping is for nodes known to be done.

use super::*;
use crate::ports::NodeImage;

/// The reason written on a node skipped because it already runs the
/// session's template.
pub const ALREADY_ON_TARGET_IMAGE: &str = "already on the target image";

impl Rollout {
    /// Whether the snapshot is taken but the nodes' current images are
    /// still to be read before the session may go on.
    pub(super) fn images_owed(&self) -> bool {
        self.state.policy.skip_matching
            && self.lifecycle() == Lifecycle::Snapshot
            && !self.state.nodes.is_empty()
    }

    /// The action that reads the snapshot's nodes' current images.
    pub(super) fn read_images_action(&self) -> Action {
        Action::ReadCurrentImages {
            nodes: self
                .state
                .nodes
                .iter()
                .map(|node| node.id.clone())
                .collect(),
            template: self.state.spec.upgrade_template_id.clone(),
        }
    }

    /// The orchestrator's answer: nodes on the template are skipped, then
    /// the session goes on with the others.
    pub(super) fn images_read(&mut self, now: Timestamp, images: &[NodeImage]) {
        if !self.images_owed() {
            return;
        }
        let template = self.state.spec.upgrade_template_id.clone();
        let mut skipped = 0;
        for image in images {
            if image.image.as_deref() != Some(template.as_str()) {
                continue;
            }
            let Some(&node) = self.index.get(&image.node) else {
                continue;
            };
            if self.state.nodes[node].phase != NodePhase::Pending {
                continue;
            }
            self.state.nodes[node].reason = Some(ALREADY_ON_TARGET_IMAGE.to_string());
            self.move_node(node, NodeInput::LeaveAlone, now);
            skipped += 1;
        }
        if skipped > 0 {
            self.say(
                now,
                Said::SkippedMatching {
                    count: skipped,
                    template,
                },
            );
        } else {
            self.say(now, Said::NoneMatching { template });
        }
        self.snapshot_taken(now);
    }

    /// The orchestrator cannot tell which image the nodes run (its backend
    /// changed since the session was admitted): every node is upgraded, as
    /// without `skip_matching`, and the messages say so.
    pub(super) fn images_unknown(&mut self, now: Timestamp, error: &ActionError) {
        if !self.images_owed() {
            return;
        }
        self.say(
            now,
            Said::ImagesUnknown {
                error: error.message.clone(),
            },
        );
        self.snapshot_taken(now);
    }
}
