//! Blocking operations: unfinished mutations, merges, running BACKUP/RESTORE, the distributed DDL
//! queue. The SQL (one combined query, separate ones for older servers), the probe (`run`) and the
//! pure `evaluate`.

use std::collections::VecDeque;

use ::clickhouse::{Row, RowOwned, RowRead};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use super::backups::{BackupRow, RECENT_SQL};
use super::{fetch, Cluster, Mode};
use crate::clickhouse::batch::Part;
use crate::clickhouse::ReplicaClient;
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

/// Unfinished distributed DDL entries, one row per entry: the queue has a row per entry and host,
/// so at 300 hosts one stuck entry filled a per-row limit and hid every later one. `host` names
/// a host still at it (an active one if any) and how many more. (Inner aliases differ from the
/// outer names: ClickHouse resolves an alias in WHERE before the column.)
pub const DDL_QUEUE_SQL: &str = "SELECT entry, \
     if(countIf(s = 'Active') > 0, 'Active', 'Inactive') AS status, \
     any(i) AS initiator_host, any(q) AS query, \
     concat(if(countIf(s = 'Active') > 0, anyIf(h, s = 'Active'), any(h)), \
     if(count() > 1, concat(' and ', toString(count() - 1), ' more'), '')) AS host \
     FROM (SELECT entry, toString(status) AS s, initiator_host AS i, query AS q, host AS h \
     FROM system.distributed_ddl_queue WHERE status IN ('Active', 'Inactive')) \
     GROUP BY entry ORDER BY entry LIMIT 100";

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
pub fn running(rows: Vec<BackupRow>) -> Vec<RunningBackupRow> {
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
    /// None: not asked of this replica (see [`DDL_WANTED`]).
    pub ddl: Option<Result<Vec<DdlRow>, ProbeError>>,
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
        let backups = match &p.backups {
            Ok(rows) => rows,
            Err(e) => {
                // The replica did not answer: one finding is enough.
                out.push(Finding::probe_failed(CheckKind::Blockers, r, e));
                continue;
            }
        };
        let mut found: Vec<Finding> = backups.iter().map(|b| backup_finding(r, b)).collect();
        match &p.mutations {
            Ok(rows) => found.extend(rows.iter().map(|m| mutation_finding(r, m))),
            Err(e) => found.push(unknown(r, "system.mutations", e)),
        }
        match &p.merges {
            Ok(rows) => found.extend(merge_findings(r, rows)),
            Err(e) => found.push(unknown(r, "system.merges", e)),
        }
        match &p.ddl {
            None => {}
            Some(Ok(rows)) => found.extend(ddl_findings(rows, &mut ddl_seen)),
            // 139: no <distributed_ddl> in the server config: there is no queue to block on.
            Some(Err(ProbeError::Server { code: 139, .. })) => {}
            Some(Err(e)) => found.push(unknown(r, "distributed_ddl_queue", e)),
        }
        // "Nothing running" only when every probe answered: an error is never an [ok].
        if found.is_empty() {
            found.push(Finding::new(
                CheckKind::Blockers,
                Severity::Ok,
                Subject::replica(r),
                format!("{r}: no running backups, mutations or long merges"),
            ));
        }
        out.extend(found);
    }
    out
}

/// A part of the probe that failed on an answering replica.
fn unknown(r: &str, table: &str, e: &ProbeError) -> Finding {
    Finding::new(
        CheckKind::Blockers,
        Severity::Unknown,
        Subject::replica(r),
        format!("{r}: {table}: {e}"),
    )
}

/// A backup or restore running on the replica.
fn backup_finding(r: &str, b: &RunningBackupRow) -> Finding {
    let what = if b.status == "RESTORING" {
        "restore"
    } else {
        "backup"
    };
    Finding::new(
        CheckKind::Blockers,
        Severity::Warn,
        Subject::Backup {
            replica: r.to_string(),
            id: b.id.clone(),
            name: b.name.clone(),
        },
        format!(
            "{r}: {what} {} running for {} s ({} files, {} bytes so far)",
            b.name, b.age_secs, b.num_files, b.total_size
        ),
    )
    .cause(Cause::ConflictingOperation)
    .evidence(format!("id {}, status {}", b.id, b.status))
}

/// Long merges and mutation merges one by one; short merges counted in one [ok] line.
fn merge_findings(r: &str, rows: &[MergeRow]) -> Vec<Finding> {
    let blocking = |m: &&MergeRow| m.elapsed > LONG_MERGE_SECS || m.is_mutation == 1;
    let mut out: Vec<Finding> = rows
        .iter()
        .filter(blocking)
        .map(|m| {
            let kind = if m.is_mutation == 1 {
                "mutation merge"
            } else {
                "merge"
            };
            Finding::new(
                CheckKind::Blockers,
                Severity::Warn,
                Subject::Table {
                    replica: r.to_string(),
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
            .evidence(format!("{} bytes compressed", m.bytes))
        })
        .collect();
    let short_merges = rows.len() - out.len();
    if short_merges > 0 {
        out.push(Finding::new(
            CheckKind::Blockers,
            Severity::Ok,
            Subject::replica(r),
            format!("{r}: {short_merges} short merges running"),
        ));
    }
    out
}

/// Distributed DDL entries not yet in `seen` (every replica shows the same queue).
fn ddl_findings(rows: &[DdlRow], seen: &mut Vec<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    for d in rows {
        if seen.contains(&d.entry) {
            continue;
        }
        seen.push(d.entry.clone());
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
    out
}

/// Mutations and merges, and the backups (shared with the backups check), go in the round's
/// batch; the DDL queue lives in Keeper and goes alone.
pub(super) fn batched() -> Vec<Part> {
    vec![Part::new(ACTIVITY_SQL, &[]), Part::new(RECENT_SQL, &[])]
}

/// Answers of the distributed DDL queue wanted per round. The queue lives in Keeper and every
/// replica shows the same one: two answers tell it (one replica's Keeper session may be the
/// trouble), where asking every replica read the whole queue from a sick Keeper once per replica.
pub const DDL_WANTED: usize = 2;

/// Replicas asked for the DDL queue at most per round: one that cannot tell (no
/// `<distributed_ddl>` in its config, its Keeper session lost, a refusal) hands its turn to the
/// next replica that answered.
pub const DDL_TRIES: usize = 4;

/// The probe: running backups, mutations and merges on every replica, the DDL queue from the
/// replicas that answered those, in the order they did (see [`ddl_asks`]); judged.
pub(super) async fn run(cl: &Cluster) -> Vec<Finding> {
    let mode = cl.mode;
    let (answered, queue) = mpsc::unbounded_channel::<ReplicaClient>();
    // The closure holds the last sender: the queue ends when every replica's probe has.
    let probes = cl.per_replica(move |c| {
        let answered = answered.clone();
        async move {
            // Running backups come from the rows the backups check reads too (one query).
            let backups = async { c.fetch_shared::<BackupRow>(RECENT_SQL).await.map(running) };
            let ((mutations, merges), backups) = join_in!(mode; activity(&c, mode), backups);
            if backups.is_ok() && mutations.is_ok() {
                // Gone once enough answers came: nobody listens any more.
                let _ = answered.send(c.clone());
            }
            BlockersProbe {
                replica: c.name.clone(),
                mutations,
                merges,
                backups,
                ddl: None,
            }
        }
    });
    // Timed as the replica's probe: a replica slow to read the queue is the check's critical path.
    let ask = |c: ReplicaClient| async move {
        let r = super::timed(c.name.clone(), fetch(&c, DDL_QUEUE_SQL)).await;
        (c.name.clone(), r)
    };
    let (mut probes, ddl) = join_in!(mode; probes, ddl_asks(queue, ask, cl.deadline / 4));
    for (name, r) in ddl {
        if let Some(p) = probes.iter_mut().find(|p| p.replica == name) {
            p.ddl = Some(r);
        }
    }
    evaluate(&probes)
}

/// A replica and its answer to the DDL queue.
type DdlAnswer = (String, Result<Vec<DdlRow>, ProbeError>);

/// The DDL queue asked of replicas as they answer: [`DDL_WANTED`] at once, at most [`DDL_TRIES`].
/// One that cannot tell hands its turn to the next; one still silent after `patience` stops
/// counting (the next is asked beside it: its Keeper session may be the slow one). Once enough
/// told, asks still out are dropped. A timeout ends the asking: the deadline is spent.
async fn ddl_asks<C, F, Fut>(
    mut queue: mpsc::UnboundedReceiver<C>,
    ask: F,
    patience: Duration,
) -> Vec<DdlAnswer>
where
    F: Fn(C) -> Fut,
    Fut: std::future::Future<Output = DdlAnswer>,
{
    let mut answers = Vec::new();
    let mut asking = FuturesUnordered::new();
    // Asks that still count toward the wanted answers: (ask number, when it was sent).
    let mut counted: VecDeque<(usize, Instant)> = VecDeque::new();
    let (mut told, mut tried, mut open) = (0, 0, true);
    loop {
        let more = open && told + counted.len() < DDL_WANTED && tried < DDL_TRIES;
        if told >= DDL_WANTED || (!more && asking.is_empty()) {
            return answers;
        }
        let impatient = counted.front().map(|&(_, at)| at + patience);
        tokio::select! {
            next = queue.recv(), if more => match next {
                Some(c) => {
                    let n = tried;
                    tried += 1;
                    counted.push_back((n, Instant::now()));
                    let answer = ask(c);
                    asking.push(async move { (n, answer.await) });
                }
                None => open = false,
            },
            Some((n, (name, r))) = asking.next(), if !asking.is_empty() => {
                counted.retain(|&(k, _)| k != n);
                match &r {
                    Ok(_) => told += 1,
                    Err(ProbeError::Timeout { .. }) => tried = DDL_TRIES,
                    Err(_) => {}
                }
                answers.push((name, r));
            }
            _ = tokio::time::sleep_until(impatient.unwrap_or_else(Instant::now)), if impatient.is_some() => {
                counted.pop_front();
            }
        }
    }
}

type Activity = (
    Result<Vec<MutationRow>, ProbeError>,
    Result<Vec<MergeRow>, ProbeError>,
);

/// Mutations and merges in one round trip; on a server error (an older server, no distributed
/// DDL) each is asked on its own, so that one missing table hides nothing else.
async fn activity(c: &ReplicaClient, mode: Mode) -> Activity {
    match fetch::<BlockerRow>(c, ACTIVITY_SQL).await {
        Ok(rows) => {
            let (m, g) = split_activity(rows);
            (Ok(m), Ok(g))
        }
        Err(ProbeError::Server { .. }) => join_in!(mode;
            fetch_compat(c, MUTATIONS_SQL, MUTATIONS_SQL_COMPAT),
            fetch(c, MERGES_SQL)
        ),
        Err(e) => (Err(e.clone()), Err(e)),
    }
}

/// `sql`, or `older` when the server does not know one of the columns (UNKNOWN_IDENTIFIER, 47).
async fn fetch_compat<T: RowOwned + RowRead>(
    c: &ReplicaClient,
    sql: &str,
    older: &str,
) -> Result<Vec<T>, ProbeError> {
    match c.fetch(sql, &[]).await {
        Err(ProbeError::Server { code: 47, .. }) => c.fetch(older, &[]).await,
        r => r,
    }
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
            ddl: Some(Ok(vec![])),
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

    /// The first finding of `p` alone: its severity and a part of its summary; a warning names
    /// a conflicting operation, nothing else does.
    fn first_is(name: &str, p: BlockersProbe, sev: Severity, text: &str) {
        let f = evaluate(&[p]);
        assert_eq!(f[0].severity, sev, "{name}");
        assert!(f[0].summary.contains(text), "{name}: {}", f[0].summary);
        assert_eq!(
            f[0].causes.contains(&Cause::ConflictingOperation),
            sev == Severity::Warn,
            "{name}"
        );
    }

    #[test]
    fn idle_and_unanswered() {
        let idle = "r1: no running backups, mutations or long merges";
        first_is("idle", probe(), Severity::Ok, idle);
        let no_ddl_config = BlockersProbe {
            ddl: Some(Err(ProbeError::Server {
                code: 139,
                name: String::new(),
                message: String::new(),
            })),
            ..probe()
        };
        first_is("no ddl config", no_ddl_config, Severity::Ok, "no running");
        let down = BlockersProbe {
            backups: Err(ProbeError::Refused),
            ..probe()
        };
        let refused = "no answer (connection refused)";
        first_is("down", down, Severity::Unknown, refused);
    }

    #[test]
    fn running_backup() {
        let backup = RunningBackupRow {
            id: "abc".into(),
            name: "Disk('backups', 'b')".into(),
            status: "CREATING_BACKUP".into(),
            age_secs: 5,
            num_files: 3,
            total_size: 1024,
        };
        let p = BlockersProbe {
            backups: Ok(vec![backup]),
            ..probe()
        };
        let text = "r1: backup Disk('backups', 'b') running for 5 s (3 files, 1024 bytes so far)";
        first_is("backup", p, Severity::Warn, text);
    }

    #[test]
    fn unfinished_mutations() {
        let failing = BlockersProbe {
            mutations: Ok(vec![mutation("Code: 395. boom")]),
            ..probe()
        };
        let text = "keeps failing (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO)";
        first_is("failing mutation", failing, Severity::Warn, text);
        let pending = BlockersProbe {
            mutations: Ok(vec![mutation("")]),
            ..probe()
        };
        let text = "unfinished for 30 s, 1 parts to do";
        first_is("pending mutation", pending, Severity::Warn, text);
    }

    #[test]
    fn long_merge_and_ddl() {
        let merge = MergeRow {
            database: "db".into(),
            table: "t".into(),
            elapsed: 900.0,
            progress: 0.5,
            is_mutation: 0,
            bytes: 1,
        };
        let p = BlockersProbe {
            merges: Ok(vec![merge]),
            ..probe()
        };
        let text = "merge on db.t running 900 s, 50% done";
        first_is("long merge", p, Severity::Warn, text);
        let ddl = DdlRow {
            entry: "query-0000000001".into(),
            status: "Active".into(),
            initiator_host: "ch1".into(),
            query: "ALTER TABLE x".into(),
            host: "ch2".into(),
        };
        let p = BlockersProbe {
            ddl: Some(Ok(vec![ddl])),
            ..probe()
        };
        let text = "Distributed DDL query-0000000001 active on ch2";
        first_is("ddl", p, Severity::Warn, text);
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
            ddl: Some(Ok(vec![ddl])),
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

    /// A replica not asked for the DDL queue says nothing about it; one asked that failed says
    /// the queue is unknown there.
    #[test]
    fn the_ddl_queue_is_judged_only_where_it_was_asked() {
        let quiet = BlockersProbe {
            ddl: None,
            ..probe()
        };
        first_is("not asked", quiet, Severity::Ok, "no running");
        let failed = BlockersProbe {
            ddl: Some(Err(ProbeError::Timeout { after_ms: 2000 })),
            ..probe()
        };
        let f = evaluate(&[failed]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Unknown);
        assert!(
            f[0].summary.contains("distributed_ddl_queue"),
            "{}",
            f[0].summary
        );
    }

    /// How long a replica takes to answer the DDL queue (ms), and its answer.
    type Canned = (u64, Result<Vec<DdlRow>, ProbeError>);

    /// Asks that answer after `ms` with `r` (by replica name), in the order the replicas answered.
    async fn asks(order: &[&str], answer: fn(&str) -> Canned) -> Vec<String> {
        asks_with(order, answer, 1000).await
    }

    async fn asks_with(
        order: &[&str],
        answer: fn(&str) -> Canned,
        patience_ms: u64,
    ) -> Vec<String> {
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        for r in order {
            tx.send(r.to_string()).unwrap();
        }
        drop(tx);
        let ask = |r: String| async move {
            let (ms, res) = answer(&r);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            (r, res)
        };
        let patience = Duration::from_millis(patience_ms);
        ddl_asks(rx, ask, patience)
            .await
            .into_iter()
            .map(|(r, _)| r)
            .collect()
    }

    fn no_config() -> ProbeError {
        ProbeError::Server {
            code: 139,
            name: String::new(),
            message: String::new(),
        }
    }

    /// Two answers are enough; replicas that cannot tell hand their turn on, up to four asks; a
    /// timeout ends the asking.
    #[tokio::test]
    async fn the_ddl_queue_is_asked_until_two_replicas_tell_it() {
        let all = ["r1", "r2", "r3", "r4", "r5", "r6"];
        assert_eq!(asks(&all, |_| (5, Ok(vec![]))).await, ["r1", "r2"]);
        let first_two_fail = |r: &str| match r {
            "r1" => (5, Err(no_config())),
            "r2" => (8, Err(ProbeError::Refused)),
            _ => (5, Ok(vec![])),
        };
        assert_eq!(asks(&all, first_two_fail).await, ["r1", "r2", "r3", "r4"]);
        let none_tells = |_: &str| (5, Err(no_config()));
        assert_eq!(asks(&all, none_tells).await.len(), DDL_TRIES);
        let timed_out = |r: &str| match r {
            "r1" => (5, Err(ProbeError::Timeout { after_ms: 2000 })),
            _ => (50, Err(no_config())),
        };
        // r1's timeout spends the turns: r2 cannot tell, and nobody asks after it.
        assert_eq!(asks(&all, timed_out).await, ["r1", "r2"]);
        assert!(asks(&[], |_| (5, Ok(vec![]))).await.is_empty());
        // The first two are slow to read the queue: after the patience the next two are asked
        // beside them, tell it, and the slow asks are dropped.
        let first_two_slow = |r: &str| match r {
            "r1" | "r2" => (400, Ok(vec![])),
            _ => (5, Ok(vec![])),
        };
        assert_eq!(asks_with(&all, first_two_slow, 20).await, ["r3", "r4"]);
    }
}
