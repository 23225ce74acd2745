//! The trust boundary, tried as a hostile tester would: servers that flood, trickle, send huge or
//! non-UTF-8 errors or garbage; a discovery seed listing hostile host names; 10,000 replicas.
//! Every case must give a bounded card in time, with a finding that says what happened.

use crate::common::*;
use testkit::hostile::{Hostile, Mode};

const DEADLINE_MS: u64 = 2000;

/// A config of one replica at `url` in a fresh scratch directory (removed when dropped), and
/// its path.
fn one_replica(tag: &str, url: &str, limits: &str) -> (testkit::Scratch, String) {
    let dir = scratch(tag);
    let cfg = write_config(
        &dir,
        "c.toml",
        &format!(
            "[defaults]\ndeadline_ms = {DEADLINE_MS}\n[defaults.limits]\n{limits}\n[clusters.x]\nreplicas = [{{ name = \"evil\", url = \"{url}\" }}]\n"
        ),
    );
    (dir, cfg)
}

/// `n` system.clusters rows whose host names are `len` bytes long.
fn many_rows(n: usize, len: usize) -> Mode {
    Mode::Seed(
        (0..n)
            .map(|i| (1, format!("h{i:0len$}").into_bytes(), 9000))
            .collect(),
    )
}

#[test]
fn hostile_answers_give_a_bounded_card_within_the_deadline() {
    let _solo = testkit::solo();
    let cases: Vec<(&str, Mode, &str, &str)> = vec![
        // Only 64 bytes of a /ping are read; the queries' answers fail on their first bytes.
        ("flood200", Mode::Flood200, "", "/ping answered 'AAAAAAAA"),
        (
            "flood500",
            Mode::Flood500,
            "",
            "answer too large (> 262144 bytes)",
        ),
        (
            "big500",
            Mode::Big500,
            "",
            "answer too large (> 262144 bytes)",
        ),
        ("trickle", Mode::Trickle, "", "no answer (timed out after "),
        (
            "garbage",
            Mode::Garbage,
            "",
            "evil: no answer (unexpected answer",
        ),
        // The message survives its bad bytes (as `?`); its escape is shown, not obeyed.
        (
            "nonutf8",
            Mode::NonUtf8Error,
            "",
            "code 60: Table bad??.\\x1B[2Jname",
        ),
    ];
    for (tag, mode, limits, want) in cases {
        let server = Hostile::start(mode);
        let (_dir, cfg) = one_replica(tag, &server.url(), limits);
        let started = std::time::Instant::now();
        let out = chops(&["--config", &cfg, "check", "backup", "--json"], &[]);
        let wall = started.elapsed().as_millis() as u64;
        let card = out.json();
        let summaries: Vec<String> = findings(&card).into_iter().map(|(_, _, s)| s).collect();
        eprintln!(
            "{tag}: {wall} ms, {} bytes\n  {}",
            out.stdout.len(),
            summaries.join("\n  ")
        );
        assert!(
            summaries.iter().any(|s| s.contains(want)),
            "{tag}: no finding says {want:?}: {summaries:#?}"
        );
        assert!(
            card["elapsed_ms"].as_u64().unwrap() <= DEADLINE_MS * 11 / 10,
            "{tag}: {card:#}"
        );
        assert!(
            out.stdout.len() < 64 * 1024,
            "{tag}: {} bytes of card",
            out.stdout.len()
        );
        assert!(summaries.iter().all(|s| s.chars().count() <= 300), "{tag}");
        // The terminal card too: bounded, and never a raw control character from the server.
        let term = chops(
            &["--config", &cfg, "check", "backup", "--color", "never"],
            &[],
        );
        assert!(term.raw.len() < 64 * 1024, "{tag}");
        assert!(
            !term
                .raw
                .iter()
                .any(|&b| b == 0x1b || (b < 0x20 && b != b'\n')),
            "{tag}: raw control character in {}",
            term.stdout
        );
    }
}

/// A well-formed answer past the caps (rows, then bytes) is cut off, not collected.
#[tokio::test]
async fn well_formed_answers_past_the_caps_are_cut_off() {
    use chops::checks::replicas::{ClusterRow, CLUSTER_SQL};
    use chops::clickhouse::{Budget, Limits, ReplicaClient};
    let cases = [
        (
            many_rows(50, 8),
            Limits {
                rows: 10,
                ..Limits::default()
            },
            "answer too large (> 10 rows)",
        ),
        (
            many_rows(20, 4000),
            Limits {
                answer_bytes: 8192,
                ..Limits::default()
            },
            "answer too large (> 8192 bytes)",
        ),
        (
            many_rows(5, 8),
            Limits {
                rows: 10,
                ..Limits::default()
            },
            "",
        ),
    ];
    for (mode, limits, want) in cases {
        let server = Hostile::start(mode);
        let budget = Budget::new(limits);
        let c = ReplicaClient::new(
            "evil",
            &server.url(),
            None,
            "default",
            &chops::config::Secret::default(),
            std::time::Duration::from_millis(DEADLINE_MS),
            &budget,
        );
        let r = c.fetch::<ClusterRow>(CLUSTER_SQL, &["x"]).await;
        match r {
            Err(e) => assert_eq!(e.to_string(), want),
            Ok(rows) => assert!(want.is_empty() && rows.len() == 5, "{rows:?}"),
        }
    }
}

/// Hosts a seed's system.clusters lists are server data: only valid host names get a request (and
/// the password); the rest are findings, and a host listed twice is one replica.
#[test]
fn discovered_hosts_are_validated_before_any_request() {
    // Any request for `evil@127.0.0.2` would land here (discovered hosts use `http_port`).
    let trap = Hostile::start_on("127.0.0.2:0", Mode::Garbage);
    let seed = Hostile::start(Mode::Seed(vec![
        (1, b"127.0.0.1".to_vec(), 9000),
        (1, b"127.0.0.1".to_vec(), 9000),
        (1, b"evil@127.0.0.2".to_vec(), 9000),
        (2, b"h/x?y#z".to_vec(), 9000),
        (2, b"a\nb\x1b[2J".to_vec(), 9000),
        (2, b"x\xffy".to_vec(), 9000),
    ]));
    let dir = scratch("discover-hostile");
    let cfg = write_config(
        &dir,
        "c.toml",
        &format!(
            "[defaults]\ndeadline_ms = {DEADLINE_MS}\n[clusters.x]\npassword_env = \"CH_PW\"\ndiscover = {{ seed = \"{}\", http_port = {} }}\n",
            seed.url(),
            trap.addr.port()
        ),
    );
    let out = chops(
        &["--config", &cfg, "check", "replicas", "--json"],
        &[("CH_PW", "S3cret")],
    );
    let card = out.json();
    let summaries: Vec<String> = findings(&card).into_iter().map(|(_, _, s)| s).collect();
    for rejected in ["evil@127.0.0.2", "h/x?y#z", "a\\nb\\x1B[2J", "x\\xFFy"] {
        let want = format!("discovered host '{rejected}' rejected: not a host name");
        assert!(
            summaries.iter().any(|s| s.starts_with(&want)),
            "{want}: {summaries:#?}"
        );
    }
    let local: Vec<&String> = summaries
        .iter()
        .filter(|s| s.starts_with("127.0.0.1:"))
        .collect();
    assert_eq!(
        local.len(),
        1,
        "127.0.0.1 twice is one replica: {summaries:#?}"
    );
    assert_eq!(
        trap.accepted.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a request went to the host hidden in 'evil@127.0.0.2'"
    );
    assert!(!out.stdout.contains("S3cret") && !out.stderr.contains("S3cret"));
}

/// 10,000 replicas that all refuse: every one is reported refused, none as chops running out of
/// file descriptors (probes in flight are capped). The time is in docs/BENCHMARKS.md.
#[test]
fn ten_thousand_refusing_replicas_give_a_card() {
    let _solo = testkit::solo();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = scratch("ten-thousand");
    // A generous deadline: this is about correctness (the test binary is a debug build); the
    // release timing is the benchmark's.
    let mut text = String::from("[defaults]\ndeadline_ms = 20000\n[clusters.x]\n");
    for i in 0..10_000 {
        text.push_str(&format!(
            "[[clusters.x.replicas]]\nname = \"r{i}\"\nurl = \"http://127.0.0.1:{port}\"\n"
        ));
    }
    let cfg = write_config(&dir, "c.toml", &text);
    let started = std::time::Instant::now();
    let out = chops(&["--config", &cfg, "check", "backup", "--json"], &[]);
    eprintln!(
        "10,000 refusing replicas: card in {} ms",
        started.elapsed().as_millis()
    );
    let card = out.json();
    assert_eq!(card["verdict"], "failing");
    let summaries: Vec<String> = findings(&card).into_iter().map(|(_, _, s)| s).collect();
    assert!(
        !summaries
            .iter()
            .any(|s| s.contains("open files") || s.contains("chops could not")),
        "{:?}",
        summaries
            .iter()
            .find(|s| s.contains("open files") || s.contains("chops could not"))
    );
    let refused = summaries
        .iter()
        .filter(|s| s.ends_with(": unreachable (connection refused)"))
        .count();
    assert_eq!(refused, 10_000, "each replica once, as refused");
}

/// 64 replicas (63 in one engine process, one that accepts and never answers): the card names
/// the hung one, checks the other 63 fully, and does not wait past the deadline.
#[test]
fn one_hung_replica_of_64_does_not_hold_the_other_63() {
    let _solo = testkit::solo();
    let lc = LocalCluster::start_one_engine(63, 0).expect("63 replicas");
    let hung = Hostile::start(Mode::Silent);
    let deadline = 5000;
    let text = std::fs::read_to_string(&lc.config_path).unwrap().replacen(
        "[clusters.local]\n",
        &format!("[clusters.local]\ndeadline_ms = {deadline}\n"),
        1,
    );
    let text = format!(
        "{text}\n[[clusters.local.replicas]]\nname = \"r64\"\nurl = \"{}\"\n",
        hung.url()
    );
    let cfg = write_config(&lc.dir, "c64.toml", &text);
    let out = chops(&["--config", &cfg, "check", "backup", "--json"], &[]);
    let card = out.json();
    let summaries = findings(&card);
    assert!(
        summaries.iter().any(|(check, _, s)| check == "replicas"
            && s.starts_with("r64: no answer (timed out after ")),
        "{summaries:#?}"
    );
    for i in 1..=63 {
        let mine: Vec<&(String, String, String)> = summaries
            .iter()
            .filter(|(_, _, s)| s.starts_with(&format!("r{i}:")))
            .collect();
        assert!(!mine.is_empty(), "r{i} not checked");
        assert!(
            mine.iter().all(|(_, _, s)| !s.contains("no answer")),
            "r{i}: {mine:?}"
        );
    }
    assert!(
        card["elapsed_ms"].as_u64().unwrap() <= deadline * 11 / 10,
        "{}",
        card["elapsed_ms"]
    );
    let slowest: Vec<&serde_json::Value> = card["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.get("slowest"))
        .collect();
    assert!(slowest.iter().any(|s| s["name"] == "r64"), "{slowest:?}");
}

/// An account with `readonly = 1` may not set query settings: chops asks again without them
/// (and keeps doing so), instead of failing every probe.
#[tokio::test]
async fn a_readonly_1_account_is_queried_without_settings() {
    use chops::checks::replicas::{ClusterRow, CLUSTER_SQL};
    use chops::clickhouse::{Budget, ReplicaClient};
    let server = Hostile::start(Mode::Readonly1(vec![(1, b"ch-1".to_vec(), 9000)]));
    let c = ReplicaClient::new(
        "r",
        &server.url(),
        None,
        "default",
        &chops::config::Secret::default(),
        std::time::Duration::from_millis(DEADLINE_MS),
        &Budget::default(),
    );
    for _ in 0..2 {
        let rows = c.fetch::<ClusterRow>(CLUSTER_SQL, &["x"]).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].host_name, "ch-1");
    }
}
