//! The per-replica backup: planned as `Planned::new` (its name on the disk is also its id),
//! `execute` (as the operator, ASYNC), `look` (its `system.backups` row), `follow` (looks until it
//! ends), `run` (send and follow) and `reconcile` (its end, after a restart of chops).

use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::Deserialize;

use super::{Ending, OnProgress, Planned, Sending};
use crate::clickhouse::ReplicaClient;
use crate::domain::classify;
use crate::domain::ProbeError;
use crate::store::FinalState;

/// A backup's row, by id.
pub const FOLLOW_SQL: &str =
    "SELECT toString(status) AS status, error, toUInt64(num_files) AS num_files, \
     toUInt64(total_size) AS total_size, toUInt64(bytes_read) AS bytes_read, \
     toUInt64(greatest(dateDiff('second', start_time, now()), 0)) AS elapsed_secs \
     FROM system.backups WHERE id = ?";

/// How long the server has been up (to tell a lost `system.backups` row from a missing one).
pub const UPTIME_SQL: &str = "SELECT uptime() AS uptime";

#[derive(Debug, Clone, Row, Deserialize)]
pub struct BackupRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub status: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub error: String,
    pub num_files: u64,
    pub total_size: u64,
    pub bytes_read: u64,
    pub elapsed_secs: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
struct Uptime {
    uptime: u64,
}

/// Start it (ASYNC: returns at once with the id we chose).
pub async fn execute(
    op: &ReplicaClient,
    statement: &str,
    query_id: &str,
) -> Result<(), ProbeError> {
    op.run(statement, Duration::from_secs(60), query_id).await
}

/// Where a followed backup stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    Running(BackupProgress),
    Created(BackupProgress),
    /// Failed or cancelled: the status, the error's first line and what it means.
    Failed {
        status: String,
        error: String,
        meaning: String,
    },
    /// No row for the id: `system.backups` is in memory, so a restarted server forgets it.
    Lost {
        uptime_secs: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupProgress {
    pub status: String,
    pub num_files: u64,
    pub total_size: u64,
    pub bytes_read: u64,
    pub elapsed_secs: u64,
}

impl BackupProgress {
    /// Amounts, not a percentage: `system.backups` has no expected total.
    pub fn line(&self) -> String {
        format!(
            "{}: {} files, {} written, {} read, {} s",
            self.status,
            self.num_files,
            bytes(self.total_size),
            bytes(self.bytes_read),
            self.elapsed_secs
        )
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One look at the backup's row (read-only account).
pub async fn look(client: &ReplicaClient, id: &str) -> Result<Followed, ProbeError> {
    let rows: Vec<BackupRow> = client.fetch(FOLLOW_SQL, &[id]).await?;
    let Some(r) = rows.into_iter().next() else {
        let uptime = client
            .fetch::<Uptime>(UPTIME_SQL, &[])
            .await
            .ok()
            .and_then(|u| u.first().map(|u| u.uptime));
        return Ok(Followed::Lost {
            uptime_secs: uptime,
        });
    };
    let p = BackupProgress {
        status: r.status.clone(),
        num_files: r.num_files,
        total_size: r.total_size,
        bytes_read: r.bytes_read,
        elapsed_secs: r.elapsed_secs,
    };
    Ok(match r.status.as_str() {
        "BACKUP_CREATED" => Followed::Created(p),
        "BACKUP_FAILED" | "BACKUP_CANCELLED" => {
            let c = classify::classify(&r.error);
            Followed::Failed {
                status: r.status,
                error: crate::domain::text::first_line(&c.message, 300),
                meaning: c.kind.label().to_string(),
            }
        }
        _ => Followed::Running(p),
    })
}

/// Send the backup (ASYNC) and follow it by its id until it ends.
pub(super) async fn run(s: &Sending<'_>, every: Duration, progress: OnProgress<'_>) -> Ending {
    let sent = Instant::now();
    let replica = s.planned.action.replica();
    // Only the server's own refusal means it did not start: after a timeout or a dropped
    // connection it may well run, so it is followed by its id.
    if let Err(e @ (ProbeError::Server { .. } | ProbeError::Auth { .. })) =
        execute(&s.op, &s.planned.statement, &s.query_id).await
    {
        let why = format!("the server refused: {e}");
        return Ending::new(FinalState::Failed, why).sent(&s.query_id);
    }
    progress(&format!("started on {replica}"));
    let id = s.planned.backup_id.as_deref().unwrap_or_default();
    let (state, summary) = follow(s.replica, id, Some(sent), every, progress).await;
    Ending::new(state, summary).sent(&s.query_id)
}

/// After a restart of chops: the backup's end, looked up by its id.
pub(super) async fn reconcile(
    replica: &ReplicaClient,
    planned: &Planned,
    query_id: &str,
    every: Duration,
) -> Ending {
    let mut quiet = |_: &str| {};
    let id = planned.backup_id.as_deref().unwrap_or_default();
    let (state, summary) = follow(replica, id, None, every, &mut quiet).await;
    Ending::new(state, format!("after a restart of chops: {summary}")).sent(query_id)
}

/// Look at the backup's row until it ends (looks soon, then every `every` at most); the final
/// state and one line. `sent`: when this process sent it (None: before a restart of chops).
pub(super) async fn follow(
    replica: &ReplicaClient,
    id: &str,
    sent: Option<Instant>,
    every: Duration,
    progress: OnProgress<'_>,
) -> (FinalState, String) {
    let name = &replica.name;
    let mut misses = 0;
    // Look soon, then less often: a small backup ends in a second, a big one takes hours.
    let mut wait = Duration::from_millis(200);
    loop {
        match look(replica, id).await {
            Ok(Followed::Running(p)) => {
                misses = 0;
                progress(&p.line());
            }
            Ok(Followed::Created(p)) => {
                return (
                    FinalState::Succeeded,
                    format!("backup created on {name}: {}", p.line()),
                )
            }
            Ok(Followed::Failed {
                status,
                error,
                meaning,
            }) => {
                let why = format!("{status} on {name}: {error} ({meaning})");
                return (FinalState::Failed, why);
            }
            Ok(Followed::Lost { uptime_secs }) => {
                let since = sent.map(|t| t.elapsed().as_secs());
                return (FinalState::Failed, lost(name, uptime_secs, since));
            }
            Err(e) => {
                // A replica that stops answering while it backs up: say so, keep looking a while.
                misses += 1;
                progress(&format!("no answer from {name} ({e})"));
                if misses >= 20 {
                    let why = format!("lost sight of the backup: {name} stopped answering ({e})");
                    return (FinalState::Failed, why);
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(every);
    }
}

/// Why a backup's row is gone: a restarted server (up for less time than since it was sent)
/// forgets `system.backups`, which lives in memory.
fn lost(replica: &str, uptime_secs: Option<u64>, since: Option<u64>) -> String {
    match (uptime_secs, since) {
        (Some(u), Some(since)) if u < since => format!("{replica} has no row for it and has been up only {u} s: the server restarted, and system.backups is in memory — look for the backup on the disk"),
        (Some(u), None) => format!("{replica} has no row for it (up {u} s): system.backups is in memory, so a restart of the server forgets it — look for the backup on the disk"),
        _ => format!("{replica} has no row for it in system.backups"),
    }
}
