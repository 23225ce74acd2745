//! Fault tests: each starts its own local cluster (real ZooKeeper + ClickHouse-engine replicas),
//! breaks it the way production breaks, and checks what the card says.

use chops::checks::blockers;

use crate::common::*;

const DEADLINE_MS: u64 = 2000;

fn start() -> LocalCluster {
    LocalCluster::start(3).expect("start a local cluster")
}

fn card_of(c: &LocalCluster) -> (i32, serde_json::Value) {
    check_json(c.config_path.to_str().unwrap(), "backup")
}

/// The card of a cluster where every replica answers, with a deadline long enough that a slow
/// test machine cannot turn a ranking test into a timing test.
fn settled_card_of(c: &LocalCluster) -> (i32, serde_json::Value) {
    let config = c.config_path.to_str().unwrap();
    let out = chops(
        &[
            "--config",
            config,
            "check",
            "backup",
            "--json",
            "--deadline-ms",
            "10000",
        ],
        &[],
    );
    (out.code, out.json())
}

/// A mutation on default.m of `url` that fails on every try.
fn failing_mutation(url: &str) {
    must(
        url,
        "CREATE TABLE default.m (k UInt64, v UInt64) ENGINE = MergeTree ORDER BY k",
    );
    must(
        url,
        "INSERT INTO default.m SELECT number, number FROM numbers(10)",
    );
    let _ = sql(
        url,
        "ALTER TABLE default.m UPDATE v = throwIf(v >= 0, 'boom') WHERE 1",
    );
}

/// A backup of 30 MB throttled so that it still runs while chops looks; returns its id.
fn running_backup(url: &str) -> String {
    must(
        url,
        "CREATE TABLE default.big (k UInt64, s String) ENGINE = MergeTree ORDER BY k",
    );
    must(
        url,
        "INSERT INTO default.big SELECT number, randomPrintableASCII(100) FROM numbers(300000)",
    );
    let started = must(url, "BACKUP TABLE default.big TO Disk('backups', 'slow') SETTINGS max_backup_bandwidth = 500000 ASYNC");
    started.split('\t').next().unwrap().to_string()
}

fn top_cause(card: &serde_json::Value) -> &str {
    card["causes"][0]["cause"].as_str().unwrap_or("none")
}

/// Every check answered for `replica`, and nothing about it is worse than ok.
fn fully_checked(card: &serde_json::Value, replica: &str) {
    for check in [
        "keeper", "replicas", "lag", "blockers", "backups", "settings",
    ] {
        let mine: Vec<_> = findings(card)
            .into_iter()
            .filter(|(c, _, s)| {
                c == check
                    && (s.starts_with(&format!("{replica}:"))
                        || s.starts_with(&format!("{replica} ")))
            })
            .collect();
        assert!(
            !mine.is_empty(),
            "{check} said nothing about {replica}: {card:#}"
        );
        assert!(
            mine.iter().all(|(_, sev, _)| sev == "ok"),
            "{check} on {replica}: {mine:?}"
        );
    }
}

#[test]
fn keeper_stopped_ranks_keeper_first_with_4lw_evidence() {
    let c = start();
    c.stop_keeper();
    let (code, card) = card_of(&c);
    assert_eq!(code, 2, "{card:#}");
    assert_eq!(card["verdict"], "failing");
    assert_eq!(top_cause(&card), "keeper", "{card:#}");
    let evidence = card["causes"][0]["evidence"].as_array().unwrap();
    assert!(
        evidence.iter().any(|e| e.as_str().unwrap()
            == format!("Keeper {}: down (connection refused)", c.keeper_addr)),
        "{evidence:?}"
    );
    let node = find(&card, "keeper", "down (connection refused)").unwrap();
    let ev: Vec<&str> = node["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for word in ["ruok", "mntr", "srvr", "isro"] {
        assert!(
            ev.contains(&format!("{word}: connection refused").as_str()),
            "{ev:?}"
        );
    }
    assert!(
        card["elapsed_ms"].as_u64().unwrap() <= DEADLINE_MS * 12 / 10,
        "the card comes within the deadline"
    );
    let steps = card["next_steps"].to_string();
    assert!(
        steps.contains(&format!("Check every Keeper node ({})", c.keeper_addr))
            && steps.contains("mntr"),
        "{steps}"
    );
    assert!(!steps.contains("nc "), "no shell line: {steps}");
}

#[test]
fn killed_replica_is_unreachable_and_the_others_are_fully_checked() {
    let c = start();
    for url in &c.urls {
        must(url, "CREATE DATABASE events");
        must(
            url,
            "CREATE TABLE events.hits (id UInt64) ENGINE = MergeTree ORDER BY id",
        );
    }
    c.kill_replica(2);
    let (code, card) = settled_card_of(&c);
    assert_eq!(code, 2, "{card:#}");
    let f = find(&card, "replicas", "r2: unreachable (connection refused)").expect("r2 refused");
    assert_eq!(f["severity"], "crit");
    assert_eq!(top_cause(&card), "replica_offline");
    fully_checked(&card, "r1");
    fully_checked(&card, "r3");
    // The way out: back up the reachable replicas one by one.
    let sqls: Vec<String> = card["next_steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| Some(format!("{}: {}", s["run_on"].as_str()?, s["sql"].as_str()?)))
        .collect();
    assert_eq!(sqls.len(), 2, "{sqls:?}");
    assert!(
        sqls[0].starts_with("r1: BACKUP DATABASE `events` TO Disk('backups', 'chops-local-r1-"),
        "{sqls:?}"
    );
    assert!(
        sqls[1].starts_with("r3: BACKUP DATABASE `events` TO Disk('backups', 'chops-local-r3-"),
        "{sqls:?}"
    );
    // The suggested statement runs as written.
    let answer = must(&c.urls[0], sqls[0].trim_start_matches("r1: "));
    assert!(
        answer.contains("CREATING_BACKUP") || answer.contains("BACKUP_CREATED"),
        "{answer}"
    );
}

#[test]
fn frozen_replica_times_out_within_the_deadline() {
    let c = start();
    c.freeze_replica(3);
    let started = std::time::Instant::now();
    let (code, card) = card_of(&c);
    let wall = started.elapsed().as_millis() as u64;
    // A shorter deadline from the command line bounds the card the same way.
    let fast = chops(
        &[
            "--config",
            c.config_path.to_str().unwrap(),
            "check",
            "replicas",
            "--json",
            "--deadline-ms",
            "500",
        ],
        &[],
    );
    let fast_card = fast.json();
    let f = find(&fast_card, "replicas", "r3: no answer (timed out after ")
        .unwrap_or_else(|| panic!("{fast_card:#}"));
    // Its probe waited out the check: cut at the check's end, so a late start waits a little less.
    assert!((400..=600).contains(&waited_ms(f)), "{f}");
    assert!(fast_card["elapsed_ms"].as_u64().unwrap() <= 600);
    c.thaw_replica(3);
    assert_eq!(code, 2, "{card:#}");
    let f = find(&card, "replicas", "r3: no answer (timed out after ").expect("r3 timed out");
    // The real time waited (most of the deadline: probes end with the check), never a placeholder.
    assert!(
        (DEADLINE_MS * 8 / 10..=DEADLINE_MS * 12 / 10).contains(&waited_ms(f)),
        "{f}"
    );
    assert_eq!(f["severity"], "crit");
    // The critical path names the frozen replica in every section that waited for it.
    for section in card["sections"].as_array().unwrap() {
        if section["check"] != "keeper" {
            assert_eq!(section["slowest"]["name"], "r3", "{section:#}");
        }
    }
    let bound = DEADLINE_MS * 12 / 10;
    assert!(
        card["elapsed_ms"].as_u64().unwrap() <= bound,
        "card took {} ms",
        card["elapsed_ms"]
    );
    assert!(wall <= bound + 1000, "process took {wall} ms");
    fully_checked(&card, "r1");
    fully_checked(&card, "r2");
}

#[test]
fn readonly_replicated_table_is_named() {
    let c = start();
    replicated_shop(&c.urls[0], &["orders"]); // read-only on this engine
    let (code, card) = settled_card_of(&c);
    assert_eq!(code, 2);
    let f = find(&card, "lag", "r1: shop.orders read-only").unwrap_or_else(|| panic!("{card:#}"));
    assert_eq!(f["severity"], "crit");
    assert_eq!(f["subject"]["database"], "shop");
    assert_eq!(f["subject"]["table"], "orders");
    assert_eq!(f["subject"]["replica"], "r1");
    assert_eq!(top_cause(&card), "replica_lag");
    let step = card["next_steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sql"] == "SYSTEM RESTART REPLICA `shop`.`orders`")
        .expect("restart step");
    assert_eq!(step["run_on"], "r1");
}

#[test]
fn failed_backups_are_classified() {
    let c = start();
    must(
        &c.urls[0],
        "CREATE TABLE default.t (x UInt64) ENGINE = MergeTree ORDER BY x",
    );
    must(
        &c.urls[0],
        "INSERT INTO default.t SELECT number FROM numbers(100)",
    );
    let err = sql(
        &c.urls[0],
        "BACKUP TABLE default.t TO Disk('elsewhere', 'b1')",
    )
    .unwrap_err();
    assert!(err.contains("Code: 36."), "{err}");
    let (code, card) = settled_card_of(&c);
    assert_eq!(code, 2, "{card:#}");
    let f = find(
        &card,
        "backups",
        "r1: backup Disk('elsewhere', 'b1') failed",
    )
    .unwrap_or_else(|| panic!("{card:#}"));
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .ends_with("backup destination not allowed, missing or not shared (code 36)"),
        "{f}"
    );
    assert!(card["next_steps"].to_string().contains("allowed_disk"));

    // A name used twice: the second attempt is refused with 598, and it is not a sync problem.
    must(
        &c.urls[1],
        "CREATE TABLE default.u (x UInt64) ENGINE = MergeTree ORDER BY x",
    );
    must(
        &c.urls[1],
        "BACKUP TABLE default.u TO Disk('backups', 'same')",
    );
    let err = sql(
        &c.urls[1],
        "BACKUP TABLE default.u TO Disk('backups', 'same')",
    )
    .unwrap_err();
    assert!(err.contains("Code: 598."), "{err}");
    let (_, card) = settled_card_of(&c);
    assert!(
        find(
            &card,
            "backups",
            "r2: last backup Disk('backups', 'same') created"
        )
        .is_some(),
        "{card:#}"
    );
    if let Some(f) = find(
        &card,
        "backups",
        "r2: backup Disk('backups', 'same') failed",
    ) {
        assert!(
            f["summary"]
                .as_str()
                .unwrap()
                .contains("backup name reused"),
            "{f}"
        );
    }
}

#[test]
fn failing_mutation_is_a_blocker_with_its_reason() {
    let c = start();
    failing_mutation(&c.urls[1]);
    let (code, card) = settled_card_of(&c);
    assert_eq!(code, 1, "{card:#}");
    let f = find(
        &card,
        "blockers",
        "r2: mutation mutation_2.txt on default.m",
    )
    .unwrap_or_else(|| panic!("{card:#}"));
    assert!(f["summary"]
        .as_str()
        .unwrap()
        .contains("keeps failing (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO)"));
    assert!(
        f["evidence"]
            .to_string()
            .contains("latest_fail_reason: Code: 395. DB::Exception: boom"),
        "{f}"
    );
    assert_eq!(top_cause(&card), "conflicting_operation");
    assert!(card["next_steps"].to_string().contains("KILL MUTATION WHERE database = 'default' AND table = 'm' AND mutation_id = 'mutation_2.txt'"));
}

#[test]
fn running_backup_is_conflicting_operation_evidence() {
    let c = start();
    let id = running_backup(&c.urls[2]);
    let (code, card) = settled_card_of(&c);
    assert_eq!(code, 1, "{card:#}");
    assert_eq!(top_cause(&card), "conflicting_operation", "{card:#}");
    let evidence = card["causes"][0]["evidence"].to_string();
    assert!(
        evidence.contains("r3: backup Disk('backups', 'slow') running for"),
        "{evidence}"
    );
    let step = card["next_steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sql"].as_str().is_some_and(|q| q.contains(&id)))
        .expect("wait step");
    assert_eq!(step["run_on"], "r3");
}

/// The milliseconds a "timed out after N ms" summary reports.
fn waited_ms(f: &serde_json::Value) -> u64 {
    let s = f["summary"].as_str().unwrap();
    let after = s.split("timed out after ").nth(1).unwrap();
    after.split(' ').next().unwrap().parse().unwrap()
}

/// Keeper stopped and a replica frozen at once: the frozen replica shows up in every check, but
/// it is one fact about one replica; nothing ON CLUSTER works without Keeper, so Keeper is first,
/// and the JSON says why (its reasons, fact by fact).
#[test]
fn keeper_down_and_a_frozen_replica_rank_keeper_first() {
    let c = start();
    c.stop_keeper();
    c.freeze_replica(3);
    let (code, card) = card_of(&c);
    c.thaw_replica(3);
    assert_eq!(code, 2, "{card:#}");
    assert_eq!(top_cause(&card), "keeper", "{card:#}");
    let reasons = card["causes"][0]["reasons"].to_string();
    assert!(reasons.contains("cluster-wide"), "{reasons}");
    let offline = card["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cause"] == "replica_offline")
        .expect("the frozen replica is still a cause");
    assert_eq!(
        offline["score"], 6,
        "one fact: crit 3 × one replica 2: {offline:#}"
    );
    assert!(
        !card["causes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["cause"] == "network"),
        "a plain timeout is not network trouble: {card:#}"
    );
}

/// Two compound faults made for real: a running backup on r3 with a failing mutation on r2
/// (both conflicting operations), and a read-only replicated table with an earlier failed backup
/// (the lag is the live problem).
#[test]
fn compound_faults_on_a_real_cluster_rank_the_live_problem_first() {
    let c = start();
    running_backup(&c.urls[2]);
    failing_mutation(&c.urls[1]);
    let (_, card) = settled_card_of(&c);
    assert_eq!(top_cause(&card), "conflicting_operation", "{card:#}");

    let c = start();
    replicated_shop(&c.urls[0], &["orders"]); // read-only on this engine
    must(
        &c.urls[1],
        "CREATE TABLE default.t (x UInt64) ENGINE = MergeTree ORDER BY x",
    );
    let _ = sql(
        &c.urls[1],
        "BACKUP TABLE default.t TO Disk('elsewhere', 'b1')",
    );
    let (_, card) = settled_card_of(&c);
    assert_eq!(top_cause(&card), "replica_lag", "{card:#}");
}

/// Gentle on a sick cluster: a full check sends each replica at most 5 queries: one batch, and on
/// their own what reads Keeper (lag, the DDL queue, `system.zookeeper`) and the settings, counted
/// by the replicas' own query logs — with a mutation, a backup and a replicated table to look at,
/// so no probe is skipped.
#[test]
fn a_full_check_sends_at_most_four_queries_per_replica_and_the_ddl_queue_to_few() {
    let c = start();
    replicated_shop(&c.urls[0], &["orders"]); // read-only on this engine
    failing_mutation(&c.urls[1]);
    must(
        &c.urls[2],
        "CREATE TABLE default.t (x UInt64) ENGINE = MergeTree ORDER BY x",
    );
    must(
        &c.urls[2],
        "BACKUP TABLE default.t TO Disk('backups', 'b1')",
    );
    let before: Vec<usize> = (1..=3).map(|i| queries(&c, i).len()).collect();
    let (_, card) = settled_card_of(&c);
    assert_eq!(card["sections"].as_array().unwrap().len(), 6);
    let mut ddl = 0;
    for i in 1..=3 {
        let sent: Vec<String> = queries(&c, i)[before[i - 1]..]
            .iter()
            .map(|(_, q)| q.clone())
            .collect();
        let asked_ddl = sent
            .iter()
            .filter(|q| q.contains("system.distributed_ddl_queue"))
            .count();
        ddl += asked_ddl;
        // The batch, system.replicas, system.zookeeper, the settings; the DDL queue on a few.
        assert!(sent.len() <= 4 + asked_ddl, "r{i} got {sent:#?}");
        let batches = sent.iter().filter(|q| q.contains("formatRowNoNewline"));
        assert_eq!(batches.count(), 1, "r{i} got {sent:#?}");
    }
    // The engine has no distributed DDL (139): no replica can tell, each hands its turn on.
    assert_eq!(
        ddl,
        3.min(blockers::DDL_TRIES),
        "the DDL queue asked of each replica once"
    );
}

/// The DDL queue query gives one row per unfinished entry however many hosts it waits on (the
/// queue has a row per entry and host, and at 300 hosts one stuck entry filled the row limit).
/// Run over a stand-in for the table: the engine has no distributed DDL.
#[test]
fn the_ddl_queue_query_gives_one_row_per_entry() {
    let shared = shared();
    let mut rows: Vec<String> = (0..300)
        .map(|h| format!("('q-1', 'Inactive', 'ch-1', 'ALTER x', 'ch-{h}')"))
        .collect();
    rows.push("('q-2', 'Inactive', 'ch-1', 'CREATE y', 'ch-3')".into());
    rows.push("('q-2', 'Active', 'ch-1', 'CREATE y', 'ch-7')".into());
    rows.push("('q-3', 'Finished', 'ch-1', 'DROP z', 'ch-1')".into());
    let table = format!(
        "values('entry String, status Nullable(Enum8(''Inactive'' = 0, ''Active'' = 1, \
         ''Finished'' = 2)), initiator_host String, query String, host String', {})",
        rows.join(", ")
    );
    let q = blockers::DDL_QUEUE_SQL.replace("system.distributed_ddl_queue", &table);
    let out = sql(&shared.urls[0], &q).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("q-1\tInactive\tch-1\tALTER x\tch-"),
        "{out}"
    );
    assert!(lines[0].ends_with(" and 299 more"), "{out}");
    assert_eq!(lines[1], "q-2\tActive\tch-1\tCREATE y\tch-7 and 1 more");
}
