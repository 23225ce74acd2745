//! Benchmark: the full card on the local 3-replica cluster over TLS (a tokio-rustls front before
//! every replica and ZooKeeper) against the same cluster in plain http, interleaved in one run;
//! then the handshakes each card of a `chops serve`-like sequence costs (counted by the fronts).
//!
//! `cargo bench --bench tls [-- RUNS]` prints the tables and writes target/chops-tls-bench.md.
//! Compare within a run: the machine is small and noisy.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use chops::checks::flight::{Flights, Tuning};
use chops::checks::Cluster;
use chops::config::{self, ClusterTarget, Loaded};
use chops::domain::Scope;
use testkit::tls_front::{backend, server_config, Ca, Front};
use testkit::LocalCluster;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn target(path: &Path) -> ClusterTarget {
    Loaded::load(path)
        .expect("config")
        .target(Some("local"), &config::process_env)
        .expect("target")
}

/// The TLS twin of the local cluster's config: every replica and ZooKeeper behind a front.
fn tls_config(lc: &LocalCluster, replicas: &[Front], keeper: &Front) -> std::path::PathBuf {
    let mut text = format!(
        "[clusters.local]\nkeeper = [\"tls://{}\"]\n[clusters.local.tls]\nca_file = \"ca.pem\"\n",
        keeper.addr
    );
    for (i, f) in replicas.iter().enumerate() {
        text.push_str(&format!(
            "[[clusters.local.replicas]]\nname = \"r{}\"\nurl = \"{}\"\nshard = 1\n",
            i + 1,
            f.url()
        ));
    }
    let path = lc.dir.join("chops-tls.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn card_ms(rt: &Runtime, cluster: &Cluster) -> f64 {
    let t = Instant::now();
    let card = rt.block_on(cluster.check(Scope::Full));
    assert_eq!(
        card.verdict.label(),
        "healthy",
        "the cluster must stay healthy"
    );
    t.elapsed().as_secs_f64() * 1000.0
}

/// (p50, p99) of each list.
fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

/// Handshakes (replicas, Keeper) and resumed ones since `before`.
fn delta(fronts: &[Front], keeper: &Front, before: &[(u64, u64, u64)]) -> (u64, u64, u64, u64) {
    let mut out = (0, 0, 0, 0);
    for (f, b) in fronts.iter().zip(before) {
        let (h, r, _) = f.counts.get();
        out.0 += h - b.0;
        out.1 += r - b.1;
    }
    let (h, r, _) = keeper.counts.get();
    let b = before[fronts.len()];
    (out.0, out.1, h - b.0, r - b.1)
}

fn snapshot(fronts: &[Front], keeper: &Front) -> Vec<(u64, u64, u64)> {
    fronts
        .iter()
        .chain(std::iter::once(keeper))
        .map(|f| f.counts.get())
        .collect()
}

/// Plain vs TLS cards, interleaved: warm (pools kept, as chops serve keeps a resolved cluster)
/// and cold (the cluster resolved anew each time: new connections). The report's first table.
fn compare(
    rt: &Runtime,
    plain_target: &ClusterTarget,
    tls_target: &ClusterTarget,
    runs: usize,
) -> String {
    let plain = rt.block_on(Cluster::connect(plain_target)).expect("plain");
    let tls = rt.block_on(Cluster::connect(tls_target)).expect("tls");
    for _ in 0..5 {
        card_ms(rt, &plain);
        card_ms(rt, &tls);
    }
    let (mut p, mut t) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        p.push(card_ms(rt, &plain.next_round()));
        t.push(card_ms(rt, &tls.next_round()));
    }
    let (mut pc, mut tc) = (Vec::new(), Vec::new());
    for _ in 0..runs / 2 {
        let c = rt.block_on(Cluster::connect(plain_target)).unwrap();
        pc.push(card_ms(rt, &c));
        let c = rt.block_on(Cluster::connect(tls_target)).unwrap();
        tc.push(card_ms(rt, &c));
    }
    let ((p50, p99), (t50, t99)) = (stats(p), stats(t));
    let ((pc50, pc99), (tc50, tc99)) = (stats(pc), stats(tc));
    format!(
        "# chops over TLS — local 3-replica cluster, full card ({runs} warm runs per mode, {} cold)\n\n\
         | card | plain http p50 | p99 | TLS p50 | p99 | TLS ÷ plain (p50) |\n|---|---|---|---|---|---|\n\
         | warm (pooled connections) | {p50:.1} ms | {p99:.1} ms | {t50:.1} ms | {t99:.1} ms | {:.2} |\n\
         | cold (cluster resolved anew; TLS sessions resumed) | {pc50:.1} ms | {pc99:.1} ms | {tc50:.1} ms | {tc99:.1} ms | {:.2} |\n\n",
        runs / 2,
        t50 / p50,
        tc50 / pc50
    )
}

/// Handshakes per card in a chops serve-like sequence on the config at `path`, which must be
/// new to this process (nothing to resume yet, as in a freshly started chops serve).
fn serve_sequence(rt: &Runtime, path: &Path, fronts: &[Front], keeper: &Front) -> String {
    let mut report = String::from(
        "| chops serve-like sequence | replica handshakes | of them resumed | Keeper handshakes | of them resumed | card |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut row = |label: &str, run: &dyn Fn() -> f64| {
        let before = snapshot(fronts, keeper);
        let ms = run();
        let (rh, rr, kh, kr) = delta(fronts, keeper, &before);
        report.push_str(&format!(
            "| {label} | {rh} | {rr} | {kh} | {kr} | {ms:.1} ms |\n"
        ));
    };
    let flights = Flights::default();
    let fresh = target(path);
    let via_flights = || {
        let t = Instant::now();
        let card = rt
            .block_on(flights.card(&fresh, Scope::Full, Tuning::default()))
            .expect("card");
        assert_eq!(card.verdict.label(), "healthy");
        t.elapsed().as_secs_f64() * 1000.0
    };
    row("first card (new process: full handshakes)", &via_flights);
    row(
        "next card at once (resolved cluster kept, pools warm)",
        &|| card_ms(rt, &rt.block_on(flights.cluster(&fresh)).unwrap()),
    );
    std::thread::sleep(Duration::from_secs(6));
    row(
        "card 6 s later (past the 5 s share window; idle pools closed after 2 s)",
        &via_flights,
    );
    row(
        "card after the cluster is resolved again (CLUSTER_TTL; config re-read)",
        &|| card_ms(rt, &rt.block_on(Cluster::connect(&target(path))).unwrap()),
    );
    report
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40);
    let lc = LocalCluster::start(3).expect("start the local cluster");
    let ca = Ca::new("chops bench CA");
    ca.write(&lc.dir, "ca.pem");
    // Each server on a loopback address of its own: its own name, as real hosts have.
    let front = |ip: &str, url: &str| {
        Front::start_on(
            ip,
            backend(url),
            server_config(&ca.issue(&[ip], false), None),
        )
    };
    let fronts: Vec<Front> = (lc.urls.iter().enumerate())
        .map(|(i, u)| front(&format!("127.0.0.{}", i + 2), u))
        .collect();
    let keeper = front("127.0.0.9", &lc.keeper_addr);
    let tls_path = tls_config(&lc, &fronts, &keeper);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut report = compare(&rt, &target(&lc.config_path), &target(&tls_path), runs);
    // A TLS config is kept per settings and file contents: the same files with the CA path
    // spelt differently are new to this process.
    let text = std::fs::read_to_string(&tls_path)
        .unwrap()
        .replace("ca_file = \"ca.pem\"", "ca_file = \"./ca.pem\"");
    let fresh = lc.dir.join("chops-tls-fresh.toml");
    std::fs::write(&fresh, text).unwrap();
    report.push_str(&serve_sequence(&rt, &fresh, &fronts, &keeper));
    report.push_str(
        "\ngoals: TLS warm p50 within 1.2× plain; 0 full handshakes after the first card\n",
    );
    print!("{report}");
    let path = testkit::repo_root().join("target/chops-tls-bench.md");
    let _ = std::fs::write(&path, &report);
    drop((fronts, keeper, lc));
}
