//! Benchmark: end-to-end `check backup` on the local 3-replica cluster (real ZooKeeper + three
//! ClickHouse-engine replicas), concurrent vs the same probes one after another.
//!
//! `cargo bench --bench check_backup [-- RUNS]` prints p50/p99 of both and the ratio of the
//! p50s, and writes the report to target/chops-bench.md. Compare the ratio, not the absolute
//! numbers: the machine is small and noisy.

use std::time::Instant;

use chops::checks::{Cluster, Mode};
use chops::config::{self, Loaded};
use testkit::{must, LocalCluster};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// p50, p99 of concurrent and sequential runs on a fresh local cluster whose replicas add
/// `latency_ms` to every query.
fn scenario(latency_ms: u32, runs: usize) -> ((f64, f64), (f64, f64)) {
    let lc = LocalCluster::start_with_latency(3, latency_ms).expect("start the local cluster");
    // Something to look at: a database with tables and parts on every replica.
    for url in &lc.urls {
        must(url, "CREATE DATABASE IF NOT EXISTS shop");
        for t in 0..10 {
            must(
                url,
                &format!(
                    "CREATE TABLE shop.t{t} (id UInt64, v String) ENGINE = MergeTree ORDER BY id"
                ),
            );
            must(
                url,
                &format!(
                    "INSERT INTO shop.t{t} SELECT number, toString(number) FROM numbers(1000)"
                ),
            );
        }
    }
    let loaded = Loaded::load(&lc.config_path).expect("config");
    let target = loaded
        .target(Some("local"), &config::process_env)
        .expect("target");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut cluster = rt.block_on(Cluster::connect(&target)).expect("connect");
    let mut measure = |mode: Mode| -> Vec<f64> {
        cluster.mode = mode;
        // Warm-up: connection pools, the engines' first reads of system tables.
        for _ in 0..5 {
            rt.block_on(cluster.check(chops::domain::Scope::Full));
        }
        let mut ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let card = rt.block_on(cluster.check(chops::domain::Scope::Full));
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(
                card.verdict.label(),
                "healthy",
                "the benchmark cluster must stay healthy"
            );
        }
        ms
    };
    // Interleave the two modes in blocks so that machine noise hits both alike.
    let (mut par, mut seq) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        par.extend(measure(Mode::Concurrent));
        seq.extend(measure(Mode::Sequential));
    }
    par.sort_by(|a, b| a.partial_cmp(b).unwrap());
    seq.sort_by(|a, b| a.partial_cmp(b).unwrap());
    drop(lc);
    (
        (percentile(&par, 0.5), percentile(&par, 0.99)),
        (percentile(&seq, 0.5), percentile(&seq, 0.99)),
    )
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let mut report = format!(
        "# chops check backup — local 3-replica cluster ({} runs per mode)\n\n\
         | replicas add per query | concurrent p50 | p99 | sequential p50 | p99 | concurrent ÷ sequential (p50) |\n\
         |---|---|---|---|---|---|\n",
        2 * runs
    );
    for latency in [0, 2] {
        let ((p50, p99), (s50, s99)) = scenario(latency, runs);
        report.push_str(&format!(
            "| {latency} ms | {p50:.1} ms | {p99:.1} ms | {s50:.1} ms | {s99:.1} ms | {:.2} |\n",
            p50 / s50
        ));
    }
    report.push_str("\ngoals: p50 ≤ 250 ms, ratio ≤ 0.30\n");
    print!("{report}");
    let path = testkit::repo_root().join("target/chops-bench.md");
    let _ = std::fs::write(&path, &report);
}
