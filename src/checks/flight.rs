//! Single-flight check rounds: a storm (fifty `/backup-check`s, fifty alerts for one cluster) runs
//! one probe round per cluster, scope and tuning at a time; callers that arrive while it runs, or
//! within [`SHARE_FOR`] after it ended, get the same card. Also keeps each resolved cluster (its
//! replicas and keep-alive pools) for [`CLUSTER_TTL`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OnceCell};

use super::{Cluster, SetupError};
use crate::config::ClusterTarget;
use crate::domain::{Card, Scope};

/// How long a finished round's card answers later callers. Short: a card is about now.
pub const SHARE_FOR: Duration = Duration::from_secs(5);

/// How long a resolved cluster is reused before it is resolved again (discovery may change).
pub const CLUSTER_TTL: Duration = Duration::from_secs(300);

/// Per-command adjustments of a round (they make a different card, so a different flight).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tuning {
    /// Report tables delayed more than this many seconds (`/lag min_delay`).
    pub min_delay: Option<u64>,
    /// Rows per replica of `system.backups` (1–20).
    pub backups_limit: Option<u64>,
}

/// What one round gave: the card, or why the cluster could not be checked (display-safe text).
pub type RoundResult = Result<Arc<Card>, Arc<SetupError>>;

struct Flight {
    cell: OnceCell<(Instant, RoundResult)>,
}

type Key = (String, &'static str, Tuning);

/// A cluster as last resolved, and when.
type Slot = Arc<Mutex<Option<(Instant, Cluster)>>>;

#[derive(Default)]
pub struct Flights {
    /// One slot per cluster: resolving one (a seed that times out) holds up no other.
    clusters: std::sync::Mutex<HashMap<String, Slot>>,
    rounds: std::sync::Mutex<HashMap<Key, Arc<Flight>>>,
}

/// After a failed re-resolution, the last good replica list is used and resolving is tried
/// again after this long.
const RETRY_RESOLVE: Duration = Duration::from_secs(30);

impl Flights {
    /// `target` ready for a round: resolved once, then reused (fresh round state, same pools).
    /// When resolving again fails (discovery's seed down), the replicas known before are used:
    /// they are still the best guess, and the watcher keeps watching them.
    pub async fn cluster(&self, target: &ClusterTarget) -> Result<Cluster, SetupError> {
        let slot = self
            .clusters
            .lock()
            .expect("clusters lock")
            .entry(target.name.clone())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some((at, cl)) = &*slot {
            if at.elapsed() < CLUSTER_TTL {
                return Ok(cl.next_round());
            }
        }
        match Cluster::connect(target).await {
            Ok(cl) => {
                *slot = Some((Instant::now(), cl.clone()));
                Ok(cl)
            }
            Err(e) => match slot.as_mut() {
                Some((at, cl)) => {
                    tracing::warn!(cluster = %crate::domain::display::plain(&target.name),
                        error = %crate::domain::display::plain(&e.to_string()),
                        "cannot resolve the cluster again; using the replicas known before");
                    *at = Instant::now()
                        .checked_sub(CLUSTER_TTL - RETRY_RESOLVE)
                        .unwrap_or_else(Instant::now);
                    Ok(cl.next_round())
                }
                None => Err(e),
            },
        }
    }

    /// The card of `scope` on `target`: from the round in flight or one that ended less than
    /// [`SHARE_FOR`] ago, else from a new round. A caller that gives up (its future dropped)
    /// leaves the round to the others: the next waiter runs it.
    pub async fn card(&self, target: &ClusterTarget, scope: Scope, tuning: Tuning) -> RoundResult {
        let key: Key = (target.name.clone(), scope.name(), tuning);
        let flight = {
            let mut rounds = self.rounds.lock().expect("flights lock");
            // Done rounds answer for SHARE_FOR; an unfinished one only while someone waits on
            // it (a caller that gave up leaves no entry behind).
            rounds.retain(|_, f| match f.cell.get() {
                Some((done, _)) => done.elapsed() < SHARE_FOR,
                None => Arc::strong_count(f) > 1,
            });
            rounds
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(Flight {
                        cell: OnceCell::new(),
                    })
                })
                .clone()
        };
        let mut ran = false;
        let (_, result) = flight
            .cell
            .get_or_init(|| {
                ran = true;
                self.round(target, scope, tuning)
            })
            .await;
        crate::metrics::get().check_round(scope.name(), !ran);
        result.clone()
    }

    async fn round(
        &self,
        target: &ClusterTarget,
        scope: Scope,
        tuning: Tuning,
    ) -> (Instant, RoundResult) {
        let result = match self.cluster(target).await {
            Ok(mut cl) => {
                if let Some(d) = tuning.min_delay {
                    let l = &mut cl.thresholds.delay_secs;
                    l.moderate = d;
                    l.major = l.major.max(d + 1);
                    l.critical = l.critical.max(l.major + 1);
                }
                if let Some(n) = tuning.backups_limit {
                    cl.backups_limit = n.clamp(1, 20) as usize;
                }
                let card = cl.check(scope).await;
                let m = crate::metrics::get();
                for s in &card.sections {
                    m.check_section(s.check.name(), s.elapsed_ms);
                }
                Ok(Arc::new(card))
            }
            Err(e) => Err(Arc::new(e)),
        };
        (Instant::now(), result)
    }
}
