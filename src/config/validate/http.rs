//! `[http]`: the listen address of the one HTTP server.

use super::Problems;
use crate::config::{HttpConfig, WebhookConfig};
use crate::domain::url;

pub(super) fn check(h: &HttpConfig, p: &mut Problems<'_>) {
    for (key, value) in [
        ("http.max_connections", h.max_connections as u64),
        ("http.header_timeout_secs", h.header_timeout_secs),
        ("http.request_timeout_secs", h.request_timeout_secs),
    ] {
        if value == 0 {
            p.add(key.into(), "must be at least 1");
        }
    }
    if h.enabled && h.listen.parse::<std::net::SocketAddr>().is_err() {
        p.add(
            "http.listen".into(),
            format!(
                "'{}' must be ip:port, e.g. 127.0.0.1:9187 or 0.0.0.0:9187",
                url::shown(&h.listen)
            ),
        );
    }
}

/// One body of the largest size the webhook takes must fit in what may be in flight, or such a
/// body would be answered 503 for ever.
pub(super) fn room_for_a_body(h: &HttpConfig, w: &WebhookConfig, p: &mut Problems<'_>) {
    if h.max_body_bytes_in_flight < w.max_body_bytes {
        p.add(
            "http.max_body_bytes_in_flight".into(),
            format!(
                "{} is below webhook.max_body_bytes ({}): such bodies would never be taken",
                h.max_body_bytes_in_flight, w.max_body_bytes
            ),
        );
    }
}
