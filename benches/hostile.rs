//! Benchmark: what hostile or huge clusters cost chops. Peak RSS of `chops check backup` against a
//! replica that floods (`/ping` and a chunked 500 that never end) with `deadline_ms = 60000`
//! (before the caps: 2.1 GB at 2 s), next to a replica that refuses; and the time to a card for
//! 10,000 configured replicas that all refuse.
//!
//!
//! Hostile load on `chops serve` (the release binary, a child under `ulimit -n 1024`): `/livez`
//! while 1,100 connections are held (slowloris); the delay of cluster b's incident on the fake
//! Discord behind a 9,000-alert body of cluster a (storm); peak RSS (VmHWM) under 20 concurrent
//! 1 MiB bodies, with the default bytes-in-flight cap and with a cap too large to bind.
//!
//! `cargo bench --bench hostile [-- flood]` prints the tables and writes
//! target/chops-hostile-bench.md (`flood`: the `chops serve` cases only).

use std::process::Command;
use std::time::Instant;

use std::net::SocketAddr;
use std::time::Duration;

use testkit::discord::{FakeDiscord, CHANNEL_ID, GUILD_ID};
use testkit::flood::{alerts_body, hold, rss_kib};
use testkit::hostile::{Hostile, Mode};
use testkit::serve::{listening_addr, ServeChild};
// The bench process measures; hostile servers run in processes of their own (`Server`).

/// Run the release `chops` on `config`; wall time (ms), the card's elapsed_ms, peak RSS (MB).
fn run(config: &str) -> (f64, u64, f64) {
    let start = Instant::now();
    // Reaped by wait4 below (which also gives its peak RSS), not by Child::wait.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(env!("CARGO_BIN_EXE_chops"))
        .args(["--config", config, "check", "backup", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run chops");
    let pid = child.id() as libc::pid_t;
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    // SAFETY: wait4 reaps our own child and fills its own rusage (peak RSS of that child alone).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(reaped, pid, "wait4");
    let wall = start.elapsed().as_secs_f64() * 1000.0;
    let card: serde_json::Value = serde_json::from_slice(&stdout).expect("a card");
    (
        wall,
        card["elapsed_ms"].as_u64().unwrap_or(0),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

fn config(dir: &std::path::Path, name: &str, deadline_ms: u64, replicas: &[String]) -> String {
    let mut text = format!("[defaults]\ndeadline_ms = {deadline_ms}\n[clusters.x]\n");
    for (i, url) in replicas.iter().enumerate() {
        text.push_str(&format!(
            "[[clusters.x.replicas]]\nname = \"r{i}\"\nurl = \"{url}\"\n"
        ));
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A hostile server in a process of its own (this binary, `serve MODE`): the bench process stays
/// small, since a child's peak RSS as the kernel reports it starts from its parent's.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    fn start(mode: &str) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["serve", mode])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start a hostile server");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        Server {
            child,
            url: line.trim().to_string(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(mode: &str) {
    let mode = match mode {
        "flood200" => Mode::Flood200,
        "flood500" => Mode::Flood500,
        "big500" => Mode::Big500,
        other => panic!("unknown mode {other}"),
    };
    let h = Hostile::start(mode);
    println!("{}", h.url());
    // Until the bench kills this process (reading stdin would end at once under cargo bench).
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        return serve(&args[2]);
    }
    let dir = std::env::temp_dir().join(format!("chops-bench-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flood = flood_cases(&dir);
    if args.iter().any(|a| a == "flood") {
        print!("{flood}");
        std::fs::write(report_path(), &flood).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut rows = Vec::new();
    let refusing = config(&dir, "refusing.toml", 60_000, std::slice::from_ref(&closed));
    let (wall, card, rss) = run(&refusing);
    rows.push(format!(
        "| 1 replica, refusing | {wall:.0} | {card} | {rss:.1} |"
    ));
    for (label, mode) in [
        ("1 replica, `/ping` + 200 flood", "flood200"),
        ("1 replica, chunked 500 flood", "flood500"),
        ("1 replica, 10 MB 500", "big500"),
    ] {
        let server = Server::start(mode);
        let cfg = config(
            &dir,
            "flood.toml",
            60_000,
            std::slice::from_ref(&server.url),
        );
        let (wall, card, rss) = run(&cfg);
        rows.push(format!("| {label} | {wall:.0} | {card} | {rss:.1} |"));
    }
    let floods: Vec<Server> = (0..3).map(|_| Server::start("flood500")).collect();
    let urls: Vec<String> = floods.iter().map(|s| s.url.clone()).collect();
    let cfg = config(&dir, "floods.toml", 60_000, &urls);
    let (wall, card, rss) = run(&cfg);
    rows.push(format!(
        "| 3 replicas, chunked 500 floods | {wall:.0} | {card} | {rss:.1} |"
    ));
    drop(floods);
    let many: Vec<String> = (0..10_000).map(|_| closed.clone()).collect();
    let cfg = config(&dir, "many.toml", 2_000, &many);
    let mut times = Vec::new();
    let mut peak = 0.0;
    for _ in 0..3 {
        let (wall, card, rss) = run(&cfg);
        times.push((wall, card));
        peak = rss;
    }
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (wall, card) = times[1];
    rows.push(format!(
        "| 10,000 replicas, all refusing (median of 3) | {wall:.0} | {card} | {peak:.1} |"
    ));
    let report = format!(
        "| `chops check backup` against | wall ms | card elapsed_ms | peak RSS MB |\n|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    let report = format!("{report}\n{flood}");
    print!("{report}");
    std::fs::write(report_path(), &report).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

const TOKEN: &str = "bench-token-of-at-least-16-bytes";

/// chops-hostile-bench.md in the target directory (`CARGO_TARGET_DIR` when set).
fn report_path() -> std::path::PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    std::path::Path::new(&dir).join("chops-hostile-bench.md")
}

/// `chops serve` as a child (stopped by its PID when dropped) and where it listens.
struct Chops {
    serve: ServeChild,
    addr: SocketAddr,
}

/// Starts `chops serve` on clusters a and b (replicas that refuse), incidents to the fake's
/// channel, no watcher; `extra` TOML appended; with `fake` it posts there, else `--no-discord`.
/// Its descriptors are capped at 1024, as a default `ulimit -n`; stdout is drained by a thread.
fn start_chops(dir: &std::path::Path, name: &str, extra: &str, fake: Option<&str>) -> Chops {
    use std::os::unix::process::CommandExt;
    let mut cfg = String::new();
    for c in ["a", "b"] {
        cfg.push_str(&format!(
            "[clusters.{c}]\nincidents = {{ channel = {CHANNEL_ID} }}\ndeadline_ms = 1000\nkeeper = [\"127.0.0.1:1\"]\nreplicas = [{{ name = \"r1\", url = \"http://127.0.0.1:1\" }}]\n"
        ));
    }
    cfg.push_str(&format!(
        "[watch]\nenabled = false\n[scheduler]\nenabled = false\n[webhook]\ntoken_env = \"BENCH_TOKEN\"\n[store]\npath = \"{}\"\n{extra}\n",
        dir.join(format!("{name}.db")).display()
    ));
    let args: &[&str] = match fake {
        Some(url) => {
            cfg.push_str(&format!(
                "[discord]\nguild_ids = [{GUILD_ID}]\nproxy = \"{url}\"\n"
            ));
            &[]
        }
        None => &["--no-discord"],
    };
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = ServeChild::command(
        env!("CARGO_BIN_EXE_chops"),
        path.to_str().unwrap(),
        args,
        &[("BENCH_TOKEN", TOKEN), ("DISCORD_TOKEN", "fake-token")],
        &dir.join(format!("{name}.err")),
    );
    // SAFETY: setrlimit is async-signal-safe; it only lowers the child's own descriptor limit.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut serve = ServeChild::start(cmd);
    let mut out = serve.stdout();
    let addr = listening_addr(&mut out);
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Chops { serve, addr }
}

fn post(addr: SocketAddr, body: &[u8]) -> u16 {
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    testkit::http::request(addr, "POST", "/alertmanager", &headers, body).0
}

/// Milliseconds of one `GET /livez` on a fresh connection (None: no 200 within 20 s).
fn livez_ms(addr: SocketAddr) -> Option<f64> {
    let t = Instant::now();
    let ok = std::panic::catch_unwind(|| testkit::http::request(addr, "GET", "/livez", &[], b"").0);
    (ok.ok() == Some(200)).then(|| t.elapsed().as_secs_f64() * 1000.0)
}

/// 1,100 connections hold half a request head: `/livez` (20 tries) and one webhook POST.
fn slowloris(dir: &std::path::Path) -> String {
    let chops = start_chops(dir, "slowloris", "", None);
    let held = hold(chops.addr, 1_100);
    let mut times: Vec<f64> = Vec::new();
    let mut failed = 0;
    for _ in 0..20 {
        match livez_ms(chops.addr) {
            Some(ms) => times.push(ms),
            None => failed += 1,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = Instant::now();
    let status = post(chops.addr, &alerts_body("b", 1, "loris", ""));
    let webhook = t.elapsed().as_secs_f64() * 1000.0;
    times.sort_by(f64::total_cmp);
    let p50 = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    let max = times.last().copied().unwrap_or(f64::NAN);
    eprintln!("slowloris: /livez ms {times:.1?}");
    drop(held);
    format!(
        "| slowloris: {} connections held | `/livez` p50 {p50:.1} ms, max {max:.1} ms, {failed} of 20 unanswered; webhook POST {status} in {webhook:.0} ms | ≤ 1 s |",
        1_100
    )
}

/// A 9,000-alert body of cluster a, then one alert of b: how long until b's message is posted.
fn storm(dir: &std::path::Path) -> String {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeDiscord::start());
    let chops = start_chops(dir, "storm", "", Some(&fake.rest_url));
    rt.block_on(fake.registered(Duration::from_secs(30)));
    let posts = || -> Vec<(String, Instant)> {
        let path = format!("/api/v10/channels/{CHANNEL_ID}/messages");
        fake.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .map(|r| {
                (
                    r.body["content"].as_str().unwrap_or_default().to_string(),
                    r.at,
                )
            })
            .collect()
    };
    let body = alerts_body("a", 9_000, "s", "");
    let t0 = Instant::now();
    assert_eq!(post(chops.addr, &body), 200);
    let a_took = t0.elapsed().as_secs_f64() * 1000.0;
    let tb = Instant::now();
    assert_eq!(post(chops.addr, &alerts_body("b", 1, "other", "")), 200);
    let b_post = || posts().into_iter().find(|(c, _)| c.contains("cluster b"));
    rt.block_on(fake.wait_for("b's message", Duration::from_secs(300), |_| {
        b_post().is_some()
    }));
    let (_, at) = b_post().unwrap();
    let b_delay = at.duration_since(tb).as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_secs(3));
    let all = posts();
    let of_a = all.iter().filter(|(c, _)| c.contains("cluster a")).count();
    format!(
        "| storm: {} KiB body, 9,000 alerts of a, then 1 of b | b's message {b_delay:.0} ms after its POST (a's POST answered in {a_took:.0} ms); a: {of_a} message(s), {} posts in all | ≤ 5 s |",
        body.len() / 1024,
        all.len()
    )
}

/// 20 bodies of 9,000 alerts (1 MiB) at once; a body answered 503 is sent again after
/// `Retry-After` (5 s), as Alertmanager would. Peak RSS of chops (VmHWM) once all are recorded.
fn concurrent(dir: &std::path::Path, (name, label): (&str, &str), extra: &str) -> String {
    let chops = start_chops(dir, name, extra, None);
    std::thread::sleep(Duration::from_millis(500));
    let (idle, _) = rss_kib(chops.serve.child.id());
    let addr = chops.addr;
    let t = Instant::now();
    let refused: usize = std::thread::scope(|s| {
        let runs: Vec<_> = (0..20)
            .map(|i| {
                s.spawn(move || {
                    let body = alerts_body("a", 9_000, &format!("c{i:02}"), "");
                    let mut busy = 0;
                    while post(addr, &body) == 503 {
                        busy += 1;
                        std::thread::sleep(Duration::from_secs(5));
                    }
                    busy
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).sum()
    });
    let wall = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    let (_, hwm) = rss_kib(chops.serve.child.id());
    format!(
        "| 20 concurrent 1 MiB bodies ({label}) | peak RSS {:.1} MB (idle {:.1} MB); 180,000 alerts recorded in {wall:.1} s, {refused} answers 503 + Retry-After on the way | ≤ 100 MB |",
        hwm as f64 / 1024.0,
        idle as f64 / 1024.0
    )
}

/// The `chops serve` cases, as a Markdown table (each row printed as it is measured).
fn flood_cases(dir: &std::path::Path) -> String {
    let cases: [&dyn Fn() -> String; 4] = [
        &|| slowloris(dir),
        &|| storm(dir),
        &|| concurrent(dir, ("capped", "default cap, 2 MiB in flight"), ""),
        &|| {
            concurrent(
                dir,
                ("uncapped", "cap too large to bind, 64 MiB"),
                "[http]\nmax_body_bytes_in_flight = 67108864",
            )
        },
    ];
    let rows: Vec<String> = cases
        .iter()
        .map(|case| {
            let row = case();
            eprintln!("{row}");
            row
        })
        .collect();
    format!(
        "| `chops serve` under | measured | goal |\n|---|---|---|\n{}\n",
        rows.join("\n")
    )
}
