//! The trust boundary, tried as a hostile tester would: servers that flood, trickle, send huge or
//! non-UTF-8 errors or garbage; a discovery seed listing hostile host names; 10,000 replicas.
//! Every case must give a bounded card in time, with a finding that says what happened.

mod common;
use common::hostile::{Hostile, Mode};
use common::*;

const DEADLINE_MS: u64 = 2000;

fn one_replica(tag: &str, url: &str, limits: &str) -> String {
    let dir = scratch(tag);
    write_config(
        &dir,
        "c.toml",
        &format!(
            "[defaults]\ndeadline_ms = {DEADLINE_MS}\n[defaults.limits]\n{limits}\n[clusters.x]\nreplicas = [{{ name = \"evil\", url = \"{url}\" }}]\n"
        ),
    )
}

/// `n` system.clusters rows whose host names are `len` bytes long.
fn many_rows(n: usize, len: usize) -> Mode {
    Mode::Seed((0..n).map(|i| (1, format!("h{i:0len$}").into_bytes(), 9000)).collect())
}

#[test]
fn hostile_answers_give_a_bounded_card_within_the_deadline() {
    let cases: Vec<(&str, Mode, &str, &str)> = vec![
        // Only 64 bytes of a /ping are read; the queries' answers fail on their first bytes.
        ("flood200", Mode::Flood200, "", "/ping answered 'AAAAAAAA"),
        ("flood500", Mode::Flood500, "", "answer too large (> 1048576 bytes)"),
        ("big500", Mode::Big500, "", "answer too large (> 1048576 bytes)"),
        ("trickle", Mode::Trickle, "", "no answer (timed out after "),
        ("garbage", Mode::Garbage, "", "evil: no answer (unexpected answer"),
        // The message survives its bad bytes (as `?`); its escape is shown, not obeyed.
        ("nonutf8", Mode::NonUtf8Error, "", "code 60: Table bad??.\\x1B[2Jname"),
    ];
    for (tag, mode, limits, want) in cases {
        let server = Hostile::start(mode);
        let cfg = one_replica(tag, &server.url(), limits);
        let started = std::time::Instant::now();
        let out = chops(&["--config", &cfg, "check", "backup", "--json"], &[]);
        let wall = started.elapsed().as_millis() as u64;
        let card = out.json();
        let summaries: Vec<String> = findings(&card).into_iter().map(|(_, _, s)| s).collect();
        eprintln!("{tag}: {wall} ms, {} bytes\n  {}", out.stdout.len(), summaries.join("\n  "));
        assert!(
            summaries.iter().any(|s| s.contains(want)),
            "{tag}: no finding says {want:?}: {summaries:#?}"
        );
        assert!(card["elapsed_ms"].as_u64().unwrap() <= DEADLINE_MS * 11 / 10, "{tag}: {card:#}");
        assert!(out.stdout.len() < 64 * 1024, "{tag}: {} bytes of card", out.stdout.len());
        assert!(summaries.iter().all(|s| s.chars().count() <= 300), "{tag}");
        // The terminal card too: bounded, and never a raw control character from the server.
        let term = chops(&["--config", &cfg, "check", "backup", "--color", "never"], &[]);
        assert!(term.raw.len() < 64 * 1024, "{tag}");
        assert!(
            !term.raw.iter().any(|&b| b == 0x1b || (b < 0x20 && b != b'\n')),
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
        (many_rows(50, 8), Limits { rows: 10, ..Limits::default() }, "answer too large (> 10 rows)"),
        (many_rows(20, 4000), Limits { answer_bytes: 8192, ..Limits::default() }, "answer too large (> 8192 bytes)"),
        (many_rows(5, 8), Limits { rows: 10, ..Limits::default() }, ""),
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
