//! The backup-failure watcher: every `[watch] interval_secs` it reads `system.backups` on every
//! replica of each cluster that has an incident channel. A row entering a watched failure state
//! opens an incident (one per ON CLUSTER operation: same name, starts within the window); a later
//! success of the same name resolves it; a replica that stops answering for
//! `unreachable_after_secs` is an incident of its own, resolved when it answers again.
//!
//! Every failure row is remembered in the store by (cluster, replica, id, start), so a restart of
//! chops never posts it twice; `system.backups` is in-memory on the server, so after a server
//! restart the old rows are simply gone, and ids that come back have a new start.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ::clickhouse::Row;
use serde::Deserialize;
use tokio::sync::watch;

use crate::app::App;
use crate::clickhouse::ReplicaClient;
use crate::clock::now;
use crate::domain::display::plain;
use crate::domain::incident::{self, row_event, utc, BackupRow, Detail, Kind, Op, RowEvent};
use crate::domain::text::clip;
use crate::domain::ProbeError;
use crate::store::{FailureRecord, Recorded};

/// Rows read per replica and round, newest first (the table is in memory and small).
pub const WATCH_SQL: &str =
    "SELECT id, name, toString(status) AS status, substring(error, 1, 4000) AS error, \
     toInt64(toUnixTimestamp(start_time)) AS start_secs, \
     toInt64(toUnixTimestamp(end_time)) AS end_secs, \
     toInt64(toUnixTimestamp(now())) AS now_secs \
     FROM system.backups ORDER BY start_time DESC LIMIT 200";

/// Characters of a failure's error text kept in the incident (the card shows it classified).
const ERROR_KEEP: usize = 2000;

#[derive(Debug, Clone, Row, Deserialize)]
struct WatchRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    id: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    name: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    status: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    error: String,
    start_secs: i64,
    end_secs: i64,
    now_secs: i64,
}

/// What the watcher remembers between rounds (in memory; the store has the rest).
#[derive(Default)]
pub struct Watcher {
    /// (cluster, replica) → since when it has not answered (monotonic, and chops' clock for the
    /// message) and why.
    failing: HashMap<(String, String), (Instant, i64, String)>,
    /// Clusters whose open "unreachable" incidents were loaded from the store.
    loaded: HashSet<String>,
    /// (cluster, replica) with an open "unreachable" incident.
    open: HashSet<(String, String)>,
    /// Per cluster: when chops last finished a round on it (any run of chops, from the store).
    marks: HashMap<String, Option<i64>>,
}

/// Server and chops clocks may disagree this much (seconds) when a failure's end is compared
/// with when chops last looked.
const SKEW_SECS: i64 = 300;

/// Run rounds until `stop` turns true.
pub async fn run(app: App, stop: watch::Receiver<bool>) {
    let clusters = watched(&app);
    if clusters.is_empty() {
        return;
    }
    let every = Duration::from_secs(app.config.config.watch.interval_secs);
    let mut w = Watcher::default();
    loop {
        let started = Instant::now();
        w.round(&app).await;
        crate::metrics::get().watch_round(started.elapsed().as_secs_f64());
        tokio::select! {
            _ = tokio::time::sleep(every.saturating_sub(started.elapsed())) => {}
            _ = crate::app::stopped(stop.clone()) => return,
        }
    }
}

/// Clusters with an incident channel.
pub fn watched(app: &App) -> Vec<String> {
    app.config
        .config
        .clusters
        .iter()
        .filter(|(_, c)| c.incidents.is_some())
        .map(|(n, _)| n.clone())
        .collect()
}

/// A probe failure that means "not answering" (not a refusal of the query by a live server).
fn unreachable(e: &ProbeError) -> bool {
    matches!(
        e,
        ProbeError::Refused | ProbeError::Timeout { .. } | ProbeError::Network(_)
    )
}

impl Watcher {
    /// One round over every watched cluster; returns how many incidents it opened.
    pub async fn round(&mut self, app: &App) -> usize {
        let mut opened = 0;
        for cluster in watched(app) {
            opened += self.cluster_round(app, &cluster).await;
        }
        if opened > 0 {
            app.outbox.notify_one();
        }
        opened
    }

    /// One cluster: read rows → new failures → group (by the store) → record → unreachable
    /// replicas → resolutions → the round's mark. Returns how many incidents it opened.
    async fn cluster_round(&mut self, app: &App, cluster: &str) -> usize {
        let Some(cl) = connect(app, cluster).await else {
            return 0;
        };
        self.load(app, cluster).await;
        // Failures that ended after chops last looked are news however long chops was down;
        // on the first start ever, only those within lookback_secs.
        let since = self.marks.get(cluster).copied().flatten();
        let answers = read_rows(&cl).await;
        let seen = self.sort(app, cluster, answers).await;
        let opened = seen.opened + record_failures(app, cluster, seen.failures, since).await;
        record_resolutions(app, cluster, seen.successes).await;
        if seen.answered {
            self.mark(app, cluster).await;
        }
        opened
    }

    /// What the store knows of `cluster` that this watcher has not loaded yet: its open
    /// "unreachable" incidents and when chops last finished a round on it. Retried every round
    /// until it works (an open incident must be resolvable).
    async fn load(&mut self, app: &App, cluster: &str) {
        if !self.loaded.contains(cluster) {
            match app.store.unreachable_open(cluster).await {
                Ok(open) => {
                    self.open
                        .extend(open.into_iter().map(|r| (cluster.to_string(), r)));
                    self.loaded.insert(cluster.to_string());
                }
                Err(e) => tracing::error!(error = %e, "watcher: cannot read open incidents"),
            }
        }
        if !self.marks.contains_key(cluster) {
            match app.store.watch_mark(cluster).await {
                Ok(m) => {
                    self.marks.insert(cluster.to_string(), m);
                }
                Err(e) => tracing::error!(error = %e, "watcher: cannot read the last round"),
            }
        }
    }

    /// Each replica's answer: rows sorted into failures and successes; a replica that does not
    /// answer may open its "unreachable" incident, one that answers resolves it.
    async fn sort(&mut self, app: &App, cluster: &str, answers: Vec<Answer>) -> Seen {
        let states = &app.config.config.watch.states;
        let mut seen = Seen::default();
        for (replica, rows) in answers {
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) if unreachable(&e) => {
                    seen.opened += self.not_answering(app, cluster, &replica, &e).await;
                    continue;
                }
                Err(ProbeError::Local(e)) => {
                    // chops' own trouble (out of file descriptors): nothing learnt of the replica.
                    tracing::warn!(error = %plain(&e), "watcher: cannot probe");
                    continue;
                }
                Err(e) => {
                    // It answers (auth, a server error): not down, but its backups are unknown.
                    tracing::warn!(cluster = %plain(cluster), replica = %plain(&replica), error = %plain(&e.to_string()), "watcher: cannot read system.backups");
                    self.back(app, cluster, &replica).await;
                    continue;
                }
            };
            seen.answered = true;
            self.back(app, cluster, &replica).await;
            for r in rows {
                let server_now = r.now_secs;
                let row = BackupRow {
                    id: r.id,
                    name: r.name,
                    status: r.status,
                    error: r.error,
                    start: r.start_secs,
                    end: r.end_secs,
                };
                match row_event(&row.status, states) {
                    RowEvent::Failed(op) => seen.failures.push(Failure {
                        replica: replica.clone(),
                        op,
                        row,
                        server_now,
                    }),
                    RowEvent::Succeeded(op) => seen.successes.push((op, row)),
                    RowEvent::Other => {}
                }
            }
        }
        seen
    }

    /// `replica` did not answer: once that has lasted `unreachable_after_secs`, its incident is
    /// opened (once). Returns 1 when one was created.
    async fn not_answering(
        &mut self,
        app: &App,
        cluster: &str,
        replica: &str,
        e: &ProbeError,
    ) -> usize {
        let key = (cluster.to_string(), replica.to_string());
        let (since, since_unix, _) = self
            .failing
            .entry(key.clone())
            .or_insert((Instant::now(), now(), e.to_string()))
            .clone();
        let after = Duration::from_secs(app.config.config.watch.unreachable_after_secs);
        if since.elapsed() < after || self.open.contains(&key) {
            return 0;
        }
        let detail = Detail::Unreachable {
            replica: replica.to_string(),
            since: since_unix,
            error: clip(&e.to_string(), 300),
        };
        let channel = app.incident_channel(cluster);
        match app
            .store
            .open_unreachable(cluster, replica, detail, channel, now())
            .await
        {
            Ok(created) => {
                self.open.insert(key);
                usize::from(created.is_some())
            }
            // Not marked open: the next round tries to record it again.
            Err(e) => {
                tracing::error!(error = %e, "watcher: cannot record");
                0
            }
        }
    }

    /// A replica answered this round: remember it as the last look at `cluster`.
    async fn mark(&mut self, app: &App, cluster: &str) {
        let t = now();
        match app.store.set_watch_mark(cluster, t).await {
            Ok(()) => {
                self.marks.insert(cluster.to_string(), Some(t));
            }
            Err(e) => tracing::error!(error = %e, "watcher: cannot record the round"),
        }
    }

    /// `replica` answered: an open "unreachable" incident of it is resolved.
    async fn back(&mut self, app: &App, cluster: &str, replica: &str) {
        let key = (cluster.to_string(), replica.to_string());
        self.failing.remove(&key);
        if self.open.remove(&key) {
            let text = format!("answers again at {}", utc(now()));
            match app.store.resolve_unreachable(cluster, replica, &text).await {
                Ok(_) => app.outbox.notify_one(),
                Err(e) => tracing::error!(error = %e, "watcher: cannot record a resolution"),
            }
        }
    }
}

/// One replica's answer to [`WATCH_SQL`].
type Answer = (String, Result<Vec<WatchRow>, ProbeError>);

/// A failure row of one replica, with the server's clock when it was read.
struct Failure {
    replica: String,
    op: Op,
    row: BackupRow,
    server_now: i64,
}

/// One round's rows of a cluster, sorted by what they mean.
#[derive(Default)]
struct Seen {
    failures: Vec<Failure>,
    successes: Vec<(Op, BackupRow)>,
    /// Some replica answered: the round counts as a look at the cluster.
    answered: bool,
    /// "Unreachable" incidents opened while reading.
    opened: usize,
}

/// The cluster's replicas (discovered ones too), or `None` (logged) when it cannot be used.
async fn connect(app: &App, cluster: &str) -> Option<crate::checks::Cluster> {
    let target = match app
        .config
        .target(Some(cluster), &crate::config::process_env)
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(cluster = %plain(cluster), error = %plain(&e.to_string()), "watcher: cannot use the cluster");
            return None;
        }
    };
    match app.flights.cluster(&target).await {
        Ok(cl) => Some(cl),
        Err(e) => {
            tracing::warn!(cluster = %plain(cluster), error = %plain(&e.to_string()), "watcher: cannot resolve the cluster's replicas");
            None
        }
    }
}

/// [`WATCH_SQL`] on every replica at once.
async fn read_rows(cl: &crate::checks::Cluster) -> Vec<Answer> {
    futures_util::future::join_all(cl.replicas.iter().map(|r: &ReplicaClient| {
        let r = r.clone();
        async move {
            let rows = r.fetch::<WatchRow>(WATCH_SQL, &[]).await;
            (r.name.clone(), rows)
        }
    }))
    .await
}

/// Record each failure row (oldest first, so the first replica of an ON CLUSTER failure opens
/// its incident and the store groups the rest into it); news decides whether it is posted.
/// Returns how many incidents were opened.
async fn record_failures(
    app: &App,
    cluster: &str,
    mut failures: Vec<Failure>,
    since: Option<i64>,
) -> usize {
    let w = &app.config.config.watch;
    let channel = app.incident_channel(cluster);
    failures.sort_by_key(|f| f.row.start);
    let mut opened = 0;
    for Failure {
        replica,
        op,
        row,
        server_now,
    } in failures
    {
        let detail = Detail::Operation {
            op,
            status: row.status.clone(),
            name: row.name.clone(),
            replicas: vec![replica.clone()],
            error: clip(&row.error, ERROR_KEEP),
            start: row.start,
            end: row.end,
        };
        let ended = row.end.max(row.start);
        let news = incident::is_news(&row, server_now, w.lookback_secs)
            || since.is_some_and(|m| ended >= m - SKEW_SECS);
        match app
            .store
            .record_failure(
                FailureRecord {
                    row_key: incident::failure_key(cluster, &replica, &row),
                    cluster: cluster.to_string(),
                    detail,
                    window_secs: w.group_window_secs,
                    news,
                    channel,
                },
                now(),
            )
            .await
        {
            Ok(Recorded::New(_)) => opened += 1,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "watcher: cannot record a failure"),
        }
    }
    opened
}

/// A success resolves the failures of the same name that ended before it started.
async fn record_resolutions(app: &App, cluster: &str, successes: Vec<(Op, BackupRow)>) {
    for (op, row) in successes {
        let text = format!("{} at {}", row.name, utc(row.end.max(row.start)));
        let text = format!("resolved by {text}");
        match app
            .store
            .resolve_operation(cluster, Kind::of(op), &row.name, row.start, &text)
            .await
        {
            Ok(0) => {}
            Ok(_) => app.outbox.notify_one(),
            Err(e) => tracing::error!(error = %e, "watcher: cannot record a resolution"),
        }
    }
}
