//! The diagnosis: check results → ranked causes with evidence → next steps → verdict → [`Card`].
//!
//! [`rank`] orders the runbook's causes by the facts behind them; [`steps`] turns each ranked
//! cause into next steps (one file per cause); this file builds the card from both.

use std::collections::BTreeMap;

use super::card::{Card, Section, Slowest, Verdict};
use super::finding::{CheckKind, Finding, Severity};
use super::scope::Scope;
use super::time;

mod rank;
mod steps;
#[cfg(test)]
mod tests;

pub use rank::rank_causes;

/// What one check produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub check: CheckKind,
    pub elapsed_ms: u64,
    pub findings: Vec<Finding>,
    /// The replica (or Keeper node) that answered last, and its time: the card's critical path.
    pub slowest: Option<(String, u64)>,
}

/// A replica as configured or discovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRef {
    pub name: String,
    pub shard: Option<u32>,
}

/// Everything besides the findings that the next steps are filled with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Context {
    pub cluster: String,
    /// The cluster's name in the servers' remote_servers (what ON CLUSTER takes); empty: `cluster`.
    pub remote_cluster: String,
    pub replicas: Vec<ReplicaRef>,
    /// Keeper nodes as `host:port`.
    pub keeper_nodes: Vec<String>,
    /// User databases per replica (from the settings check); replicas that did not answer are absent.
    pub databases: BTreeMap<String, Vec<String>>,
    /// Disk that backups go to.
    pub backup_disk: String,
    /// Effective backup_restore_* settings (from the settings check), by name.
    pub settings: BTreeMap<String, u64>,
    /// Unix seconds at which the snapshot was taken.
    pub now_unix: u64,
    pub elapsed_ms: u64,
}

/// One check's part of the card, its findings worst first.
fn section(r: CheckResult) -> Section {
    let mut findings = r.findings;
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Section {
        check: r.check,
        slowest: r
            .slowest
            .map(|(name, elapsed_ms)| Slowest { name, elapsed_ms }),
        title: r.check.title().to_string(),
        status: findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok),
        elapsed_ms: r.elapsed_ms,
        findings,
    }
}

/// Build the card for `scope` (`backup` or a check name) from the check results.
pub fn diagnose(ctx: &Context, scope: Scope, mut results: Vec<CheckResult>) -> Card {
    results.sort_by_key(|r| r.check);
    let sections: Vec<Section> = results.into_iter().map(section).collect();
    let all: Vec<&Finding> = sections.iter().flat_map(|s| s.findings.iter()).collect();
    let worst = all.iter().map(|f| f.severity).max().unwrap_or(Severity::Ok);
    let verdict = Verdict::from_worst(worst);
    let causes = rank_causes(&all);
    let headline = match (causes.first(), verdict) {
        (_, Verdict::Healthy) => "All checks passed".to_string(),
        (Some(top), _) => format!("Most likely: {}", top.title),
        (None, _) => all
            .iter()
            .find(|f| f.severity == worst)
            .map(|f| f.summary.clone())
            .unwrap_or_else(|| "Some checks did not pass".to_string()),
    };
    let next_steps = steps::next_steps(ctx, &causes, &all, verdict, scope);
    Card {
        cluster: ctx.cluster.clone(),
        scope,
        verdict,
        headline,
        causes,
        sections,
        next_steps,
        generated_at: time::rfc3339(ctx.now_unix),
        elapsed_ms: ctx.elapsed_ms,
    }
}
