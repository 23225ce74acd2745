//! Test helpers: the shared local cluster, running the `chops` binary, and plain SQL over HTTP.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use chops::localcluster::LocalCluster;

pub mod discord;
pub mod hostile;
pub mod http;
pub mod openapi;

static SHARED: OnceLock<Mutex<Option<LocalCluster>>> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(m) = SHARED.get() {
        if let Ok(mut guard) = m.lock() {
            guard.take(); // Drop stops every server by PID
        }
    }
}

/// One cluster shared by the read-only tests of a test binary; stopped when the binary exits.
pub fn shared() -> SharedCluster {
    let m = SHARED.get_or_init(|| {
        // SAFETY: registers a plain extern "C" function to run at process exit.
        unsafe {
            libc::atexit(stop_shared);
        }
        Mutex::new(Some(
            LocalCluster::start(3).expect("start the shared local cluster"),
        ))
    });
    let g = m.lock().unwrap_or_else(|e| e.into_inner());
    let c = g.as_ref().expect("shared cluster");
    SharedCluster {
        config: c.config_path.display().to_string(),
        urls: c.urls.clone(),
        keeper: c.keeper_addr.clone(),
    }
}

pub struct SharedCluster {
    pub config: String,
    pub urls: Vec<String>,
    pub keeper: String,
}

pub struct Output {
    pub code: i32,
    /// stdout as bytes (to look for raw control characters).
    pub raw: Vec<u8>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Run the chops binary with `args`, and `env` added (the rest of the environment is kept).
pub fn chops(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chops"));
    cmd.args(args)
        .env_remove("CHOPS_CONFIG")
        .current_dir(std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run chops");
    Output {
        code: out.status.code().unwrap_or(-1),
        raw: out.stdout.clone(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `chops check WHAT --json` against `config`.
pub fn check_json(config: &str, what: &str) -> (i32, serde_json::Value) {
    let out = chops(&["--config", config, "check", what, "--json"], &[]);
    assert!(
        out.stderr.is_empty() || out.code <= 2,
        "stderr: {}",
        out.stderr
    );
    (out.code, out.json())
}

/// Every finding of a card JSON, as (check, severity, summary).
pub fn findings(card: &serde_json::Value) -> Vec<(String, String, String)> {
    card["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap().iter())
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["summary"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn find<'a>(
    card: &'a serde_json::Value,
    check: &str,
    needle: &str,
) -> Option<&'a serde_json::Value> {
    card["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap().iter())
        .find(|f| f["check"] == check && f["summary"].as_str().unwrap().contains(needle))
}

/// POST `sql` to a replica; returns the body, or Err(body) on an HTTP error.
pub fn sql(url: &str, sql: &str) -> Result<String, String> {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    // Answers may name objects with invalid UTF-8.
    let buf = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    if head.starts_with("HTTP/1.1 200") {
        Ok(body.to_string())
    } else {
        Err(body.to_string())
    }
}

pub fn must(url: &str, q: &str) -> String {
    sql(url, q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

pub fn write_config(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A fresh scratch directory for config files.
pub fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("chops-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
