//! The audit log: append-only rows, each chained to the one before it. A row's `hash` is SHA-256
//! over the previous row's hash and every field of its own (its sequence number included), so a
//! row changed, removed or slipped in after the fact — even with the triggers dropped in the
//! sqlite3 shell — breaks the chain at that row, and [`Store::verify_audit`] names it.
//!
//! Rows written before the chain existed (a file from before schema v5) carry no hash: the chain
//! starts at the migration, `audit_chain` records where, and a verification says so.
//!
//! SHA-256 is `ring`'s (already in the tree under rustls).

use std::fmt;

use ring::digest::{Context, SHA256};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{from_sql_id, to_sql_id, AuditRecord, AuditRow, Store, StoreError};

const COLUMNS: &str = "seq, action_id, time, cluster, replica, action_key, sql, requester_id, \
     requester_name, approver, place, decision, reason, query_id, outcome, duration_ms";

/// A chain that verifies: how many rows, and how many of them came before the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainIntact {
    pub rows: u64,
    /// Rows written before the chain began (not covered by it).
    pub legacy: u64,
    /// When the chain began (the migration to schema v5).
    pub started_at: i64,
}

impl fmt::Display for ChainIntact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rows, chain intact", self.rows)?;
        if self.legacy > 0 {
            write!(
                f,
                " (rows 1–{} were written before the chain began on {}: not covered by it)",
                self.legacy,
                crate::domain::time::rfc3339(self.started_at.max(0) as u64)
            )?;
        }
        Ok(())
    }
}

/// The first place the chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBroken {
    #[error("row {0} does not verify: it was changed after it was written")]
    Changed(i64),
    #[error("row {0} has no hash, though the chain covers it")]
    Unhashed(i64),
    #[error("rows {from}–{to} are missing: deleted after they were written")]
    Missing { from: i64, to: i64 },
    #[error("row {0} has a hash but is counted as written before the chain: where the chain begins was changed")]
    StartMoved(i64),
    #[error("the record of where the chain begins is gone")]
    NoStart,
}

/// SHA-256 over the previous row's hash and this row's fields, each length-prefixed (and
/// marked present or absent), so no two different rows encode alike. Lowercase hex.
pub(super) fn digest(prev: &str, seq: i64, r: &AuditRow) -> String {
    let mut c = Context::new(&SHA256);
    let mut field = |v: Option<&[u8]>| match v {
        None => c.update(&[0]),
        Some(b) => {
            c.update(&[1]);
            c.update(&(b.len() as u64).to_be_bytes());
            c.update(b);
        }
    };
    let int = |v: Option<i64>| v.map(i64::to_be_bytes);
    field(Some(prev.as_bytes()));
    field(Some(&seq.to_be_bytes()));
    field(Some(r.action_id.as_bytes()));
    field(Some(&r.time.to_be_bytes()));
    field(Some(r.cluster.as_bytes()));
    field(Some(r.replica.as_bytes()));
    field(Some(r.action_key.as_bytes()));
    field(Some(r.sql.as_bytes()));
    field(int(r.requester_id.map(to_sql_id)).as_ref().map(|b| &b[..]));
    field(Some(r.requester_name.as_bytes()));
    field(r.approver.as_deref().map(str::as_bytes));
    field(Some(r.place.as_bytes()));
    field(Some(r.decision.as_bytes()));
    field(r.reason.as_deref().map(str::as_bytes));
    field(r.query_id.as_deref().map(str::as_bytes));
    field(r.outcome.as_deref().map(str::as_bytes));
    field(int(r.duration_ms).as_ref().map(|b| &b[..]));
    c.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends `row` on the chain; call inside an IMMEDIATE transaction (the last row and the next
/// sequence number must not move in between). Returns its sequence number.
pub(super) fn append(c: &Connection, row: &AuditRow) -> rusqlite::Result<i64> {
    // AUTOINCREMENT's counter, not MAX(seq): a deleted newest row leaves a gap the chain shows.
    let seq: i64 = c.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0) + 1",
        [],
        |r| r.get(0),
    )?;
    let prev: Option<String> = c
        .query_row(
            "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let hash = digest(prev.as_deref().unwrap_or(""), seq, row);
    c.execute(
        "INSERT INTO audit (seq, action_id, time, cluster, replica, action_key, sql,
             requester_id, requester_name, approver, place, decision, reason, query_id,
             outcome, duration_ms, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            seq,
            row.action_id,
            row.time,
            row.cluster,
            row.replica,
            row.action_key,
            row.sql,
            row.requester_id.map(to_sql_id),
            row.requester_name,
            row.approver,
            row.place,
            row.decision,
            row.reason,
            row.query_id,
            row.outcome,
            row.duration_ms,
            hash,
        ],
    )?;
    Ok(seq)
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        row: AuditRow {
            action_id: r.get(1)?,
            time: r.get(2)?,
            cluster: r.get(3)?,
            replica: r.get(4)?,
            action_key: r.get(5)?,
            sql: r.get(6)?,
            requester_id: r.get::<_, Option<i64>>(7)?.map(from_sql_id),
            requester_name: r.get(8)?,
            approver: r.get(9)?,
            place: r.get(10)?,
            decision: r.get(11)?,
            reason: r.get(12)?,
            query_id: r.get(13)?,
            outcome: r.get(14)?,
            duration_ms: r.get(15)?,
        },
    })
}

/// Walks the whole log in order, in one read transaction (a consistent snapshot).
fn verify(c: &mut Connection) -> rusqlite::Result<Result<ChainIntact, ChainBroken>> {
    let tx = c.transaction()?;
    let start: Option<(i64, i64)> = tx
        .query_row(
            "SELECT legacy_upto, started_at FROM audit_chain WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((legacy_upto, started_at)) = start else {
        return Ok(Err(ChainBroken::NoStart));
    };
    let counter: i64 = tx.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0)",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = tx.prepare(&format!("SELECT {COLUMNS}, hash FROM audit ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let (mut n, mut legacy, mut prev) = (0u64, 0u64, String::new());
    let mut next = legacy_upto + 1;
    while let Some(r) = rows.next()? {
        let rec = record(r)?;
        let hash: Option<String> = r.get(16)?;
        n += 1;
        if rec.seq <= legacy_upto {
            if hash.is_some() {
                return Ok(Err(ChainBroken::StartMoved(rec.seq)));
            }
            legacy += 1;
            continue;
        }
        if rec.seq != next {
            return Ok(Err(ChainBroken::Missing {
                from: next,
                to: rec.seq - 1,
            }));
        }
        let Some(hash) = hash else {
            return Ok(Err(ChainBroken::Unhashed(rec.seq)));
        };
        if digest(&prev, rec.seq, &rec.row) != hash {
            return Ok(Err(ChainBroken::Changed(rec.seq)));
        }
        prev = hash;
        next = rec.seq + 1;
    }
    // The newest rows deleted: the counter remembers how many there were.
    if counter >= next {
        return Ok(Err(ChainBroken::Missing {
            from: next,
            to: counter,
        }));
    }
    Ok(Ok(ChainIntact {
        rows: n,
        legacy,
        started_at,
    }))
}

impl Store {
    /// Appends an audit row on the chain and returns its sequence number. There is no way to
    /// change it later: triggers abort any UPDATE or DELETE, and the chain shows it if they are
    /// dropped.
    pub async fn audit(&self, row: AuditRow) -> Result<i64, StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let seq = append(&tx, &row)?;
            tx.commit()?;
            Ok(seq)
        })
        .await
    }

    /// Up to `limit` audit rows, newest first, optionally of one cluster.
    pub async fn audit_rows(
        &self,
        cluster: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let cluster = cluster.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM audit WHERE ?1 IS NULL OR cluster = ?1
                 ORDER BY seq DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![cluster, limit], record)?;
            rows.collect()
        })
        .await
    }

    /// When action `id` got its first audit row of `decision` (e.g. `executing`: its statement
    /// was about to be sent).
    pub async fn audit_time(&self, id: &str, decision: &str) -> Result<Option<i64>, StoreError> {
        let (id, decision) = (id.to_owned(), decision.to_owned());
        self.call(move |c| {
            c.query_row(
                "SELECT time FROM audit WHERE action_id = ?1 AND decision = ?2
                 ORDER BY seq LIMIT 1",
                params![id, decision],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// Walks the chain from its start; remembers a break (so actions are refused, see
    /// [`Store::chain_broken`]) and sets the `chops_audit_chain_broken` metric.
    pub async fn verify_audit(&self) -> Result<Result<ChainIntact, ChainBroken>, StoreError> {
        let result = self.call(verify).await?;
        let broken = result.as_ref().err().map(ToString::to_string);
        crate::metrics::get().audit_chain_broken(broken.is_some());
        *self
            .chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = broken;
        Ok(result)
    }

    /// Why the audit chain did not verify at the last [`Store::verify_audit`] (None: it did, or
    /// it was not verified).
    pub fn chain_broken(&self) -> Option<String> {
        self.chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(decision: &str) -> AuditRow {
        AuditRow {
            action_id: "a1".into(),
            time: 100,
            cluster: "prod".into(),
            replica: "ch-1".into(),
            action_key: "backup:prod:ch-1".into(),
            sql: "BACKUP …".into(),
            requester_id: Some(7),
            requester_name: "alice".into(),
            approver: None,
            place: "cli:alice".into(),
            decision: decision.into(),
            reason: None,
            query_id: None,
            outcome: None,
            duration_ms: None,
        }
    }

    #[test]
    fn every_field_and_the_link_change_the_hash() {
        let base = digest("", 1, &row("requested"));
        assert_eq!(base.len(), 64);
        assert_ne!(base, digest("x", 1, &row("requested")));
        assert_ne!(base, digest("", 2, &row("requested")));
        assert_ne!(base, digest("", 1, &row("refused")));
        let mut r = row("requested");
        r.reason = Some(String::new());
        assert_ne!(base, digest("", 1, &r), "absent and empty differ");
        let mut r = row("requested");
        r.requester_id = None;
        assert_ne!(base, digest("", 1, &r));
        // Moving bytes from one field to the next is a different row.
        let mut a = row("requested");
        a.cluster = "prodc".into();
        a.replica = "h-1".into();
        let mut b = row("requested");
        b.cluster = "prod".into();
        b.replica = "ch-1".into();
        assert_ne!(digest("", 1, &a), digest("", 1, &b));
    }
}
