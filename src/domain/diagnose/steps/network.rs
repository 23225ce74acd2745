//! Cause 4, network trouble between replicas: check the paths the sync uses, and back up
//! replica by replica meanwhile.

use super::{Facts, Steps};
use crate::domain::card::NextStep;

pub(super) fn steps(facts: &Facts<'_>, steps: &mut Steps) {
    steps.push(NextStep::text(
        "Check the network between replicas and to Keeper (interserver and Keeper ports, packet loss, DNS)",
    ));
    steps.per_replica_backups(facts);
}
