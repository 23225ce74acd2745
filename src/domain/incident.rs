//! Incidents chops posts on its own: a failed backup or restore seen by the watcher, a replica that
//! stopped answering, an Alertmanager alert, a pre-flight that is not healthy. Pure data and the
//! decisions about them (which `system.backups` rows open or resolve one); the store keeps them.

use serde::{Deserialize, Serialize};

/// BACKUP or RESTORE: a failure of one is resolved only by a success of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Backup,
    Restore,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Backup => "backup",
            Op::Restore => "restore",
        }
    }
    pub fn verb(self) -> &'static str {
        match self {
            Op::Backup => "BACKUP",
            Op::Restore => "RESTORE",
        }
    }
}

/// What a `system.backups` status means to the watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowEvent {
    /// A status listed in `[watch] states`.
    Failed(Op),
    Succeeded(Op),
    /// Running, or a failure status not watched.
    Other,
}

/// Classify a status (`BACKUP_FAILED`, `RESTORED`, …) given the watched failure states.
pub fn row_event(status: &str, watched: &[String]) -> RowEvent {
    let op = if status.starts_with("RESTOR") {
        Op::Restore
    } else {
        Op::Backup
    };
    match status {
        "BACKUP_CREATED" => RowEvent::Succeeded(Op::Backup),
        "RESTORED" => RowEvent::Succeeded(Op::Restore),
        s if watched.iter().any(|w| w == s) => RowEvent::Failed(op),
        _ => RowEvent::Other,
    }
}

/// One row of `system.backups` as the watcher reads it (times in the server's seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub error: String,
    pub start: i64,
    pub end: i64,
}

/// The kinds of incident, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Backup,
    Restore,
    Unreachable,
    Alert,
    Preflight,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Backup => "backup",
            Kind::Restore => "restore",
            Kind::Unreachable => "unreachable",
            Kind::Alert => "alert",
            Kind::Preflight => "preflight",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Backup,
            Kind::Restore,
            Kind::Unreachable,
            Kind::Alert,
            Kind::Preflight,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
    pub fn of(op: Op) -> Kind {
        match op {
            Op::Backup => Kind::Backup,
            Op::Restore => Kind::Restore,
        }
    }
}

/// What an incident's message says besides the card. Every string in it is untrusted (server or
/// Alertmanager text): renderers show it only through the display boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Detail {
    /// A BACKUP/RESTORE that failed on one or more replicas (one ON CLUSTER operation).
    Operation {
        op: Op,
        status: String,
        name: String,
        /// Replicas it failed on, in the order seen.
        replicas: Vec<String>,
        /// The first replica's error text (bounded).
        error: String,
        /// Start of the first failure seen, server time (unix seconds).
        start: i64,
        /// Its end (a success that started before it does not resolve it).
        #[serde(default)]
        end: i64,
    },
    /// A replica that has not answered since `since` (unix seconds, chops' clock).
    Unreachable {
        replica: String,
        since: i64,
        error: String,
    },
    /// An Alertmanager (or Grafana-managed) alert.
    Alert {
        alertname: String,
        severity: String,
        summary: String,
        description: String,
        /// Only an http(s) URL is kept.
        generator_url: String,
        starts_at: String,
        /// Grafana's silence, dashboard and panel links (valid http(s), no credentials).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        links: Vec<AlertLink>,
        /// Alerts of the same notification the sender left out (`truncatedAlerts`, max_alerts).
        #[serde(default, skip_serializing_if = "is_zero")]
        truncated: u64,
    },
    /// A scheduled pre-flight check whose card was not healthy (or `post = "always"`).
    Preflight {
        verdict: String,
        scheduled_for: String,
    },
}

/// A link button under an alert: its label (chops' own words) and an http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertLink {
    pub label: String,
    pub url: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Detail {
    pub fn kind(&self) -> Kind {
        match self {
            Detail::Operation { op, .. } => Kind::of(*op),
            Detail::Unreachable { .. } => Kind::Unreachable,
            Detail::Alert { .. } => Kind::Alert,
            Detail::Preflight { .. } => Kind::Preflight,
        }
    }
}

/// A stored incident, as the poster needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: i64,
    pub cluster: String,
    pub detail: Detail,
    pub channel_id: Option<u64>,
    pub message_id: Option<u64>,
    pub posted: bool,
    /// "resolved by … at …" once resolved.
    pub resolution: Option<String>,
    pub attempts: u32,
    /// Posted, and its header changed since (another replica joined).
    pub edit_due: bool,
    /// When chops recorded it (unix seconds).
    pub created_at: i64,
}

/// Alerts of one storm message counted but not listed: every one is recorded (resolvable, in the
/// store and `/metrics`) and marked delivered with the message that counts it; the message's title
/// counts those resolved since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub alerts: usize,
    pub resolved: usize,
}

/// Whether a failure first seen now is news: it ended within `lookback_secs` of the server's now.
/// Older ones (chops' first start, a long outage of chops) are recorded without a post.
pub fn is_news(row: &BackupRow, server_now: i64, lookback_secs: u64) -> bool {
    let ended = if row.end > 0 { row.end } else { row.start };
    server_now.saturating_sub(ended) <= lookback_secs as i64
}

/// The dedup key of one failure: a replica, a backup id and its start (an id given with
/// `SETTINGS id = …` can come back after a server restart; its start does not).
pub fn failure_key(cluster: &str, replica: &str, row: &BackupRow) -> String {
    format!(
        "backup-row\u{1f}{cluster}\u{1f}{replica}\u{1f}{}\u{1f}{}",
        row.id, row.start
    )
}

/// Unix seconds as `2026-11-26 01:30:00 UTC`.
pub fn utc(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states() -> Vec<String> {
        vec!["BACKUP_FAILED".into(), "RESTORE_FAILED".into()]
    }

    #[test]
    fn statuses() {
        assert_eq!(
            row_event("BACKUP_FAILED", &states()),
            RowEvent::Failed(Op::Backup)
        );
        assert_eq!(
            row_event("RESTORE_FAILED", &states()),
            RowEvent::Failed(Op::Restore)
        );
        assert_eq!(row_event("BACKUP_CANCELLED", &states()), RowEvent::Other);
        assert_eq!(
            row_event("BACKUP_CANCELLED", &["BACKUP_CANCELLED".into()]),
            RowEvent::Failed(Op::Backup)
        );
        assert_eq!(
            row_event("RESTORED", &states()),
            RowEvent::Succeeded(Op::Restore)
        );
        assert_eq!(
            row_event("BACKUP_CREATED", &states()),
            RowEvent::Succeeded(Op::Backup)
        );
        assert_eq!(row_event("CREATING_BACKUP", &states()), RowEvent::Other);
    }

    #[test]
    fn news_is_recent_by_the_servers_clock() {
        let row = BackupRow {
            id: "a".into(),
            name: "n".into(),
            status: "BACKUP_FAILED".into(),
            error: String::new(),
            start: 1_000,
            end: 1_010,
        };
        assert!(is_news(&row, 1_010 + 3600, 3600));
        assert!(!is_news(&row, 1_011 + 3600, 3600));
        // Unfinished rows (end 0) are judged by their start.
        let running = BackupRow { end: 0, ..row };
        assert!(is_news(&running, 1_000, 0));
    }

    #[test]
    fn detail_round_trips_as_json() {
        let d = Detail::Operation {
            op: Op::Backup,
            status: "BACKUP_FAILED".into(),
            name: "Disk('backups', 'x')".into(),
            replicas: vec!["r1".into()],
            error: "boom".into(),
            start: 5,
            end: 6,
        };
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Detail>(&j).unwrap(), d);
        assert_eq!(d.kind(), Kind::Backup);
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    }
}
