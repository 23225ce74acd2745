//! The config of what runs inside `chops serve` besides the bot: the HTTP server, the backup
//! watcher, the Alertmanager webhook, per-cluster incident channels and pre-flight schedules.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::url;

/// Where `/livez`, `/readyz`, `/metrics` and `/alertmanager` listen by default (loopback: put a
/// reverse proxy or `0.0.0.0` in front deliberately).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9187";

/// `[http]`: the one HTTP server of `chops serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `host:port` (IP literal); port 0 picks a free one (tests).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Connections open at once; when full, the longest idle one is closed for a new one.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a peer has to send a request's head (also the idle keep-alive limit).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds one request may take, body read included (408 past it).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Bytes of webhook bodies read, parsed and recorded at once; a body that would go past it is
    /// answered 503 with `Retry-After` (floods of large bodies cannot take memory with them).
    #[serde(default = "default_body_bytes_in_flight")]
    pub max_body_bytes_in_flight: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: default_listen(),
            max_connections: default_max_connections(),
            header_timeout_secs: default_header_timeout(),
            request_timeout_secs: default_request_timeout(),
            max_body_bytes_in_flight: default_body_bytes_in_flight(),
        }
    }
}

fn default_max_connections() -> usize {
    128
}
fn default_header_timeout() -> u64 {
    10
}
fn default_request_timeout() -> u64 {
    30
}
/// Two default-sized bodies (`[webhook] max_body_bytes`, 1 MiB) at once: a 1 MiB body takes
/// about 20 MB while parsed and recorded, so 20 concurrent ones stay under 100 MB of RSS.
fn default_body_bytes_in_flight() -> u64 {
    2 << 20
}

fn default_listen() -> String {
    DEFAULT_HTTP_LISTEN.into()
}
pub(super) fn yes() -> bool {
    true
}

/// `[watch]`: the backup-failure watcher (runs for clusters with `[clusters.X.incidents]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds between two reads of `system.backups` on every replica.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// A replica that has not answered for this long is an incident of its own.
    #[serde(default = "default_unreachable_after")]
    pub unreachable_after_secs: u64,
    /// Statuses that open an incident.
    #[serde(default = "default_states")]
    pub states: Vec<String>,
    /// Failures of the same name whose starts lie this close are one (ON CLUSTER) operation.
    #[serde(default = "default_group_window")]
    pub group_window_secs: u64,
    /// Failures that ended longer ago than this when first seen are recorded, not posted
    /// (a first start of chops must not post last week's failures).
    #[serde(default = "default_lookback")]
    pub lookback_secs: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            enabled: true,
            interval_secs: default_interval(),
            unreachable_after_secs: default_unreachable_after(),
            states: default_states(),
            group_window_secs: default_group_window(),
            lookback_secs: default_lookback(),
        }
    }
}

fn default_interval() -> u64 {
    30
}
fn default_unreachable_after() -> u64 {
    120
}
fn default_group_window() -> u64 {
    600
}
fn default_lookback() -> u64 {
    3600
}
fn default_states() -> Vec<String> {
    vec!["BACKUP_FAILED".into(), "RESTORE_FAILED".into()]
}

/// The statuses `[watch] states` may name.
pub const WATCHABLE_STATES: &[&str] = &[
    "BACKUP_FAILED",
    "RESTORE_FAILED",
    "BACKUP_CANCELLED",
    "RESTORE_CANCELLED",
];

/// `[webhook]`: `POST /alertmanager`. Present = enabled (unless `enabled = false`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Environment variable (or `.env` key) with the bearer token Alertmanager sends.
    #[serde(default = "default_webhook_token_env")]
    pub token_env: String,
    /// The alert label that names the cluster.
    #[serde(default = "default_cluster_label")]
    pub cluster_label: String,
    /// Label value → chops cluster name, for labels that differ from chops' names.
    #[serde(default)]
    pub clusters: BTreeMap<String, String>,
    /// Larger bodies are refused with 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
}

fn default_webhook_token_env() -> String {
    "CHOPS_WEBHOOK_TOKEN".into()
}
fn default_cluster_label() -> String {
    "cluster".into()
}
fn default_max_body() -> u64 {
    1 << 20
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Label probe errors with the replica's name (off: a label per replica is high-cardinality).
    #[serde(default)]
    pub replica_labels: bool,
}

/// `[scheduler]`: the per-cluster pre-flight schedules, all at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig { enabled: true }
    }
}

/// `[clusters.X.incidents]`: where chops speaks first about this cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsConfig {
    /// The Discord channel id of the incident channel.
    pub channel: u64,
}

/// `[clusters.X.schedule]`: the pre-flight check before the backup window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// 5-field cron: minute hour day-of-month month day-of-week (e.g. "30 1 * * *").
    pub preflight: String,
    /// IANA time zone of the cron fields (default UTC).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// `unhealthy` (default): post only when the card is not healthy; `always`.
    #[serde(default)]
    pub post: PostWhen,
}

fn default_timezone() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostWhen {
    #[default]
    Unhealthy,
    Always,
}

/// A parsed pre-flight schedule: the cron and its zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: croner::Cron,
    pub zone: jiff::tz::TimeZone,
    pub post: PostWhen,
}

impl ScheduleConfig {
    /// The cron and zone, or what is wrong with them (one line each).
    pub fn parse(&self) -> Result<Schedule, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let cron = parse_cron(&self.preflight).map_err(|e| ("preflight", e));
        let zone = jiff::tz::TimeZone::get(&self.timezone).map_err(|_| {
            (
                "timezone",
                format!(
                    "'{}' is not a time zone name (e.g. UTC, Europe/Berlin)",
                    url::shown(&self.timezone)
                ),
            )
        });
        match (cron, zone) {
            (Ok(cron), Ok(zone)) => Ok(Schedule {
                cron,
                zone,
                post: self.post,
            }),
            (c, z) => {
                problems.extend(c.err());
                problems.extend(z.err());
                Err(problems)
            }
        }
    }
}

/// Five fields exactly (or a nickname such as `@daily`): a sixth field would be read as seconds
/// by the cron crate, which is not what a crontab line means.
pub fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    let s = s.trim();
    let fields = s.split_whitespace().count();
    if !(s.starts_with('@') && fields == 1) && fields != 5 {
        return Err(format!(
            "'{}' must have 5 fields: minute hour day-of-month month day-of-week",
            url::shown(s)
        ));
    }
    s.parse::<croner::Cron>()
        .map_err(|e| format!("'{}' is not a valid cron: {e}", url::shown(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_fields_or_a_nickname() {
        assert!(parse_cron("30 1 * * *").is_ok());
        assert!(parse_cron("@daily").is_ok());
        assert!(parse_cron("*/5 * * * 1-5").is_ok());
        assert!(parse_cron("0 30 1 * * *").unwrap_err().contains("5 fields"));
        assert!(parse_cron("* * *").unwrap_err().contains("5 fields"));
        assert!(parse_cron("61 * * * *")
            .unwrap_err()
            .contains("not a valid cron"));
    }

    #[test]
    fn schedule_reports_cron_and_zone_together() {
        let s = ScheduleConfig {
            preflight: "x".into(),
            timezone: "Mars/Olympus".into(),
            post: PostWhen::Unhealthy,
        };
        let e = s.parse().unwrap_err();
        assert_eq!(
            e.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            ["preflight", "timezone"]
        );
        let ok = ScheduleConfig {
            preflight: "30 1 * * *".into(),
            timezone: "Europe/Berlin".into(),
            post: PostWhen::Always,
        };
        assert_eq!(ok.parse().unwrap().post, PostWhen::Always);
    }
}
