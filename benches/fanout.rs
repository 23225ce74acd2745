//! Benchmark: the card's fan-out at scale against the canned stand-in (`testkit::canned`: recorded
//! engine answers, a delay per request standing in for the round trip), run in a process of its own
//! (this binary, `canned N RTT_MS`) so every CPU second of the bench process is chops'.
//!
//! - replicas {3, 64, 300} × RTT {0, 2, 10 ms}: p50/p99 of a warm card (pools kept, as in
//!   `chops serve`), chops' CPU per card and per replica, queries per replica per card;
//! - `chops check backup --json` as a child process at 64 and 300 replicas (10 ms): wall time,
//!   its CPU, its peak RSS (VmHWM);
//! - `chops serve` (bot on the fake Discord, HTTP, watcher at 1 s) watching 300 replicas: idle RSS,
//!   and one watcher round's cost (its histogram, CPU, queries).
//!
//! - the floor: what a run of bare loopback round trips costs an idle runtime's thread at each RTT
//!   (no chops code), to read a small card's fixed CPU against.
//!
//! `cargo bench --bench fanout [-- RUNS]` (default 10 runs per scenario) writes
//! target/chops-fanout-bench.md; `-- only REPLICAS RTT_MS RUNS` runs one scenario (for a profiler),
//! `-- floor RUNS` only the floor.
//! In-process cards run on a current-thread runtime, as `chops check` does. `FANOUT_RT=spawn` runs
//! each as a task on a 2-worker runtime's workers (as `chops serve` does), `block` with `block_on`
//! from the main thread over such a runtime (what `chops check` did before): what cross-thread
//! wake-ups cost. `CHOPS_BENCH_BIN` runs another build's `chops` (before/after).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chops::checks::Cluster;
use chops::config::{self, Loaded};
use chops::domain::{Scope, Verdict};
use testkit::canned::{Canned, Fixture, Options};
use testkit::discord::{FakeDiscord, CHANNEL_ID, GUILD_ID};
use testkit::flood::{cpu_secs, rss_kib};
use testkit::localcluster::stop_pid;
use testkit::serve::{listening_addr, ServeChild};

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

/// The chops binary: this build's, or `CHOPS_BENCH_BIN` (an earlier build, for a before/after).
fn chops_bin() -> String {
    std::env::var("CHOPS_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_chops").to_string())
}

/// CPU seconds of child `pid` if it has ended (reaped here), from wait4's rusage.
fn reap(pid: u32) -> Option<f64> {
    let mut status = 0;
    // SAFETY: wait4 fills the status and rusage it is given; `pid` is our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut ru) };
    assert!(got >= 0, "wait4: {}", std::io::Error::last_os_error());
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (got == pid as i32).then(|| t(ru.ru_utime) + t(ru.ru_stime))
}

/// The stand-in in a child process (this binary, `canned N RTT_MS`), stopped by its PID on drop.
struct StandIn {
    child: Child,
    first: SocketAddr,
    config: String,
}

impl StandIn {
    fn start(replicas: usize, rtt_ms: u64) -> StandIn {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["canned", &replicas.to_string(), &rtt_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the canned stand-in");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut config = String::new();
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 || line.trim() == "# end" {
                break;
            }
            config.push_str(&line);
        }
        let first = config
            .lines()
            .find_map(|l| l.strip_prefix("url = \"http://"))
            .and_then(|a| a.trim_end_matches('"').parse().ok())
            .expect("a replica URL");
        StandIn {
            child,
            first,
            config,
        }
    }

    /// (queries answered, unknown queries) so far.
    fn stats(&self) -> (u64, usize) {
        let (status, body) = testkit::http::request(self.first, "GET", "/canned/stats", &[], b"");
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let unknown = v["unknown"].as_array().unwrap();
        assert!(
            unknown.is_empty(),
            "queries the fixture does not know: {unknown:?}"
        );
        (v["served"].as_u64().unwrap(), unknown.len())
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        stop_pid(self.child.id() as i32);
        let _ = self.child.wait();
    }
}

/// The child side: serve until stdin closes (the bench ended, however it ended).
fn serve_canned(replicas: usize, rtt_ms: u64) {
    let opts = Options {
        replicas,
        rtt: Duration::from_millis(rtt_ms),
        faults: Vec::new(),
    };
    let c = Canned::start(Fixture::load(), opts);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}# end", c.config()).unwrap();
    out.flush().unwrap();
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
}

struct Row {
    replicas: usize,
    rtt: u64,
    p50: f64,
    p99: f64,
    cpu_ms: f64,
    queries: f64,
}

fn write_config(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn scenario(dir: &std::path::Path, replicas: usize, rtt: u64, runs: usize) -> Row {
    let s = StandIn::start(replicas, rtt);
    let path = write_config(dir, "fanout.toml", &s.config);
    let loaded = Loaded::load(&path).expect("config");
    let target = loaded.target(Some("local"), &config::process_env).unwrap();
    let how = std::env::var("FANOUT_RT").unwrap_or_default();
    let rt = if how != "spawn" && how != "block" {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let base = rt.block_on(Cluster::connect(&target)).expect("connect");
    let run = || -> (f64, f64) {
        let cl = base.next_round();
        let (t, c) = (Instant::now(), cpu());
        let card = if how == "spawn" {
            rt.block_on(async move {
                tokio::spawn(async move { cl.check(Scope::Full).await })
                    .await
                    .unwrap()
            })
        } else {
            rt.block_on(cl.check(Scope::Full))
        };
        assert_eq!(card.verdict, Verdict::Healthy, "{}", card.headline);
        (t.elapsed().as_secs_f64() * 1000.0, (cpu() - c) * 1000.0)
    };
    for _ in 0..2 {
        run();
    }
    let (before, _) = s.stats();
    let (mut wall, mut cpu_ms): (Vec<f64>, Vec<f64>) = (0..runs).map(|_| run()).unzip();
    let (after, _) = s.stats();
    wall.sort_by(f64::total_cmp);
    cpu_ms.sort_by(f64::total_cmp);
    Row {
        replicas,
        rtt,
        p50: pct(&wall, 0.5),
        p99: pct(&wall, 0.99),
        cpu_ms: pct(&cpu_ms, 0.5),
        queries: (after - before) as f64 / (runs * replicas) as f64,
    }
}

/// `chops check backup --json` as a child: (wall ms, CPU ms, VmHWM KiB), medians of `runs`.
fn check_child(dir: &std::path::Path, replicas: usize, rtt: u64, runs: usize) -> (f64, f64, f64) {
    let s = StandIn::start(replicas, rtt);
    let path = write_config(dir, "check.toml", &s.config);
    let (mut wall, mut cpu_ms, mut hwm) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let child = Command::new(chops_bin())
            .args([
                "--config",
                path.to_str().unwrap(),
                "check",
                "backup",
                "--json",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut peak = 0;
        // VmHWM sampled while it runs; CPU from wait4 (the kernel's own account at exit).
        let cpu_s = loop {
            peak = peak.max(rss_kib(pid).1);
            if let Some(secs) = reap(pid) {
                break secs;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        std::mem::forget(child); // reaped above
        wall.push(t.elapsed().as_secs_f64() * 1000.0);
        cpu_ms.push(cpu_s * 1000.0);
        hwm.push(peak as f64);
    }
    s.stats();
    for v in [&mut wall, &mut cpu_ms, &mut hwm] {
        v.sort_by(f64::total_cmp);
    }
    (pct(&wall, 0.5), pct(&cpu_ms, 0.5), pct(&hwm, 0.5))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// What `chops serve` watching 300 replicas costs.
struct Serve {
    rss: u64,
    hwm: u64,
    rounds: f64,
    round_ms: f64,
    cpu_per_round_ms: f64,
    queries_per_round: f64,
}

fn serve_300(dir: &std::path::Path, rt: &tokio::runtime::Runtime) -> Serve {
    let s = StandIn::start(300, 10);
    let fake = rt.block_on(FakeDiscord::start());
    // The watcher reads the clusters that post incidents.
    let cluster = format!("[clusters.local]\nincidents = {{ channel = {CHANNEL_ID} }}\n");
    let cfg = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:0\"\n[watch]\ninterval_secs = 1\n[store]\npath = \"{}\"\n[discord]\nguild_ids = [{GUILD_ID}]\nproxy = \"{}\"\n",
        s.config.replacen("[clusters.local]\n", &cluster, 1),
        dir.join("serve.db").display(),
        fake.rest_url
    );
    let path = write_config(dir, "serve.toml", &cfg);
    let mut serve = ServeChild::spawn(
        chops_bin(),
        path.to_str().unwrap(),
        &[],
        &[("DISCORD_TOKEN", "fake-token")],
        &dir.join("serve.err"),
    );
    let pid = serve.child.id();
    let addr = listening_addr(&mut serve.stdout());
    rt.block_on(fake.registered(Duration::from_secs(30)));
    std::thread::sleep(Duration::from_secs(5));
    let get = || testkit::http::request(addr, "GET", "/metrics", &[], b"").1;
    let (m0, c0, (q0, _)) = (get(), cpu_secs(pid), s.stats());
    std::thread::sleep(Duration::from_secs(20));
    let (m1, c1, (q1, _)) = (get(), cpu_secs(pid), s.stats());
    let rounds = metric(&m1, "chops_watch_rounds_total") - metric(&m0, "chops_watch_rounds_total");
    let sum = "chops_watch_round_duration_seconds_sum";
    let (rss, hwm) = rss_kib(pid);
    let out = Serve {
        rss,
        hwm,
        rounds,
        round_ms: (metric(&m1, sum) - metric(&m0, sum)) / rounds * 1000.0,
        cpu_per_round_ms: (c1 - c0) / rounds * 1000.0,
        queries_per_round: (q1 - q0) as f64 / rounds,
    };
    serve.terminate(Duration::from_secs(60));
    out
}

/// CPU seconds of the calling thread so far.
fn thread_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// The machine's floor: µs of CPU (p50) that `waits` bare round trips in a row cost a
/// current-thread runtime, 64 bytes each way on one loopback socket, answered `rtt_ms` later by
/// a thread. No chops code runs: this is what waiting for the network costs any process here
/// (being woken, cold caches), against which a small card's fixed CPU is read.
fn floor_us(rtt_ms: u64, waits: usize, cards: usize) -> f64 {
    use std::io::Read;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    // Ends when the client's socket closes (its read fails).
    let echo = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut b = [0u8; 64];
        while s.read_exact(&mut b).is_ok() {
            std::thread::sleep(Duration::from_millis(rtt_ms));
            if s.write_all(&b).is_err() {
                return;
            }
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut per = rt.block_on(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut b = [7u8; 64];
        let mut per = Vec::with_capacity(cards);
        for _ in 0..cards {
            let c = thread_cpu();
            for _ in 0..waits {
                s.write_all(&b).await.unwrap();
                s.read_exact(&mut b).await.unwrap();
            }
            per.push((thread_cpu() - c) * 1e6);
        }
        per
    });
    echo.join().unwrap();
    per.sort_by(f64::total_cmp);
    pct(&per, 0.5)
}

/// Bare round trips a 3-replica warm card waits through, about: its context switches per card
/// (`perf stat`) at any RTT from 1 to 40 ms.
const CARD_WAITS: usize = 12;

fn floor_report(runs: usize) -> String {
    let mut report = format!(
        "\n| RTT | floor: {CARD_WAITS} bare round trips, CPU p50 | per round trip |\n|---|---|---|\n"
    );
    for rtt in [0, 2, 10] {
        let us = floor_us(rtt, CARD_WAITS, runs.max(20));
        report.push_str(&format!(
            "| {rtt} ms | {:.2} ms | {:.0} µs |\n",
            us / 1000.0,
            us / CARD_WAITS as f64
        ));
    }
    report
}

fn matrix_report(rows: &[Row]) -> String {
    let mut report = String::from(
        "| replicas | RTT | card p50 | p99 | chops CPU per card | per replica | queries per replica |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        report.push_str(&format!(
            "| {} | {} ms | {:.0} ms | {:.0} ms | {:.1} ms | {:.3} ms | {:.1} |\n",
            r.replicas,
            r.rtt,
            r.p50,
            r.p99,
            r.cpu_ms,
            r.cpu_ms / r.replicas as f64,
            r.queries
        ));
    }
    report
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("canned") {
        return serve_canned(args[2].parse().unwrap(), args[3].parse().unwrap());
    }
    let dir = testkit::scratch("fanout-bench");
    // `only REPLICAS RTT_MS RUNS`: one scenario of the matrix (for a profiler).
    if args.get(1).map(String::as_str) == Some("only") {
        let n = |i: usize| args[i].parse::<usize>().unwrap();
        let r = scenario(&dir, n(2), n(3) as u64, n(4));
        return print!("{}", matrix_report(&[r]));
    }
    // `floor RUNS`: only what waiting for the network costs any process here.
    if args.get(1).map(String::as_str) == Some("floor") {
        return print!("{}", floor_report(args[2].parse().unwrap()));
    }
    let runs: usize = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let mut rows = Vec::new();
    for replicas in [3, 64, 300] {
        for rtt in [0, 2, 10] {
            let r = scenario(&dir, replicas, rtt, runs);
            eprintln!(
                "{replicas} × {rtt} ms: {:.0} ms, {:.1} ms CPU",
                r.p50, r.cpu_ms
            );
            rows.push(r);
        }
    }
    let mut report = matrix_report(&rows);
    report.push_str(&floor_report(runs));
    report.push_str(
        "\n| `chops check backup --json` (child process, 10 ms RTT) | wall p50 | CPU p50 | peak RSS (VmHWM) p50 |\n|---|---|---|---|\n",
    );
    for n in [64, 300] {
        let (wall, cpu_ms, hwm) = check_child(&dir, n, 10, runs.min(5));
        eprintln!("chops check, {n} replicas: {wall:.0} ms, {hwm:.0} KiB");
        report.push_str(&format!(
            "| {n} replicas | {wall:.0} ms | {cpu_ms:.0} ms | {:.1} MiB |\n",
            hwm / 1024.0
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s = serve_300(&dir, &rt);
    report.push_str(&format!(
        "\n| `chops serve` watching 300 replicas (10 ms RTT, watcher at 1 s, bot on the fake Discord) | value |\n|---|---|\n\
         | idle RSS, VmRSS / VmHWM | {:.1} MiB / {:.1} MiB |\n\
         | watcher round (its histogram, mean of {:.0} rounds) | {:.1} ms |\n\
         | chops CPU per watcher round (whole idle process) | {:.1} ms |\n\
         | queries per watcher round | {:.0} |\n",
        s.rss as f64 / 1024.0,
        s.hwm as f64 / 1024.0,
        s.rounds,
        s.round_ms,
        s.cpu_per_round_ms,
        s.queries_per_round
    ));
    print!("{report}");
    let _ = std::fs::write(
        testkit::repo_root().join("target/chops-fanout-bench.md"),
        &report,
    );
}
