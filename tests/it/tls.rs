//! TLS to every server, with real handshakes: a CA and certificates made here (rcgen), a TLS front
//! (tokio-rustls) before the local cluster's replicas and ZooKeeper. A healthy card over https://
//! and tls://; what is wrong said as a finding within the deadline (unknown issuer, wrong CA, name
//! mismatch, expiry, a client certificate wanted, a plain port); mutual TLS; the caps behind TLS;
//! a per-replica backup as the operator over https; `config check` on the files and passwords.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::common::*;
use testkit::hostile::{Hostile, Mode};
use testkit::tls_front::{backend, server_config, Ca, Front};

const DEADLINE_MS: u64 = 2000;

/// A chops config for cluster `local` over the fronts (`[tls]` lines appended as given).
fn config(dir: &Path, replicas: &[&Front], keeper: Option<&Front>, tls: &str) -> String {
    let mut text = format!("[defaults]\ndeadline_ms = {DEADLINE_MS}\n[clusters.local]\n");
    if let Some(k) = keeper {
        text.push_str(&format!("keeper = [\"tls://{}\"]\n", k.addr));
    }
    text.push_str("operator_user = \"chops_operator\"\n");
    for (i, f) in replicas.iter().enumerate() {
        text.push_str(&format!(
            "[[clusters.local.replicas]]\nname = \"r{}\"\nurl = \"{}\"\nshard = 1\n",
            i + 1,
            f.url()
        ));
    }
    if !tls.is_empty() {
        text.push_str(&format!("[clusters.local.tls]\n{tls}\n"));
    }
    write_config(dir, "chops.toml", &text)
}

/// A front with a certificate for 127.0.0.1 from `ca` before `backend_url`.
fn front(ca: &Ca, backend_url: &str) -> Front {
    let cert = ca.issue(&["127.0.0.1"], false);
    Front::start(backend(backend_url), server_config(&cert, None))
}

#[test]
fn healthy_card_over_https_and_tls_keeper() {
    let c = shared();
    let dir = scratch("tls-healthy");
    let ca = Ca::new("chops test CA");
    ca.write(&dir, "ca.pem");
    let replicas: Vec<Front> = c.urls.iter().map(|u| front(&ca, u)).collect();
    let keeper = front(&ca, &c.keeper);
    let refs: Vec<&Front> = replicas.iter().collect();
    // A relative ca_file: relative to the config file's directory.
    let cfg = config(&dir, &refs, Some(&keeper), "ca_file = \"ca.pem\"");

    let out = chops(&["--config", &cfg, "config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.is_empty(), "no warning expected: {}", out.stderr);

    let (code, card) = check_json(&cfg, "backup");
    assert_eq!(code, 0, "{card:#}");
    assert_eq!(card["verdict"], "healthy");
    for (check, sev, summary) in findings(&card) {
        assert_eq!(sev, "ok", "{check}: {summary}");
    }
    for r in ["r1", "r2", "r3"] {
        assert!(
            find(&card, "replicas", &format!("{r}: up, 26.9")).is_some(),
            "{r}"
        );
    }
    let node = format!("Keeper tls://{}: standalone", keeper.addr);
    assert!(find(&card, "keeper", &node).is_some(), "{card:#}");
    // Everything went through TLS, and both state words (`srvr`, `mntr`) shook hands.
    for f in &replicas {
        let (handshakes, _, failed) = f.counts.get();
        assert!(handshakes >= 1 && failed == 0, "{:?}", f.counts);
    }
    assert!(keeper.counts.get().0 >= 2, "{:?}", keeper.counts);
}

/// Handshakes of `fronts` so far that were not resumed (full ones), and all of them.
fn full_and_all(fronts: &[&Front]) -> (u64, u64) {
    fronts.iter().fold((0, 0), |(full, all), f| {
        let (h, r, _) = f.counts.get();
        (full + h - r, all + h)
    })
}

#[test]
fn later_cards_reuse_connections_and_resume_sessions() {
    use chops::checks::Cluster;
    use chops::config::{process_env, Loaded};
    use chops::domain::Scope;
    let c = shared();
    let dir = scratch("tls-reuse");
    let ca = Ca::new("chops test CA");
    ca.write(&dir, "ca.pem");
    // Each server on a loopback address of its own: its own name, as real hosts have.
    let on = |ip: &str, url: &str| {
        Front::start_on(
            ip,
            backend(url),
            server_config(&ca.issue(&[ip], false), None),
        )
    };
    let replicas: Vec<Front> = (c.urls.iter().enumerate())
        .map(|(i, u)| on(&format!("127.0.0.{}", i + 2), u))
        .collect();
    let keeper = on("127.0.0.9", &c.keeper);
    let refs: Vec<&Front> = replicas.iter().collect();
    let cfg = config(&dir, &refs, Some(&keeper), "ca_file = \"ca.pem\"");
    let target = || {
        let loaded = Loaded::load(Path::new(&cfg)).unwrap();
        loaded.target(Some("local"), &process_env).unwrap()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let card = |cl: &Cluster| {
        let card = rt.block_on(cl.check(Scope::Full));
        assert_eq!(card.verdict.label(), "healthy", "{card:#?}");
    };

    let cl = rt.block_on(Cluster::connect(&target())).unwrap();
    card(&cl);
    let (first, _) = full_and_all(&refs);
    assert!(first >= 3, "the first card shakes hands with every replica");
    // The next card at once (chops serve keeps the resolved cluster): the pooled connections.
    let (_, before) = full_and_all(&refs);
    card(&cl.next_round());
    let (full, after) = full_and_all(&refs);
    eprintln!("pooled card: {} new handshakes", after - before);
    assert_eq!(full, first, "no full handshake on pooled connections");
    assert!(after - before <= 1, "{} new connections", after - before);
    // A cluster resolved again from a re-read config (new pools, a new rustls config): every
    // new connection resumes a session, none shakes hands in full.
    let (_, before) = full_and_all(&refs);
    let (kfull, _) = full_and_all(&[&keeper]);
    card(&rt.block_on(Cluster::connect(&target())).unwrap());
    let (full, after) = full_and_all(&refs);
    eprintln!(
        "re-resolved card: {} new handshakes, all resumed",
        after - before
    );
    assert!(after > before, "new pools, new connections");
    assert_eq!(full, first, "no full handshake once sessions are cached");
    assert_eq!(full_and_all(&[&keeper]).0, kfull, "Keeper words resume too");
}

/// One replica (and maybe Keeper) behind fronts, `chops check WHAT --json`: the summaries, and
/// the wall time of the whole process.
fn probe(
    tag: &str,
    fronts: &[&Front],
    keeper: Option<&Front>,
    tls: &str,
    what: &str,
) -> (Vec<String>, u64) {
    let dir = scratch(tag);
    let cfg = config(&dir, fronts, keeper, tls);
    let started = Instant::now();
    let out = chops(&["--config", &cfg, "check", what, "--json"], &[]);
    let wall = started.elapsed().as_millis() as u64;
    let card = out.json();
    assert!(
        card["elapsed_ms"].as_u64().unwrap() <= DEADLINE_MS * 11 / 10,
        "{tag}: {card:#}"
    );
    let summaries = findings(&card).into_iter().map(|(_, _, s)| s).collect();
    (summaries, wall)
}

/// A CA the fronts use, another CA, a client CA with a client certificate, and the `[tls]`
/// lines that trust them.
struct Pki {
    ca: Ca,
    clients: Ca,
    /// `ca_file` = the fronts' CA.
    ca_only: String,
    /// `ca_file` = a CA that signed none of the fronts.
    other_ca: String,
    /// `ca_only` plus the client certificate and key.
    with_client: String,
    /// Where the PEM files are: kept as long as the lines that name them.
    _dir: testkit::Scratch,
}

fn pki(tag: &str) -> Pki {
    let dir = scratch(tag);
    let (ca, other, clients) = (
        Ca::new("chops test CA"),
        Ca::new("other CA"),
        Ca::new("clients"),
    );
    let ca_only = format!("ca_file = \"{}\"", ca.write(&dir, "ca.pem").display());
    let other_ca = format!("ca_file = \"{}\"", other.write(&dir, "other.pem").display());
    let (cert, key) = clients.issue(&["chops"], false).write(&dir, "client");
    let with_client = format!(
        "{ca_only}\ncert_file = \"{}\"\nkey_file = \"{}\"",
        cert.display(),
        key.display()
    );
    Pki {
        ca,
        clients,
        ca_only,
        other_ca,
        with_client,
        _dir: dir,
    }
}

/// A front before `url` with a certificate for `names` (`expired`: valid only in 2019), asking
/// for a client certificate from `clients` if given.
fn front_with(p: &Pki, url: &str, names: &[&str], expired: bool, clients: bool) -> Front {
    let cert = p.ca.issue(names, expired);
    Front::start(
        backend(url),
        server_config(&cert, clients.then_some(&p.clients)),
    )
}

#[test]
fn replica_tls_failures_say_what_is_wrong_within_the_deadline() {
    let c = shared();
    let p = pki("tls-failures");
    let r1 = &c.urls[0];
    let good = front(&p.ca, r1);
    let named = front_with(&p, r1, &["other-host"], false, false);
    let expired = front_with(&p, r1, &["127.0.0.1"], true, false);
    let mutual = front_with(&p, r1, &["127.0.0.1"], false, true);
    let ca_only = p.ca_only.clone();
    let cases: Vec<(&str, &Front, String, &str)> = vec![
        // Without ca_file the built-in Mozilla roots are used: a private CA is unknown there.
        (
            "builtin-roots",
            &good,
            String::new(),
            "r1: TLS: certificate not trusted (unknown issuer): set `tls.ca_file`",
        ),
        (
            "wrong-ca",
            &good,
            p.other_ca.clone(),
            "r1: TLS: certificate not trusted (unknown issuer)",
        ),
        (
            "name",
            &named,
            ca_only.clone(),
            "r1: TLS: certificate is for other-host, not 127.0.0.1",
        ),
        (
            "server-name",
            &named,
            format!("{ca_only}\nserver_name = \"other-host\""),
            "r1: up, 26.9",
        ),
        (
            "expired",
            &expired,
            ca_only.clone(),
            "r1: TLS: certificate expired on 2020-01-01 00:00:00 UTC",
        ),
        (
            "no-client-cert",
            &mutual,
            ca_only.clone(),
            "r1: TLS: server wants a client certificate: set `tls.cert_file` and `tls.key_file`",
        ),
        (
            "client-cert",
            &mutual,
            p.with_client.clone(),
            "r1: up, 26.9",
        ),
    ];
    for (tag, f, tls, want) in cases {
        let (summaries, wall) = probe(tag, &[f], None, &tls, "replicas");
        eprintln!("{tag}: {wall} ms: {summaries:?}");
        assert!(
            summaries.iter().any(|s| s.starts_with(want)),
            "{tag}: no finding starts with {want:?}: {summaries:#?}"
        );
        // The process, start to exit, within the deadline plus its own start-up.
        assert!(wall < DEADLINE_MS + 1500, "{tag}: {wall} ms");
    }
}

#[test]
fn keeper_tls_and_a_plain_port_say_what_is_wrong() {
    let c = shared();
    let p = pki("tls-keeper");
    // https:// to a plain http port: said as such, not a stall.
    let plain = c.urls[0].replacen("http://", "https://", 1);
    let text = format!(
        "[defaults]\ndeadline_ms = {DEADLINE_MS}\n[clusters.local]\nreplicas = [{{ name = \"r1\", url = \"{plain}\" }}]\n"
    );
    let (_, card) = check_json(
        &write_config(&scratch("tls-plain-port"), "c.toml", &text),
        "replicas",
    );
    let want = "r1: TLS: the server does not speak TLS there";
    assert!(find(&card, "replicas", want).is_some(), "{card:#}");
    // Keeper over TLS: wrong trust is a node chops cannot check, not a node that is down; a
    // node that wants a client certificate answers when it gets one.
    let replica = front(&p.ca, &c.urls[0]);
    let zk = front_with(&p, &c.keeper, &["127.0.0.1"], false, true);
    let node = format!("Keeper tls://{}", zk.addr);
    let cases = [
        (
            "keeper-wrong-ca",
            p.other_ca.clone(),
            format!("{node}: cannot be checked (TLS: certificate not trusted"),
        ),
        (
            "keeper-no-client-cert",
            p.ca_only.clone(),
            format!("{node}: cannot be checked (TLS: server wants a client certificate"),
        ),
        (
            "keeper-client-cert",
            p.with_client.clone(),
            format!("{node}: standalone"),
        ),
    ];
    for (tag, tls, want) in cases {
        let (summaries, wall) = probe(tag, &[&replica], Some(&zk), &tls, "keeper");
        eprintln!("{tag}: {wall} ms: {summaries:?}");
        assert!(
            summaries.iter().any(|s| s.starts_with(&want)),
            "{tag}: {summaries:#?}"
        );
        assert!(wall < DEADLINE_MS + 1500, "{tag}: {wall} ms");
    }
}

#[test]
fn caps_and_deadlines_hold_behind_tls() {
    let dir = scratch("tls-hostile");
    let ca = Ca::new("chops test CA");
    let ca_file = ca.write(&dir, "ca.pem").display().to_string();
    let cases = [
        (Mode::Flood500, "answer too large (> 262144 bytes)"),
        (Mode::Big500, "answer too large (> 262144 bytes)"),
        (Mode::Trickle, "no answer (timed out after "),
        (Mode::Silent, "no answer (timed out after "),
    ];
    for (mode, want) in cases {
        let tag = format!("{mode:?}");
        let server = Hostile::start(mode);
        let f = front(&ca, &server.url());
        let (summaries, wall) = probe(
            &tag,
            &[&f],
            None,
            &format!("ca_file = \"{ca_file}\""),
            "backup",
        );
        eprintln!("{tag}: {wall} ms: {summaries:?}");
        assert!(
            summaries.iter().any(|s| s.contains(want)),
            "{tag}: {summaries:#?}"
        );
        assert!(f.counts.get().0 >= 1, "{tag}: not through TLS");
        assert!(wall < DEADLINE_MS + 1500, "{tag}: {wall} ms");
    }
}

/// The OS user running the tests (`chops act` takes the requester from the password database).
fn os_user() -> String {
    // SAFETY: getuid cannot fail; getpwuid's static result is copied at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        assert!(!pw.is_null(), "the test user has a passwd entry");
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

#[test]
fn per_replica_backup_runs_as_the_operator_over_https() {
    let c = LocalCluster::start(3).expect("cluster");
    let dir = scratch("tls-act");
    let ca = Ca::new("chops test CA");
    let ca_file = ca.write(&dir, "ca.pem").display().to_string();
    let replicas: Vec<Front> = c.urls.iter().map(|u| front(&ca, u)).collect();
    let keeper = front(&ca, &c.keeper_addr);
    let refs: Vec<&Front> = replicas.iter().collect();
    let tls = format!(
        "ca_file = \"{ca_file}\"\n[clusters.local.actions]\ncli_users = [\"{}\"]",
        os_user()
    );
    let cfg = config(&dir, &refs, Some(&keeper), &tls);
    must(&c.urls[0], "CREATE DATABASE IF NOT EXISTS shop");
    must(
        &c.urls[0],
        "CREATE TABLE IF NOT EXISTS shop.items (k UInt64) ENGINE = MergeTree ORDER BY k",
    );
    must(
        &c.urls[0],
        "INSERT INTO shop.items SELECT number FROM numbers(1000)",
    );
    let before = replicas[0].counts.get().0;

    let out = chops(
        &[
            "--config",
            &cfg,
            "act",
            "backup",
            "--replica",
            "r1",
            "--yes",
        ],
        &[],
    );
    out.assert_code(0);
    assert_starts_with(&out.stdout, "succeeded: backup created on r1");
    // The operator's statement reached r1, and only r1, through its TLS front.
    let log = std::fs::read_to_string(c.dir.join("r1.queries.jsonl")).unwrap();
    let sent: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"chops_operator\"") && l.contains("BACKUP DATABASE"))
        .collect();
    assert_eq!(sent.len(), 1, "{log}");
    for i in [2, 3] {
        let other =
            std::fs::read_to_string(c.dir.join(format!("r{i}.queries.jsonl"))).unwrap_or_default();
        assert!(!other.contains("BACKUP DATABASE"), "r{i}");
    }
    assert!(
        replicas[0].counts.get().0 > before,
        "{:?}",
        replicas[0].counts
    );
    assert_eq!(replicas[0].counts.failed.load(Ordering::SeqCst), 0);
}

#[test]
fn config_check_names_the_file_and_warns_about_plain_passwords() {
    let dir = scratch("tls-config");
    let ca = Ca::new("chops test CA");
    ca.write(&dir, "ca.pem");
    let client = ca.issue(&["chops"], false);
    let (cert, _) = client.write(&dir, "client");
    let (_, other_key) = ca.issue(&["x"], false).write(&dir, "other");
    let text = format!(
        "[clusters.x]\nreplicas = [{{ name = \"r1\", url = \"https://ch-1:8443\" }}]\n[clusters.x.tls]\nca_file = \"missing.pem\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        other_key.display()
    );
    let cfg = write_config(&dir, "bad.toml", &text);
    let out = chops(&["--config", &cfg, "config", "check"], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let d = dir.display();
    for want in [
        format!("`clusters.x.tls.ca_file`: {d}/missing.pem: cannot read"),
        format!("`clusters.x.tls.key_file`: {d}/other.key: the key does not match the certificate in {d}/client.pem"),
    ] {
        assert!(out.stderr.contains(&want), "{want}\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("PRIVATE KEY"), "{}", out.stderr);

    let text = "[clusters.x]\npassword_env = \"CH_PW\"\nreplicas = [\
        { name = \"r1\", url = \"http://10.0.0.1:8123\" }, { name = \"r2\", url = \"https://10.0.0.2:8443\" }]\n";
    let cfg = write_config(&dir, "warn.toml", text);
    let out = chops(
        &["--config", &cfg, "config", "check"],
        &[("CH_PW", "S3cret")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        format!("chops: warning: {cfg}: `clusters.x.replicas[0].url`: the password in CH_PW would cross the network in clear (http:// to 10.0.0.1); use https://")
    );
    assert!(!out.stderr.contains("S3cret"));
}
