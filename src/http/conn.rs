//! The HTTP server's connections, bounded in number and in time, so that peers who hold
//! connections open (slow headers, slow bodies, idle keep-alive, thousands of idle sockets) can
//! neither keep `/livez`, `/readyz` and the webhook from answering nor take the file descriptors
//! chops needs for its own probes and store.
//!
//! - hyper's own header-read timeout, which also covers the wait for the next request on a
//!   kept-alive connection (hyper starts it whenever the connection waits for a request head);
//! - tower-http's timeout on each whole request, body read included (408 past it);
//! - at most [`Bounds::max_connections`] open at once: when full, the connection that has waited
//!   longest without a request in flight is closed to make room, so held sockets cannot lock the
//!   door; when every connection is busy the new one is closed at once. Sockets not yet accepted
//!   wait in the kernel's backlog and cost chops no descriptor.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower_http::timeout::TimeoutLayer;

/// How long a connection may take, and how many may be open (`[http]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// From waiting for a request's head (first or next) to having it whole.
    pub header_read: Duration,
    /// One request from its head to its answer, body read included.
    pub request: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// One open connection: whether a request is in flight, since when it is idle, how to close it.
struct Entry {
    busy: usize,
    idle_since: Instant,
    close: Arc<Notify>,
}

/// The open connections, by accept order.
#[derive(Default)]
struct Open {
    next: u64,
    conns: BTreeMap<u64, Entry>,
}

type Shared = Arc<Mutex<Open>>;

fn lock(open: &Shared) -> std::sync::MutexGuard<'_, Open> {
    open.lock().unwrap_or_else(|e| e.into_inner())
}

impl Open {
    /// Room for one more: true when there was room or an idle connection was told to close.
    fn make_room(&mut self, max: usize) -> bool {
        if self.conns.len() < max {
            return true;
        }
        let oldest = self
            .conns
            .iter()
            .filter(|(_, e)| e.busy == 0)
            .min_by_key(|(_, e)| e.idle_since)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| self.conns.remove(&id)) {
            Some(e) => {
                e.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn add(&mut self) -> (u64, Arc<Notify>) {
        let id = self.next;
        self.next += 1;
        let close = Arc::new(Notify::new());
        self.conns.insert(
            id,
            Entry {
                busy: 0,
                idle_since: Instant::now(),
                close: close.clone(),
            },
        );
        (id, close)
    }

    fn mark(&mut self, id: u64, start: bool) {
        if let Some(e) = self.conns.get_mut(&id) {
            if start {
                e.busy += 1;
            } else {
                e.busy = e.busy.saturating_sub(1);
                e.idle_since = Instant::now();
            }
        }
    }
}

/// Accepts on `listener` until `shutdown` completes, each connection under `bounds`; then stops
/// accepting and lets requests in flight finish (connections waiting for a request close).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    bounds: Bounds,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        bounds.request,
    ));
    let open: Shared = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (or a peer gone before accept): wait instead of spinning.
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if !lock(&open).make_room(bounds.max_connections) {
            // Every connection has a request in flight: this one waits for nothing.
            drop(stream);
            continue;
        }
        let (id, close) = lock(&open).add();
        let conn = Conn {
            id,
            peer,
            open: open.clone(),
            router: router.clone(),
            bounds,
        };
        tasks.spawn(conn.run(stream, close, stop_rx.clone()));
        // Finished connections are reaped as we go, so the set stays as small as what is open.
        while tasks.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

struct Conn {
    id: u64,
    /// The peer's address, given to handlers as axum's `ConnectInfo` (the webhook's throttle).
    peer: std::net::SocketAddr,
    open: Shared,
    router: Router,
    bounds: Bounds,
}

impl Conn {
    async fn run(self, stream: TcpStream, close: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let (id, peer, open) = (self.id, self.peer, self.open.clone());
        let router = self.router;
        let (marks, done) = (open.clone(), open.clone());
        // Requests of this connection in flight, seen by its own task once evicted from `open`.
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (started, ended) = (in_flight.clone(), in_flight.clone());
        let svc = tower::ServiceBuilder::new()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                started.fetch_add(1, Ordering::Relaxed);
                lock(&marks).mark(id, true);
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            })
            .service(router);
        let svc = tower::ServiceExt::map_response(svc, move |res| {
            ended.fetch_sub(1, Ordering::Relaxed);
            lock(&done).mark(id, false);
            res
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.bounds.header_read)
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        tokio::pin!(conn);
        let evicted = tokio::select! {
            _ = conn.as_mut() => {
                lock(&open).conns.remove(&id);
                return;
            }
            _ = close.notified() => true,
            _ = stop.wait_for(|s| *s) => false,
        };
        // Evicted with no request in flight (a half-sent head is none): dropped at once, so held
        // sockets give their descriptors back. Otherwise a request in flight is answered first
        // (bounded by its timeout); an idle connection closes now.
        if !evicted || in_flight.load(Ordering::Relaxed) > 0 {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(self.bounds.request, conn.as_mut()).await;
        }
        lock(&open).conns.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_closes_the_longest_idle_connection_never_a_busy_one() {
        let mut open = Open::default();
        let (a, close_a) = open.add();
        let (b, _) = open.add();
        open.mark(a, true);
        assert!(open.make_room(2), "b is idle: it makes room");
        assert!(!open.conns.contains_key(&b));
        assert!(open.conns.contains_key(&a));
        let (_c, _) = open.add();
        open.mark(_c, true);
        assert!(!open.make_room(2), "both busy: no room");
        open.mark(a, false);
        assert!(open.make_room(2));
        assert!(!open.conns.contains_key(&a));
        drop(close_a);
    }
}
