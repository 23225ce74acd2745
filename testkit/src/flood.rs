//! Floods for `chops serve`'s HTTP server and incident poster: Alertmanager payloads of thousands
//! of alerts, connections held open, and the memory and CPU time of a process.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};

use serde_json::{json, Value};

/// One Alertmanager (version 4) payload of `n` firing alerts of `cluster` (named once, in
/// `commonLabels`), fingerprints `{tag}{i}` (distinct per tag), each with `summary` when not
/// empty. Alerts as small as Alertmanager sends them: 9,000 fit in 1 MiB.
pub fn alerts_body(cluster: &str, n: usize, tag: &str, summary: &str) -> Vec<u8> {
    let alerts: Vec<Value> = (0..n)
        .map(|i| {
            let mut a = json!({
                "status": "firing",
                "labels": {"alertname": "Readonly"},
                "startsAt": "2026-11-26T01:31:45Z",
                "fingerprint": format!("{tag}{i:08}"),
            });
            if !summary.is_empty() {
                a["annotations"] = json!({ "summary": summary });
            }
            a
        })
        .collect();
    serde_json::to_vec(&json!({
        "version": "4",
        "status": "firing",
        "receiver": "chops",
        "commonLabels": {"cluster": cluster},
        "alerts": alerts,
    }))
    .expect("JSON")
}

/// The same payload, every alert resolved (`endsAt` set).
pub fn resolved_body(cluster: &str, n: usize, tag: &str, summary: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&alerts_body(cluster, n, tag, summary)).unwrap();
    v["status"] = "resolved".into();
    for a in v["alerts"].as_array_mut().unwrap() {
        a["status"] = "resolved".into();
        a["endsAt"] = "2026-11-26T02:00:00Z".into();
    }
    serde_json::to_vec(&v).unwrap()
}

/// `n` connections to `addr` that each sent part of a request head and hold it (slowloris).
/// Connections the server refused or closed at once are counted out, not retried.
pub fn hold(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut s = TcpStream::connect(addr).ok()?;
            s.write_all(b"GET /livez HTTP/1.1\r\nX-Slow: ").ok()?;
            Some(s)
        })
        .collect()
}

/// The head of a POST to `path` with `auth`, `Content-Length: len` (None: chunked).
pub fn post_head(path: &str, auth: &str, len: Option<usize>) -> String {
    let length = match len {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_string(),
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nConnection: close\r\n{length}\r\n"
    )
}

/// (VmRSS, VmHWM) of `pid` in KiB (Linux `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU seconds of `pid` so far (Linux `/proc/PID/stat`).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf only reads a constant.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}
