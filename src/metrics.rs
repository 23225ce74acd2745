//! Process metrics for `/metrics` (the official `prometheus-client` crate): one registry, built once
//! and shared by every part that counts. Labels are bounded sets (check, kind, command, outcome);
//! replica names only when `[metrics] replica_labels = true`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

fn seconds() -> Histogram {
    // 5 ms … ~20 s: a card is sub-second, a probe stuck until its deadline is seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

pub struct Metrics {
    registry: Registry,
    check_duration: Family<Labels, Histogram, fn() -> Histogram>,
    check_rounds: Family<Labels, Counter>,
    probe_errors: Family<Labels, Counter>,
    interactions: Family<Labels, Counter>,
    actions: Family<Labels, Counter>,
    watch_rounds: Counter,
    watch_round_duration: Histogram,
    incidents_posted: Family<Labels, Counter>,
    messages_posted: Family<Labels, Counter>,
    alerts_received: Counter,
    alerts_deduplicated: Counter,
    webhook_rejected: Family<Labels, Counter>,
    alerts_skipped: Family<Labels, Counter>,
    incidents_given_up: Counter,
    audit_chain_broken: Gauge,
    replica_labels: AtomicBool,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            check_duration: Family::new_with_constructor(seconds as fn() -> Histogram),
            check_rounds: Family::default(),
            probe_errors: Family::default(),
            interactions: Family::default(),
            actions: Family::default(),
            watch_rounds: Counter::default(),
            watch_round_duration: seconds(),
            incidents_posted: Family::default(),
            messages_posted: Family::default(),
            alerts_received: Counter::default(),
            alerts_deduplicated: Counter::default(),
            webhook_rejected: Family::default(),
            alerts_skipped: Family::default(),
            incidents_given_up: Counter::default(),
            audit_chain_broken: Gauge::default(),
            replica_labels: AtomicBool::new(false),
            registry: Registry::default(),
        };
        let mut r = Registry::default();
        m.register_checks(&mut r);
        m.register_automation(&mut r);
        m.registry = r;
        m.zeros();
        m
    }

    /// The build, checks, probes, Discord interactions, actions and the audit chain.
    fn register_checks(&self, r: &mut Registry) {
        let m = self;
        let info: Family<Labels, Gauge> = Family::default();
        info.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        r.register("chops_build_info", "chops build (value 1)", info);
        r.register(
            "chops_check_duration_seconds",
            "Time per check section of a card",
            m.check_duration.clone(),
        );
        r.register(
            "chops_check_rounds",
            "Check rounds by scope: run (probes sent) or shared (answered from a round in flight or just done)",
            m.check_rounds.clone(),
        );
        r.register(
            "chops_probe_errors",
            "Failed probes by kind (refused, timeout, auth, server, network, decode, too_large, local)",
            m.probe_errors.clone(),
        );
        r.register(
            "chops_interactions",
            "Discord interactions by command and outcome",
            m.interactions.clone(),
        );
        r.register(
            "chops_actions",
            "Remediation actions by kind and outcome",
            m.actions.clone(),
        );
        r.register(
            "chops_audit_chain_broken",
            "1 when the audit log's hash chain did not verify at start (actions are refused), else 0",
            m.audit_chain_broken.clone(),
        );
    }

    /// The watcher, incidents, alerts and the webhook.
    fn register_automation(&self, r: &mut Registry) {
        let m = self;
        r.register(
            "chops_watch_rounds",
            "Backup-watcher rounds",
            m.watch_rounds.clone(),
        );
        r.register(
            "chops_watch_round_duration_seconds",
            "Time of one watcher round over every watched cluster",
            m.watch_round_duration.clone(),
        );
        r.register(
            "chops_messages_posted",
            "Messages chops posted on its own, by the kind of incident they show (backup, restore, unreachable, alert, preflight); one message can show several incidents",
            m.messages_posted.clone(),
        );
        r.register(
            "chops_incidents_posted",
            "Incidents shown in a posted message, by kind (backup, restore, unreachable, alert, preflight)",
            m.incidents_posted.clone(),
        );
        r.register(
            "chops_alerts_received",
            "Alerts received on the webhook: every alert of every authorized, well-formed payload, placed or not",
            m.alerts_received.clone(),
        );
        r.register(
            "chops_alerts_deduplicated",
            "Alerts already recorded (same fingerprint and start, same status)",
            m.alerts_deduplicated.clone(),
        );
        r.register(
            "chops_webhook_rejected",
            "Webhook requests refused, by reason (unauthorized, throttled, too_large, busy, malformed, version, empty)",
            m.webhook_rejected.clone(),
        );
        r.register(
            "chops_alerts_skipped",
            "Alerts received that chops could not place (acknowledged, not posted), by reason (unknown_cluster, no_cluster_label, bad_status, no_channel)",
            m.alerts_skipped.clone(),
        );
        r.register(
            "chops_incidents_given_up",
            "Incidents whose post kept failing until chops gave up (see the log for why)",
            m.incidents_given_up.clone(),
        );
    }

    /// Known label sets start at zero, so `rate()` and alerts on them work before the first event.
    fn zeros(&self) {
        for k in crate::domain::CheckKind::ALL {
            let _ = self
                .check_duration
                .get_or_create(&vec![("check", k.name().to_string())]);
        }
        for round in ["run", "shared"] {
            let _ = self
                .check_rounds
                .get_or_create(&vec![("scope", "backup".into()), ("round", round.into())]);
        }
        for kind in [
            "refused",
            "timeout",
            "auth",
            "server",
            "network",
            "tls",
            "decode",
            "too_large",
            "local",
        ] {
            let _ = self
                .probe_errors
                .get_or_create(&vec![("kind", kind.to_string())]);
        }
        for kind in ["backup", "restart"] {
            for outcome in ["requested", "refused", "succeeded", "failed"] {
                let _ = self.actions.get_or_create(&vec![
                    ("kind", kind.to_string()),
                    ("outcome", outcome.into()),
                ]);
            }
        }
        for kind in ["backup", "restore", "unreachable", "alert", "preflight"] {
            let _ = self
                .incidents_posted
                .get_or_create(&vec![("kind", kind.to_string())]);
            let _ = self
                .messages_posted
                .get_or_create(&vec![("kind", kind.to_string())]);
        }
        for reason in [
            "unauthorized",
            "throttled",
            "too_large",
            "busy",
            "malformed",
            "version",
            "empty",
        ] {
            let _ = self
                .webhook_rejected
                .get_or_create(&vec![("reason", reason.to_string())]);
        }
        for reason in [
            "unknown_cluster",
            "no_cluster_label",
            "bad_status",
            "no_channel",
        ] {
            let _ = self
                .alerts_skipped
                .get_or_create(&vec![("reason", reason.to_string())]);
        }
    }

    /// Every command's outcomes start at zero (the bot's command names).
    pub fn init_interactions(&self, commands: &[String]) {
        for c in commands {
            for outcome in ["ok", "user_error", "internal_error", "refused"] {
                let _ = self
                    .interactions
                    .get_or_create(&vec![("command", c.clone()), ("outcome", outcome.into())]);
            }
        }
    }

    /// Label probe errors with the replica (config `[metrics] replica_labels`).
    pub fn set_replica_labels(&self, on: bool) {
        self.replica_labels.store(on, Ordering::Relaxed);
    }

    pub fn check_section(&self, check: &str, elapsed_ms: u64) {
        self.check_duration
            .get_or_create(&vec![("check", check.to_string())])
            .observe(elapsed_ms as f64 / 1000.0);
    }

    pub fn check_round(&self, scope: &str, shared: bool) {
        let how = if shared { "shared" } else { "run" };
        self.check_rounds
            .get_or_create(&vec![("scope", scope.to_string()), ("round", how.into())])
            .inc();
    }

    pub fn probe_error(&self, kind: &'static str, replica: &str) {
        let mut labels = vec![("kind", kind.to_string())];
        if self.replica_labels.load(Ordering::Relaxed) {
            labels.push(("replica", replica.to_string()));
        }
        self.probe_errors.get_or_create(&labels).inc();
    }

    pub fn interaction(&self, command: &str, outcome: &'static str) {
        self.interactions
            .get_or_create(&vec![
                ("command", command.to_string()),
                ("outcome", outcome.into()),
            ])
            .inc();
    }

    pub fn action(&self, kind: &str, outcome: &str) {
        self.actions
            .get_or_create(&vec![
                ("kind", kind.to_string()),
                ("outcome", outcome.into()),
            ])
            .inc();
    }

    pub fn watch_round(&self, seconds: f64) {
        self.watch_rounds.inc();
        self.watch_round_duration.observe(seconds);
    }

    pub fn incident_posted(&self, kind: &str) {
        self.incidents_posted_n(kind, 1);
    }

    /// `n` incidents delivered with one message (a storm's counted alerts).
    pub fn incidents_posted_n(&self, kind: &str, n: u64) {
        self.incidents_posted
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc_by(n);
    }

    /// One message posted, showing `kinds` (one per incident on it).
    pub fn message_posted<'a>(&self, kinds: impl IntoIterator<Item = &'a str>) {
        let mut first = None;
        for kind in kinds {
            first.get_or_insert(kind);
            self.incident_posted(kind);
        }
        if let Some(kind) = first {
            self.messages_posted
                .get_or_create(&vec![("kind", kind.to_string())])
                .inc();
        }
    }

    pub fn alerts_received(&self, n: u64) {
        self.alerts_received.inc_by(n);
    }

    pub fn alerts_deduplicated(&self, n: u64) {
        self.alerts_deduplicated.inc_by(n);
    }

    pub fn webhook_rejected(&self, reason: &'static str) {
        self.webhook_rejected
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn alert_skipped(&self, reason: &'static str) {
        self.alerts_skipped
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn incident_given_up(&self) {
        self.incidents_given_up.inc();
    }

    /// Whether the audit's hash chain verified (see `store::audit`).
    pub fn audit_chain_broken(&self, broken: bool) {
        self.audit_chain_broken.set(i64::from(broken));
    }

    /// The Prometheus text format (0.0.4).
    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// OpenMetrics text (for scrapers that ask for it).
    pub fn openmetrics_text(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    /// A message showing a group of three alerts is one message and three incidents.
    #[test]
    fn messages_and_incidents_are_counted_apart() {
        let m = super::Metrics::new();
        m.message_posted(["alert", "alert", "alert"]);
        m.message_posted(["backup"]);
        let text = m.prometheus_text();
        for line in [
            "chops_messages_posted_total{kind=\"alert\"} 1",
            "chops_incidents_posted_total{kind=\"alert\"} 3",
            "chops_messages_posted_total{kind=\"backup\"} 1",
            "chops_incidents_posted_total{kind=\"backup\"} 1",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }

    #[test]
    fn families_are_listed_with_help_and_type() {
        let m = super::get();
        m.check_section("keeper", 12);
        m.probe_error("timeout", "r1");
        let text = m.prometheus_text();
        for family in [
            "chops_build_info",
            "chops_check_duration_seconds",
            "chops_probe_errors_total",
            "chops_alerts_received_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}: {text}"
            );
        }
        assert!(text.contains("chops_probe_errors_total{kind=\"timeout\"} "));
        assert!(text.contains("# TYPE chops_messages_posted_total counter"));
        assert!(!text.contains("r1"), "no replica label unless configured");
    }
}
