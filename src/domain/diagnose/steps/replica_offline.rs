//! Cause 2, a replica offline or unreachable: bring it back or leave it out, and back up the
//! others one by one.

use super::{Facts, Steps};
use crate::domain::card::NextStep;

pub(super) fn steps(facts: &Facts<'_>, steps: &mut Steps) {
    for r in &facts.down {
        steps.push(NextStep::text(format!(
            "Bring {r} back, or leave it out: an ON CLUSTER backup needs every host"
        )));
    }
    steps.per_replica_backups(facts);
}
