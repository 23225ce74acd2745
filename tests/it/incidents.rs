//! `chops serve` speaking first, on real local clusters and the fake Discord: the backup-failure
//! watcher (one card per failure and per ON CLUSTER operation, none again after a restart,
//! resolved by a later success), an unreachable replica, the Alertmanager webhook (dedup,
//! resolve, 401/413/400, unplaced alerts acknowledged), the pre-flight, /metrics parsed by Prometheus' own parsers,
//! /readyz and the shutdown of the process.

use std::time::Duration;

use crate::common::*;
use chops::config::Loaded;
use serde_json::Value;
use testkit::discord::*;
use testkit::http::request as http;
use testkit::serve::ServeChild;

const WAIT: Duration = Duration::from_secs(30);
const TOKEN_ENV: &str = "CHOPS_TEST_WEBHOOK_TOKEN";
const TOKEN: &str = "t0ken-for-the-tests";
/// The role the on-call member holds (the cluster's backup role in these tests).
const ROLE: u64 = 900_000_000_000_000_101;

/// The local cluster's config with an incident channel, a fast watcher, the webhook, a store.
fn incident_config(lc_config: &std::path::Path, store: &std::path::Path, extra: &str) -> String {
    let text = std::fs::read_to_string(lc_config).unwrap().replacen(
        "[clusters.local]\n",
        &format!(
            "[clusters.local]\nchannels = [{CHANNEL_ID}]\nincidents = {{ channel = {CHANNEL_ID} }}\ndeadline_ms = 1500\n"
        ),
        1,
    );
    format!(
        "{text}\n[watch]\ninterval_secs = 1\nunreachable_after_secs = 2\n\n[webhook]\ntoken_env = \"{TOKEN_ENV}\"\n\n[store]\npath = \"{}\"\n{extra}",
        store.display()
    )
}

fn channel_posts(fake: &FakeDiscord) -> Vec<Recorded> {
    fake.posts_to(CHANNEL_ID)
}

fn channel_edits(fake: &FakeDiscord) -> Vec<Recorded> {
    let prefix = format!("/api/v10/channels/{CHANNEL_ID}/messages/");
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.starts_with(&prefix))
        .collect()
}

fn content(r: &Recorded) -> String {
    r.body["content"].as_str().unwrap_or_default().to_string()
}

/// Wait until `n` channel posts have been made (and give a little time for more to show up).
async fn posts_after(fake: &FakeDiscord, n: usize, what: &str) -> Vec<Recorded> {
    fake.wait_for(what, WAIT, |_| channel_posts(fake).len() >= n)
        .await;
    channel_posts(fake)
}

async fn rounds(n: u64) {
    // The watcher runs every second: n more rounds.
    tokio::time::sleep(Duration::from_millis(1000 * n + 300)).await;
}

/// A BACKUP made to fail on r1 (its table does not exist yet) → exactly one card, failure named
/// first; a restart of chops serve → no second card; the same backup succeeding later → the card
/// is edited to say so. Then one ON CLUSTER-style failure on 3 replicas at once → one card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_is_posted_once_and_resolved_by_its_success() {
    let lc = LocalCluster::start(3).expect("local cluster");
    let store = lc.dir.join("incidents.db");
    let cfg = incident_config(
        &lc.config_path,
        &store,
        &format!("[clusters.local.actions]\nbackup_roles = [{ROLE}]\n"),
    );
    let fake = FakeDiscord::start().await;
    let serve = Serve::start(&cfg, Some(&fake), (TOKEN_ENV, TOKEN)).await;

    must(
        &lc.urls[0],
        "BACKUP TABLE default.nightly TO Disk('backups', 'nightly-1') ASYNC",
    );
    let posts = posts_after(&fake, 1, "the failure's card").await;
    let first = content(&posts[0]);
    assert!(
        first.starts_with("🛑 **BACKUP failed on cluster local:** Disk('backups', 'nightly-1')"),
        "the failed operation is named first: {first}"
    );
    assert!(first.contains("Replica r1 · BACKUP\\_FAILED"), "{first}");
    assert!(
        first.contains("UNKNOWN\\_TABLE"),
        "the error is quoted: {first}"
    );
    let embed = &posts[0].body["embeds"][0];
    assert!(
        embed["title"]
            .as_str()
            .unwrap_or_default()
            .contains("local"),
        "the card follows: {embed}"
    );
    rounds(3).await;
    assert_eq!(channel_posts(&fake).len(), 1, "one card, not one per round");

    // Restart: the same store, a new process state.
    serve.stop().await;
    let serve = Serve::start(&cfg, Some(&fake), (TOKEN_ENV, TOKEN)).await;
    rounds(3).await;
    assert_eq!(
        channel_posts(&fake).len(),
        1,
        "a restarted chops serve must not post the failure again"
    );

    // The same backup (same name) succeeds once the table exists.
    must(
        &lc.urls[0],
        "CREATE TABLE default.nightly (x UInt8) ENGINE = MergeTree ORDER BY x",
    );
    must(
        &lc.urls[0],
        "BACKUP TABLE default.nightly TO Disk('backups', 'nightly-1') ASYNC",
    );
    let edit = fake
        .wait_for("the resolved edit", WAIT, |r| {
            r.method == "PATCH" && r.path.contains("/channels/") && r.body["content"].is_string()
        })
        .await;
    let edited = content(&edit);
    assert!(
        edited.starts_with("✅ **Resolved:** resolved by Disk('backups', 'nightly-1') at "),
        "{edited}"
    );
    assert!(
        edited.contains("BACKUP failed on cluster local"),
        "{edited}"
    );
    assert!(
        edit.body.get("embeds").is_none(),
        "the edit rewrites the header only; the card stays: {}",
        edit.body
    );
    let edits = channel_edits(&fake);
    assert_eq!(edits.len(), 1, "one edit");
    assert!(
        edits[0]
            .path
            .rsplit('/')
            .next()
            .unwrap()
            .parse::<u64>()
            .is_ok(),
        "the edit names the posted message: {}",
        edits[0].path
    );

    // ON CLUSTER-style: the same BACKUP on every replica at once, failing everywhere.
    let threads: Vec<_> = lc
        .urls
        .iter()
        .cloned()
        .map(|u| {
            std::thread::spawn(move || {
                must(
                    &u,
                    "BACKUP TABLE default.missing TO Disk('backups', 'oncluster-7') ASYNC",
                )
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let posts = posts_after(&fake, 2, "the ON CLUSTER failure's card").await;
    rounds(3).await;
    let posts_now = channel_posts(&fake);
    assert_eq!(
        posts_now.len(),
        2,
        "one card for the operation on 3 replicas"
    );
    assert!(content(&posts[1]).contains("'oncluster-7'"));
    let rows = chops::store::Store::open(&store)
        .unwrap()
        .incidents(10)
        .await
        .unwrap();
    let oc = rows
        .iter()
        .find(|i| matches!(&i.detail, chops::domain::incident::Detail::Operation { name, .. } if name.contains("oncluster-7")))
        .expect("the ON CLUSTER incident");
    let chops::domain::incident::Detail::Operation { replicas, .. } = &oc.detail else {
        unreachable!()
    };
    let mut replicas = replicas.clone();
    replicas.sort();
    assert_eq!(
        replicas,
        ["r1", "r2", "r3"],
        "every replica joined the one incident"
    );

    // Nothing will succeed under that name: the on-call closes it by hand, with a role only.
    let custom_id = buttons(&posts[1].body)
        .into_iter()
        .find(|(label, _)| label == "Mark resolved")
        .expect("a Mark resolved button")
        .1;
    let id = fake.next_id();
    fake.dispatch(click(id, &custom_id, 4343, USER_ID, &[]));
    let refused = fake.callback(id, WAIT).await;
    assert!(
        refused.body["data"]["content"]
            .as_str()
            .unwrap_or("")
            .starts_with("Marking incidents resolved needs one of the cluster's action roles"),
        "{}",
        refused.body
    );
    let edits_before = channel_edits(&fake).len();
    let id = fake.next_id();
    fake.dispatch(click(id, &custom_id, 4343, USER_ID, &[ROLE]));
    let done = fake.callback(id, WAIT).await;
    assert_eq!(done.body["data"]["flags"], 64, "ephemeral: {}", done.body);
    fake.wait_for("the hand-resolved edit", WAIT, |_| {
        channel_edits(&fake).len() > edits_before
    })
    .await;
    let edited = content(channel_edits(&fake).last().unwrap());
    assert!(
        edited.starts_with("✅ **Resolved:** marked resolved by oncall at "),
        "{edited}"
    );
    assert!(edited.contains("'oncluster-7'"), "{edited}");

    serve.stop().await;
    fake.assert_bodies_valid();
}

/// A replica that stops answering is an incident once, and resolved once when it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_replica_is_posted_once_and_resolved_once() {
    let lc = LocalCluster::start(2).expect("local cluster");
    let store = lc.dir.join("unreachable.db");
    // Actions enabled: the incident's card carries its runnable next steps as buttons.
    let cfg = incident_config(
        &lc.config_path,
        &store,
        &format!("[clusters.local.actions]\nbackup_roles = [{ROLE}]\n"),
    );
    for q in [
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (x UInt64) ENGINE = MergeTree ORDER BY x",
    ] {
        must(&lc.urls[0], q);
    }
    let fake = FakeDiscord::start().await;
    let serve = Serve::start(&cfg, Some(&fake), (TOKEN_ENV, TOKEN)).await;
    rounds(1).await;
    assert!(
        channel_posts(&fake).is_empty(),
        "a healthy cluster: silence"
    );

    lc.freeze_replica(2);
    let posts = posts_after(&fake, 1, "the unreachable card").await;
    let text = content(&posts[0]);
    assert!(
        text.contains("**Replica r2 of cluster local is not answering (since "),
        "{text}"
    );
    let buttons = buttons(&posts[0].body);
    let offer = buttons
        .iter()
        .find(|(label, id)| label.contains("r1") && id.starts_with("chops:offer:"))
        .unwrap_or_else(|| {
            panic!("the per-replica backup of the reachable replica is a button: {buttons:?}")
        })
        .1
        .clone();
    assert!(
        buttons.iter().any(|(l, _)| l == "Mark resolved"),
        "{buttons:?}"
    );
    // Clicking it works as under /backup-check: the guarded preview, Confirm and all.
    let id = fake.next_id();
    fake.dispatch(click(id, &offer, 4242, USER_ID, &[ROLE]));
    assert_eq!(fake.callback(id, WAIT).await.body["type"], 5);
    let preview = fake.edited_original(id, WAIT).await;
    assert!(
        preview.body["embeds"][0]["description"]
            .as_str()
            .unwrap_or("")
            .contains("BACKUP DATABASE `shop`"),
        "{}",
        preview.body
    );
    rounds(3).await;
    assert_eq!(channel_posts(&fake).len(), 1, "posted once");

    lc.thaw_replica(2);
    let edit = fake
        .wait_for("the resolved edit", WAIT, |r| {
            r.method == "PATCH" && r.path.contains("/channels/")
        })
        .await;
    assert!(content(&edit).starts_with("✅ **Resolved:** answers again at "));
    rounds(3).await;
    assert_eq!(channel_edits(&fake).len(), 1, "resolved once");
    assert_eq!(channel_posts(&fake).len(), 1);
    serve.stop().await;
    fake.assert_bodies_valid();
}

/// 12 and 64 replicas, one refusing connections from the start: the incident's card reaches
/// the channel with its one `next-steps.sql` (Discord refuses more than 10 files a message and
/// the card was lost), every long statement of the steps shown in it, the bodies valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_cards_of_12_and_64_replicas_attach_one_file() {
    let _solo = testkit::solo_async().await;
    let lc = LocalCluster::start_one_engine(63, 0).expect("63 replicas");
    lc.long_named_databases(20);
    for (reachable, refused) in [(11, 1), (63, 1)] {
        let n = reachable + refused;
        let path = write_config(
            &lc.dir,
            &format!("c{n}.toml"),
            &lc.config_with(reachable, refused),
        );
        let store = lc.dir.join(format!("incidents-{n}.db"));
        let cfg = incident_config(
            std::path::Path::new(&path),
            &store,
            &format!("[clusters.local.actions]\nbackup_roles = [{ROLE}]\n"),
        );
        let fake = FakeDiscord::start().await;
        let serve = Serve::start(&cfg, Some(&fake), (TOKEN_ENV, TOKEN)).await;
        let posts = posts_after(&fake, 1, "the incident card").await;
        assert!(
            content(&posts[0]).contains("down1"),
            "{n}: {}",
            content(&posts[0])
        );
        let (pointers, steps) = attached_steps(&posts[0]);
        assert!(pointers.len() > 10, "{n}: {pointers:?}");
        assert_eq!(
            pointers, steps,
            "{n}: the file holds the steps the embed names"
        );
        assert!(
            buttons(&posts[0].body)
                .iter()
                .any(|(l, _)| l == "Back up r1"),
            "{n}: its buttons too"
        );
        serve.stop().await;
        fake.assert_bodies_valid();
        // What the invite URL grants covers every request this run sent (a card with its file
        // needs Attach Files).
        let needed = fake.permissions_needed();
        assert_ne!(needed & permission::ATTACH_FILES, 0);
        let granted = chops::discord::PERMISSIONS.bits();
        assert_eq!(
            needed & !granted,
            0,
            "needed {needed:#x}, granted {granted:#x}"
        );
    }
}

fn alert_payload(status: &str) -> Value {
    let mut v: Value = serde_json::from_str(include_str!("../fixtures/alertmanager/firing.json"))
        .expect("fixture");
    if status == "resolved" {
        v["status"] = "resolved".into();
        v["alerts"][0]["status"] = "resolved".into();
        v["alerts"][0]["endsAt"] = "2026-11-26T01:41:45.123456789Z".into();
    }
    v
}

/// Alertmanager: firing → one card; the same payload 5× more → still one; resolved → the same
/// message edited; wrong/missing token 401, 2 MiB 413, malformed 400, unknown cluster 200 with
/// the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_webhook_posts_once_and_resolves_the_same_message() {
    let c = shared();
    let dir = scratch("alerts");
    let store = dir.join("alerts.db");
    let cfg = incident_config(
        std::path::Path::new(&c.config),
        &store,
        "[webhook.clusters]\n\"local-prod\" = \"local\"\n",
    )
    .replace(
        "[watch]\ninterval_secs = 1",
        "[watch]\nenabled = false\ninterval_secs = 1",
    );
    let fake = FakeDiscord::start().await;
    let serve = Serve::start(&cfg, Some(&fake), (TOKEN_ENV, TOKEN)).await;
    let auth = format!("Bearer {TOKEN}");
    let json = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];

    let firing = serde_json::to_vec(&alert_payload("firing")).unwrap();
    let (status, body) = http(serve.addr, "POST", "/alertmanager", &json, &firing);
    assert_eq!(status, 200, "{body}");
    let posts = posts_after(&fake, 1, "the alert's card").await;
    let text = content(&posts[0]);
    assert!(
        text.starts_with("🔥 **Alert ClickHouseBackupFailed on cluster local** (critical)"),
        "{text}"
    );
    assert!(
        text.contains("A ClickHouse backup failed on cluster local"),
        "{text}"
    );
    assert!(
        text.contains("· source prometheus.example.org:9090"),
        "{text}"
    );
    let button = &posts[0].body["components"][0]["components"][0];
    assert_eq!(button["style"], 5, "a link button: {button}");
    assert!(
        button["url"]
            .as_str()
            .unwrap()
            .starts_with("http://prometheus.example.org:9090/graph?g0.expr="),
        "{button}"
    );
    assert!(posts[0].body["embeds"][0].is_object(), "the card follows");

    for _ in 0..5 {
        let (status, body) = http(serve.addr, "POST", "/alertmanager", &json, &firing);
        assert_eq!(status, 200);
        assert!(body.contains("1 already known"), "{body}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(channel_posts(&fake).len(), 1, "re-sent groups are one card");

    let resolved = serde_json::to_vec(&alert_payload("resolved")).unwrap();
    let (status, _) = http(serve.addr, "POST", "/alertmanager", &json, &resolved);
    assert_eq!(status, 200);
    let edit = fake
        .wait_for("the resolved edit", WAIT, |r| {
            r.method == "PATCH" && r.path.contains("/channels/")
        })
        .await;
    assert!(
        content(&edit).starts_with("✅ **Resolved:** alert resolved at 2026-11-26T01:41:45"),
        "{}",
        content(&edit)
    );
    assert_eq!(channel_posts(&fake).len(), 1);

    // Refusals, each short; none posts anything.
    let (status, body) = http(
        serve.addr,
        "POST",
        "/alertmanager",
        &[("Authorization", "Bearer wrong")],
        &firing,
    );
    assert_eq!((status, body.as_str()), (401, ""), "no detail");
    let (status, _) = http(serve.addr, "POST", "/alertmanager", &[], &firing);
    assert_eq!(status, 401);
    let big = vec![b' '; 2 << 20];
    let (status, _) = http(serve.addr, "POST", "/alertmanager", &json, &big);
    assert_eq!(status, 413);
    let (status, body) = http(
        serve.addr,
        "POST",
        "/alertmanager",
        &json,
        b"{\"alerts\": [",
    );
    assert_eq!(status, 400, "{body}");
    let mut unknown = alert_payload("firing");
    unknown["alerts"][0]["labels"]["cluster"] = "staging".into();
    unknown["alerts"][0]["fingerprint"] = "0000000000000001".into();
    let (status, body) = http(
        serve.addr,
        "POST",
        "/alertmanager",
        &json,
        &serde_json::to_vec(&unknown).unwrap(),
    );
    // Acknowledged (Alertmanager would count a 4xx as a failed notification), with the reason.
    assert_eq!(status, 200);
    assert_eq!(body.lines().count(), 1, "one line: {body}");
    assert!(body.contains("unknown cluster 'staging'"), "{body}");
    // One alert chops cannot place does not cost the others of its payload.
    let mut mixed = alert_payload("firing");
    let mut foreign = mixed["alerts"][0].clone();
    foreign["labels"]["cluster"] = "staging".into();
    foreign["fingerprint"] = "0000000000000003".into();
    mixed["alerts"].as_array_mut().unwrap().push(foreign);
    let (status, body) = http(
        serve.addr,
        "POST",
        "/alertmanager",
        &json,
        &serde_json::to_vec(&mixed).unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("0 alert(s), 1 already known; skipped 1: alert 1: unknown cluster 'staging'"),
        "{body}"
    );
    // A mapped label value works like the chops name.
    let mut mapped = alert_payload("firing");
    mapped["alerts"][0]["labels"]["cluster"] = "local-prod".into();
    mapped["alerts"][0]["fingerprint"] = "0000000000000002".into();
    let (status, _) = http(
        serve.addr,
        "POST",
        "/alertmanager",
        &json,
        &serde_json::to_vec(&mapped).unwrap(),
    );
    assert_eq!(status, 200);
    posts_after(&fake, 2, "the mapped alert's card").await;

    // A group of three alerts arrives as one notification: one message lists them; one of them
    // resolved later edits that message.
    let mut group = alert_payload("firing");
    let template = group["alerts"][0].clone();
    group["alerts"] = serde_json::json!([]);
    for (n, table) in ["orders", "events", "users"].iter().enumerate() {
        let mut a = template.clone();
        a["labels"]["alertname"] = "ClickHouseReplicaReadonly".into();
        a["labels"]["table"] = (*table).into();
        a["annotations"]["summary"] = format!("{table} is read-only").into();
        a["fingerprint"] = format!("00000000000001{n:02}").into();
        group["alerts"].as_array_mut().unwrap().push(a);
    }
    let before = channel_posts(&fake).len();
    let (status, _) = http(
        serve.addr,
        "POST",
        "/alertmanager",
        &json,
        &serde_json::to_vec(&group).unwrap(),
    );
    assert_eq!(status, 200);
    let posts = posts_after(&fake, before + 1, "the group's one message").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        channel_posts(&fake).len(),
        before + 1,
        "one message for the group"
    );
    let text = content(&posts[before]);
    assert!(
        text.starts_with("🔥 **3 alerts on cluster local**"),
        "{text}"
    );
    for table in ["orders", "events", "users"] {
        assert!(text.contains(&format!("{table} is read-only")), "{text}");
    }
    let edits_before = channel_edits(&fake).len();
    let mut one = group.clone();
    one["alerts"] = serde_json::json!([group["alerts"][1].clone()]);
    one["alerts"][0]["status"] = "resolved".into();
    one["alerts"][0]["endsAt"] = "2026-11-26T02:00:00Z".into();
    let (status, _) = http(
        serve.addr,
        "POST",
        "/alertmanager",
        &json,
        &serde_json::to_vec(&one).unwrap(),
    );
    assert_eq!(status, 200);
    fake.wait_for("the group's edit", WAIT, |_| {
        channel_edits(&fake).len() > edits_before
    })
    .await;
    let edited = content(&channel_edits(&fake)[edits_before]);
    assert!(
        edited.starts_with("🔥 **3 alerts on cluster local** (1 resolved)"),
        "{edited}"
    );
    assert!(edited.contains("✅ ClickHouseReplicaReadonly (critical): events is read-only — alert resolved at 2026-11-26T02:00:00Z"), "{edited}");

    // What the metrics say of all that.
    let (_, metrics) = http(serve.addr, "GET", "/metrics", &[], b"");
    let families = prometheus_families(&metrics, "prometheus");
    let sample = |name: &str, labels: &str| {
        families
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|(_, _, v)| *v)
    };
    // Every alert of every parsed payload, placed or not.
    assert_eq!(sample("chops_alerts_received_total", ""), Some(15.0));
    assert_eq!(sample("chops_alerts_deduplicated_total", ""), Some(6.0));
    assert_eq!(
        sample("chops_webhook_rejected_total", "reason=unauthorized"),
        Some(2.0)
    );
    assert_eq!(
        sample("chops_webhook_rejected_total", "reason=too_large"),
        Some(1.0)
    );
    assert_eq!(
        sample("chops_webhook_rejected_total", "reason=malformed"),
        Some(1.0)
    );
    assert_eq!(
        sample("chops_alerts_skipped_total", "reason=unknown_cluster"),
        Some(2.0)
    );
    serve.stop().await;
    fake.assert_bodies_valid();
}

/// `/metrics` through Prometheus' own parsers (prometheus_client's text and OpenMetrics parsers):
/// (family or sample name, "k=v,k=v" labels, value) of every sample.
fn prometheus_families(text: &str, format: &str) -> Vec<(String, String, f64)> {
    let python = testkit::repo_root().join(".venv/bin/python");
    let script = r##"
import sys
fmt = sys.argv[1]
text = sys.stdin.read()
if fmt == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(text):
    print("#FAMILY", fam.name, fam.type)
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(s.name, labels, s.value, sep="\t")
"##;
    let out = testkit::run_with_stdin(
        python,
        &["-c", script, format],
        text,
        "python with prometheus_client (scripts/setup.sh installs it)",
    );
    assert!(
        out.status.success(),
        "the {format} parser rejects /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            if let Some(f) = l.strip_prefix("#FAMILY ") {
                let (name, kind) = f.split_once(' ').unwrap();
                return (format!("#{name}"), kind.to_string(), 0.0);
            }
            let mut p = l.split('\t');
            let name = p.next().unwrap().to_string();
            let labels = p.next().unwrap_or("").to_string();
            let value = p.next().unwrap_or("0").parse().unwrap();
            (name, labels, value)
        })
        .collect()
}

/// `/livez`, `/readyz` (503 once the store file is read-only, 200 again after), `/metrics` with
/// every family, in both text formats, `--no-discord`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_endpoints() {
    let c = shared();
    let dir = scratch("health");
    let store = dir.join("health.db");
    let cfg = incident_config(std::path::Path::new(&c.config), &store, "").replace(
        "[watch]\ninterval_secs = 1",
        "[watch]\nenabled = false\ninterval_secs = 1",
    );
    let serve = Serve::start(&cfg, None, (TOKEN_ENV, TOKEN)).await;
    assert_eq!(http(serve.addr, "GET", "/livez", &[], b"").0, 200);
    assert_eq!(
        http(serve.addr, "GET", "/readyz", &[], b""),
        (200, "ready\n".into())
    );

    let mut perms = std::fs::metadata(&store).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&store, perms.clone()).unwrap();
    let (status, body) = http(serve.addr, "GET", "/readyz", &[], b"");
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&store, perms).unwrap();
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "store: not writable: the file was deleted, replaced or made read-only since chops opened it\n"
        )
    );
    assert_eq!(http(serve.addr, "GET", "/readyz", &[], b"").0, 200);

    // A card run through the app counts its check durations.
    let app_cfg = Loaded::parse("serve.toml", &cfg).unwrap();
    let target = app_cfg.target(Some("local"), &|_| None).unwrap();
    let app = chops::app::App::new(
        std::sync::Arc::new(app_cfg),
        chops::store::Store::open(&dir.join("app.db")).unwrap(),
        std::sync::Arc::new(chops::discord::speak::Speaker::nowhere()),
    );
    app.flights
        .card(&target, chops::domain::Scope::Full, Default::default())
        .await
        .expect("a card");

    let (status, text) = http(serve.addr, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    let fams = prometheus_families(&text, "prometheus");
    for family in [
        "#chops_build_info",
        "#chops_check_duration_seconds",
        "#chops_check_rounds",
        "#chops_probe_errors",
        "#chops_interactions",
        "#chops_actions",
        "#chops_watch_rounds",
        "#chops_watch_round_duration_seconds",
        "#chops_incidents_posted",
        "#chops_messages_posted",
        "#chops_alerts_received",
        "#chops_alerts_deduplicated",
        "#chops_webhook_rejected",
    ] {
        assert!(
            fams.iter().any(|(n, _, _)| n == family),
            "{family} missing from /metrics:\n{text}"
        );
    }
    assert!(fams
        .iter()
        .any(|(n, l, v)| n == "chops_check_duration_seconds_count"
            && l == "check=keeper"
            && *v >= 1.0));
    assert!(fams
        .iter()
        .any(|(n, l, v)| n == "chops_build_info" && l.starts_with("version=") && *v == 1.0));
    assert!(
        !text.contains("replica="),
        "no replica label unless [metrics] replica_labels"
    );
    let (_, open) = http(
        serve.addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
        b"",
    );
    assert!(open.ends_with("# EOF\n"));
    prometheus_families(&open, "openmetrics");
    serve.stop().await;
}

/// The scheduled pre-flight posts when the cluster is not healthy (Keeper stopped), and only once
/// for one scheduled time; a healthy cluster with `post = "unhealthy"` stays silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_posts_when_not_healthy_once_per_time() {
    let lc = LocalCluster::start(2).expect("local cluster");
    let store = lc.dir.join("preflight.db");
    let cfg = incident_config(&lc.config_path, &store, "").replacen(
        "[clusters.local]\n",
        "[clusters.local]\nschedule = { preflight = \"30 1 * * *\", timezone = \"Europe/Berlin\" }\n",
        1,
    );
    let loaded = Loaded::parse("serve.toml", &cfg).unwrap();
    let schedule = loaded.config.clusters["local"]
        .schedule
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    let app = chops::app::App::new(
        std::sync::Arc::new(loaded),
        chops::store::Store::open(&store).unwrap(),
        std::sync::Arc::new(chops::discord::speak::Speaker::nowhere()),
    );
    let at: jiff::Zoned = "2026-11-27T01:30:00+01:00[Europe/Berlin]".parse().unwrap();
    let healthy = chops::automation::schedule::preflight(&app, "local", &schedule, &at).await;
    assert_eq!(
        healthy, None,
        "healthy and post = unhealthy: nothing to post"
    );

    lc.stop_keeper();
    tokio::time::sleep(chops::checks::flight::SHARE_FOR).await;
    let id = chops::automation::schedule::preflight(&app, "local", &schedule, &at)
        .await
        .expect("an unhealthy pre-flight is recorded");
    let again = chops::automation::schedule::preflight(&app, "local", &schedule, &at).await;
    assert_eq!(again, None, "one scheduled time, one post");
    let i = app.store.incident(id).await.unwrap().unwrap();
    assert_eq!(i.channel_id, Some(CHANNEL_ID));
    let chops::domain::incident::Detail::Preflight {
        verdict,
        scheduled_for,
    } = &i.detail
    else {
        panic!("a pre-flight: {i:?}")
    };
    assert_eq!(verdict, "failing");
    assert_eq!(scheduled_for, "2026-11-27 01:30 CET");
    // Delivered (nowhere: logged) by the poster.
    chops::automation::outbox::deliver(&app, i).await;
    assert!(app.store.incident(id).await.unwrap().unwrap().posted);
}

/// The real process: `chops serve --no-discord` prints where it listens, logs JSON lines with
/// CHOPS_LOG_FORMAT=json, answers /livez, and exits 0 soon after SIGTERM.
#[test]
fn the_process_stops_on_sigterm_and_logs_json() {
    let c = shared();
    let dir = scratch("sigterm");
    let store = dir.join("sigterm.db");
    let cfg = incident_config(std::path::Path::new(&c.config), &store, "").replacen(
        "[watch]\n",
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[watch]\n",
        1,
    );
    let path = write_config(&dir, "serve.toml", &cfg);
    // Whatever fails below, the child is stopped (by its PID) when it goes.
    let mut serve = ServeChild::spawn(
        env!("CARGO_BIN_EXE_chops"),
        &path,
        &["--no-discord"],
        &[
            (TOKEN_ENV, TOKEN),
            ("CHOPS_LOG_FORMAT", "json"),
            ("CHOPS_LOG", "info"),
        ],
        &dir.join("serve.err"),
    );
    // Kept open while it runs (it prints on stdout).
    let mut out = serve.stdout();
    let addr = testkit::serve::listening_addr(&mut out);
    assert_eq!(http(addr, "GET", "/livez", &[], b"").0, 200);
    let healthcheck = chops(
        &["healthcheck", "--url", &format!("http://{addr}/livez")],
        &[],
    );
    assert_eq!(healthcheck.code, 0, "{}", healthcheck.stderr);
    std::thread::sleep(Duration::from_millis(1500)); // a watcher round or two

    let (status, exit) = serve.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    eprintln!("exit {exit:?} after SIGTERM");
    let healthcheck = chops(
        &["healthcheck", "--url", &format!("http://{addr}/livez")],
        &[],
    );
    assert_eq!(healthcheck.code, 1, "nothing listens any more");

    let logs = std::fs::read_to_string(dir.join("serve.err")).unwrap();
    let lines: Vec<&str> = logs.lines().collect();
    assert!(!lines.is_empty(), "info logs were asked for");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(!logs.contains(TOKEN), "the webhook token is never logged");
}

/// An alert acknowledged to Alertmanager (recorded) but not yet posted when chops died is posted
/// by the next start, from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_recorded_before_a_crash_is_posted_on_the_next_start() {
    let c = shared();
    let dir = scratch("crash");
    let store = dir.join("crash.db");
    let cfg = incident_config(std::path::Path::new(&c.config), &store, "").replace(
        "[watch]\ninterval_secs = 1",
        "[watch]\nenabled = false\ninterval_secs = 1",
    );
    let loaded = Loaded::parse("serve.toml", &cfg).unwrap();
    let payload: chops::automation::alerts::Payload =
        serde_json::from_value(alert_payload("firing")).unwrap();
    let records = chops::automation::alerts::intake(&payload, &loaded.config)
        .unwrap()
        .records;
    {
        // What the webhook does before it answers 200 — then the process is gone.
        let s = chops::store::Store::open(&store).unwrap();
        let out = s.record_alerts(records, 1).await.unwrap();
        assert_eq!(out, [chops::store::AlertRecorded::New]);
    }
    let fake = FakeDiscord::start().await;
    let serve = Serve::start(&cfg, Some(&fake), (TOKEN_ENV, TOKEN)).await;
    let posts = posts_after(&fake, 1, "the recorded alert's card").await;
    assert!(content(&posts[0]).contains("Alert ClickHouseBackupFailed"));
    serve.stop().await;
    fake.assert_bodies_valid();
}
