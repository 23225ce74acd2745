//! Next steps: one file per runbook cause (in [`Cause`]'s order), each turning the findings
//! behind its cause into exact SQL or instructions filled with real names. This file walks the
//! ranked causes and adds what holds for every card: fixes for failed backups that are not a
//! sync problem, the retry once the cluster is ready, and a last resort.

use std::collections::BTreeSet;

use super::Context;
use crate::domain::card::{NextStep, RankedCause, Verdict};
use crate::domain::cause::Cause;
use crate::domain::finding::{CheckKind, Finding, Severity, Subject};
use crate::domain::scope::Scope;

mod backup;
mod conflicting;
mod failed_backups;
mod keeper;
mod lag;
mod network;
mod replica_offline;
mod timeout;

/// What every cause's steps read: the context, the findings and a few facts derived once.
struct Facts<'a> {
    ctx: &'a Context,
    findings: &'a [&'a Finding],
    scope: Scope,
    /// Replicas that some finding says are unreachable (refused, timed out, network error).
    down: BTreeSet<String>,
    /// A Keeper finding is crit: the ensemble lost its quorum.
    keeper_down: bool,
    /// Something besides an old failed backup points at Keeper now.
    keeper_unhealthy: bool,
}

impl<'a> Facts<'a> {
    fn new(ctx: &'a Context, findings: &'a [&'a Finding], scope: Scope) -> Self {
        Facts {
            ctx,
            findings,
            scope,
            down: unreachable(findings),
            keeper_down: findings
                .iter()
                .any(|f| f.check == CheckKind::Keeper && f.severity == Severity::Crit),
            keeper_unhealthy: findings.iter().any(|f| {
                f.causes.contains(&Cause::Keeper)
                    && f.severity > Severity::Ok
                    && f.check != CheckKind::Backups
            }),
        }
    }

    /// The findings of `check` that are not ok.
    fn problems(&self, check: CheckKind) -> impl Iterator<Item = &'a Finding> + '_ {
        self.findings
            .iter()
            .copied()
            .filter(move |f| f.check == check && f.severity > Severity::Ok)
    }
}

/// The steps so far; the per-replica backups are listed once, however many causes ask for them.
#[derive(Default)]
struct Steps {
    list: Vec<NextStep>,
    backups_listed: bool,
}

impl Steps {
    fn push(&mut self, step: NextStep) {
        self.list.push(step);
    }

    /// The runbook's step 6 (a backup per reachable replica), on a full diagnosis only.
    fn per_replica_backups(&mut self, facts: &Facts<'_>) {
        if facts.scope.is_full() && !self.backups_listed {
            self.list
                .extend(backup::per_replica(facts.ctx, &facts.down));
            self.backups_listed = true;
        }
    }
}

/// Replicas that some finding says are unreachable (refused, timed out, network error).
fn unreachable(findings: &[&Finding]) -> BTreeSet<String> {
    findings
        .iter()
        .filter(|f| f.severity != Severity::Ok && f.causes.contains(&Cause::ReplicaOffline))
        .filter_map(|f| match &f.subject {
            Subject::Replica { replica } => Some(replica.clone()),
            _ => None,
        })
        .collect()
}

/// The card's next steps: each ranked cause's, in rank order, then what holds for every card.
pub(super) fn next_steps(
    ctx: &Context,
    causes: &[RankedCause],
    findings: &[&Finding],
    verdict: Verdict,
    scope: Scope,
) -> Vec<NextStep> {
    let facts = Facts::new(ctx, findings, scope);
    let mut steps = Steps::default();
    for ranked in causes {
        match ranked.cause {
            Cause::Keeper => keeper::steps(&facts, &mut steps),
            Cause::ReplicaOffline => replica_offline::steps(&facts, &mut steps),
            Cause::Timeout => timeout::steps(&facts, &mut steps),
            Cause::Network => network::steps(&facts, &mut steps),
            Cause::ConflictingOperation => conflicting::steps(&facts, &mut steps),
            Cause::ReplicaLag => lag::steps(&facts, &mut steps),
        }
    }
    failed_backups::steps(&facts, &mut steps);
    if verdict == Verdict::Healthy && scope.is_full() {
        steps.push(backup::ready(ctx));
    }
    if steps.list.is_empty() && verdict != Verdict::Healthy {
        steps.push(NextStep::text("Look at the findings marked crit/warn above; run `chops check backup` for the full diagnosis"));
    }
    steps.list
}
