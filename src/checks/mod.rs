//! The checks of the runbook, one file each (its SQL as named constants, its probe `run` and a
//! pure `evaluate`), and the runner: the [`Cluster`] and its round, which queries every replica and
//! Keeper node concurrently (in-flight capped by the budget), each check under its own deadline.

/// Await several futures of one probe: together, or one after another in `Sequential` mode.
macro_rules! join_in {
    ($mode:expr; $($f:expr),+ $(,)?) => {
        match $mode {
            $crate::checks::Mode::Concurrent => tokio::join!($($f),+),
            $crate::checks::Mode::Sequential => ($($f.await),+),
        }
    };
}

pub mod backups;
pub mod blockers;
pub mod discover;
pub mod flight;
pub mod keeper;
pub mod lag;
pub mod replicas;
pub mod settings;

pub use settings::DatabasesError;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::clickhouse::{RowOwned, RowRead};
use futures_util::future::join_all;
use futures_util::StreamExt;

use crate::clickhouse::batch::{Part, Plan};
use crate::clickhouse::{Budget, ReplicaClient};
use crate::config::ClusterTarget;
use crate::domain::diagnose::{self, CheckResult, Context, ReplicaRef};
use crate::domain::thresholds::Thresholds;
use crate::domain::url::redact;
use crate::domain::{Card, CheckKind, Finding, ProbeError, Scope, Severity, Subject};

/// How probes are scheduled. `Sequential` exists to measure what concurrency buys (the benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Concurrent,
    Sequential,
}

/// A boxed, `Send` future: boxing each probe keeps the compiler's `Send` proof simple.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Await `futs` all at once, or one after another in `Sequential` mode; results keep their order.
async fn gather<T>(mode: Mode, futs: Vec<BoxFut<'_, T>>) -> Vec<T> {
    match mode {
        Mode::Concurrent => join_all(futs).await,
        Mode::Sequential => {
            let mut out = Vec::new();
            for f in futs {
                out.push(f.await);
            }
            out
        }
    }
}

/// A cluster ready to be checked: its replicas resolved to clients.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    /// Name in the servers' remote_servers.
    pub remote_cluster: String,
    pub replicas: Vec<ReplicaClient>,
    pub keeper: Vec<String>,
    pub deadline: Duration,
    pub thresholds: Thresholds,
    pub backup_disk: String,
    pub mode: Mode,
    /// Recent system.backups rows read per replica (1..=20).
    pub backups_limit: usize,
    /// Limits and the in-flight cap shared by every probe of this cluster.
    pub budget: Budget,
    /// Hosts that discovery found but refused to talk to (already display-safe), with why.
    pub rejected: Vec<String>,
}

/// Why a cluster could not even be set up for checking.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot discover cluster '{cluster}': seed {seed} gave no answer ({error})")]
    SeedUnreachable {
        cluster: String,
        seed: String,
        error: ProbeError,
    },
    #[error("cluster '{cluster}' is not in system.clusters on seed {seed}")]
    NotOnSeed { cluster: String, seed: String },
}

impl Cluster {
    /// Resolve the target's replicas: as listed, or discovered from the seed's system.clusters.
    pub async fn connect(t: &ClusterTarget) -> Result<Cluster, SetupError> {
        let budget = Budget::new(t.limits).with_tls(t.tls.clone());
        let client = |name: &str, url: &str, shard: Option<u32>, budget: &Budget| {
            ReplicaClient::new(name, url, shard, &t.user, &t.password, t.deadline, budget)
        };
        let mut rejected = Vec::new();
        let hosts: Vec<(String, String, Option<u32>)> = if !t.replicas.is_empty() {
            t.replicas
                .iter()
                .map(|r| (r.name.clone(), r.url.clone(), r.shard))
                .collect()
        } else {
            let d = t
                .discover
                .as_ref()
                .expect("config validation: replicas or discover");
            let seed = client("seed", &d.seed, None, &budget);
            let rows: Vec<replicas::ClusterRow> = seed
                .fetch(replicas::CLUSTER_SQL, &[&t.remote_cluster])
                .await
                .map_err(|error| SetupError::SeedUnreachable {
                    cluster: t.name.clone(),
                    seed: redact(&d.seed),
                    error,
                })?;
            if rows.is_empty() {
                return Err(SetupError::NotOnSeed {
                    cluster: t.remote_cluster.clone(),
                    seed: redact(&d.seed),
                });
            }
            let found = discover::resolve(&rows, d);
            rejected = found.rejected;
            found
                .hosts
                .into_iter()
                .map(|h| (h.name, h.url, Some(h.shard)))
                .collect()
        };
        let budget = budget.shared_by(hosts.len());
        let replicas = hosts
            .iter()
            .map(|(name, url, shard)| client(name, url, *shard, &budget))
            .collect();
        Ok(Cluster {
            name: t.name.clone(),
            remote_cluster: t.remote_cluster.clone(),
            replicas,
            keeper: t.keeper.clone(),
            deadline: t.deadline,
            thresholds: t.thresholds,
            backup_disk: t.backup_disk.clone(),
            mode: Mode::Concurrent,
            backups_limit: backups::RECENT_LIMIT,
            budget,
            rejected,
        })
    }

    /// The same cluster for a new check round (see [`ReplicaClient::next_round`]).
    pub fn next_round(&self) -> Cluster {
        Cluster {
            replicas: self
                .replicas
                .iter()
                .map(ReplicaClient::next_round)
                .collect(),
            ..self.clone()
        }
    }

    /// Run the scope's checks concurrently and build the card.
    ///
    /// Boxed as `Send`: callers such as the bot's command handlers need a `Send` future, and the
    /// compiler cannot prove it through the iterator closures below on its own.
    pub fn check(&self, scope: Scope) -> BoxFut<'_, Card> {
        Box::pin(self.check_inner(scope, Vec::new()))
    }

    /// The card with `extra` findings added to the backups section (a pasted error's evidence).
    pub fn check_with(&self, scope: Scope, extra: Vec<Finding>) -> BoxFut<'_, Card> {
        Box::pin(self.check_inner(scope, extra))
    }

    async fn check_inner(&self, scope: Scope, extra: Vec<Finding>) -> Card {
        let kinds = scope.kinds();
        let start = Instant::now();
        let now_unix = crate::clock::now() as u64;
        let mut facts = settings::SettingsFacts::default();
        let plan = Arc::new(Plan::new(kinds.iter().flat_map(|k| self.batched(*k))));
        let cl = self.with_plan(&plan);
        let runs: Vec<BoxFut<'_, _>> = kinds
            .iter()
            .copied()
            .map(|k| Box::pin(cl.run_one(k)) as BoxFut<'_, _>)
            .collect();
        let mut results: Vec<CheckResult> = Vec::new();
        for (result, f) in gather(self.mode, runs).await {
            if let Some(f) = f {
                facts = f;
            }
            results.push(result);
        }
        let ctx = Context {
            cluster: self.name.clone(),
            remote_cluster: self.remote_cluster.clone(),
            replicas: self
                .replicas
                .iter()
                .map(|r| ReplicaRef {
                    name: r.name.clone(),
                    shard: r.shard,
                })
                .collect(),
            keeper_nodes: self.keeper.clone(),
            databases: facts.databases,
            backup_disk: self.backup_disk.clone(),
            settings: facts.settings,
            now_unix,
            elapsed_ms: start.elapsed().as_millis() as u64,
        };
        if !extra.is_empty() {
            match results.iter_mut().find(|r| r.check == CheckKind::Backups) {
                Some(r) => r.findings.extend(extra),
                None => results.push(CheckResult {
                    check: CheckKind::Backups,
                    elapsed_ms: 0,
                    findings: extra,
                    slowest: None,
                }),
            }
        }
        diagnose::diagnose(&ctx, scope, results)
    }

    /// The queries of check `kind` that may go to each replica in the round's batch. Those that
    /// read only the server's memory always may; `system.zookeeper` (Keeper) and the settings'
    /// `system.tables` and `system.disks` (a MySQL or PostgreSQL database engine's remote, a hung
    /// disk) are risky parts, batched only once they answered a replica quickly (see
    /// [`crate::clickhouse::batch`]). Lag is never batched: it waits on Keeper for the peer counts
    /// of every replicated table, and its rows could outgrow a batch; nor is the DDL queue, asked
    /// of a few replicas only.
    fn batched(&self, kind: CheckKind) -> Vec<Part> {
        match kind {
            CheckKind::Replicas => replicas::batched(self),
            CheckKind::Blockers => blockers::batched(),
            CheckKind::Backups => backups::batched(),
            CheckKind::Keeper => keeper::batched(),
            CheckKind::Settings => settings::batched(self),
            CheckKind::Lag => Vec::new(),
        }
    }

    /// The same cluster, its replicas' queries in `plan` asked in one batch each.
    fn with_plan(&self, plan: &Arc<Plan>) -> Cluster {
        Cluster {
            replicas: self.replicas.iter().map(|r| r.with_plan(plan)).collect(),
            ..self.clone()
        }
    }

    /// One check under its deadline: every probe of it ends by `start + deadline` (a replica
    /// that hangs answers "timed out" while the others' answers are kept); the backstop, with slack
    /// for evaluating what came in, only fires if the process itself is starved.
    async fn run_one(&self, kind: CheckKind) -> (CheckResult, Option<settings::SettingsFacts>) {
        let start = Instant::now();
        let round_end = tokio::time::Instant::now() + self.deadline;
        let backstop = self.deadline + (self.deadline / 10).max(Duration::from_millis(250));
        let work = async {
            match kind {
                CheckKind::Keeper => (keeper::run(self).await, None),
                CheckKind::Replicas => (replicas::run(self).await, None),
                CheckKind::Lag => (lag::run(self).await, None),
                CheckKind::Blockers => (blockers::run(self).await, None),
                CheckKind::Backups => (backups::run(self).await, None),
                CheckKind::Settings => {
                    let (f, facts) = settings::run(self).await;
                    (f, Some(facts))
                }
            }
        };
        // The probes of this check note their times in a task-local slot (they are all polled by
        // this task), so the card can say which replica made the check slow.
        let measured = SLOWEST.scope(std::cell::RefCell::new(None), async {
            let out = tokio::time::timeout(backstop, crate::clock::round(round_end, work)).await;
            (out, SLOWEST.with(|s| s.borrow().clone()))
        });
        let (out, slowest) = measured.await;
        let (findings, facts) = out.unwrap_or_else(|_| {
            let f = Finding::new(
                kind,
                Severity::Unknown,
                Subject::Cluster,
                format!(
                    "{} check: no answer within {} ms",
                    kind.name(),
                    backstop.as_millis()
                ),
            );
            (vec![f], None)
        });
        (
            CheckResult {
                check: kind,
                elapsed_ms: start.elapsed().as_millis() as u64,
                findings,
                slowest,
            },
            facts,
        )
    }

    /// `f` on every replica, results in replica order. Concurrently, at most `max_in_flight`
    /// replica probes exist at once (made as earlier ones finish), so a 10,000-replica cluster
    /// costs memory for a few hundred, not for all.
    async fn per_replica<T: Send + 'static, F, Fut>(&self, f: F) -> Vec<T>
    where
        F: Fn(ReplicaClient) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        match self.mode {
            Mode::Concurrent => {
                futures_util::stream::iter(self.replicas.iter().cloned())
                    .map(|c| Box::pin(timed(c.name.clone(), f(c))) as BoxFut<'static, T>)
                    .buffered(self.budget.limits.in_flight.max(1))
                    .collect()
                    .await
            }
            Mode::Sequential => {
                let mut out = Vec::with_capacity(self.replicas.len());
                for c in self.replicas.iter().cloned() {
                    out.push(timed(c.name.clone(), f(c)).await);
                }
                out
            }
        }
    }
}

tokio::task_local! {
    /// The slowest probe of the check running in this task: (replica or node, ms).
    static SLOWEST: std::cell::RefCell<Option<(String, u64)>>;
}

/// Run `fut` (all of one replica's or node's probes for a check) and note its time.
async fn timed<T>(name: String, fut: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = fut.await;
    let ms = start.elapsed().as_millis() as u64;
    let _ = SLOWEST.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().is_none_or(|(_, m)| ms > *m) {
            *s = Some((name, ms));
        }
    });
    out
}

/// One query without binds, as a probe's rows.
async fn fetch<T: RowOwned + RowRead>(c: &ReplicaClient, sql: &str) -> Result<Vec<T>, ProbeError> {
    c.fetch(sql, &[]).await
}
