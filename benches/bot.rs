//! Benchmark: the real bot against the fake Discord and the local 3-replica cluster.
//! Interaction dispatched → defer callback received (p99), and → original response edited with
//! the card (p50), over RUNS interactions (default 60); then Confirm clicked on a backup preview →
//! acknowledged, and → the BACKUP statement received by the replica (its query log), including the
//! re-check with fresh probes, the lock and the audit intent. Writes target/chops-bot-bench.md.

use std::sync::Arc;
use std::time::Duration;

use chops::config::{Loaded, Secret};
use testkit::discord::*;
use testkit::LocalCluster;

/// The role the bench's member holds (allowed to back up).
const ROLE: u64 = 900_000_000_000_000_101;
/// Confirm clicks measured (one per second: a backup's name carries the second).
const CONFIRMS: usize = 15;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let lc = LocalCluster::start(3).expect("local cluster");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (defer, card, ack, statement) = rt.block_on(async {
        let fake = FakeDiscord::start().await;
        let text = std::fs::read_to_string(&lc.config_path).unwrap();
        // Something to back up on r1.
        for q in [
            "CREATE DATABASE shop",
            "CREATE TABLE shop.t (x UInt64) ENGINE = MergeTree ORDER BY x",
        ] {
            let _ = testkit::sql(&lc.urls[0], q);
        }
        let text = format!(
            "{text}\n[clusters.local.actions]\nbackup_roles = [{ROLE}]\ncooldown_secs = 0\n\
             [store]\npath = \"{}\"\n[discord]\nguild_ids = [{GUILD_ID}]\nproxy = \"{}\"\n",
            lc.dir.join("bench.db").display(),
            fake.rest_url
        );
        let loaded = Loaded::parse("bench.toml", &text).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // The bot alone (no HTTP server, watcher or scheduler), as `chops serve` runs it.
        let store = chops::store::Store::open(&loaded.store_path()).unwrap();
        let speaker = Arc::new(chops::discord::speak::Speaker::discord());
        let app = chops::app::App::new(Arc::new(loaded), store, speaker.clone());
        let bot = tokio::spawn(chops::discord::bot(
            app,
            Secret::new("fake-token"),
            speaker,
            async move {
                let _ = rx.await;
            },
        ));
        let wait = Duration::from_secs(30);
        fake.registered(wait).await;
        let (mut defer, mut card) = (Vec::new(), Vec::new());
        for i in 0..runs + 5 {
            let id = fake.next_id();
            let sent = fake.dispatch(interaction(
                id,
                2,
                CHANNEL_ID,
                "backup-check",
                options(&[], None),
            ));
            let cb = fake.callback(id, wait).await;
            let edit = fake.edited_original(id, wait).await;
            assert!(
                edit.body["embeds"][0]["title"]
                    .as_str()
                    .unwrap_or("")
                    .contains("HEALTHY"),
                "{}",
                edit.body
            );
            if i >= 5 {
                // the first few warm up connection pools
                defer.push((cb.at - sent).as_secs_f64() * 1000.0);
                card.push((edit.at - sent).as_secs_f64() * 1000.0);
            }
        }
        // Confirm → statement: one backup per second (its name, and so its id, has the second).
        let log = lc.dir.join("r1.queries.jsonl");
        let sent_backups = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("chops_operator") && l.contains("BACKUP DATABASE"))
                .count()
        };
        let (mut ack, mut statement) = (Vec::new(), Vec::new());
        for _ in 0..CONFIRMS {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            tokio::time::sleep(Duration::from_nanos(
                1_000_000_000 - now.subsec_nanos() as u64 + 5_000_000,
            ))
            .await;
            let id = fake.next_id();
            let opts = serde_json::json!([{"name": "replica", "type": 3, "value": "r1"}]);
            let mut v = interaction(id, 2, CHANNEL_ID, "backup-replica", opts);
            v["member"]["roles"] = serde_json::json!([ROLE.to_string()]);
            fake.dispatch(v);
            let preview = fake.edited_original(id, wait).await;
            let confirm = preview.body["components"][0]["components"][0]["custom_id"]
                .as_str()
                .expect("a Confirm button")
                .to_string();
            let before = sent_backups();
            let click = fake.next_id();
            let mut c = interaction(click, 3, CHANNEL_ID, "unused", serde_json::json!([]));
            c["member"]["roles"] = serde_json::json!([ROLE.to_string()]);
            c["data"] = serde_json::json!({"custom_id": confirm, "component_type": 2});
            c["message"] = message_json(9000 + click, CHANNEL_ID, &serde_json::json!({}));
            let at = fake.dispatch(c);
            let cb = fake.callback(click, wait).await;
            ack.push((cb.at - at).as_secs_f64() * 1000.0);
            while sent_backups() == before {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            statement.push(at.elapsed().as_secs_f64() * 1000.0);
            // Until its outcome, before the next one.
            let path = format!("/api/v10/channels/{CHANNEL_ID}/messages/{}", 9000 + click);
            fake.wait_for("outcome", wait, move |r| {
                r.method == "PATCH"
                    && r.path == path
                    && r.body["embeds"][0]["title"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("succeeded"))
            })
            .await;
        }
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), bot).await;
        (defer, card, ack, statement)
    });
    let sort = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    let (defer, card, ack, statement) = (sort(defer), sort(card), sort(ack), sort(statement));
    let report = format!(
        "# chops bot — {runs} interactions through the fake Discord, local 3-replica cluster\n\n\
         | measure | p50 ms | p99 ms |\n|---|---|---|\n\
         | interaction → defer sent | {:.1} | {:.1} |\n| interaction → card edited | {:.1} | {:.1} |\n\
         | Confirm click → acknowledged ({CONFIRMS}) | {:.1} | {:.1} |\n\
         | Confirm click → BACKUP received by the replica ({CONFIRMS}) | {:.1} | {:.1} |\n\n\
         goals: defer ≤ 20 ms p99, card ≤ 300 ms p50, confirm → statement ≤ 150 ms p50\n",
        pct(&defer, 0.5),
        pct(&defer, 0.99),
        pct(&card, 0.5),
        pct(&card, 0.99),
        pct(&ack, 0.5),
        pct(&ack, 0.99),
        pct(&statement, 0.5),
        pct(&statement, 0.99)
    );
    print!("{report}");
    let _ = std::fs::write(
        testkit::repo_root().join("target/chops-bot-bench.md"),
        &report,
    );
    drop(lc);
}
