//! Benchmark: `check backup` fan-out at scale — replicas {3, 10, 64} × simulated round trip
//! {0, 2, 10 ms} on the local cluster in one-engine mode (`local-cluster.sh --one-engine`: every
//! replica its own port and query log; identical SELECTs share one engine call, as independent
//! servers would answer in parallel). Concurrent vs fully sequential p50/p99 and their ratio,
//! chops' own CPU time per card, the bench process's peak RSS, and the queries each replica
//! received per card (its query log). Writes target/chops-fanout-bench.md.
//!
//! `cargo bench --bench fanout [-- RUNS]` (default 8 runs per mode and scenario).

use std::time::Instant;

use chops::checks::{Cluster, Mode};
use chops::config::{self, Loaded};
use chops::domain::Scope;
use testkit::LocalCluster;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// User + system CPU seconds of this process so far.
fn cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn peak_rss_mb() -> f64 {
    // SAFETY: as above.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

struct Row {
    replicas: usize,
    rtt: u32,
    par: (f64, f64),
    seq: (f64, f64),
    cpu_ms: f64,
    queries: f64,
    /// Server-side query time per card, summed over the replicas (ms).
    server: f64,
}

fn scenario(replicas: usize, rtt: u32, runs: usize) -> Row {
    let lc = LocalCluster::start_one_engine(replicas, rtt).expect("local cluster");
    let loaded = Loaded::load(&lc.config_path).expect("config");
    let target = loaded.target(Some("local"), &config::process_env).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = rt.block_on(Cluster::connect(&target)).expect("connect");
    let log_lines = || {
        std::fs::read_to_string(lc.dir.join("r1.queries.jsonl"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    // Server-side time, summed over every replica's log (ms).
    let server_ms = || -> f64 {
        (1..=replicas)
            .map(|i| {
                std::fs::read_to_string(lc.dir.join(format!("r{i}.queries.jsonl.ms")))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.parse::<f64>().ok())
                    .sum::<f64>()
            })
            .sum()
    };
    let run = |mode: Mode| -> (f64, f64) {
        let mut cl = base.next_round();
        cl.mode = mode;
        let (t, c) = (Instant::now(), cpu());
        let card = rt.block_on(cl.check(Scope::Full));
        assert_ne!(card.verdict.label(), "failing", "{}", card.headline);
        (t.elapsed().as_secs_f64() * 1000.0, (cpu() - c) * 1000.0)
    };
    for _ in 0..2 {
        run(Mode::Concurrent);
    }
    let (mut par, mut seq, mut cpu_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (before, server_before) = (log_lines(), server_ms());
    for _ in 0..runs {
        let (ms, c) = run(Mode::Concurrent);
        par.push(ms);
        cpu_ms.push(c);
    }
    let queries = (log_lines() - before) as f64 / runs as f64;
    let server = (server_ms() - server_before) / runs as f64;
    // Sequential runs are long at 64 replicas × 10 ms: fewer of them.
    let seq_runs = if replicas * rtt as usize >= 640 {
        2
    } else {
        runs.min(4)
    };
    for _ in 0..seq_runs {
        seq.push(run(Mode::Sequential).0);
    }
    for v in [&mut par, &mut seq, &mut cpu_ms] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    drop(lc);
    Row {
        replicas,
        rtt,
        par: (pct(&par, 0.5), pct(&par, 0.99)),
        seq: (pct(&seq, 0.5), pct(&seq, 0.99)),
        cpu_ms: pct(&cpu_ms, 0.5),
        queries,
        server,
    }
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(8);
    let mut rows = Vec::new();
    for replicas in [3, 10, 64] {
        for rtt in [0, 2, 10] {
            let r = scenario(replicas, rtt, runs);
            eprintln!("{replicas} × {rtt} ms: {:.0} ms", r.par.0);
            rows.push(r);
        }
    }
    let mut report = String::from(
        "| replicas | RTT | concurrent p50 | p99 | sequential p50 | p99 | ratio (p50) | chops CPU per card | queries per replica | server time per card |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        report.push_str(&format!(
            "| {} | {} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} | {:.0} ms | {:.1} | {:.0} ms |\n",
            r.replicas,
            r.rtt,
            r.par.0,
            r.par.1,
            r.seq.0,
            r.seq.1,
            r.par.0 / r.seq.0,
            r.cpu_ms,
            r.queries,
            r.server
        ));
    }
    report.push_str(&format!(
        "\npeak RSS of the bench process: {:.1} MB\n",
        peak_rss_mb()
    ));
    print!("{report}");
    let _ = std::fs::write(
        testkit::repo_root().join("target/chops-fanout-bench.md"),
        &report,
    );
}
