//! `[webhook]`: the token's variable, the cluster label and its mapping, the body limit.

use std::collections::BTreeMap;

use super::{env_name_ok, Problems};
use crate::config::{ClusterConfig, WebhookConfig};
use crate::domain::url;

pub(super) fn check(
    h: &WebhookConfig,
    clusters: &BTreeMap<String, ClusterConfig>,
    p: &mut Problems<'_>,
) {
    if !env_name_ok(&h.token_env) {
        p.add(
            "webhook.token_env".into(),
            "must be the NAME of an environment variable, e.g. CHOPS_WEBHOOK_TOKEN",
        );
    }
    // A Prometheus label name; the same characters as a variable's name.
    if !env_name_ok(&h.cluster_label) {
        p.add(
            "webhook.cluster_label".into(),
            "must be a Prometheus label name (letters, digits, '_')",
        );
    }
    for (label, cluster) in &h.clusters {
        if !clusters.contains_key(cluster) {
            p.add(
                format!("webhook.clusters.\"{}\"", url::shown(label)),
                format!("'{}' is not a configured cluster", url::shown(cluster)),
            );
        }
    }
    if !(1024..=64 << 20).contains(&h.max_body_bytes) {
        p.add(
            "webhook.max_body_bytes".into(),
            format!("{} is out of range (1024..=67108864)", h.max_body_bytes),
        );
    }
}
