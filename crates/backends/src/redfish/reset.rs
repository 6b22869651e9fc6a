//! Which `ComputerSystem.Reset` types carry out a power operation, in order
//! of preference, and which of them a system allows (pure, no IO).
//!
//! A BMC advertises the reset types it takes in
//! `ResetType@Redfish.AllowableValues`, and some answer 501 for a type they
//! advertise (or for one they do not, when they advertise none). The plan
//! lists what to try; the caller skips what is not allowed or known to be
//! refused, tries the rest in turn, and logs each fallback.

use crus_core::ports::PowerOperation;

/// One way to carry out (part of) a power operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// One `ComputerSystem.Reset` with this `ResetType`.
    Reset(&'static str),
    /// `ForceOff`, wait until the system reports `Off`, then `On`: a
    /// restart for systems that take no restart type.
    OffThenOn,
}

impl std::fmt::Display for Step {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Reset(reset_type) => formatter.write_str(reset_type),
            Step::OffThenOn => formatter.write_str("ForceOff then On"),
        }
    }
}

/// The steps that carry out `operation`, best first.
///
/// A graceful request falls back to the forced one: the controller asks for
/// power only for a node that did not come back, where a forced action is
/// what it would do next anyway.
pub(crate) fn plan(operation: PowerOperation, prefer_power_cycle: bool) -> Vec<Step> {
    use Step::{OffThenOn, Reset};
    let forced_restart = if prefer_power_cycle {
        [Reset("PowerCycle"), Reset("ForceRestart"), OffThenOn]
    } else {
        [Reset("ForceRestart"), Reset("PowerCycle"), OffThenOn]
    };
    match operation {
        PowerOperation::On => vec![Reset("On"), Reset("ForceOn")],
        PowerOperation::ForceOff => vec![Reset("ForceOff")],
        PowerOperation::GracefulShutdown => vec![Reset("GracefulShutdown"), Reset("ForceOff")],
        PowerOperation::GracefulRestart => std::iter::once(Reset("GracefulRestart"))
            .chain(forced_restart)
            .collect(),
        PowerOperation::ForceRestart => forced_restart.to_vec(),
    }
}

/// Whether `reset_type` may be tried on a system advertising `allowed`
/// (`None`: it advertises nothing, so anything may be tried) and known to
/// refuse `refused`.
pub(crate) fn may_try(reset_type: &str, allowed: Option<&[String]>, refused: &[String]) -> bool {
    let advertised = allowed.is_none_or(|allowed| allowed.iter().any(|value| value == reset_type));
    advertised && !refused.iter().any(|value| value == reset_type)
}

/// Whether `step` may be tried: for [`Step::OffThenOn`], both its halves.
pub(crate) fn may_try_step(step: Step, allowed: Option<&[String]>, refused: &[String]) -> bool {
    match step {
        Step::Reset(reset_type) => may_try(reset_type, allowed, refused),
        Step::OffThenOn => may_try("ForceOff", allowed, refused) && may_try("On", allowed, refused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| value.to_string()).collect()
    }

    #[test]
    fn restarts_fall_back_to_power_cycle_then_off_and_on() {
        assert_eq!(
            plan(PowerOperation::ForceRestart, false),
            [
                Step::Reset("ForceRestart"),
                Step::Reset("PowerCycle"),
                Step::OffThenOn
            ]
        );
        assert_eq!(
            plan(PowerOperation::ForceRestart, true)[..2],
            [Step::Reset("PowerCycle"), Step::Reset("ForceRestart")]
        );
        assert_eq!(
            plan(PowerOperation::GracefulRestart, false)[..2],
            [Step::Reset("GracefulRestart"), Step::Reset("ForceRestart")]
        );
        assert_eq!(
            plan(PowerOperation::ForceOff, false),
            [Step::Reset("ForceOff")]
        );
    }

    #[test]
    fn allowable_values_and_refusals_decide_what_is_tried() {
        let allowed = strings(&["On", "ForceOff"]);
        assert!(may_try("On", Some(&allowed), &[]));
        assert!(!may_try("PowerCycle", Some(&allowed), &[]));
        assert!(may_try("PowerCycle", None, &[]));
        assert!(!may_try("PowerCycle", None, &strings(&["PowerCycle"])));
        assert!(may_try_step(Step::OffThenOn, Some(&allowed), &[]));
        assert!(!may_try_step(Step::OffThenOn, Some(&strings(&["On"])), &[]));
    }
}
