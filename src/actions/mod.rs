//! Remediation: the flow every entry point shares (Discord buttons and commands, `chops act`),
//! here; each action's own code in its file (`backup`, `restart_replica`: plan, execute, run,
//! reconcile after a restart of chops); the live pre-checks the guard reads in `snapshot`; card
//! buttons in `offer`.
//!
//! The flow:
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
pub mod snapshot;

use std::time::{Duration, Instant};

use crate::clock::now;

use crate::checks::Cluster;
use crate::clickhouse::ReplicaClient;
use crate::config::Secret;
use crate::domain::action::Action;
use crate::domain::guard::{self, ActRefusal, Policy, Precondition, Requester, Snapshot};
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
        let id_hint = format!("{}-{now}", action.key());
        let asked = Asked {
            id: &id_hint,
            action: &action,
            sql: &planned.statement,
            who,
            place,
        };
        if let Some(refusal) = self.refused_unprobed(&action, who, now) {
            return Err(self.refuse(&asked, refusal).await);
        }
        let snap = self.snapshot(&planned, now).await?;
        // Typed names must exist on the server: otherwise no preview (and no SQL) at all.
        if let Some(why) = unknown_name(&action, &snap) {
            let refusal = ActRefusal::Precondition(why);
            return Err(self.refuse(&asked, refusal).await);
        }
        let checks = guard::preconditions(&action, &snap, now);
        let dry_run = dry_run || self.policy.dry_run;
        self.record(&asked, &planned, dry_run, now, checks).await
    }

    /// Refusals that need no probe: the requester's role, and a two-person kind asked for on a
    /// terminal (which has no second person: those kinds are Discord-only).
    fn refused_unprobed(&self, action: &Action, who: &Requester, now: i64) -> Option<ActRefusal> {
        if matches!(who, Requester::Cli { .. }) && self.policy.two_person.contains(&action.kind()) {
            return Some(ActRefusal::Precondition(format!(
                "{} actions on {} need a second member's approval: request it in Discord",
                action.kind().name(),
                action.cluster()
            )));
        }
        if self.policy.enabled() && self.policy.allows(action.kind(), who) {
            return None;
        }
        let refusal = guard::may_act(action, &Snapshot::unprobed(), self.policy, who, now)
            .expect_err("role refused");
        Some(refusal)
    }

    /// The confirmation row and its "requested" audit row; the preview it answers with.
    async fn record(
        &self,
        asked: &Asked<'_>,
        planned: &Planned,
        dry_run: bool,
        now: i64,
        checks: Vec<Precondition>,
    ) -> Result<Preview, FlowError> {
        let action = asked.action;
        let needs_approval = self.policy.needs_approval(action.kind(), asked.who);
        let (requester_id, requester_name) = ids(asked.who);
        let expires_at = now + self.policy.confirm_ttl_secs;
        let id = self
            .store
            .create_confirmation(NewConfirmation {
                action_key: action.key(),
                action_json: serde_json::to_string(planned).expect("a plan serialises"),
                cluster: action.cluster().to_string(),
                replica: action.replica().to_string(),
                sql: asked.sql.to_string(),
                requester_id,
                requester_name: requester_name.clone(),
                place: asked.place.to_string(),
                two_person: needs_approval,
                dry_run,
                created_at: now,
                expires_at,
            })
            .await?;
        let requested = Asked { id: &id, ..*asked };
        self.audit(&requested, "requested", None).await?;
        Ok(Preview {
            effect: action.effect(),
            id,
            action: action.clone(),
            sql: asked.sql.to_string(),
            checks,
            requester: requester_name,
            needs_approval,
            dry_run,
            expires_at,
        })
    }

    /// Audit a refusal that came before any confirmation row, and hand it back as the error.
    async fn refuse(&self, asked: &Asked<'_>, refusal: ActRefusal) -> FlowError {
        match self
            .audit(asked, "refused", Some(refusal.to_string()))
            .await
        {
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

    /// From a confirmed row to its end: re-check, lock, intent, execute, follow, outcome.
    /// Whatever fails on the way, the row does not stay `executing`: the error becomes its
    /// outcome.
    async fn run(
        &self,
        conf: &Confirmation,
        who: &Requester,
        progress: OnProgress<'_>,
    ) -> Result<Outcome, FlowError> {
        let started = Instant::now();
        match self.run_inner(conf, who, progress, started).await {
            Ok(o) => Ok(o),
            Err(e) => {
                let why = format!("stopped before an outcome: {e}");
                self.end(conf, Ending::new(FinalState::Failed, why), started)
                    .await
            }
        }
    }

    async fn run_inner(
        &self,
        conf: &Confirmation,
        who: &Requester,
        progress: OnProgress<'_>,
        started: Instant,
    ) -> Result<Outcome, FlowError> {
        let planned: Planned = serde_json::from_str(&conf.action_json)
            .map_err(|e| FlowError::User(format!("This action cannot be read back ({e}).")))?;
        let now = now();
        let target = planned.action.key();
        let ttl = match planned.action {
            Action::BackupReplica { .. } => 6 * 3600,
            Action::RestartReplica { .. } => 600,
        };
        // The lock first, then the re-check under it: two confirmations of the same target can
        // never both pass the checks. The owner names this process, so a later start can tell a
        // live action from one whose process died.
        let owner = lock_owner(&conf.id);
        if let Err(held) = self.store.try_lock(&target, &owner, now, ttl).await? {
            let by = held.owner.split('@').next().unwrap_or(&held.owner);
            let why = format!("already running — see action {by}");
            return self
                .end(conf, Ending::new(FinalState::Refused, why), started)
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
        started: Instant,
        now: i64,
    ) -> Result<Outcome, FlowError> {
        let mut snap = self.snapshot(planned, now).await?;
        snap.locked_by = None; // the lock is ours
        if let Err(refusal) = guard::may_act(&planned.action, &snap, self.policy, who, now) {
            let ending = Ending::new(FinalState::Refused, refusal.to_string());
            return self.end(conf, ending, started).await;
        }
        self.locked(conf, planned, progress, started).await
    }

    /// Decided and locked: the intent row, then the action's own run (or the dry run's record).
    async fn locked(
        &self,
        conf: &Confirmation,
        planned: &Planned,
        progress: OnProgress<'_>,
        started: Instant,
    ) -> Result<Outcome, FlowError> {
        let action = &planned.action;
        let replica = self.replica(action.replica())?;
        let statement = &planned.statement;
        // A dry run sends nothing and so writes no intent: its record is the dry-run row.
        if conf.dry_run {
            let why = format!("dry run: would run on {}: {statement}", action.replica());
            return self
                .end(conf, Ending::new(FinalState::DryRun, why), started)
                .await;
        }
        let sending = Sending {
            planned,
            replica,
            op: self.operator_client(replica)?,
            query_id: format!("chops-{}", conf.id),
        };
        // The intent row comes first: a crash after this leaves a trace to reconcile.
        let (sql, qid) = (Some(statement.as_str()), Some(sending.query_id.as_str()));
        self.audit_conf(conf, "executing", None, sql, qid, None)
            .await?;
        let ending = match action {
            Action::BackupReplica { .. } => {
                backup::run(&sending, self.follow_every, progress).await
            }
            Action::RestartReplica {
                database, table, ..
            } => restart_replica::run(&sending, database, table, progress).await,
        };
        self.end(conf, ending, started).await
    }

    /// Record the end: the outcome's audit row (with how long it took) and the row's final state.
    async fn end(
        &self,
        conf: &Confirmation,
        ending: Ending,
        started: Instant,
    ) -> Result<Outcome, FlowError> {
        let Ending {
            state,
            summary,
            details,
            query_id,
        } = ending;
        let ms = started.elapsed().as_millis() as i64;
        let outcome = if details.is_empty() {
            summary.clone()
        } else {
            format!("{summary}; {}", details.join("; "))
        };
        self.audit_conf(
            conf,
            decision(state),
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

    /// An audit row of a request (before it has a confirmation row, or as it gets one).
    async fn audit(
        &self,
        asked: &Asked<'_>,
        decision: &str,
        reason: Option<String>,
    ) -> Result<(), FlowError> {
        let (rid, name) = ids(asked.who);
        let action = asked.action;
        count_action(&action.key(), decision);
        self.store
            .audit(AuditRow {
                action_id: asked.id.to_string(),
                time: now(),
                cluster: action.cluster().to_string(),
                replica: action.replica().to_string(),
                action_key: action.key(),
                sql: asked.sql.to_string(),
                requester_id: Some(rid).filter(|id| *id != 0),
                requester_name: name,
                approver: None,
                place: asked.place.to_string(),
                decision: decision.to_string(),
                reason,
                query_id: None,
                outcome: None,
                duration_ms: None,
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
            out.extend(self.reconcile_one(&conf).await?);
        }
        Ok(out)
    }

    /// One action left `executing`; none when its process still runs (another `chops act`, the
    /// bot): it is not ours to end.
    async fn reconcile_one(&self, conf: &Confirmation) -> Result<Option<Outcome>, FlowError> {
        let started = Instant::now();
        let failed = |why: String| Ending::new(FinalState::Failed, why);
        let Ok(planned) = serde_json::from_str::<Planned>(&conf.action_json) else {
            let why = "after a restart of chops: the action cannot be read back";
            let outcome = self.end(conf, failed(why.into()), started).await?;
            return Ok(Some(outcome));
        };
        let action = &planned.action;
        let mine = self.own_lock(&conf.id, action.key()).await?;
        if mine.as_deref().is_some_and(owner_alive) {
            return Ok(None);
        }
        let Ok(replica) = self.replica(action.replica()) else {
            let why = format!(
                "after a restart of chops: {} is no longer in the cluster; look at it by hand",
                action.replica()
            );
            return Ok(Some(self.end(conf, failed(why), started).await?));
        };
        let qid = format!("chops-{}", conf.id);
        let ending = match action {
            Action::BackupReplica { .. } => {
                backup::reconcile(replica, &planned, &qid, self.follow_every).await
            }
            Action::RestartReplica {
                database, table, ..
            } => restart_replica::reconcile(replica, action, database, table, &qid).await,
        };
        let outcome = self.end(conf, ending, started).await?;
        if let Some(owner) = mine {
            self.store.unlock(&action.key(), &owner).await?;
        }
        Ok(Some(outcome))
    }

    /// The owner of `key`'s lock (expired or not) when the lock is action `id`'s.
    async fn own_lock(&self, id: &str, key: String) -> Result<Option<String>, FlowError> {
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
        Ok(held.filter(|o| o.split('@').next() == Some(id)))
    }
}

/// What was asked, before it has a confirmation row: enough for its audit rows.
#[derive(Clone, Copy)]
struct Asked<'a> {
    /// The confirmation's id, or a hint (`<action key>-<time>`) when refused before one exists.
    id: &'a str,
    action: &'a Action,
    sql: &'a str,
    who: &'a Requester,
    place: &'a str,
}

/// A confirmed, checked action about to be sent: what each action's `run` needs.
struct Sending<'a> {
    planned: &'a Planned,
    /// The target as the read-only account (to follow and re-check it).
    replica: &'a ReplicaClient,
    /// The target as the operator account (to send the statement).
    op: ReplicaClient,
    query_id: String,
}

/// How an action ended, before it is recorded.
#[derive(Debug)]
struct Ending {
    state: FinalState,
    /// One line: what happened.
    summary: String,
    /// Before → after of the re-check.
    details: Vec<String>,
    /// The statement's query id, once one was sent.
    query_id: Option<String>,
}

impl Ending {
    fn new(state: FinalState, summary: impl Into<String>) -> Ending {
        Ending {
            state,
            summary: summary.into(),
            details: Vec::new(),
            query_id: None,
        }
    }

    fn details(self, details: Vec<String>) -> Ending {
        Ending { details, ..self }
    }

    fn sent(self, query_id: &str) -> Ending {
        Ending {
            query_id: Some(query_id.to_string()),
            ..self
        }
    }
}

/// The audit log's word for how an action ended.
fn decision(state: FinalState) -> &'static str {
    match state {
        FinalState::Succeeded => "succeeded",
        FinalState::Failed => "failed",
        FinalState::Refused => "refused",
        FinalState::DryRun => "dry-run",
    }
}

/// Ask for a typed name the target does not have: the reason, so no preview (and no SQL) is made.
fn unknown_name(action: &Action, snap: &Snapshot) -> Option<String> {
    match action {
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
