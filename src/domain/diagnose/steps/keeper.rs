//! Cause 1, Keeper unavailable or unhealthy: check every node, restore Keeper before any retry,
//! and meanwhile back up replica by replica. When Keeper answers now, the error points at a
//! session lost on one host.

use super::{Facts, Steps};
use crate::domain::card::NextStep;

pub(super) fn steps(facts: &Facts<'_>, steps: &mut Steps) {
    if !facts.keeper_unhealthy {
        steps.push(NextStep::text(
            "Keeper answers now: the error points at a Keeper session lost on the named host; check that server's log around the failure",
        ));
        return;
    }
    let nodes = &facts.ctx.keeper_nodes;
    if !nodes.is_empty() {
        // Named as data (node, words), never as a shell line built from config text.
        steps.push(
            NextStep::text(format!(
                "Check every Keeper node ({}) with the four-letter words mntr, srvr, ruok: state, latency, outstanding requests",
                nodes.join(", ")
            ))
            .note("`chops check keeper` asks them all at once"),
        );
    }
    steps.push(
        NextStep::text(
            "Restore Keeper before retrying: ON CLUSTER backups coordinate every host through it",
        )
        .note("Do not run SYSTEM RESTART REPLICA while Keeper is down"),
    );
    steps.per_replica_backups(facts);
}
