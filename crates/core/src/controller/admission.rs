//! Admitting a new session: the one way a session is created with the site's
//! checks. [`Controller::admit`] reads the starting group once, checks the
//! request against the site, resolves its policy, answers a repeated
//! `Idempotency-Key`, refuses an overlap with an unfinished session, and
//! stores the session with a claim on each of its nodes in one store
//! transaction ([`SessionStore::create_claiming`]), so two creations racing
//! on any number of servers cannot both take a node.
//!
//! [`SessionStore::create_claiming`]: crate::store::SessionStore::create_claiming

use std::collections::HashSet;

use uuid::Uuid;

use super::Controller;
use super::lock;
use crate::error::{Dependency, Error, PartFailure};
use crate::node::NodeId;
use crate::rollout::{Rollout, RolloutPolicy};
use crate::session::{FieldErrors, SessionSpec, SessionStatus};
use crate::store::{Desired, Idempotency, NodesClaimed, SessionRecord};

/// A request to create a session.
#[derive(Debug, Clone)]
pub struct AdmissionRequest {
    /// What the client asked for (the six CRUS fields and an optional policy).
    pub spec: SessionSpec,
    /// The client's `Idempotency-Key` and the request it came with: a repeat
    /// answers the session the key created; the same key with another
    /// request is refused.
    pub idempotency: Option<Idempotency>,
    /// The policy the request's own is laid over; `None` for the server's
    /// default ([`super::ControllerConfig::default_policy`] with the stored
    /// options over it: [`Controller::current_default_policy`]).
    pub base_policy: Option<RolloutPolicy>,
}

impl AdmissionRequest {
    /// A request for `spec`, with no idempotency key, on the server's default policy.
    pub fn new(spec: SessionSpec) -> Self {
        AdmissionRequest {
            spec,
            idempotency: None,
            base_policy: None,
        }
    }

    /// The same request, remembering `idempotency` with the session.
    pub fn with_idempotency(mut self, idempotency: Option<Idempotency>) -> Self {
        self.idempotency = idempotency;
        self
    }

    /// The same request, on `policy` instead of the server's default.
    pub fn with_base_policy(mut self, policy: RolloutPolicy) -> Self {
        self.base_policy = Some(policy);
        self
    }
}

/// A session [`Controller::admit`] answered with.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Its status.
    pub status: SessionStatus,
    /// `true` when this request created it; `false` when the request repeated
    /// the `Idempotency-Key` of the one that did.
    pub created: bool,
}

/// Why [`Controller::admit`] (or a dry run) created nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionRefusal {
    /// The request names things the site does not have; messages by field.
    #[error("invalid session: {0:?}")]
    Invalid(FieldErrors),
    /// Nodes of the starting group belong to another unfinished session.
    #[error("{nodes} node(s) of the starting group belong to unfinished session {other}")]
    Overlap {
        /// The other session.
        other: Uuid,
        /// How many nodes are shared.
        nodes: usize,
    },
    /// The `Idempotency-Key` created another session with another request.
    #[error("idempotency key {key:?} was used with another request (session {other})")]
    KeyReused {
        /// The key.
        key: String,
        /// The session it created.
        other: Uuid,
    },
    /// A backend or the store failed while the request was checked or stored.
    #[error(transparent)]
    Failed(PartFailure),
}

impl AdmissionRefusal {
    /// A failure of `part`.
    fn failed(part: Dependency) -> impl FnOnce(Error) -> AdmissionRefusal {
        move |error| AdmissionRefusal::Failed(PartFailure::new(part, error))
    }
}

/// The former name of [`AdmissionRefusal`].
pub type CreateError = AdmissionRefusal;

/// A request checked against the site: what a creation stores and a dry run plans.
#[derive(Debug)]
pub(super) struct Examined {
    /// The request, its step size resolved.
    pub(super) spec: SessionSpec,
    /// The policy it runs with.
    pub(super) policy: RolloutPolicy,
    /// The starting group, read once.
    pub(super) members: Vec<NodeId>,
}

impl Controller {
    /// Creates the session `request` asks for, or says why not.
    ///
    /// In order: a repeated `Idempotency-Key` answers the session it created
    /// (or is refused if the request differs); the request is checked
    /// against the site, its starting group read once; an overlap with an
    /// unfinished session is refused naming it; the session is stored with
    /// a claim on each node of the group in one store transaction, which
    /// refuses it if a concurrent creation (here or on another server)
    /// claimed one first. The session is not started: call
    /// [`Controller::start`] (a server) or [`Controller::drive`] (embedding).
    pub async fn admit(
        &self,
        request: AdmissionRequest,
    ) -> std::result::Result<Admitted, AdmissionRefusal> {
        let AdmissionRequest {
            spec,
            idempotency,
            base_policy,
        } = request;
        if let Some(idempotency) = &idempotency
            && let Some(earlier) = self.replay(idempotency).await?
        {
            return Ok(earlier);
        }
        let base = match base_policy {
            Some(policy) => policy,
            None => self
                .current_default_policy()
                .await
                .map_err(AdmissionRefusal::failed(Dependency::Store))?,
        };
        let examined = self.examine(spec, &base).await?;
        let rollout = Rollout::new(
            Uuid::new_v4(),
            examined.spec,
            examined.policy,
            self.inner.clock.now(),
        );
        let record = SessionRecord {
            rollout: rollout.state().clone(),
            desired: Desired {
                idempotency: idempotency.clone(),
                ..Desired::default()
            },
        };
        let stored = self
            .inner
            .store
            .create_claiming(&record, &examined.members)
            .await
            .map_err(AdmissionRefusal::failed(Dependency::Store))?;
        match stored {
            Ok(_) => {
                if self.inner.config.drive_sessions {
                    lock(&self.inner.admitted_members)
                        .insert(rollout.state().upgrade_id, examined.members);
                }
                Ok(Admitted {
                    status: rollout.status(),
                    created: true,
                })
            }
            Err(NodesClaimed { holder, nodes }) => {
                // The same request sent twice at once (a client retrying on
                // another server): the one stored answers both.
                if let Some(idempotency) = &idempotency
                    && let Some(earlier) = self.replay(idempotency).await?
                {
                    return Ok(earlier);
                }
                Err(AdmissionRefusal::Overlap {
                    other: holder,
                    nodes: nodes.len(),
                })
            }
        }
    }

    /// The session an earlier request with `idempotency`'s key created, if
    /// one did and the request is the same; refused if it is not.
    async fn replay(
        &self,
        idempotency: &Idempotency,
    ) -> std::result::Result<Option<Admitted>, AdmissionRefusal> {
        // The store's index of keys, then that session alone: no scan of
        // every record (each decoded with all its nodes).
        let Some(id) = self
            .inner
            .store
            .session_by_idempotency_key(&idempotency.key)
            .await
            .map_err(AdmissionRefusal::failed(Dependency::Store))?
        else {
            return Ok(None);
        };
        let Some(earlier) = self
            .inner
            .store
            .get(id)
            .await
            .map_err(AdmissionRefusal::failed(Dependency::Store))?
            .filter(|record| {
                record.value.desired.idempotency_key() == Some(idempotency.key.as_str())
            })
        else {
            // Removed since the index was read, or an index entry left by a
            // removal cut short: as if never created.
            return Ok(None);
        };
        let same = earlier
            .value
            .desired
            .idempotency
            .as_ref()
            .is_some_and(|stored| stored.request == idempotency.request);
        if !same {
            return Err(AdmissionRefusal::KeyReused {
                key: idempotency.key.clone(),
                other: earlier.value.upgrade_id(),
            });
        }
        Ok(Some(Admitted {
            status: earlier.value.status(),
            created: false,
        }))
    }

    /// Checks `spec` against the site before anything is created: what CRUS
    /// accepted and then retried forever is refused here with a reason per
    /// field, and an overlap with an unfinished session is refused naming it.
    ///
    /// - the three labels name three different groups;
    /// - the starting group exists and has members (read once: the members
    ///   checked are the ones claimed and the step size is a share of);
    /// - the boot orchestrator knows the template;
    /// - this server can run the policy's health command or HTTP probe;
    /// - a policy that escalates to power restarts has power control to do it;
    /// - no node of the starting group belongs to another unfinished session.
    pub(super) async fn examine(
        &self,
        spec: SessionSpec,
        base: &RolloutPolicy,
    ) -> std::result::Result<Examined, AdmissionRefusal> {
        let mut errors = spec.label_errors();
        let members = match self
            .inner
            .ports
            .inventory
            .group_members(&spec.starting_label)
            .await
        {
            Ok(members) => members,
            Err(Error::NotFound { .. }) => {
                errors
                    .entry("starting_label".to_string())
                    .or_default()
                    .push(format!(
                        "Group '{}' does not exist in the inventory.",
                        spec.starting_label
                    ));
                Vec::new()
            }
            Err(error) => return Err(AdmissionRefusal::failed(Dependency::Inventory)(error)),
        };
        if members.is_empty() && !errors.contains_key("starting_label") {
            errors
                .entry("starting_label".to_string())
                .or_default()
                .push(format!(
                    "Group '{}' has no members: there is nothing to upgrade.",
                    spec.starting_label
                ));
        }
        match self
            .inner
            .ports
            .boot_orchestrator
            .template_exists(&spec.upgrade_template_id)
            .await
        {
            Ok(true) => {}
            Ok(false) => errors
                .entry("upgrade_template_id".to_string())
                .or_default()
                .push(format!(
                    "The boot orchestrator has no template '{}'.",
                    spec.upgrade_template_id
                )),
            Err(error) => return Err(AdmissionRefusal::failed(Dependency::BootService)(error)),
        }
        // The rollback template is checked as the upgrade's is: a node
        // booted back to a template that does not exist would just fail.
        let rollback_template = spec
            .policy
            .as_ref()
            .and_then(|policy| policy.rollback.as_ref())
            .map(|rollback| rollback.template.clone());
        if let Some(template) = rollback_template {
            match self
                .inner
                .ports
                .boot_orchestrator
                .template_exists(&template)
                .await
            {
                Ok(true) => {}
                Ok(false) => errors
                    .entry("policy.rollback".to_string())
                    .or_default()
                    .push(format!(
                        "The boot orchestrator has no template '{template}' to roll back to."
                    )),
                Err(error) => {
                    return Err(AdmissionRefusal::failed(Dependency::BootService)(error));
                }
            }
        }
        if let Some(refusal) = self.health_refusal(&spec) {
            errors
                .entry("policy.health".to_string())
                .or_default()
                .push(refusal);
        }
        for refusal in self.hook_refusals(&spec) {
            errors
                .entry("policy.hooks".to_string())
                .or_default()
                .push(refusal);
        }
        for refusal in self.gate_refusals(&spec) {
            errors
                .entry("policy.gates".to_string())
                .or_default()
                .push(refusal);
        }
        let escalates = spec
            .policy
            .as_ref()
            .is_some_and(|policy| policy.escalate_power_cycle == Some(true));
        if escalates && self.inner.ports.power_control.is_none() {
            errors
                .entry("policy.escalate_power_cycle".to_string())
                .or_default()
                .push(
                    "This server has no power control backend, so it cannot power-restart a node \
                     that does not come back; configure one (backends.power) or leave this out."
                        .to_string(),
                );
        }
        if let Some(refusal) = self.skip_matching_refusal(&spec, base) {
            errors
                .entry("policy.skip_matching".to_string())
                .or_default()
                .push(refusal);
        }
        if let Some(refusal) = self.image_features_refusal(&spec, base) {
            errors
                .entry("policy.image_features".to_string())
                .or_default()
                .push(refusal);
        }
        if let Some(refusal) = self.reserve_ahead_refusal(&spec, base) {
            errors
                .entry("policy.reserve_ahead".to_string())
                .or_default()
                .push(refusal);
        }
        if let Some(refusal) = self.min_available_refusal(&spec, base) {
            errors
                .entry("policy.min_available".to_string())
                .or_default()
                .push(refusal);
        }
        if let Some(refusal) = super::foreign_wait::foreign_wait_refusal(&spec, base) {
            errors
                .entry("policy.foreign_out_of_service".to_string())
                .or_default()
                .push(refusal);
        }
        if !errors.is_empty() {
            return Err(AdmissionRefusal::Invalid(errors));
        }
        let members = crate::plan::inventory_order(members);
        self.refuse_overlap(&spec, &members).await?;
        let (spec, policy) = resolve_policy(spec, base, members.len());
        Ok(Examined {
            spec,
            policy,
            members,
        })
    }

    /// Refuses `members` if a node of them belongs to an unfinished session.
    ///
    /// Claims ([`crate::store::SessionStore::create_claiming`]) settle races
    /// between creations; this also counts the sessions stored before
    /// claims existed (a store written by an older release), whose nodes
    /// are their snapshot or, before it, their starting group.
    async fn refuse_overlap(
        &self,
        spec: &SessionSpec,
        members: &[NodeId],
    ) -> std::result::Result<(), AdmissionRefusal> {
        let members: HashSet<&NodeId> = members.iter().collect();
        // Only unfinished sessions hold nodes; a server keeps many finished
        // ones, which the store need not even decode.
        let unfinished = self
            .inner
            .store
            .list_unfinished()
            .await
            .map_err(AdmissionRefusal::failed(Dependency::Store))?;
        for record in unfinished {
            let other = &record.value.rollout;
            // A session that has not taken its snapshot yet holds its whole starting group.
            let overlapping = if other.nodes.is_empty() {
                if other
                    .spec
                    .starting_label
                    .eq_ignore_ascii_case(&spec.starting_label)
                {
                    members.len()
                } else {
                    match self
                        .inner
                        .ports
                        .inventory
                        .group_members(&other.spec.starting_label)
                        .await
                    {
                        Ok(nodes) => nodes.iter().filter(|node| members.contains(node)).count(),
                        Err(_) => 0,
                    }
                }
            } else {
                other
                    .nodes
                    .iter()
                    .filter(|node| members.contains(&node.id))
                    .count()
            };
            if overlapping > 0 {
                return Err(AdmissionRefusal::Overlap {
                    other: other.upgrade_id,
                    nodes: overlapping,
                });
            }
        }
        Ok(())
    }
}

/// The policy a session runs with: `base` (the server's defaults) with the
/// request's `policy` over it; a `step_percent` (or no step size at all)
/// becomes the step size, a share of the `members` nodes of the starting group.
pub(super) fn resolve_policy(
    mut spec: SessionSpec,
    base: &RolloutPolicy,
    members: usize,
) -> (SessionSpec, RolloutPolicy) {
    let policy = match &spec.policy {
        Some(request) => request.apply(base),
        None => base.clone(),
    };
    if spec.upgrade_step_size == 0 {
        let percent = policy.step_percent.unwrap_or(100.0);
        let size = ((members as f64) * percent / 100.0).ceil().max(1.0);
        spec.upgrade_step_size = u32::try_from(size as u64).unwrap_or(u32::MAX);
    }
    (spec, policy)
}
