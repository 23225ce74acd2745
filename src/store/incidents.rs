//! Incidents chops posts on its own, and their delivery: each is recorded (deduplicated) before it
//! is posted, so a crash between seeing a failure or receiving an alert and posting it loses
//! nothing — the poster finds it due on the next start. One row per incident; `posted` and
//! `resolution_shown` say what the channel has seen.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{Store, StoreError};
use crate::domain::incident::{Counted, Detail, Incident, Kind};

/// Incidents one message lists (a storm's others are counted), and of one cluster's alerts (or
/// of its other incidents) due at once.
pub const LISTED: usize = 50;

/// What recording a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Seen before (same replica, id and start): nothing changed.
    Seen,
    /// Recorded as seen, not posted (too old when first seen).
    Silent,
    /// A new incident (to be posted).
    New(i64),
    /// Added to an open incident of the same name that started within the window.
    Joined(i64),
}

/// What recording an alert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertRecorded {
    New,
    /// The same (fingerprint, startsAt) and status again: Alertmanager re-sends whole groups.
    Duplicate,
    /// A firing alert recorded earlier is now resolved.
    Resolved,
}

/// One alert of a webhook payload, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    pub cluster: String,
    pub fingerprint: String,
    pub starts_at: String,
    pub resolved: bool,
    /// "resolved at …" when `resolved`.
    pub resolution: String,
    pub channel: Option<u64>,
    pub detail: Detail,
}

/// One failed `system.backups` row, as [`Store::record_failure`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    /// The row's dedup key (replica, id, start): a row seen again changes nothing.
    pub row_key: String,
    pub cluster: String,
    /// A `Detail::Operation` naming only the replica of the row.
    pub detail: Detail,
    /// Failures of the same kind and name whose starts lie this close are one incident.
    pub window_secs: u64,
    /// false: recorded as seen, never posted (too old when first seen).
    pub news: bool,
    /// Where a new incident is posted.
    pub channel: Option<u64>,
}

const COLUMNS: &str =
    "id, cluster, detail_json, channel_id, message_id, posted, resolution, attempts, edit_due,
     created_at";

fn row(r: &Row<'_>) -> rusqlite::Result<Incident> {
    let json: String = r.get(2)?;
    let detail = serde_json::from_str(&json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Incident {
        id: r.get(0)?,
        cluster: r.get(1)?,
        detail,
        channel_id: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
        message_id: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
        posted: r.get(5)?,
        resolution: r.get(6)?,
        attempts: r.get(7)?,
        edit_due: r.get(8)?,
        created_at: r.get(9)?,
    })
}

fn json(d: &Detail) -> String {
    serde_json::to_string(d).expect("a Detail is JSON")
}

/// A new incident row ([`insert`]).
struct NewIncident<'a> {
    /// Unique: what makes recording the same thing twice a no-op.
    key: &'a str,
    cluster: &'a str,
    /// The name, replica or fingerprint the incident is about.
    subject: &'a str,
    started_at: i64,
    detail: &'a Detail,
    channel: Option<u64>,
    /// Set for an incident that is resolved when first seen (a resolved alert).
    resolution: Option<&'a str>,
}

/// Inserts a new incident row; its key must be new.
fn insert(c: &Connection, n: &NewIncident<'_>, now: i64) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO incidents (key, kind, cluster, subject, started_at, detail_json, channel_id,
                                resolution, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            n.key,
            n.detail.kind().as_str(),
            n.cluster,
            n.subject,
            n.started_at,
            json(n.detail),
            n.channel.map(|c| c as i64),
            n.resolution,
            now
        ],
    )?;
    Ok(c.last_insert_rowid())
}

/// The dedup key of an alert: its cluster, whole fingerprint and start, hashed (SHA-256) so the
/// key stays bounded however long the sender's strings are and no two alerts share one.
fn alert_key(a: &AlertRecord) -> String {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [&a.cluster, &a.fingerprint, &a.starts_at] {
        // Length-prefixed: ("ab", "c") and ("a", "bc") are different keys.
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let hex: String = h
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("alert2\u{1f}{hex}")
}

/// Records one failure in one transaction (see [`Store::record_failure`]).
fn record_failure(c: &mut Connection, f: &FailureRecord, now: i64) -> rusqlite::Result<Recorded> {
    let Detail::Operation {
        op,
        name,
        replicas,
        start,
        ..
    } = &f.detail
    else {
        return Ok(Recorded::Seen);
    };
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let fresh = tx.execute(
        "INSERT INTO dedup (key, first_seen) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
        params![f.row_key, now],
    )? == 1;
    if !fresh {
        return Ok(Recorded::Seen);
    }
    let open: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, detail_json FROM incidents
             WHERE kind = ?1 AND cluster = ?2 AND subject = ?3 AND resolution IS NULL
               AND abs(started_at - ?4) <= ?5
             ORDER BY id DESC LIMIT 1",
            params![
                Kind::of(*op).as_str(),
                f.cluster,
                name,
                start,
                f.window_secs as i64
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let out = match open {
        Some((id, existing)) => {
            join(&tx, id, &existing, replicas)?;
            Recorded::Joined(id)
        }
        None if f.news => {
            let key = format!("op\u{1f}{}", f.row_key);
            let row = NewIncident {
                key: &key,
                cluster: &f.cluster,
                subject: name,
                started_at: *start,
                detail: &f.detail,
                channel: f.channel,
                resolution: None,
            };
            Recorded::New(insert(&tx, &row, now)?)
        }
        None => Recorded::Silent,
    };
    tx.commit()?;
    Ok(out)
}

/// Adds `replicas` to the operation incident `id` (stored as `existing`) that does not name them
/// yet. Already in the channel: its header is edited to name every replica.
fn join(c: &Connection, id: i64, existing: &str, replicas: &[String]) -> rusqlite::Result<()> {
    let Ok(mut merged) = serde_json::from_str::<Detail>(existing) else {
        return Ok(());
    };
    let Detail::Operation { replicas: seen, .. } = &mut merged else {
        return Ok(());
    };
    let before = seen.len();
    for r in replicas {
        if !seen.contains(r) {
            seen.push(r.clone());
        }
    }
    if seen.len() > before {
        c.execute(
            "UPDATE incidents SET detail_json = ?2, edit_due = posted WHERE id = ?1",
            params![id, json(&merged)],
        )?;
    }
    Ok(())
}

/// Whether incident `shown.id` still is what `shown` showed: (the same detail, its resolution
/// seen). Compared as values, so a row written by an older build (fewer fields) is not "changed".
fn settled(c: &Connection, shown: &Incident) -> rusqlite::Result<(bool, bool)> {
    let (json_now, resolution_now): (String, Option<String>) = c.query_row(
        "SELECT detail_json, resolution FROM incidents WHERE id = ?1",
        params![shown.id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let same = serde_json::from_str::<Detail>(&json_now).is_ok_and(|d| d == shown.detail);
    let seen = resolution_now.is_some() && resolution_now == shown.resolution;
    Ok((same, seen))
}

impl Store {
    /// Records one failed `system.backups` row. In one transaction: the row's dedup key, then
    /// either a new incident or this replica added to an open one of the same kind and name
    /// whose start lies within the window (an ON CLUSTER operation failing on several replicas
    /// is one incident).
    pub async fn record_failure(
        &self,
        failure: FailureRecord,
        now: i64,
    ) -> Result<Recorded, StoreError> {
        self.call(move |c| record_failure(c, &failure, now)).await
    }

    /// Marks every open incident of `kind` and `name` on `cluster` that ended before
    /// `success_start` resolved with `text` (a success that overlapped the failure — another
    /// host of the same ON CLUSTER operation — resolves nothing). Returns how many.
    pub async fn resolve_operation(
        &self,
        cluster: &str,
        kind: Kind,
        name: &str,
        success_start: i64,
        text: &str,
    ) -> Result<usize, StoreError> {
        let (cluster, name, text) = (cluster.to_owned(), name.to_owned(), text.to_owned());
        self.call(move |c| {
            c.execute(
                "UPDATE incidents SET resolution = ?5
                 WHERE resolution IS NULL AND kind = ?1 AND cluster = ?2 AND subject = ?3
                   AND max(started_at, coalesce(json_extract(detail_json, '$.end'), 0)) < ?4",
                params![kind.as_str(), cluster, name, success_start, text],
            )
        })
        .await
    }

    /// Resolves incident `id` by hand with `text`, unless it is resolved already. Returns whether
    /// it was open.
    pub async fn resolve_incident(&self, id: i64, text: &str) -> Result<bool, StoreError> {
        let sql = "UPDATE incidents SET resolution = ?2 WHERE id = ?1 AND resolution IS NULL";
        self.changed_one(sql, (id, text.to_owned())).await
    }

    /// Opens an "unreachable" incident for `replica` unless one is open already.
    pub async fn open_unreachable(
        &self,
        cluster: &str,
        replica: &str,
        detail: Detail,
        channel: Option<u64>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (cluster, replica) = (cluster.to_owned(), replica.to_owned());
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let open: Option<i64> = tx
                .query_row(
                    "SELECT id FROM incidents WHERE kind = 'unreachable' AND cluster = ?1
                       AND subject = ?2 AND resolution IS NULL",
                    params![cluster, replica],
                    |r| r.get(0),
                )
                .optional()?;
            if open.is_some() {
                return Ok(None);
            }
            let key = format!("unreachable\u{1f}{cluster}\u{1f}{replica}\u{1f}{now}");
            let row = NewIncident {
                key: &key,
                cluster: &cluster,
                subject: &replica,
                started_at: now,
                detail: &detail,
                channel,
                resolution: None,
            };
            let id = insert(&tx, &row, now)?;
            tx.commit()?;
            Ok(Some(id))
        })
        .await
    }

    /// Resolves the open "unreachable" incident of `replica`, if any.
    pub async fn resolve_unreachable(
        &self,
        cluster: &str,
        replica: &str,
        text: &str,
    ) -> Result<usize, StoreError> {
        let (cluster, replica, text) = (cluster.to_owned(), replica.to_owned(), text.to_owned());
        self.call(move |c| {
            c.execute(
                "UPDATE incidents SET resolution = ?3 WHERE kind = 'unreachable' AND cluster = ?1
                   AND subject = ?2 AND resolution IS NULL",
                params![cluster, replica, text],
            )
        })
        .await
    }

    /// Whether an "unreachable" incident of `replica` is open (so the watcher knows to resolve it).
    pub async fn unreachable_open(&self, cluster: &str) -> Result<Vec<String>, StoreError> {
        let cluster = cluster.to_owned();
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT subject FROM incidents WHERE kind = 'unreachable' AND cluster = ?1
                   AND resolution IS NULL",
            )?;
            let names = st
                .query_map(params![cluster], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(names)
        })
        .await
    }

    /// When chops last finished a watcher round on `cluster` (unix seconds), if ever.
    pub async fn watch_mark(&self, cluster: &str) -> Result<Option<i64>, StoreError> {
        let cluster = cluster.to_owned();
        self.call(move |c| {
            c.query_row(
                "SELECT at FROM watch_marks WHERE cluster = ?1",
                params![cluster],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    pub async fn set_watch_mark(&self, cluster: &str, at: i64) -> Result<(), StoreError> {
        let cluster = cluster.to_owned();
        self.call(move |c| {
            c.execute(
                "INSERT INTO watch_marks (cluster, at) VALUES (?1, ?2)
                 ON CONFLICT(cluster) DO UPDATE SET at = excluded.at",
                params![cluster, at],
            )
            .map(drop)
        })
        .await
    }

    /// Records every alert of one webhook payload in one transaction, deduplicated on
    /// (cluster, fingerprint, startsAt): the answer to the sender is sent only after this commits.
    pub async fn record_alerts(
        &self,
        alerts: Vec<AlertRecord>,
        now: i64,
    ) -> Result<Vec<AlertRecorded>, StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut out = Vec::with_capacity(alerts.len());
            for a in &alerts {
                let key = alert_key(a);
                let existing: Option<(i64, Option<String>)> = tx
                    .query_row(
                        "SELECT id, resolution FROM incidents WHERE key = ?1",
                        params![key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                out.push(match existing {
                    None => {
                        let resolution = a.resolved.then_some(a.resolution.as_str());
                        let row = NewIncident {
                            key: &key,
                            cluster: &a.cluster,
                            subject: &crate::domain::text::clip(&a.fingerprint, 64),
                            started_at: now,
                            detail: &a.detail,
                            channel: a.channel,
                            resolution,
                        };
                        insert(&tx, &row, now)?;
                        AlertRecorded::New
                    }
                    Some((id, None)) if a.resolved => {
                        tx.execute(
                            "UPDATE incidents SET resolution = ?2 WHERE id = ?1",
                            params![id, a.resolution],
                        )?;
                        AlertRecorded::Resolved
                    }
                    Some(_) => AlertRecorded::Duplicate,
                });
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Records a pre-flight to post, once per (cluster, scheduled time).
    pub async fn record_preflight(
        &self,
        cluster: &str,
        scheduled_for: i64,
        detail: Detail,
        channel: Option<u64>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let cluster = cluster.to_owned();
        self.call(move |c| {
            let key = format!("preflight\u{1f}{cluster}\u{1f}{scheduled_for}");
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists: bool = tx
                .query_row(
                    "SELECT 1 FROM incidents WHERE key = ?1",
                    params![key],
                    |_| Ok(true),
                )
                .optional()?
                .unwrap_or(false);
            if exists {
                return Ok(None);
            }
            // A pre-flight reports a state, there is nothing to resolve later.
            let row = NewIncident {
                key: &key,
                cluster: &cluster,
                subject: "preflight",
                started_at: scheduled_for,
                detail: &detail,
                channel,
                resolution: None,
            };
            let id = insert(&tx, &row, now)?;
            tx.execute(
                "UPDATE incidents SET resolution_shown = 1 WHERE id = ?1",
                params![id],
            )?;
            tx.commit()?;
            Ok(Some(id))
        })
        .await
    }

    /// Incidents whose post or resolution the channel has not seen yet and whose next try is due:
    /// at most [`LISTED`] of each cluster's alerts and [`LISTED`] of its other incidents (the
    /// watcher's, the scheduler's), those first, then by age — one cluster's alert storm neither
    /// hides another cluster's incidents nor the watcher's.
    pub async fn due_incidents(&self, now: i64) -> Result<Vec<Incident>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM (
                   SELECT *, row_number() OVER (PARTITION BY cluster, kind = 'alert' ORDER BY id)
                             AS nth
                   FROM incidents
                   WHERE given_up = 0 AND next_try_at <= ?1
                     AND (posted = 0 OR edit_due = 1
                          OR (resolution IS NOT NULL AND resolution_shown = 0)))
                 WHERE nth <= ?2
                 ORDER BY kind = 'alert', id"
            ))?;
            let rows = st
                .query_map(params![now, LISTED as i64], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    /// The unposted alerts of `cluster` for `channel` recorded after `after` (the last listed):
    /// what a storm message counts without listing, and the newest id it counts.
    pub async fn storm_rest(
        &self,
        cluster: &str,
        channel: Option<u64>,
        after: i64,
    ) -> Result<(Counted, i64), StoreError> {
        let cluster = cluster.to_owned();
        self.call(move |c| {
            c.query_row(
                "SELECT count(*), coalesce(sum(resolution IS NOT NULL), 0), coalesce(max(id), 0)
                 FROM incidents
                 WHERE cluster = ?1 AND kind = 'alert' AND channel_id IS ?2 AND posted = 0
                   AND given_up = 0 AND id > ?3",
                params![cluster, channel.map(|v| v as i64), after],
                |r| {
                    let counted = Counted {
                        alerts: r.get::<_, i64>(0)? as usize,
                        resolved: r.get::<_, i64>(1)? as usize,
                    };
                    Ok((counted, r.get(2)?))
                },
            )
        })
        .await
    }

    /// The alerts [`Store::storm_rest`] counted (after `after`, up to `upto`) are delivered with
    /// `message`: posted, on that message. Their resolutions are left due, so one edit of the
    /// message shows the resolved count as it is by then (none is marked seen unseen).
    pub async fn mark_counted(
        &self,
        cluster: &str,
        channel: Option<u64>,
        (after, upto): (i64, i64),
        message: Option<u64>,
    ) -> Result<usize, StoreError> {
        let cluster = cluster.to_owned();
        self.call(move |c| {
            c.execute(
                "UPDATE incidents SET posted = 1, message_id = ?5, attempts = 0, next_try_at = 0
                 WHERE cluster = ?1 AND kind = 'alert' AND channel_id IS ?2 AND posted = 0
                   AND given_up = 0 AND id > ?3 AND id <= ?4",
                params![
                    cluster,
                    channel.map(|v| v as i64),
                    after,
                    upto,
                    message.map(|v| v as i64)
                ],
            )
        })
        .await
    }

    /// The incident `id` (tests, the poster re-reading a row).
    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"),
                params![id],
                row,
            )
            .optional()
        })
        .await
    }

    /// What message `message` in `channel` shows, read for an edit without loading a storm: the
    /// first [`LISTED`] incidents, the rest counted, and the ids of counted ones whose resolution
    /// is not shown yet (marked by [`Store::mark_resolutions_shown`] once the edit is made).
    pub async fn message_listing(
        &self,
        channel: u64,
        message: u64,
    ) -> Result<(Vec<Incident>, Counted, Vec<i64>), StoreError> {
        self.call(move |c| {
            let (ch, m) = (channel as i64, message as i64);
            let listed = c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM incidents WHERE channel_id = ?1 AND message_id = ?2
                     ORDER BY id LIMIT ?3"
                ))?
                .query_map(params![ch, m, LISTED as i64], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let after = listed.last().map_or(i64::MAX, |i| i.id);
            let mut counted = Counted::default();
            let mut unshown = Vec::new();
            let mut st = c.prepare(
                "SELECT id, resolution IS NOT NULL, resolution_shown FROM incidents
                 WHERE channel_id = ?1 AND message_id = ?2 AND id > ?3",
            )?;
            let mut rows = st.query(params![ch, m, after])?;
            while let Some(r) = rows.next()? {
                counted.alerts += 1;
                if r.get::<_, bool>(1)? {
                    counted.resolved += 1;
                    if !r.get::<_, bool>(2)? {
                        unshown.push(r.get(0)?);
                    }
                }
            }
            Ok((listed, counted, unshown))
        })
        .await
    }

    /// The resolutions of `ids` are shown (counted on a storm message that was edited).
    pub async fn mark_resolutions_shown(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare(
                    "UPDATE incidents SET resolution_shown = 1, attempts = 0, next_try_at = 0
                     WHERE id = ?1",
                )?;
                for id in &ids {
                    st.execute(params![id])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Every incident, newest first (tests and `chops` diagnostics).
    pub async fn incidents(&self, limit: usize) -> Result<Vec<Incident>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM incidents ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = st
                .query_map(params![limit as i64], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    /// The message is in the channel (`message` None: posted nowhere, `--no-discord`), showing
    /// every incident of `shown` as it was read; anything that changed since (a resolution,
    /// another replica) stays due as an edit. One transaction for the whole batch.
    pub async fn mark_posted(
        &self,
        shown: &[Incident],
        channel: Option<u64>,
        message: Option<u64>,
    ) -> Result<(), StoreError> {
        let shown = shown.to_vec();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for i in &shown {
                let (same, resolution_seen) = settled(&tx, i)?;
                tx.execute(
                    "UPDATE incidents SET posted = 1, channel_id = ?2, message_id = ?3,
                            attempts = 0, next_try_at = 0, edit_due = ?4,
                            resolution_shown = max(resolution_shown, ?5)
                     WHERE id = ?1",
                    params![
                        i.id,
                        channel.map(|v| v as i64),
                        message.map(|v| v as i64),
                        !same,
                        resolution_seen
                    ],
                )?;
            }
            tx.commit()
        })
        .await
    }

    /// The message shows every incident of `shown` as it was read (one transaction); a change
    /// made meanwhile stays due.
    pub async fn mark_edited(&self, shown: &[Incident]) -> Result<(), StoreError> {
        let shown = shown.to_vec();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for i in &shown {
                let (same, resolution_seen) = settled(&tx, i)?;
                tx.execute(
                    "UPDATE incidents SET attempts = 0, next_try_at = 0,
                            edit_due = CASE WHEN ?2 THEN 0 ELSE edit_due END,
                            resolution_shown = max(resolution_shown, ?3)
                     WHERE id = ?1",
                    params![i.id, same, resolution_seen],
                )?;
            }
            tx.commit()
        })
        .await
    }

    /// A post or edit of `ids` (one message) failed: try them again together after a backoff
    /// (1 s doubling to 5 min); after `max_attempts` they are given up (logged by the caller).
    /// Returns whether they were given up.
    pub async fn retry_later(
        &self,
        ids: &[i64],
        now: i64,
        max_attempts: u32,
    ) -> Result<bool, StoreError> {
        let ids = ids.to_vec();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut attempts = 0u32;
            for id in &ids {
                let a: Option<u32> = tx
                    .query_row(
                        "SELECT attempts FROM incidents WHERE id = ?1",
                        params![id],
                        |r| r.get(0),
                    )
                    .optional()?;
                attempts = attempts.max(a.unwrap_or(0) + 1);
            }
            let backoff = (1i64 << attempts.min(9)).min(300);
            let given_up = attempts >= max_attempts;
            for id in &ids {
                tx.execute(
                    "UPDATE incidents SET attempts = ?2, next_try_at = ?3, given_up = ?4
                     WHERE id = ?1",
                    params![id, attempts, now + backoff, given_up],
                )?;
            }
            tx.commit()?;
            Ok(given_up)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::Op;

    fn failure(replica: &str, name: &str, start: i64) -> Detail {
        Detail::Operation {
            op: Op::Backup,
            status: "BACKUP_FAILED".into(),
            name: name.into(),
            replicas: vec![replica.into()],
            error: "boom".into(),
            start,
            end: start + 1,
        }
    }

    /// Whether incident `id` is due for the poster at t = 2000.
    async fn is_due(s: &Store, id: i64) -> bool {
        s.due_incidents(2_000)
            .await
            .unwrap()
            .iter()
            .any(|d| d.id == id)
    }

    async fn record(s: &Store, key: &str, d: Detail, news: bool) -> Recorded {
        let failure = FailureRecord {
            row_key: key.into(),
            cluster: "prod".into(),
            detail: d,
            window_secs: 600,
            news,
            channel: Some(7),
        };
        s.record_failure(failure, 1_000).await.unwrap()
    }

    #[tokio::test]
    async fn failures_dedup_group_and_resolve() {
        let s = Store::open_in_memory().unwrap();
        let Recorded::New(id) = record(&s, "k1", failure("r1", "n", 100), true).await else {
            panic!("new")
        };
        assert_eq!(
            record(&s, "k1", failure("r1", "n", 100), true).await,
            Recorded::Seen
        );
        // Another replica, same name, start within the window: the same incident.
        assert_eq!(
            record(&s, "k2", failure("r2", "n", 130), true).await,
            Recorded::Joined(id)
        );
        // Outside the window, or another name: new ones; too old: silent.
        assert!(matches!(
            record(&s, "k3", failure("r3", "n", 5_000), true).await,
            Recorded::New(_)
        ));
        assert_eq!(
            record(&s, "k4", failure("r1", "old", 1), false).await,
            Recorded::Silent
        );
        let i = s.incident(id).await.unwrap().unwrap();
        let Detail::Operation { replicas, .. } = &i.detail else {
            panic!()
        };
        assert_eq!(replicas, &["r1", "r2"]);
        assert!(!i.edit_due, "not posted yet: the post will name both");

        // Posted; a third replica joins later: an edit is due.
        s.mark_posted(std::slice::from_ref(&i), Some(7), Some(70))
            .await
            .unwrap();
        assert!(!is_due(&s, id).await);
        assert_eq!(
            record(&s, "k5", failure("r3", "n", 140), true).await,
            Recorded::Joined(id)
        );
        let due = s.incident(id).await.unwrap().unwrap();
        assert!(due.edit_due);
        s.mark_edited(std::slice::from_ref(&due)).await.unwrap();
        assert!(!s.incident(id).await.unwrap().unwrap().edit_due);

        // A success of the same kind and name that started later resolves it, once.
        assert_eq!(
            s.resolve_operation("prod", Kind::Restore, "n", 200, "x")
                .await
                .unwrap(),
            0,
            "a restore does not resolve a backup"
        );
        assert_eq!(
            s.resolve_operation("prod", Kind::Backup, "n", 50, "x")
                .await
                .unwrap(),
            0,
            "an earlier success does not"
        );
        assert_eq!(
            s.resolve_operation("prod", Kind::Backup, "n", 200, "resolved by n")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.resolve_operation("prod", Kind::Backup, "n", 300, "again")
                .await
                .unwrap(),
            0
        );
        let due = s.due_incidents(2_000).await.unwrap();
        let r = due
            .iter()
            .find(|d| d.id == id)
            .expect("the resolution is due");
        assert_eq!(r.resolution.as_deref(), Some("resolved by n"));
        s.mark_edited(std::slice::from_ref(r)).await.unwrap();
        assert!(!is_due(&s, id).await);
    }

    #[tokio::test]
    async fn alerts_dedup_on_fingerprint_and_start() {
        let s = Store::open_in_memory().unwrap();
        let alert = |resolved: bool, starts: &str| alert_at("prod", "f1", starts, resolved);
        let out = s
            .record_alerts(
                vec![alert(false, "t1"), alert(false, "t1"), alert(false, "t2")],
                1,
            )
            .await
            .unwrap();
        assert_eq!(
            out,
            [
                AlertRecorded::New,
                AlertRecorded::Duplicate,
                AlertRecorded::New
            ]
        );
        let out = s
            .record_alerts(vec![alert(true, "t1"), alert(true, "t1")], 2)
            .await
            .unwrap();
        assert_eq!(out, [AlertRecorded::Resolved, AlertRecorded::Duplicate]);
        // Resolved before it was ever seen firing: recorded once, already resolved.
        let out = s.record_alerts(vec![alert(true, "t3")], 3).await.unwrap();
        assert_eq!(out, [AlertRecorded::New]);
        assert_eq!(s.due_incidents(10).await.unwrap().len(), 3);
    }

    fn alert_of(cluster: &str, fingerprint: &str, resolved: bool) -> AlertRecord {
        alert_at(cluster, fingerprint, "t1", resolved)
    }

    /// An alert of `cluster` as Alertmanager sends it (`starts` its start), to channel 7.
    fn alert_at(cluster: &str, fingerprint: &str, starts: &str, resolved: bool) -> AlertRecord {
        AlertRecord {
            cluster: cluster.into(),
            fingerprint: fingerprint.into(),
            starts_at: starts.into(),
            resolved,
            resolution: "alert resolved at t".into(),
            channel: Some(7),
            detail: Detail::Alert {
                alertname: "A".into(),
                severity: String::new(),
                summary: String::new(),
                description: String::new(),
                generator_url: String::new(),
                starts_at: starts.into(),
                links: Vec::new(),
                truncated: 0,
            },
        }
    }

    /// Two clusters' alerts with one fingerprint, and two long fingerprints that share their
    /// first 64 characters, are four incidents; a resolution resolves only its own.
    #[tokio::test]
    async fn alerts_dedup_on_cluster_and_the_whole_fingerprint() {
        let s = Store::open_in_memory().unwrap();
        let long = |tail: &str| format!("{}{tail}", "f".repeat(64));
        let firing = vec![
            alert_of("prod", "f1", false),
            alert_of("other", "f1", false),
            alert_of("prod", &long("a"), false),
            alert_of("prod", &long("b"), false),
        ];
        let out = s.record_alerts(firing, 1).await.unwrap();
        assert_eq!(out, [AlertRecorded::New; 4]);
        let out = s
            .record_alerts(vec![alert_of("other", "f1", true)], 2)
            .await
            .unwrap();
        assert_eq!(out, [AlertRecorded::Resolved]);
        let open: Vec<String> = s
            .incidents(10)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.resolution.is_none())
            .map(|i| i.cluster)
            .collect();
        assert_eq!(open, ["prod", "prod", "prod"], "prod's f1 stays open");
    }

    #[tokio::test]
    async fn failed_posts_back_off_then_give_up() {
        let s = Store::open_in_memory().unwrap();
        let Recorded::New(id) = record(&s, "k", failure("r1", "n", 1), true).await else {
            panic!()
        };
        assert!(!s.retry_later(&[id], 100, 3).await.unwrap());
        assert!(
            s.due_incidents(100).await.unwrap().is_empty(),
            "backing off"
        );
        assert_eq!(s.due_incidents(102).await.unwrap().len(), 1);
        assert!(!s.retry_later(&[id], 102, 3).await.unwrap());
        assert!(
            s.retry_later(&[id], 110, 3).await.unwrap(),
            "third failure: given up"
        );
        assert!(s.due_incidents(10_000).await.unwrap().is_empty());
    }

    fn storm_alert(cluster: &str, n: usize, resolved: bool) -> AlertRecord {
        AlertRecord {
            cluster: cluster.into(),
            fingerprint: format!("{cluster}{n:08}"),
            starts_at: "t".into(),
            resolved,
            resolution: "alert resolved at t2".into(),
            channel: Some(7),
            detail: Detail::Alert {
                alertname: format!("A{n}"),
                severity: String::new(),
                summary: String::new(),
                description: String::new(),
                generator_url: String::new(),
                starts_at: "t".into(),
                links: Vec::new(),
                truncated: 0,
            },
        }
    }

    #[tokio::test]
    async fn a_storm_is_listed_in_part_counted_in_full_and_hides_no_other_cluster() {
        let s = Store::open_in_memory().unwrap();
        let storm: Vec<AlertRecord> = (0..1_000)
            .map(|n| storm_alert("a", n, n % 100 == 0))
            .collect();
        s.record_alerts(storm, 1).await.unwrap();
        s.record_alerts(vec![storm_alert("b", 0, false)], 1)
            .await
            .unwrap();
        let Recorded::New(op) = record(&s, "k", failure("r1", "n", 1), true).await else {
            panic!()
        };
        let due = s.due_incidents(10).await.unwrap();
        assert_eq!(
            due.len(),
            LISTED + 2,
            "a's first {LISTED}, b's one, the failure"
        );
        assert_eq!(due[0].id, op, "the watcher's incident first");
        assert!(due.iter().any(|i| i.cluster == "b"));

        let listed: Vec<Incident> = due.into_iter().filter(|i| i.cluster == "a").collect();
        let last = listed.last().unwrap().id;
        let (counted, upto) = s.storm_rest("a", Some(7), last).await.unwrap();
        assert_eq!(
            counted,
            Counted {
                alerts: 950,
                resolved: 9
            }
        );
        s.mark_posted(&listed, Some(7), Some(70)).await.unwrap();
        assert_eq!(
            s.mark_counted("a", Some(7), (last, upto), Some(70))
                .await
                .unwrap(),
            950
        );
        // Nothing of a is due but the resolutions, which one edit of message 70 shows.
        let due = s.due_incidents(10).await.unwrap();
        let of_a: Vec<&Incident> = due.iter().filter(|i| i.cluster == "a").collect();
        assert!(of_a
            .iter()
            .all(|i| i.message_id == Some(70) && i.resolution.is_some()));
        let (shown, counted, unshown) = s.message_listing(7, 70).await.unwrap();
        assert_eq!(shown.len(), LISTED);
        assert_eq!(counted.alerts, 950);
        assert_eq!((counted.resolved, unshown.len()), (9, 9));
        s.mark_edited(&shown).await.unwrap();
        s.mark_resolutions_shown(unshown).await.unwrap();
        let due = s.due_incidents(10).await.unwrap();
        assert!(due.iter().all(|i| i.cluster != "a"), "{due:?}");
        // Every alert is still there, findable and resolvable.
        assert_eq!(s.incidents(2_000).await.unwrap().len(), 1_002);
        let late = storm_alert("a", 501, true);
        let out = s.record_alerts(vec![late], 20).await.unwrap();
        assert_eq!(out, [AlertRecorded::Resolved]);
        let (_, counted, unshown) = s.message_listing(7, 70).await.unwrap();
        assert_eq!((counted.resolved, unshown.len()), (10, 1));
    }
}
