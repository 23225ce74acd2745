//! Finishing the records of actions whose process is gone. An action left `executing` is touched
//! only once its claim can be taken — its owner ended, however it ended (see `store::Claim`); a
//! live owner's action is never looked at. Its real end is then learned (a backup looked up by its
//! id, a restart in the server's query log) and recorded with an outcome row. One whose end cannot
//! be learned yet (still running, its replica not answering, the query log not flushed) is left as
//! it is for a later start: a record is never made `failed` while its outcome can still be learned.
//!
//! Each action is looked at on its own, alongside the caller's own work and within a deadline, so
//! a hung replica of an old action holds up neither the others nor anything new.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::backup::{self, Until};
use super::{restart_replica, Actor, Ending, FlowError, Outcome, Planned};
use crate::clock::now;
use crate::domain::action::Action;
use crate::domain::display;
use crate::store::{Confirmation, ConfirmationState, FinalState};

/// How long `chops act` looks for the ends of earlier actions (at most; it stops sooner once its
/// own action is done, after one look at each).
pub const RECONCILE_WITHIN: Duration = Duration::from_secs(20);

/// The bot, a long-lived process, follows an earlier backup for as long as its lock lasts.
const BOT_WITHIN: Duration = Duration::from_secs(6 * 3600);

impl Actor<'_> {
    /// After a start of the bot: every action of this cluster whose process is gone, each
    /// followed to its end (for up to 6 h). Returns what was recorded.
    pub async fn reconcile(&self) -> Result<Vec<Outcome>, FlowError> {
        let (_never, stop) = watch::channel(false);
        self.reconcile_until(Instant::now() + BOT_WITHIN, stop)
            .await
    }

    /// Runs `work` with the reconciliation of earlier actions alongside it (never before it):
    /// each such action is looked at at least once, then again while `work` runs, until `work` is
    /// done or `within` has passed. Returns `work`'s result and what was recorded.
    pub async fn alongside<T>(
        &self,
        within: Duration,
        work: impl Future<Output = T>,
    ) -> (T, Vec<Outcome>) {
        let (tx, rx) = watch::channel(false);
        let work = async {
            let t = work.await;
            let _ = tx.send(true);
            t
        };
        let (t, recorded) = tokio::join!(work, self.reconcile_until(Instant::now() + within, rx));
        let recorded = recorded.unwrap_or_else(|e| {
            let e = display::plain(&e.to_string());
            tracing::warn!(error = %e, "could not look for unfinished actions");
            Vec::new()
        });
        (t, recorded)
    }

    async fn reconcile_until(
        &self,
        deadline: Instant,
        stop: watch::Receiver<bool>,
    ) -> Result<Vec<Outcome>, FlowError> {
        let rows: Vec<Confirmation> = self
            .store
            .unfinished()
            .await?
            .into_iter()
            .filter(|c| c.cluster == self.cluster.name)
            .collect();
        let each = rows
            .iter()
            .map(|c| self.reconcile_one(c, deadline, stop.clone()));
        let mut out = Vec::new();
        for r in futures_util::future::join_all(each).await {
            match r {
                Ok(Some(o)) => out.push(o),
                Ok(None) => {}
                Err(e) => {
                    let e = display::plain(&e.to_string());
                    tracing::warn!(error = %e, "could not finish an earlier action's record");
                }
            }
        }
        Ok(out)
    }

    /// One action left `executing`: None when its owner still runs it, or its end cannot be
    /// learned yet.
    async fn reconcile_one(
        &self,
        conf: &Confirmation,
        deadline: Instant,
        stop: watch::Receiver<bool>,
    ) -> Result<Option<Outcome>, FlowError> {
        let Some(claim) = self.store.try_claim(&conf.id)? else {
            return Ok(None);
        };
        // Read again under the claim: its owner may have recorded its end and gone meanwhile.
        let Some(conf) = self
            .store
            .confirmation(&conf.id)
            .await?
            .filter(|c| c.state == ConfirmationState::Executing)
        else {
            return Ok(None);
        };
        let started = Instant::now();
        let Some(ending) = self.learn(&conf, deadline, stop).await? else {
            return Ok(None);
        };
        let state = ending.state;
        let outcome = self.end(&conf, ending, started).await?;
        if let Some((key, owner)) = self.own_lock(&conf).await? {
            if matches!(state, FinalState::Succeeded | FinalState::Failed) {
                self.cool_down(&key).await?;
            }
            self.store.unlock(&key, &owner).await?;
        }
        drop(claim);
        Ok(Some(outcome))
    }

    /// How it ended, if that can be known now.
    async fn learn(
        &self,
        conf: &Confirmation,
        deadline: Instant,
        stop: watch::Receiver<bool>,
    ) -> Result<Option<Ending>, FlowError> {
        let failed = |why: String| Ok(Some(Ending::new(FinalState::Failed, why)));
        let Ok(planned) = serde_json::from_str::<Planned>(&conf.action_json) else {
            return failed("after a restart of chops: the action cannot be read back".into());
        };
        let action = &planned.action;
        let Some(sent_at) = self.store.audit_time(&conf.id, "executing").await? else {
            return failed(
                "after a restart of chops: its process stopped before it sent anything; nothing ran"
                    .into(),
            );
        };
        let Ok(replica) = self.replica(action.replica()) else {
            return failed(format!(
                "after a restart of chops: {} is no longer in the cluster; look at it by hand",
                action.replica()
            ));
        };
        let qid = format!("chops-{}", conf.id);
        Ok(match action {
            Action::BackupReplica { .. } => {
                let until = Until {
                    deadline: Some(deadline),
                    stop: Some(stop),
                };
                backup::reconcile(replica, &planned, &qid, self.follow_every, until).await
            }
            Action::RestartReplica { .. } => {
                restart_replica::reconcile(replica, action, &qid, now() - sent_at).await
            }
        })
    }

    /// The target lock (key, owner) when it is this action's (expired or not).
    async fn own_lock(&self, conf: &Confirmation) -> Result<Option<(String, String)>, FlowError> {
        let key = conf.action_key.clone();
        let held: Option<String> = self
            .store
            .call(move |c| {
                use rusqlite::OptionalExtension;
                c.query_row("SELECT owner FROM locks WHERE target = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()
            })
            .await?;
        let mine = held.filter(|o| o.split('@').next() == Some(conf.id.as_str()));
        Ok(mine.map(|o| (conf.action_key.clone(), o)))
    }
}
