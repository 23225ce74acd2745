//! Benchmark: the real bot against the fake Discord and the local 3-replica cluster.
//! Interaction dispatched → defer callback received (p99), and → original response edited with
//! the card (p50), over RUNS interactions (default 60). Writes target/chops-bot-bench.md.

#[path = "../tests/common/discord.rs"]
mod discord;
#[path = "../tests/common/openapi.rs"]
mod openapi;

use std::time::Duration;

use chops::config::{Loaded, Secret};
use chops::localcluster::LocalCluster;
use discord::*;

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
    let (defer, card) = rt.block_on(async {
        let fake = FakeDiscord::start().await;
        let text = std::fs::read_to_string(&lc.config_path).unwrap();
        let text = format!(
            "{text}\n[discord]\nguild_ids = [{GUILD_ID}]\nproxy = \"{}\"\n",
            fake.rest_url
        );
        let loaded = Loaded::parse("bench.toml", &text).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let bot = tokio::spawn(chops::discord::serve(
            loaded,
            Secret::new("fake-token"),
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
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), bot).await;
        (defer, card)
    });
    let sort = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    let (defer, card) = (sort(defer), sort(card));
    let report = format!(
        "# chops bot — {runs} interactions through the fake Discord, local 3-replica cluster\n\n\
         | measure | p50 ms | p99 ms |\n|---|---|---|\n\
         | interaction → defer sent | {:.1} | {:.1} |\n| interaction → card edited | {:.1} | {:.1} |\n\n\
         goals: defer ≤ 20 ms p99, card ≤ 300 ms p50\n",
        pct(&defer, 0.5),
        pct(&defer, 0.99),
        pct(&card, 0.5),
        pct(&card, 0.99)
    );
    print!("{report}");
    let _ = std::fs::write(
        chops::localcluster::repo_root().join("target/chops-bot-bench.md"),
        &report,
    );
    drop(lc);
}
