//! The boot rate limit, `max_boots_per_minute` (issue 21).

use super::foreign::{Site, drive, session};
use super::*;

#[test]
fn boots_are_paced_at_the_rate_limit_and_every_node_is_upgraded() {
    let mut site = Site::new(&["a", "b", "c", "d", "e"]);
    let policy = RolloutPolicy {
        max_boots_per_minute: Some(2),
        ..RolloutPolicy::default()
    };
    let mut rollout = session(policy, 5);
    drive(&mut rollout, &mut site, t(0), |_| false);
    assert!(rollout.is_finished());
    assert_eq!(rollout.state().count(NodePhase::Done), 5);
    let boots: Vec<(Timestamp, usize)> = rollout
        .state()
        .steps
        .iter()
        .flat_map(|step| {
            step.boots
                .iter()
                .map(|boot| (boot.requested_at, boot.nodes.len()))
        })
        .collect();
    assert!(boots.len() >= 3, "{boots:?}");
    for &(at, _) in &boots {
        let in_minute: usize = boots
            .iter()
            .filter(|&&(other, _)| other >= at && other < at + Duration::from_secs(60))
            .map(|&(_, count)| count)
            .sum();
        assert!(
            in_minute <= 2,
            "{in_minute} boots within a minute of {at}: {boots:?}"
        );
    }
}
