//! The diagnosis: check results → ranked causes with evidence → next steps → verdict → [`Card`].

use std::collections::{BTreeMap, BTreeSet};

use super::action::Action;
use super::card::{Card, NextStep, RankedCause, Section, Slowest, Verdict};
use super::cause::Cause;
use super::classify::ErrorKind;
use super::finding::{CheckKind, Finding, Flag, Severity, Subject};
use super::scope::Scope;
use super::{sql, time};

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
        .filter_map(|&cause| {
            let mut facts: BTreeMap<String, (u32, &Finding, String)> = BTreeMap::new();
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
            let score: u32 = facts.values().map(|(w, ..)| w).sum();
            if score == 0 {
                return None;
            }
            let mut support: Vec<&(u32, &Finding, String)> = facts.values().collect();
            support.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.severity.cmp(&a.1.severity)));
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
        })
        .collect();
    ranked.sort_by(|a, b| b.score.cmp(&a.score).then(a.cause.cmp(&b.cause)));
    ranked
}

/// Build the card for `scope` (`backup` or a check name) from the check results.
pub fn diagnose(ctx: &Context, scope: Scope, mut results: Vec<CheckResult>) -> Card {
    results.sort_by_key(|r| r.check);
    let sections: Vec<Section> = results
        .into_iter()
        .map(|r| {
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
        })
        .collect();
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
    let next_steps = next_steps(ctx, &causes, &all, verdict, scope);
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

fn keeper_down(findings: &[&Finding]) -> bool {
    findings
        .iter()
        .any(|f| f.check == CheckKind::Keeper && f.severity == Severity::Crit)
}

fn on_cluster_name(ctx: &Context) -> &str {
    if ctx.remote_cluster.is_empty() {
        &ctx.cluster
    } else {
        &ctx.remote_cluster
    }
}

/// `DATABASE a, DATABASE b`, or None for no databases.
fn database_list(dbs: &[String]) -> Option<String> {
    (!dbs.is_empty()).then(|| {
        dbs.iter()
            .map(|d| format!("DATABASE {}", sql::ident(d)))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The databases every replica that answered has, followed by `ON CLUSTER '<cluster>'`.
fn on_cluster_list(ctx: &Context) -> Option<String> {
    let mut lists = ctx.databases.values();
    let first = lists.next()?;
    let common: Vec<String> = first
        .iter()
        .filter(|d| ctx.databases.values().all(|l| l.contains(d)))
        .cloned()
        .collect();
    database_list(&common).map(|l| format!("{l} ON CLUSTER {}", sql::string(on_cluster_name(ctx))))
}

fn disk_target(ctx: &Context, name: &str) -> String {
    format!(
        "Disk({}, {})",
        sql::string(&ctx.backup_disk),
        sql::string(name)
    )
}

/// The per-replica backup of the runbook's step 6, for every reachable replica, of the
/// databases that replica has.
fn per_replica_backups(ctx: &Context, down: &BTreeSet<String>) -> Vec<NextStep> {
    let stamp = time::compact(ctx.now_unix);
    ctx.replicas
        .iter()
        .filter(|r| !down.contains(&r.name))
        .map(|r| match ctx.databases.get(&r.name) {
            None => NextStep::text(format!("Back up {} on its own: its databases are unknown (no answer to the settings check)", r.name)),
            Some(dbs) if dbs.is_empty() => NextStep::text(format!("{} has no user databases: nothing to back up there", r.name)),
            Some(dbs) => {
                let action = Action::BackupReplica {
                    cluster: ctx.cluster.clone(),
                    replica: r.name.clone(),
                    databases: dbs.clone(),
                    disk: ctx.backup_disk.clone(),
                };
                let name = sql::backup_name(&ctx.cluster, &r.name, &stamp);
                NextStep::sql(
                    format!("Back up {} on its own (no ON CLUSTER coordination)", r.name),
                    Some(&r.name),
                    action.sql(&name),
                )
                .action(action)
                .note("Returns (id, status); follow it with SELECT status, error FROM system.backups WHERE id = '<id>' until BACKUP_CREATED or BACKUP_FAILED")
            }
        })
        .collect()
}

fn tuned_on_cluster(ctx: &Context) -> NextStep {
    let get = |k: &str, d: u64| ctx.settings.get(k).copied().unwrap_or(d);
    let retries = (get("backup_restore_keeper_max_retries", 1000) * 2).max(1000);
    let initial = get("backup_restore_keeper_retry_initial_backoff_ms", 100).max(500);
    let max_backoff = (get("backup_restore_keeper_retry_max_backoff_ms", 5000) * 2).max(10000);
    let stamp = time::compact(ctx.now_unix);
    let name = sql::backup_name(&ctx.cluster, "cluster", &stamp);
    let what = on_cluster_list(ctx)
        .unwrap_or_else(|| format!("ALL ON CLUSTER {}", sql::string(on_cluster_name(ctx))));
    NextStep::sql(
        "Retry ON CLUSTER with more Keeper retries and longer backoff",
        None,
        format!(
            "BACKUP {what} TO {} SETTINGS backup_restore_keeper_max_retries = {retries}, backup_restore_keeper_retry_initial_backoff_ms = {initial}, backup_restore_keeper_retry_max_backoff_ms = {max_backoff}",
            disk_target(ctx, &name)
        ),
    )
    .note("Only once every replica answers and Keeper is healthy")
}

fn next_steps(
    ctx: &Context,
    causes: &[RankedCause],
    findings: &[&Finding],
    verdict: Verdict,
    scope: Scope,
) -> Vec<NextStep> {
    let mut steps = Vec::new();
    let down = unreachable(findings);
    let keeper_is_down = keeper_down(findings);
    let keeper_unhealthy = findings.iter().any(|f| {
        f.causes.contains(&Cause::Keeper)
            && f.severity > Severity::Ok
            && f.check != CheckKind::Backups
    });
    let mut backups_listed = false;
    let mut add_backups = |steps: &mut Vec<NextStep>| {
        if !backups_listed {
            steps.extend(per_replica_backups(ctx, &down));
            backups_listed = true;
        }
    };
    for ranked in causes {
        match ranked.cause {
            Cause::Keeper if !keeper_unhealthy => steps.push(NextStep::text(
                "Keeper answers now: the error points at a Keeper session lost on the named host; check that server's log around the failure",
            )),
            Cause::Keeper => {
                if !ctx.keeper_nodes.is_empty() {
                    // Named as data (node, words), never as a shell line built from config text.
                    steps.push(
                        NextStep::text(format!(
                            "Check every Keeper node ({}) with the four-letter words mntr, srvr, ruok: state, latency, outstanding requests",
                            ctx.keeper_nodes.join(", ")
                        ))
                        .note("`chops check keeper` asks them all at once"),
                    );
                }
                steps.push(
                    NextStep::text("Restore Keeper before retrying: ON CLUSTER backups coordinate every host through it")
                        .note("Do not run SYSTEM RESTART REPLICA while Keeper is down"),
                );
                if scope.is_full() {
                    add_backups(&mut steps);
                }
            }
            Cause::ReplicaOffline => {
                for r in &down {
                    steps.push(NextStep::text(format!(
                        "Bring {r} back, or leave it out: an ON CLUSTER backup needs every host"
                    )));
                }
                if scope.is_full() {
                    add_backups(&mut steps);
                }
            }
            Cause::Timeout => steps.push(tuned_on_cluster(ctx)),
            Cause::Network => {
                steps.push(NextStep::text(
                    "Check the network between replicas and to Keeper (interserver and Keeper ports, packet loss, DNS)",
                ));
                if scope.is_full() {
                    add_backups(&mut steps);
                }
            }
            Cause::ConflictingOperation => {
                for f in findings
                    .iter()
                    .filter(|f| f.check == CheckKind::Blockers && f.severity > Severity::Ok)
                {
                    match &f.subject {
                        Subject::Backup { replica, id, name } => steps.push(
                            NextStep::sql(
                                format!("Wait for {name} to finish before starting another backup"),
                                Some(replica),
                                format!(
                                    "SELECT id, name, status, num_files, total_size, error FROM system.backups WHERE id = {}",
                                    sql::string(id)
                                ),
                            )
                            .note("Concurrent backups fail with code 587 or break the sync"),
                        ),
                        Subject::Mutation { replica, database, table, mutation_id } if f.has(Flag::Failing) => steps.push(
                            NextStep::sql(
                                format!("Mutation {mutation_id} on {database}.{table} keeps failing: fix its cause or kill it"),
                                Some(replica),
                                format!(
                                    "KILL MUTATION WHERE database = {} AND table = {} AND mutation_id = {}",
                                    sql::string(database),
                                    sql::string(table),
                                    sql::string(mutation_id)
                                ),
                            )
                            .note("Only if the mutation is not needed; it will never finish as it is"),
                        ),
                        Subject::Mutation { replica, database, table, mutation_id } => steps.push(NextStep::sql(
                            format!("Wait for mutation {mutation_id} on {database}.{table}"),
                            Some(replica),
                            format!(
                                "SELECT mutation_id, parts_to_do, latest_fail_reason FROM system.mutations WHERE database = {} AND table = {} AND mutation_id = {}",
                                sql::string(database),
                                sql::string(table),
                                sql::string(mutation_id)
                            ),
                        )),
                        _ => {}
                    }
                }
            }
            Cause::ReplicaLag => {
                for f in findings
                    .iter()
                    .filter(|f| f.check == CheckKind::Lag && f.severity > Severity::Ok)
                {
                    let Subject::Table {
                        replica,
                        database,
                        table,
                    } = &f.subject
                    else {
                        continue;
                    };
                    if f.has(Flag::ReadOnly) || f.has(Flag::SessionExpired) {
                        let action = Action::RestartReplica {
                            cluster: ctx.cluster.clone(),
                            replica: replica.clone(),
                            database: database.clone(),
                            table: table.clone(),
                        };
                        let mut step = NextStep::sql(
                            format!("Re-initialise {database}.{table} on {replica}"),
                            Some(replica),
                            action.sql(""),
                        )
                        .action(action);
                        step = if keeper_is_down {
                            step.note("Not now: Keeper is down, the replica cannot re-initialise without it")
                        } else if f.has(Flag::LastActiveReplica) {
                            step.note("Not now: it is the last active replica of its shard; the table would be unavailable")
                        } else {
                            step.note("The table is briefly unavailable on that replica")
                        };
                        steps.push(step);
                    } else if f.has(Flag::Lagging) {
                        steps.push(NextStep::sql(
                            format!("Let {database}.{table} on {replica} catch up; look at what blocks its queue"),
                            Some(replica),
                            format!(
                                "SELECT type, create_time, num_tries, last_exception, postpone_reason FROM system.replication_queue WHERE database = {} AND table = {} ORDER BY create_time LIMIT 10",
                                sql::string(database),
                                sql::string(table)
                            ),
                        ));
                    }
                }
            }
        }
    }
    // Failed backups whose errors are not a sync problem have their own fix.
    for f in findings
        .iter()
        .filter(|f| f.check == CheckKind::Backups && f.severity > Severity::Ok)
    {
        let (Subject::Backup { replica, name, .. }, Some(kind)) = (
            &f.subject,
            f.flags.iter().find_map(|fl| match fl {
                Flag::BackupError(k) => Some(*k),
                _ => None,
            }),
        ) else {
            continue;
        };
        let title = match kind {
            ErrorKind::NameReuse => format!("{name} already exists on {replica}: retry with a new, unique name"),
            ErrorKind::Destination if f.has(Flag::DestinationNotShared) => format!("{name}: ON CLUSTER needs a destination every host shares (S3 or a shared disk)"),
            // A restore from a backup that is not there: a name or a destination to check.
            ErrorKind::Destination if f.has(Flag::BackupNotFound) => format!("{name} on {replica}: no backup there by that name: check the name and the destination it was written to"),
            ErrorKind::Destination => {
                format!("{name} on {replica}: back up to a disk listed in <backups><allowed_disk>, e.g. Disk('{}', …)", ctx.backup_disk)
            }
            ErrorKind::VersionMismatch => "Upgrade every host to the same server version before an ON CLUSTER backup".to_string(),
            ErrorKind::Access => format!("{name} on {replica}: grant BACKUP and the needed SELECT rights to the user that ran it"),
            _ => continue,
        };
        let step = NextStep::text(title);
        if !steps.contains(&step) {
            steps.push(step);
        }
    }
    if verdict == Verdict::Healthy && scope.is_full() {
        let stamp = time::compact(ctx.now_unix);
        let name = sql::backup_name(&ctx.cluster, "cluster", &stamp);
        if let Some(what) = on_cluster_list(ctx) {
            steps.push(NextStep::sql(
                "Cluster is ready: retry the backup",
                None,
                format!("BACKUP {what} TO {} ASYNC", disk_target(ctx, &name)),
            ));
        } else {
            steps.push(NextStep::text(
                "Cluster is ready for a backup (no user databases found)",
            ));
        }
    }
    if steps.is_empty() && verdict != Verdict::Healthy {
        steps.push(NextStep::text("Look at the findings marked crit/warn above; run `chops check backup` for the full diagnosis"));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            cluster: "prod".into(),
            remote_cluster: String::new(),
            replicas: ["r1", "r2", "r3"]
                .iter()
                .map(|n| ReplicaRef {
                    name: n.to_string(),
                    shard: Some(1),
                })
                .collect(),
            keeper_nodes: vec!["zk1:2181".into()],
            databases: ["r1", "r2", "r3"]
                .iter()
                .map(|r| (r.to_string(), vec!["events".to_string()]))
                .collect(),
            backup_disk: "backups".into(),
            settings: BTreeMap::new(),
            now_unix: 1_795_645_636,
            elapsed_ms: 12,
        }
    }

    fn f(check: CheckKind, sev: Severity, subject: Subject, causes: &[Cause]) -> Finding {
        let mut f = Finding::new(check, sev, subject, format!("{check:?} {sev:?}"));
        for c in causes {
            f = f.cause(*c);
        }
        f
    }

    fn table(r: &str) -> Subject {
        Subject::Table {
            replica: r.into(),
            database: "events".into(),
            table: "hits".into(),
        }
    }

    #[test]
    fn verdict_and_top_cause_table() {
        use CheckKind::*;
        use Severity::*;
        let cases: Vec<(&str, Vec<Finding>, Verdict, Option<Cause>)> = vec![
            (
                "healthy",
                vec![f(Replicas, Ok, Subject::replica("r1"), &[])],
                Verdict::Healthy,
                None,
            ),
            (
                "keeper down",
                vec![
                    f(
                        Keeper,
                        Crit,
                        Subject::KeeperNode {
                            node: "zk1:2181".into(),
                        },
                        &[Cause::Keeper],
                    ),
                    f(Lag, Crit, table("r1"), &[Cause::Keeper, Cause::ReplicaLag]),
                ],
                Verdict::Failing,
                Some(Cause::Keeper),
            ),
            (
                "replica refused",
                vec![
                    f(
                        Replicas,
                        Crit,
                        Subject::replica("r2"),
                        &[Cause::ReplicaOffline],
                    ),
                    f(
                        Lag,
                        Unknown,
                        Subject::replica("r2"),
                        &[Cause::ReplicaOffline],
                    ),
                ],
                Verdict::Failing,
                Some(Cause::ReplicaOffline),
            ),
            (
                "timeout ties go to the runbook order",
                vec![f(
                    Replicas,
                    Crit,
                    Subject::replica("r2"),
                    &[Cause::ReplicaOffline, Cause::Network],
                )],
                Verdict::Failing,
                Some(Cause::ReplicaOffline),
            ),
            (
                "running backup",
                vec![f(
                    Blockers,
                    Warn,
                    Subject::Backup {
                        replica: "r1".into(),
                        id: "x".into(),
                        name: "b".into(),
                    },
                    &[Cause::ConflictingOperation],
                )],
                Verdict::Degraded,
                Some(Cause::ConflictingOperation),
            ),
            (
                "unknown only",
                vec![f(Settings, Unknown, Subject::replica("r1"), &[])],
                Verdict::Degraded,
                None,
            ),
        ];
        for (name, findings, verdict, top) in cases {
            let card = diagnose(
                &ctx(),
                Scope::Full,
                vec![CheckResult {
                    check: CheckKind::Keeper,
                    elapsed_ms: 1,
                    findings,
                    slowest: None,
                }],
            );
            assert_eq!(card.verdict, verdict, "{name}");
            assert_eq!(card.causes.first().map(|c| c.cause), top, "{name}");
        }
    }

    #[test]
    fn scores_and_evidence() {
        let a = f(
            CheckKind::Keeper,
            Severity::Crit,
            Subject::Cluster,
            &[Cause::Keeper],
        );
        let b = f(
            CheckKind::Lag,
            Severity::Warn,
            table("r1"),
            &[Cause::Keeper, Cause::ReplicaLag],
        );
        let ok = f(
            CheckKind::Lag,
            Severity::Ok,
            table("r2"),
            &[Cause::ReplicaLag],
        );
        let ranked = rank_causes(&[&a, &b, &ok]);
        assert_eq!(ranked.len(), 2);
        // Cluster-wide crit 3 × 3, plus the table's warn 1 × 1.
        assert_eq!((ranked[0].cause, ranked[0].score), (Cause::Keeper, 10));
        assert_eq!(
            ranked[0].evidence,
            vec![a.summary.clone(), b.summary.clone()]
        );
        assert_eq!((ranked[1].cause, ranked[1].score), (Cause::ReplicaLag, 1));
    }

    /// Several things wrong at once: evidence counts per distinct fact, weighted by its reach.
    #[test]
    fn compound_faults_rank_the_expected_cause_first() {
        use CheckKind::*;
        use Severity::*;
        let node = |n: &str| Subject::KeeperNode { node: n.into() };
        let replica = Subject::replica;
        let backup = |r: &str| Subject::Backup {
            replica: r.into(),
            id: "b1".into(),
            name: "n".into(),
        };
        let mutation = |r: &str| Subject::Mutation {
            replica: r.into(),
            database: "events".into(),
            table: "hits".into(),
            mutation_id: "m1".into(),
        };
        let off = &[Cause::ReplicaOffline][..];
        let cases: Vec<(&str, Vec<Finding>, Cause)> = vec![
            (
                // Every Keeper node refusing (quorum lost) and one replica hung: the hung replica
                // shows up in all six checks, yet it is one fact; nothing ON CLUSTER works without Keeper.
                "keeper down + replica hung",
                vec![
                    f(Keeper, Crit, node("zk1:2181"), &[Cause::Keeper]),
                    f(Keeper, Crit, node("zk2:2181"), &[Cause::Keeper]),
                    f(Keeper, Crit, node("zk3:2181"), &[Cause::Keeper]),
                    f(Keeper, Crit, Subject::Cluster, &[Cause::Keeper]),
                    f(Keeper, Unknown, replica("r3"), off),
                    f(Replicas, Crit, replica("r3"), off),
                    f(Lag, Unknown, replica("r3"), off),
                    f(Blockers, Unknown, replica("r3"), off),
                    f(Backups, Unknown, replica("r3"), off),
                    f(Settings, Unknown, replica("r3"), off),
                ],
                Cause::Keeper,
            ),
            (
                "replica down + failed 655 naming it",
                vec![
                    f(Replicas, Crit, replica("r2"), off),
                    f(Lag, Unknown, replica("r2"), off),
                    f(
                        Backups,
                        Crit,
                        backup("r1"),
                        &[Cause::ReplicaOffline, Cause::Keeper],
                    ),
                ],
                Cause::ReplicaOffline,
            ),
            (
                "running backup + failing mutation on another replica",
                vec![
                    f(Blockers, Warn, backup("r1"), &[Cause::ConflictingOperation]),
                    f(
                        Blockers,
                        Crit,
                        mutation("r2"),
                        &[Cause::ConflictingOperation],
                    ),
                    f(Lag, Warn, table("r2"), &[Cause::ReplicaLag]),
                ],
                Cause::ConflictingOperation,
            ),
            (
                "lagging table + old failed backup",
                vec![
                    f(Lag, Crit, table("r1"), &[Cause::ReplicaLag]),
                    f(Backups, Warn, backup("r1"), &[Cause::Keeper]),
                ],
                Cause::ReplicaLag,
            ),
        ];
        for (name, findings, want) in cases {
            let refs: Vec<&Finding> = findings.iter().collect();
            let ranked = rank_causes(&refs);
            assert_eq!(ranked[0].cause, want, "{name}: {ranked:#?}");
            assert!(!ranked[0].reasons.is_empty(), "{name}: reasons");
        }
        // The hung replica is one fact: crit 3 × one replica 2.
        let hung: Vec<Finding> = (0..6)
            .map(|_| f(Lag, Unknown, replica("r3"), off))
            .chain([f(Replicas, Crit, replica("r3"), off)])
            .collect();
        let refs: Vec<&Finding> = hung.iter().collect();
        assert_eq!(rank_causes(&refs)[0].score, 6);
    }

    #[test]
    fn offline_replica_gets_per_replica_backups_for_the_others() {
        let card = diagnose(
            &ctx(),
            Scope::Full,
            vec![CheckResult {
                check: CheckKind::Replicas,
                elapsed_ms: 3,
                findings: vec![f(
                    CheckKind::Replicas,
                    Severity::Crit,
                    Subject::replica("r2"),
                    &[Cause::ReplicaOffline],
                )],
                slowest: None,
            }],
        );
        let sqls: Vec<(&str, &str)> = card
            .next_steps
            .iter()
            .filter_map(|s| Some((s.run_on.as_deref()?, s.sql.as_deref()?)))
            .collect();
        assert_eq!(
            sqls,
            vec![
                ("r1", "BACKUP DATABASE `events` TO Disk('backups', 'chops-prod-r1-20261125T222716') ASYNC"),
                ("r3", "BACKUP DATABASE `events` TO Disk('backups', 'chops-prod-r3-20261125T222716') ASYNC"),
            ]
        );
        assert!(card.next_steps[0].title.contains("Bring r2 back"));
    }

    #[test]
    fn each_replica_backs_up_its_own_databases_and_on_cluster_only_shared_ones() {
        let mut c = ctx();
        c.databases = BTreeMap::from([
            (
                "r1".to_string(),
                vec!["events".to_string(), "shop".to_string()],
            ),
            ("r2".to_string(), vec!["events".to_string()]),
            ("r3".to_string(), vec![]),
        ]);
        let offline = f(
            CheckKind::Replicas,
            Severity::Warn,
            Subject::replica("rX"),
            &[Cause::Network],
        );
        let card = diagnose(
            &c,
            Scope::Full,
            vec![CheckResult {
                check: CheckKind::Replicas,
                elapsed_ms: 1,
                findings: vec![offline],
                slowest: None,
            }],
        );
        let texts: Vec<String> = card
            .next_steps
            .iter()
            .map(|s| s.sql.clone().unwrap_or_else(|| s.title.clone()))
            .collect();
        assert!(
            texts[1].starts_with(
                "BACKUP DATABASE `events`, DATABASE `shop` TO Disk('backups', 'chops-prod-r1-"
            ),
            "{texts:?}"
        );
        assert!(
            texts[2].starts_with("BACKUP DATABASE `events` TO Disk('backups', 'chops-prod-r2-"),
            "{texts:?}"
        );
        assert_eq!(
            texts[3],
            "r3 has no user databases: nothing to back up there"
        );
        c.databases.remove("r3");
        let card = diagnose(&c, Scope::Full, vec![]);
        let sql = card.next_steps[0].sql.as_deref().unwrap();
        assert!(
            sql.starts_with("BACKUP DATABASE `events` ON CLUSTER 'prod' TO"),
            "{sql}"
        );
    }

    #[test]
    fn restart_replica_is_guarded() {
        let readonly = f(
            CheckKind::Lag,
            Severity::Crit,
            table("r1"),
            &[Cause::ReplicaLag],
        )
        .flag(Flag::ReadOnly);
        let last = readonly.clone().flag(Flag::LastActiveReplica);
        let keeper = f(
            CheckKind::Keeper,
            Severity::Crit,
            Subject::Cluster,
            &[Cause::Keeper],
        );
        let cases = [
            (vec![readonly.clone()], "briefly unavailable"),
            (vec![last], "last active replica"),
            (vec![readonly, keeper], "Keeper is down"),
        ];
        for (findings, note) in cases {
            let card = diagnose(
                &ctx(),
                Scope::Full,
                vec![CheckResult {
                    check: CheckKind::Lag,
                    elapsed_ms: 1,
                    findings,
                    slowest: None,
                }],
            );
            let step = card
                .next_steps
                .iter()
                .find(|s| s.sql.as_deref() == Some("SYSTEM RESTART REPLICA `events`.`hits`"))
                .expect("restart step");
            assert_eq!(step.run_on.as_deref(), Some("r1"));
            assert!(
                step.note.as_deref().unwrap().contains(note),
                "{:?}",
                step.note
            );
        }
    }

    #[test]
    fn timeout_suggests_tuned_on_cluster_retry_from_effective_settings() {
        let mut c = ctx();
        c.settings
            .insert("backup_restore_keeper_max_retries".into(), 20);
        c.settings
            .insert("backup_restore_keeper_retry_initial_backoff_ms".into(), 100);
        let card = diagnose(
            &c,
            Scope::Full,
            vec![CheckResult {
                check: CheckKind::Backups,
                elapsed_ms: 1,
                findings: vec![f(
                    CheckKind::Backups,
                    Severity::Crit,
                    Subject::Cluster,
                    &[Cause::Timeout],
                )],
                slowest: None,
            }],
        );
        let sql = card.next_steps[0].sql.as_deref().unwrap();
        assert!(sql.starts_with("BACKUP DATABASE `events` ON CLUSTER 'prod' TO Disk('backups', 'chops-prod-cluster-20261125T222716')"), "{sql}");
        assert!(
            sql.contains("backup_restore_keeper_max_retries = 1000"),
            "{sql}"
        );
        assert!(
            sql.contains("backup_restore_keeper_retry_initial_backoff_ms = 500"),
            "{sql}"
        );
    }

    #[test]
    fn names_are_quoted_in_suggested_sql() {
        let mut c = ctx();
        c.cluster = "it's".into();
        c.databases = ["r1", "r2", "r3"]
            .iter()
            .map(|r| (r.to_string(), vec!["we`ird".to_string()]))
            .collect();
        let card = diagnose(&c, Scope::Full, vec![]);
        assert_eq!(card.verdict, Verdict::Healthy);
        let sql = card.next_steps[0].sql.as_deref().unwrap();
        assert!(sql.starts_with("BACKUP DATABASE `we\\`ird` ON CLUSTER 'it\\'s' TO Disk('backups', 'chops-it_s-cluster-"), "{sql}");
    }
}
