//! ClickHouse adapter: one client per replica, every call under a deadline and a byte/row cap,
//! errors mapped to [`ProbeError`] (refused, timed out, auth failed, too large, …).
//!
//! Queries and `/ping` share one bounded transport ([`capped`], TLS for `https://` from [`tls`]);
//! a semaphore shared by the whole check ([`Budget`]) caps probes in flight so a large cluster
//! never exhausts file descriptors. A round's in-memory queries to one replica travel together
//! ([`batch`], decoded by [`rowbinary`]).

pub mod batch;
pub mod capped;
pub mod rowbinary;
pub mod tls;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::clickhouse::{error::Error as ChError, Client, RowOwned, RowRead};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

pub use crate::config::Limits;
use crate::config::{Secret, Tls};
use crate::domain::text::{self, first_line};
use crate::domain::ProbeError;
use capped::{CappedConnector, Caps};

/// Shared by every probe of one check: the limits, the in-flight semaphore and the cluster's TLS
/// settings (so the operator's client and Keeper's words get the same TLS as the checks).
#[derive(Debug, Clone)]
pub struct Budget {
    pub limits: Limits,
    limiter: Arc<Semaphore>,
    /// The quick lane's cap (see [`Lane`]): half of the in-flight cap, so a Keeper hang that
    /// holds every slot of the other half cannot starve what tells the card the replicas are up,
    /// and a card holds no more connections at once than with one cap.
    quick: Arc<Semaphore>,
    pub tls: Tls,
    /// Probes one replica may have in flight at once (see [`Budget::shared_by`]).
    per_replica: usize,
}

/// Which in-flight caps a request counts against. Queries asked on their own may wait on
/// something besides the server's memory (Keeper behind `system.replicas` and `system.zookeeper`,
/// a disk, a remote database engine) and go in `Any`; during a Keeper outage they hang until the
/// deadline, and at 300 replicas they held every slot, so the batch of in-memory questions queued
/// behind them and every replica read "timed out". The batch (held at most its patience when it
/// carries a risky part) and Keeper's own four-letter words go in `Quick`, with a cap of its own;
/// `/ping` counts against the same cap, beside the batch (it asks when the batch is slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Any,
    Quick,
    Ping,
}

/// The least share of the in-flight cap one replica gets however large the cluster: its batch and
/// one query on its own go together (`/ping` has a slot of its own).
pub const MIN_PER_REPLICA: usize = 2;

/// A lane's part of the in-flight cap `in_flight`: half each (see [`Lane`]), at least one.
fn lane_cap(in_flight: usize, lane: Lane) -> usize {
    let quick = in_flight / 2;
    match lane {
        Lane::Any => in_flight - quick,
        Lane::Quick | Lane::Ping => quick,
    }
    .max(1)
}

/// Idle connections kept per server: more than a card ever asks one replica at once, so a card
/// right after another opens none.
const IDLE_PER_SERVER: usize = 16;

/// A replica's pools (queries, `/ping`) and the connector under them. One set per replica: a set
/// shared by the whole cluster let a hung replica's probes overrun the check's backstop under load
/// (`hostile::one_hung_replica_of_64_does_not_hold_the_other_63`).
#[derive(Clone)]
struct Pools {
    /// The connect timeout the connector was made with.
    deadline: Duration,
    connector: CappedConnector,
    /// Queries: a clickhouse client without URL or account yet.
    queries: Client,
    ping: HyperClient<CappedConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Pools {
    fn new(limits: Limits, deadline: Duration, tls: &Tls) -> Pools {
        let caps = Caps {
            answer_bytes: limits.answer_bytes,
            error_bytes: limits.error_bytes,
        };
        let connector = CappedConnector::new(caps, deadline).with_tls(tls.clone());
        Pools {
            deadline,
            queries: Client::with_http_client(pool(connector.clone())),
            ping: pool(connector.clone()),
            connector,
        }
    }
}

impl Budget {
    pub fn new(limits: Limits) -> Self {
        Budget {
            limits,
            limiter: Arc::new(Semaphore::new(lane_cap(limits.in_flight, Lane::Any))),
            quick: Arc::new(Semaphore::new(lane_cap(limits.in_flight, Lane::Quick))),
            tls: Tls::default(),
            per_replica: limits.in_flight.max(1),
        }
    }

    /// The same budget, for clients of a cluster of `replicas`: each replica gets its share of
    /// the in-flight cap (at least [`MIN_PER_REPLICA`]). A card asks each replica up to 9 things
    /// at once and HTTP/1.1 needs a connection for each; without a share, 300 replicas held over a
    /// thousand connections (and their buffers) at a card's peak, with a share ~2 per replica.
    pub fn shared_by(mut self, replicas: usize) -> Self {
        let limit = self.limits.in_flight.max(1);
        self.per_replica = (limit / replicas.max(1)).clamp(MIN_PER_REPLICA.min(limit), limit);
        self
    }

    /// The same budget, with `https://` and `tls://` servers verified by `tls`.
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Wait for a slot in `lane` until `end`; past it the probe was never sent (chops' limit, not
    /// the server).
    pub async fn slot(
        &self,
        lane: Lane,
        end: tokio::time::Instant,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ProbeError> {
        let limiter = match lane {
            Lane::Any => &self.limiter,
            Lane::Quick | Lane::Ping => &self.quick,
        };
        match tokio::time::timeout_at(end, limiter.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(ProbeError::Local(format!(
                "not sent before the deadline: {} probes of its kind already in flight (half of \
                 limits.max_in_flight)",
                lane_cap(self.limits.in_flight, lane)
            ))),
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(Limits::default())
    }
}

/// Answers of one round, by row type and SQL: each cell is filled once.
type SharedCell =
    Arc<tokio::sync::OnceCell<Result<Arc<dyn std::any::Any + Send + Sync>, ProbeError>>>;
type Shared = std::collections::HashMap<(std::any::TypeId, &'static str), SharedCell>;

/// A client for one replica. A new round's copy ([`ReplicaClient::next_round`]) shares
/// everything but the round's memory, at the cost of a few reference counts.
#[derive(Clone)]
pub struct ReplicaClient {
    pub name: String,
    pub url: String,
    pub shard: Option<u32>,
    fixed: Arc<Fixed>,
    /// Answers shared by the checks of one round (see [`ReplicaClient::fetch_shared`]).
    shared: Arc<Mutex<Shared>>,
    /// When a connection to this replica was last refused: later probes of the same round fail
    /// at once instead of knocking again (a cluster of refusing hosts costs one connect each).
    refused_at: Arc<Mutex<Option<Instant>>>,
    /// This round's batch, when the round has one (see [`batch`]).
    batch: Option<Arc<Batch>>,
}

type Answer = tokio::sync::OnceCell<Result<Arc<Sent>, ProbeError>>;

/// A round's batch for one replica: the plan, and the answer once asked.
struct Batch {
    plan: Arc<batch::Plan>,
    /// The parts the first batch holds (decided by its first waiter, before anything is sent).
    chosen: std::sync::OnceLock<Vec<usize>>,
    answer: Answer,
    /// It held a risky part and ran past the patience: the parts went on without it.
    late: AtomicBool,
    /// The batch asked again then, without the risky parts.
    retry: Answer,
}

/// What a batch sent (the plan's indices) and each sent part's rows.
struct Sent {
    parts: Vec<usize>,
    rows: Vec<Vec<Vec<u8>>>,
    /// How long the batch took to answer (the replica's answer time for its parts).
    took: Duration,
}

/// A query's rows (or why not), and how long the request that answered took.
pub type Timed<T> = (Result<Vec<T>, ProbeError>, Duration);

/// What the round's batch gave one part.
enum Batched<T> {
    /// The rows (or the replica's error), and how long the batch took.
    Answer(Result<Vec<T>, ProbeError>, Duration),
    Alone {
        undecoded: bool,
    },
}

/// What a replica's client keeps from round to round.
struct Fixed {
    client: Client,
    /// The same without query settings, for an account with `readonly = 1`.
    bare: Client,
    /// The server refused our settings (164 READONLY): queries go without them.
    readonly1: std::sync::atomic::AtomicBool,
    http: HyperClient<CappedConnector, Empty<Bytes>>,
    /// `{url}/ping`, made once.
    ping: Option<hyper::Uri>,
    deadline: Duration,
    budget: Budget,
    /// Caps tripped on connections to this replica (see `capped`).
    trips: Arc<AtomicU64>,
    /// This replica's share of the budget's in-flight cap: one slot for its batch, one for
    /// `/ping`, the rest for queries on their own (so a card holds as many connections to a
    /// replica as it did with one lane).
    own: Arc<Semaphore>,
    own_quick: Arc<Semaphore>,
    own_ping: Arc<Semaphore>,
    /// What this replica's answers taught about batches (parts that go alone, batches refused).
    learned: Mutex<batch::Learned>,
}

impl std::fmt::Debug for ReplicaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaClient")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish()
    }
}

impl ReplicaClient {
    pub fn new(
        name: &str,
        url: &str,
        shard: Option<u32>,
        user: &str,
        password: &Secret,
        deadline: Duration,
        budget: &Budget,
    ) -> Self {
        let limits = budget.limits;
        let pools = Pools::new(limits, deadline, &budget.tls);
        let ping: Option<hyper::Uri> = format!("{}/ping", url.trim_end_matches('/')).parse().ok();
        let trips = match &ping {
            Some(uri) => pools.connector.trips(uri),
            None => Arc::default(),
        };
        // The server gives up on its own shortly after we do (at least 1 s).
        let server_limit = deadline.as_secs_f64().ceil().max(1.0) as u64;
        let bare = pools
            .queries
            .with_url(url)
            .with_user(user)
            .with_password(password.expose());
        // Gentle on a sick server: bounded, low priority, few threads. An account with
        // `readonly = 1` may not set any of these; its queries then go without (`bare`).
        let client = bare
            .clone()
            .with_setting("max_execution_time", server_limit.to_string())
            .with_setting("max_result_rows", limits.rows.to_string())
            .with_setting("max_result_bytes", limits.answer_bytes.to_string())
            .with_setting("priority", "10")
            .with_setting("max_threads", "2")
            // A request chops gave up on (a batch past its patience, a deadline) is cancelled on
            // the server at its next progress, not run to its end behind our back. The server
            // honours it for a read-only account (`readonly` > 0, as the checks' should be); a
            // write action's statement is not affected.
            .with_setting("cancel_http_readonly_queries_on_client_close", "1");
        let fixed = Fixed {
            client,
            bare,
            readonly1: std::sync::atomic::AtomicBool::new(false),
            http: pools.ping,
            ping,
            deadline,
            budget: budget.clone(),
            trips,
            own: Arc::new(Semaphore::new(budget.per_replica.saturating_sub(1).max(1))),
            own_quick: Arc::new(Semaphore::new(1)),
            own_ping: Arc::new(Semaphore::new(1)),
            learned: Mutex::new(batch::Learned::default()),
        };
        ReplicaClient {
            name: name.to_string(),
            url: url.to_string(),
            shard,
            fixed: Arc::new(fixed),
            shared: Arc::new(Mutex::new(Shared::new())),
            refused_at: Arc::new(Mutex::new(None)),
            batch: None,
        }
    }

    pub fn deadline(&self) -> Duration {
        self.fixed.deadline
    }

    /// The same replica for a new check round: the connection pools are kept (a second check
    /// pays no connect cost), the round's memory (shared answers, refusals seen) starts empty.
    pub fn next_round(&self) -> ReplicaClient {
        ReplicaClient {
            shared: Arc::new(Mutex::new(Shared::new())),
            refused_at: Arc::new(Mutex::new(None)),
            batch: None,
            ..self.clone()
        }
    }

    /// The same client, its queries in `plan` asked in one batch (this round's memory kept).
    pub fn with_plan(&self, plan: &Arc<batch::Plan>) -> ReplicaClient {
        ReplicaClient {
            batch: Some(Arc::new(Batch {
                plan: plan.clone(),
                chosen: std::sync::OnceLock::new(),
                answer: Answer::new(),
                late: AtomicBool::new(false),
                retry: Answer::new(),
            })),
            ..self.clone()
        }
    }

    fn refused_recently(&self) -> bool {
        let at = *self.refused_at.lock().expect("refused_at lock");
        at.is_some_and(|t| t.elapsed() < self.fixed.deadline)
    }

    /// Count a probe's error (what the card shows, so a batch answered part by part is not one).
    fn note(&self, r: &Result<impl Sized, ProbeError>) {
        if let Err(e) = r {
            crate::metrics::get().probe_error(e.kind(), &self.name);
        }
    }

    fn note_refused(&self, r: &Result<impl Sized, ProbeError>) {
        if let Err(ProbeError::Refused) = r {
            *self.refused_at.lock().expect("refused_at lock") = Some(Instant::now());
        }
    }

    /// Run the probe `work` makes under the deadline (waiting for a slot included), mapping a
    /// timeout to the real elapsed time. The probe is made and boxed only once it has its slots:
    /// a queued probe costs a few words, not the kilobytes of a request in flight (a card of 300
    /// replicas queues hundreds).
    async fn bounded<T, F, Fut>(&self, lane: Lane, work: F) -> Result<T, ProbeError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProbeError>>,
    {
        if self.refused_recently() {
            return Err(ProbeError::Refused);
        }
        let own_end = tokio::time::Instant::now() + self.fixed.deadline;
        let end = crate::clock::by(own_end);
        // Cut to the check's end, the probe's wait counts from the check's start: a probe made a
        // few ms into the check still reports the deadline the check waited for its replica.
        let start = Instant::now()
            .checked_sub(own_end.saturating_duration_since(end))
            .unwrap_or_else(Instant::now);
        // This replica's share first, so a replica that is slow to answer queues its own probes
        // without holding slots of the others. Its queue is its slowness: a probe still queued
        // at the end timed out, as the ones ahead of it did.
        let own = match lane {
            Lane::Any => &self.fixed.own,
            Lane::Quick => &self.fixed.own_quick,
            Lane::Ping => &self.fixed.own_ping,
        };
        let own = tokio::time::timeout_at(end, own.clone().acquire_owned());
        let _own = match own.await {
            Ok(Ok(p)) => p,
            _ => return Err(elapsed(start)),
        };
        let _slot = self.fixed.budget.slot(lane, end).await?;
        // Probes queue for slots: one refused while this one waited makes knocking again pointless.
        if self.refused_recently() {
            return Err(ProbeError::Refused);
        }
        let r = match tokio::time::timeout_at(end, Box::pin(work())).await {
            Ok(r) => r,
            Err(_) => Err(elapsed(start)),
        };
        self.note_refused(&r);
        r
    }

    /// Run a SELECT with `?` bindings and collect its rows, within the deadline and the caps;
    /// from the round's batch when it is one of its parts.
    pub async fn fetch<T>(&self, sql: &str, binds: &[&str]) -> Result<Vec<T>, ProbeError>
    where
        T: RowOwned + RowRead,
    {
        self.fetch_timed(sql, binds).await.0
    }

    /// [`fetch`](Self::fetch), with how long the request that answered took (the batch's, or its
    /// own): the replica's answer time, not how long this caller waited.
    pub async fn fetch_timed<T>(&self, sql: &str, binds: &[&str]) -> Timed<T>
    where
        T: RowOwned + RowRead,
    {
        let batched = self
            .batch
            .as_ref()
            .and_then(|b| Some((b, b.plan.position(sql, binds)?)));
        let (r, took) = match batched {
            Some((b, i)) => {
                let part = &b.plan.parts()[i];
                let mut sent_alone = false;
                let (r, took) = match self.part_of_batch::<T>(b, i).await {
                    Batched::Answer(r, took) => (r, took),
                    Batched::Alone { undecoded } => {
                        let (r, took) = self.alone_timed(sql, binds).await;
                        // A part that fails on its own, or whose batched rows did not decode,
                        // would cost the next batch the same detour: it goes alone for a while.
                        if undecoded || matches!(r, Err(ProbeError::Server { .. })) {
                            let mut learned = self.fixed.learned.lock().expect("learned lock");
                            learned.mark_alone(part.sql, Instant::now());
                            sent_alone = true;
                        }
                        (r, took)
                    }
                };
                if r.is_ok() && took <= self.patience() && !sent_alone {
                    self.prove(part);
                }
                (r, took)
            }
            None => self.alone_timed(sql, binds).await,
        };
        self.note(&r);
        (r, took)
    }

    /// How long this replica's parts wait for a batch holding a risky part.
    fn patience(&self) -> Duration {
        batch::patience(self.fixed.deadline)
    }

    /// A risky part answered in time: it may join this replica's next batches.
    fn prove(&self, part: &batch::Part) {
        if part.risky {
            let mut learned = self.fixed.learned.lock().expect("learned lock");
            learned.prove(part.sql, Instant::now());
        }
    }

    async fn alone_timed<T>(&self, sql: &str, binds: &[&str]) -> Timed<T>
    where
        T: RowOwned + RowRead,
    {
        let start = Instant::now();
        let r = self.fetch_alone(Lane::Any, sql, binds).await;
        (r, start.elapsed())
    }

    /// Part `i` of the round's batch: its rows or the error the replica gave the whole batch, or
    /// to be asked on its own (not in the batch, batch refused, rows not decoded). A batch
    /// holding a risky part is waited for only the patience, and one refused with a risky part
    /// in it is not trusted either; then the others are asked again in a batch without them,
    /// and the risky parts go alone once that retry is out of the way.
    async fn part_of_batch<T>(&self, b: &Batch, i: usize) -> Batched<T>
    where
        T: RowOwned + RowRead,
    {
        let alone = Batched::Alone { undecoded: false };
        let chosen = b.chosen.get_or_init(|| self.chosen(&b.plan, false));
        if chosen.len() < 2 || !chosen.contains(&i) {
            return alone;
        }
        if !b.late.load(Ordering::Acquire) {
            let risky_in = chosen.iter().any(|&k| b.plan.parts()[k].risky);
            let first = b.answer.get_or_init(|| self.send_batch(b, false));
            let mut first = std::pin::pin!(first);
            let answer = match tokio::time::timeout(self.patience(), &mut first).await {
                Ok(answer) => Some(answer),
                Err(_) if risky_in => None,
                Err(_) => Some(first.await),
            };
            // Dropping the wait cancels the request if this waiter was the one sending it (the
            // next waiter to wait sends nothing: `late`).
            match answer {
                Some(a) if risky_in && matches!(a, Err(e) if batch::ask_alone_after(e)) => {
                    // Refused with a risky part in it (a Keeper error, say): the others
                    // are not to blame and go in the retry, not each on its own.
                }
                Some(answer) if !b.late.load(Ordering::Acquire) => return self.part_in(answer, i),
                Some(_) => {}
                None => self.give_up_on(b),
            }
        }
        // The retry first, even for a risky part: with two slots per replica, a risky part that
        // hangs again beside the lag query would otherwise queue the retry until the deadline.
        let again = b.retry.get_or_init(|| self.send_batch(b, true)).await;
        if b.plan.parts()[i].risky {
            return alone;
        }
        self.part_in(again, i)
    }

    /// A batch holding risky parts ran past the patience: they go alone for a while.
    fn give_up_on(&self, b: &Batch) {
        if b.late.swap(true, Ordering::AcqRel) {
            return;
        }
        let now = Instant::now();
        let mut learned = self.fixed.learned.lock().expect("learned lock");
        for p in b.plan.parts().iter().filter(|p| p.risky) {
            learned.mark_alone(p.sql, now);
        }
    }

    /// Part `i` of a batch's answer.
    fn part_in<T>(&self, answer: &Result<Arc<Sent>, ProbeError>, i: usize) -> Batched<T>
    where
        T: RowOwned + RowRead,
    {
        let alone = Batched::Alone { undecoded: false };
        let sent = match answer {
            Ok(sent) => sent,
            Err(e) if batch::ask_alone_after(e) => return alone,
            Err(e) => return Batched::Answer(Err(e.clone()), Duration::ZERO),
        };
        let Some(k) = sent.parts.iter().position(|&p| p == i) else {
            return alone;
        };
        let rows: Result<Vec<T>, _> = sent.rows[k]
            .iter()
            .map(|r| rowbinary::row::<T>(r))
            .collect();
        match rows {
            Ok(rows) => Batched::Answer(Ok(rows), sent.took),
            // Its own query is decoded with the crate's full type check, and tells what is wrong.
            Err(_) => Batched::Alone { undecoded: true },
        }
    }

    /// The plan's parts this replica takes in a batch now: not sent alone for now, and risky
    /// ones only when proven (none on the `retry`); none when it refused batches lately.
    fn chosen(&self, plan: &batch::Plan, retry: bool) -> Vec<usize> {
        let now = Instant::now();
        let mut learned = self.fixed.learned.lock().expect("learned lock");
        if learned.off(now) {
            return Vec::new();
        }
        let parts: Vec<usize> = (0..plan.parts().len())
            .filter(|&i| {
                let p = &plan.parts()[i];
                match p.risky {
                    true => !retry && learned.proven(p.sql, now),
                    false => !learned.alone(p.sql, now),
                }
            })
            .collect();
        // A batch of one is that query with extra wrapping.
        if parts.len() < 2 {
            return Vec::new();
        }
        parts
    }

    /// Ask a batch: the first (its parts chosen by the round's first waiter) or the `retry`
    /// without the risky parts. A batch that failed with a risky part in it sends those parts
    /// alone for a while instead of counting against batching.
    async fn send_batch(&self, b: &Batch, retry: bool) -> Result<Arc<Sent>, ProbeError> {
        let now = Instant::now();
        let parts = match retry {
            true => self.chosen(&b.plan, true),
            // A wait restarted after the parts gave up on the first batch sends nothing.
            false if b.late.load(Ordering::Acquire) => Vec::new(),
            false => b.chosen.get().cloned().unwrap_or_default(),
        };
        if parts.is_empty() {
            return Ok(Arc::new(Sent {
                parts,
                rows: Vec::new(),
                took: Duration::ZERO,
            }));
        }
        let chosen: Vec<&batch::Part> = parts.iter().map(|&i| &b.plan.parts()[i]).collect();
        let risky: Vec<&'static str> = chosen.iter().filter(|p| p.risky).map(|p| p.sql).collect();
        let (sql, binds) = batch::compose(&chosen);
        // Its own lane: it never queues behind queries that wait on Keeper or a disk.
        let rows = self
            .fetch_alone::<batch::BatchRow>(Lane::Quick, &sql, &binds)
            .await
            .and_then(|rows| batch::split(rows, parts.len()));
        let mut learned = self.fixed.learned.lock().expect("learned lock");
        match rows {
            Ok(rows) => {
                learned.answered();
                let took = now.elapsed();
                Ok(Arc::new(Sent { parts, rows, took }))
            }
            Err(e) => {
                if !batch::ask_alone_after(&e) {
                    // The replica did not answer: nothing learned about the parts.
                } else if risky.is_empty() {
                    learned.refused(Instant::now());
                } else {
                    risky.iter().for_each(|sql| learned.mark_alone(sql, now));
                }
                Err(e)
            }
        }
    }

    /// [`fetch`](Self::fetch) of one query on its own, in `lane`.
    async fn fetch_alone<T>(
        &self,
        lane: Lane,
        sql: &str,
        binds: &[&str],
    ) -> Result<Vec<T>, ProbeError>
    where
        T: RowOwned + RowRead,
    {
        let bare = self.fixed.readonly1.load(Ordering::Relaxed);
        match self.fetch_with::<T>(lane, sql, binds, bare).await {
            // readonly = 1 forbids query settings: ask again without them, and from now on.
            Err(ProbeError::Server { code: 164, .. }) if !bare => {
                self.fixed.readonly1.store(true, Ordering::Relaxed);
                self.fetch_with(lane, sql, binds, true).await
            }
            r => r,
        }
    }

    async fn fetch_with<T>(
        &self,
        lane: Lane,
        sql: &str,
        binds: &[&str],
        bare: bool,
    ) -> Result<Vec<T>, ProbeError>
    where
        T: RowOwned + RowRead,
    {
        let start = Instant::now();
        let trips = self.fixed.trips.load(Ordering::Relaxed);
        let max_rows = self.fixed.budget.limits.rows;
        let client = if bare {
            &self.fixed.bare
        } else {
            &self.fixed.client
        };
        let work = move || async move {
            let mut q = client.query(sql);
            for b in binds {
                q = q.bind(*b);
            }
            let mut cursor = q.fetch::<T>()?;
            let mut rows = Vec::new();
            while let Some(row) = cursor.next().await? {
                if rows.len() as u64 >= max_rows {
                    return Ok(Err(ProbeError::TooLarge {
                        limit: max_rows,
                        unit: "rows",
                    }));
                }
                rows.push(row);
            }
            Ok(Ok(rows))
        };
        self.bounded(lane, move || async move {
            match work().await {
                Ok(r) => r,
                Err(e) => Err(self.map_error(e, start, trips)),
            }
        })
        .await
    }

    /// Run a statement that returns no rows we need, within `limit`.
    pub async fn execute(&self, sql: &str, limit: Duration) -> Result<(), ProbeError> {
        let start = Instant::now();
        let trips = self.fixed.trips.load(Ordering::Relaxed);
        match tokio::time::timeout(limit, self.fixed.client.query(sql).execute()).await {
            Ok(r) => r.map_err(|e| self.map_error(e, start, trips)),
            Err(_) => Err(elapsed(start)),
        }
    }

    /// Like [`fetch`](Self::fetch) without binds, but asked once per client: checks that need the
    /// same rows (backups and blockers both read `system.backups`) share one round trip, and a
    /// concurrent second caller waits for the first answer instead of sending the query again.
    /// A client lives for one check round, so the answers are never stale.
    pub async fn fetch_shared<T>(&self, sql: &'static str) -> Result<Vec<T>, ProbeError>
    where
        T: RowOwned + RowRead + Clone + Send + Sync + 'static,
    {
        let cell = {
            let mut shared = self.shared.lock().expect("shared answers lock");
            shared
                .entry((std::any::TypeId::of::<T>(), sql))
                .or_insert_with(|| Arc::new(tokio::sync::OnceCell::new()))
                .clone()
        };
        let answer = cell
            .get_or_init(|| async {
                self.fetch::<T>(sql, &[])
                    .await
                    .map(|rows| Arc::new(rows) as Arc<dyn std::any::Any + Send + Sync>)
            })
            .await
            .clone()?;
        Ok(answer
            .downcast_ref::<Vec<T>>()
            .expect("keyed by the row type")
            .clone())
    }

    /// Run a statement (a write action) with a chosen `query_id`, within `limit`; its answer is
    /// read and dropped under the same caps.
    pub async fn run(&self, sql: &str, limit: Duration, query_id: &str) -> Result<(), ProbeError> {
        let start = Instant::now();
        let trips = self.fixed.trips.load(Ordering::Relaxed);
        let q = self
            .fixed
            .client
            .query(sql)
            .with_setting("query_id", query_id);
        match tokio::time::timeout(limit, q.execute()).await {
            Ok(r) => r.map_err(|e| self.map_error(e, start, trips)),
            Err(_) => Err(elapsed(start)),
        }
    }

    /// `GET /ping` (expects `Ok.`; reads at most 64 bytes of it), timed, within the deadline.
    pub async fn ping(&self) -> Result<Duration, ProbeError> {
        let start = Instant::now();
        let uri = self
            .fixed
            .ping
            .clone()
            .ok_or_else(|| ProbeError::Local("the replica URL is not a valid URI".into()))?;
        let work = move || async move {
            let req = hyper::Request::get(uri)
                .body(Empty::new())
                .map_err(|e| ProbeError::Local(e.to_string()))?;
            let resp = self
                .fixed
                .http
                .request(req)
                .await
                .map_err(|e| transport_error(&e, start))?;
            let status = resp.status();
            let mut body = resp.into_body();
            let mut got = Vec::new();
            while got.len() <= 64 {
                match body.frame().await {
                    None => break,
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            got.extend_from_slice(d);
                        }
                    }
                    Some(Err(e)) => return Err(transport_error(&e, start)),
                }
            }
            got.truncate(64);
            let text = text::from_bytes(&got);
            if status != hyper::StatusCode::OK {
                return Err(ProbeError::Network(format!(
                    "/ping answered HTTP {}",
                    status.as_u16()
                )));
            }
            if text.trim() != "Ok." {
                return Err(ProbeError::Decode(format!(
                    "/ping answered '{}'",
                    text::clip(&text, 40)
                )));
            }
            Ok(start.elapsed())
        };
        let r = self.bounded(Lane::Ping, work).await;
        self.note(&r);
        r
    }

    /// Map the crate's error; a body cut by the cap shows up as a bare status, so the trip
    /// counter tells it apart.
    fn map_error(&self, e: ChError, start: Instant, trips_before: u64) -> ProbeError {
        let tripped = self.fixed.trips.load(Ordering::Relaxed) != trips_before;
        match map_error(e, start) {
            ProbeError::Server { code: 0, .. } | ProbeError::Network(_) if tripped => {
                ProbeError::TooLarge {
                    limit: self.fixed.budget.limits.error_bytes,
                    unit: "bytes",
                }
            }
            other => other,
        }
    }
}

/// Bytes a connection reads at a time, which is also the most its read buffer holds: body
/// frames share it, so a collected error body pins little beyond its cap, and hundreds of open
/// connections cost little. chops' answers are mostly a few hundred bytes; hyper's adaptive
/// default reserves 8 KiB per connection at its first read (and grew to 16 KiB here), which a card
/// of 300 replicas paid for ~900 connections. A response head must fit in it: ClickHouse's are
/// well under 1 KiB, and a larger one fails the probe as a network error ("message head is too
/// large"), bounded like any other hostile answer.
const READ_AT_ONCE: usize = 4096;

/// A keep-alive pool over capped connections (idle 2 s: below ClickHouse's 3 s keep-alive).
fn pool<B>(c: CappedConnector) -> HyperClient<CappedConnector, B>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(IDLE_PER_SERVER)
        .http1_read_buf_exact_size(READ_AT_ONCE)
        .build(c)
}

fn elapsed(start: Instant) -> ProbeError {
    ProbeError::Timeout {
        after_ms: start.elapsed().as_millis() as u64,
    }
}

/// An I/O error as a probe error: refused, timed out (real elapsed time), too large, or chops'
/// own resource trouble (out of file descriptors), which is never the replica's fault.
pub fn io_error(e: &std::io::Error, start: Instant) -> ProbeError {
    if let Some(t) = capped::too_large(e) {
        return ProbeError::TooLarge {
            limit: t.limit,
            unit: "bytes",
        };
    }
    if let Some(why) = tls::failure(e) {
        return ProbeError::Tls(why);
    }
    if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
        return ProbeError::Local(format!(
            "{e}: raise `ulimit -n` or lower limits.max_in_flight"
        ));
    }
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ProbeError::Refused,
        std::io::ErrorKind::TimedOut => elapsed(start),
        _ => ProbeError::Network(e.to_string()),
    }
}

/// Any transport error: the first I/O error in its source chain decides.
fn transport_error(e: &(dyn std::error::Error + 'static), start: Instant) -> ProbeError {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io_error(io, start);
        }
        if let Some(t) = s.downcast_ref::<capped::TooLarge>() {
            return ProbeError::TooLarge {
                limit: t.limit,
                unit: "bytes",
            };
        }
        src = s.source();
    }
    let msg = e.to_string();
    if msg.to_ascii_lowercase().contains("connection refused") {
        ProbeError::Refused
    } else {
        ProbeError::Network(text::clip(&msg, 300))
    }
}

/// Map the crate's error to a [`ProbeError`]; server exceptions keep their code and name.
pub fn map_error(e: ChError, start: Instant) -> ProbeError {
    match e {
        ChError::BadResponse(text) => server_error(&text),
        ChError::TimedOut => elapsed(start),
        ChError::Network(inner) => transport_error(inner.as_ref(), start),
        other => ProbeError::Decode(text::clip(&first_line(&other.to_string(), 300), 300)),
    }
}

/// Decode a ClickHouse `String` column as text without ever failing (`#[serde(deserialize_with)]`):
/// invalid UTF-8 is kept byte-exact (see [`text::from_bytes`]). The bytes are borrowed from the
/// answer's buffer and copied once, into the `String`.
pub fn lossy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string's bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<String, E> {
            Ok(text_of(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(text_of(v.as_bytes()))
        }
    }
    d.deserialize_bytes(V)
}

/// [`text::from_bytes`], with the common case (valid UTF-8 without a character of the reserved
/// range, which all begin with byte 0xF4) as one copy.
fn text_of(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !v.contains(&0xF4) => s.to_owned(),
        _ => text::from_bytes(v),
    }
}

/// `Code: N. DB::Exception: message (NAME) (version …)` → code, name, message.
pub fn server_error(body: &str) -> ProbeError {
    let body = body.trim();
    let code = body
        .find("Code: ")
        .and_then(|i| body[i + 6..].split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse::<u32>().ok())
        .unwrap_or(0);
    if matches!(code, 516 | 192 | 193 | 194) {
        return ProbeError::Auth { code };
    }
    let mut message = first_line(body, usize::MAX);
    if let Some(i) = message.rfind(" (version ") {
        message.truncate(i);
    }
    let mut name = String::new();
    if message.ends_with(')') {
        if let Some(open) = message.rfind(" (") {
            let candidate = &message[open + 2..message.len() - 1];
            if !candidate.is_empty()
                && candidate
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                name = candidate.to_string();
                message.truncate(open);
            }
        }
    }
    if let Some(rest) = message
        .split_once("DB::Exception: ")
        .map(|(_, r)| r.to_string())
    {
        message = rest;
    }
    ProbeError::Server {
        code,
        name,
        message: text::clip(&message, text::EVIDENCE_MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_errors() {
        let e = server_error("Code: 60. DB::Exception: Unknown table expression identifier 'system.zookeeper'. (UNKNOWN_TABLE) (version 26.9.2.1)\n");
        assert_eq!(
            e,
            ProbeError::Server {
                code: 60,
                name: "UNKNOWN_TABLE".into(),
                message: "Unknown table expression identifier 'system.zookeeper'.".into()
            }
        );
        assert_eq!(
            server_error(
                "Code: 516. DB::Exception: default: Authentication failed (AUTHENTICATION_FAILED)"
            ),
            ProbeError::Auth { code: 516 }
        );
        assert_eq!(server_error("garbage").code(), Some(0));
    }
}
