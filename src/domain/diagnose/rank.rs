//! Ranking: the runbook's causes ordered by the distinct facts that support them.

use std::collections::BTreeMap;

use crate::domain::card::RankedCause;
use crate::domain::cause::Cause;
use crate::domain::finding::{Finding, Severity, Subject};

const MAX_EVIDENCE: usize = 6;

fn weight(f: &Finding) -> u32 {
    match f.severity {
        Severity::Crit => 3,
        Severity::Warn | Severity::Unknown => 1,
        Severity::Ok => 0,
    }
}

/// How far a problem reaches: the whole cluster (a cluster-wide finding, Keeper — whose nodes
/// only turn crit when the ensemble lost its quorum) > one replica > one table, mutation or backup.
fn radius(s: &Subject) -> (u32, &'static str) {
    match s {
        Subject::Cluster | Subject::KeeperNode { .. } => (3, "cluster-wide"),
        Subject::Replica { .. } => (2, "one replica"),
        Subject::Table { .. } | Subject::Mutation { .. } | Subject::Backup { .. } => {
            (1, "one table or operation")
        }
    }
}

/// One subject, one problem: the same fact seen by several checks counts once (an unreachable
/// replica shows up in every check).
fn fact(f: &Finding) -> String {
    match &f.subject {
        Subject::Cluster => format!("cluster:{}:{}", f.check.name(), f.summary),
        Subject::Replica { replica } => format!("replica:{replica}"),
        Subject::KeeperNode { node } => format!("keeper:{node}"),
        Subject::Table {
            replica,
            database,
            table,
        } => format!("table:{replica}:{database}.{table}"),
        Subject::Backup { replica, id, .. } => format!("backup:{replica}:{id}"),
        Subject::Mutation {
            replica,
            mutation_id,
            ..
        } => format!("mutation:{replica}:{mutation_id}"),
    }
}

/// Rank the runbook's causes by the distinct facts that support them. A fact weighs its worst
/// severity (crit 3, warn/unknown 1) times its reach (cluster-wide 3, one replica 2, one table 1)
/// for its first cause, and 1 for an alternative cause. Ties keep the runbook's order. Each cause
/// carries its reasons (fact by fact), so a reader can see why it is first.
pub fn rank_causes(findings: &[&Finding]) -> Vec<RankedCause> {
    let mut ranked: Vec<RankedCause> = Cause::ALL
        .iter()
        .filter_map(|&cause| rank(cause, findings))
        .collect();
    ranked.sort_by(|a, b| b.score.cmp(&a.score).then(a.cause.cmp(&b.cause)));
    ranked
}

/// One fact behind a cause: its weight, the finding that weighs most, and why it weighs that.
type Support<'a> = (u32, &'a Finding, String);

/// The facts that support `cause`, heaviest first; each fact counts once, with its heaviest
/// finding.
fn support<'a>(cause: Cause, findings: &[&'a Finding]) -> Vec<Support<'a>> {
    let mut facts: BTreeMap<String, Support<'a>> = BTreeMap::new();
    for f in findings
        .iter()
        .filter(|f| weight(f) > 0 && f.causes.contains(&cause))
    {
        let (reach, label) = radius(&f.subject);
        let (w, why) = if f.causes[0] == cause {
            (
                weight(f) * reach,
                format!("{} {} × {label} {reach}", f.severity.label(), weight(f)),
            )
        } else {
            (1, "alternative cause 1".to_string())
        };
        let e = facts.entry(fact(f)).or_insert((0, f, String::new()));
        if w > e.0 || (w == e.0 && f.severity > e.1.severity) {
            *e = (w, f, why);
        }
    }
    let mut support: Vec<Support<'a>> = facts.into_values().collect();
    support.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.severity.cmp(&a.1.severity)));
    support
}

/// `cause` with its score, evidence and reasons; None when nothing supports it.
fn rank(cause: Cause, findings: &[&Finding]) -> Option<RankedCause> {
    let support = support(cause, findings);
    let score: u32 = support.iter().map(|(w, ..)| w).sum();
    if score == 0 {
        return None;
    }
    let mut evidence: Vec<String> = Vec::new();
    for (_, f, _) in &support {
        if !evidence.contains(&f.summary) && evidence.len() < MAX_EVIDENCE {
            evidence.push(f.summary.clone());
        }
    }
    let reasons = support
        .iter()
        .take(MAX_EVIDENCE)
        .map(|(w, f, why)| format!("+{w} ({why}): {}", f.summary))
        .collect();
    Some(RankedCause {
        cause,
        title: cause.title().to_string(),
        score,
        evidence,
        reasons,
    })
}
