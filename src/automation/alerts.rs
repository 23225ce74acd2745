//! Alertmanager intake: the webhook payload (version 4), which chops cluster each alert is about,
//! and the records to store. Pure: `http/` reads the request, the store deduplicates on
//! (fingerprint, startsAt) — Alertmanager re-sends whole groups every group_interval and
//! repeat_interval, and is at-least-once in HA.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::Config;
use crate::domain::incident::Detail;
use crate::domain::text::clip;
use crate::store::AlertRecord;

/// Characters kept of each label or annotation (bodies are capped, values are not).
const VALUE_MAX: usize = 1000;

/// The webhook body. Unknown fields (`notification_reason`, `routeLabels`, later ones) are
/// accepted and ignored; only `alerts` is required.
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
}

/// Why a payload is refused (422; Alertmanager does not retry 4xx).
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
    #[error("payload version '{0}' is not 4")]
    Version(String),
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
        }
    }
}

/// What a payload gave: the alerts to record, and those skipped with why. One alert chops cannot
/// place must not cost the others (Alertmanager does not retry a 4xx).
#[derive(Debug, Default)]
pub struct Intake {
    pub records: Vec<AlertRecord>,
    pub skipped: Vec<Rejection>,
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

/// Only an http(s) URL of a sane length without spaces or controls is kept, credentials
/// (`user:pass@`) removed: it becomes a link button, never fetched by chops.
fn link(url: &str) -> String {
    let u = url.trim();
    let Some((scheme, rest)) = u.split_once("://") else {
        return String::new();
    };
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https")
        || u.len() > 2000
        || u.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return String::new();
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    if rest.is_empty() {
        return String::new();
    }
    format!("{scheme}://{rest}")
}

/// Every alert of `p` chops can place as a record to store, the others skipped with a reason;
/// a payload of another version is refused whole.
pub fn intake(p: &Payload, cfg: &Config) -> Result<Intake, Rejection> {
    if let Some(v) = p.version.as_deref().filter(|v| *v != "4") {
        return Err(Rejection::Version(clip(v, 20)));
    }
    let mut out = Intake::default();
    for (index, a) in p.alerts.iter().enumerate() {
        match one(p, a, index, cfg) {
            Ok(r) => out.records.push(r),
            Err(e) => out.skipped.push(e),
        }
    }
    Ok(out)
}

fn one(p: &Payload, a: &Alert, index: usize, cfg: &Config) -> Result<AlertRecord, Rejection> {
    let label = cfg
        .webhook
        .as_ref()
        .map(|w| w.cluster_label.clone())
        .unwrap_or_else(|| "cluster".into());
    {
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
        let value = a
            .labels
            .get(&label)
            .or_else(|| p.common_labels.get(&label))
            .or_else(|| p.group_labels.get(&label))
            .ok_or_else(|| Rejection::NoClusterLabel {
                index,
                label: label.clone(),
            })?;
        let cluster = cluster_of(cfg, value).ok_or_else(|| Rejection::UnknownCluster {
            index,
            label: label.clone(),
            value: clip(value, 100),
        })?;
        let get = |k: &str| {
            a.annotations
                .get(k)
                .or_else(|| p.common_annotations.get(k))
                .map(|v| clip(v, VALUE_MAX))
                .unwrap_or_default()
        };
        let fingerprint = if a.fingerprint.is_empty() {
            fingerprint_of(&a.labels)
        } else {
            clip(&a.fingerprint, 64)
        };
        let channel = cfg
            .clusters
            .get(&cluster)
            .and_then(|c| c.incidents.as_ref())
            .map(|i| i.channel)
            .ok_or_else(|| Rejection::NoChannel {
                index,
                cluster: cluster.clone(),
            })?;
        Ok(AlertRecord {
            cluster,
            fingerprint,
            starts_at: clip(&a.starts_at, 64),
            resolved,
            resolution: format!("alert resolved at {}", clip(&a.ends_at, 64)),
            channel: Some(channel),
            detail: Detail::Alert {
                alertname: a
                    .labels
                    .get("alertname")
                    .map(|v| clip(v, 200))
                    .unwrap_or_else(|| "(no alertname)".into()),
                severity: a
                    .labels
                    .get("severity")
                    .map(|v| clip(v, 50))
                    .unwrap_or_default(),
                summary: get("summary"),
                description: get("description"),
                generator_url: link(&a.generator_url),
                starts_at: clip(&a.starts_at, 64),
            },
        })
    }
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
        assert_eq!(link("http://prom/a b"), "");
        assert_eq!(link("http://u@"), "");
    }

    #[test]
    fn fingerprint_without_one_is_stable() {
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "b".to_string());
        assert_eq!(fingerprint_of(&l), fingerprint_of(&l.clone()));
        assert_eq!(fingerprint_of(&l).len(), 16);
    }
}
