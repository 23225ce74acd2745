//! Store tests: schema, click rules, locks and cooldowns, append-only audit, and races between
//! several stores on one file (each its own connection and thread, as separate processes would be).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// A temp store file, removed (with its WAL and shared-memory files) when dropped.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> TempDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempDb(std::env::temp_dir().join(format!("chops-store-{}-{n}.db", std::process::id())))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_dir_all(claim::dir_for(&self.0));
    }
}

const ALICE: u64 = 1001;
const BOB: u64 = 1002;

fn request(two_person: bool, created_at: i64, expires_at: i64) -> NewConfirmation {
    NewConfirmation {
        action_key: "restart:prod:ch-2:shop.orders".into(),
        action_json: r#"{"kind":"restart_replica"}"#.into(),
        cluster: "prod".into(),
        replica: "ch-2".into(),
        sql: "SYSTEM RESTART REPLICA shop.orders".into(),
        requester_id: ALICE,
        requester_name: "alice".into(),
        place: "guild:1/channel:2".into(),
        two_person,
        dry_run: false,
        created_at,
        expires_at,
    }
}

fn audit_row(cluster: &str, decision: &str) -> AuditRow {
    AuditRow {
        action_id: "a1".into(),
        time: 100,
        cluster: cluster.into(),
        replica: "ch-1".into(),
        action_key: "backup:prod:ch-1".into(),
        sql: "BACKUP …".into(),
        requester_id: Some(u64::MAX),
        requester_name: "alice".into(),
        approver: None,
        place: "cli:alice".into(),
        decision: decision.into(),
        reason: None,
        query_id: Some("q-1".into()),
        outcome: None,
        duration_ms: Some(12),
    }
}

#[tokio::test]
async fn schema_is_idempotent_and_the_file_is_wal() {
    let db = TempDb::new();
    let first = Store::open(&db.0).unwrap();
    first.remember("k", 1).await.unwrap();
    let second = Store::open(&db.0).unwrap();
    assert!(
        !second.remember("k", 2).await.unwrap(),
        "data survives the second open"
    );
    let (version, mode): (i64, String) = second
        .call(|c| {
            let v = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let m = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            Ok((v, m))
        })
        .await
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(mode, "wal");
    assert!(first.writable().await);
    assert!(second.writable().await);
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let db = TempDb::new();
    let store = Store::open(&db.0).unwrap();
    store
        .call(|c| c.execute_batch("PRAGMA user_version = 99"))
        .await
        .unwrap();
    assert!(matches!(
        Store::open(&db.0),
        Err(StoreError::Schema { found: 99, .. })
    ));
}

#[tokio::test]
async fn locks_refuse_others_until_expiry_and_only_the_owner_unlocks() {
    let s = Store::open_in_memory().unwrap();
    let t = "restart:prod:ch-2:shop.orders";
    assert_eq!(s.try_lock(t, "serve:1", 100, 60).await.unwrap(), Ok(()));
    assert_eq!(
        s.try_lock(t, "act:2", 120, 60).await.unwrap(),
        Err(LockHeld {
            owner: "serve:1".into(),
            expires_at: 160
        })
    );
    // Not re-entrant either.
    assert!(s.try_lock(t, "serve:1", 120, 60).await.unwrap().is_err());
    s.unlock(t, "act:2").await.unwrap();
    assert!(
        s.try_lock(t, "act:2", 121, 60).await.unwrap().is_err(),
        "non-owner unlock did nothing"
    );
    assert_eq!(
        s.try_lock(t, "act:2", 160, 60).await.unwrap(),
        Ok(()),
        "expired lock is taken"
    );
    s.unlock(t, "act:2").await.unwrap();
    assert_eq!(s.try_lock(t, "serve:1", 161, 60).await.unwrap(), Ok(()));
    // Other targets are independent.
    assert_eq!(
        s.try_lock("backup:prod:ch-1", "act:2", 161, 60)
            .await
            .unwrap(),
        Ok(())
    );
}

#[tokio::test]
async fn cooldowns() {
    let s = Store::open_in_memory().unwrap();
    assert_eq!(s.cooldown_until("t", 100).await.unwrap(), None);
    s.set_cooldown("t", 200).await.unwrap();
    assert_eq!(s.cooldown_until("t", 100).await.unwrap(), Some(200));
    assert_eq!(s.cooldown_until("t", 200).await.unwrap(), None);
    s.set_cooldown("t", 300).await.unwrap();
    assert_eq!(s.cooldown_until("t", 200).await.unwrap(), Some(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_confirms_and_locks_across_connections_have_one_winner() {
    let db = TempDb::new();
    let stores: Vec<Store> = (0..4).map(|_| Store::open(&db.0).unwrap()).collect();
    let id = stores[0]
        .create_confirmation(request(false, 100, 400))
        .await
        .unwrap();

    let confirms: Vec<_> = (0..20)
        .map(|i| {
            let (s, id) = (stores[i % 4].clone(), id.clone());
            tokio::spawn(async move { s.confirm(&id, ALICE, 200).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for h in confirms {
        outcomes.push(h.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|t| **t == Transition::Done).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|t| **t == Transition::AlreadyDone(ConfirmationState::Executing))
            .count(),
        19,
        "{outcomes:?}"
    );

    let locks: Vec<_> = (0..20)
        .map(|i| {
            let s = stores[i % 4].clone();
            tokio::spawn(async move { s.try_lock("target", &format!("owner-{i}"), 200, 60).await })
        })
        .collect();
    let mut won = 0;
    for h in locks {
        if h.await.unwrap().unwrap().is_ok() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

/// One-person: only the requester, once.
#[tokio::test]
async fn one_person_confirm_rules() {
    let s = Store::open_in_memory().unwrap();
    let one = s
        .create_confirmation(request(false, 100, 400))
        .await
        .unwrap();
    assert!(
        one.len() <= 32 && one.chars().all(|c| c.is_ascii_hexdigit()),
        "{one}"
    );
    assert_eq!(
        s.confirm(&one, BOB, 200).await.unwrap(),
        Transition::NotRequester
    );
    assert_eq!(
        s.approve(&one, BOB, "bob", 200).await.unwrap(),
        Transition::ApprovalNotRequired
    );
    assert_eq!(s.confirm(&one, ALICE, 200).await.unwrap(), Transition::Done);
    assert_eq!(s.unfinished().await.unwrap().len(), 1);
    assert!(s.finish(&one, FinalState::Succeeded).await.unwrap());
    assert!(
        !s.finish(&one, FinalState::Failed).await.unwrap(),
        "finish only from executing"
    );
    assert_eq!(
        s.confirm(&one, ALICE, 201).await.unwrap(),
        Transition::AlreadyDone(ConfirmationState::Succeeded)
    );
    assert_eq!(
        s.cancel(&one, ALICE, 201).await.unwrap(),
        Transition::AlreadyDone(ConfirmationState::Succeeded)
    );
    assert!(s.unfinished().await.unwrap().is_empty());
}

/// Two-person: approval first, by someone else.
#[tokio::test]
async fn two_person_confirm_rules() {
    let s = Store::open_in_memory().unwrap();
    let two = s
        .create_confirmation(request(true, 100, 400))
        .await
        .unwrap();
    assert_eq!(
        s.confirm(&two, ALICE, 200).await.unwrap(),
        Transition::NeedsApproval
    );
    assert_eq!(
        s.approve(&two, ALICE, "alice", 200).await.unwrap(),
        Transition::ApproverIsRequester
    );
    assert_eq!(
        s.approve(&two, BOB, "bob", 200).await.unwrap(),
        Transition::Done
    );
    assert_eq!(
        s.approve(&two, BOB, "bob", 201).await.unwrap(),
        Transition::AlreadyDone(ConfirmationState::Approved)
    );
    let row = s.confirmation(&two).await.unwrap().unwrap();
    assert_eq!(row.state, ConfirmationState::Approved);
    assert_eq!(
        (row.approver_id, row.approver_name.as_deref()),
        (Some(BOB), Some("bob"))
    );
    assert_eq!(
        s.confirm(&two, BOB, 202).await.unwrap(),
        Transition::NotRequester
    );
    assert_eq!(s.confirm(&two, ALICE, 202).await.unwrap(), Transition::Done);
}

/// Expiry marks the row; only the requester cancels; unknown ids are unknown.
#[tokio::test]
async fn expiry_and_cancel_rules() {
    let s = Store::open_in_memory().unwrap();
    let late = s
        .create_confirmation(request(false, 100, 400))
        .await
        .unwrap();
    assert_eq!(
        s.confirm(&late, ALICE, 400).await.unwrap(),
        Transition::Expired
    );
    let row = s.confirmation(&late).await.unwrap().unwrap();
    assert_eq!(row.state, ConfirmationState::Expired);
    assert_eq!(
        s.confirm(&late, ALICE, 401).await.unwrap(),
        Transition::Expired
    );

    // Cancel: requester only.
    let gone = s
        .create_confirmation(request(true, 100, 400))
        .await
        .unwrap();
    assert_eq!(
        s.cancel(&gone, BOB, 200).await.unwrap(),
        Transition::NotRequester
    );
    assert_eq!(s.cancel(&gone, ALICE, 200).await.unwrap(), Transition::Done);
    assert_eq!(
        s.approve(&gone, BOB, "bob", 201).await.unwrap(),
        Transition::AlreadyDone(ConfirmationState::Cancelled)
    );

    assert_eq!(
        s.confirm("nope", ALICE, 200).await.unwrap(),
        Transition::Unknown
    );
    assert_eq!(s.confirmation("nope").await.unwrap(), None);
}

#[tokio::test]
async fn confirmation_round_trips() {
    let s = Store::open_in_memory().unwrap();
    let mut n = request(true, 100, 400);
    n.requester_id = u64::MAX;
    n.dry_run = true;
    let id = s.create_confirmation(n.clone()).await.unwrap();
    s.set_message(&id, 42, u64::MAX - 1).await.unwrap();
    let c = s.confirmation(&id).await.unwrap().unwrap();
    let expected = Confirmation {
        id: id.clone(),
        action_key: n.action_key,
        action_json: n.action_json,
        cluster: n.cluster,
        replica: n.replica,
        sql: n.sql,
        requester_id: u64::MAX,
        requester_name: n.requester_name,
        place: n.place,
        two_person: true,
        dry_run: true,
        created_at: 100,
        expires_at: 400,
        state: ConfirmationState::Pending,
        approver_id: None,
        approver_name: None,
        channel_id: Some(42),
        message_id: Some(u64::MAX - 1),
    };
    assert_eq!(c, expected);
    s.set_state(&id, ConfirmationState::Refused).await.unwrap();
    assert_eq!(
        s.confirmation(&id).await.unwrap().unwrap().state,
        ConfirmationState::Refused
    );
    for state in ConfirmationState::ALL {
        assert_eq!(ConfirmationState::parse(state.as_str()), Some(state));
    }
}

#[tokio::test]
async fn audit_is_append_only_and_newest_first() {
    let s = Store::open_in_memory().unwrap();
    let a = s.audit(audit_row("prod", "requested")).await.unwrap();
    let b = s.audit(audit_row("stage", "requested")).await.unwrap();
    let c = s.audit(audit_row("prod", "succeeded")).await.unwrap();
    assert!(a < b && b < c);

    let update = s
        .call(|c| c.execute("UPDATE audit SET outcome = 'forged'", []))
        .await;
    assert!(matches!(update, Err(StoreError::Sqlite(_))), "{update:?}");
    let delete = s.call(|c| c.execute("DELETE FROM audit", [])).await;
    assert!(matches!(delete, Err(StoreError::Sqlite(_))), "{delete:?}");

    let all = s.audit_rows(None, 10).await.unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![c, b, a]);
    assert_eq!(
        all[2].row,
        audit_row("prod", "requested"),
        "round-trips, u64::MAX included"
    );
    let prod = s.audit_rows(Some("prod"), 10).await.unwrap();
    assert_eq!(prod.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![c, a]);
    assert_eq!(prod[0].row.decision, "succeeded");
    assert_eq!(s.audit_rows(Some("prod"), 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn offers_expire_and_remember_is_once() {
    let s = Store::open_in_memory().unwrap();
    let id = s
        .put_offer("{\"a\":1}".into(), "prod".into(), 100, 60)
        .await
        .unwrap();
    assert_eq!(
        s.offer(&id, 159).await.unwrap().as_deref(),
        Some("{\"a\":1}")
    );
    assert_eq!(s.offer(&id, 160).await.unwrap(), None);
    assert_eq!(s.offer("unknown", 100).await.unwrap(), None);
    let other = s
        .put_offer("{}".into(), "prod".into(), 100, 60)
        .await
        .unwrap();
    assert_ne!(id, other);

    assert!(s.remember("incident:prod:655", 1).await.unwrap());
    assert!(!s.remember("incident:prod:655", 2).await.unwrap());
}

#[tokio::test]
async fn a_panicking_call_leaves_the_store_usable() {
    let s = Store::open_in_memory().unwrap();
    let r: Result<(), _> = s
        .call(|c| {
            c.execute_batch("BEGIN IMMEDIATE")?;
            panic!("boom")
        })
        .await;
    assert!(matches!(r, Err(StoreError::Closed)));
    assert!(s.writable().await, "the open transaction was rolled back");
    assert!(s.remember("after", 1).await.unwrap());
}

/// Runs `sql` on the file as the sqlite3 shell would: its own connection, no chops in between.
fn shell(db: &TempDb, sql: &str) {
    let c = rusqlite::Connection::open(&db.0).unwrap();
    c.execute_batch(sql).unwrap();
}

async fn verified(s: &Store) -> Result<ChainIntact, ChainBroken> {
    s.verify_audit().await.unwrap()
}

#[tokio::test]
async fn the_chain_names_the_first_row_changed_behind_the_triggers() {
    let db = TempDb::new();
    let s = Store::open(&db.0).unwrap();
    for d in ["requested", "confirmed", "executing", "succeeded"] {
        s.audit(audit_row("prod", d)).await.unwrap();
    }
    let intact = verified(&s).await.unwrap();
    assert_eq!(intact.to_string(), "4 rows, chain intact");
    assert_eq!(s.chain_broken(), None);
    // History rewritten with the triggers dropped: the chain says which row.
    shell(
        &db,
        "DROP TRIGGER audit_no_update; UPDATE audit SET outcome = 'forged' WHERE seq = 3;",
    );
    assert_eq!(verified(&s).await, Err(ChainBroken::Changed(3)));
    assert_eq!(
        s.chain_broken().as_deref(),
        Some("row 3 does not verify: it was changed after it was written")
    );
    // The next start puts the trigger back.
    let again = Store::open(&db.0).unwrap();
    let update = again
        .call(|c| c.execute("UPDATE audit SET outcome = 'x' WHERE seq = 1", []))
        .await;
    assert!(update.is_err(), "{update:?}");
}

#[tokio::test]
async fn deleted_rows_are_missing_in_the_middle_and_at_the_end() {
    let db = TempDb::new();
    let s = Store::open(&db.0).unwrap();
    for d in ["requested", "confirmed", "executing", "succeeded"] {
        s.audit(audit_row("prod", d)).await.unwrap();
    }
    shell(
        &db,
        "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 4;",
    );
    assert_eq!(
        verified(&s).await,
        Err(ChainBroken::Missing { from: 4, to: 4 })
    );
    // A row written after the deletion does not cover it up.
    s.audit(audit_row("prod", "requested")).await.unwrap();
    assert_eq!(
        verified(&s).await,
        Err(ChainBroken::Missing { from: 4, to: 4 })
    );
    shell(
        &db,
        "DROP TRIGGER IF EXISTS audit_no_delete; DELETE FROM audit WHERE seq = 2;",
    );
    assert_eq!(
        verified(&s).await,
        Err(ChainBroken::Missing { from: 2, to: 2 })
    );
}

#[tokio::test]
async fn an_older_file_starts_its_chain_at_the_migration() {
    let db = TempDb::new();
    {
        // A file as schema v4 left it, with two rows.
        let mut c = rusqlite::Connection::open(&db.0).unwrap();
        let tx = c.transaction().unwrap();
        for sql in &schema::MIGRATIONS[..4] {
            tx.execute_batch(sql).unwrap();
        }
        tx.execute_batch("PRAGMA user_version = 4").unwrap();
        for d in ["requested", "refused"] {
            tx.execute(
                "INSERT INTO audit (action_id, time, cluster, replica, action_key, sql,
                     requester_name, place, decision) VALUES ('a0', 1, 'prod', 'r1', 'k', 's',
                     'alice', 'cli:alice', ?1)",
                [d],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let s = Store::open(&db.0).unwrap();
    s.audit(audit_row("prod", "requested")).await.unwrap();
    let intact = verified(&s).await.unwrap();
    assert_eq!((intact.rows, intact.legacy), (3, 2));
    assert!(
        intact
            .to_string()
            .starts_with("3 rows, chain intact (rows 1–2 were written before the chain began on "),
        "{intact}"
    );
    // Moving the start to hide a change is itself seen.
    shell(
        &db,
        "DROP TRIGGER audit_chain_no_update; UPDATE audit_chain SET legacy_upto = 3;",
    );
    assert_eq!(verified(&s).await, Err(ChainBroken::StartMoved(3)));
}

#[tokio::test]
async fn a_new_store_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("chops-private-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("sub").join("chops.db");
    let s = Store::open(&path).unwrap();
    assert!(s.writable().await);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&claim::dir_for(&path)), 0o700);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_end_is_recorded_once() {
    let s = Store::open_in_memory().unwrap();
    let id = s
        .create_confirmation(request(false, 100, 400))
        .await
        .unwrap();
    assert_eq!(s.confirm(&id, ALICE, 200).await.unwrap(), Transition::Done);
    let row = |d: &str| AuditRow {
        action_id: id.clone(),
        ..audit_row("prod", d)
    };
    assert!(s
        .end_action(&id, FinalState::Succeeded, row("succeeded"))
        .await
        .unwrap());
    assert!(!s
        .end_action(&id, FinalState::Failed, row("failed"))
        .await
        .unwrap());
    let rows = s.audit_rows(None, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].row.decision, "succeeded");
    assert_eq!(
        s.confirmation(&id).await.unwrap().unwrap().state,
        ConfirmationState::Succeeded
    );
}

/// A store file deleted, replaced or made read-only while open is no longer intact (its
/// connection still commits — into a file nobody reads again), nor writable.
#[tokio::test]
async fn a_deleted_replaced_or_read_only_file_is_not_intact() {
    let db = TempDb::new();
    let s = Store::open(&db.0).unwrap();
    assert!(s.file_intact() && s.writable().await);
    std::fs::remove_file(&db.0).unwrap();
    assert!(!s.file_intact());
    assert!(!s.writable().await);
    std::fs::write(&db.0, b"").unwrap();
    assert!(!s.file_intact(), "another file at the same path");

    let db = TempDb::new();
    let s = Store::open(&db.0).unwrap();
    let mut perms = std::fs::metadata(&db.0).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&db.0, perms).unwrap();
    assert!(!s.file_intact());
}
