//! `SYSTEM RESTART REPLICA db.table` on one replica: `plan` (the SQL), `execute` (as the operator,
//! synchronous, bounded), `look` (the table's `system.replicas` row, before and after), `run`
//! (look, execute, look) and `reconcile` (its end, once the process that sent it is gone, from
//! the query log — left for later while that log can still learn it).

use std::time::Duration;

use clickhouse::Row;
use serde::Deserialize;

use super::{Ending, OnProgress, Sending};
use crate::clickhouse::ReplicaClient;
use crate::domain::action::Action;
use crate::domain::guard::TableState;
use crate::domain::ProbeError;
use crate::store::FinalState;

/// The table as one replica sees it.
pub const TABLE_SQL: &str = "SELECT toUInt8(is_readonly) AS is_readonly, \
     toUInt8(is_session_expired) AS is_session_expired, toUInt64(active_replicas) AS active_replicas, \
     toUInt64(total_replicas) AS total_replicas, toUInt64(queue_size) AS queue_size, \
     toUInt64(absolute_delay) AS absolute_delay \
     FROM system.replicas WHERE database = ? AND table = ?";

/// How long the statement may take: the server waits up to `lock_acquire_timeout` (120 s by
/// default) for the table's lock, plus the re-initialisation itself.
pub const EXECUTE_LIMIT: Duration = Duration::from_secs(150);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Row, Deserialize)]
pub struct TableRow {
    pub is_readonly: u8,
    pub is_session_expired: u8,
    pub active_replicas: u64,
    pub total_replicas: u64,
    pub queue_size: u64,
    pub absolute_delay: u64,
}

impl TableRow {
    pub fn state(&self) -> TableState {
        TableState {
            readonly: self.is_readonly == 1,
            session_expired: self.is_session_expired == 1,
            active_replicas: self.active_replicas,
            total_replicas: self.total_replicas,
        }
    }

    fn words(&self) -> String {
        let mode = if self.is_readonly == 1 {
            "read-only"
        } else {
            "writable"
        };
        format!("{mode}, queue {}", self.queue_size)
    }
}

/// The statement execution sends.
pub fn plan(action: &Action) -> String {
    action.sql("")
}

pub async fn execute(
    op: &ReplicaClient,
    statement: &str,
    query_id: &str,
) -> Result<(), ProbeError> {
    op.run(statement, EXECUTE_LIMIT, query_id).await
}

/// The table's row on `client`'s replica (None: no Replicated table of that name there).
pub async fn look(
    client: &ReplicaClient,
    database: &str,
    table: &str,
) -> Result<Option<TableRow>, ProbeError> {
    let rows: Vec<TableRow> = client.fetch(TABLE_SQL, &[database, table]).await?;
    Ok(rows.into_iter().next())
}

/// How a statement ended, by its query id, from the server's `system.query_log`: None when the
/// log has no trace of it (no query log, not flushed yet, or never sent); Err when the server
/// could not be asked.
pub async fn ran(
    client: &ReplicaClient,
    query_id: &str,
) -> Result<Option<Result<(), String>>, ProbeError> {
    #[derive(Debug, Clone, Row, Deserialize)]
    struct Logged {
        #[serde(deserialize_with = "crate::clickhouse::lossy")]
        kind: String,
        #[serde(deserialize_with = "crate::clickhouse::lossy")]
        exception: String,
    }
    const SQL: &str = "SELECT toString(type) AS kind, exception FROM system.query_log \
         WHERE query_id = ? AND type != 'QueryStart' ORDER BY event_time DESC LIMIT 1";
    let rows: Vec<Logged> = client.fetch(SQL, &[query_id]).await?;
    Ok(rows.into_iter().next().map(|row| {
        if row.kind == "QueryFinish" {
            Ok(())
        } else {
            Err(crate::domain::text::first_line(&row.exception, 300))
        }
    }))
}

/// "shop.orders on ch-2: read-only, queue 340 → writable, queue 12".
pub fn before_after(
    action: &Action,
    before: Option<&TableRow>,
    after: Option<&TableRow>,
) -> String {
    let Action::RestartReplica {
        replica,
        database,
        table,
        ..
    } = action
    else {
        return String::new();
    };
    let show = |r: Option<&TableRow>| r.map_or_else(|| "unknown".to_string(), TableRow::words);
    format!(
        "{database}.{table} on {replica}: {} → {}",
        show(before),
        show(after)
    )
}

/// Restart `database.table` on the target: its row before, the statement, its row after.
pub(super) async fn run(
    s: &Sending<'_>,
    database: &str,
    table: &str,
    progress: OnProgress<'_>,
) -> Ending {
    let action = &s.planned.action;
    let replica = action.replica();
    let before = look(s.replica, database, table).await.ok().flatten();
    progress(&format!("restarting {database}.{table} on {replica}"));
    let r = execute(&s.op, &s.planned.statement, &s.query_id).await;
    let after = look(s.replica, database, table).await.ok().flatten();
    let details = vec![before_after(action, before.as_ref(), after.as_ref())];
    let ending = match r {
        Ok(()) => Ending::new(
            FinalState::Succeeded,
            format!("{database}.{table} restarted on {replica}"),
        ),
        Err(e) => Ending::new(
            FinalState::Failed,
            format!("SYSTEM RESTART REPLICA failed: {e}"),
        ),
    };
    ending.details(details).sent(&s.query_id)
}

/// How long after its statement was sent a restart without a trace in `system.query_log` may
/// still get one: the statement's own limit, plus the log's flush interval (7.5 s) with room.
pub const QUERY_LOG_GRACE_SECS: i64 = EXECUTE_LIMIT.as_secs() as i64 + 30;

/// After its process stopped: whether the statement ran (the server's query log knows, when it
/// has one), and the table as it is now. None while that cannot be learned yet (the replica does
/// not answer, or the log may still get its trace): it is left for a later start.
pub(super) async fn reconcile(
    replica: &ReplicaClient,
    action: &Action,
    query_id: &str,
    secs_since_sent: i64,
) -> Option<Ending> {
    let Action::RestartReplica {
        database, table, ..
    } = action
    else {
        return None;
    };
    let ran = ran(replica, query_id).await.ok()?;
    if ran.is_none() && secs_since_sent < QUERY_LOG_GRACE_SECS {
        return None;
    }
    let now_row = look(replica, database, table).await.ok().flatten();
    let details = vec![before_after(action, None, now_row.as_ref())];
    let ending = match ran {
        Some(Ok(())) => Ending::new(
            FinalState::Succeeded,
            "after a restart of chops: the statement finished (system.query_log)",
        ),
        Some(Err(e)) => Ending::new(
            FinalState::Failed,
            format!("after a restart of chops: the statement failed: {e}"),
        ),
        None => Ending::new(
            FinalState::Failed,
            "after a restart of chops: outcome unknown (no trace in system.query_log); the table as it is now",
        ),
    };
    Some(ending.details(details).sent(query_id))
}
