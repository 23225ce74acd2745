//! Replication lag: `system.replicas` per table (read-only, session expired, delay, queue,
//! active/total) and a `system.replication_queue` summary (oldest entry, max tries, last exception).
//! The SQL, the probe (`run`) and the pure `evaluate`; whether a restart would take the last active
//! replica is the guard's rule ([`TableState::last_active`]), asked, not repeated.

use ::clickhouse::Row;
use serde::Deserialize;

use super::{fetch, Cluster};
use crate::domain::guard::TableState;
use crate::domain::text::first_line;
use crate::domain::thresholds::Thresholds;
use crate::domain::{Cause, CheckKind, Finding, Flag, ProbeError, Severity, Subject};

pub const REPLICAS_SQL: &str = "SELECT database, table, replica_name, toUInt8(is_readonly) AS is_readonly, \
     toUInt8(is_session_expired) AS is_session_expired, toUInt64(absolute_delay) AS absolute_delay, \
     toUInt64(queue_size) AS queue_size, toUInt64(inserts_in_queue) AS inserts_in_queue, \
     toUInt64(merges_in_queue) AS merges_in_queue, toUInt64(total_replicas) AS total_replicas, \
     toUInt64(active_replicas) AS active_replicas, last_queue_update_exception, zookeeper_exception \
     FROM system.replicas ORDER BY database, table LIMIT 2000";

pub const QUEUE_SQL: &str = "SELECT database, table, toUInt64(count()) AS entries, toUInt64(max(num_tries)) AS max_tries, \
     toUInt64(dateDiff('second', min(create_time), now())) AS oldest_secs, \
     argMax(last_exception, num_tries) AS last_exception, argMax(postpone_reason, num_tries) AS postpone_reason \
     FROM system.replication_queue GROUP BY database, table ORDER BY max_tries DESC LIMIT 200";

/// A delay above this (~10 years) is counted from the epoch: the replica never synced.
pub const NEVER_SYNCED_SECS: u64 = 10 * 365 * 86400;

/// Each replicated table with its queue summary in one round trip (gentle on a sick cluster):
/// `system.replicas` joined with `system.replication_queue` grouped by table.
pub const COMBINED_SQL: &str = "SELECT r.database AS database, r.table AS table, r.replica_name AS replica_name, \
     toUInt8(r.is_readonly) AS is_readonly, toUInt8(r.is_session_expired) AS is_session_expired, \
     toUInt64(r.absolute_delay) AS absolute_delay, toUInt64(r.queue_size) AS queue_size, \
     toUInt64(r.inserts_in_queue) AS inserts_in_queue, toUInt64(r.merges_in_queue) AS merges_in_queue, \
     toUInt64(r.total_replicas) AS total_replicas, toUInt64(r.active_replicas) AS active_replicas, \
     r.last_queue_update_exception AS last_queue_update_exception, r.zookeeper_exception AS zookeeper_exception, \
     toUInt64(q.entries) AS q_entries, toUInt64(q.max_tries) AS q_max_tries, toUInt64(q.oldest_secs) AS q_oldest_secs, \
     q.last_exception AS q_last_exception, q.postpone_reason AS q_postpone_reason \
     FROM system.replicas AS r LEFT JOIN (SELECT database, table, count() AS entries, max(num_tries) AS max_tries, \
     dateDiff('second', min(create_time), now()) AS oldest_secs, argMax(last_exception, num_tries) AS last_exception, \
     argMax(postpone_reason, num_tries) AS postpone_reason FROM system.replication_queue GROUP BY database, table) AS q \
     ON r.database = q.database AND r.table = q.table ORDER BY database, table LIMIT 2000";

/// A row of [`COMBINED_SQL`].
#[derive(Debug, Clone, Row, Deserialize)]
pub struct CombinedRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub database: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub table: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub replica_name: String,
    pub is_readonly: u8,
    pub is_session_expired: u8,
    pub absolute_delay: u64,
    pub queue_size: u64,
    pub inserts_in_queue: u64,
    pub merges_in_queue: u64,
    pub total_replicas: u64,
    pub active_replicas: u64,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub last_queue_update_exception: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub zookeeper_exception: String,
    pub q_entries: u64,
    pub q_max_tries: u64,
    pub q_oldest_secs: u64,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub q_last_exception: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub q_postpone_reason: String,
}

impl LagProbe {
    /// Split the combined answer into the tables and their queues (an error fails both).
    pub fn from_combined(replica: &str, rows: Result<Vec<CombinedRow>, ProbeError>) -> LagProbe {
        let (replicas, queue) = match rows {
            Err(e) => (Err(e.clone()), Err(e)),
            Ok(rows) => {
                let queue = rows
                    .iter()
                    .filter(|r| r.q_entries > 0)
                    .map(|r| QueueRow {
                        database: r.database.clone(),
                        table: r.table.clone(),
                        entries: r.q_entries,
                        max_tries: r.q_max_tries,
                        oldest_secs: r.q_oldest_secs,
                        last_exception: r.q_last_exception.clone(),
                        postpone_reason: r.q_postpone_reason.clone(),
                    })
                    .collect();
                let replicas = rows
                    .into_iter()
                    .map(|r| ReplicaRow {
                        database: r.database,
                        table: r.table,
                        replica_name: r.replica_name,
                        is_readonly: r.is_readonly,
                        is_session_expired: r.is_session_expired,
                        absolute_delay: r.absolute_delay,
                        queue_size: r.queue_size,
                        inserts_in_queue: r.inserts_in_queue,
                        merges_in_queue: r.merges_in_queue,
                        total_replicas: r.total_replicas,
                        active_replicas: r.active_replicas,
                        last_queue_update_exception: r.last_queue_update_exception,
                        zookeeper_exception: r.zookeeper_exception,
                    })
                    .collect();
                (Ok(replicas), Ok(queue))
            }
        };
        LagProbe {
            replica: replica.to_string(),
            replicas,
            queue,
        }
    }
}

/// Queue entries retried more often than this are reported.
pub const STUCK_TRIES: u64 = 100;

#[derive(Debug, Clone, Row, Deserialize)]
pub struct ReplicaRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub database: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub table: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub replica_name: String,
    pub is_readonly: u8,
    pub is_session_expired: u8,
    pub absolute_delay: u64,
    pub queue_size: u64,
    pub inserts_in_queue: u64,
    pub merges_in_queue: u64,
    pub total_replicas: u64,
    pub active_replicas: u64,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub last_queue_update_exception: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub zookeeper_exception: String,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct QueueRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub database: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub table: String,
    pub entries: u64,
    pub max_tries: u64,
    pub oldest_secs: u64,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub last_exception: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub postpone_reason: String,
}

/// What one replica answered.
#[derive(Debug, Clone)]
pub struct LagProbe {
    pub replica: String,
    pub replicas: Result<Vec<ReplicaRow>, ProbeError>,
    pub queue: Result<Vec<QueueRow>, ProbeError>,
}

impl ReplicaRow {
    /// The table as the guard sees it (whether a restart of this replica may run).
    pub fn state(&self) -> TableState {
        TableState {
            readonly: self.is_readonly != 0,
            session_expired: self.is_session_expired != 0,
            active_replicas: self.active_replicas,
            total_replicas: self.total_replicas,
        }
    }
}

/// A table's finding while it is judged: the problems found so far and the worst severity.
struct Verdict {
    f: Finding,
    problems: Vec<String>,
    severity: Severity,
}

impl Verdict {
    /// One more problem for the summary; the severity becomes at least `severity`.
    fn problem(mut self, text: impl Into<String>, severity: Severity) -> Self {
        self.problems.push(text.into());
        self.severity = self.severity.max(severity);
        self
    }

    fn cause(mut self, c: Cause) -> Self {
        self.f = self.f.cause(c);
        self
    }

    fn flag(mut self, flag: Flag) -> Self {
        self.f = self.f.flag(flag);
        self
    }

    fn evidence(mut self, e: String) -> Self {
        self.f = self.f.evidence(e);
        self
    }
}

/// Judge one table on one replica.
pub fn evaluate_table(
    replica: &str,
    row: &ReplicaRow,
    queue: Option<&QueueRow>,
    t: &Thresholds,
) -> Finding {
    let subject = Subject::Table {
        replica: replica.into(),
        database: row.database.clone(),
        table: row.table.clone(),
    };
    let v = Verdict {
        f: Finding::new(CheckKind::Lag, Severity::Ok, subject, String::new()),
        problems: Vec::new(),
        severity: Severity::Ok,
    };
    let v = exceptions(row, state_problems(row, t, v));
    let mut v = match queue {
        Some(q) => queue_problems(q, v),
        None => v,
    };
    // Restarting the only active replica makes the table unavailable everywhere: the guard
    // refuses it, and the flag lets the card say so before anyone asks.
    if row.state().last_active() {
        v = v.flag(Flag::LastActiveReplica);
    }
    let mut f = v.f;
    f.evidence.insert(
        0,
        format!(
            "replica {}: delay {} s, queue {} (inserts {}, merges {}), active {}/{}",
            row.replica_name,
            row.absolute_delay,
            row.queue_size,
            row.inserts_in_queue,
            row.merges_in_queue,
            row.active_replicas,
            row.total_replicas
        ),
    );
    f.severity = v.severity;
    let name = format!("{}.{}", row.database, row.table);
    f.summary = if v.problems.is_empty() {
        format!("{replica}: {name} in sync")
    } else {
        format!("{replica}: {name} {}", v.problems.join(", "))
    };
    f
}

/// What `system.replicas` says of the table: its Keeper session, read-only mode, delay, queue
/// and how many of its replicas are active.
fn state_problems(row: &ReplicaRow, t: &Thresholds, mut v: Verdict) -> Verdict {
    if row.is_session_expired == 1 {
        v = v
            .problem("Keeper session expired", Severity::Crit)
            .cause(Cause::Keeper)
            .flag(Flag::SessionExpired);
    }
    if row.is_readonly == 1 {
        v = v
            .problem("read-only", Severity::Crit)
            .cause(Cause::ReplicaLag)
            .flag(Flag::ReadOnly);
    }
    if row.absolute_delay > NEVER_SYNCED_SECS {
        // The delay is measured from the epoch: the replica never processed its queue.
        v = v
            .problem("never synced", Severity::Crit)
            .cause(Cause::ReplicaLag)
            .flag(Flag::Lagging);
    } else if let Some(level) = t.delay_secs.level(row.absolute_delay) {
        let text = format!("{} delay {} s", level.name(), row.absolute_delay);
        v = v
            .problem(text, level.severity())
            .cause(Cause::ReplicaLag)
            .flag(Flag::Lagging);
    }
    if let Some(level) = t.queue_size.level(row.queue_size) {
        let text = format!("{} queue {}", level.name(), row.queue_size);
        v = v
            .problem(text, level.severity())
            .cause(Cause::ReplicaLag)
            .flag(Flag::Lagging);
    }
    if row.active_replicas < row.total_replicas && row.is_readonly == 0 {
        let text = format!(
            "only {} of {} replicas active",
            row.active_replicas, row.total_replicas
        );
        v = v.problem(text, Severity::Warn).cause(Cause::ReplicaOffline);
    }
    v
}

/// The table's Keeper and queue-update exceptions, as evidence.
fn exceptions(row: &ReplicaRow, mut v: Verdict) -> Verdict {
    if !row.zookeeper_exception.is_empty() {
        v = v
            .evidence(format!(
                "zookeeper_exception: {}",
                first_line(&row.zookeeper_exception, 200)
            ))
            .cause(Cause::Keeper);
        v.severity = v.severity.max(Severity::Warn);
    }
    if !row.last_queue_update_exception.is_empty() {
        v = v.evidence(format!(
            "last_queue_update_exception: {}",
            first_line(&row.last_queue_update_exception, 200)
        ));
    }
    v
}

/// The table's replication queue: its size as evidence, an entry retried too often as a problem.
fn queue_problems(q: &QueueRow, mut v: Verdict) -> Verdict {
    v = v.evidence(format!(
        "queue: {} entries, oldest {} s, max tries {}",
        q.entries, q.oldest_secs, q.max_tries
    ));
    if q.max_tries <= STUCK_TRIES {
        return v;
    }
    v = v
        .problem(
            format!("queue entry retried {} times", q.max_tries),
            Severity::Warn,
        )
        .cause(Cause::ReplicaLag)
        .flag(Flag::Lagging);
    if !q.last_exception.is_empty() {
        v = v.evidence(format!(
            "last_exception: {}",
            first_line(&q.last_exception, 200)
        ));
    }
    if !q.postpone_reason.is_empty() {
        v = v.evidence(format!(
            "postpone_reason: {}",
            first_line(&q.postpone_reason, 200)
        ));
    }
    v
}

/// Judge every replica: one finding per table with a problem, one summary per healthy replica.
pub fn evaluate(probes: &[LagProbe], t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in probes {
        let rows = match &p.replicas {
            Ok(rows) => rows,
            Err(e) => {
                out.push(Finding::probe_failed(CheckKind::Lag, &p.replica, e));
                continue;
            }
        };
        let queue: &[QueueRow] = p.queue.as_deref().unwrap_or(&[]);
        let findings: Vec<Finding> = rows
            .iter()
            .map(|row| {
                evaluate_table(
                    &p.replica,
                    row,
                    queue
                        .iter()
                        .find(|q| q.database == row.database && q.table == row.table),
                    t,
                )
            })
            .collect();
        let (bad, good): (Vec<Finding>, Vec<Finding>) = findings
            .into_iter()
            .partition(|f| f.severity > Severity::Ok);
        out.extend(bad);
        if let Err(e) = &p.queue {
            out.push(Finding::new(
                CheckKind::Lag,
                Severity::Unknown,
                Subject::replica(&p.replica),
                format!("{}: replication_queue: {e}", p.replica),
            ));
        }
        if rows.is_empty() {
            out.push(Finding::new(
                CheckKind::Lag,
                Severity::Ok,
                Subject::replica(&p.replica),
                format!("{}: no replicated tables", p.replica),
            ));
        } else if !good.is_empty() {
            let max_delay = rows.iter().map(|r| r.absolute_delay).max().unwrap_or(0);
            let max_queue = rows.iter().map(|r| r.queue_size).max().unwrap_or(0);
            out.push(Finding::new(
                CheckKind::Lag,
                Severity::Ok,
                Subject::replica(&p.replica),
                format!("{}: {} replicated tables in sync (max delay {max_delay} s, max queue {max_queue})", p.replica, good.len()),
            ));
        }
    }
    out
}

/// The probe: every replicated table with its queue summary, on every replica; judged.
pub(super) async fn run(cl: &Cluster) -> Vec<Finding> {
    let probes = cl
        .per_replica(|c| async move {
            let rows = fetch::<CombinedRow>(&c, COMBINED_SQL).await;
            LagProbe::from_combined(&c.name, rows)
        })
        .await;
    evaluate(&probes, &cl.thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ReplicaRow {
        ReplicaRow {
            database: "db".into(),
            table: "t".into(),
            replica_name: "r1".into(),
            is_readonly: 0,
            is_session_expired: 0,
            absolute_delay: 0,
            queue_size: 0,
            inserts_in_queue: 0,
            merges_in_queue: 0,
            total_replicas: 3,
            active_replicas: 3,
            last_queue_update_exception: String::new(),
            zookeeper_exception: String::new(),
        }
    }

    /// A table's numbers (the rest as in [`row`]) and how it is judged.
    struct Case {
        name: &'static str,
        readonly: u8,
        expired: u8,
        delay: u64,
        queue: u64,
        active: u64,
        total: u64,
        severity: Severity,
        summary: &'static str,
        flags: &'static [Flag],
    }

    const IN_SYNC: Case = Case {
        name: "in sync",
        readonly: 0,
        expired: 0,
        delay: 0,
        queue: 0,
        active: 3,
        total: 3,
        severity: Severity::Ok,
        summary: "r1: db.t in sync",
        flags: &[],
    };

    const TABLE_CASES: &[Case] = &[
        IN_SYNC,
        Case {
            name: "readonly",
            readonly: 1,
            active: 0,
            total: 1,
            severity: Severity::Crit,
            summary: "r1: db.t read-only",
            flags: &[Flag::ReadOnly],
            ..IN_SYNC
        },
        Case {
            name: "expired",
            expired: 1,
            readonly: 1,
            severity: Severity::Crit,
            summary: "r1: db.t Keeper session expired, read-only",
            flags: &[Flag::SessionExpired, Flag::ReadOnly],
            ..IN_SYNC
        },
        Case {
            name: "moderate delay",
            delay: 1801,
            severity: Severity::Warn,
            summary: "r1: db.t moderate delay 1801 s",
            flags: &[Flag::Lagging],
            ..IN_SYNC
        },
        Case {
            name: "major delay",
            delay: 10801,
            severity: Severity::Crit,
            summary: "r1: db.t major delay 10801 s",
            flags: &[Flag::Lagging],
            ..IN_SYNC
        },
        Case {
            name: "critical queue",
            queue: 501,
            severity: Severity::Crit,
            summary: "r1: db.t critical queue 501",
            flags: &[Flag::Lagging],
            ..IN_SYNC
        },
        Case {
            name: "queue at limit",
            queue: 200,
            delay: 1800,
            ..IN_SYNC
        },
        Case {
            name: "last active",
            active: 1,
            total: 2,
            severity: Severity::Warn,
            summary: "r1: db.t only 1 of 2 replicas active",
            flags: &[Flag::LastActiveReplica],
            ..IN_SYNC
        },
        // Read-only for another reason (e.g. metadata) while its session lives, the other replica
        // down: the restart step is offered, and this flag makes it "not now".
        Case {
            name: "read-only and last active",
            readonly: 1,
            active: 1,
            total: 2,
            severity: Severity::Crit,
            summary: "r1: db.t read-only",
            flags: &[Flag::ReadOnly, Flag::LastActiveReplica],
            ..IN_SYNC
        },
    ];

    #[test]
    fn table_cases() {
        let t = Thresholds::default();
        for c in TABLE_CASES {
            let r = ReplicaRow {
                is_readonly: c.readonly,
                is_session_expired: c.expired,
                absolute_delay: c.delay,
                queue_size: c.queue,
                active_replicas: c.active,
                total_replicas: c.total,
                ..row()
            };
            let f = evaluate_table("r1", &r, None, &t);
            assert_eq!(f.severity, c.severity, "{}", c.name);
            assert_eq!(f.summary, c.summary, "{}", c.name);
            assert_eq!(f.flags, c.flags, "{}", c.name);
        }
    }

    #[test]
    fn last_active_flag_agrees_with_the_guard() {
        use crate::domain::action::Action;
        use crate::domain::guard::{preconditions, Snapshot};
        let restart = Action::RestartReplica {
            cluster: "c".into(),
            replica: "r1".into(),
            database: "db".into(),
            table: "t".into(),
        };
        for c in TABLE_CASES {
            let r = ReplicaRow {
                is_readonly: c.readonly,
                is_session_expired: c.expired,
                active_replicas: c.active,
                total_replicas: c.total,
                ..row()
            };
            let live = Snapshot {
                replica: Ok(()),
                running: vec![],
                disk: None,
                missing_databases: vec![],
                name_taken: false,
                table: Some(r.state()),
                keeper: Ok(()),
                locked_by: None,
                cooldown_until: None,
            };
            let refused = preconditions(&restart, &live, 0)
                .iter()
                .any(|p| !p.ok && p.text.contains("last active replica"));
            let f = evaluate_table("r1", &r, None, &Thresholds::default());
            assert_eq!(f.has(Flag::LastActiveReplica), refused, "{}", c.name);
        }
    }

    #[test]
    fn stuck_queue_entries_carry_their_exception() {
        let q = QueueRow {
            database: "db".into(),
            table: "t".into(),
            entries: 3,
            max_tries: 250,
            oldest_secs: 900,
            last_exception: "Code: 999. Session expired".into(),
            postpone_reason: String::new(),
        };
        let f = evaluate_table("r1", &row(), Some(&q), &Thresholds::default());
        assert_eq!(f.severity, Severity::Warn);
        assert!(
            f.evidence
                .iter()
                .any(|e| e == "last_exception: Code: 999. Session expired"),
            "{:?}",
            f.evidence
        );
    }

    #[test]
    fn per_replica_summary_and_failures() {
        let probes = vec![
            LagProbe {
                replica: "r1".into(),
                replicas: Ok(vec![row(), row()]),
                queue: Ok(vec![]),
            },
            LagProbe {
                replica: "r2".into(),
                replicas: Ok(vec![]),
                queue: Ok(vec![]),
            },
            LagProbe {
                replica: "r3".into(),
                replicas: Err(ProbeError::Refused),
                queue: Err(ProbeError::Refused),
            },
        ];
        let f = evaluate(&probes, &Thresholds::default());
        let summaries: Vec<&str> = f.iter().map(|f| f.summary.as_str()).collect();
        assert_eq!(
            summaries,
            vec![
                "r1: 2 replicated tables in sync (max delay 0 s, max queue 0)",
                "r2: no replicated tables",
                "r3: no answer (connection refused)"
            ]
        );
    }
}
