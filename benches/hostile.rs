//! Benchmark: what hostile or huge clusters cost chops. Peak RSS of `chops check backup` against a
//! replica that floods (`/ping` and a chunked 500 that never end) with `deadline_ms = 60000`
//! (before the caps: 2.1 GB at 2 s), next to a replica that refuses; and the time to a card for
//! 10,000 configured replicas that all refuse.
//!
//! `cargo bench --bench hostile` prints the table and writes target/chops-hostile-bench.md.

use std::process::Command;
use std::time::Instant;

use testkit::hostile::{Hostile, Mode};
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
    print!("{report}");
    std::fs::write("target/chops-hostile-bench.md", &report).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
