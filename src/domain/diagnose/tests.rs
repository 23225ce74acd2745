//! Diagnosis tests: verdicts, ranking, and the next steps filled with real names.

use std::collections::BTreeMap;

use super::*;
use crate::domain::card::Verdict;
use crate::domain::cause::Cause;
use crate::domain::finding::{Flag, Subject};
// Short names for the tables below.
use crate::domain::cause::Cause::*;
use crate::domain::finding::CheckKind::{
    Backups, Blockers, Keeper as KeeperCheck, Lag, Replicas, Settings,
};
use crate::domain::finding::Severity::{Crit, Ok, Unknown, Warn};

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

/// A finding's subject in a table row (the real one holds `String`s).
#[derive(Clone, Copy)]
enum S {
    Cluster,
    Node(&'static str),
    Replica(&'static str),
    Table(&'static str),
    Backup(&'static str),
    Mutation(&'static str),
}

impl S {
    fn subject(self) -> Subject {
        match self {
            S::Cluster => Subject::Cluster,
            S::Node(n) => Subject::KeeperNode { node: n.into() },
            S::Replica(r) => Subject::replica(r),
            S::Table(r) => table(r),
            S::Backup(r) => Subject::Backup {
                replica: r.into(),
                id: "b1".into(),
                name: "n".into(),
            },
            S::Mutation(r) => Subject::Mutation {
                replica: r.into(),
                database: "events".into(),
                table: "hits".into(),
                mutation_id: "m1".into(),
            },
        }
    }
}

/// One finding of a table row: check, severity, subject, causes (first = main).
type Row = (CheckKind, Severity, S, &'static [Cause]);

fn findings(rows: &[Row]) -> Vec<Finding> {
    rows.iter()
        .map(|&(check, sev, s, causes)| f(check, sev, s.subject(), causes))
        .collect()
}

const OFF: &[Cause] = &[ReplicaOffline];

/// Name, findings, verdict, top cause.
const VERDICTS: &[(&str, &[Row], Verdict, Option<Cause>)] = &[
    (
        "healthy",
        &[(Replicas, Ok, S::Replica("r1"), &[])],
        Verdict::Healthy,
        None,
    ),
    (
        "keeper down",
        &[
            (KeeperCheck, Crit, S::Node("zk1:2181"), &[Keeper]),
            (Lag, Crit, S::Table("r1"), &[Keeper, ReplicaLag]),
        ],
        Verdict::Failing,
        Some(Keeper),
    ),
    (
        "replica refused",
        &[
            (Replicas, Crit, S::Replica("r2"), OFF),
            (Lag, Unknown, S::Replica("r2"), OFF),
        ],
        Verdict::Failing,
        Some(ReplicaOffline),
    ),
    (
        "timeout ties go to the runbook order",
        &[(Replicas, Crit, S::Replica("r2"), &[ReplicaOffline, Network])],
        Verdict::Failing,
        Some(ReplicaOffline),
    ),
    (
        "running backup",
        &[(Blockers, Warn, S::Backup("r1"), &[ConflictingOperation])],
        Verdict::Degraded,
        Some(ConflictingOperation),
    ),
    (
        "unknown only",
        &[(Settings, Unknown, S::Replica("r1"), &[])],
        Verdict::Degraded,
        None,
    ),
];

#[test]
fn verdict_and_top_cause_table() {
    for &(name, rows, verdict, top) in VERDICTS {
        let card = diagnose(
            &ctx(),
            Scope::Full,
            vec![CheckResult {
                check: CheckKind::Keeper,
                elapsed_ms: 1,
                findings: findings(rows),
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

/// Several things wrong at once: name, findings, the cause that must rank first.
const COMPOUND: &[(&str, &[Row], Cause)] = &[
    (
        // Every Keeper node refusing (quorum lost) and one replica hung: the hung replica
        // shows up in all six checks, yet it is one fact; nothing ON CLUSTER works without Keeper.
        "keeper down + replica hung",
        &[
            (KeeperCheck, Crit, S::Node("zk1:2181"), &[Keeper]),
            (KeeperCheck, Crit, S::Node("zk2:2181"), &[Keeper]),
            (KeeperCheck, Crit, S::Node("zk3:2181"), &[Keeper]),
            (KeeperCheck, Crit, S::Cluster, &[Keeper]),
            (KeeperCheck, Unknown, S::Replica("r3"), OFF),
            (Replicas, Crit, S::Replica("r3"), OFF),
            (Lag, Unknown, S::Replica("r3"), OFF),
            (Blockers, Unknown, S::Replica("r3"), OFF),
            (Backups, Unknown, S::Replica("r3"), OFF),
            (Settings, Unknown, S::Replica("r3"), OFF),
        ],
        Keeper,
    ),
    (
        "replica down + failed 655 naming it",
        &[
            (Replicas, Crit, S::Replica("r2"), OFF),
            (Lag, Unknown, S::Replica("r2"), OFF),
            (Backups, Crit, S::Backup("r1"), &[ReplicaOffline, Keeper]),
        ],
        ReplicaOffline,
    ),
    (
        "running backup + failing mutation on another replica",
        &[
            (Blockers, Warn, S::Backup("r1"), &[ConflictingOperation]),
            (Blockers, Crit, S::Mutation("r2"), &[ConflictingOperation]),
            (Lag, Warn, S::Table("r2"), &[ReplicaLag]),
        ],
        ConflictingOperation,
    ),
    (
        "lagging table + old failed backup",
        &[
            (Lag, Crit, S::Table("r1"), &[ReplicaLag]),
            (Backups, Warn, S::Backup("r1"), &[Keeper]),
        ],
        ReplicaLag,
    ),
];

/// Evidence counts per distinct fact, weighted by its reach.
#[test]
fn compound_faults_rank_the_expected_cause_first() {
    for &(name, rows, want) in COMPOUND {
        let findings = findings(rows);
        let refs: Vec<&Finding> = findings.iter().collect();
        let ranked = rank_causes(&refs);
        assert_eq!(ranked[0].cause, want, "{name}: {ranked:#?}");
        assert!(!ranked[0].reasons.is_empty(), "{name}: reasons");
    }
    // The hung replica is one fact: crit 3 × one replica 2.
    let hung: Vec<Finding> = (0..6)
        .map(|_| f(Lag, Unknown, Subject::replica("r3"), OFF))
        .chain([f(Replicas, Crit, Subject::replica("r3"), OFF)])
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

#[test]
fn a_failed_backups_finer_kind_names_its_own_fix() {
    let backup = |detail: Option<&'static str>, kind| {
        let mut f = Finding::new(
            CheckKind::Backups,
            Severity::Crit,
            Subject::Backup {
                replica: "r1".into(),
                id: "b1".into(),
                name: "daily".into(),
            },
            "r1: BACKUP daily failed".to_string(),
        )
        .flag(Flag::BackupError(kind));
        if let Some(d) = detail {
            f = f.flag(Flag::BackupDetail(d));
        }
        f
    };
    let steps = |finding: Finding| {
        let card = diagnose(
            &ctx(),
            Scope::Full,
            vec![CheckResult {
                check: CheckKind::Backups,
                elapsed_ms: 1,
                findings: vec![finding],
                slowest: None,
            }],
        );
        card.next_steps
            .iter()
            .map(|s| s.title.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    use crate::domain::classify::ErrorKind;
    // Throttling names the settings to lower; a missing bucket names the bucket; a grant names it.
    let throttled = steps(backup(Some("store_throttled"), ErrorKind::Network));
    assert!(
        throttled.contains("daily on r1:") && throttled.contains("backup_threads"),
        "{throttled}"
    );
    let bucket = steps(backup(Some("store_no_bucket"), ErrorKind::Destination));
    assert!(bucket.contains("bucket"), "{bucket}");
    // Without a finer kind the category's general fix stays.
    let plain = steps(backup(None, ErrorKind::Destination));
    assert!(plain.contains("allowed_disk"), "{plain}");
}
