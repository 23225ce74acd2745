//! Replication lag: `system.replicas` per table (read-only, session expired, delay, queue,
//! active/total) and a `system.replication_queue` summary (oldest entry, max tries, last exception).

use ::clickhouse::Row;
use serde::Deserialize;

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

/// Judge one table on one replica.
pub fn evaluate_table(
    replica: &str,
    row: &ReplicaRow,
    queue: Option<&QueueRow>,
    t: &Thresholds,
) -> Finding {
    let name = format!("{}.{}", row.database, row.table);
    let subject = Subject::Table {
        replica: replica.into(),
        database: row.database.clone(),
        table: row.table.clone(),
    };
    let mut problems: Vec<String> = Vec::new();
    let mut severity = Severity::Ok;
    let mut f = Finding::new(CheckKind::Lag, Severity::Ok, subject, String::new());
    let bump = |s: &mut Severity, to: Severity| *s = (*s).max(to);
    if row.is_session_expired == 1 {
        problems.push("Keeper session expired".into());
        bump(&mut severity, Severity::Crit);
        f = f.cause(Cause::Keeper).flag(Flag::SessionExpired);
    }
    if row.is_readonly == 1 {
        problems.push("read-only".into());
        bump(&mut severity, Severity::Crit);
        f = f.cause(Cause::ReplicaLag).flag(Flag::ReadOnly);
    }
    if row.absolute_delay > NEVER_SYNCED_SECS {
        // The delay is measured from the epoch: the replica never processed its queue.
        problems.push("never synced".into());
        bump(&mut severity, Severity::Crit);
        f = f.cause(Cause::ReplicaLag).flag(Flag::Lagging);
    } else if let Some(level) = t.delay_secs.level(row.absolute_delay) {
        problems.push(format!("{} delay {} s", level.name(), row.absolute_delay));
        bump(&mut severity, level.severity());
        f = f.cause(Cause::ReplicaLag).flag(Flag::Lagging);
    }
    if let Some(level) = t.queue_size.level(row.queue_size) {
        problems.push(format!("{} queue {}", level.name(), row.queue_size));
        bump(&mut severity, level.severity());
        f = f.cause(Cause::ReplicaLag).flag(Flag::Lagging);
    }
    if row.active_replicas < row.total_replicas && row.is_readonly == 0 {
        problems.push(format!(
            "only {} of {} replicas active",
            row.active_replicas, row.total_replicas
        ));
        bump(&mut severity, Severity::Warn);
        f = f.cause(Cause::ReplicaOffline);
    }
    if !row.zookeeper_exception.is_empty() {
        f = f
            .evidence(format!(
                "zookeeper_exception: {}",
                first_line(&row.zookeeper_exception, 200)
            ))
            .cause(Cause::Keeper);
        bump(&mut severity, Severity::Warn);
    }
    if !row.last_queue_update_exception.is_empty() {
        f = f.evidence(format!(
            "last_queue_update_exception: {}",
            first_line(&row.last_queue_update_exception, 200)
        ));
    }
    if let Some(q) = queue {
        f = f.evidence(format!(
            "queue: {} entries, oldest {} s, max tries {}",
            q.entries, q.oldest_secs, q.max_tries
        ));
        if q.max_tries > STUCK_TRIES {
            problems.push(format!("queue entry retried {} times", q.max_tries));
            bump(&mut severity, Severity::Warn);
            f = f.cause(Cause::ReplicaLag).flag(Flag::Lagging);
            if !q.last_exception.is_empty() {
                f = f.evidence(format!(
                    "last_exception: {}",
                    first_line(&q.last_exception, 200)
                ));
            }
            if !q.postpone_reason.is_empty() {
                f = f.evidence(format!(
                    "postpone_reason: {}",
                    first_line(&q.postpone_reason, 200)
                ));
            }
        }
    }
    // Restarting the only active replica makes the table unavailable everywhere. This replica is
    // active when its Keeper session lives (read-only or not); then no other one is.
    if row.is_session_expired == 0 && row.active_replicas == 1 {
        f = f.flag(Flag::LastActiveReplica);
    }
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
    f.severity = severity;
    f.summary = if problems.is_empty() {
        format!("{replica}: {name} in sync")
    } else {
        format!("{replica}: {name} {}", problems.join(", "))
    };
    f
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

    #[test]
    fn table_cases() {
        let t = Thresholds::default();
        let cases: Vec<(&str, ReplicaRow, Severity, &str, &[Flag])> = vec![
            ("in sync", row(), Severity::Ok, "r1: db.t in sync", &[]),
            (
                "readonly",
                ReplicaRow {
                    is_readonly: 1,
                    active_replicas: 0,
                    total_replicas: 1,
                    ..row()
                },
                Severity::Crit,
                "r1: db.t read-only",
                &[Flag::ReadOnly],
            ),
            (
                "expired",
                ReplicaRow {
                    is_session_expired: 1,
                    is_readonly: 1,
                    ..row()
                },
                Severity::Crit,
                "r1: db.t Keeper session expired, read-only",
                &[Flag::SessionExpired, Flag::ReadOnly],
            ),
            (
                "moderate delay",
                ReplicaRow {
                    absolute_delay: 1801,
                    ..row()
                },
                Severity::Warn,
                "r1: db.t moderate delay 1801 s",
                &[Flag::Lagging],
            ),
            (
                "major delay",
                ReplicaRow {
                    absolute_delay: 10801,
                    ..row()
                },
                Severity::Crit,
                "r1: db.t major delay 10801 s",
                &[Flag::Lagging],
            ),
            (
                "critical queue",
                ReplicaRow {
                    queue_size: 501,
                    ..row()
                },
                Severity::Crit,
                "r1: db.t critical queue 501",
                &[Flag::Lagging],
            ),
            (
                "queue at limit",
                ReplicaRow {
                    queue_size: 200,
                    absolute_delay: 1800,
                    ..row()
                },
                Severity::Ok,
                "r1: db.t in sync",
                &[],
            ),
            (
                "last active",
                ReplicaRow {
                    active_replicas: 1,
                    total_replicas: 2,
                    ..row()
                },
                Severity::Warn,
                "r1: db.t only 1 of 2 replicas active",
                &[Flag::LastActiveReplica],
            ),
            (
                // Read-only for another reason (e.g. metadata) while its session lives, the other
                // replica down: the restart step is offered, and this flag makes it "not now".
                "read-only and last active",
                ReplicaRow {
                    is_readonly: 1,
                    active_replicas: 1,
                    total_replicas: 2,
                    ..row()
                },
                Severity::Crit,
                "r1: db.t read-only",
                &[Flag::ReadOnly, Flag::LastActiveReplica],
            ),
        ];
        for (name, r, sev, text, flags) in cases {
            let f = evaluate_table("r1", &r, None, &t);
            assert_eq!(f.severity, sev, "{name}");
            assert_eq!(f.summary, text, "{name}");
            assert_eq!(f.flags, flags, "{name}");
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
