//! Node reservations in Slurm (`reserve_ahead`): one maintenance
//! reservation per node, named `crus_<node>`, from the session's planned
//! take on, for ever:
//!
//! ```text
//! scontrol create reservation ReservationName=crus_<node> Nodes=<node>
//!     StartTime=now+<seconds> Duration=UNLIMITED Flags=MAINT,IGNORE_JOBS Users=root
//! ```
//!
//! Slurm starts a job on a node only if the job's time limit ends before
//! every reservation of the node begins, so the node runs exactly the jobs
//! that end in time. `IGNORE_JOBS` lets the reservation be made over jobs
//! already running (they run on), `MAINT` lets it overlap a reservation
//! the site has on the node, and `Users=root` keeps users' jobs out once
//! it begins. Slurm keeps reservations in its saved state, so they outlive
//! a `slurmctld` restart and need no read-back.
//!
//! Facts from Slurm 22.05 this follows (checked by the real-Slurm tests):
//! a second `create` of a name answers "Duplicate reservation name"; a
//! reservation that has begun cannot be moved ("Reservation already
//! started"), so it is deleted and made again; deleting one that is not
//! there answers "Requested reservation is invalid". The start is given
//! relative to now (`now+<seconds>`), which spares the time zone
//! `slurmctld` reads absolute times in.

use std::collections::HashSet;

use crus_core::Timestamp;
use crus_core::error::Result;
use crus_core::node::NodeId;

use super::command::SlurmError;
use super::{SlurmWorkloadManager, arguments};

/// The start of every reservation name crus makes; no other is touched.
pub(super) const RESERVATION_PREFIX: &str = "crus_";

/// What Slurm answers when a reservation to delete or update is not there.
const NO_SUCH_RESERVATION: &str = "Requested reservation is invalid";

/// What Slurm answers when a reservation that has begun is moved.
const ALREADY_STARTED: &str = "Reservation already started";

impl SlurmWorkloadManager {
    /// The names of crus's reservations Slurm has now.
    async fn crus_reservations(&self) -> Result<HashSet<String>> {
        let output = self
            .commands
            .run("scontrol", &arguments(&["-o", "show", "reservation"]))
            .await?;
        Ok(reservation_names(&output)
            .filter(|name| name.starts_with(RESERVATION_PREFIX))
            .map(str::to_string)
            .collect())
    }

    /// Reserves each node from its time on: made, moved, or deleted and
    /// made again when it has begun.
    pub(super) async fn write_reservations(
        &self,
        reservations: &[(NodeId, Timestamp)],
    ) -> Result<()> {
        if reservations.is_empty() {
            return Ok(());
        }
        let ids: Vec<NodeId> = reservations.iter().map(|(id, _)| id.clone()).collect();
        let names = self.names.slurm_names(&ids)?;
        let existing = self.crus_reservations().await?;
        let now = Timestamp::now();
        for (node, (_, from)) in names.iter().zip(reservations) {
            let name = reservation_name(node);
            let start = start_argument(*from, now);
            if existing.contains(&name) {
                let moved = self
                    .commands
                    .run(
                        "scontrol",
                        &[
                            "update".to_string(),
                            format!("ReservationName={name}"),
                            start.clone(),
                        ],
                    )
                    .await;
                match moved {
                    Ok(_) => continue,
                    Err(SlurmError::Failed { stderr, .. })
                        if stderr.contains(ALREADY_STARTED)
                            || stderr.contains(NO_SUCH_RESERVATION) =>
                    {
                        self.delete_reservation(&name).await?;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            self.create_reservation(&name, node, &start).await?;
        }
        Ok(())
    }

    /// Which of `nodes` carry crus's reservation, in order.
    pub(super) async fn read_reservations(&self, nodes: &[NodeId]) -> Result<Vec<NodeId>> {
        let names = self.names.slurm_names(nodes)?;
        let existing = self.crus_reservations().await?;
        Ok(nodes
            .iter()
            .zip(names)
            .filter(|(_, name)| existing.contains(&reservation_name(name)))
            .map(|(node, _)| node.clone())
            .collect())
    }

    /// Removes crus's reservations of `nodes`; nodes without one are left.
    pub(super) async fn remove_reservations(&self, nodes: &[NodeId]) -> Result<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let names = self.names.slurm_names(nodes)?;
        let existing = self.crus_reservations().await?;
        for node in names {
            let name = reservation_name(&node);
            if existing.contains(&name) {
                self.delete_reservation(&name).await?;
            }
        }
        Ok(())
    }

    async fn create_reservation(&self, name: &str, node: &str, start: &str) -> Result<()> {
        let args = vec![
            "create".to_string(),
            "reservation".to_string(),
            format!("ReservationName={name}"),
            format!("Nodes={node}"),
            start.to_string(),
            "Duration=UNLIMITED".to_string(),
            "Flags=MAINT,IGNORE_JOBS".to_string(),
            "Users=root".to_string(),
        ];
        self.commands.run("scontrol", &args).await?;
        Ok(())
    }

    /// Deletes reservation `name`; one already gone is not an error.
    async fn delete_reservation(&self, name: &str) -> Result<()> {
        let args = vec!["delete".to_string(), format!("ReservationName={name}")];
        match self.commands.run("scontrol", &args).await {
            Ok(_) => Ok(()),
            Err(SlurmError::Failed { stderr, .. }) if stderr.contains(NO_SUCH_RESERVATION) => {
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// crus's reservation name for Slurm node `node`.
fn reservation_name(node: &str) -> String {
    format!("{RESERVATION_PREFIX}{node}")
}

/// `StartTime=` for a reservation from `from`, relative to `now`.
fn start_argument(from: Timestamp, now: Timestamp) -> String {
    let seconds = from.saturating_since(now).as_secs();
    if seconds == 0 {
        "StartTime=now".to_string()
    } else {
        format!("StartTime=now+{seconds}")
    }
}

/// The `ReservationName=` of each line of `scontrol -o show reservation`
/// ("No reservations in the system" has none).
fn reservation_names(output: &str) -> impl Iterator<Item = &str> {
    output.lines().filter_map(|line| {
        line.split_whitespace()
            .find_map(|field| field.strip_prefix("ReservationName="))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reservation_names_are_read_from_each_line() {
        let output = "\
ReservationName=crus_node001 StartTime=2026-12-07T23:37:37 EndTime=2163-01-14T06:04:53 Nodes=node001 Flags=MAINT,IGNORE_JOBS,SPEC_NODES State=INACTIVE
ReservationName=site_maint StartTime=2026-12-08T08:00:00 Nodes=node[001-128] State=INACTIVE
";
        let names: Vec<&str> = reservation_names(output).collect();
        assert_eq!(names, ["crus_node001", "site_maint"]);
        assert_eq!(
            reservation_names("No reservations in the system\n").count(),
            0
        );
    }

    #[test]
    fn starts_are_given_relative_to_now_and_never_in_the_past() {
        let now = Timestamp::from_secs(1_000);
        assert_eq!(
            start_argument(now + Duration::from_secs(600), now),
            "StartTime=now+600"
        );
        assert_eq!(start_argument(now, now), "StartTime=now");
        assert_eq!(
            start_argument(Timestamp::from_secs(10), now),
            "StartTime=now"
        );
        assert_eq!(reservation_name("nid000001"), "crus_nid000001");
    }
}
