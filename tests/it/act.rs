//! `chops act` on real local clusters: a per-replica BACKUP and SYSTEM RESTART REPLICA run as the
//! operator on exactly one replica, after the guard, with an audit trail; refusals (no role,
//! Keeper down, cooldown, not confirmed), dry runs that send nothing, twenty racing processes that
//! send one statement, and an action whose process was killed, reconciled by the next one.

use crate::common::*;
// `chops act` takes the requester from the password database, never from `$USER`.
use testkit::os_user;

use chops::domain::sql;

/// A local cluster whose config lets the OS user act (no cooldown unless asked).
fn cluster(extra: &str) -> LocalCluster {
    let c = LocalCluster::start(3).expect("cluster");
    allow_actions(&c, extra);
    c
}

/// `chops act restart-replica --replica <replica> --table shop.orders --yes`.
fn restart(c: &LocalCluster, replica: &str) -> Output {
    act(
        c,
        &[
            "restart-replica",
            "--replica",
            replica,
            "--table",
            "shop.orders",
            "--yes",
        ],
    )
}

/// `chops act backup --replica <replica> --yes` as a process to start.
fn backup_command(c: &LocalCluster, replica: &str) -> std::process::Command {
    act_command(c, &["backup", "--replica", replica, "--yes"])
}

fn audit(c: &LocalCluster) -> String {
    let config = c.config_path.to_str().unwrap();
    chops(&["--config", config, "audit", "--limit", "100"], &[]).stdout
}

#[test]
fn backup_runs_on_one_replica_as_the_operator_and_is_audited() {
    let c = cluster("");
    shop(&c.urls[0], 1000);
    let out = act(&c, &["backup", "--replica", "r1", "--yes"]);
    out.assert_code(0);
    assert_starts_with(&out.stdout, "succeeded: backup created on r1");
    // The preview listed the exact statement and every precondition.
    assert_contains(
        &out.stderr,
        "BACKUP DATABASE `shop` TO Disk('backups', 'chops-local-r1-",
    );
    assert_contains(&out.stderr, "[ok]  disk 'backups' exists on r1");
    let sent = operator_statements(&c, 1);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("BACKUP DATABASE `shop` TO Disk('backups', 'chops-local-r1-"));
    assert!(sent[0].contains(" SETTINGS id = 'chops-local-r1-") && sent[0].ends_with(" ASYNC"));
    assert!(operator_statements(&c, 2).is_empty() && operator_statements(&c, 3).is_empty());
    let id = sent[0]
        .split("SETTINGS id = '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let status = must(
        &c.urls[0],
        &format!(
            "SELECT status FROM system.backups WHERE id = {}",
            sql::string(id)
        ),
    );
    assert_eq!(status.trim(), "BACKUP_CREATED");
    // Audit: the intent before the outcome, with the query id.
    let log = audit(&c);
    let decisions: Vec<&str> = log.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(
        decisions,
        ["succeeded", "executing", "confirmed", "requested"],
        "{log}"
    );
    assert!(
        log.lines().next().unwrap().contains("query_id: chops-"),
        "{log}"
    );
    let me = os_user();
    assert!(log.contains(&format!("by cli:{me} in cli:{me}")), "{log}");
}

#[test]
fn restart_runs_on_that_replica_and_keeper_down_refuses_it() {
    let c = cluster("cooldown_secs = 0");
    // One table, three replicas (one Keeper path): r2 is not the last active one.
    for url in &c.urls[1..] {
        replicated_shop(url, &["orders"]);
    }
    let out = restart(&c, "r2");
    out.assert_code(0);
    assert_contains(&out.stdout, "shop.orders restarted on r2");
    assert_contains(&out.stdout, "shop.orders on r2: read-only, queue 0 → ");
    assert_eq!(
        operator_statements(&c, 2),
        ["SYSTEM RESTART REPLICA `shop`.`orders`"]
    );
    assert!(operator_statements(&c, 1).is_empty() && operator_statements(&c, 3).is_empty());

    // Not a replicated table there: refused before any SQL exists.
    let out = restart(&c, "r1");
    assert!(operator_statements(&c, 1).is_empty());
    out.assert_code(1);
    assert_eq!(
        out.stderr.trim(),
        "chops: Not now: shop.orders is not a Replicated table on r1.",
        "refused before any preview"
    );

    c.stop_keeper();
    let out = restart(&c, "r2");
    out.assert_code(1);
    assert_starts_with(&out.stdout, "refused: Not now: Keeper does not answer");
    assert_eq!(operator_statements(&c, 2).len(), 1, "no second statement");
    let log = audit(&c);
    assert!(
        log.lines()
            .next()
            .unwrap()
            .contains("refused restart:local:r2:shop.orders"),
        "{log}"
    );
    assert!(
        log.contains("reason: Not now: Keeper does not answer"),
        "{log}"
    );
}

#[test]
fn refusals_are_audited_and_send_nothing() {
    let c = cluster("cooldown_secs = 600");
    shop(&c.urls[0], 100);
    // Not in cli_users.
    let text = std::fs::read_to_string(&c.config_path).unwrap();
    let other = c.dir.join("other-user.toml");
    std::fs::write(
        &other,
        text.replace(
            &format!("cli_users = [\"{}\"]", os_user()),
            "cli_users = [\"someone-else\"]",
        ),
    )
    .unwrap();
    let out = chops(
        &[
            "--config",
            other.to_str().unwrap(),
            "act",
            "backup",
            "--replica",
            "r1",
            "--yes",
        ],
        &[("USER", "someone-else")],
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        format!("chops: OS user '{}' may not run actions on local: add it to cli_users in [clusters.local.actions].", os_user())
    );
    // Not confirmed: stdin is not a terminal and there is no --yes.
    let out = act(&c, &["backup", "--replica", "r1"]);
    assert_eq!(out.code, 1);
    assert_contains(&out.stderr, "not confirmed: add --yes");
    // Dry run: the whole flow, audited, nothing written.
    let out = act(&c, &["backup", "--replica", "r1", "--yes", "--dry-run"]);
    out.assert_code(0);
    assert_starts_with(&out.stdout, "dry run: would run on r1: BACKUP DATABASE");
    assert!(
        operator_statements(&c, 1).is_empty(),
        "a dry run sends nothing as the operator"
    );
    // Unknown replica and bad table: usage errors.
    let out = act(
        &c,
        &[
            "restart-replica",
            "--replica",
            "r1",
            "--table",
            "nodot",
            "--yes",
        ],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    // A real run, then the cooldown refuses the same action.
    assert_eq!(act(&c, &["backup", "--replica", "r1", "--yes"]).code, 0);
    let out = act(&c, &["backup", "--replica", "r1", "--yes"]);
    out.assert_code(1);
    assert_contains(&out.stdout, "cooling down: again in ");
    assert_eq!(operator_statements(&c, 1).len(), 1);
    let log = audit(&c);
    for want in [
        format!("refused backup:local:r1 by cli:{}", os_user()),
        "dry-run backup:local:r1".to_string(),
        "reason: Not now: cooling down".to_string(),
    ] {
        assert!(log.contains(&want), "{want}: {log}");
    }
    // Nothing written anywhere but r1, and every write by the operator account.
    for i in 1..=3 {
        for (user, q) in queries(&c, i) {
            let write = q.starts_with("BACKUP") || q.starts_with("SYSTEM") || q.starts_with("KILL");
            assert!(!write || user == "chops_operator", "{user}: {q}");
        }
    }
}

#[test]
fn twenty_racing_processes_send_one_statement_two_targets_both_run() {
    let c = cluster("cooldown_secs = 600");
    shop(&c.urls[0], 1000);
    shop(&c.urls[1], 1000);
    race_one_winner(20, std::time::Duration::ZERO, || backup_command(&c, "r1"));
    assert_eq!(
        operator_statements(&c, 1).len(),
        1,
        "exactly one BACKUP reached r1"
    );
    // Different targets do not block each other.
    let a = backup_command(&c, "r2").output().unwrap();
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stdout)
    );
    assert_eq!(operator_statements(&c, 2).len(), 1);
}

#[test]
fn hostile_names_are_restarted_exactly() {
    let c = cluster("");
    let db = "quo'te`s\nnew line";
    let table = "t@everyone ```";
    for url in &c.urls {
        must(url, &format!("CREATE DATABASE {}", sql::ident(db)));
        must(url, &format!("CREATE TABLE {} (id UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/h/t', '{{replica}}') ORDER BY id", sql::table(db, table)));
    }
    let out = act(
        &c,
        &[
            "restart-replica",
            "--replica",
            "r3",
            "--database",
            db,
            "--table",
            table,
            "--yes",
        ],
    );
    out.assert_code(0);
    assert_eq!(
        operator_statements(&c, 3),
        [format!("SYSTEM RESTART REPLICA {}", sql::table(db, table))]
    );
    // Shown escaped, never raw.
    assert!(
        !out.stdout.contains('\x1b') && !out.stdout.contains("s\nnew"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_action_whose_process_died_is_finished_by_the_next_one() {
    let c = cluster("");
    shop(&c.urls[0], 1_000_000);
    let mut child = backup_command(&c, "r1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the backup was sent (the operator's statement is in r1's log).
    wait_for_statement(&c, 1);
    child.kill().unwrap(); // SIGKILL, by its own PID
    child.wait().unwrap();
    assert!(
        audit(&c).lines().next().unwrap().contains(" executing "),
        "{}",
        audit(&c)
    );
    // Once the backup is done on r1, the next chops act (its own action a dry run) records it
    // alongside its own: one look at it.
    wait_backups_created(&c.urls[0], 1);
    let out = act(&c, &["backup", "--replica", "r2", "--yes", "--dry-run"]);
    assert_contains(&out.stderr, "left unfinished earlier, now succeeded");
    let log = audit(&c);
    assert!(log.contains("succeeded backup:local:r1"), "{log}");
    assert!(
        log.contains("outcome: after a restart of chops: backup created on r1"),
        "{log}"
    );
    assert_eq!(operator_statements(&c, 1).len(), 1);
}

/// A second `chops act` leaves an action another live process is running alone: only a dead
/// process's action is reconciled.
#[test]
fn a_running_action_of_a_live_process_is_left_alone() {
    let c = cluster("");
    shop(&c.urls[0], 1_000_000);
    let first = backup_command(&c, "r1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_statement(&c, 1);
    let second = act(&c, &["backup", "--replica", "r2", "--yes", "--dry-run"]);
    assert!(
        !second.stderr.contains("left unfinished earlier"),
        "{}",
        second.stderr
    );
    let out = first.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("succeeded: backup created on r1"),
        "{stdout}"
    );
    assert!(
        !audit(&c).contains("after a restart of chops"),
        "{}",
        audit(&c)
    );
}
