//! Blocking operations: unfinished mutations, merges, running BACKUP/RESTORE, the distributed DDL queue.

use ::clickhouse::Row;
use serde::Deserialize;

use crate::domain::text::first_line;
use crate::domain::{Cause, CheckKind, Finding, Flag, ProbeError, Severity, Subject};

pub const MUTATIONS_SQL: &str =
    "SELECT database, table, mutation_id, command, toUInt64(parts_to_do) AS parts_to_do, \
     latest_fail_reason, toString(latest_fail_error_code_name) AS latest_fail_error_code_name, \
     toUInt64(dateDiff('second', create_time, now())) AS age_secs \
     FROM system.mutations WHERE is_done = 0 ORDER BY create_time LIMIT 100";

/// The same for servers without `latest_fail_error_code_name` (older than 24.x): asked when the
/// first form fails with UNKNOWN_IDENTIFIER (47).
pub const MUTATIONS_SQL_COMPAT: &str =
    "SELECT database, table, mutation_id, command, toUInt64(parts_to_do) AS parts_to_do, \
     latest_fail_reason, '' AS latest_fail_error_code_name, \
     toUInt64(dateDiff('second', create_time, now())) AS age_secs \
     FROM system.mutations WHERE is_done = 0 ORDER BY create_time LIMIT 100";

pub const MERGES_SQL: &str =
    "SELECT database, table, toFloat64(elapsed) AS elapsed, toFloat64(progress) AS progress, \
     toUInt8(is_mutation) AS is_mutation, toUInt64(total_size_bytes_compressed) AS bytes \
     FROM system.merges ORDER BY elapsed DESC LIMIT 100";

pub const DDL_QUEUE_SQL: &str = "SELECT entry, toString(status) AS status, initiator_host, query, host \
     FROM system.distributed_ddl_queue WHERE status IN ('Active', 'Inactive') ORDER BY entry LIMIT 100";

/// Unfinished mutations and merges in one round trip (gentle on a sick cluster), as
/// [`BlockerRow`]s; a server error (an older server) falls back to the separate queries.
pub const ACTIVITY_SQL: &str = "SELECT 'mutation' AS kind, database AS s1, table AS s2, mutation_id AS s3, \
     command AS s4, latest_fail_reason AS s5, toString(latest_fail_error_code_name) AS s6, \
     toUInt64(parts_to_do) AS n1, toUInt64(dateDiff('second', create_time, now())) AS n2, toUInt64(0) AS n3, \
     toFloat64(0) AS f1, toFloat64(0) AS f2 \
     FROM (SELECT * FROM system.mutations WHERE is_done = 0 ORDER BY create_time LIMIT 100) \
     UNION ALL SELECT 'merge', database, table, '', '', '', '', toUInt64(is_mutation), \
     toUInt64(total_size_bytes_compressed), toUInt64(0), toFloat64(elapsed), toFloat64(progress) \
     FROM (SELECT * FROM system.merges ORDER BY elapsed DESC LIMIT 100)";

/// One row of [`ACTIVITY_SQL`]: `kind` says which table it stands for.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct BlockerRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub kind: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub s1: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub s2: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub s3: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub s4: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub s5: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub s6: String,
    pub n1: u64,
    pub n2: u64,
    pub n3: u64,
    pub f1: f64,
    pub f2: f64,
}

/// Mutations (oldest first) and merges (longest first) of a combined answer.
pub fn split_activity(rows: Vec<BlockerRow>) -> (Vec<MutationRow>, Vec<MergeRow>) {
    let (mut mutations, mut merges) = (Vec::new(), Vec::new());
    for r in rows {
        if r.kind == "mutation" {
            mutations.push(MutationRow {
                database: r.s1,
                table: r.s2,
                mutation_id: r.s3,
                command: r.s4,
                parts_to_do: r.n1,
                latest_fail_reason: r.s5,
                latest_fail_error_code_name: r.s6,
                age_secs: r.n2,
            });
        } else {
            merges.push(MergeRow {
                database: r.s1,
                table: r.s2,
                elapsed: r.f1,
                progress: r.f2,
                is_mutation: r.n1 as u8,
                bytes: r.n2,
            });
        }
    }
    mutations.sort_by_key(|m| std::cmp::Reverse(m.age_secs));
    merges.sort_by(|a, b| b.elapsed.total_cmp(&a.elapsed));
    (mutations, merges)
}

/// The running backups/restores among a replica's recent `system.backups` rows (oldest first).
pub fn running(rows: Vec<crate::checks::backups::BackupRow>) -> Vec<RunningBackupRow> {
    let mut out: Vec<RunningBackupRow> = rows
        .into_iter()
        .filter(|r| r.status == "CREATING_BACKUP" || r.status == "RESTORING")
        .map(|r| RunningBackupRow {
            id: r.id,
            name: r.name,
            status: r.status,
            age_secs: r.age_secs,
            num_files: r.num_files,
            total_size: r.total_size,
        })
        .collect();
    out.sort_by_key(|b| std::cmp::Reverse(b.age_secs));
    out
}

/// Merges running longer than this (seconds) are reported.
pub const LONG_MERGE_SECS: f64 = 600.0;

#[derive(Debug, Clone, Row, Deserialize)]
pub struct MutationRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub database: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub table: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub mutation_id: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub command: String,
    pub parts_to_do: u64,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub latest_fail_reason: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub latest_fail_error_code_name: String,
    pub age_secs: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct MergeRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub database: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub table: String,
    pub elapsed: f64,
    pub progress: f64,
    pub is_mutation: u8,
    pub bytes: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct RunningBackupRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub id: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub name: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub status: String,
    pub age_secs: u64,
    pub num_files: u64,
    pub total_size: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct DdlRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub entry: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub status: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub initiator_host: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub query: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub host: String,
}

#[derive(Debug, Clone)]
pub struct BlockersProbe {
    pub replica: String,
    pub mutations: Result<Vec<MutationRow>, ProbeError>,
    pub merges: Result<Vec<MergeRow>, ProbeError>,
    pub backups: Result<Vec<RunningBackupRow>, ProbeError>,
    pub ddl: Result<Vec<DdlRow>, ProbeError>,
}

pub fn mutation_finding(replica: &str, m: &MutationRow) -> Finding {
    let subject = Subject::Mutation {
        replica: replica.into(),
        database: m.database.clone(),
        table: m.table.clone(),
        mutation_id: m.mutation_id.clone(),
    };
    let base = format!(
        "{replica}: mutation {} on {}.{} unfinished for {} s, {} parts to do",
        m.mutation_id, m.database, m.table, m.age_secs, m.parts_to_do
    );
    let f = if m.latest_fail_reason.is_empty() {
        Finding::new(CheckKind::Blockers, Severity::Warn, subject, base)
    } else {
        let code = if m.latest_fail_error_code_name.is_empty() {
            String::new()
        } else {
            format!(" ({})", m.latest_fail_error_code_name)
        };
        Finding::new(
            CheckKind::Blockers,
            Severity::Warn,
            subject,
            format!("{base}, keeps failing{code}"),
        )
        .flag(Flag::Failing)
        .evidence(format!(
            "latest_fail_reason: {}",
            first_line(&m.latest_fail_reason, 300)
        ))
    };
    f.cause(Cause::ConflictingOperation)
        .evidence(format!("command: {}", first_line(&m.command, 200)))
}

/// Judge every replica's blockers. DDL entries are cluster-wide and reported once.
pub fn evaluate(probes: &[BlockersProbe]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut ddl_seen: Vec<String> = Vec::new();
    for p in probes {
        let r = &p.replica;
        let mut count = 0usize;
        let before = out.len();
        match &p.backups {
            Ok(rows) => {
                for b in rows {
                    count += 1;
                    let what = if b.status == "RESTORING" {
                        "restore"
                    } else {
                        "backup"
                    };
                    out.push(
                        Finding::new(
                            CheckKind::Blockers,
                            Severity::Warn,
                            Subject::Backup {
                                replica: r.clone(),
                                id: b.id.clone(),
                                name: b.name.clone(),
                            },
                            format!(
                                "{r}: {what} {} running for {} s ({} files, {} bytes so far)",
                                b.name, b.age_secs, b.num_files, b.total_size
                            ),
                        )
                        .cause(Cause::ConflictingOperation)
                        .evidence(format!("id {}, status {}", b.id, b.status)),
                    );
                }
            }
            Err(e) => out.push(Finding::probe_failed(CheckKind::Blockers, r, e)),
        }
        if p.backups.is_err() {
            continue; // the replica did not answer: one finding is enough
        }
        match &p.mutations {
            Ok(rows) => {
                for m in rows {
                    count += 1;
                    out.push(mutation_finding(r, m));
                }
            }
            Err(e) => out.push(Finding::new(
                CheckKind::Blockers,
                Severity::Unknown,
                Subject::replica(r),
                format!("{r}: system.mutations: {e}"),
            )),
        }
        match &p.merges {
            Ok(rows) => {
                for m in rows
                    .iter()
                    .filter(|m| m.elapsed > LONG_MERGE_SECS || m.is_mutation == 1)
                {
                    count += 1;
                    let kind = if m.is_mutation == 1 {
                        "mutation merge"
                    } else {
                        "merge"
                    };
                    out.push(
                        Finding::new(
                            CheckKind::Blockers,
                            Severity::Warn,
                            Subject::Table {
                                replica: r.clone(),
                                database: m.database.clone(),
                                table: m.table.clone(),
                            },
                            format!(
                                "{r}: {kind} on {}.{} running {:.0} s, {:.0}% done",
                                m.database,
                                m.table,
                                m.elapsed,
                                m.progress * 100.0
                            ),
                        )
                        .cause(Cause::ConflictingOperation)
                        .evidence(format!("{} bytes compressed", m.bytes)),
                    );
                }
                let short_merges = rows
                    .iter()
                    .filter(|m| !(m.elapsed > LONG_MERGE_SECS || m.is_mutation == 1))
                    .count();
                if short_merges > 0 {
                    out.push(Finding::new(
                        CheckKind::Blockers,
                        Severity::Ok,
                        Subject::replica(r),
                        format!("{r}: {short_merges} short merges running"),
                    ));
                }
            }
            Err(e) => out.push(Finding::new(
                CheckKind::Blockers,
                Severity::Unknown,
                Subject::replica(r),
                format!("{r}: system.merges: {e}"),
            )),
        }
        match &p.ddl {
            Ok(rows) => {
                for d in rows {
                    if ddl_seen.contains(&d.entry) {
                        continue;
                    }
                    ddl_seen.push(d.entry.clone());
                    count += 1;
                    out.push(
                        Finding::new(
                            CheckKind::Blockers,
                            Severity::Warn,
                            Subject::Cluster,
                            format!(
                                "Distributed DDL {} {} on {} (from {})",
                                d.entry,
                                d.status.to_lowercase(),
                                d.host,
                                d.initiator_host
                            ),
                        )
                        .cause(Cause::ConflictingOperation)
                        .evidence(format!("query: {}", first_line(&d.query, 200))),
                    );
                }
            }
            // 139: no <distributed_ddl> in the server config: there is no queue to block on.
            Err(ProbeError::Server { code: 139, .. }) => {}
            Err(e) => out.push(Finding::new(
                CheckKind::Blockers,
                Severity::Unknown,
                Subject::replica(r),
                format!("{r}: distributed_ddl_queue: {e}"),
            )),
        }
        // "Nothing running" only when every probe answered: an error is never an [ok].
        if count == 0 && out.len() == before {
            out.push(Finding::new(
                CheckKind::Blockers,
                Severity::Ok,
                Subject::replica(r),
                format!("{r}: no running backups, mutations or long merges"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> BlockersProbe {
        BlockersProbe {
            replica: "r1".into(),
            mutations: Ok(vec![]),
            merges: Ok(vec![]),
            backups: Ok(vec![]),
            ddl: Ok(vec![]),
        }
    }

    fn mutation(fail: &str) -> MutationRow {
        MutationRow {
            database: "db".into(),
            table: "t".into(),
            mutation_id: "mutation_2.txt".into(),
            command: "UPDATE v = throwIf(v >= 0, 'boom') WHERE 1".into(),
            parts_to_do: 1,
            latest_fail_reason: fail.into(),
            latest_fail_error_code_name: if fail.is_empty() {
                String::new()
            } else {
                "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO".into()
            },
            age_secs: 30,
        }
    }

    #[test]
    fn blocker_table() {
        let backup = RunningBackupRow {
            id: "abc".into(),
            name: "Disk('backups', 'b')".into(),
            status: "CREATING_BACKUP".into(),
            age_secs: 5,
            num_files: 3,
            total_size: 1024,
        };
        let merge = MergeRow {
            database: "db".into(),
            table: "t".into(),
            elapsed: 900.0,
            progress: 0.5,
            is_mutation: 0,
            bytes: 1,
        };
        let ddl = DdlRow {
            entry: "query-0000000001".into(),
            status: "Active".into(),
            initiator_host: "ch1".into(),
            query: "ALTER TABLE x".into(),
            host: "ch2".into(),
        };
        let cases: Vec<(&str, BlockersProbe, Severity, &str)> = vec![
            (
                "idle",
                probe(),
                Severity::Ok,
                "r1: no running backups, mutations or long merges",
            ),
            (
                "backup",
                BlockersProbe {
                    backups: Ok(vec![backup]),
                    ..probe()
                },
                Severity::Warn,
                "r1: backup Disk('backups', 'b') running for 5 s (3 files, 1024 bytes so far)",
            ),
            (
                "failing mutation",
                BlockersProbe {
                    mutations: Ok(vec![mutation("Code: 395. boom")]),
                    ..probe()
                },
                Severity::Warn,
                "keeps failing (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO)",
            ),
            (
                "pending mutation",
                BlockersProbe {
                    mutations: Ok(vec![mutation("")]),
                    ..probe()
                },
                Severity::Warn,
                "unfinished for 30 s, 1 parts to do",
            ),
            (
                "long merge",
                BlockersProbe {
                    merges: Ok(vec![merge]),
                    ..probe()
                },
                Severity::Warn,
                "merge on db.t running 900 s, 50% done",
            ),
            (
                "ddl",
                BlockersProbe {
                    ddl: Ok(vec![ddl]),
                    ..probe()
                },
                Severity::Warn,
                "Distributed DDL query-0000000001 active on ch2",
            ),
            (
                "no ddl config",
                BlockersProbe {
                    ddl: Err(ProbeError::Server {
                        code: 139,
                        name: String::new(),
                        message: String::new(),
                    }),
                    ..probe()
                },
                Severity::Ok,
                "no running",
            ),
            (
                "down",
                BlockersProbe {
                    backups: Err(ProbeError::Refused),
                    ..probe()
                },
                Severity::Unknown,
                "no answer (connection refused)",
            ),
        ];
        for (name, p, sev, text) in cases {
            let f = evaluate(&[p]);
            assert_eq!(f[0].severity, sev, "{name}");
            assert!(f[0].summary.contains(text), "{name}: {}", f[0].summary);
            assert_eq!(
                f[0].causes.contains(&Cause::ConflictingOperation),
                sev == Severity::Warn,
                "{name}"
            );
        }
    }

    #[test]
    fn failing_mutation_carries_reason_and_flag() {
        let f = mutation_finding(
            "r1",
            &mutation("Code: 395. DB::Exception: boom: while executing"),
        );
        assert!(f.has(Flag::Failing));
        assert!(f.evidence.contains(
            &"latest_fail_reason: Code: 395. DB::Exception: boom: while executing".to_string()
        ));
    }

    #[test]
    fn ddl_entries_are_reported_once() {
        let ddl = DdlRow {
            entry: "q-1".into(),
            status: "Active".into(),
            initiator_host: "a".into(),
            query: "q".into(),
            host: "b".into(),
        };
        let p = BlockersProbe {
            ddl: Ok(vec![ddl]),
            ..probe()
        };
        let f = evaluate(&[
            p.clone(),
            BlockersProbe {
                replica: "r2".into(),
                ..p
            },
        ]);
        assert_eq!(f.iter().filter(|f| f.summary.contains("q-1")).count(), 1);
    }
}
