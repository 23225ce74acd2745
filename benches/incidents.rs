//! Benchmark: `chops serve` (the real binary, a child process) against the local 3-replica cluster
//! and the fake Discord. Measures
//! - webhook received → card posted in the incident channel, p50/p90: "cold" alerts spaced past the
//!   single-flight share window (each runs a probe round) and "warm" ones inside it;
//! - idle RSS (VmRSS, VmHWM) of `chops serve` with the watcher (1 s rounds) and HTTP on;
//! - the watcher's cost per round on 3 replicas: its own histogram (from /metrics), the process's
//!   CPU time per round, and the queries each replica received per round (its query log);
//! - SIGTERM → exit.
//!
//! Writes target/chops-incidents-bench.md.

use std::time::{Duration, Instant};

use testkit::discord::*;
use testkit::flood::{cpu_secs, rss_kib};
use testkit::serve::{listening_addr, ServeChild};
use testkit::{http, LocalCluster};

const TOKEN: &str = "bench-token-of-16-bytes";

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn query_lines(lc: &LocalCluster) -> usize {
    (1..=3)
        .map(|i| {
            std::fs::read_to_string(lc.dir.join(format!("r{i}.queries.jsonl")))
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    l.contains("\"user\": \"default\"") || l.contains("\"user\":\"default\"")
                })
                .count()
        })
        .sum()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn alert(fingerprint: &str) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/alertmanager/firing.json")).unwrap();
    v["alerts"][0]["fingerprint"] = fingerprint.into();
    serde_json::to_vec(&v).unwrap()
}

fn main() {
    let lc = LocalCluster::start(3).expect("local cluster");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeDiscord::start());
    let store = lc.dir.join("bench-incidents.db");
    let text = std::fs::read_to_string(&lc.config_path).unwrap().replacen(
        "[clusters.local]\n",
        &format!("[clusters.local]\nincidents = {{ channel = {CHANNEL_ID} }}\n"),
        1,
    );
    let cfg = format!(
        "{text}\n[http]\nlisten = \"127.0.0.1:0\"\n[watch]\ninterval_secs = 1\n[webhook]\ntoken_env = \"BENCH_WEBHOOK_TOKEN\"\n[store]\npath = \"{}\"\n[discord]\nguild_ids = [{GUILD_ID}]\nproxy = \"{}\"\n",
        store.display(),
        fake.rest_url
    );
    let path = lc.dir.join("bench-serve.toml");
    std::fs::write(&path, cfg).unwrap();
    // Stopped by its PID on any early exit of the bench (a panic below).
    let mut serve = ServeChild::spawn(
        env!("CARGO_BIN_EXE_chops"),
        path.to_str().unwrap(),
        &[],
        &[
            ("BENCH_WEBHOOK_TOKEN", TOKEN),
            ("DISCORD_TOKEN", "fake-token"),
        ],
        &lc.dir.join("bench-serve.err"),
    );
    let pid = serve.child.id();
    let addr = listening_addr(&mut serve.stdout());
    rt.block_on(fake.registered(Duration::from_secs(30)));

    // Idle: the watcher at 1 s rounds and HTTP, nothing to post.
    std::thread::sleep(Duration::from_secs(5));
    let (cpu0, q0, t0) = (cpu_secs(pid), query_lines(&lc), Instant::now());
    let m0 = http::request(addr, "GET", "/metrics", &[], b"").1;
    std::thread::sleep(Duration::from_secs(20));
    let m1 = http::request(addr, "GET", "/metrics", &[], b"").1;
    let (cpu1, q1, idle_wall) = (cpu_secs(pid), query_lines(&lc), t0.elapsed());
    let (idle_rss, idle_hwm) = rss_kib(pid);
    let rounds = metric(&m1, "chops_watch_rounds_total") - metric(&m0, "chops_watch_rounds_total");
    let round_secs = (metric(&m1, "chops_watch_round_duration_seconds_sum")
        - metric(&m0, "chops_watch_round_duration_seconds_sum"))
        / rounds;
    let cpu_per_round = (cpu1 - cpu0) / rounds;
    let queries_per_round = (q1 - q0) as f64 / rounds / 3.0;

    // Webhook → card posted.
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let posts = || {
        fake.requests()
            .iter()
            .filter(|r| {
                r.method == "POST" && r.path == format!("/api/v10/channels/{CHANNEL_ID}/messages")
            })
            .count()
    };
    let measure = |n: usize, gap: Duration, tag: &str| {
        let mut out = Vec::new();
        for i in 0..n {
            let before = posts();
            let sent = Instant::now();
            let (status, answer) = http::request(
                addr,
                "POST",
                "/alertmanager",
                &headers,
                &alert(&format!("{tag}{i:014}")),
            );
            assert_eq!(status, 200, "{answer}");
            rt.block_on(
                fake.wait_for("the alert card", Duration::from_secs(30), |_| {
                    posts() > before
                }),
            );
            out.push(sent.elapsed().as_secs_f64() * 1000.0);
            std::thread::sleep(gap);
        }
        out.sort_by(f64::total_cmp);
        out
    };
    let cold = measure(
        12,
        chops::checks::flight::SHARE_FOR + Duration::from_millis(300),
        "c",
    );
    let warm = measure(30, Duration::from_millis(50), "w");
    let (busy_rss, busy_hwm) = rss_kib(pid);

    // SIGTERM → exit.
    let (status, exit) = serve.terminate(Duration::from_secs(15));
    let exit_ms = exit.as_secs_f64() * 1000.0;
    fake.assert_bodies_valid();

    let report = format!(
        "| measure | value |\n| --- | --- |\n\
         | webhook → card posted, cold (a probe round each), p50 / p90 of {} | {:.0} ms / {:.0} ms |\n\
         | webhook → card posted, warm (card shared within 5 s), p50 / p90 of {} | {:.0} ms / {:.0} ms |\n\
         | idle RSS of `chops serve` (bot + HTTP + watcher at 1 s), VmRSS / VmHWM | {:.1} MiB / {:.1} MiB |\n\
         | RSS after the {} alert cards, VmRSS / VmHWM | {:.1} MiB / {:.1} MiB |\n\
         | watcher round on 3 replicas (its histogram, mean of {:.0} rounds) | {:.1} ms |\n\
         | chops CPU per watcher round (idle process, over {:.0} s) | {:.2} ms |\n\
         | queries per replica per watcher round | {:.2} |\n\
         | SIGTERM → exit ({}) | {:.0} ms |\n",
        cold.len(),
        pct(&cold, 0.5),
        pct(&cold, 0.9),
        warm.len(),
        pct(&warm, 0.5),
        pct(&warm, 0.9),
        idle_rss as f64 / 1024.0,
        idle_hwm as f64 / 1024.0,
        cold.len() + warm.len(),
        busy_rss as f64 / 1024.0,
        busy_hwm as f64 / 1024.0,
        rounds,
        round_secs * 1000.0,
        idle_wall.as_secs_f64(),
        cpu_per_round * 1000.0,
        queries_per_round,
        if status.success() { "exit 0" } else { "FAILED" },
        exit_ms,
    );
    print!("{report}");
    let out = testkit::repo_root().join("target/chops-incidents-bench.md");
    std::fs::write(out, &report).unwrap();
}
