//! The per-replica backup: planned as `Planned::new` (its name on the disk is also its id),
//! `execute` (as the operator, ASYNC), `look` (its `system.backups` row, until it ends).

use std::time::Duration;

use clickhouse::Row;
use serde::Deserialize;

use crate::clickhouse::ReplicaClient;
use crate::domain::classify;
use crate::domain::ProbeError;

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
