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
    alerts_received: Counter,
    alerts_deduplicated: Counter,
    webhook_rejected: Family<Labels, Counter>,
    alerts_skipped: Family<Labels, Counter>,
    incidents_given_up: Counter,
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
            alerts_received: Counter::default(),
            alerts_deduplicated: Counter::default(),
            webhook_rejected: Family::default(),
            alerts_skipped: Family::default(),
            incidents_given_up: Counter::default(),
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

    /// The build, checks, probes, Discord interactions and actions.
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
            "chops_incidents_posted",
            "Incident messages posted by kind (backup, restore, unreachable, alert, preflight)",
            m.incidents_posted.clone(),
        );
        r.register(
            "chops_alerts_received",
            "Alerts received from Alertmanager (each alert of each accepted payload)",
            m.alerts_received.clone(),
        );
        r.register(
            "chops_alerts_deduplicated",
            "Alerts already recorded (same fingerprint and start, same status)",
            m.alerts_deduplicated.clone(),
        );
        r.register(
            "chops_webhook_rejected",
            "Webhook requests refused, by reason (unauthorized, too_large, busy, malformed, version, no_alert_placed)",
            m.webhook_rejected.clone(),
        );
        r.register(
            "chops_alerts_skipped",
            "Alerts of accepted payloads chops could not place, by reason (unknown_cluster, no_cluster_label, bad_status, no_channel)",
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
        }
        for reason in [
            "unauthorized",
            "too_large",
            "busy",
            "malformed",
            "version",
            "no_alert_placed",
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

    pub fn alerts(&self, received: u64, deduplicated: u64) {
        self.alerts_received.inc_by(received);
        self.alerts_deduplicated.inc_by(deduplicated);
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
        assert!(!text.contains("r1"), "no replica label unless configured");
    }
}
