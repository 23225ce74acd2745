//! The store's schema as numbered migrations; `PRAGMA user_version` records how many have run.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Each entry moves the schema from version `i` to `i + 1`. Append only: never edit a shipped one,
/// since files in the field already ran it.
pub(super) const MIGRATIONS: &[&str] = &[
    // v1
    "
    CREATE TABLE offers (
        id          TEXT PRIMARY KEY,
        action_json TEXT NOT NULL,
        cluster     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    );
    CREATE INDEX offers_expires_at ON offers(expires_at);

    CREATE TABLE confirmations (
        id             TEXT PRIMARY KEY,
        action_key     TEXT NOT NULL,
        action_json    TEXT NOT NULL,
        cluster        TEXT NOT NULL,
        replica        TEXT NOT NULL,
        sql            TEXT NOT NULL,
        requester_id   INTEGER NOT NULL,
        requester_name TEXT NOT NULL,
        place          TEXT NOT NULL,
        two_person     INTEGER NOT NULL CHECK (two_person IN (0, 1)),
        dry_run        INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,
        state          TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'executing',
                           'succeeded', 'failed', 'cancelled', 'expired', 'refused', 'dry_run')),
        approver_id    INTEGER,
        approver_name  TEXT,
        channel_id     INTEGER,
        message_id     INTEGER
    );
    CREATE INDEX confirmations_state ON confirmations(state);

    CREATE TABLE locks (
        target      TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        acquired_at INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    );

    CREATE TABLE cooldowns (
        target TEXT PRIMARY KEY,
        until  INTEGER NOT NULL
    );

    -- AUTOINCREMENT so a seq is never reused, even for the newest row.
    CREATE TABLE audit (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        action_id      TEXT NOT NULL,
        time           INTEGER NOT NULL,
        cluster        TEXT NOT NULL,
        replica        TEXT NOT NULL,
        action_key     TEXT NOT NULL,
        sql            TEXT NOT NULL,
        requester_id   INTEGER,
        requester_name TEXT NOT NULL,
        approver       TEXT,
        place          TEXT NOT NULL,
        decision       TEXT NOT NULL,
        reason         TEXT,
        query_id       TEXT,
        outcome        TEXT,
        duration_ms    INTEGER
    );
    CREATE INDEX audit_cluster_seq ON audit(cluster, seq);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;

    CREATE TABLE dedup (
        key        TEXT PRIMARY KEY,
        first_seen INTEGER NOT NULL
    );
    ",
    // v2: incidents chops posts on its own (watcher, alerts, pre-flight) and their delivery.
    "
    CREATE TABLE incidents (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        key              TEXT NOT NULL UNIQUE,
        kind             TEXT NOT NULL CHECK (kind IN ('backup', 'restore', 'unreachable',
                             'alert', 'preflight')),
        cluster          TEXT NOT NULL,
        subject          TEXT NOT NULL,
        started_at       INTEGER NOT NULL,
        detail_json      TEXT NOT NULL,
        channel_id       INTEGER,
        message_id       INTEGER,
        posted           INTEGER NOT NULL DEFAULT 0 CHECK (posted IN (0, 1)),
        resolution       TEXT,
        resolution_shown INTEGER NOT NULL DEFAULT 0 CHECK (resolution_shown IN (0, 1)),
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_try_at      INTEGER NOT NULL DEFAULT 0,
        given_up         INTEGER NOT NULL DEFAULT 0 CHECK (given_up IN (0, 1)),
        created_at       INTEGER NOT NULL
    );
    CREATE INDEX incidents_subject ON incidents(cluster, kind, subject);
    CREATE INDEX incidents_due ON incidents(posted, resolution_shown, given_up);

    -- One row, rewritten by the readiness probe: proof that a write commits.
    CREATE TABLE heartbeat (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at INTEGER NOT NULL
    );
    ",
    // v3: a posted incident whose header changed (another replica joined an ON CLUSTER failure).
    "
    ALTER TABLE incidents ADD COLUMN edit_due INTEGER NOT NULL DEFAULT 0 CHECK (edit_due IN (0, 1));

    -- When chops last finished a watcher round per cluster: failures that ended after it are
    -- news however long chops was down.
    CREATE TABLE watch_marks (
        cluster TEXT PRIMARY KEY,
        at      INTEGER NOT NULL
    );
    ",
    // v4: the incidents one message shows (a batch), found when the message is edited.
    "
    CREATE INDEX incidents_message ON incidents(channel_id, message_id);
    ",
    // v5: the audit's hash chain (see `audit.rs`). Rows already written stay unhashed: the chain
    // starts with the first row after this migration, and `audit_chain` records where.
    "
    ALTER TABLE audit ADD COLUMN hash TEXT;
    CREATE TABLE audit_chain (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        legacy_upto INTEGER NOT NULL,
        started_at  INTEGER NOT NULL
    );
    INSERT INTO audit_chain (id, legacy_upto, started_at) VALUES (1,
        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0),
        CAST(strftime('%s', 'now') AS INTEGER));
    ",
];

/// The triggers that keep the audit append-only, dropped and created again at every start: a
/// trigger dropped (or replaced) by hand with the sqlite3 shell does not outlive the next start.
/// What was changed meanwhile shows in the hash chain.
const GUARDS: &str = "
    DROP TRIGGER IF EXISTS audit_no_update;
    DROP TRIGGER IF EXISTS audit_no_delete;
    DROP TRIGGER IF EXISTS audit_chain_no_update;
    DROP TRIGGER IF EXISTS audit_chain_no_delete;
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
";

/// The version a fully migrated file has.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the file up to [`VERSION`] and re-creates the audit's triggers. Runs under BEGIN IMMEDIATE so two processes opening a new
/// file at once cannot both run the same migration.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if !(0..=VERSION).contains(&found) {
        return Err(StoreError::Schema {
            found,
            known: VERSION,
        });
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.execute_batch(sql)?;
    }
    if found < VERSION {
        // PRAGMA takes no bound parameters; VERSION is our own constant.
        tx.execute_batch(&format!("PRAGMA user_version = {VERSION}"))?;
    }
    tx.execute_batch(GUARDS)?;
    tx.commit()?;
    Ok(())
}
