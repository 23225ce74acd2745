//! The canned stand-in (`testkit::canned`): its fixture still matches what the engine answers
//! for chops' current queries (or is recorded again with `CHOPS_RECORD_CANNED=1`), it answers a
//! whole card, fails loudly on a query it does not know, and plays replica faults; the embed of a
//! 300-replica failing card stays within Discord's limits.

use std::time::Duration;

use chops::checks::{blockers, Cluster};
use chops::config::{self, Loaded};
use chops::discord::render;
use chops::domain::{CheckKind, Scope, Verdict};
use testkit::canned::{self, Canned, Fault, Fixture, Options};

use crate::common::*;

/// A cluster of chops over the stand-in's replicas, `deadline_ms` per probe.
async fn cluster(c: &Canned, deadline_ms: u64) -> Cluster {
    let dir = scratch("canned");
    let text = c.config().replacen(
        "[clusters.local]\n",
        &format!("[clusters.local]\ndeadline_ms = {deadline_ms}\n"),
        1,
    );
    let path = write_config(&dir, "chops.toml", &text);
    let loaded = Loaded::load(std::path::Path::new(&path)).expect("config");
    let target = loaded.target(Some("local"), &config::process_env).unwrap();
    Cluster::connect(&target).await.expect("connect")
}

/// The stand-in answering from the checked-in fixture with `replicas` healthy replicas.
fn healthy(replicas: usize) -> Canned {
    let opts = Options {
        replicas,
        ..Options::default()
    };
    Canned::start(Fixture::load(), opts)
}

/// The summaries of a card's `check` section.
fn said(card: &chops::domain::Card, check: CheckKind) -> Vec<String> {
    let section = card.sections.iter().find(|s| s.check == check);
    let section = section.expect("the card has that section");
    section.findings.iter().map(|f| f.summary.clone()).collect()
}

/// Every query chops sends: each card scope (a full card twice: the second batches the risky
/// parts the first proved), and the watcher's read of `system.backups`.
async fn drive(c: &Canned) {
    let cl = cluster(c, 5000).await;
    let mut scopes = vec![Scope::Full, Scope::Full];
    scopes.extend(CheckKind::ALL.iter().map(|k| Scope::One(*k)));
    for scope in scopes {
        cl.next_round().check(scope).await;
    }
    let addr = c.urls[0].trim_start_matches("http://").parse().unwrap();
    let path = "/?default_format=RowBinaryWithNamesAndTypes";
    let sql = chops::automation::watch::WATCH_SQL.as_bytes();
    let (status, _) =
        tokio::task::spawn_blocking(move || testkit::http::request(addr, "POST", path, &[], sql))
            .await
            .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn fixture_matches_what_the_engine_answers() {
    let shared = shared();
    let rec = Canned::record(&shared.urls[0], &shared.keeper, 3);
    drive(&rec).await;
    let now = rec.recorded();
    drop(rec);
    if std::env::var_os("CHOPS_RECORD_CANNED").is_some() {
        now.save();
        return;
    }
    let fixture = Fixture::load();
    // Every query sent today is in the fixture. Which risky parts a warm batch holds depends on
    // how quickly the engine answered them alone (a loaded machine may leave one out), so the
    // fixture may hold a batch this run did not send.
    for k in now.queries.keys() {
        assert!(
            fixture.queries.contains_key(k),
            "chops' queries changed: record the fixture again (CHOPS_RECORD_CANNED=1): {k}"
        );
    }
    for (k, a) in &now.queries {
        let old = &fixture.queries[k];
        assert_eq!(old.status, a.status, "{k}");
        if a.status == 200 {
            assert!(
                canned::header(&a.body).is_some(),
                "{k}: not RowBinaryWithNamesAndTypes"
            );
            assert_eq!(
                canned::header(&old.body),
                canned::header(&a.body),
                "{k}: columns changed"
            );
        }
    }
    // Likewise the words: `ruok` and `isro` are asked only of a node whose state is unknown.
    for w in now.words.keys() {
        assert!(
            fixture.words.contains_key(w),
            "{w}: record the fixture again"
        );
    }
}

#[tokio::test]
async fn a_canned_card_is_complete_and_every_query_known() {
    let c = healthy(4);
    let card = cluster(&c, 5000).await.check(Scope::Full).await;
    assert!(c.unknown().is_empty(), "{:?}", c.unknown());
    assert_eq!(card.verdict, Verdict::Healthy, "{}", card.headline);
    // One batch, the two that read Keeper (system.replicas, system.zookeeper) and the settings per
    // replica; the DDL queue (recorded from the engine, which has none: 139) until the tries end.
    assert_eq!(
        c.served(),
        4 * 4 + blockers::DDL_TRIES as u64,
        "4 queries per replica per card, the DDL queue at most 4 times"
    );
}

/// A risky part (here the settings' `system.disks`) joins the batch once it answered quickly; when
/// it then hangs, the batch is given up after the patience and the other parts still answer.
#[tokio::test]
async fn a_hung_risky_part_does_not_hold_up_the_batch() {
    let c = healthy(2);
    let cl = cluster(&c, 1000).await;
    cl.next_round().check(Scope::Full).await;
    let before = c.served();
    let card = cl.next_round().check(Scope::Full).await;
    assert_eq!(card.verdict, Verdict::Healthy, "{}", card.headline);
    // Proven by the first card: one batch and the lag per replica, the DDL queue of both (139).
    assert_eq!(c.served() - before, 2 * 2 + 2);

    c.slow_when("system.disks", Duration::from_secs(5));
    let card = cl.next_round().check(Scope::Full).await;
    let (replicas, settings, keeper) = (
        said(&card, CheckKind::Replicas),
        said(&card, CheckKind::Settings),
        said(&card, CheckKind::Keeper),
    );
    for r in ["r1", "r2"] {
        assert!(
            replicas.iter().any(|s| s.contains(&format!("{r}: up"))),
            "{replicas:?}"
        );
        assert!(
            keeper
                .iter()
                .any(|s| s.contains(&format!("{r} sees Keeper"))),
            "{keeper:?}"
        );
        assert!(
            settings
                .iter()
                .any(|s| s.contains(r) && s.contains("no answer")),
            "{settings:?}"
        );
    }
}

/// A Keeper hang at 300 replicas: each replica gets two request slots and the whole card 256, and
/// the lag query and the batch holding `system.zookeeper` both wait on Keeper. The batch is given
/// up at its patience and the rest asked again; that retry must neither queue behind
/// `system.zookeeper` asked alone beside the hung lag query, nor behind the hundreds of hung Keeper
/// reads holding the card's slots, or every replica would read "timed out" in a Keeper outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_hang_at_300_replicas_leaves_the_replicas_answered() {
    let c = healthy(300);
    let cl = cluster(&c, 3000).await;
    // Two cards to prove the risky parts where they answer quickly (on a loaded machine some may
    // not: then they go alone, and the property below holds all the same).
    for _ in 0..2 {
        cl.next_round().check(Scope::Full).await;
    }
    c.slow_when("system.zookeeper", Duration::from_secs(10));
    c.slow_when("system.replicas", Duration::from_secs(10));
    let card = cl.next_round().check(Scope::Full).await;
    let (replicas, blockers) = (
        said(&card, CheckKind::Replicas),
        said(&card, CheckKind::Blockers),
    );
    // Answered, quickly or not (a loaded machine may take over half the deadline): not timed out.
    let up = replicas
        .iter()
        .filter(|s| s.contains(": up") || s.contains(": slow: answered"))
        .count();
    assert_eq!(up, 300, "{:?}", &replicas[..replicas.len().min(20)]);
    // Mutations, merges and backups answered everywhere; the DDL queue lives in Keeper, so the
    // few replicas asked for it may say it timed out.
    let answered = blockers
        .iter()
        .filter(|s| s.contains("no running backups") || s.contains("distributed_ddl_queue"))
        .count();
    assert_eq!(answered, 300, "{:?}", &blockers[..blockers.len().min(20)]);
    assert!(blockers.len() <= 300 + 4, "{:?}", &blockers[..20]);
    assert!(
        said(&card, CheckKind::Keeper)
            .iter()
            .any(|s| s.contains("r1:") && s.contains("timed out")),
        "{:?}",
        said(&card, CheckKind::Keeper)
    );
}

/// A batch refused at once for its risky part (a Keeper session lost behind
/// `system.zookeeper`) blames that part only: the others go in one retry, not each on its own.
#[tokio::test]
async fn a_batch_refused_for_its_risky_part_retries_the_rest_together() {
    let c = healthy(2);
    let cl = cluster(&c, 2000).await;
    for _ in 0..2 {
        cl.next_round().check(Scope::Full).await;
    }
    c.fail_when(
        "system.zookeeper",
        "Code: 999. DB::Exception: Session expired. (KEEPER_EXCEPTION)",
    );
    let before = c.served();
    let card = cl.next_round().check(Scope::Full).await;
    // Per replica: the refused batch, its retry, the risky parts alone (which one broke the
    // batch is not told, so the settings go alone too), the lag; and the DDL queue of both (139
    // on the stand-in). Each part alone would be 2 + 5 + 1.
    assert_eq!(c.served() - before, 2 * 5 + 2, "{}", card.headline);
    let keeper = said(&card, CheckKind::Keeper);
    for r in ["r1", "r2"] {
        let lost = format!("{r} cannot reach Keeper");
        assert!(keeper.iter().any(|s| s.starts_with(&lost)), "{keeper:?}");
    }
    let replicas = said(&card, CheckKind::Replicas);
    let up = replicas.iter().filter(|s| s.contains(": up")).count();
    assert_eq!(up, 2, "{replicas:?}");
}

#[tokio::test]
async fn an_unknown_query_fails_loudly() {
    let c = healthy(1);
    let addr = c.urls[0].trim_start_matches("http://").parse().unwrap();
    let (status, body) = tokio::task::spawn_blocking(move || {
        testkit::http::request(addr, "POST", "/", &[], b"SELECT 'not recorded'")
    })
    .await
    .unwrap();
    assert_eq!(status, 500);
    assert!(body.contains("CANNED_NO_ANSWER"), "{body}");
    assert_eq!(c.unknown(), ["TabSeparated\nSELECT 'not recorded'"]);
}

#[tokio::test]
async fn replica_faults_show_on_the_card() {
    let error = "Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)";
    let faults = vec![
        (1, Fault::Refuse),
        (2, Fault::Error(error.into())),
        (3, Fault::Hang),
    ];
    let c = Canned::start(
        Fixture::load(),
        Options {
            replicas: 4,
            rtt: Duration::ZERO,
            faults,
        },
    );
    let card = cluster(&c, 600)
        .await
        .check(Scope::One(CheckKind::Replicas))
        .await;
    let said: Vec<&str> = card.sections[0]
        .findings
        .iter()
        .map(|f| f.summary.as_str())
        .collect();
    let has = |s: &str| said.iter().any(|x| x.contains(s));
    assert!(has("r1: up"), "{said:?}");
    assert!(has("r2: unreachable (connection refused)"), "{said:?}");
    assert!(has("r3:") && has("MEMORY_LIMIT_EXCEEDED"), "{said:?}");
    assert!(has("r4: no answer"), "{said:?}");
    assert_eq!(card.verdict, Verdict::Failing);
}

/// 300 replicas: a third refuse, a third answer every query with an error, a third are fine.
#[tokio::test]
async fn embed_of_a_300_replica_failing_card_is_within_discord_limits() {
    let error = "Code: 999. Coordination::Exception: Session expired (KEEPER_EXCEPTION)";
    let faults = (0..300)
        .filter_map(|i| match i % 3 {
            0 => Some((i, Fault::Refuse)),
            1 => Some((i, Fault::Error(error.into()))),
            _ => None,
        })
        .collect();
    let opts = Options {
        replicas: 300,
        rtt: Duration::ZERO,
        faults,
    };
    let c = Canned::start(Fixture::load(), opts);
    let card = cluster(&c, 5000).await.check(Scope::Full).await;
    assert_eq!(card.verdict, Verdict::Failing, "{}", card.headline);
    let e = render::embed(&card);
    crate::embed::assert_limits(&e);
    assert!(
        e.fields.iter().any(|(_, v)| v.contains("more")),
        "summarised"
    );
}
