//! `chops act`, `chops audit` and the store against a hostile tester (issue 14): racing processes
//! that must not end each other's live actions, a dead action's hung replica that must not hold
//! up another action, a backup that must not hold a terminal for ever, an audit rewritten behind
//! the triggers' back, a stored statement swapped before the Confirm, and the smaller ones
//! (secrets echoed, `.env` from a parent, a newline in an argument, cooldown from the end, …).

use crate::common::*;
use testkit::os_user;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The audit log as (action id, decision, whole line), oldest first.
fn audit_rows(config: &Path) -> Vec<(String, String, String)> {
    let out = chops(
        &[
            "--config",
            config.to_str().unwrap(),
            "audit",
            "--limit",
            "1000",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut rows: Vec<_> = out
        .stdout
        .lines()
        .filter(|l| *l != "no actions recorded")
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            (f[1].to_string(), f[2].to_string(), l.to_string())
        })
        .collect();
    rows.reverse();
    rows
}

fn store_of(c: &LocalCluster) -> rusqlite::Connection {
    rusqlite::Connection::open(c.dir.join("chops.db")).unwrap()
}

/// 20 `chops act restart-replica` at once on one target: one statement; the winner's own rows
/// only (requested, confirmed, executing, succeeded); every loser refused once; no `failed` row
/// anywhere (no process ends another's live action). Then a stored statement swapped before the
/// Confirm: what runs is derived from the typed action, and a mismatch is refused.
#[test]
fn racing_restarts_leave_the_live_action_alone_and_confirm_runs_the_typed_action() {
    // Twenty processes at once, or deadlines measured: one such test at a time.
    let _solo = testkit::solo();
    let c = LocalCluster::start(3).expect("cluster");
    allow_actions(&c, "cooldown_secs = 600");
    for url in &c.urls {
        replicated_shop(url, &["orders", "lines"]);
    }
    let args = [
        "restart-replica",
        "--replica",
        "r2",
        "--table",
        "shop.orders",
        "--yes",
    ];
    // Started a little apart, as by hand or a loop: each start meets the others mid-action.
    race_one_winner(20, Duration::from_millis(40), || act_command(&c, &args));
    assert_eq!(operator_statements(&c, 2).len(), 1);
    let log = audit_rows(&c.config_path);
    let all = log
        .iter()
        .map(|r| r.2.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(log.iter().all(|r| r.1 != "failed"), "{all}");
    let winner = log.iter().find(|r| r.1 == "succeeded").expect("a winner");
    let its: Vec<&str> = log
        .iter()
        .filter(|r| r.0 == winner.0)
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(
        its,
        ["requested", "confirmed", "executing", "succeeded"],
        "{all}"
    );
    assert_eq!(log.iter().filter(|r| r.1 == "refused").count(), 19, "{all}");
    let states: Vec<String> = store_of(&c)
        .prepare("SELECT state FROM confirmations")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        states.iter().all(|s| s != "failed" && s != "executing"),
        "{states:?}"
    );

    swapped_statements(&c);
}

/// A confirmation row changed between the preview and the Confirm (its stored plan, its SQL).
fn swapped_statements(c: &LocalCluster) {
    use chops::domain::action::Action;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let loaded = chops::config::Loaded::load(&c.config_path).unwrap();
        let target = loaded.target(None, &chops::config::process_env).unwrap();
        let operator = loaded.operator("local", &chops::config::process_env).ok();
        let mut policy = target.policy.clone();
        policy.has_operator = operator.is_some();
        let cluster = chops::checks::Cluster::connect(&target).await.unwrap();
        let store = chops::store::Store::open(&loaded.store_path()).unwrap();
        let actor = chops::actions::Actor {
            cluster: &cluster,
            operator,
            policy: &policy,
            store: &store,
            follow_every: Duration::from_millis(200),
            follow_for: Some(Duration::from_secs(30)),
        };
        let who = chops::domain::guard::Requester::Cli { user: os_user() };
        let restart = |table: &str| Action::RestartReplica {
            cluster: "local".into(),
            replica: "r3".into(),
            database: "shop".into(),
            table: table.into(),
        };
        let swap = |id: &str, sql_too: bool| {
            let db = store_of(c);
            let json: String = db
                .query_row(
                    "SELECT action_json FROM confirmations WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .unwrap();
            let mut plan: serde_json::Value = serde_json::from_str(&json).unwrap();
            plan["statement"] = "SELECT 'swapped'".into();
            db.execute(
                "UPDATE confirmations SET action_json = ?2 WHERE id = ?1",
                [id, &plan.to_string()],
            )
            .unwrap();
            if sql_too {
                db.execute(
                    "UPDATE confirmations SET sql = 'SELECT ''swapped''' WHERE id = ?1",
                    [id],
                )
                .unwrap();
            }
        };
        // The SQL column swapped too: not what the action makes, so refused, nothing sent.
        let p = actor
            .request(restart("lines"), &who, "cli:test", false)
            .await
            .unwrap();
        swap(&p.id, true);
        let o = actor
            .confirm(&p.id, &who, &mut |_: &str| {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o.state, chops::store::FinalState::Refused, "{o:?}");
        assert!(o.summary.contains("nothing was sent"), "{o:?}");
        assert!(operator_statements(c, 3).is_empty());
        // Only the stored plan's text swapped: the statement derived from the action runs.
        let p = actor
            .request(restart("orders"), &who, "cli:test", false)
            .await
            .unwrap();
        swap(&p.id, false);
        let o = actor
            .confirm(&p.id, &who, &mut |_: &str| {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o.state, chops::store::FinalState::Succeeded, "{o:?}");
        assert_eq!(
            operator_statements(c, 3),
            ["SYSTEM RESTART REPLICA `shop`.`orders`"]
        );
    });
}

/// Every query is 1 s slower on these replicas, so a look at a backup takes a while and a replica
/// can be frozen while chops waits for it.
#[test]
fn a_hung_replica_holds_up_nothing_and_a_backup_is_never_failed_for_want_of_an_answer() {
    // Twenty processes at once, or deadlines measured: one such test at a time.
    let _solo = testkit::solo();
    let c = LocalCluster::start_with_latency(3, 1000).expect("cluster");
    allow_actions(&c, "cooldown_secs = 0");
    for url in &c.urls {
        shop(url, 100_000);
    }
    // 1. A chops act dies right after sending its backup, and r1 then hangs.
    let mut first = act_command(&c, &["backup", "--replica", "r1", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_statement(&c, 1);
    first.kill().unwrap(); // SIGKILL, by its own PID
    first.wait().unwrap();
    wait_backups_created(&c.urls[0], 1);
    c.freeze_replica(1);
    // Another chops act on another replica is not held up by it, and fails nothing.
    let began = Instant::now();
    let out = act(&c, &["backup", "--replica", "r2", "--yes", "--dry-run"]);
    let took = began.elapsed();
    out.assert_code(0);
    assert!(took < Duration::from_secs(25), "{took:?}");
    assert!(!out.stderr.contains("left unfinished"), "{}", out.stderr);
    let log = audit_rows(&c.config_path);
    assert!(log.iter().all(|r| r.1 != "failed"), "{log:?}");
    // r1 answers again: the next chops act records the backup's real end.
    c.thaw_replica(1);
    let out = act(&c, &["backup", "--replica", "r2", "--yes", "--dry-run"]);
    assert_contains(&out.stderr, "left unfinished earlier, now succeeded");

    // 2. A backup the terminal cannot see end is left running, and recorded later.
    let child = act_command(
        &c,
        &["backup", "--replica", "r1", "--yes", "--follow-secs", "3"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    backup_written(&c, 1, 2);
    c.freeze_replica(1);
    let began = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(began.elapsed() < Duration::from_secs(20));
    assert!(
        stdout.starts_with("still running: on r1 after "),
        "{stdout}"
    );
    assert!(stdout.contains("see `chops audit`"), "{stdout}");
    c.thaw_replica(1);
    wait_backups_created(&c.urls[0], 2);
    let out = act(&c, &["backup", "--replica", "r3", "--yes", "--dry-run"]);
    assert_contains(&out.stderr, "left unfinished earlier, now succeeded");
    let log = audit_rows(&c.config_path);
    let id = &log
        .iter()
        .find(|r| r.1 == "still-running")
        .expect("left running")
        .0;
    let its: Vec<&str> = log
        .iter()
        .filter(|r| &r.0 == id)
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(
        its,
        [
            "requested",
            "confirmed",
            "executing",
            "still-running",
            "succeeded"
        ]
    );
    assert!(log.iter().all(|r| r.1 != "failed"), "{log:?}");

    smaller_ones(&c);
}

/// Waits for the `n`th operator statement on replica `i` (a BACKUP) and for that backup's files
/// to be complete on the replica's disk (its `.backup` is written last): the server is done with
/// it, while chops' first look at it (1 s of latency) has not been answered yet.
fn backup_written(c: &LocalCluster, i: usize, n: usize) {
    let start = Instant::now();
    let statement = loop {
        if let Some(s) = operator_statements(c, i).into_iter().nth(n - 1) {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never sent");
        std::thread::sleep(Duration::from_millis(5));
    };
    let id = statement
        .split("SETTINGS id = '")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap_or_else(|| panic!("{statement}"));
    let done = c.dir.join(format!("r{i}/backups/{id}/.backup"));
    while !done.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "never written");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Cooldown from the action's end, "dry run:" once, no confirmation left pending, the statement
/// in `chops audit`.
fn smaller_ones(c: &LocalCluster) {
    let text = std::fs::read_to_string(&c.config_path).unwrap();
    std::fs::write(
        &c.config_path,
        text.replace("cooldown_secs = 0", "cooldown_secs = 600"),
    )
    .unwrap();
    // Each query takes a second here, so the backup takes several from its Confirm to its end.
    let out = act(c, &["backup", "--replica", "r3", "--yes"]);
    out.assert_code(0);
    let db = store_of(c);
    let (confirmed, ended): (i64, i64) = db
        .query_row(
            "SELECT (SELECT time FROM audit WHERE action_id = s.action_id AND decision = 'confirmed'),
                    s.time
             FROM audit s WHERE s.decision = 'succeeded' AND s.replica = 'r3'
             ORDER BY s.seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let until: i64 = db
        .query_row(
            "SELECT until FROM cooldowns WHERE target = 'backup:local:r3'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(ended - confirmed >= 3, "{confirmed} → {ended}");
    assert!(
        until >= ended + 600 - 1,
        "cooldown until {until}, ended {ended}"
    );

    let out = act(c, &["backup", "--replica", "r2", "--yes", "--dry-run"]);
    assert_starts_with(&out.stdout, "dry run: would run on r2: BACKUP DATABASE");
    // stdin is not a terminal and there is no --yes: nothing is left waiting for a Confirm.
    let out = act(c, &["backup", "--replica", "r2"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_contains(&out.stderr, "not confirmed: add --yes");
    let open: i64 = db
        .query_row(
            "SELECT count(*) FROM confirmations WHERE state IN ('pending', 'approved')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 0);
    let log = audit_rows(&c.config_path);
    let last = &log.last().unwrap().2;
    assert!(
        last.contains(" cancelled backup:local:r2 ")
            && last.contains("; statement: BACKUP DATABASE `shop` TO Disk('backups', "),
        "{last}"
    );
}

/// A config whose one replica nobody answers on (what is tested here never connects to it).
fn offline_config(dir: &Path, name: &str, extra_cluster: &str, rest: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "[clusters.x]\noperator_user = \"chops_operator\"\n{extra_cluster}\n\
             [[clusters.x.replicas]]\nname = \"r1\"\nurl = \"http://127.0.0.1:9\"\n\
             [clusters.x.actions]\ncli_users = [\"{}\"]\n{rest}",
            os_user()
        ),
    )
    .unwrap();
    p
}

/// `chops audit --verify`, a chain broken behind the triggers' back, and what refuses then:
/// `chops act` (exit 3), `chops serve`'s `/readyz` and metric. The store is private.
#[test]
fn a_rewritten_audit_is_found_and_refuses_actions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("audit");
    let config = offline_config(
        &dir,
        "chops.toml",
        "",
        "[store]\npath = \"state/chops.db\"\n[watch]\nenabled = false\n\
         [scheduler]\nenabled = false\n[http]\nlisten = \"127.0.0.1:0\"\n",
    );
    let cfg = config.to_str().unwrap();
    let verify = || chops(&["--config", cfg, "audit", "--verify"], &[]);
    let out = verify();
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "0 rows, chain intact\n"),
        "{}",
        out.stderr
    );
    let db_path = dir.join("state/chops.db");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db_path), 0o600);
    assert_eq!(mode(&dir.join("state")), 0o700);
    // Three rows, written through chops' own store.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = chops::store::Store::open(&db_path).unwrap();
        for d in ["requested", "confirmed", "refused"] {
            store
                .audit(chops::store::AuditRow {
                    action_id: "0123456789abcdef".into(),
                    time: 1_700_000_000,
                    cluster: "x".into(),
                    replica: "r1".into(),
                    action_key: "backup:x:r1".into(),
                    sql: "BACKUP DATABASE `shop` TO Disk('backups', 'b') ASYNC".into(),
                    requester_id: None,
                    requester_name: "cli:alice".into(),
                    approver: None,
                    place: "cli:alice".into(),
                    decision: d.into(),
                    reason: None,
                    query_id: None,
                    outcome: None,
                    duration_ms: None,
                })
                .await
                .unwrap();
        }
    });
    let out = verify();
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "3 rows, chain intact\n")
    );
    // History rewritten with the sqlite3 shell, the trigger dropped first.
    let db = rusqlite::Connection::open(&db_path).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET decision = 'succeeded' WHERE seq = 3;",
    )
    .unwrap();
    let out = verify();
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stdout,
        "audit chain broken: row 3 does not verify: it was changed after it was written\n"
    );
    // The start re-created the trigger.
    assert!(db
        .execute("UPDATE audit SET decision = 'x' WHERE seq = 1", [])
        .is_err());
    let out = chops(
        &[
            "--config",
            cfg,
            "act",
            "restart-replica",
            "--replica",
            "r1",
            "--table",
            "a.b",
            "--yes",
        ],
        &[],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "chops: the audit log does not verify (row 3 does not verify: it was changed after it was written): actions are refused until it is looked at (chops audit --verify)\n"
    );
    // chops serve keeps serving, says why it is not ready, and counts it.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_chops"))
        .args(["--config", cfg, "serve", "--no-discord"])
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(serve.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("chops: listening on http://")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    let (status, body) = testkit::http::request(addr, "GET", "/readyz", &[], b"");
    let (_, metrics) = testkit::http::request(addr, "GET", "/metrics", &[], b"");
    serve.kill().unwrap(); // by its own PID
    serve.wait().unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("audit: row 3 does not verify"), "{body}");
    assert!(
        metrics.contains("\nchops_audit_chain_broken 1\n"),
        "{metrics}"
    );
}

/// `chops config check` resolves every password variable; `.env` is the working directory's
/// only; a value put where a variable NAME belongs, and a line of `.env`, are never echoed; an
/// argument with a newline is one escaped line.
#[test]
fn secrets_env_files_and_arguments_stay_in_their_place() {
    let dir = scratch("env");
    let run = |config: &Path, cwd: &Path, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_chops"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("CHOPS_CONFIG")
            .env_remove("CHOPS_ACTH_PW")
            .env_remove("CHOPS_ACTH_OP_PW")
            .current_dir(cwd)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap(), err)
    };
    let check = ["config", "check"];
    // operator_password_env names a variable nobody set.
    let op = offline_config(
        &dir,
        "op.toml",
        "operator_password_env = \"CHOPS_ACTH_OP_PW\"",
        "",
    );
    let (code, err) = run(&op, &dir, &check);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        err,
        "chops: `clusters.x.operator_password_env` names CHOPS_ACTH_OP_PW, which is not set in the environment or .env\n"
    );
    // A .env in a parent directory is not read; the working directory's is.
    let pw = offline_config(&dir, "pw.toml", "password_env = \"CHOPS_ACTH_PW\"", "");
    let child = dir.join("child");
    std::fs::create_dir_all(&child).unwrap();
    std::fs::write(dir.join(".env"), "CHOPS_ACTH_PW=from-the-parent\n").unwrap();
    let (code, err) = run(&pw, &child, &check);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("names CHOPS_ACTH_PW, which is not set"),
        "{err}"
    );
    std::fs::write(child.join(".env"), "CHOPS_ACTH_PW=here\n").unwrap();
    assert_eq!(run(&pw, &child, &check), (0, String::new()));
    // A line of .env that is not KEY=value: which line, never its text.
    std::fs::write(
        child.join(".env"),
        "CHOPS_ACTH_PW=here\nthis line holds hunter2secret\n",
    )
    .unwrap();
    let (code, err) = run(&pw, &child, &check);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(".env in the working directory: line 2 is not KEY=value"),
        "{err}"
    );
    assert!(!err.contains("hunter2secret"), "{err}");
    // The password itself where its variable's NAME belongs.
    let value = offline_config(
        &dir,
        "value.toml",
        "password_env = \"Xk9pQ2mZ7vL4wR8t\"",
        "",
    );
    let (code, err) = run(&value, &dir, &check);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("`clusters.x.password_env` names a variable"),
        "{err}"
    );
    assert!(!err.contains("Xk9pQ2mZ7vL4wR8t"), "{err}");
    // A newline in an argument: one line, escaped.
    let (code, err) = run(
        &op,
        &dir,
        &["check", "--cluster", "nope\nchops: forged line"],
    );
    assert_eq!(code, 3);
    assert_eq!(
        err,
        "chops: unknown cluster 'nope\\nchops: forged line' (configured: x)\n"
    );
}
