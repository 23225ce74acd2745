//! Small hostile "ClickHouse servers" on loopback port 0, for the trust-boundary tests and the
//! RSS benchmark: floods, huge error bodies, trickles, garbage, non-UTF-8 text, and a seed whose
//! `system.clusters` lists hostile host names (real RowBinaryWithNamesAndTypes).
//! Each server is a [`Loopback`]: its own thread and runtime, stopped when dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::loopback::Loopback;

/// How the server answers every request (queries and `/ping` alike).
#[derive(Debug, Clone)]
pub enum Mode {
    /// 200, chunked, never ends.
    Flood200,
    /// 500, chunked, never ends.
    Flood500,
    /// 500 with a 10 MB body (Content-Length).
    Big500,
    /// 200 headers, then one byte every 50 ms.
    Trickle,
    /// Accepts, reads the request, never answers (a hung server).
    Silent,
    /// An account with `readonly = 1`: any query setting is refused (164 READONLY); without
    /// settings, `system.clusters` rows as in `Seed`.
    Readonly1(Vec<(u32, Vec<u8>, u16)>),
    /// 200 with 4 KiB of bytes that mean nothing.
    Garbage,
    /// 500 whose exception text has invalid UTF-8 and a terminal escape.
    NonUtf8Error,
    /// `system.clusters` rows (shard, host, port) in RowBinaryWithNamesAndTypes; `/ping` says Ok.
    Seed(Vec<(u32, Vec<u8>, u16)>),
}

pub struct Hostile {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
    _server: Loopback,
}

impl Hostile {
    /// Serve `mode` on 127.0.0.1:0.
    pub fn start(mode: Mode) -> Hostile {
        Hostile::start_on("127.0.0.1:0", mode)
    }

    /// Serve `mode` on `bind` (e.g. "127.0.0.2:0").
    pub fn start_on(bind: &str, mode: Mode) -> Hostile {
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let server = Loopback::serve(bind, move |sock| {
            count.fetch_add(1, Ordering::Relaxed);
            answer(sock, mode.clone())
        });
        Hostile {
            addr: server.addr,
            accepted,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Read one request head (and its body, by Content-Length) so the client sees a normal exchange.
async fn read_request(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let chunked = head.contains("transfer-encoding: chunked");
            let mut body = buf[i + 4..].to_vec();
            while body.len() < len || (chunked && !body.windows(5).any(|w| w == b"0\r\n\r\n")) {
                let n = sock.read(&mut chunk).await.ok()?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            let mut all = buf[..i + 4].to_vec();
            all.extend_from_slice(&body);
            return Some(all);
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    }
}

async fn answer(mut sock: TcpStream, mode: Mode) {
    while let Some(req) = read_request(&mut sock).await {
        let is_ping = req.starts_with(b"GET /ping");
        let r = match &mode {
            Mode::Flood200 => flood(&mut sock, "200 OK").await,
            Mode::Flood500 => flood(&mut sock, "500 Internal Server Error").await,
            Mode::Big500 => {
                let mut body = b"Code: 999. DB::Exception: ".to_vec();
                body.resize(10_000_000, b'x');
                send(&mut sock, "500 Internal Server Error", &body).await
            }
            Mode::Readonly1(rows) => {
                let has_settings = String::from_utf8_lossy(&req).contains("max_execution_time");
                if has_settings {
                    let body = b"Code: 164. DB::Exception: Cannot modify 'max_execution_time' setting in readonly mode. (READONLY)";
                    send(&mut sock, "500 Internal Server Error", body).await
                } else {
                    send(&mut sock, "200 OK", &cluster_rows(rows)).await
                }
            }
            Mode::Silent => {
                std::future::pending::<()>().await;
                Ok(())
            }
            Mode::Trickle => {
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if sock.write_all(b"\x01").await.is_err() {
                        return;
                    }
                }
            }
            Mode::Garbage => {
                let body: Vec<u8> = (0..4096u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                send(&mut sock, "200 OK", &body).await
            }
            Mode::NonUtf8Error => {
                let body = b"Code: 60. DB::Exception: Table bad\xff\xfe.\x1b[2Jname\ndoes not exist. (UNKNOWN_TABLE)";
                send(&mut sock, "500 Internal Server Error", body).await
            }
            Mode::Seed(rows) => {
                if is_ping {
                    send(&mut sock, "200 OK", b"Ok.\n").await
                } else {
                    send(&mut sock, "200 OK", &cluster_rows(rows)).await
                }
            }
        };
        if r.is_err() {
            return;
        }
    }
}

async fn send(sock: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body).await
}

/// A chunked body that never ends (until the client goes away).
async fn flood(sock: &mut TcpStream, status: &str) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n");
    sock.write_all(head.as_bytes()).await?;
    let chunk = {
        let data = vec![b'A'; 64 * 1024];
        let mut c = format!("{:x}\r\n", data.len()).into_bytes();
        c.extend_from_slice(&data);
        c.extend_from_slice(b"\r\n");
        c
    };
    loop {
        sock.write_all(&chunk).await?;
    }
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// `system.clusters` as chops asks for it (see `checks::replicas::CLUSTER_SQL`).
fn cluster_rows(rows: &[(u32, Vec<u8>, u16)]) -> Vec<u8> {
    let cols = [
        ("shard_num", "UInt32"),
        ("replica_num", "UInt32"),
        ("host_name", "String"),
        ("port", "UInt16"),
        ("is_local", "UInt8"),
        ("errors_count", "UInt64"),
    ];
    let mut out = Vec::new();
    varint(&mut out, cols.len() as u64);
    for (name, _) in cols {
        string(&mut out, name.as_bytes());
    }
    for (_, ty) in cols {
        string(&mut out, ty.as_bytes());
    }
    for (i, (shard, host, port)) in rows.iter().enumerate() {
        out.extend_from_slice(&shard.to_le_bytes());
        out.extend_from_slice(&(i as u32 + 1).to_le_bytes());
        string(&mut out, host);
        out.extend_from_slice(&port.to_le_bytes());
        out.push(0);
        out.extend_from_slice(&0u64.to_le_bytes());
    }
    out
}
