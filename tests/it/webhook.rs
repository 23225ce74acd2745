//! The webhook's input side against the real `chops serve` process (no cluster needed): the
//! bearer scheme in any case, peers that keep failing the token slowed down, a store deleted
//! under chops answered 503, an empty alerts list refused with its reason, groups chops cannot
//! place acknowledged 200 with theirs, every alert counted as received, Grafana's contact-point
//! body accepted with its links as buttons (malformed links dropped), a WARN line per refusal,
//! and `/metrics` through `promtool check metrics`.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::discord::*;
use testkit::serve::ChopsProcess;

pub const TOKEN_ENV: &str = "CHOPS_IT_HOOK_TOKEN";
pub const TOKEN: &str = "a-webhook-token-for-the-tests";
const WAIT: Duration = Duration::from_secs(30);

/// Two clusters on unreachable replicas (cards fail fast), both posting to the test channel.
pub fn config(dir: &Path, extra: &str) -> String {
    let text = format!(
        r#"
[clusters.prod]
keeper = ["127.0.0.1:1"]
replicas = [{{ name = "r1", url = "http://127.0.0.1:1" }}]
incidents = {{ channel = {CHANNEL_ID} }}
deadline_ms = 500

[clusters.other]
keeper = ["127.0.0.1:1"]
replicas = [{{ name = "r1", url = "http://127.0.0.1:1" }}]
incidents = {{ channel = {CHANNEL_ID} }}
deadline_ms = 500

[http]
listen = "127.0.0.1:0"

[webhook]
token_env = "{TOKEN_ENV}"

[watch]
enabled = false

[scheduler]
enabled = false

[store]
path = "{}"
{extra}"#,
        dir.join("chops.db").display()
    );
    testkit::write_config(dir, "hooks.toml", &text)
}

/// `chops serve` on `config`: `--no-discord`, or connected to `fake`.
pub fn serve(dir: &Path, fake: Option<&FakeDiscord>) -> ChopsProcess {
    let extra = match fake {
        Some(f) => format!(
            "[discord]\nguild_ids = [{GUILD_ID}]\nproxy = \"{}\"\n",
            f.rest_url
        ),
        None => String::new(),
    };
    let cfg = config(dir, &extra);
    let args: &[&str] = if fake.is_some() {
        &[]
    } else {
        &["--no-discord"]
    };
    ChopsProcess::start(
        Path::new(env!("CARGO_BIN_EXE_chops")),
        &cfg,
        args,
        &[(TOKEN_ENV, TOKEN), ("DISCORD_TOKEN", "fake-token")],
        dir,
    )
}

/// An Alertmanager notification of one alert.
fn notification(cluster: Option<&str>, fingerprint: &str, status: &str) -> Value {
    let mut labels = json!({"alertname": "ClickHouseBackupFailed", "severity": "critical"});
    if let Some(c) = cluster {
        labels["cluster"] = c.into();
    }
    json!({
        "version": "4", "status": status, "receiver": "chops", "groupKey": "{}:{}",
        "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": status, "labels": labels,
            "annotations": {"summary": "A backup failed"},
            "startsAt": "2026-11-26T01:31:45Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint
        }]
    })
}

fn post_as(s: &ChopsProcess, auth: &str, body: &Value) -> (u16, String) {
    s.http(
        "POST",
        "/alertmanager",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", auth),
        ],
        &serde_json::to_vec(body).unwrap(),
    )
}

fn post(s: &ChopsProcess, body: &Value) -> (u16, String) {
    post_as(s, &format!("Bearer {TOKEN}"), body)
}

#[test]
fn a_store_deleted_while_running_answers_503_never_200() {
    let dir = testkit::scratch("hook-store");
    let s = serve(&dir, None);
    let (status, body) = post(&s, &notification(Some("prod"), "f1", "firing"));
    assert_eq!(status, 200, "{body}");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("chops.db{suffix}")));
    }
    let (status, body) = post(&s, &notification(Some("prod"), "f2", "firing"));
    assert_eq!(status, 503, "an alert that would be lost: {body}");
    assert!(body.contains("retry"), "{body}");
    let (status, ready) = s.http("GET", "/readyz", &[], b"");
    assert_eq!(status, 503);
    assert!(
        ready.contains("deleted, replaced or made read-only"),
        "{ready}"
    );
    assert!(s.log().contains("cannot record alerts"), "{}", s.log());
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_failing_peers_are_slowed_down() {
    let dir = testkit::scratch("hook-auth");
    let s = serve(&dir, None);
    let body = notification(Some("prod"), "f1", "firing");
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (status, text) = post_as(&s, &format!("{scheme} {TOKEN}"), &body);
        assert_eq!(status, 200, "{scheme}: {text}");
    }
    // A few mistakes are free; then the peer waits, whatever token it sends.
    for n in 0..=chops::http::throttle::FREE {
        let (status, _) = post_as(&s, &format!("Bearer wrong-token-{n}"), &body);
        assert_eq!(status, 401, "failure {n}");
    }
    let (status, text) = post(&s, &body);
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("retry in 1 s"), "{text}");
    std::thread::sleep(Duration::from_millis(1100));
    let (status, text) = post(&s, &body);
    assert_eq!(status, 200, "the wait is over: {text}");
    let log = s.log();
    assert!(
        log.contains("WARN") && log.contains("webhook refused: wrong or missing bearer token"),
        "{log}"
    );
    assert!(log.contains("slowed down"), "{log}");
    assert!(
        !log.contains(TOKEN) && !log.contains("wrong-token"),
        "{log}"
    );
    assert_eq!(
        s.metric("chops_webhook_rejected_total{reason=\"throttled\"}"),
        1.0
    );
}

#[test]
fn refusals_and_unplaced_groups_say_why_and_every_alert_is_counted() {
    let dir = testkit::scratch("hook-reasons");
    let s = serve(&dir, None);
    let mut empty = notification(Some("prod"), "f0", "firing");
    empty["alerts"] = json!([]);
    let (status, body) = post(&s, &empty);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("alerts list is empty"), "{body}");
    // The Watchdog (no cluster label) and a cluster chops does not know: acknowledged, so the
    // sender neither retries nor counts a failed notification, with the reason.
    let (status, body) = post(&s, &notification(None, "f1", "firing"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("skipped 1: alert 0 has no label 'cluster'"),
        "{body}"
    );
    let (status, body) = post(&s, &notification(Some("staging"), "f2", "firing"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("unknown cluster 'staging'"), "{body}");
    let mut cut = notification(Some("prod"), "f3", "firing");
    cut["truncatedAlerts"] = 12.into();
    let (status, body) = post(&s, &cut);
    assert_eq!(status, 200, "{body}");
    let (status, _) = s.http(
        "POST",
        "/alertmanager",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        b"{\"alerts\": [",
    );
    assert_eq!(status, 400);

    assert_eq!(
        s.metric("chops_alerts_received_total"),
        3.0,
        "placed or not"
    );
    assert_eq!(
        s.metric("chops_alerts_skipped_total{reason=\"unknown_cluster\"}"),
        1.0
    );
    assert_eq!(
        s.metric("chops_alerts_skipped_total{reason=\"no_cluster_label\"}"),
        1.0
    );
    assert_eq!(
        s.metric("chops_webhook_rejected_total{reason=\"empty\"}"),
        1.0
    );
    let log = s.log();
    for line in [
        "alerts list is empty",
        "no alert of the notification could be placed",
        "webhook refused: not a payload",
        "left alerts out of this notification",
    ] {
        assert!(log.contains(line), "{line}: {log}");
    }
    promtool_check_metrics(&s.http("GET", "/metrics", &[], b"").1);
}

/// `promtool check metrics` (Prometheus' linter) on chops' `/metrics`: no problem reported.
fn promtool_check_metrics(text: &str) {
    let out = testkit::run_with_stdin(
        "promtool",
        &["check", "metrics"],
        text,
        "promtool (Debian package prometheus)",
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{said}\n{text}"
    );
}

/// The body of Grafana's webhook contact point (its documentation's example), a `cluster` label
/// added; its silence link carries credentials, its panel and dashboard links are malformed.
fn grafana_body() -> Value {
    json!({
        "receiver": "chops", "status": "firing", "orgId": 1,
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "High memory usage", "team": "blue", "cluster": "prod"},
            "annotations": {"description": "The system has high memory usage",
                            "runbook_url": "https://myrunbook.com/runbook/1234",
                            "summary": "This alert was triggered for zone us-1"},
            "startsAt": "2021-10-12T09:51:03.157076+02:00", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://admin:s3cret@play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2",
            "dashboardURL": "http://grafana:99999/d/abc", "panelURL": "http://[::1",
            "values": {"B": 44.23943737541908, "C": 1}
        }],
        "groupLabels": {}, "commonLabels": {"team": "blue"}, "commonAnnotations": {},
        "externalURL": "https://play.grafana.org/", "version": "1", "groupKey": "{}:{}",
        "truncatedAlerts": 0, "title": "[FIRING:1]  (blue)", "state": "alerting",
        "message": "**Firing**\n\nLabels:\n - alertname = T2\n"
    })
}

fn link_buttons(body: &Value) -> Vec<(String, String)> {
    body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["style"] == 5)
        .map(|b| {
            (
                b["label"].as_str().unwrap_or("").to_string(),
                b["url"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Grafana's contact point is accepted (not 422): its source and silence links become buttons,
/// credentials stripped; malformed links (`http://[::1`, a huge port) become none — on
/// Grafana's and on Alertmanager's bodies alike — so Discord takes every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_bodies_are_accepted_and_only_valid_links_become_buttons() {
    let dir = testkit::scratch("hook-grafana");
    let fake = FakeDiscord::start().await;
    let s = serve(&dir, Some(&fake));
    fake.registered(WAIT).await;
    let posts = |fake: &FakeDiscord| fake.posts_to(CHANNEL_ID);
    let (status, body) = post(&s, &grafana_body());
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("recorded 1 alert(s)"), "{body}");
    fake.wait_for("Grafana's alert", WAIT, |_| !posts(&fake).is_empty())
        .await;
    let first = &posts(&fake)[0];
    assert!(
        first.body["content"]
            .as_str()
            .unwrap()
            .contains("High memory usage"),
        "{}",
        first.body
    );
    assert_eq!(
        link_buttons(&first.body),
        [
            (
                "Open the alert's source".to_string(),
                "https://play.grafana.org/alerting/1afz29v7z/edit".to_string()
            ),
            (
                "Silence".to_string(),
                "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2".to_string()
            )
        ]
    );
    let mut bad = notification(Some("other"), "f9", "firing");
    bad["alerts"][0]["generatorURL"] = "http://[::1".into();
    let (status, body) = post(&s, &bad);
    assert_eq!(status, 200, "{body}");
    fake.wait_for("the second alert", WAIT, |_| posts(&fake).len() >= 2)
        .await;
    assert_eq!(link_buttons(&posts(&fake)[1].body), []);
    fake.assert_bodies_valid();
    drop(s);
}
