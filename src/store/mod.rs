//! Durable state for guarded remediation: offers, confirmations, locks, cooldowns, the audit log
//! (hash-chained, `audit`) and dedup keys, in one SQLite file shared by `chops serve` and any
//! number of `chops act`; next to it, the claims of running actions (`claim`).
//!
//! Every decision that must be exclusive across processes is one conditional SQL statement; where
//! the loser needs to learn why, that statement and the re-read run in one BEGIN IMMEDIATE
//! transaction. The file is in WAL mode with a busy timeout, so processes queue rather than fail.
//! A `rusqlite::Connection` is not `Sync` and blocks, so each [`Store`] owns its connection on a
//! dedicated thread and async callers send it closures ([`Store::call`]): the runtime never waits
//! on SQLite.

mod audit;
mod claim;
mod incidents;
mod schema;
#[cfg(test)]
mod tests;
mod types;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

pub use audit::{ChainBroken, ChainIntact};
pub use claim::Claim;
pub use incidents::{AlertRecord, AlertRecorded, FailureRecord, Recorded, LISTED};
pub use schema::VERSION as SCHEMA_VERSION;
pub use types::{
    AuditRecord, AuditRow, Confirmation, ConfirmationState, FinalState, LockHeld, NewConfirmation,
    Transition,
};

/// How long a statement waits for another process's write lock before failing with SQLITE_BUSY.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The worker thread is gone, or the closure panicked before answering.
    #[error("store: closed")]
    Closed,
    #[error("store: {0}")]
    Io(#[from] std::io::Error),
    #[error("store: file has schema version {found}; this build knows versions up to {known}")]
    Schema { found: i64, known: i64 },
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to one connection on its own thread. Cheap to clone; the thread (and the connection)
/// ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    /// The file, for the readiness check (None in memory).
    path: Option<Arc<std::path::PathBuf>>,
    /// Where the owners of executing actions hold their claims.
    claims: claim::Claims,
    /// Why the audit chain did not verify, once [`Store::verify_audit`] found it broken.
    chain: Arc<Mutex<Option<String>>>,
    /// The file's (device, inode) when opened: a file deleted or replaced since no longer has it.
    identity: Option<(u64, u64)>,
}

/// Creates what is missing of the store's directory (0700) and file (0600): it holds who did
/// what, so only chops' own user reads it. Modes of what exists already are left as they are.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    let already = |e: &std::io::Error| e.kind() == std::io::ErrorKind::AlreadyExists;
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .create(claim::dir_for(path))
    {
        Err(e) if !already(&e) => return Err(e.into()),
        _ => {}
    }
    // SQLite gives its -wal and -shm files the mode of the database file.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if !already(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

impl Store {
    /// Opens (creating if needed, private to chops' user) the store file and its parent
    /// directory, switches it to WAL and brings the schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        create_private(path)?;
        let conn = Connection::open(path)?;
        // First, so the journal-mode switch and the migration wait for other processes too.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Still correct (rollback journal), only readers block writers.
            tracing::warn!(path = %path.display(), mode, "store: WAL unavailable");
        }
        let mut store = Self::start(conn)?;
        store.path = Some(Arc::new(path.to_path_buf()));
        store.claims = claim::Claims::Dir(Arc::new(claim::dir_for(path)));
        store.identity = identity(path);
        Ok(store)
    }

    /// A private in-memory store, for unit tests.
    #[cfg(test)]
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::start(Connection::open_in_memory()?)
    }

    fn start(mut conn: Connection) -> Result<Store, StoreError> {
        conn.pragma_update(None, "foreign_keys", true)?;
        // A confirm or audit row that was acknowledged must survive power loss, not only a crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut conn)?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("chops-store".into())
            .spawn(move || worker(conn, inbox))?;
        Ok(Store {
            jobs,
            path: None,
            claims: claim::Claims::Memory(Arc::default()),
            chain: Arc::default(),
            identity: None,
        })
    }

    /// Runs `f` on the store's connection and returns its result. The one bridge to SQLite.
    ///
    /// Once sent, `f` runs to completion even if the returned future is dropped.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        answer
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(StoreError::Sqlite)
    }

    /// Whether the store can take writes now: its file is intact ([`Store::file_intact`]; a file
    /// made read-only fails the next start even though the open connection still writes), and a one-row write
    /// commits (waits up to [`BUSY_TIMEOUT`] for other processes).
    pub async fn writable(&self) -> bool {
        if !self.file_intact() {
            return false;
        }
        let now = crate::clock::now();
        self.call(move |c| {
            c.execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, ?1)
                 ON CONFLICT(id) DO UPDATE SET at = excluded.at",
                params![now],
            )
        })
        .await
        .is_ok()
    }

    /// Whether what this store writes still lands in its file: the path still names the file
    /// opened (not deleted, not replaced) and it is not read-only. A deleted file keeps taking
    /// writes through the open connection — into an inode nobody will ever open again.
    pub fn file_intact(&self) -> bool {
        let Some(p) = &self.path else {
            return true;
        };
        match std::fs::metadata(p.as_path()) {
            Ok(m) => !m.permissions().readonly() && identity(p) == self.identity,
            Err(_) => false,
        }
    }

    // ---- offers ------------------------------------------------------------------------------

    /// Stores an action shown as a button; the button's custom_id carries only the returned id.
    pub async fn put_offer(
        &self,
        action_json: String,
        cluster: String,
        now: i64,
        ttl_secs: i64,
    ) -> Result<String, StoreError> {
        self.call(move |c| {
            // Sweeping here keeps the table bounded without a timer; an expired offer is never read.
            c.execute("DELETE FROM offers WHERE expires_at <= ?1", [now])?;
            let id = new_id();
            c.execute(
                "INSERT INTO offers (id, action_json, cluster, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, action_json, cluster, now, now.saturating_add(ttl_secs)],
            )?;
            Ok(id)
        })
        .await
    }

    /// The offer's action JSON; `None` if unknown or expired.
    pub async fn offer(&self, id: &str, now: i64) -> Result<Option<String>, StoreError> {
        let sql = "SELECT action_json FROM offers WHERE id = ?1 AND expires_at > ?2";
        self.still_valid(sql, id, now).await
    }

    /// The one value `sql` selects for `key` (`?1`) at `now` (`?2`), if a row is still valid.
    async fn still_valid<T: rusqlite::types::FromSql + Send + 'static>(
        &self,
        sql: &'static str,
        key: &str,
        now: i64,
    ) -> Result<Option<T>, StoreError> {
        let key = key.to_owned();
        self.call(move |c| c.query_row(sql, params![key, now], |r| r.get(0)).optional())
            .await
    }

    // ---- confirmations -----------------------------------------------------------------------

    /// Records a requested action in state `pending`.
    pub async fn create_confirmation(&self, n: NewConfirmation) -> Result<String, StoreError> {
        self.call(move |c| {
            let id = new_id();
            c.execute(
                "INSERT INTO confirmations (id, action_key, action_json, cluster, replica, sql,
                     requester_id, requester_name, place, two_person, dry_run, created_at,
                     expires_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'pending')",
                params![
                    id,
                    n.action_key,
                    n.action_json,
                    n.cluster,
                    n.replica,
                    n.sql,
                    to_sql_id(n.requester_id),
                    n.requester_name,
                    n.place,
                    n.two_person,
                    n.dry_run,
                    n.created_at,
                    n.expires_at,
                ],
            )?;
            Ok(id)
        })
        .await
    }

    pub async fn confirmation(&self, id: &str) -> Result<Option<Confirmation>, StoreError> {
        let id = id.to_owned();
        self.call(move |c| load(c, &id)).await
    }

    /// Remembers which message shows this confirmation, so a later process can edit it.
    pub async fn set_message(
        &self,
        id: &str,
        channel_id: u64,
        message_id: u64,
    ) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.call(move |c| {
            c.execute(
                "UPDATE confirmations SET channel_id = ?2, message_id = ?3 WHERE id = ?1",
                params![id, to_sql_id(channel_id), to_sql_id(message_id)],
            )
            .map(drop)
        })
        .await
    }

    /// Second person's approval: two-person only, not by the requester, `pending` → `approved`.
    /// Role checks are the caller's job.
    pub async fn approve(
        &self,
        id: &str,
        approver_id: u64,
        approver_name: &str,
        now: i64,
    ) -> Result<Transition, StoreError> {
        let update =
            "UPDATE confirmations SET state = 'approved', approver_id = ?2, approver_name = ?3
             WHERE id = ?1 AND state = 'pending' AND two_person = 1 AND requester_id <> ?2
               AND expires_at > ?4";
        let params = (
            id.to_owned(),
            to_sql_id(approver_id),
            approver_name.to_owned(),
            now,
        );
        self.click(id, now, update, params, move |row| {
            if !row.two_person {
                Transition::ApprovalNotRequired
            } else if row.requester_id == approver_id {
                Transition::ApproverIsRequester
            } else {
                // Open, unexpired, two-person, other person: only `approved` is left.
                Transition::AlreadyDone(row.state)
            }
        })
        .await
    }

    /// The requester's Confirm: `pending` (one-person) or `approved` → `executing`. Single use:
    /// of any number of concurrent confirms, across processes, exactly one gets `Done`.
    pub async fn confirm(
        &self,
        id: &str,
        clicker_id: u64,
        now: i64,
    ) -> Result<Transition, StoreError> {
        let update = "UPDATE confirmations SET state = 'executing'
             WHERE id = ?1 AND requester_id = ?2 AND expires_at > ?3
               AND (state = 'approved' OR (state = 'pending' AND two_person = 0))";
        let params = (id.to_owned(), to_sql_id(clicker_id), now);
        self.click(id, now, update, params, move |row| {
            if row.requester_id != clicker_id {
                Transition::NotRequester
            } else {
                // Requester, open, unexpired: the UPDATE only skips a pending two-person row.
                Transition::NeedsApproval
            }
        })
        .await
    }

    /// The requester's Cancel: `pending` / `approved` → `cancelled`.
    pub async fn cancel(
        &self,
        id: &str,
        clicker_id: u64,
        now: i64,
    ) -> Result<Transition, StoreError> {
        let update = "UPDATE confirmations SET state = 'cancelled'
             WHERE id = ?1 AND requester_id = ?2 AND expires_at > ?3
               AND state IN ('pending', 'approved')";
        let params = (id.to_owned(), to_sql_id(clicker_id), now);
        // Open and unexpired, so the UPDATE skipped it for the clicker alone.
        self.click(id, now, update, params, |_| Transition::NotRequester)
            .await
    }

    /// One click's move of confirmation `id`, in one IMMEDIATE transaction: `update` (bound to
    /// `params`) moves the row, or [`explain`] says why it did not, `judge` deciding an open,
    /// unexpired row.
    async fn click(
        &self,
        id: &str,
        now: i64,
        update: &'static str,
        params: impl rusqlite::Params + Send + 'static,
        judge: impl FnOnce(&Confirmation) -> Transition + Send + 'static,
    ) -> Result<Transition, StoreError> {
        let id = id.to_owned();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let t = if tx.execute(update, params)? == 1 {
                Transition::Done
            } else {
                explain(&tx, &id, now, judge)?
            };
            tx.commit()?;
            Ok(t)
        })
        .await
    }

    /// Records how an execution ended: `executing` → `state`. Returns whether this call moved it
    /// (false: unknown id, or not executing).
    pub async fn finish(&self, id: &str, state: FinalState) -> Result<bool, StoreError> {
        let state = ConfirmationState::from(state).as_str();
        let sql = "UPDATE confirmations SET state = ?2 WHERE id = ?1 AND state = 'executing'";
        self.changed_one(sql, (id.to_owned(), state)).await
    }

    /// Runs `sql` bound to `params`: true when it changed exactly one row.
    async fn changed_one(
        &self,
        sql: &'static str,
        params: impl rusqlite::Params + Send + 'static,
    ) -> Result<bool, StoreError> {
        self.call(move |c| c.execute(sql, params).map(|n| n == 1))
            .await
    }

    /// Records how an execution ended, in one transaction: `executing` → `state` and, only when
    /// this call moved it, the outcome's audit row. False (and no row): it was not executing —
    /// someone else recorded its end — so an action's end is written once, by one process.
    pub async fn end_action(
        &self,
        id: &str,
        state: FinalState,
        row: AuditRow,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let state = ConfirmationState::from(state).as_str();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let moved = tx.execute(
                "UPDATE confirmations SET state = ?2 WHERE id = ?1 AND state = 'executing'",
                params![id, state],
            )? == 1;
            if moved {
                audit::append(&tx, &row)?;
            }
            tx.commit()?;
            Ok(moved)
        })
        .await
    }

    /// Confirmations left `executing` (a process died mid-action), oldest first, to reconcile at start.
    pub async fn unfinished(&self) -> Result<Vec<Confirmation>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CONFIRMATION_COLUMNS} FROM confirmations
                 WHERE state = 'executing' ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([], confirmation_from_row)?;
            rows.collect()
        })
        .await
    }

    /// Sets the state unconditionally (reconciliation, administration).
    pub async fn set_state(&self, id: &str, state: ConfirmationState) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.call(move |c| {
            c.execute(
                "UPDATE confirmations SET state = ?2 WHERE id = ?1",
                params![id, state.as_str()],
            )
            .map(drop)
        })
        .await
    }

    // ---- locks and cooldowns -----------------------------------------------------------------

    /// Takes the lock on `target` for `owner` until `now + ttl_secs`, unless someone holds an
    /// unexpired one (even the same owner: locks are not re-entrant).
    pub async fn try_lock(
        &self,
        target: &str,
        owner: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<Result<(), LockHeld>, StoreError> {
        let (target, owner) = (target.to_owned(), owner.to_owned());
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "INSERT INTO locks (target, owner, acquired_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(target) DO UPDATE SET owner = excluded.owner,
                     acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
                 WHERE locks.expires_at <= excluded.acquired_at",
                params![target, owner, now, now.saturating_add(ttl_secs)],
            )?;
            let out = if changed == 1 {
                Ok(())
            } else {
                Err(tx.query_row(
                    "SELECT owner, expires_at FROM locks WHERE target = ?1",
                    [&target],
                    |r| {
                        Ok(LockHeld {
                            owner: r.get(0)?,
                            expires_at: r.get(1)?,
                        })
                    },
                )?)
            };
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Releases the lock if `owner` holds it; anyone else's call does nothing.
    pub async fn unlock(&self, target: &str, owner: &str) -> Result<(), StoreError> {
        let (target, owner) = (target.to_owned(), owner.to_owned());
        self.call(move |c| {
            c.execute(
                "DELETE FROM locks WHERE target = ?1 AND owner = ?2",
                params![target, owner],
            )
            .map(drop)
        })
        .await
    }

    pub async fn set_cooldown(&self, target: &str, until: i64) -> Result<(), StoreError> {
        let target = target.to_owned();
        self.call(move |c| {
            c.execute(
                "INSERT INTO cooldowns (target, until) VALUES (?1, ?2)
                 ON CONFLICT(target) DO UPDATE SET until = excluded.until",
                params![target, until],
            )
            .map(drop)
        })
        .await
    }

    /// `Some(until)` while the target is cooling down.
    pub async fn cooldown_until(&self, target: &str, now: i64) -> Result<Option<i64>, StoreError> {
        let sql = "SELECT until FROM cooldowns WHERE target = ?1 AND until > ?2";
        self.still_valid(sql, target, now).await
    }

    // ---- dedup -------------------------------------------------------------------------------

    /// Records `key`; true the first time it is seen, false ever after.
    pub async fn remember(&self, key: &str, now: i64) -> Result<bool, StoreError> {
        let sql = "INSERT INTO dedup (key, first_seen) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING";
        self.changed_one(sql, (key.to_owned(), now)).await
    }
}

/// A file's (device, inode), None when it cannot be read.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn worker(mut conn: Connection, inbox: mpsc::Receiver<Job>) {
    while let Ok(job) = inbox.recv() {
        // A panicking closure drops its reply (that caller sees Closed); it must not take the
        // connection away from every later caller, nor leave a transaction open on it.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err()
            && !conn.is_autocommit()
        {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

const CONFIRMATION_COLUMNS: &str = "id, action_key, action_json, cluster, replica, sql, \
     requester_id, requester_name, place, two_person, dry_run, created_at, expires_at, state, \
     approver_id, approver_name, channel_id, message_id";

fn load(c: &Connection, id: &str) -> rusqlite::Result<Option<Confirmation>> {
    c.query_row(
        &format!("SELECT {CONFIRMATION_COLUMNS} FROM confirmations WHERE id = ?1"),
        [id],
        confirmation_from_row,
    )
    .optional()
}

fn confirmation_from_row(r: &Row<'_>) -> rusqlite::Result<Confirmation> {
    let state: String = r.get(13)?;
    let state = ConfirmationState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            13,
            Type::Text,
            format!("unknown confirmation state {state:?}").into(),
        )
    })?;
    Ok(Confirmation {
        id: r.get(0)?,
        action_key: r.get(1)?,
        action_json: r.get(2)?,
        cluster: r.get(3)?,
        replica: r.get(4)?,
        sql: r.get(5)?,
        requester_id: from_sql_id(r.get(6)?),
        requester_name: r.get(7)?,
        place: r.get(8)?,
        two_person: r.get(9)?,
        dry_run: r.get(10)?,
        created_at: r.get(11)?,
        expires_at: r.get(12)?,
        state,
        approver_id: r.get::<_, Option<i64>>(14)?.map(from_sql_id),
        approver_name: r.get(15)?,
        channel_id: r.get::<_, Option<i64>>(16)?.map(from_sql_id),
        message_id: r.get::<_, Option<i64>>(17)?.map(from_sql_id),
    })
}

/// Why a click's conditional UPDATE changed nothing, read inside the same IMMEDIATE transaction so
/// no other process can move the row in between. Closed and expired rows are decided here (an
/// open row past its deadline is marked `expired`); `judge` decides open, unexpired rows.
fn explain(
    tx: &Transaction<'_>,
    id: &str,
    now: i64,
    judge: impl FnOnce(&Confirmation) -> Transition,
) -> rusqlite::Result<Transition> {
    let Some(row) = load(tx, id)? else {
        return Ok(Transition::Unknown);
    };
    if row.state == ConfirmationState::Expired {
        return Ok(Transition::Expired);
    }
    if !row.state.is_open() {
        return Ok(Transition::AlreadyDone(row.state));
    }
    if row.expires_at <= now {
        tx.execute(
            "UPDATE confirmations SET state = 'expired' WHERE id = ?1",
            [id],
        )?;
        return Ok(Transition::Expired);
    }
    Ok(judge(&row))
}

// Discord ids are u64 and SQLite integers i64: store the bit pattern, so every id round-trips.
fn to_sql_id(id: u64) -> i64 {
    id as i64
}

fn from_sql_id(v: i64) -> u64 {
    v as u64
}

/// 16 hex chars: fits a Discord custom_id with room to spare, and is not guessable from another.
fn new_id() -> String {
    format!("{:016x}", crate::clock::random_u64())
}
