//! `chops serve` under floods: one cluster's alert storm is one message and delays neither another
//! cluster's incident nor the watcher's (a bound in posts, on the fake Discord); webhook bodies
//! past the bytes in flight get 503 + `Retry-After`; `--no-discord` prints every incident and
//! resolution as one stdout line whatever `CHOPS_LOG` says; text logs stay one line per record
//! with a hostile annotation, without colour codes when stderr is not a terminal.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chops::config::{Loaded, Secret};
use chops::domain::incident::{Detail, Op};
use chops::store::{AlertRecord, FailureRecord, Store};
use testkit::discord::*;
use testkit::flood::{alerts_body, post_head, resolved_body};
use testkit::serve::ServeChild;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);
const TOKEN_ENV: &str = "CHOPS_FLOOD_TEST_TOKEN";
const TOKEN: &str = "a-flood-token-of-32-bytes-length";

/// Clusters `a` and `b` (replicas that refuse: their cards come fast), both posting incidents to
/// the fake's channel; no watcher, no scheduler; the webhook; `extra` appended.
fn config(store: &std::path::Path, extra: &str) -> String {
    let mut text = String::new();
    for name in ["a", "b"] {
        text.push_str(&format!(
            "[clusters.{name}]\nchannels = [{CHANNEL_ID}]\nincidents = {{ channel = {CHANNEL_ID} }}\n\
             deadline_ms = 1000\nkeeper = [\"127.0.0.1:1\"]\n\
             replicas = [{{ name = \"r1\", url = \"http://127.0.0.1:1\" }}]\n\n"
        ));
    }
    format!(
        "{text}[watch]\nenabled = false\n\n[scheduler]\nenabled = false\n\n\
         [webhook]\ntoken_env = \"{TOKEN_ENV}\"\n\n[store]\npath = \"{}\"\n{extra}",
        store.display()
    )
}

fn alert(cluster: &str, n: usize, resolved: bool) -> AlertRecord {
    AlertRecord {
        cluster: cluster.into(),
        fingerprint: format!("{cluster}{n:08}"),
        starts_at: "2026-11-26T01:31:45Z".into(),
        resolved,
        resolution: "alert resolved at 2026-11-26T02:00:00Z".into(),
        channel: Some(CHANNEL_ID),
        detail: Detail::Alert {
            alertname: format!("Storm{n}"),
            severity: "warning".into(),
            summary: String::new(),
            description: String::new(),
            generator_url: String::new(),
            starts_at: "2026-11-26T01:31:45Z".into(),
            links: Vec::new(),
            truncated: 0,
        },
    }
}

fn channel_posts(fake: &FakeDiscord) -> Vec<String> {
    fake.posts_to(CHANNEL_ID)
        .into_iter()
        .map(|r| r.body["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A storm of 2,000 alerts of cluster `a`, then one alert of `b` and a failed backup the watcher
/// saw on `b`, all recorded before the poster starts (as after a restart): the first round posts
/// the failure, then one message per cluster — three posts in all, where the storm used to be 40
/// messages ahead of `b`. The storm's message counts what it does not list, and every alert of it
/// is delivered with that message; resolutions of counted alerts show in its title.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_one_message_and_delays_no_other_incident() {
    let dir = scratch("flood-storm");
    let store_path = dir.join("storm.db");
    {
        let s = Store::open(&store_path).unwrap();
        let storm: Vec<AlertRecord> = (0..2_000).map(|n| alert("a", n, false)).collect();
        s.record_alerts(storm, 1).await.unwrap();
        s.record_alerts(vec![alert("b", 0, false)], 2)
            .await
            .unwrap();
        let failure = FailureRecord {
            row_key: "b-r1-backup-1".into(),
            cluster: "b".into(),
            detail: Detail::Operation {
                op: Op::Backup,
                status: "BACKUP_FAILED".into(),
                name: "Disk('backups', 'nightly')".into(),
                replicas: vec!["r1".into()],
                error: "boom".into(),
                start: 1,
                end: 2,
            },
            window_secs: 600,
            news: true,
            channel: Some(CHANNEL_ID),
        };
        s.record_failure(failure, 3).await.unwrap();
    }
    let fake = FakeDiscord::start().await;
    let text = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:0\"\n",
        config(&store_path, "")
    );
    let serve = Serve::start(&text, Some(&fake), (TOKEN_ENV, TOKEN)).await;
    fake.wait_for("three posts", WAIT, |_| channel_posts(&fake).len() >= 3)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let posts = channel_posts(&fake);
    assert_eq!(posts.len(), 3, "one round: {posts:#?}");
    assert!(
        posts[0].starts_with("🛑 **BACKUP failed on cluster b:**"),
        "the watcher's incident first: {}",
        posts[0]
    );
    let storm = posts.iter().find(|p| p.contains("cluster a")).unwrap();
    assert!(
        storm.starts_with("🔥 **2,000 alerts on cluster a**\n"),
        "{storm}"
    );
    assert!(storm.ends_with("\n… and 1,985 more alerts"), "{storm}");
    assert!(posts
        .iter()
        .any(|p| p.starts_with("🔥 **Alert Storm0 on cluster b**")));

    // Every alert of the storm is delivered with that one message.
    let s = Store::open(&store_path).unwrap();
    let all = s.incidents(3_000).await.unwrap();
    let of_a: Vec<_> = all.iter().filter(|i| i.cluster == "a").collect();
    assert_eq!(of_a.len(), 2_000);
    let message = of_a[0].message_id;
    assert!(message.is_some());
    assert!(of_a.iter().all(|i| i.posted && i.message_id == message));

    // Ten counted alerts resolve: one edit of the storm's message counts them.
    let resolved: Vec<AlertRecord> = (1_000..1_010).map(|n| alert("a", n, true)).collect();
    s.record_alerts(resolved, 10).await.unwrap();
    let edit = fake
        .wait_for("the storm's edit", WAIT, |r| {
            r.method == "PATCH"
                && r.body["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("(10 resolved)"))
        })
        .await;
    let content = edit.body["content"].as_str().unwrap();
    assert!(
        content.starts_with("🔥 **2,000 alerts on cluster a** (10 resolved)"),
        "{content}"
    );
    serve.stop().await;
    assert_eq!(channel_posts(&fake).len(), 3, "edits, no new posts");
    fake.assert_bodies_valid();
}

/// The HTTP server alone (no Discord), with `[http] max_body_bytes_in_flight = 1024` and `http`.
async fn http_only(
    dir: &std::path::Path,
    http: &str,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    std::env::set_var(TOKEN_ENV, TOKEN);
    let text = config(
        &dir.join("bytes.db"),
        &format!("[http]\nmax_body_bytes_in_flight = 1024\n{http}"),
    )
    .replace("[webhook]\n", "[webhook]\nmax_body_bytes = 1024\n");
    let loaded = Loaded::parse("bytes.toml", &text).expect("config");
    let store = Store::open(&loaded.store_path()).unwrap();
    let speaker = Arc::new(chops::discord::speak::Speaker::nowhere());
    let mut app = chops::app::App::new(Arc::new(loaded), store, speaker);
    app.webhook_token = Some(Secret::new(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(chops::http::serve(listener, app, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Sends `head` and `body` on a new connection and reads the whole answer.
fn answer(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A payload of another version: refused whole (422) once read, under a reason no other test of
/// this process counts (the metrics are the process's).
const OTHER_VERSION: &[u8] = br#"{"version":"9","alerts":[]}"#;

/// A body held half-sent takes its declared length (or its chunks so far) from the bytes in
/// flight: another body that does not fit is answered 503 with `Retry-After` at once, before it
/// is read; once the first is done, the next one is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_bytes_in_flight_get_503_and_retry_after() {
    let dir = scratch("flood-bytes");
    let (addr, stop) = http_only(&dir, "").await;
    let auth = format!("Bearer {TOKEN}");
    tokio::task::spawn_blocking(move || {
        for declared in [Some(1000), None] {
            let mut held = TcpStream::connect(addr).unwrap();
            held.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            held.write_all(post_head("/alertmanager", &auth, declared).as_bytes())
                .unwrap();
            // 600 bytes of whitespace first (before the JSON: still one payload).
            match declared {
                Some(_) => held.write_all(&[b' '; 600]).unwrap(),
                None => held
                    .write_all(format!("258\r\n{}\r\n", " ".repeat(600)).as_bytes())
                    .unwrap(),
            }
            std::thread::sleep(Duration::from_millis(300));
            let second = answer(
                addr,
                &post_head("/alertmanager", &auth, Some(600)),
                &[b' '; 600],
            );
            assert!(second.starts_with("HTTP/1.1 503"), "{second}");
            let lower = second.to_ascii_lowercase();
            assert!(lower.contains("\r\nretry-after: 5\r\n"), "{second}");
            assert!(
                lower.contains("too many webhook bodies in flight"),
                "{second}"
            );
            // The held body ends; its bytes are given back with its answer.
            let rest = match declared {
                Some(n) => [OTHER_VERSION, &vec![b' '; n - 600 - OTHER_VERSION.len()]].concat(),
                None => [
                    format!("{:x}\r\n", OTHER_VERSION.len()).as_bytes(),
                    OTHER_VERSION,
                    b"\r\n0\r\n\r\n",
                ]
                .concat(),
            };
            held.write_all(&rest).unwrap();
            let mut first = String::new();
            let _ = held.read_to_string(&mut first);
            assert!(first.starts_with("HTTP/1.1 422"), "{first}");
            let head = post_head("/alertmanager", &auth, Some(OTHER_VERSION.len()));
            let third = answer(addr, &head, OTHER_VERSION);
            assert!(
                third.starts_with("HTTP/1.1 422"),
                "taken once free: {third}"
            );
        }
    })
    .await
    .unwrap();
    let _ = stop.send(());
}

/// Connections evicted for new ones while holding half a request head are closed at once, not
/// after the header timeout: held sockets beyond `max_connections` cost no descriptor (under
/// `ulimit -n 1024`, 1,100 of them used to exhaust chops' descriptors and stall `/livez`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_evicted_mid_head_are_closed_at_once() {
    let dir = scratch("flood-evict");
    let (addr, stop) = http_only(&dir, "max_connections = 8\nheader_timeout_secs = 30\n").await;
    tokio::task::spawn_blocking(move || {
        let mut held = testkit::flood::hold(addr, 40);
        assert_eq!(held.len(), 40);
        std::thread::sleep(Duration::from_millis(500));
        let closed = held.iter_mut().map(closed).filter(|c| *c).count();
        assert!(closed >= 40 - 8, "only {closed} of 40 held sockets closed");
    })
    .await
    .unwrap();
    let _ = stop.send(());
}

/// True when the server closed `s` (EOF or reset) within 200 ms.
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    match s.read(&mut [0u8; 64]) {
        // EOF; or an answer (a 408), after which the server closes.
        Ok(0 | 1..) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// An alert whose summary reads like a log record of its own.
const FORGED: &str = "2026-12-03T12:00:00.000000Z ERROR chops::http: forged record";

/// The real `chops serve --no-discord` with `CHOPS_LOG=log`: a hostile alert fires, then
/// resolves. Returns its stdout lines and its stderr.
fn no_discord_run(tag: &str, log: &str) -> (Vec<String>, String) {
    let dir = scratch(tag);
    let cfg = config(&dir.join("s.db"), "[http]\nlisten = \"127.0.0.1:0\"\n");
    let path = write_config(&dir, "serve.toml", &cfg);
    let mut serve = ServeChild::spawn(
        env!("CARGO_BIN_EXE_chops"),
        &path,
        &["--no-discord"],
        &[(TOKEN_ENV, TOKEN), ("CHOPS_LOG", log)],
        &dir.join("serve.err"),
    );
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = serve.stdout();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut until = |pred: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + WAIT;
        while !lines.iter().any(|l: &String| pred(l)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => lines.push(l),
                Err(_) => panic!("stdout so far: {lines:#?}"),
            }
        }
        lines.clone()
    };
    let first = until(&|l| l.starts_with("chops: listening on http://"));
    let addr: SocketAddr = first[0]["chops: listening on http://".len()..]
        .parse()
        .unwrap();
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    let post = |body: &[u8]| testkit::http::request(addr, "POST", "/alertmanager", &headers, body);
    assert_eq!(post(&alerts_body("a", 1, "h", FORGED)).0, 200);
    until(&|l| l.starts_with("chops: incident ") && !l.contains(" update: "));
    assert_eq!(post(&resolved_body("a", 1, "h", FORGED)).0, 200);
    let lines = until(&|l| l.contains(" update: "));
    let (status, _) = serve.terminate(WAIT);
    assert!(status.success(), "{status:?}");
    (
        lines,
        std::fs::read_to_string(dir.join("serve.err")).unwrap(),
    )
}

/// With `CHOPS_LOG=error`, the incident and its resolution are each one stdout line, plain and
/// escaped: the alert's text cannot start a line of its own.
#[test]
fn no_discord_prints_each_incident_and_resolution_on_one_line() {
    let (lines, _) = no_discord_run("flood-stdout", "error");
    let incidents: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("chops: incident "))
        .collect();
    assert_eq!(incidents.len(), 2, "{lines:#?}");
    assert!(
        incidents[0]
            .contains(": 🔥 Alert Readonly on cluster a\\n2026-12-03T12:00:00.000000Z ERROR"),
        "{}",
        incidents[0]
    );
    assert!(
        incidents[1].contains(" update: ✅ Resolved: alert resolved at 2026-11-26T02:00:00Z"),
        "{}",
        incidents[1]
    );
    assert!(lines.iter().all(|l| !l.starts_with("2026-")), "{lines:#?}");
}

/// With `CHOPS_LOG=info` and stderr a file: every log line is a record of its own (starts with
/// its timestamp), the forged one is inside another record, and there is no colour code.
#[test]
fn text_logs_are_one_line_per_record_and_plain_off_a_terminal() {
    let (_, logs) = no_discord_run("flood-logs", "info");
    assert!(!logs.contains('\x1b'), "colour codes in a file: {logs:?}");
    let forged = logs.lines().filter(|l| l.contains("forged record")).count();
    assert!(forged >= 1, "the hostile alert was logged: {logs}");
    for l in logs.lines() {
        assert!(
            !l.starts_with(FORGED) && l.len() > 20 && l.as_bytes()[4] == b'-' && l.contains('T'),
            "not a record of its own: {l:?}\n{logs}"
        );
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
                .iter()
                .any(|lv| l.contains(&format!(" {lv} "))),
            "{l:?}"
        );
    }
}
