//! A real Alertmanager (Debian's `prometheus-alertmanager`) routing to the real `chops serve`
//! (connected to the fake Discord), with the bearer token from a `credentials_file`: a group of
//! firing alerts is one message, a resolved one edits it, a group chops cannot place (an unknown
//! cluster, the Watchdog) is acknowledged — Alertmanager counts no failed notification, so it
//! neither retries nor pages about chops.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::alertmanager::{self, Alertmanager};
use testkit::discord::*;

use crate::webhook::{serve, TOKEN};

const WAIT: Duration = Duration::from_secs(40);

fn alert(labels: Value, ends_at: Option<&str>) -> Value {
    let mut a = json!({
        "labels": labels,
        "annotations": {"summary": "read-only replica"},
        "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=up"
    });
    if let Some(t) = ends_at {
        a["endsAt"] = t.into();
    }
    a
}

fn readonly(table: &str, cluster: &str) -> Value {
    json!({"alertname": "ClickHouseReplicaReadonly", "cluster": cluster, "table": table,
           "severity": "critical"})
}

/// The sum of a sample over every label set that contains `labels` (Alertmanager's own metrics).
fn sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn webhook_notifications(am: &Alertmanager) -> (f64, f64) {
    let (_, text) = testkit::http::request(
        am.url.trim_start_matches("http://").parse().unwrap(),
        "GET",
        "/metrics",
        &[],
        b"",
    );
    let w = "integration=\"webhook\"";
    (
        sum(&text, "alertmanager_notifications_total", w),
        sum(&text, "alertmanager_notifications_failed_total", w),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_routes_to_chops_grouped_resolved_and_unplaced_acknowledged() {
    let dir = testkit::scratch("alertmanager");
    let fake = FakeDiscord::start().await;
    let chops = serve(&dir, Some(&fake));
    fake.registered(WAIT).await;
    let token_file = dir.join("chops.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let url = format!("http://{}/alertmanager", chops.addr);
    let cfg = alertmanager::config(&url, &token_file, &["alertname", "cluster"]);
    let am = Alertmanager::start(&dir, &cfg);

    let path = format!("/api/v10/channels/{CHANNEL_ID}/messages");
    let posts = |fake: &FakeDiscord| fake.posts_to(CHANNEL_ID);
    am.push(&json!(["orders", "events", "users"]
        .iter()
        .map(|t| alert(readonly(t, "prod"), None))
        .collect::<Vec<_>>()));
    fake.wait_for("the group's message", WAIT, |_| !posts(&fake).is_empty())
        .await;
    let text = posts(&fake)[0].body["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.starts_with("🔥 **3 alerts on cluster prod**"),
        "one message for the group: {text}"
    );

    // One of them resolved: Alertmanager re-sends the group, chops edits the same message.
    let past = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1)).to_string();
    am.push(&json!([alert(readonly("events", "prod"), Some(&past))]));
    let edit = fake
        .wait_for("the resolved edit", WAIT, |r| {
            r.method == "PATCH" && r.path.starts_with(&format!("{path}/"))
        })
        .await;
    let edited = edit.body["content"].as_str().unwrap();
    assert!(
        edited.starts_with("🔥 **3 alerts on cluster prod** (1 resolved)"),
        "{edited}"
    );

    // Groups chops cannot place: acknowledged with the reason, never a failed notification.
    am.push(&json!([
        alert(readonly("orders", "staging"), None),
        alert(json!({"alertname": "Watchdog", "severity": "none"}), None)
    ]));
    let until = Instant::now() + WAIT;
    while chops.metric("chops_alerts_skipped_total{reason=\"unknown_cluster\"}") < 1.0
        || chops.metric("chops_alerts_skipped_total{reason=\"no_cluster_label\"}") < 1.0
    {
        assert!(Instant::now() < until, "the unplaced groups never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // a few group intervals
    let (sent, failed) = webhook_notifications(&am);
    assert!(
        sent >= 4.0,
        "firing, resolved and two unplaced groups: {sent}"
    );
    assert_eq!(failed, 0.0, "Alertmanager saw no failed notification");
    assert_eq!(posts(&fake).len(), 1, "nothing posted for the unplaced");
    assert_eq!(
        chops.metric("chops_webhook_rejected_total{reason=\"unauthorized\"}"),
        0.0,
        "the token from credentials_file"
    );
    assert!(!chops.log().contains(TOKEN), "the token is never logged");
    fake.assert_bodies_valid();
    drop(am);
    drop(chops);
}
