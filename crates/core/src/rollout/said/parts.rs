//! The words of the parts of messages: the plan, the summary, the floor and
//! the subject of a hook's run (see [`words`](super::words) for the rest).

use std::fmt::{self, Display, Formatter};

use super::{Floor, Plan, Subject, Summary};
use crate::rollout::{Order, Strategy, count_nodes};

impl Display for Plan {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Plan {
            label,
            to_upgrade,
            step_size,
            ..
        } = self;
        match self.strategy {
            Strategy::Steps => {
                let steps = to_upgrade.div_ceil(*step_size);
                write!(
                    f,
                    "Upgrading {} of group '{label}' in {steps} step{} of at most {}",
                    count_nodes(*to_upgrade),
                    if steps == 1 { "" } else { "s" },
                    step_size
                )?;
            }
            Strategy::Continuous => write!(
                f,
                "Upgrading {} of group '{label}', at most {} out of service at once, each taken as soon as another is done",
                count_nodes(*to_upgrade),
                step_size
            )?,
        }
        match self.order {
            Order::Inventory => {}
            Order::DrainCost => f.write_str(", cheapest drains first")?,
            Order::Topology => {
                if let Some(domain) = self.spread {
                    write!(f, ", never two of one {} at once", domain.as_str())?;
                }
                if let Some(domain) = self.align {
                    write!(f, ", a whole {} at a time", domain.as_str())?;
                }
            }
        }
        if let Some(allowed) = self.allowed_failures {
            write!(f, "; halts if more than {allowed} fail")?;
        }
        if let Some(floor) = &self.floor {
            write!(f, "; keeps at least {floor} in service (min_available)")?;
        }
        Ok(())
    }
}

impl Display for Summary {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Summary {
            upgraded,
            total,
            reverted,
            rollback_template,
            failed,
            failed_label,
        } = self;
        write!(f, "{upgraded} of {} upgraded", count_nodes(*total))?;
        if *reverted > 0 {
            write!(
                f,
                ", {reverted} reverted to template '{}'",
                rollback_template
            )?;
        }
        if *failed > 0 {
            write!(f, ", {failed} failed (in group '{}')", failed_label)?;
        }
        Ok(())
    }
}

impl Display for Floor {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Floor {
            kept: floor,
            total,
            percent,
        } = self;
        let given = match percent {
            None => String::new(),
            Some(percent) => format!(" ({percent}%)"),
        };
        write!(f, "{floor} of {}{given}", count_nodes(*total))
    }
}

impl Display for Subject {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Node(id) => write!(f, "Node {}", id),
            Subject::Step(step) => write!(f, "Step {step}"),
        }
    }
}
