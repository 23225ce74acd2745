//! The HTTP server of `chops serve` under peers that hold connections: slow headers are cut off,
//! a slow body gets 408, and `/livez` still answers while many more connections than the cap are
//! held open.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chops::app::App;
use chops::config::Loaded;

const TOKEN: &str = "a-token-of-at-least-16-bytes";
const CONFIG: &str = r#"
[clusters.local]
keeper = ["127.0.0.1:1"]
replicas = [{ name = "r1", url = "http://127.0.0.1:1" }]

[http]
listen = "127.0.0.1:0"
max_connections = 16
header_timeout_secs = HEADER
request_timeout_secs = 2

[webhook]
token_env = "CHOPS_BOUNDS_TEST_TOKEN"

[watch]
enabled = false

[scheduler]
enabled = false
"#;

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A scratch directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `chops serve`'s HTTP server alone, with a header timeout of `header_secs`.
async fn start(name: &str, header_secs: u64) -> Server {
    let dir = std::env::temp_dir().join(format!("chops-http-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "{}\n[store]\npath = \"{}\"\n",
        CONFIG.replace("HEADER", &header_secs.to_string()),
        dir.join("s.db").display()
    );
    let loaded = Loaded::parse("bounds.toml", &text).expect("config");
    let store = chops::store::Store::open(&loaded.store_path()).expect("store");
    let mut app = App::new(
        Arc::new(loaded),
        store,
        Arc::new(chops::discord::speak::Speaker::nowhere()),
    );
    app.webhook_token = Some(chops::config::Secret::new(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(chops::http::serve(listener, app, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
        _dir: tempdir::Dir(dir),
    }
}

impl Server {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops")
            .expect("server task");
    }
}

/// `GET /livez` on a fresh connection: the status line, or None when it did not answer in 5 s.
fn livez(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().next().map(str::to_string)
}

/// True when the server closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // Whatever it said (an error status), then the close.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_a_slow_body_gets_408() {
    let server = start("slow", 1).await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        // Headers one byte at a time, never finished: closed after the 1 s header timeout.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /livez HTTP/1.1\r\nX-Slow: ").unwrap();
        let started = Instant::now();
        let mut cut = false;
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(500));
            if slow.write_all(b"a").is_err() {
                cut = true;
                break;
            }
        }
        assert!(cut || closed_within(&mut slow, Duration::from_secs(3)), "slow headers were never cut off");
        assert!(started.elapsed() < Duration::from_secs(8));

        // An idle kept-alive connection is closed too.
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(closed_within(&mut idle, Duration::from_secs(4)), "idle keep-alive never closed");

        // A body that trickles: 408 within the request timeout, then the close.
        let mut body = TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n{{"
        );
        body.write_all(head.as_bytes()).unwrap();
        body.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 64];
        let n = body.read(&mut head).unwrap_or(0);
        let text = String::from_utf8_lossy(&head[..n]).to_string();
        assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_answers_while_far_more_connections_than_the_cap_are_held() {
    // Headers may take 30 s here: every connection the server closes is closed for the cap.
    let server = start("held", 30).await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        // 300 connections that never send a byte (the cap is 16).
        let held: Vec<TcpStream> = (0..300)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect();
        assert!(held.len() >= 200, "could only open {}", held.len());
        for _ in 0..3 {
            assert_eq!(livez(addr).as_deref(), Some("HTTP/1.1 200 OK"));
        }
        // The server keeps at most 16 open: the rest were closed to make room, not held.
        let mut held = held;
        let closed = held
            .iter_mut()
            .map(|s| closed_within(s, Duration::from_millis(200)))
            .filter(|c| *c)
            .count();
        assert!(
            closed >= held.len() - 16,
            "{closed} of {} closed",
            held.len()
        );
    })
    .await
    .unwrap();
    server.stop().await;
}
