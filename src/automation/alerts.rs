//! Webhook intake: the body Alertmanager (version 4) or a Grafana-managed contact point
//! ("Webhook", Alertmanager's shape plus `orgId`, `state`, `title`, `message` and per-alert
//! silence/dashboard/panel links) sends, which chops cluster each alert is about, and the records
//! to store. Pure: `http/` reads the request, the store deduplicates on (cluster, fingerprint,
//! startsAt) — senders re-send whole groups every group_interval and repeat_interval, and are
//! at-least-once in HA.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::Config;
use crate::domain::incident::{AlertLink, Detail};
use crate::domain::text::clip;
use crate::store::AlertRecord;

/// Characters kept of each label or annotation (bodies are capped, values are not).
const VALUE_MAX: usize = 1000;
/// Discord refuses a link button whose URL is longer.
const LINK_MAX: usize = 512;

/// The webhook body. Unknown fields (`notification_reason`, `routeLabels`, Grafana's `values`,
/// later ones) are accepted and ignored; only `alerts` is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub status: String,
    pub alerts: Vec<Alert>,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    /// Grafana only: the organisation, and its rule state (`alerting` or `ok`).
    #[serde(default)]
    pub org_id: Option<i64>,
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
    /// Grafana only.
    #[serde(default, rename = "silenceURL")]
    pub silence_url: String,
    #[serde(default, rename = "dashboardURL")]
    pub dashboard_url: String,
    #[serde(default, rename = "panelURL")]
    pub panel_url: String,
}

/// Who sent a payload, told by its fields (a version string alone proves nothing: Grafana sends
/// "1", and anyone can write "4").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Alertmanager,
    Grafana,
}

impl Sender {
    pub fn name(self) -> &'static str {
        match self {
            Sender::Alertmanager => "Alertmanager",
            Sender::Grafana => "Grafana",
        }
    }
}

/// Why an alert is skipped, or (`Version`, `Empty`) a payload refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("alert {index} has no label '{label}' naming the cluster")]
    NoClusterLabel { index: usize, label: String },
    #[error(
        "alert {index}: unknown cluster '{value}' (label '{label}'); add it to [webhook.clusters]"
    )]
    UnknownCluster {
        index: usize,
        label: String,
        value: String,
    },
    #[error("alert {index} has status '{status}' (firing or resolved expected)")]
    Status { index: usize, status: String },
    #[error("alert {index}: cluster '{cluster}' has no incident channel; set [clusters.{cluster}] incidents = {{ channel = … }}")]
    NoChannel { index: usize, cluster: String },
    #[error("payload version '{0}' is neither Alertmanager's 4 nor a Grafana contact point's (orgId and state)")]
    Version(String),
    #[error("the payload's alerts list is empty: nothing to record")]
    Empty,
}

impl Rejection {
    /// The metrics label of the reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::NoClusterLabel { .. } => "no_cluster_label",
            Rejection::UnknownCluster { .. } => "unknown_cluster",
            Rejection::Status { .. } => "bad_status",
            Rejection::NoChannel { .. } => "no_channel",
            Rejection::Version(_) => "version",
            Rejection::Empty => "empty",
        }
    }
}

/// What a payload gave: the alerts to record, and those skipped with why. One alert chops cannot
/// place must not cost the others (Alertmanager does not retry a 4xx).
#[derive(Debug)]
pub struct Intake {
    pub sender: Sender,
    pub records: Vec<AlertRecord>,
    pub skipped: Vec<Rejection>,
}

/// Who sent `p`: Grafana when it carries Grafana's own fields, Alertmanager for version 4 (or
/// none); anything else is refused.
pub fn sender(p: &Payload) -> Result<Sender, Rejection> {
    let grafana_state = matches!(p.state.as_deref(), Some("alerting" | "ok"));
    if p.org_id.is_some() && grafana_state {
        return Ok(Sender::Grafana);
    }
    match p.version.as_deref() {
        None | Some("4") => Ok(Sender::Alertmanager),
        Some(v) => Err(Rejection::Version(clip(v, 20))),
    }
}

/// The chops cluster a label value names: mapped in `[webhook.clusters]`, else itself.
fn cluster_of(cfg: &Config, value: &str) -> Option<String> {
    let w = cfg.webhook.as_ref()?;
    let name = w.clusters.get(value).map(String::as_str).unwrap_or(value);
    cfg.clusters.contains_key(name).then(|| name.to_string())
}

/// A stable fingerprint from the labels, for senders that leave it out (FNV-1a over the sorted
/// labels: the same across restarts and builds, unlike the std hasher).
fn fingerprint_of(labels: &BTreeMap<String, String>) -> String {
    let bytes = labels
        .iter()
        .flat_map(|(k, v)| k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]));
    format!("{:016x}", crate::domain::text::fnv1a(bytes))
}

/// A URL Discord takes as a link button, or "": parsed as a browser would (the `url` crate, the
/// WHATWG rules), http(s) with a host, credentials removed, at most [`LINK_MAX`] characters once
/// normalised. Never fetched by chops.
fn link(raw: &str) -> String {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 4 * LINK_MAX || raw.chars().any(char::is_control) {
        return String::new();
    }
    let Ok(mut u) = url::Url::parse(raw) else {
        return String::new();
    };
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return String::new();
    }
    // Both only fail for URLs without a host, excluded above.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let s = String::from(u);
    if s.len() > LINK_MAX {
        return String::new();
    }
    s
}

/// Grafana's links of `a` that are valid, as buttons.
fn links(a: &Alert) -> Vec<AlertLink> {
    [
        ("Silence", &a.silence_url),
        ("Dashboard", &a.dashboard_url),
        ("Panel", &a.panel_url),
    ]
    .into_iter()
    .map(|(label, u)| (label, link(u)))
    .filter(|(_, u)| !u.is_empty())
    .map(|(label, url)| AlertLink {
        label: label.into(),
        url,
    })
    .collect()
}

/// Every alert of `p` chops can place as a record to store, the others skipped with a reason;
/// a payload of an unknown sender, or without alerts, is refused whole.
pub fn intake(p: &Payload, cfg: &Config) -> Result<Intake, Rejection> {
    let sender = sender(p)?;
    if p.alerts.is_empty() {
        return Err(Rejection::Empty);
    }
    let mut out = Intake {
        sender,
        records: Vec::new(),
        skipped: Vec::new(),
    };
    for (index, a) in p.alerts.iter().enumerate() {
        match one(p, a, index, cfg) {
            Ok(r) => out.records.push(r),
            Err(e) => out.skipped.push(e),
        }
    }
    Ok(out)
}

/// The chops cluster of alert `index`, from its label (or the group's).
fn place(p: &Payload, a: &Alert, index: usize, cfg: &Config) -> Result<String, Rejection> {
    let label = cfg
        .webhook
        .as_ref()
        .map(|w| w.cluster_label.clone())
        .unwrap_or_else(|| "cluster".into());
    let value = a
        .labels
        .get(&label)
        .or_else(|| p.common_labels.get(&label))
        .or_else(|| p.group_labels.get(&label))
        .ok_or_else(|| Rejection::NoClusterLabel {
            index,
            label: label.clone(),
        })?;
    cluster_of(cfg, value).ok_or_else(|| Rejection::UnknownCluster {
        index,
        label: label.clone(),
        value: clip(value, 100),
    })
}

fn one(p: &Payload, a: &Alert, index: usize, cfg: &Config) -> Result<AlertRecord, Rejection> {
    let resolved = match a.status.as_str() {
        "firing" => false,
        "resolved" => true,
        other => {
            return Err(Rejection::Status {
                index,
                status: clip(other, 40),
            })
        }
    };
    let cluster = place(p, a, index, cfg)?;
    let channel = cfg
        .clusters
        .get(&cluster)
        .and_then(|c| c.incidents.as_ref())
        .map(|i| i.channel)
        .ok_or_else(|| Rejection::NoChannel {
            index,
            cluster: cluster.clone(),
        })?;
    let get = |k: &str| {
        a.annotations
            .get(k)
            .or_else(|| p.common_annotations.get(k))
            .map(|v| clip(v, VALUE_MAX))
            .unwrap_or_default()
    };
    // Whole: two long fingerprints that share a prefix are two alerts (the store bounds the key).
    let fingerprint = if a.fingerprint.is_empty() {
        fingerprint_of(&a.labels)
    } else {
        a.fingerprint.clone()
    };
    let label = |k: &str, max: usize| a.labels.get(k).map(|v| clip(v, max));
    Ok(AlertRecord {
        cluster,
        fingerprint,
        starts_at: a.starts_at.clone(),
        resolved,
        resolution: format!("alert resolved at {}", clip(&a.ends_at, 64)),
        channel: Some(channel),
        detail: Detail::Alert {
            alertname: label("alertname", 200).unwrap_or_else(|| "(no alertname)".into()),
            severity: label("severity", 50).unwrap_or_default(),
            summary: get("summary"),
            description: get("description"),
            generator_url: link(&a.generator_url),
            starts_at: clip(&a.starts_at, 64),
            links: links(a),
            truncated: p.truncated_alerts,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::Loaded::parse(
            "t.toml",
            r#"
[clusters.prod]
replicas = [{ name = "r1", url = "http://127.0.0.1:8123" }]
incidents = { channel = 42 }
[webhook]
clusters = { "prod-eu" = "prod" }
"#,
        )
        .unwrap()
        .config
    }

    fn payload(labels: &str, status: &str) -> Payload {
        serde_json::from_str(&format!(
            r#"{{"version":"4","status":"{status}","receiver":"chops","alerts":[{{"status":"{status}",
            "labels":{labels},"annotations":{{"summary":"Backup failed","description":"d"}},
            "startsAt":"2026-11-26T01:30:00Z","endsAt":"2026-11-26T01:40:00Z",
            "generatorURL":"javascript:alert(1)","fingerprint":"abc"}}],
            "notification_reason":"new","routeLabels":{{}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn maps_the_cluster_label() {
        let r = intake(
            &payload(r#"{"alertname":"X","cluster":"prod-eu"}"#, "firing"),
            &config(),
        )
        .unwrap()
        .records;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].cluster, "prod");
        assert_eq!(r[0].channel, Some(42));
        assert!(!r[0].resolved);
        let Detail::Alert {
            summary,
            generator_url,
            ..
        } = &r[0].detail
        else {
            panic!("an alert detail")
        };
        assert_eq!(summary, "Backup failed");
        assert_eq!(generator_url, "", "only http(s) links are kept");
        let same = intake(&payload(r#"{"cluster":"prod"}"#, "resolved"), &config())
            .unwrap()
            .records;
        assert!(same[0].resolved);
    }

    #[test]
    fn alerts_chops_cannot_place_are_skipped_not_the_others() {
        let skipped = |labels: &str, status: &str| {
            let i = intake(&payload(labels, status), &config()).unwrap();
            assert!(i.records.is_empty());
            i.skipped.into_iter().next().unwrap()
        };
        let e = skipped(r#"{"cluster":"staging"}"#, "firing");
        assert!(e.to_string().contains("unknown cluster 'staging'"), "{e}");
        assert_eq!(e.reason(), "unknown_cluster");
        assert_eq!(
            skipped(r#"{"job":"x"}"#, "firing"),
            Rejection::NoClusterLabel {
                index: 0,
                label: "cluster".into()
            }
        );
        assert!(matches!(
            skipped(r#"{"cluster":"prod"}"#, "weird"),
            Rejection::Status { .. }
        ));
        // One payload, one good alert and one foreign: the good one is kept.
        let mut p = payload(r#"{"cluster":"prod"}"#, "firing");
        let mut other = p.alerts[0].clone();
        other.labels.insert("cluster".into(), "staging".into());
        p.alerts.push(other);
        let i = intake(&p, &config()).unwrap();
        assert_eq!((i.records.len(), i.skipped.len()), (1, 1));
        // Another payload version is refused whole.
        p.version = Some("5".into());
        assert_eq!(intake(&p, &config()).unwrap_err().reason(), "version");
    }

    #[test]
    fn a_cluster_without_an_incident_channel_is_skipped() {
        let cfg = crate::config::Loaded::parse(
            "t.toml",
            "[clusters.quiet]\nreplicas = [{ name = \"r1\", url = \"http://127.0.0.1:8123\" }]\n[webhook]\n",
        )
        .unwrap()
        .config;
        let i = intake(&payload(r#"{"cluster":"quiet"}"#, "firing"), &cfg).unwrap();
        assert_eq!(i.skipped[0].reason(), "no_channel");
        assert!(i.skipped[0].to_string().contains("incidents = { channel"));
    }

    #[test]
    fn links_are_http_without_credentials() {
        assert_eq!(
            link("https://u:p@prom:9090/graph?x=1"),
            "https://prom:9090/graph?x=1"
        );
        assert_eq!(link("HTTP://prom/a@b"), "http://prom/a@b");
        assert_eq!(link("javascript:alert(1)"), "");
        assert_eq!(
            link("http://prom/a b"),
            "http://prom/a%20b",
            "escaped as a browser does"
        );
        assert_eq!(link("http://u@"), "");
    }

    #[test]
    fn malformed_links_never_become_buttons() {
        for bad in [
            "http://[::1",
            "http://prom:99999/graph",
            "http://prom:4294967296/",
            "ftp://prom/x",
            "file:///etc/passwd",
            "data:text/html,hi",
            "mailto:a@b",
            "http://",
            "http://pr om/",
            "http://prom/\u{7}",
        ] {
            assert_eq!(link(bad), "", "{bad:?}");
        }
        let long = format!("http://prom/{}", "a".repeat(LINK_MAX));
        assert_eq!(link(&long), "", "over Discord's 512 characters");
        assert_eq!(link("http://user:pw@[::1]:9090/x"), "http://[::1]:9090/x");
        assert_eq!(link("https://prom:443/x"), "https://prom/x", "normalised");
    }

    #[test]
    fn long_fingerprints_are_kept_whole() {
        let long = |tail: &str| format!("{}{tail}", "f".repeat(100));
        let mut p = payload(r#"{"cluster":"prod"}"#, "firing");
        p.alerts[0].fingerprint = long("1");
        let mut other = p.alerts[0].clone();
        other.fingerprint = long("2");
        p.alerts.push(other);
        let r = intake(&p, &config()).unwrap().records;
        assert_ne!(r[0].fingerprint, r[1].fingerprint);
        assert_eq!(r[0].fingerprint.len(), 101);
    }

    #[test]
    fn an_empty_alerts_list_is_refused_with_a_reason() {
        let mut p = payload(r#"{"cluster":"prod"}"#, "firing");
        p.alerts.clear();
        let e = intake(&p, &config()).unwrap_err();
        assert_eq!(e.reason(), "empty");
        assert!(e.to_string().contains("alerts list is empty"), "{e}");
    }

    /// The body of Grafana's documentation for its webhook contact point, with a cluster label.
    fn grafana(extra_top: &str) -> Payload {
        serde_json::from_str(&format!(
            r#"{{"receiver":"My Super Webhook","status":"firing","orgId":1,"alerts":[{{
            "status":"firing","labels":{{"alertname":"High memory usage","team":"blue","cluster":"prod"}},
            "annotations":{{"description":"The system has high memory usage","summary":"zone us-1"}},
            "startsAt":"2021-10-12T09:51:03.157076+02:00","endsAt":"0001-01-01T00:00:00Z",
            "generatorURL":"https://play.grafana.org/alerting/1afz29v7z/edit","fingerprint":"c6eadffa33fcdf37",
            "silenceURL":"https://admin:pw@play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2",
            "dashboardURL":"","panelURL":"http://[::1","values":{{"B":44.23943737541908,"C":1}}}}],
            "groupLabels":{{}},"commonLabels":{{"team":"blue"}},"commonAnnotations":{{}},
            "externalURL":"https://play.grafana.org/","version":"1","groupKey":"{{}}:{{}}",
            "truncatedAlerts":0,"title":"[FIRING:1]  (blue)"{extra_top},
            "message":"**Firing**\n\nLabels:\n - alertname = T2\n"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn grafana_contact_point_bodies_are_recognised_by_their_fields() {
        let p = grafana(r#","state":"alerting""#);
        let i = intake(&p, &config()).unwrap();
        assert_eq!(i.sender, Sender::Grafana);
        assert_eq!(i.records.len(), 1);
        let Detail::Alert {
            links,
            generator_url,
            ..
        } = &i.records[0].detail
        else {
            panic!("an alert")
        };
        assert_eq!(
            generator_url,
            "https://play.grafana.org/alerting/1afz29v7z/edit"
        );
        assert_eq!(
            links.len(),
            1,
            "empty and malformed links dropped: {links:?}"
        );
        assert_eq!(links[0].label, "Silence");
        assert!(
            links[0]
                .url
                .starts_with("https://play.grafana.org/alerting/silence/new?"),
            "credentials stripped: {}",
            links[0].url
        );
        // Version "1" without Grafana's fields is not trusted as Grafana.
        let e = intake(&grafana(""), &config()).unwrap_err();
        assert_eq!(e.reason(), "version");
        let am = payload(r#"{"cluster":"prod"}"#, "firing");
        assert_eq!(sender(&am), Ok(Sender::Alertmanager));
    }

    #[test]
    fn truncated_alerts_reach_the_record() {
        let mut p = payload(r#"{"cluster":"prod"}"#, "firing");
        p.truncated_alerts = 7;
        let r = intake(&p, &config()).unwrap().records;
        assert!(matches!(r[0].detail, Detail::Alert { truncated: 7, .. }));
    }

    #[test]
    fn fingerprint_without_one_is_stable() {
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "b".to_string());
        assert_eq!(fingerprint_of(&l), fingerprint_of(&l.clone()));
        assert_eq!(fingerprint_of(&l).len(), 16);
    }
}
