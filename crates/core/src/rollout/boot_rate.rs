//! The boot rate limit, `max_boots_per_minute`: at most that many nodes'
//! boots are requested in any 60 seconds, so a large step does not overload
//! the boot service or a power feed. Drained nodes beyond it wait for the
//! engine's timer and are booted in a later boot of their step.

use std::time::Duration;

use super::*;

/// The window the rate counts over.
const MINUTE: Duration = Duration::from_secs(60);

impl Rollout {
    /// How many more nodes may have their boot requested now (all of them
    /// without a limit), forgetting boots older than a minute.
    pub(super) fn boots_allowed_now(&mut self, now: Timestamp) -> usize {
        let Some(limit) = self.state.policy.max_boots_per_minute else {
            return usize::MAX;
        };
        let allowed = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(self.boots_in_the_last_minute(now));
        if allowed == 0 {
            self.wake_when_a_boot_leaves_the_minute();
            self.say_once(now, Said::BootsPaced { limit });
        }
        allowed
    }

    /// `count` nodes' boots were requested at `now`.
    pub(super) fn boots_requested(&mut self, now: Timestamp, count: usize) {
        if self.state.policy.max_boots_per_minute.is_some() {
            self.recent_boots.push_back((now, count));
        }
    }

    /// Whether a boot of `count` nodes asked for earlier and refused may be
    /// sent again now within the rate; if so it is counted now (it was
    /// counted when first asked for too: slower, never over the limit), if
    /// not the engine wakes when the oldest boot leaves the minute. A boot
    /// alone in its minute always goes: it was no larger than the limit
    /// when it was made.
    pub(super) fn may_send_boot_again(&mut self, now: Timestamp, count: usize) -> bool {
        let Some(limit) = self.state.policy.max_boots_per_minute else {
            return true;
        };
        let used = self.boots_in_the_last_minute(now);
        if used > 0 && used + count > usize::try_from(limit).unwrap_or(usize::MAX) {
            self.wake_when_a_boot_leaves_the_minute();
            return false;
        }
        self.boots_requested(now, count);
        true
    }

    /// The nodes whose boots were requested in the minute before `now`,
    /// forgetting older boots.
    fn boots_in_the_last_minute(&mut self, now: Timestamp) -> usize {
        while self
            .recent_boots
            .front()
            .is_some_and(|&(at, _)| at + MINUTE <= now)
        {
            self.recent_boots.pop_front();
        }
        self.recent_boots.iter().map(|&(_, count)| count).sum()
    }

    /// Sets the engine's boot-rate timer for when the oldest boot counted
    /// leaves the minute.
    fn wake_when_a_boot_leaves_the_minute(&mut self) {
        if let Some(&(oldest, _)) = self.recent_boots.front() {
            self.timers.set(Timer::BootRate, oldest + MINUTE);
        }
    }

    /// The boots of the active steps, to count against the rate after a
    /// restart (older ones are forgotten at the first use).
    pub(super) fn recent_boots_of(
        state: &RolloutState,
    ) -> std::collections::VecDeque<(Timestamp, usize)> {
        let mut boots: Vec<(Timestamp, usize)> = state
            .active_steps()
            .flat_map(|step| {
                step.boots
                    .iter()
                    .map(|boot| (boot.sent_at.unwrap_or(boot.requested_at), boot.nodes.len()))
            })
            .collect();
        boots.sort();
        boots.into_iter().collect()
    }
}
