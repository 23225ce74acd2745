//! Read-only tests against one shared local cluster (3 replicas + ZooKeeper): the healthy card,
//! single sections, discovery, and bad input.

use crate::common::*;

#[test]
fn healthy_cluster_is_healthy() {
    let c = shared();
    let (code, card) = check_json(&c.config, "backup");
    assert_eq!(code, 0, "{card:#}");
    assert_eq!(card["verdict"], "healthy");
    assert_eq!(card["cluster"], "local");
    for (check, sev, summary) in findings(&card) {
        assert_eq!(sev, "ok", "{check}: {summary}");
    }
    let checks: Vec<&str> = card["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        ["keeper", "replicas", "lag", "blockers", "backups", "settings"]
    );
    // Every replica is checked by every replica-level check.
    for r in ["r1", "r2", "r3"] {
        assert!(
            find(&card, "replicas", &format!("{r}: up, 26.9")).is_some(),
            "{r}"
        );
        assert!(
            find(&card, "settings", &format!("{r}: keeper retries 1000")).is_some(),
            "{r}"
        );
    }
    assert!(find(&card, "keeper", &format!("Keeper {}: standalone", c.keeper)).is_some());
    assert!(card["causes"].as_array().unwrap().is_empty());
}

#[test]
fn terminal_card_without_tty_has_no_colour() {
    let c = shared();
    let out = chops(&["--config", &c.config, "check", "backup"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_starts_with(&out.stdout, "chops backup check · cluster local · HEALTHY");
    assert!(!out.stdout.contains('\x1b'));
    let colored = chops(
        &[
            "--config", &c.config, "check", "backup", "--color", "always",
        ],
        &[],
    );
    assert!(colored.stdout.contains("\x1b[32;1mHEALTHY"));
}

#[test]
fn single_sections() {
    let c = shared();
    for what in [
        "keeper", "replicas", "lag", "blockers", "backups", "settings",
    ] {
        let (code, card) = check_json(&c.config, what);
        assert_eq!(code, 0, "{what}: {card:#}");
        let sections = card["sections"].as_array().unwrap();
        assert_eq!(sections.len(), 1, "{what}");
        assert_eq!(sections[0]["check"], what);
        assert_eq!(card["scope"], what);
    }
    let out = chops(&["--config", &c.config, "check", "lag"], &[]);
    assert!(
        out.stdout.contains("Replication lag") && !out.stdout.contains("Keeper 127"),
        "{}",
        out.stdout
    );
}

#[test]
fn replicas_discovered_from_system_clusters() {
    let c = shared();
    let dir = scratch("discover");
    // remote_servers lists native ports (HTTP port + 1 in the local cluster): map them back to URLs.
    let hosts: Vec<String> = c
        .urls
        .iter()
        .map(|u| {
            let port: u16 = u.rsplit(':').next().unwrap().parse().unwrap();
            format!("\"127.0.0.1:{}\" = \"{u}\"", port + 1)
        })
        .collect();
    let cfg = write_config(
        &dir,
        "disc.toml",
        &format!(
            "[clusters.local]\nkeeper = [\"{}\"]\ndiscover = {{ seed = \"{}\", hosts = {{ {} }} }}\n",
            c.keeper,
            c.urls[1],
            hosts.join(", ")
        ),
    );
    let (code, card) = check_json(&cfg, "replicas");
    assert_eq!(code, 0, "{card:#}");
    let ups: Vec<String> = findings(&card)
        .into_iter()
        .map(|(_, _, s)| s)
        .filter(|s| s.contains(": up, 26.9"))
        .collect();
    assert_eq!(ups.len(), 3, "{ups:?}");
    assert!(ups.iter().all(|s| s.starts_with("127.0.0.1:")), "{ups:?}");
}

#[test]
fn bad_input_gets_one_clear_line_and_exit_3() {
    let c = shared();
    let dir = scratch("bad");
    let good_replica = format!(
        "[[clusters.local.replicas]]\nname = \"r1\"\nurl = \"{}\"\n",
        c.urls[0]
    );
    let unknown_key = write_config(
        &dir,
        "unknown.toml",
        &format!("[clusters.local]\ndedline_ms = 5\n{good_replica}"),
    );
    let malformed = write_config(&dir, "malformed.toml", "[clusters.local\nreplicas = 3\n");
    let secret = write_config(
        &dir,
        "secret.toml",
        &format!("[clusters.local]\npassword_env = \"CHOPS_TEST_PW\"\n{good_replica}"),
    );
    let closed_seed = write_config(
        &dir,
        "seed.toml",
        "[clusters.local]\ndiscover = { seed = \"http://127.0.0.1:9\" }\n",
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--config", &c.config, "check", "backup", "--cluster", "nope"], "chops: unknown cluster 'nope' (configured: local)"),
        (vec!["--config", &unknown_key, "check"], "unknown.toml:2: unknown field `dedline_ms`"),
        (vec!["--config", &unknown_key, "config", "check"], "unknown field `dedline_ms`"),
        (vec!["--config", &malformed, "check"], "malformed.toml:1:"),
        (vec!["--config", &secret, "check"], "`clusters.local.password_env` names CHOPS_TEST_PW, which is not set"),
        (vec!["--config", "/nonexistent/chops.toml", "check"], "no config at /nonexistent/chops.toml: copy config/chops.example.toml there"),
        (vec!["--config", &closed_seed, "check"], "cannot discover cluster 'local': seed http://127.0.0.1:9 gave no answer (connection refused)"),
        (vec!["--config", &c.config, "check", "everything"], "invalid value 'everything'"),
    ];
    for (args, want) in cases {
        let out = chops(&args, &[]);
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert!(out.stderr.contains(want), "{args:?}: got {}", out.stderr);
        assert!(
            !out.stderr.contains("panicked") && !out.stderr.contains("backtrace"),
            "{}",
            out.stderr
        );
        if !want.starts_with("invalid value") {
            assert_eq!(
                out.stderr.trim().lines().count(),
                1,
                "{args:?}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn config_check_accepts_the_generated_and_example_configs() {
    let c = shared();
    let out = chops(&["--config", &c.config, "config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("ok (clusters: local)"));
    let example = testkit::repo_root().join("config/chops.example.toml");
    let out = chops(
        &["--config", example.to_str().unwrap(), "config", "check"],
        &[
            ("CLICKHOUSE_PASSWORD", "x"),
            ("CHOPS_WEBHOOK_TOKEN", "a-token-of-16-by"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // A token shorter than 16 bytes is refused, with its length (never its value).
    let out = chops(
        &["--config", example.to_str().unwrap(), "config", "check"],
        &[("CLICKHOUSE_PASSWORD", "x"), ("CHOPS_WEBHOOK_TOKEN", "t")],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_contains(&out.stderr, "whose token is 1 bytes: use at least 16");
    // The webhook's token is a secret like the passwords: named when missing.
    let out = chops(
        &["--config", example.to_str().unwrap(), "config", "check"],
        &[("CLICKHOUSE_PASSWORD", "x"), ("CHOPS_WEBHOOK_TOKEN", "")],
    );
    assert_eq!(out.code, 3);
    assert_contains(&out.stderr, "`webhook.token_env` names CHOPS_WEBHOOK_TOKEN");
    // The container's config (docker-compose.yml's chops service) is valid too.
    let container = testkit::repo_root().join("deploy/compose/chops.docker.toml");
    let out = chops(
        &["--config", container.to_str().unwrap(), "config", "check"],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let compose = testkit::repo_root().join("deploy/compose/chops.toml");
    let out = chops(
        &["--config", compose.to_str().unwrap(), "config", "check"],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_wrong_password_is_an_auth_finding_and_never_printed() {
    let c = shared();
    let dir = scratch("auth");
    let cfg = write_config(
        &dir,
        "auth.toml",
        &format!("[clusters.local]\nuser = \"default\"\npassword_env = \"CHOPS_TEST_PW\"\n[[clusters.local.replicas]]\nname = \"r1\"\nurl = \"{}\"\n", c.urls[0]),
    );
    let secret = "hunter2-do-not-print";
    for json in [true, false] {
        let mut args = vec!["--config", cfg.as_str(), "check", "backup"];
        if json {
            args.push("--json");
        }
        let out = chops(&args, &[("CHOPS_TEST_PW", secret), ("CHOPS_LOG", "debug")]);
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
        assert_contains(&out.stdout, "r1: authentication failed (code 516)");
        assert_eq!(
            out.code, 1,
            "auth failure is not a cluster failure: degraded"
        );
    }
}

/// `chops explain`: from an argument or stdin, as text or JSON; empty is a usage error; a huge
/// text is read in part; with `--cluster` the card carries the pasted error's evidence.
#[test]
fn explain_classifies_a_pasted_error() {
    use std::io::Write;
    let text = "Code: 655. DB::Exception: Failed to sync backup or restore: No connection to host node2:9000 yet. (FAILED_TO_SYNC_BACKUP_OR_RESTORE) (version 24.3.1.1)";
    let out = chops(&["explain", text], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_starts_with(&out.stdout, "category: replica_offline\n");
    assert_contains(&out.stdout, "host: node2:9000");

    let stdin = |input: &[u8], args: &[&str]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chops"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut w = child.stdin.take().unwrap();
        let input = input.to_vec();
        // Written from a thread: chops stops reading after its first MiB.
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        out
    };
    let out = stdin(
        b"SQL Error [159] [07000]: Read timed out\n",
        &["explain", "-", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["category"], "client_timeout", "{v:#}");
    assert_eq!(v["code"], 159);
    for key in ["causes", "code_name", "host", "meaning", "next_steps"] {
        assert!(v.get(key).is_some(), "{key} in {v:#}");
    }
    let out = stdin(b"  \n", &["explain", "-"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "chops: the error text is empty"
    );
    let mut huge = b"Code: 999. DB::Exception: Coordination::Exception: Session expired. ".to_vec();
    huge.resize(10 << 20, b'x');
    let out = stdin(&huge, &["explain", "-", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["category"].as_str(), v["clipped"].as_bool()),
        (Some("keeper"), Some(true))
    );

    let c = shared();
    let out = chops(
        &[
            "--config",
            &c.config,
            "explain",
            "--cluster",
            "local",
            "--json",
            text,
        ],
        &[],
    );
    let v = out.json();
    let pasted = findings(&v["card"]).into_iter().find(|(check, _, s)| {
        check == "backups" && s.starts_with("pasted error: host lost or offline")
    });
    assert!(pasted.is_some(), "{:#}", v["card"]);
}
