//! The HTTP server of `chops serve` (axum): `/livez`, `/readyz`, `/metrics` and the webhook
//! `POST /alertmanager` (Alertmanager, or a Grafana contact point). [`serve`] takes a bound listener, so tests bind port 0.

pub mod conn;
pub mod throttle;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use http_body_util::BodyExt;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::app::App;
use crate::automation::alerts;
use crate::store::AlertRecorded;
use throttle::Throttle;

/// The routes, on `app`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/alertmanager", post(alertmanager))
        // The webhook reads its body itself, under its own cap.
        .layer(axum::extract::DefaultBodyLimit::disable())
        // One per server: peers that keep failing the token wait.
        .layer(Extension(Arc::new(Throttle::default())))
        .with_state(app)
}

/// Serve until `shutdown` completes: then stop accepting and finish the requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let h = &app.config.config.http;
    let bounds = conn::Bounds {
        header_read: std::time::Duration::from_secs(h.header_timeout_secs),
        request: std::time::Duration::from_secs(h.request_timeout_secs),
        max_connections: h.max_connections,
    };
    conn::serve(listener, router(app), bounds, shutdown).await
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// The process is up (the runtime answers).
async fn livez() -> Response {
    text(StatusCode::OK, "ok\n")
}

/// Ready to do its job: config loaded (it is, or the process would not run), store writable,
/// Discord connected when enabled, the audit's hash chain intact. 503 with what is not.
async fn readyz(State(app): State<App>) -> Response {
    let mut not = Vec::new();
    if !app.store.file_intact() {
        not.push("store: not writable: the file was deleted, replaced or made read-only since chops opened it");
    } else if !app.store.writable().await {
        not.push("store: not writable");
    }
    if app.health.discord_enabled && !app.discord_connected() {
        not.push("discord: not connected");
    }
    let audit = app.health.audit_broken().map(|why| format!("audit: {why}"));
    not.extend(audit.as_deref());
    if not.is_empty() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", not.join("\n")),
        )
    }
}

/// Prometheus text format; OpenMetrics when the scraper asks for it.
async fn metrics(headers: HeaderMap) -> Response {
    let m = crate::metrics::get();
    let open = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if open {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            m.openmetrics_text(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            m.prometheus_text(),
        )
            .into_response()
    }
}

/// Whether the request carries `Authorization: Bearer <token>` (the scheme in any case, as
/// RFC 9110 has it; the token compared in constant time).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let v = v.as_bytes();
    let Some((scheme, given)) = v.split_at_checked(6) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") || !given.starts_with(b" ") {
        return false;
    }
    let given = given.trim_ascii();
    !token.is_empty() && bool::from(given.ct_eq(token.as_bytes()))
}

/// `POST /alertmanager` (Alertmanager, or a Grafana contact point): 401 without the token (429
/// with Retry-After for a peer that keeps failing it), 413 over the cap, 400 not a payload, 422
/// for a sender chops does not read or no alerts at all; alerts that can be placed are recorded
/// and the others skipped, with the reason in the answer — a payload none of whose alerts can
/// be placed (the Watchdog, an unknown cluster) is acknowledged 200 too, since the sender would
/// only count a failure and page about itself; 503 when the store cannot record (the sender
/// retries); 200 once every placed alert is recorded.
async fn alertmanager(
    State(app): State<App>,
    throttle: Option<Extension<Arc<Throttle>>>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let guard = throttle.map(|t| t.0).zip(peer.map(|p| p.0.ip()));
    match webhook(&app, guard.as_ref(), &headers, body).await {
        Ok(answer) => answer,
        Err(refusal) => refusal.answer(),
    }
}

/// The token check, under the peer's throttle when the peer is known.
fn admit(
    token: &str,
    guard: Option<&(Arc<Throttle>, IpAddr)>,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let now = std::time::Instant::now();
    if let Some((t, ip)) = guard {
        if let Some(wait) = t.wait(*ip, now) {
            return Err(Refusal::Throttled { wait, peer: *ip });
        }
    }
    let ok = authorized(headers, token);
    match guard {
        Some((t, ip)) if ok => t.succeeded(*ip),
        Some((t, ip)) => t.failed(*ip, now),
        None => {}
    }
    if ok {
        Ok(())
    } else {
        Err(Refusal::Unauthorized(guard.map(|g| g.1)))
    }
}

/// auth → read → parse → place → record → answer.
async fn webhook(
    app: &App,
    guard: Option<&(Arc<Throttle>, IpAddr)>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let (Some(cfg), Some(token)) = (&app.config.config.webhook, &app.webhook_token) else {
        return Err(Refusal::NoWebhook);
    };
    admit(token.expose(), guard, headers)?;
    // Held until the answer: parsing and recording take memory in proportion too.
    let bytes = read(&app.body_bytes, headers, body, cfg.max_body_bytes as usize).await?;
    let payload = parse(&bytes)?;
    let m = crate::metrics::get();
    m.alerts_received(payload.alerts.len() as u64);
    let intake = alerts::intake(&payload, &app.config.config).map_err(Refusal::Payload)?;
    if payload.truncated_alerts > 0 {
        tracing::warn!(
            sender = intake.sender.name(),
            truncated = payload.truncated_alerts,
            "webhook: the sender left alerts out of this notification (max_alerts); the message says how many"
        );
    }
    for s in &intake.skipped {
        m.alert_skipped(s.reason());
    }
    let skipped = skipped_line(&intake.skipped);
    if intake.records.is_empty() {
        tracing::warn!(sender = intake.sender.name(), skipped = intake.skipped.len(), first = %skipped,
            "webhook: no alert of the notification could be placed; acknowledged so the sender does not retry");
        let n = intake.skipped.len();
        return Ok(text(
            StatusCode::OK,
            format!("recorded 0 alert(s); skipped {n}: {skipped}\n"),
        ));
    }
    if !intake.skipped.is_empty() {
        tracing::warn!(skipped = intake.skipped.len(), first = %skipped, "webhook: alerts skipped");
    }
    Ok(record(app, intake, &skipped).await)
}

/// Why the webhook turned a request away: its status, its `webhook_rejected` label, its answer.
enum Refusal {
    /// No `[webhook]` enabled (the route exists, the endpoint does not).
    NoWebhook,
    /// A wrong or missing token (from this peer, when known).
    Unauthorized(Option<IpAddr>),
    /// A peer that kept failing the token, told to wait this long.
    Throttled {
        wait: std::time::Duration,
        peer: IpAddr,
    },
    TooLarge {
        cap: usize,
    },
    /// Too many body bytes in flight (`[http] max_body_bytes_in_flight`): 503, retry later.
    Busy,
    /// Not a payload: the answer names position and kind only.
    Malformed(String),
    /// A payload refused whole: an unknown sender or version, or no alerts.
    Payload(alerts::Rejection),
}

impl Refusal {
    fn label(&self) -> Option<&'static str> {
        Some(match self {
            Refusal::NoWebhook => return None,
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::Throttled { .. } => "throttled",
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Busy => "busy",
            Refusal::Malformed(_) => "malformed",
            Refusal::Payload(r) => r.reason(),
        })
    }

    fn answer(self) -> Response {
        if let Some(label) = self.label() {
            crate::metrics::get().webhook_rejected(label);
        }
        let response = match &self {
            Refusal::NoWebhook => text(StatusCode::NOT_FOUND, "no webhook is configured\n"),
            Refusal::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
            )
                .into_response(),
            Refusal::Throttled { wait, .. } => {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                let mut r = text(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("too many failed tokens from this address; retry in {secs} s\n"),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                r
            }
            Refusal::TooLarge { cap } => text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {cap} bytes\n"),
            ),
            Refusal::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()),
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8".into()),
                ],
                format!("too many webhook bodies in flight; retry in {RETRY_AFTER_SECS} s\n"),
            )
                .into_response(),
            Refusal::Malformed(what) => text(StatusCode::BAD_REQUEST, what.clone()),
            Refusal::Payload(r) => text(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{}\n", crate::domain::display::plain(&r.to_string())),
            ),
        };
        self.log(response.status());
        response
    }

    /// One WARN line per refusal: status and reason, never the body or the token.
    fn log(&self, status: StatusCode) {
        let status = status.as_u16();
        match self {
            Refusal::NoWebhook => {}
            Refusal::Unauthorized(peer) => {
                let peer = peer.map(|p| p.to_string()).unwrap_or_default();
                tracing::warn!(status, %peer, "webhook refused: wrong or missing bearer token (is credentials_file the token of [webhook] token_env?)")
            }
            Refusal::Throttled { wait, peer } => {
                tracing::warn!(status, %peer, wait_secs = wait.as_secs(), "webhook refused: this peer keeps failing the token; slowed down")
            }
            Refusal::TooLarge { cap } => {
                tracing::warn!(
                    status,
                    cap,
                    "webhook refused: body over [webhook] max_body_bytes"
                )
            }
            Refusal::Busy => {
                tracing::warn!(
                    status,
                    "webhook refused: over [http] max_body_bytes_in_flight; asked to retry"
                )
            }
            Refusal::Malformed(what) => {
                tracing::warn!(status, reason = %what.trim_end(), "webhook refused: not a payload")
            }
            Refusal::Payload(r) => {
                let reason = crate::domain::display::plain(&r.to_string());
                tracing::warn!(status, %reason, "webhook refused")
            }
        }
    }
}

/// What a peer refused for bytes in flight is told to wait.
const RETRY_AFTER_SECS: u64 = 5;

/// A body read, with its share of the bytes in flight (given back when dropped).
struct Held {
    bytes: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Held {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The body, at most `cap` bytes (a declared length over it is refused before reading), its bytes
/// taken from `in_flight` before they are read: a declared length at once, a body without one
/// chunk by chunk. No waiting: when the bytes are not free, [`Refusal::Busy`] (503).
async fn read(
    in_flight: &Arc<Semaphore>,
    headers: &HeaderMap,
    body: Body,
    cap: usize,
) -> Result<Held, Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(Refusal::TooLarge { cap });
    }
    let reserve = |n: usize| {
        let n = u32::try_from(n).map_err(|_| Refusal::TooLarge { cap })?;
        in_flight
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| Refusal::Busy)
    };
    let declared = declared.unwrap_or(0) as usize;
    let mut permit = reserve(declared)?;
    let mut bytes = Vec::with_capacity(declared);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        // A broken or timed-out body: no payload either way.
        let frame = frame.map_err(|_| Refusal::TooLarge { cap })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = bytes.len() + data.len();
        if len > cap {
            return Err(Refusal::TooLarge { cap });
        }
        let held = permit.num_permits();
        if len > held {
            permit.merge(reserve(len - held)?);
        }
        bytes.extend_from_slice(&data);
    }
    Ok(Held {
        bytes,
        _permit: permit,
    })
}

/// The webhook payload, or where and how it is not one.
fn parse(bytes: &[u8]) -> Result<alerts::Payload, Refusal> {
    serde_json::from_slice(bytes).map_err(|e| {
        // Position and kind only: serde's message can quote the body back.
        let what = match e.classify() {
            serde_json::error::Category::Data => "not the webhook's fields",
            serde_json::error::Category::Eof => "truncated JSON",
            _ => "not JSON",
        };
        Refusal::Malformed(format!(
            "not an Alertmanager or Grafana webhook payload: {what} at line {}, column {}\n",
            e.line(),
            e.column()
        ))
    })
}

/// One line on why alerts were skipped (the first reason, and how many more); "" for none.
fn skipped_line(skipped: &[alerts::Rejection]) -> String {
    match skipped.first() {
        None => String::new(),
        Some(first) => {
            let more = skipped.len() - 1;
            let more = if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            };
            crate::domain::display::plain(&format!("{first}{more}"))
        }
    }
}

/// Records `records`, only while the store file is the one chops writes to (before and after): a
/// file deleted or replaced under chops still takes writes, into an inode nobody will open again —
/// an alert so lost must never be acknowledged.
async fn store_alerts(
    app: &App,
    records: Vec<crate::store::AlertRecord>,
) -> Result<Vec<AlertRecorded>, String> {
    const GONE: &str =
        "the store file was deleted, replaced or made read-only (restart chops once it is back)";
    if !app.store.file_intact() {
        return Err(GONE.into());
    }
    let outcomes = app
        .store
        .record_alerts(records, crate::clock::now())
        .await
        .map_err(|e| e.to_string())?;
    if !app.store.file_intact() {
        return Err(GONE.into());
    }
    Ok(outcomes)
}

/// Record the placed alerts (duplicates are known, not new) and wake the poster for new ones:
/// 200 with the counts, 503 when the store cannot record or its file is no longer the one chops
/// writes to.
async fn record(app: &App, intake: alerts::Intake, skipped: &str) -> Response {
    let m = crate::metrics::get();
    let received = intake.records.len() as u64;
    let skipped_n = intake.skipped.len();
    match store_alerts(app, intake.records).await {
        Ok(outcomes) => {
            let dup = outcomes
                .iter()
                .filter(|o| **o == AlertRecorded::Duplicate)
                .count() as u64;
            m.alerts_deduplicated(dup);
            if dup < received {
                app.outbox.notify_one();
            }
            let skipped = if skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped {skipped_n}: {skipped}")
            };
            text(
                StatusCode::OK,
                format!(
                    "recorded {} alert(s), {} already known{skipped}\n",
                    received - dup,
                    dup
                ),
            )
        }
        Err(e) => {
            let r = crate::app::reference();
            tracing::error!(reference = %r, error = %e, "webhook: cannot record alerts");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot record the alerts now (reference {r}); retry\n"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_only() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cre"));
        assert!(!authorized(&h, ""));
        h.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(!authorized(&h, "s3cret"));
    }
}
