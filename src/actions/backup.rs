//! The per-replica backup: planned as `Planned::new` (its name on the disk is also its id),
//! `execute` (as the operator, ASYNC), `look` (its `system.backups` row), `follow` (looks until it
//! ends, or for as long as it may), `run` (send and follow) and `reconcile` (its end, once the
//! process that sent it is gone). A backup is never recorded failed for want of an answer: one
//! still running, or on a replica that does not answer, is left running for a later look.

use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::Deserialize;
use tokio::sync::watch;

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

/// Send the backup (ASYNC) and follow it by its id until it ends — or, past `follow_for` (or
/// once its replica stops answering), leave it running: its end is recorded later.
pub(super) async fn run(
    s: &Sending<'_>,
    every: Duration,
    follow_for: Option<Duration>,
    progress: OnProgress<'_>,
) -> Ending {
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
    let until = Until {
        deadline: follow_for.map(|d| sent + d),
        stop: None,
    };
    match follow(s.replica, id, Some(sent), every, until, progress).await {
        Seen::Ended(state, summary) => Ending::new(state, summary),
        Seen::Running(last) => Ending::new(
            FinalState::Running,
            format!(
                "on {replica} after {} s ({last}); its end is recorded by the next `chops act` \
                 or start of `chops serve` — see `chops audit`",
                sent.elapsed().as_secs()
            ),
        ),
    }
    .sent(&s.query_id)
}

/// After its process stopped: the backup's end, looked up by its id; None while it still runs
/// (or its replica does not answer) when `until` comes — it is left for a later start.
pub(super) async fn reconcile(
    replica: &ReplicaClient,
    planned: &Planned,
    query_id: &str,
    every: Duration,
    until: Until,
) -> Option<Ending> {
    let mut quiet = |_: &str| {};
    let id = planned.backup_id.as_deref().unwrap_or_default();
    match follow(replica, id, None, every, until, &mut quiet).await {
        Seen::Ended(state, summary) => {
            Some(Ending::new(state, format!("after a restart of chops: {summary}")).sent(query_id))
        }
        Seen::Running(_) => None,
    }
}

/// When following stops without an end.
pub(super) struct Until {
    /// No look starts after this.
    pub deadline: Option<Instant>,
    /// Turns true when the process has nothing else to do: stop between looks.
    pub stop: Option<watch::Receiver<bool>>,
}

/// Where following a backup stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    /// Its end, and one line.
    Ended(FinalState, String),
    /// Still running (or its replica not answering) when following stopped: the last line seen.
    Running(String),
}

/// Consecutive looks without an answer before following stops (the backup is not known to end).
const MISSES: u32 = 20;

/// Look at the backup's row until it ends or `until` comes (looks soon, then every `every` at
/// most). `sent`: when this process sent it (None: another process did). At least one look.
pub(super) async fn follow(
    replica: &ReplicaClient,
    id: &str,
    sent: Option<Instant>,
    every: Duration,
    mut until: Until,
    progress: OnProgress<'_>,
) -> Seen {
    let mut misses = 0;
    // Look soon, then less often: a small backup ends in a second, a big one takes hours.
    let mut wait = Duration::from_millis(200);
    loop {
        let seen = look(replica, id).await;
        misses = if seen.is_err() { misses + 1 } else { 0 };
        let line = match judge(seen, &replica.name, sent) {
            Ok(end) => return end,
            Err(line) => line,
        };
        progress(&line);
        if misses >= MISSES {
            return Seen::Running(format!("lost sight of it: {line}"));
        }
        let nap = match until.deadline {
            Some(d) if Instant::now() + wait > d => return Seen::Running(line),
            _ => wait,
        };
        let stopped = async {
            match until.stop.as_mut() {
                Some(rx) => {
                    let _ = rx.wait_for(|s| *s).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = stopped => return Seen::Running(line),
        }
        wait = (wait * 2).min(every);
    }
}

/// One look: its end (Ok), or the line to show while it runs or does not answer (Err).
fn judge(
    seen: Result<Followed, ProbeError>,
    name: &str,
    sent: Option<Instant>,
) -> Result<Seen, String> {
    match seen {
        Ok(Followed::Running(p)) => Err(p.line()),
        Ok(Followed::Created(p)) => Ok(Seen::Ended(
            FinalState::Succeeded,
            format!("backup created on {name}: {}", p.line()),
        )),
        Ok(Followed::Failed {
            status,
            error,
            meaning,
        }) => Ok(Seen::Ended(
            FinalState::Failed,
            format!("{status} on {name}: {error} ({meaning})"),
        )),
        Ok(Followed::Lost { uptime_secs }) => {
            let since = sent.map(|t| t.elapsed().as_secs());
            Ok(Seen::Ended(
                FinalState::Failed,
                lost(name, uptime_secs, since),
            ))
        }
        Err(e) => Err(format!("no answer from {name} ({e})")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(status: &str) -> BackupProgress {
        BackupProgress {
            status: status.into(),
            num_files: 3,
            total_size: 2048,
            bytes_read: 1024,
            elapsed_secs: 9,
        }
    }

    #[test]
    fn only_an_answer_with_an_end_ends_it() {
        let running = judge(
            Ok(Followed::Running(progress("CREATING_BACKUP"))),
            "r1",
            None,
        );
        assert_eq!(
            running,
            Err("CREATING_BACKUP: 3 files, 2.0 KiB written, 1.0 KiB read, 9 s".into())
        );
        let silent = judge(Err(ProbeError::Timeout { after_ms: 2000 }), "r1", None);
        assert!(silent.unwrap_err().starts_with("no answer from r1"));
        let created = judge(
            Ok(Followed::Created(progress("BACKUP_CREATED"))),
            "r1",
            None,
        );
        assert!(matches!(created, Ok(Seen::Ended(FinalState::Succeeded, _))));
        let lost = judge(Ok(Followed::Lost { uptime_secs: None }), "r1", None);
        assert!(matches!(lost, Ok(Seen::Ended(FinalState::Failed, _))));
    }
}
