//! Remediation, one file per action (`backup`, `restart_replica`: plan, execute, follow) and the
//! flow every entry point shares (Discord buttons and commands, `chops act`):
//!
//! request → guard (role, live preconditions) → preview + confirmation row → confirm (single use,
//! requester only, approval when two-person) → re-check with fresh probes → lock → audit intent →
//! execute as the operator → follow → re-check → audit outcome → cooldown, unlock.
//!
//! The store decides what must be exclusive (confirm, lock) in one SQL statement each, so any
//! number of processes can share it.

pub mod backup;
pub mod offer;
pub mod restart_replica;

use std::time::Duration;

use crate::clock::now;

use crate::checks::settings::NameRow;
use crate::checks::Cluster;
use crate::clickhouse::ReplicaClient;
use crate::config::Secret;
use crate::domain::action::Action;
use crate::domain::guard::{self, ActRefusal, Policy, Precondition, Requester, Snapshot};
use crate::domain::ProbeError;
use crate::store::{
    AuditRow, Confirmation, ConfirmationState, FinalState, NewConfirmation, Store, StoreError,
    Transition,
};

/// Every audit row counts in `chops_actions_total{kind, outcome}` (kind: the key's first part).
fn count_action(action_key: &str, decision: &str) {
    let kind = action_key.split(':').next().unwrap_or("unknown");
    crate::metrics::get().action(kind, decision);
}

/// What an action needs: the cluster (read-only clients for the probes), the operator account,
/// the policy and the store.
pub struct Actor<'a> {
    pub cluster: &'a Cluster,
    pub operator: Option<(String, Secret)>,
    pub policy: &'a Policy,
    pub store: &'a Store,
    /// How often a running backup is looked at.
    pub follow_every: Duration,
}

/// Why the flow stopped before anything ran. Shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{0}")]
    Refused(ActRefusal),
    #[error("{0}")]
    User(String),
    #[error("the action store failed: {0}")]
    Store(#[from] StoreError),
}

/// An action with its exact statement, fixed when it is requested: the preview shows what will
/// run, byte for byte, and the confirmation row keeps it (as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Planned {
    pub action: Action,
    pub statement: String,
    /// A backup's id in `system.backups` (chosen by chops: its name on the disk).
    pub backup_id: Option<String>,
}

impl Planned {
    pub fn new(action: Action, now: i64) -> Planned {
        match &action {
            Action::BackupReplica { .. } => {
                let name = crate::domain::sql::backup_name(
                    action.cluster(),
                    action.replica(),
                    &crate::domain::time::compact(now.max(0) as u64),
                );
                Planned {
                    statement: action.sql_with_id(&name, &name),
                    backup_id: Some(name),
                    action,
                }
            }
            Action::RestartReplica { .. } => Planned {
                statement: restart_replica::plan(&action),
                backup_id: None,
                action,
            },
        }
    }
}

/// What the preview shows before anyone confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub id: String,
    pub action: Action,
    pub sql: String,
    pub effect: String,
    pub checks: Vec<Precondition>,
    pub requester: String,
    pub needs_approval: bool,
    pub dry_run: bool,
    pub expires_at: i64,
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: String,
    pub state: FinalState,
    /// One line: what happened.
    pub summary: String,
    /// Before → after of the re-check.
    pub details: Vec<String>,
    pub query_id: Option<String>,
}

impl Outcome {
    pub fn state_label(&self) -> &'static str {
        match self.state {
            FinalState::Succeeded => "succeeded",
            FinalState::Failed => "failed",
            FinalState::Refused => "refused",
            FinalState::DryRun => "dry run",
        }
    }
}

/// Progress of a running action, for whoever shows it.
pub type OnProgress<'p> = &'p mut (dyn FnMut(&str) + Send);

impl Actor<'_> {
    fn replica(&self, name: &str) -> Result<&ReplicaClient, FlowError> {
        self.cluster
            .replicas
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| {
                FlowError::User(format!(
                    "No replica '{}' in cluster {}.",
                    crate::domain::text::clip(name, 100),
                    self.cluster.name
                ))
            })
    }

    /// The same replica, as the operator account (only write actions use it).
    fn operator_client(&self, replica: &ReplicaClient) -> Result<ReplicaClient, FlowError> {
        let (user, password) = self.operator.as_ref().ok_or_else(|| {
            FlowError::Refused(ActRefusal::NotEnabled {
                cluster: self.cluster.name.clone(),
            })
        })?;
        Ok(ReplicaClient::new(
            &replica.name,
            &replica.url,
            replica.shard,
            user,
            password,
            replica.deadline(),
            &self.cluster.budget,
        ))
    }

    /// Fresh probes of everything the guard looks at (read-only account).
    pub async fn snapshot(&self, planned: &Planned, now: i64) -> Result<Snapshot, FlowError> {
        let action = &planned.action;
        let c = self.replica(action.replica())?;
        let key = action.key();
        let held: Option<String> = self
            .store
            .call(move |c| {
                use rusqlite::OptionalExtension;
                c.query_row(
                    "SELECT owner FROM locks WHERE target = ?1 AND expires_at > ?2",
                    rusqlite::params![key, now],
                    |r| r.get(0),
                )
                .optional()
            })
            .await?;
        let mut s = probe(
            c,
            planned,
            &self.cluster.keeper,
            self.cluster.deadline,
            &self.cluster.budget,
        )
        .await;
        s.cooldown_until = self.store.cooldown_until(&action.key(), now).await?;
        s.locked_by = held.map(|o| o.split('@').next().unwrap_or(&o).to_string());
        Ok(s)
    }

    /// Start the flow: the requester's role, then a preview with live preconditions and a
    /// confirmation row. A refusal is audited too.
    pub async fn request(
        &self,
        action: Action,
        who: &Requester,
        place: &str,
        dry_run: bool,
    ) -> Result<Preview, FlowError> {
        let now = now();
        self.replica(action.replica())?;
        let planned = Planned::new(action.clone(), now);
        let sql = planned.statement.clone();
        let dry_run = dry_run || self.policy.dry_run;
        let id_hint = format!("{}-{now}", action.key());
        // A terminal has no second person: two-person kinds are Discord-only.
        if matches!(who, Requester::Cli { .. }) && self.policy.two_person.contains(&action.kind()) {
            let refusal = ActRefusal::Precondition(format!(
                "{} actions on {} need a second member's approval: request it in Discord",
                action.kind().name(),
                action.cluster()
            ));
            return Err(self
                .refuse(&id_hint, &action, &sql, who, place, refusal)
                .await);
        }
        let role_ok = self.policy.enabled() && self.policy.allows(action.kind(), who);
        if !role_ok {
            let refusal = guard::may_act(&action, &Snapshot::unprobed(), self.policy, who, now)
                .expect_err("role refused");
            return Err(self
                .refuse(&id_hint, &action, &sql, who, place, refusal)
                .await);
        }
        let snap = self.snapshot(&planned, now).await?;
        // Typed names must exist on the server: otherwise no preview (and no SQL) at all.
        let missing = match &action {
            Action::RestartReplica {
                database,
                table,
                replica,
                ..
            } if snap.replica.is_ok() && snap.table.is_none() => Some(format!(
                "{database}.{table} is not a Replicated table on {replica}"
            )),
            Action::BackupReplica { replica, .. }
                if snap.replica.is_ok() && !snap.missing_databases.is_empty() =>
            {
                Some(format!(
                    "{replica} has no database {}",
                    snap.missing_databases.join(", ")
                ))
            }
            _ => None,
        };
        if let Some(why) = missing {
            let refusal = ActRefusal::Precondition(why);
            return Err(self
                .refuse(&id_hint, &action, &sql, who, place, refusal)
                .await);
        }
        let checks = guard::preconditions(&action, &snap, now);
        let needs_approval = self.policy.needs_approval(action.kind(), who);
        let (requester_id, requester_name) = ids(who);
        let expires_at = now + self.policy.confirm_ttl_secs;
        let id = self
            .store
            .create_confirmation(NewConfirmation {
                action_key: action.key(),
                action_json: serde_json::to_string(&planned).expect("a plan serialises"),
                cluster: action.cluster().to_string(),
                replica: action.replica().to_string(),
                sql: sql.clone(),
                requester_id,
                requester_name: requester_name.clone(),
                place: place.to_string(),
                two_person: needs_approval,
                dry_run,
                created_at: now,
                expires_at,
            })
            .await?;
        self.audit(
            &id,
            &action,
            &sql,
            who,
            None,
            place,
            "requested",
            None,
            None,
            None,
            None,
        )
        .await?;
        Ok(Preview {
            effect: action.effect(),
            id,
            action,
            sql,
            checks,
            requester: requester_name,
            needs_approval,
            dry_run,
            expires_at,
        })
    }

    /// Audit a refusal that came before any confirmation row, and hand it back as the error.
    async fn refuse(
        &self,
        id: &str,
        action: &Action,
        sql: &str,
        who: &Requester,
        place: &str,
        refusal: ActRefusal,
    ) -> FlowError {
        let reason = Some(refusal.to_string());
        let audited = self
            .audit(
                id, action, sql, who, None, place, "refused", reason, None, None, None,
            )
            .await;
        match audited {
            Ok(()) => FlowError::Refused(refusal),
            Err(e) => e,
        }
    }

    /// A second member approves (two-person rule).
    pub async fn approve(&self, id: &str, who: &Requester) -> Result<Transition, FlowError> {
        if !self.policy.may_approve(who) {
            return Err(FlowError::User(
                "Only members with an approver role can approve.".into(),
            ));
        }
        let (uid, name) = ids(who);
        let t = self.store.approve(id, uid, &name, now()).await?;
        if t == Transition::Done {
            if let Some(c) = self.store.confirmation(id).await? {
                self.audit_conf(&c, "approved", None, None, None, None)
                    .await?;
            }
        }
        Ok(t)
    }

    /// The requester cancels.
    pub async fn cancel(&self, id: &str, who: &Requester) -> Result<Transition, FlowError> {
        let (uid, _) = ids(who);
        let t = self.store.cancel(id, uid, now()).await?;
        if t == Transition::Done {
            if let Some(c) = self.store.confirmation(id).await? {
                self.audit_conf(&c, "cancelled", None, None, None, None)
                    .await?;
            }
        }
        Ok(t)
    }

    /// Confirm and run. Returns the transition when the click did not start the action
    /// (wrong clicker, expired, replayed …), else the outcome.
    pub async fn confirm(
        &self,
        id: &str,
        who: &Requester,
        progress: OnProgress<'_>,
    ) -> Result<Result<Outcome, Transition>, FlowError> {
        let (uid, _) = ids(who);
        let t = self.store.confirm(id, uid, now()).await?;
        let conf = self.store.confirmation(id).await?;
        if t != Transition::Done {
            if let (Transition::Expired, Some(c)) = (t, &conf) {
                self.audit_conf(c, "expired", None, None, None, None)
                    .await?;
            }
            return Ok(Err(t));
        }
        let conf = conf.ok_or_else(|| FlowError::User("This action is unknown.".into()))?;
        self.audit_conf(&conf, "confirmed", None, None, None, None)
            .await?;
        self.run(&conf, who, progress).await.map(Ok)
    }

    /// From a confirmed row to the outcome: re-check, lock, intent, execute, follow, outcome.
    /// From a confirmed row to its end. Whatever fails on the way, the row does not stay
    /// `executing`: the error becomes its outcome.
    async fn run(
        &self,
        conf: &Confirmation,
        who: &Requester,
        progress: OnProgress<'_>,
    ) -> Result<Outcome, FlowError> {
        let started = std::time::Instant::now();
        match self.run_inner(conf, who, progress, started).await {
            Ok(o) => Ok(o),
            Err(e) => {
                let why = format!("stopped before an outcome: {e}");
                self.end(
                    conf,
                    FinalState::Failed,
                    "failed",
                    why,
                    vec![],
                    None,
                    started,
                )
                .await
            }
        }
    }

    async fn run_inner(
        &self,
        conf: &Confirmation,
        who: &Requester,
        progress: OnProgress<'_>,
        started: std::time::Instant,
    ) -> Result<Outcome, FlowError> {
        let planned: Planned = serde_json::from_str(&conf.action_json)
            .map_err(|e| FlowError::User(format!("This action cannot be read back ({e}).")))?;
        let action = planned.action.clone();
        let now = now();
        let target = action.key();
        let ttl = match action {
            Action::BackupReplica { .. } => 6 * 3600,
            Action::RestartReplica { .. } => 600,
        };
        // The lock first, then the re-check under it: two confirmations of the same target can
        // never both pass the checks. The owner names this process, so a later start can tell a
        // live action from one whose process died.
        let owner = lock_owner(&conf.id);
        if let Err(held) = self.store.try_lock(&target, &owner, now, ttl).await? {
            let by = held
                .owner
                .split('@')
                .next()
                .unwrap_or(&held.owner)
                .to_string();
            let why = format!("already running — see action {by}");
            return self
                .end(
                    conf,
                    FinalState::Refused,
                    "refused",
                    why,
                    vec![],
                    None,
                    started,
                )
                .await;
        }
        let result = self
            .checked(conf, &planned, who, progress, started, now)
            .await;
        // The cooldown starts before the lock goes, so no one slips in between.
        let ran = matches!(&result, Ok(o) if matches!(o.state, FinalState::Succeeded | FinalState::Failed));
        if ran && self.policy.cooldown_secs > 0 {
            self.store
                .set_cooldown(&target, now + self.policy.cooldown_secs)
                .await?;
        }
        self.store.unlock(&target, &owner).await?;
        result
    }

    /// Under the lock: things change between the preview and the click, so decide again on
    /// fresh probes, then run.
    async fn checked(
        &self,
        conf: &Confirmation,
        planned: &Planned,
        who: &Requester,
        progress: OnProgress<'_>,
        started: std::time::Instant,
        now: i64,
    ) -> Result<Outcome, FlowError> {
        let mut snap = self.snapshot(planned, now).await?;
        snap.locked_by = None; // the lock is ours
        if let Err(refusal) = guard::may_act(&planned.action, &snap, self.policy, who, now) {
            return self
                .end(
                    conf,
                    FinalState::Refused,
                    "refused",
                    refusal.to_string(),
                    vec![],
                    None,
                    started,
                )
                .await;
        }
        self.locked(conf, planned, progress, started).await
    }

    async fn locked(
        &self,
        conf: &Confirmation,
        planned: &Planned,
        progress: OnProgress<'_>,
        started: std::time::Instant,
    ) -> Result<Outcome, FlowError> {
        let action = &planned.action;
        let replica = self.replica(action.replica())?;
        let query_id = format!("chops-{}", conf.id);
        let statement = planned.statement.clone();
        // A dry run sends nothing and so writes no intent: its record is the dry-run row.
        if conf.dry_run {
            return self
                .end(
                    conf,
                    FinalState::DryRun,
                    "dry-run",
                    format!("dry run: would run on {}: {statement}", action.replica()),
                    vec![],
                    None,
                    started,
                )
                .await;
        }
        let op = self.operator_client(replica)?;
        // The intent row comes first: a crash after this leaves a trace to reconcile.
        self.audit_conf(
            conf,
            "executing",
            None,
            Some(&statement),
            Some(&query_id),
            None,
        )
        .await?;
        let sent = std::time::Instant::now();
        match action {
            Action::BackupReplica { .. } => {
                // Only the server's own refusal means it did not start: after a timeout or a
                // dropped connection it may well run, so it is followed by its id.
                if let Err(e @ (ProbeError::Server { .. } | ProbeError::Auth { .. })) =
                    backup::execute(&op, &statement, &query_id).await
                {
                    let why = format!("the server refused: {e}");
                    return self
                        .end(
                            conf,
                            FinalState::Failed,
                            "failed",
                            why,
                            vec![],
                            Some(query_id),
                            started,
                        )
                        .await;
                }
                progress(&format!("started on {}", action.replica()));
                let id = planned.backup_id.as_deref().unwrap_or_default();
                let (state, summary) = self.follow_backup(replica, id, Some(sent), progress).await;
                let decision = if state == FinalState::Succeeded {
                    "succeeded"
                } else {
                    "failed"
                };
                self.end(
                    conf,
                    state,
                    decision,
                    summary,
                    vec![],
                    Some(query_id),
                    started,
                )
                .await
            }
            Action::RestartReplica {
                database, table, ..
            } => {
                let before = restart_replica::look(replica, database, table)
                    .await
                    .ok()
                    .flatten();
                progress(&format!(
                    "restarting {database}.{table} on {}",
                    action.replica()
                ));
                let r = restart_replica::execute(&op, &statement, &query_id).await;
                let after = restart_replica::look(replica, database, table)
                    .await
                    .ok()
                    .flatten();
                let details = vec![restart_replica::before_after(
                    action,
                    before.as_ref(),
                    after.as_ref(),
                )];
                match r {
                    Ok(()) => {
                        let summary =
                            format!("{database}.{table} restarted on {}", action.replica());
                        self.end(
                            conf,
                            FinalState::Succeeded,
                            "succeeded",
                            summary,
                            details,
                            Some(query_id),
                            started,
                        )
                        .await
                    }
                    Err(e) => {
                        let summary = format!("SYSTEM RESTART REPLICA failed: {e}");
                        self.end(
                            conf,
                            FinalState::Failed,
                            "failed",
                            summary,
                            details,
                            Some(query_id),
                            started,
                        )
                        .await
                    }
                }
            }
        }
    }

    /// Look at the backup's row until it ends; (final state, one line).
    async fn follow_backup(
        &self,
        replica: &ReplicaClient,
        id: &str,
        sent: Option<std::time::Instant>,
        progress: OnProgress<'_>,
    ) -> (FinalState, String) {
        let mut misses = 0;
        // Look soon, then less often: a small backup ends in a second, a big one takes hours.
        let mut wait = Duration::from_millis(200);
        loop {
            let look = backup::look(replica, id).await;
            if look.is_ok() {
                misses = 0;
            }
            match look {
                Ok(backup::Followed::Running(p)) => progress(&p.line()),
                Ok(backup::Followed::Created(p)) => {
                    return (
                        FinalState::Succeeded,
                        format!("backup created on {}: {}", replica.name, p.line()),
                    )
                }
                Ok(backup::Followed::Failed {
                    status,
                    error,
                    meaning,
                }) => {
                    return (
                        FinalState::Failed,
                        format!("{status} on {}: {error} ({meaning})", replica.name),
                    )
                }
                Ok(backup::Followed::Lost { uptime_secs }) => {
                    let since = sent.map(|t| t.elapsed().as_secs());
                    let why = match (uptime_secs, since) {
                        (Some(u), Some(since)) if u < since => format!("{} has no row for it and has been up only {u} s: the server restarted, and system.backups is in memory — look for the backup on the disk", replica.name),
                        (Some(u), None) => format!("{} has no row for it (up {u} s): system.backups is in memory, so a restart of the server forgets it — look for the backup on the disk", replica.name),
                        _ => format!("{} has no row for it in system.backups", replica.name),
                    };
                    return (FinalState::Failed, why);
                }
                Err(e) => {
                    // A replica that stops answering while it backs up: say so, keep looking a while.
                    misses += 1;
                    progress(&format!("no answer from {} ({e})", replica.name));
                    if misses >= 20 {
                        return (
                            FinalState::Failed,
                            format!(
                                "lost sight of the backup: {} stopped answering ({e})",
                                replica.name
                            ),
                        );
                    }
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.follow_every);
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn end(
        &self,
        conf: &Confirmation,
        state: FinalState,
        decision: &str,
        summary: String,
        details: Vec<String>,
        query_id: Option<String>,
        started: std::time::Instant,
    ) -> Result<Outcome, FlowError> {
        let ms = started.elapsed().as_millis() as i64;
        let outcome = if details.is_empty() {
            summary.clone()
        } else {
            format!("{summary}; {}", details.join("; "))
        };
        self.audit_conf(
            conf,
            decision,
            Some(outcome),
            None,
            query_id.as_deref(),
            Some(ms),
        )
        .await?;
        self.store.finish(&conf.id, state).await?;
        Ok(Outcome {
            id: conf.id.clone(),
            state,
            summary,
            details,
            query_id,
        })
    }

    async fn audit_conf(
        &self,
        c: &Confirmation,
        decision: &str,
        outcome: Option<String>,
        sql: Option<&str>,
        query_id: Option<&str>,
        duration_ms: Option<i64>,
    ) -> Result<(), FlowError> {
        count_action(&c.action_key, decision);
        let (reason, outcome) = if decision == "refused" {
            (outcome, None)
        } else {
            (None, outcome)
        };
        self.store
            .audit(AuditRow {
                action_id: c.id.clone(),
                time: now(),
                cluster: c.cluster.clone(),
                replica: c.replica.clone(),
                action_key: c.action_key.clone(),
                sql: sql.unwrap_or(&c.sql).to_string(),
                requester_id: Some(c.requester_id).filter(|id| *id != 0),
                requester_name: c.requester_name.clone(),
                approver: c.approver_name.clone(),
                place: c.place.clone(),
                decision: decision.to_string(),
                reason,
                query_id: query_id.map(str::to_string),
                outcome,
                duration_ms,
            })
            .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        id: &str,
        action: &Action,
        sql: &str,
        who: &Requester,
        approver: Option<String>,
        place: &str,
        decision: &str,
        reason: Option<String>,
        query_id: Option<String>,
        outcome: Option<String>,
        duration_ms: Option<i64>,
    ) -> Result<(), FlowError> {
        let (rid, name) = ids(who);
        count_action(&action.key(), decision);
        self.store
            .audit(AuditRow {
                action_id: id.to_string(),
                time: now(),
                cluster: action.cluster().to_string(),
                replica: action.replica().to_string(),
                action_key: action.key(),
                sql: sql.to_string(),
                requester_id: Some(rid).filter(|id| *id != 0),
                requester_name: name,
                approver,
                place: place.to_string(),
                decision: decision.to_string(),
                reason,
                query_id,
                outcome,
                duration_ms,
            })
            .await?;
        Ok(())
    }

    /// After a crash: every action left `executing` gets its real end (a backup is looked up by
    /// its id; a restart is re-checked) and an outcome row. Returns what was reconciled.
    pub async fn reconcile(&self) -> Result<Vec<Outcome>, FlowError> {
        let mut out = Vec::new();
        for conf in self.store.unfinished().await? {
            if conf.cluster != self.cluster.name {
                continue;
            }
            let started = std::time::Instant::now();
            let end_failed = |why: String| {
                self.end(
                    &conf,
                    FinalState::Failed,
                    "failed",
                    why,
                    vec![],
                    None,
                    started,
                )
            };
            let Ok(planned) = serde_json::from_str::<Planned>(&conf.action_json) else {
                out.push(
                    end_failed("after a restart of chops: the action cannot be read back".into())
                        .await?,
                );
                continue;
            };
            let action = planned.action.clone();
            // An action whose process still runs (another `chops act`, the bot) is not ours to end.
            let key = action.key();
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
            if mine.as_deref().is_some_and(owner_alive) {
                continue;
            }
            let Ok(replica) = self.replica(action.replica()) else {
                let why = format!(
                    "after a restart of chops: {} is no longer in the cluster; look at it by hand",
                    action.replica()
                );
                out.push(end_failed(why).await?);
                continue;
            };
            let qid = format!("chops-{}", conf.id);
            let outcome = match &action {
                Action::BackupReplica { .. } => {
                    let mut quiet = |_: &str| {};
                    let id = planned.backup_id.as_deref().unwrap_or_default();
                    let (state, summary) = self.follow_backup(replica, id, None, &mut quiet).await;
                    let decision = if state == FinalState::Succeeded {
                        "succeeded"
                    } else {
                        "failed"
                    };
                    self.end(
                        &conf,
                        state,
                        decision,
                        format!("after a restart of chops: {summary}"),
                        vec![],
                        Some(qid),
                        started,
                    )
                    .await?
                }
                Action::RestartReplica {
                    database, table, ..
                } => {
                    // Whether the statement ran: the server's query log knows (when it has one).
                    let ran = restart_replica::ran(replica, &qid).await;
                    let now_row = restart_replica::look(replica, database, table)
                        .await
                        .ok()
                        .flatten();
                    let details = vec![restart_replica::before_after(
                        &action,
                        None,
                        now_row.as_ref(),
                    )];
                    let (state, summary) = match ran {
                        Some(Ok(())) => (FinalState::Succeeded, "after a restart of chops: the statement finished (system.query_log)".to_string()),
                        Some(Err(e)) => (FinalState::Failed, format!("after a restart of chops: the statement failed: {e}")),
                        None => (FinalState::Failed, "after a restart of chops: outcome unknown (no trace in system.query_log); the table as it is now".to_string()),
                    };
                    let decision = if state == FinalState::Succeeded {
                        "succeeded"
                    } else {
                        "failed"
                    };
                    self.end(&conf, state, decision, summary, details, Some(qid), started)
                        .await?
                }
            };
            if let Some(owner) = mine {
                self.store.unlock(&action.key(), &owner).await?;
            }
            out.push(outcome);
        }
        Ok(out)
    }
}

/// The lock owner for an action run by this process: `<action id>@<pid>`.
fn lock_owner(id: &str) -> String {
    format!("{id}@{}", std::process::id())
}

/// Whether the process named in a lock owner (`<id>@<pid>`) still runs on this machine.
fn owner_alive(owner: &str) -> bool {
    let Some(pid) = owner
        .rsplit_once('@')
        .and_then(|(_, p)| p.parse::<i32>().ok())
    else {
        return false;
    };
    if pid as u32 == std::process::id() {
        return true;
    }
    // Signal 0 sends nothing; it only asks whether the process exists (EPERM: it does, not ours).
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// (id, name) as the store keeps them; a terminal user has id 0.
fn ids(who: &Requester) -> (u64, String) {
    match who {
        Requester::Discord { id, name, .. } => (*id, name.clone()),
        Requester::Cli { user } => (0, format!("cli:{user}")),
    }
}

impl Snapshot {
    /// Nothing probed yet (a refusal that needs no probe).
    pub fn unprobed() -> Snapshot {
        Snapshot {
            replica: Err("not probed".into()),
            running: vec![],
            disk: None,
            missing_databases: vec![],
            name_taken: false,
            table: None,
            keeper: Err("not probed".into()),
            locked_by: None,
            cooldown_until: None,
        }
    }
}

const RUNNING_SQL: &str =
    "SELECT name FROM system.backups WHERE status IN ('CREATING_BACKUP', 'RESTORING')";
const DISK_SQL: &str = "SELECT name FROM system.disks WHERE name = ?";
const DATABASES_SQL: &str = "SELECT name FROM system.databases";
/// A backup with this id, or whose destination has this name, already exists on the replica.
const TAKEN_SQL: &str =
    "SELECT name FROM system.backups WHERE id = ? OR position(name, ?) > 0 LIMIT 1";
const ZK_SQL: &str = "SELECT name FROM system.zookeeper WHERE path = '/' LIMIT 1";

/// The probes behind a [`Snapshot`], all on the target replica with the read-only account, plus
/// Keeper's own `ruok` on its nodes for a restart.
async fn probe(
    c: &ReplicaClient,
    planned: &Planned,
    keeper: &[String],
    deadline: Duration,
    budget: &crate::clickhouse::Budget,
) -> Snapshot {
    let action = &planned.action;
    let mut s = Snapshot::unprobed();
    let running = c.fetch::<NameRow>(RUNNING_SQL, &[]).await;
    s.replica = match &running {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    s.running = running
        .map(|rows| rows.into_iter().map(|r| r.name).collect())
        .unwrap_or_default();
    if s.replica.is_err() {
        return s;
    }
    match action {
        Action::BackupReplica {
            databases, disk, ..
        } => {
            let disk_bind = [disk.as_str()];
            let (d, dbs) = tokio::join!(
                c.fetch::<NameRow>(DISK_SQL, &disk_bind),
                c.fetch::<NameRow>(DATABASES_SQL, &[])
            );
            s.disk = d.ok().map(|rows| !rows.is_empty());
            match dbs {
                Ok(have) => {
                    s.missing_databases = databases
                        .iter()
                        .filter(|d| !have.iter().any(|h| &h.name == *d))
                        .cloned()
                        .collect();
                }
                // Unknown is not "missing": the replica did not answer this probe.
                Err(e) => s.replica = Err(format!("its databases are unknown: {e}")),
            }
            if let Some(id) = &planned.backup_id {
                let bind = [id.as_str(), id.as_str()];
                s.name_taken = c
                    .fetch::<NameRow>(TAKEN_SQL, &bind)
                    .await
                    .map(|rows| !rows.is_empty())
                    // Not known to be new: refuse rather than risk a 598 mid-incident.
                    .unwrap_or(true);
            }
        }
        Action::RestartReplica {
            database, table, ..
        } => {
            s.table = restart_replica::look(c, database, table)
                .await
                .ok()
                .flatten()
                .map(|r| r.state());
            s.keeper = keeper_answers(c, keeper, deadline, budget).await;
        }
    }
    s
}

/// Keeper answers: a majority of the configured nodes say `imok`; with no nodes configured, the
/// replica's own `system.zookeeper` answers.
async fn keeper_answers(
    c: &ReplicaClient,
    nodes: &[String],
    deadline: Duration,
    budget: &crate::clickhouse::Budget,
) -> Result<(), String> {
    if nodes.is_empty() {
        return match c.fetch::<NameRow>(ZK_SQL, &[]).await {
            Ok(_) => Ok(()),
            Err(ProbeError::Server { code: 60, .. }) => {
                Err("no Keeper is configured on that server".into())
            }
            Err(e) => Err(e.to_string()),
        };
    }
    let answers = futures_util::future::join_all(
        nodes
            .iter()
            .map(|n| crate::keeper::four_letter(n, "ruok", deadline, budget)),
    )
    .await;
    let ok = answers
        .iter()
        .filter(|a| matches!(a, Ok(t) if t.trim() == "imok"))
        .count();
    if ok * 2 > nodes.len() {
        Ok(())
    } else {
        let first = answers
            .iter()
            .find_map(|a| a.as_ref().err().map(|e| e.to_string()))
            .unwrap_or_else(|| "no quorum".into());
        Err(format!("{ok} of {} nodes answer: {first}", nodes.len()))
    }
}

impl ConfirmationState {
    /// How a replayed or late click is answered.
    pub fn said(self) -> &'static str {
        match self {
            ConfirmationState::Pending | ConfirmationState::Approved => {
                "still waiting for confirmation"
            }
            ConfirmationState::Executing => "already running",
            ConfirmationState::Succeeded => "already done",
            ConfirmationState::Failed => "already ran and failed",
            ConfirmationState::Cancelled => "cancelled",
            ConfirmationState::Expired => "expired, run it again",
            ConfirmationState::Refused => "refused",
            ConfirmationState::DryRun => "already ran as a dry run",
        }
    }
}

/// A transition that did not start the action, as a short answer to the clicker.
pub fn transition_text(t: Transition, requester: &str) -> String {
    match t {
        Transition::Done => "Done.".into(),
        Transition::NotRequester => format!("Only {requester} can confirm or cancel this."),
        Transition::NeedsApproval => {
            "A second member with an approver role must approve first.".into()
        }
        Transition::ApproverIsRequester => "The requester cannot approve their own action.".into(),
        Transition::ApprovalNotRequired => "This action needs no approval.".into(),
        Transition::Expired => "This confirmation expired: run it again.".into(),
        Transition::AlreadyDone(state) => format!("This action is {}.", state.said()),
        Transition::Unknown => "This action is unknown: run it again.".into(),
    }
}
