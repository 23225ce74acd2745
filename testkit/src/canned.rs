//! A canned-answer stand-in for many ClickHouse replicas and one ZooKeeper: one tokio runtime,
//! one listener per replica, every answer replayed from a fixture recorded from the local engine
//! (`testkit/fixtures/canned.json`, keyed by the answer format and the normalised SQL). A query
//! costs it microseconds, so a benchmark of 300 replicas measures chops, not the stand-in.
//!
//! - An unknown query gets a ClickHouse-style error and is kept ([`Canned::unknown`]): the fixture
//!   stays honest, and `tests/it/canned.rs` checks it against what the engine answers today.
//! - A delay before every answer stands in for the round trip; per-replica [`Fault`]s refuse,
//!   hang, or answer every query with an error text.
//! - [`Canned::record`] relays to a real replica and ZooKeeper and keeps what they answered.
//! - `GET /canned/stats` on any replica port: queries answered and unknown, for benchmarks that
//!   run the stand-in in a process of its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::loopback::Background;

/// One recorded answer: its HTTP status and body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What the stand-in answers: queries by [`key`], Keeper's four-letter words by word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fixture {
    pub queries: BTreeMap<String, Answer>,
    pub words: BTreeMap<String, String>,
}

/// Where the checked-in fixture lives.
pub fn fixture_path() -> PathBuf {
    crate::repo_root().join("testkit/fixtures/canned.json")
}

/// The lookup key of a query: its answer format, a newline, its SQL with whitespace runs made one
/// space (the settings chops sends with it do not change the rows).
pub fn key(format: &str, sql: &str) -> String {
    let sql: Vec<&str> = sql.split_whitespace().collect();
    format!("{format}\n{}", sql.join(" "))
}

impl Fixture {
    /// The checked-in fixture.
    pub fn load() -> Fixture {
        let path = fixture_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (record it: see tests/it/canned.rs)",
                path.display()
            )
        });
        Fixture::from_json(&serde_json::from_str(&text).expect("canned fixture is JSON"))
    }

    /// Bodies that are UTF-8 are kept as text (readable in review), the others as hex.
    pub fn to_json(&self) -> Value {
        let queries: serde_json::Map<String, Value> = self
            .queries
            .iter()
            .map(|(k, a)| {
                let body = match std::str::from_utf8(&a.body) {
                    Ok(t) => json!({ "text": t }),
                    Err(_) => json!({ "hex": hex(&a.body) }),
                };
                let mut v = json!({ "status": a.status });
                v.as_object_mut()
                    .unwrap()
                    .extend(body.as_object().unwrap().clone());
                (k.clone(), v)
            })
            .collect();
        json!({ "queries": queries, "words": self.words })
    }

    pub fn from_json(v: &Value) -> Fixture {
        let mut f = Fixture::default();
        for (k, a) in v["queries"].as_object().expect("queries") {
            let body = match (a["text"].as_str(), a["hex"].as_str()) {
                (Some(t), _) => t.as_bytes().to_vec(),
                (None, Some(h)) => unhex(h),
                _ => panic!("{k}: no body"),
            };
            let status = a["status"].as_u64().expect("status") as u16;
            f.queries.insert(k.clone(), Answer { status, body });
        }
        for (w, a) in v["words"].as_object().expect("words") {
            f.words
                .insert(w.clone(), a.as_str().expect("word answer").into());
        }
        f
    }

    pub fn save(&self) {
        let text = serde_json::to_string_pretty(&self.to_json()).unwrap() + "\n";
        std::fs::write(fixture_path(), text).expect("write the canned fixture");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The column names and types that head a `RowBinaryWithNamesAndTypes` body (what a recorded
/// answer must still share with the engine's answer of today; the values, such as uptime, vary).
pub fn header(body: &[u8]) -> Option<Vec<String>> {
    let mut at = 0;
    let n = varint(body, &mut at)?;
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..2 * n {
        let len = varint(body, &mut at)?;
        let s = body.get(at..at + len)?;
        at += len;
        out.push(String::from_utf8_lossy(s).into_owned());
    }
    Some(out)
}

/// An unsigned LEB128 number at `*at` (moved past it).
fn varint(body: &[u8], at: &mut usize) -> Option<usize> {
    let (mut v, mut shift) = (0usize, 0);
    loop {
        let b = *body.get(*at)?;
        *at += 1;
        v |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return Some(v);
        }
        shift += 7;
    }
}

/// What one replica does wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Nothing listens on its port: connections are refused.
    Refuse,
    /// Connections are accepted and requests read, never answered.
    Hang,
    /// Every query (not `/ping`) is answered HTTP 500 with this ClickHouse error text.
    Error(String),
}

/// The stand-in's shape: replicas, the delay before each answer, faults by replica (0-based).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub replicas: usize,
    pub rtt: Duration,
    pub faults: Vec<(usize, Fault)>,
}

/// Answers from the fixture, or relayed to a real replica and ZooKeeper and recorded.
enum Source {
    Fixture(Fixture),
    Record {
        replica: SocketAddr,
        keeper: SocketAddr,
        got: Mutex<Fixture>,
    },
}

struct State {
    source: Source,
    rtt: Duration,
    served: AtomicU64,
    unknown: Mutex<Vec<String>>,
    /// Queries whose SQL holds this text are answered this much later (see [`Canned::slow_when`]).
    slow: Mutex<Vec<(String, Duration)>>,
    /// Queries whose SQL holds this text are answered with this error (see [`Canned::fail_when`]).
    failing: Mutex<Vec<(String, String)>>,
}

/// The running stand-in; stopped (its thread joined) when dropped.
pub struct Canned {
    pub urls: Vec<String>,
    /// `127.0.0.1:port` of the four-letter-word listener.
    pub keeper: String,
    state: Arc<State>,
    _thread: Background,
}

impl Canned {
    /// Replicas answering from `fixture`.
    pub fn start(fixture: Fixture, opts: Options) -> Canned {
        Canned::run(Source::Fixture(fixture), opts)
    }

    /// Replicas relaying to `replica` (`http://host:port`) and `keeper` (`host:port`), recording.
    pub fn record(replica: &str, keeper: &str, replicas: usize) -> Canned {
        let replica = replica.trim_start_matches("http://").trim_end_matches('/');
        let source = Source::Record {
            replica: replica.parse().expect("replica address"),
            keeper: keeper.parse().expect("keeper address"),
            got: Mutex::new(Fixture::default()),
        };
        let opts = Options {
            replicas,
            ..Options::default()
        };
        Canned::run(source, opts)
    }

    fn run(source: Source, opts: Options) -> Canned {
        let state = Arc::new(State {
            source,
            rtt: opts.rtt,
            served: AtomicU64::new(0),
            unknown: Mutex::new(Vec::new()),
            slow: Mutex::new(Vec::new()),
            failing: Mutex::new(Vec::new()),
        });
        let bind = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a canned port");
            l.set_nonblocking(true).unwrap();
            l
        };
        let mut listeners = Vec::new();
        let mut urls = Vec::new();
        for i in 0..opts.replicas {
            let fault = opts
                .faults
                .iter()
                .find(|(r, _)| *r == i)
                .map(|(_, f)| f.clone());
            let l = bind();
            urls.push(format!("http://{}", l.local_addr().unwrap()));
            // A refusing replica: the port was free a moment ago and nothing listens on it now.
            if fault != Some(Fault::Refuse) {
                listeners.push((l, fault));
            }
        }
        let zk = bind();
        let keeper = zk.local_addr().unwrap().to_string();
        let st = state.clone();
        let thread = Background::run(move || serve_all(st, listeners, zk));
        Canned {
            urls,
            keeper,
            state,
            _thread: thread,
        }
    }

    /// From now on, on every replica, a query whose SQL holds `text` is answered `delay` later
    /// (a hung disk, a slow Keeper behind one system table). Calls add up: the longest delay
    /// of the texts a query holds applies.
    pub fn slow_when(&self, text: &str, delay: Duration) {
        self.state
            .slow
            .lock()
            .unwrap()
            .push((text.to_string(), delay));
    }

    /// From now on, on every replica, a query whose SQL holds `text` is answered HTTP 500 with
    /// the ClickHouse error text `error` (a Keeper session lost behind `system.zookeeper`).
    pub fn fail_when(&self, text: &str, error: &str) {
        self.state
            .failing
            .lock()
            .unwrap()
            .push((text.to_string(), error.to_string()));
    }

    /// Queries answered so far (known or not; `/ping` not counted).
    pub fn served(&self) -> u64 {
        self.state.served.load(Ordering::Relaxed)
    }

    /// Keys of the queries the fixture had no answer for.
    pub fn unknown(&self) -> Vec<String> {
        self.state.unknown.lock().unwrap().clone()
    }

    /// What was recorded (record mode), or the fixture.
    pub fn recorded(&self) -> Fixture {
        match &self.state.source {
            Source::Fixture(f) => f.clone(),
            Source::Record { got, .. } => got.lock().unwrap().clone(),
        }
    }

    /// A chops config for these replicas as cluster `local` (as `local-cluster.sh` writes one).
    pub fn config(&self) -> String {
        let mut out = format!(
            "[clusters.local]\nkeeper = [\"{}\"]\nuser = \"default\"\n\n",
            self.keeper
        );
        for (i, url) in self.urls.iter().enumerate() {
            out.push_str(&format!(
                "[[clusters.local.replicas]]\nname = \"r{}\"\nurl = \"{url}\"\nshard = 1\n\n",
                i + 1
            ));
        }
        out
    }
}

type Listeners = Vec<(std::net::TcpListener, Option<Fault>)>;

/// Every listener, on the stand-in's thread until it is dropped.
async fn serve_all(st: Arc<State>, listeners: Listeners, zk: std::net::TcpListener) {
    for (l, fault) in listeners {
        let l = TcpListener::from_std(l).unwrap();
        let st = st.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_conn(sock, st.clone(), fault.clone()));
            }
        });
    }
    let zk = TcpListener::from_std(zk).unwrap();
    let st2 = st.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = zk.accept().await {
            tokio::spawn(serve_word(sock, st2.clone()));
        }
    });
    std::future::pending::<()>().await;
}

/// One request: method, target (path and query string) and body.
struct Request {
    method: String,
    target: String,
    body: Vec<u8>,
    /// `Connection: close`: the connection ends after this answer.
    close: bool,
}

/// The next request on a keep-alive connection; `None` at its end.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut words = head.split_whitespace();
    let (method, target) = (words.next()?.to_string(), words.next()?.to_string());
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let close = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close")
        })
    });
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Some(Request {
        method,
        target,
        body,
        close,
    })
}

async fn serve_conn(mut sock: TcpStream, st: Arc<State>, fault: Option<Fault>) {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut sock, &mut buf).await {
        if fault == Some(Fault::Hang) {
            // Read, never answered: the connection stays open until chops gives up.
            std::future::pending::<()>().await;
        }
        if !st.rtt.is_zero() {
            tokio::time::sleep(st.rtt).await;
        }
        let delay = {
            let body = String::from_utf8_lossy(&req.body);
            let slow = st.slow.lock().unwrap();
            slow.iter()
                .filter(|(text, _)| body.contains(text.as_str()))
                .map(|(_, d)| *d)
                .max()
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let (status, body) = answer(&st, &req, fault.as_ref()).await;
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n",
            if status == 200 { "OK" } else { "Error" },
            body.len()
        );
        if status != 200 {
            let code = error_code(&body);
            out.push_str(&format!("X-ClickHouse-Exception-Code: {code}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&body);
        if sock.write_all(&bytes).await.is_err() || req.close {
            return;
        }
    }
}

fn error_code(body: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(body);
    text.split("Code: ")
        .nth(1)
        .and_then(|r| r.split('.').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(1000)
}

/// `default_format` of a request target's query string.
fn format_of(target: &str) -> &str {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .find_map(|p| p.strip_prefix("default_format="))
        .unwrap_or("TabSeparated")
}

async fn answer(st: &State, req: &Request, fault: Option<&Fault>) -> (u16, Vec<u8>) {
    let path = req.target.split('?').next().unwrap_or("");
    if req.method == "GET" && path == "/ping" {
        return (200, b"Ok.\n".to_vec());
    }
    if req.method == "GET" && path == "/canned/stats" {
        let unknown = st.unknown.lock().unwrap().clone();
        let text = json!({ "served": st.served.load(Ordering::Relaxed), "unknown": unknown });
        return (200, text.to_string().into_bytes());
    }
    st.served.fetch_add(1, Ordering::Relaxed);
    if let Some(Fault::Error(text)) = fault {
        return (500, text.clone().into_bytes());
    }
    let sql = String::from_utf8_lossy(&req.body);
    let failing = st.failing.lock().unwrap().clone();
    if let Some((_, error)) = failing.iter().find(|(text, _)| sql.contains(text.as_str())) {
        return (500, error.clone().into_bytes());
    }
    let key = key(format_of(&req.target), &sql);
    match &st.source {
        Source::Fixture(f) => match f.queries.get(&key) {
            Some(a) => (a.status, a.body.clone()),
            None => {
                st.unknown.lock().unwrap().push(key.clone());
                let text = format!(
                    "Code: 1000. DB::Exception: the canned stand-in has no recorded answer for \
                     this query; record the fixture again: {} (CANNED_NO_ANSWER)\n",
                    key.replace('\n', " ")
                );
                (500, text.into_bytes())
            }
        },
        Source::Record { replica, got, .. } => {
            let a = relay(*replica, req).await;
            got.lock().unwrap().queries.insert(key, a.clone());
            (a.status, a.body)
        }
    }
}

/// What the engine is asked in place of Keeper's root: it has no `system.zookeeper` (it cannot
/// replicate), so the recorded answer is a fresh ZooKeeper's root (its one node, `zookeeper`),
/// encoded by the engine itself, alone or inside a batch. A real replica with Keeper answers so.
const ZK_ROOT: &str = "FROM system.zookeeper WHERE path = '/'";
const ZK_ROOT_STAND_IN: &str = "FROM (SELECT 'zookeeper' AS name)";

/// Send `req` to the real replica (one connection, closed after the answer).
async fn relay(to: SocketAddr, req: &Request) -> Answer {
    let sql = String::from_utf8_lossy(&req.body);
    let body = match sql.contains(ZK_ROOT) {
        true => sql.replace(ZK_ROOT, ZK_ROOT_STAND_IN).into_bytes(),
        false => req.body.clone(),
    };
    let mut s = TcpStream::connect(to)
        .await
        .expect("connect to the recorded replica");
    let head = format!(
        "{} {} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        req.method,
        req.target,
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer")
        + 4;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        body: raw[end..].to_vec(),
    }
}

/// One four-letter word: read it, answer, close (as ZooKeeper does).
async fn serve_word(mut sock: TcpStream, st: Arc<State>) {
    let mut word = [0u8; 4];
    if sock.read_exact(&mut word).await.is_err() {
        return;
    }
    // Another test's client may reach a port freed and reused by this one (an HTTP `GET `):
    // only ZooKeeper's words are answered, so a stray is never recorded.
    if !word.iter().all(u8::is_ascii_lowercase) {
        return;
    }
    let word = String::from_utf8_lossy(&word).into_owned();
    if !st.rtt.is_zero() {
        tokio::time::sleep(st.rtt).await;
    }
    let text = match &st.source {
        Source::Fixture(f) => f.words.get(&word).cloned().unwrap_or_default(),
        Source::Record { keeper, got, .. } => {
            let mut s = TcpStream::connect(*keeper)
                .await
                .expect("connect to ZooKeeper");
            s.write_all(word.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            let _ = s.read_to_end(&mut raw).await;
            let text = String::from_utf8_lossy(&raw).into_owned();
            got.lock().unwrap().words.insert(word, text.clone());
            text
        }
    };
    let _ = sock.write_all(text.as_bytes()).await;
    let _ = sock.shutdown().await;
}
