//! Recent backups: `system.backups` rows per replica; every failure's error classified with the
//! runbook's table. (system.backups lives in memory: it starts empty after a server restart.)
//! The SQL, the probe (`run`) and the pure `evaluate`.

use ::clickhouse::Row;
use serde::Deserialize;

use super::Cluster;
use crate::clickhouse::batch::Part;
use crate::domain::classify::{classify, ErrorKind};
use crate::domain::{CheckKind, Finding, Flag, ProbeError, Severity, Subject};

/// How many recent rows per replica are read.
pub const RECENT_LIMIT: usize = 20;

pub const RECENT_SQL: &str = "SELECT id, name, toString(status) AS status, error, \
     toUInt64(dateDiff('second', start_time, now())) AS age_secs, \
     toUInt64(if(end_time > start_time, dateDiff('second', start_time, end_time), 0)) AS duration_secs, \
     toUInt64(num_files) AS num_files, toUInt64(total_size) AS total_size \
     FROM system.backups ORDER BY start_time DESC LIMIT 20";

/// Failures older than this (and superseded ones) are shown as warnings, not as the current state.
pub const STALE_SECS: u64 = 7 * 86400;

#[derive(Debug, Clone, Row, Deserialize)]
pub struct BackupRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub id: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub name: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub status: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub error: String,
    pub age_secs: u64,
    pub duration_secs: u64,
    pub num_files: u64,
    pub total_size: u64,
}

#[derive(Debug, Clone)]
pub struct BackupsProbe {
    pub replica: String,
    pub rows: Result<Vec<BackupRow>, ProbeError>,
}

fn is_failure(status: &str) -> bool {
    matches!(status, "BACKUP_FAILED" | "RESTORE_FAILED")
}

fn is_success(status: &str) -> bool {
    matches!(status, "BACKUP_CREATED" | "RESTORED")
}

fn op(status: &str) -> &'static str {
    if status.starts_with("RESTOR") {
        "restore"
    } else {
        "backup"
    }
}

/// One failed row, classified.
pub fn failure_finding(replica: &str, row: &BackupRow, superseded: bool) -> Finding {
    let c = classify(&row.error);
    let stale = superseded || row.age_secs > STALE_SECS;
    let severity = match c.kind {
        ErrorKind::NameReuse if !stale => Severity::Warn,
        _ if stale => Severity::Warn,
        _ => Severity::Crit,
    };
    let code = c.code.map(|n| format!(" (code {n})")).unwrap_or_default();
    let mut f = Finding::new(
        CheckKind::Backups,
        severity,
        Subject::Backup {
            replica: replica.into(),
            id: row.id.clone(),
            name: row.name.clone(),
        },
        format!(
            "{replica}: {} {} failed {} s ago: {}{code}",
            op(&row.status),
            row.name,
            row.age_secs,
            c.kind.label()
        ),
    )
    .evidence(c.message.clone())
    .flag(Flag::BackupError(c.kind));
    if c.shared_destination {
        f = f.flag(Flag::DestinationNotShared);
    }
    if c.code == Some(599) {
        f = f.flag(Flag::BackupNotFound);
    }
    if let Some(detail) = c.detail {
        f = f.flag(Flag::BackupDetail(detail));
    }
    if let Some(host) = &c.host {
        f = f.evidence(format!("names host {host}"));
    }
    if row.id.starts_with("internal-") {
        f = f.evidence("part of an ON CLUSTER operation started on another host");
    }
    if superseded {
        f = f.evidence(format!(
            "a later {} on {replica} succeeded",
            op(&row.status)
        ));
    }
    // The kind's causes first; a second plausible kind's (e.g. DDL during the backup: schema,
    // also a conflicting operation) count as alternatives.
    for cause in c
        .kind
        .causes()
        .iter()
        .chain(c.also.map(|a| a.causes()).unwrap_or(&[]))
    {
        f = f.cause(*cause);
    }
    f
}

/// Judge every replica: each failed or cancelled row, then one [ok] line of what went well.
pub fn evaluate(probes: &[BackupsProbe]) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in probes {
        let r = &p.replica;
        let rows = match &p.rows {
            Ok(rows) => rows,
            Err(e) => {
                out.push(Finding::probe_failed(CheckKind::Backups, r, e));
                continue;
            }
        };
        let failures = rows.iter().filter(|row| is_failure(&row.status)).count();
        out.extend(row_findings(r, rows));
        out.extend(summary(r, rows, failures));
    }
    out
}

/// Failed rows (classified) and cancelled ones, newest first.
fn row_findings(r: &str, rows: &[BackupRow]) -> Vec<Finding> {
    let mut out = Vec::new();
    // Rows are newest first: a failure is superseded by any newer success of the same kind.
    for (i, row) in rows.iter().enumerate() {
        if is_failure(&row.status) {
            let superseded = rows[..i]
                .iter()
                .any(|newer| is_success(&newer.status) && op(&newer.status) == op(&row.status));
            out.push(failure_finding(r, row, superseded));
        } else if row.status.ends_with("_CANCELLED") {
            out.push(Finding::new(
                CheckKind::Backups,
                Severity::Warn,
                Subject::Backup {
                    replica: r.to_string(),
                    id: row.id.clone(),
                    name: row.name.clone(),
                },
                format!(
                    "{r}: {} {} was cancelled {} s ago",
                    op(&row.status),
                    row.name,
                    row.age_secs
                ),
            ));
        }
    }
    out
}

/// The replica's last success, what runs now, or that it has no history; none when all there
/// is to say is its failures.
fn summary(r: &str, rows: &[BackupRow], failures: usize) -> Option<Finding> {
    let mut parts = Vec::new();
    if let Some(ok) = rows.iter().find(|row| is_success(&row.status)) {
        parts.push(format!(
            "last {} {} {} {} s ago ({} files, {} bytes, took {} s)",
            op(&ok.status),
            ok.name,
            if ok.status == "RESTORED" {
                "restored"
            } else {
                "created"
            },
            ok.age_secs,
            ok.num_files,
            ok.total_size,
            ok.duration_secs
        ));
    }
    let running = rows
        .iter()
        .filter(|row| matches!(row.status.as_str(), "CREATING_BACKUP" | "RESTORING"))
        .count();
    if running > 0 {
        parts.push(format!("{running} in progress"));
    }
    if rows.is_empty() {
        parts.push("no backups or restores since the server started".into());
    }
    if failures > 0 && parts.is_empty() {
        return None;
    }
    let text = if parts.is_empty() {
        format!("{} recent rows", rows.len())
    } else {
        parts.join("; ")
    };
    Some(Finding::new(
        CheckKind::Backups,
        Severity::Ok,
        Subject::replica(r),
        format!("{r}: {text}"),
    ))
}

/// The recent backups go in the round's batch.
pub(super) fn batched() -> Vec<Part> {
    vec![Part::new(RECENT_SQL, &[])]
}

/// The probe: each replica's recent `system.backups` rows (shared with the blockers check, one
/// query per round), judged.
pub(super) async fn run(cl: &Cluster) -> Vec<Finding> {
    let limit = cl.backups_limit;
    let probes = cl
        .per_replica(|c| async move {
            let rows = c.fetch_shared(RECENT_SQL).await;
            BackupsProbe {
                replica: c.name.clone(),
                rows: rows.map(|mut r: Vec<BackupRow>| {
                    r.truncate(limit);
                    r
                }),
            }
        })
        .await;
    evaluate(&probes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Cause;

    fn row(status: &str, error: &str, age: u64) -> BackupRow {
        BackupRow {
            id: "id-1".into(),
            name: "Disk('backups', 'b1')".into(),
            status: status.into(),
            error: error.into(),
            age_secs: age,
            duration_secs: 2,
            num_files: 10,
            total_size: 2048,
        }
    }

    #[test]
    fn classified_failures() {
        let cases: Vec<(&str, Severity, &str, &[Cause])> = vec![
            ("Code: 655. DB::Exception: Lost connection to host ch%2D2:9000. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", Severity::Crit, "host lost or offline (code 655)", &[Cause::ReplicaOffline, Cause::Keeper]),
            ("Code: 587. DB::Exception: Concurrent backups are not allowed. (CONCURRENT_ACCESS_NOT_SUPPORTED)", Severity::Crit, "concurrent operation or Keeper contention (code 587)", &[Cause::ConflictingOperation]),
            ("Code: 598. DB::Exception: Backup Disk('backups', 'b1') already exists. (BACKUP_ALREADY_EXISTS)", Severity::Warn, "backup name reused (not a sync problem) (code 598)", &[]),
            ("Code: 999. Coordination::Exception: Session expired. (KEEPER_EXCEPTION)", Severity::Crit, "Keeper error (code 999)", &[Cause::Keeper]),
            ("Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED)", Severity::Crit, "timeout / host stalled (code 159)", &[Cause::Timeout]),
            ("Code: 36. DB::Exception: Disk ''nope'' is not allowed for backups, see the 'backups.allowed_disk' configuration parameter. (BAD_ARGUMENTS)", Severity::Crit, "backup destination not allowed, missing or not shared (code 36)", &[]),
        ];
        for (error, sev, text, causes) in cases {
            let f = failure_finding("r1", &row("BACKUP_FAILED", error, 60), false);
            assert_eq!(f.severity, sev, "{error}");
            assert!(f.summary.ends_with(text), "{}", f.summary);
            assert_eq!(f.causes, causes, "{error}");
        }
        let f = failure_finding(
            "r1",
            &row(
                "BACKUP_FAILED",
                "Code: 655. DB::Exception: Lost connection to host ch%2D2:9000.",
                60,
            ),
            false,
        );
        assert!(f.evidence.contains(&"names host ch-2:9000".to_string()));
    }

    #[test]
    fn second_kinds_and_missing_backups() {
        // DDL during the backup: a schema problem first, a conflicting operation as the alternative.
        let f = failure_finding(
            "r1",
            &row("BACKUP_FAILED", "Code: 663. DB::Exception: Table default.tbl was dropped during scanning. (INCONSISTENT_METADATA_FOR_BACKUP)", 60),
            false,
        );
        assert!(
            f.causes.contains(&Cause::ConflictingOperation),
            "{:?}",
            f.causes
        );
        let f = failure_finding(
            "r1",
            &row("RESTORE_FAILED", "Code: 599. DB::Exception: Backup Disk('backups', 'x') not found. (BACKUP_NOT_FOUND)", 60),
            false,
        );
        assert!(f.has(Flag::BackupNotFound));
    }

    #[test]
    fn superseded_and_stale_failures_are_warnings() {
        let rows = vec![
            row("BACKUP_CREATED", "", 10),
            row("BACKUP_FAILED", "Code: 159. x", 100),
        ];
        let f = evaluate(&[BackupsProbe {
            replica: "r1".into(),
            rows: Ok(rows),
        }]);
        assert_eq!(f[0].severity, Severity::Warn);
        assert!(f[0]
            .evidence
            .iter()
            .any(|e| e.contains("later backup on r1 succeeded")));
        assert!(f[1]
            .summary
            .starts_with("r1: last backup Disk('backups', 'b1') created 10 s ago"));
        let old = failure_finding(
            "r1",
            &row("RESTORE_FAILED", "Code: 159. x", STALE_SECS + 1),
            false,
        );
        assert_eq!(old.severity, Severity::Warn);
        assert!(old.summary.contains("restore"));
    }

    #[test]
    fn empty_and_unreachable() {
        let f = evaluate(&[
            BackupsProbe {
                replica: "r1".into(),
                rows: Ok(vec![]),
            },
            BackupsProbe {
                replica: "r2".into(),
                rows: Err(ProbeError::Timeout { after_ms: 2000 }),
            },
        ]);
        assert_eq!(
            f[0].summary,
            "r1: no backups or restores since the server started"
        );
        assert_eq!(f[0].severity, Severity::Ok);
        assert_eq!(f[1].severity, Severity::Unknown);
    }
}
