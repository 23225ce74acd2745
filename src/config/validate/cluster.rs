//! `[clusters.X]`: the name, where the replicas are (listed or discovered), Keeper nodes, the
//! accounts, deadlines, thresholds, the backup disk and the actions policy (`[tls]`: `tls.rs`).

use std::collections::{BTreeMap, BTreeSet};

use super::{env_name_ok, show_entry, valid_name, Problems};
use crate::config::{ActionsConfig, ClusterConfig, DiscoverConfig, ReplicaConfig};
use crate::domain::action::ActionKind;
use crate::domain::url;

/// At least one cluster.
pub(super) fn check_any(clusters: &BTreeMap<String, ClusterConfig>, p: &mut Problems<'_>) {
    if clusters.is_empty() {
        p.add("clusters".into(), "no cluster is configured");
    }
}

/// Keys of one cluster's table: `clusters.<name>.<rest>`.
struct Keys {
    /// Escaped: a hostile key must not break the one-line-per-error output.
    name: String,
}

impl Keys {
    fn key(&self, rest: &str) -> String {
        format!("clusters.{}.{rest}", self.name)
    }
}

/// Every problem of cluster `raw`, in the order of its table's keys.
pub(super) fn check(raw: &str, cl: &ClusterConfig, p: &mut Problems<'_>) {
    let k = Keys {
        name: url::shown(raw),
    };
    if !valid_name(raw) {
        p.add(
            format!("clusters.{}", k.name),
            "cluster names use letters, digits, '_', '.', '-'",
        );
    }
    if cl.replicas.is_empty() && cl.discover.is_none() {
        p.add(
            format!("clusters.{}", k.name),
            "needs `replicas` or `discover`",
        );
    }
    check_replicas(&k, &cl.replicas, p);
    if let Some(d) = &cl.discover {
        check_discover(&k, d, p);
    }
    for (i, node) in cl.keeper.iter().enumerate() {
        if let Err(e) = url::parse_keeper(node) {
            p.add(
                k.key(&format!("keeper[{i}]")),
                format!("'{}' is not host:port: {e}", show_entry(node)),
            );
        }
    }
    check_settings(&k, cl, p);
    check_operator(&k, cl, p);
    check_actions(&k, &cl.actions, p);
}

fn check_replicas(k: &Keys, replicas: &[ReplicaConfig], p: &mut Problems<'_>) {
    let mut seen = BTreeSet::new();
    for (i, r) in replicas.iter().enumerate() {
        let key = k.key(&format!("replicas[{i}].name"));
        if let Some(problem) = replica_name_problem(&r.name) {
            p.add(key, problem);
        } else if !seen.insert(r.name.as_str()) {
            p.add(key, format!("'{}' is listed twice", url::shown(&r.name)));
        }
        p.server_url(k.key(&format!("replicas[{i}].url")), &r.url);
    }
}

fn check_discover(k: &Keys, d: &DiscoverConfig, p: &mut Problems<'_>) {
    p.server_url(k.key("discover.seed"), &d.seed);
    for (key, port) in [("http_port", d.http_port), ("https_port", d.https_port)] {
        if port == 0 {
            p.add(
                k.key(&format!("discover.{key}")),
                "must be a port from 1 to 65535",
            );
        }
    }
    for (h, u) in &d.hosts {
        let key = k.key(&format!("discover.hosts.\"{}\"", show_entry(h)));
        if !valid_host_key(h) {
            p.add(
                key.clone(),
                "the key must be host or host:port, as in system.clusters",
            );
        }
        p.server_url(key, u);
    }
}

/// The checks' account secret, the deadline, the thresholds and the backup disk.
fn check_settings(k: &Keys, cl: &ClusterConfig, p: &mut Problems<'_>) {
    if cl.password_env.as_deref().is_some_and(|v| !env_name_ok(v)) {
        p.add(
            k.key("password_env"),
            "must be the NAME of an environment variable, e.g. CLICKHOUSE_PASSWORD",
        );
    }
    if let Some(ms) = cl.deadline_ms {
        p.deadline(k.key("deadline_ms"), ms);
    }
    if let Some(t) = &cl.thresholds {
        p.levels(k.key("thresholds.delay_secs"), &t.delay_secs);
        p.levels(k.key("thresholds.queue_size"), &t.queue_size);
    }
    if !valid_name(&cl.backup_disk) {
        p.add(
            k.key("backup_disk"),
            "disk names use letters, digits, '_', '.', '-'",
        );
    }
}

/// The account actions run as.
fn check_operator(k: &Keys, cl: &ClusterConfig, p: &mut Problems<'_>) {
    if let Some(u) = &cl.operator_user {
        if u.is_empty() || u.chars().any(|c| c.is_control() || c.is_whitespace()) {
            p.add(
                k.key("operator_user"),
                "must be a user name without spaces or control characters",
            );
        }
    }
    if cl
        .operator_password_env
        .as_deref()
        .is_some_and(|v| !env_name_ok(v))
    {
        p.add(
            k.key("operator_password_env"),
            "must be the NAME of an environment variable, e.g. CLICKHOUSE_OPERATOR_PASSWORD",
        );
    }
}

/// `[clusters.X.actions]`.
fn check_actions(k: &Keys, a: &ActionsConfig, p: &mut Problems<'_>) {
    for (i, kind) in a.two_person.iter().enumerate() {
        if ActionKind::parse(kind).is_none() {
            p.add(
                k.key(&format!("actions.two_person[{i}]")),
                "must be \"backup\" or \"restart\"",
            );
        }
    }
    if !(10..=3600).contains(&a.confirm_ttl_secs) {
        p.add(
            k.key("actions.confirm_ttl_secs"),
            format!("{} is out of range (10..=3600)", a.confirm_ttl_secs),
        );
    }
    if a.cooldown_secs > 86_400 {
        p.add(
            k.key("actions.cooldown_secs"),
            format!("{} is out of range (0..=86400)", a.cooldown_secs),
        );
    }
    if !a.two_person.is_empty() && a.approver_roles.is_empty() {
        p.add(
            k.key("actions.approver_roles"),
            "two_person needs at least one approver role",
        );
    }
}

/// Why a replica name is refused. Names end up in cards, Discord embeds and SQL literals.
fn replica_name_problem(n: &str) -> Option<String> {
    if n.trim().is_empty() {
        Some("must not be empty".into())
    } else if n.chars().any(char::is_control) {
        Some(format!("'{}' contains a control character", url::shown(n)))
    } else if n.trim() != n {
        Some(format!(
            "'{}' starts or ends with whitespace",
            url::shown(n)
        ))
    } else if n.chars().count() > 128 {
        Some("is longer than 128 characters".into())
    } else {
        None
    }
}

/// A `discover.hosts` key: `host`, `host:port`, `[v6]` or `[v6]:port` (as in system.clusters).
fn valid_host_key(h: &str) -> bool {
    url::parse_host_port(h).is_ok()
        || url::valid_host(h)
        || h.strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok())
}
