//! Remediation: the flow every entry point shares (Discord buttons and commands, `chops act`),
//! here; each action's own code in its file (`backup`, `restart_replica`: plan, execute, run,
//! reconcile after a restart of chops); finishing the records of actions whose process is gone
//! in `reconcile`; the live pre-checks the guard reads in `snapshot`; card buttons in `offer`.
//!
//! The flow:
//!
//! request → guard (role, live preconditions) → preview + confirmation row → claim + confirm
//! (single use, requester only, approval when two-person) → re-check with fresh probes → lock →
//! audit intent → execute as the operator → follow → re-check → audit outcome → cooldown, unlock.
//!
//! The store decides what must be exclusive (confirm, lock, an action's end) in one SQL statement
//! or transaction each, so any number of processes can share it. The process that confirms an
//! action claims it first (an OS file lock, see `store::Claim`) and holds the claim until its end
//! is recorded: others leave it alone while it runs, and finish it only once that process is gone.
//! Nothing is requested or run while the audit's hash chain is found broken.

pub mod backup;
pub mod offer;
mod reconcile;
pub mod restart_replica;
pub mod snapshot;

pub use reconcile::RECONCILE_WITHIN;

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
    /// How long a backup is followed before it is left running (its end is then recorded by a
    /// later start of chops); None: until it ends.
    pub follow_for: Option<Duration>,
}

/// How long a confirm waits for another click on the same action to let go of its claim.
const CLAIM_WAIT: Duration = Duration::from_secs(3);

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
    /// The statement, derived again from the typed action (and the backup id chops chose): what
    /// runs never comes from SQL text read back from the store.
    pub fn derived(&self) -> Result<String, String> {
        match &self.action {
            Action::BackupReplica { .. } => {
                let id = self.backup_id.as_deref().unwrap_or_default();
                let prefix = crate::domain::sql::backup_name(
                    self.action.cluster(),
                    self.action.replica(),
                    "",
                );
                let stamp = id.strip_prefix(&prefix).unwrap_or_default();
                // `YYYYMMDDTHHMMSS`, as `Planned::new` names it.
                let ok = stamp.len() == 15
                    && stamp
                        .char_indices()
                        .all(|(i, c)| if i == 8 { c == 'T' } else { c.is_ascii_digit() });
                if !ok {
                    return Err("its backup id is not one chops chose".into());
                }
                Ok(self.action.sql_with_id(id, id))
            }
            Action::RestartReplica { .. } => Ok(restart_replica::plan(&self.action)),
        }
    }

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
            FinalState::Running => "still running",
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
        self.chain_intact()?;
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
                self.audit_conf(&c, "approved", Detail::default()).await?;
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
                self.audit_conf(&c, "cancelled", Detail::default()).await?;
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
        self.chain_intact()?;
        let (uid, _) = ids(who);
        // The claim before the row says `executing`: from then on, anyone who finds the row
        // executing also finds its owner's claim held, for as long as this process runs it.
        let Some(claim) = self.store.claim_within(id, CLAIM_WAIT).await? else {
            return Ok(Err(Transition::AlreadyDone(ConfirmationState::Executing)));
        };
        let t = self.store.confirm(id, uid, now()).await?;
        let conf = self.store.confirmation(id).await?;
        if t != Transition::Done {
            if let (Transition::Expired, Some(c)) = (t, &conf) {
                self.audit_conf(c, "expired", Detail::default()).await?;
            }
            return Ok(Err(t));
        }
        let conf = conf.ok_or_else(|| FlowError::User("This action is unknown.".into()))?;
        self.audit_conf(&conf, "confirmed", Detail::default())
            .await?;
        let outcome = self.run(&conf, who, progress).await;
        drop(claim);
        outcome.map(Ok)
    }

    /// Refuses to act while the audit's hash chain is found broken: whatever ran would be
    /// recorded on a log that cannot be trusted.
    fn chain_intact(&self) -> Result<(), FlowError> {
        match self.store.chain_broken() {
            None => Ok(()),
            Some(why) => Err(FlowError::User(format!(
                "Actions are refused: the audit log does not verify ({why}). \
                 Look at it with `chops audit --verify`."
            ))),
        }
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
        // What runs is derived from the typed action; it must be what the preview showed.
        let statement = match planned.derived() {
            Ok(s) if s == conf.sql => s,
            other => {
                let why = other.err().unwrap_or_else(|| {
                    "its stored statement is not the one its action makes".into()
                });
                let ending = Ending::new(FinalState::Refused, format!("{why}: nothing was sent"));
                return self.end(conf, ending, started).await;
            }
        };
        let planned = Planned {
            statement,
            ..planned
        };
        let now = now();
        let target = planned.action.key();
        let ttl = match planned.action {
            Action::BackupReplica { .. } => 6 * 3600,
            Action::RestartReplica { .. } => 600,
        };
        // The lock first, then the re-check under it: two confirmations of the same target can
        // never both pass the checks. The owner names the action, so whoever records its end
        // after this process is gone can release it.
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
        let state = result.as_ref().ok().map(|o| o.state);
        // Still running: the lock stays, for whoever records its end (see `reconcile`).
        if state == Some(FinalState::Running) {
            return result;
        }
        // The cooldown starts when it ended, before the lock goes, so no one slips in between.
        if matches!(state, Some(FinalState::Succeeded | FinalState::Failed)) {
            self.cool_down(&target).await?;
        }
        self.store.unlock(&target, &owner).await?;
        result
    }

    /// The target's cooldown, from now (an action's end).
    async fn cool_down(&self, target: &str) -> Result<(), FlowError> {
        if self.policy.cooldown_secs > 0 {
            let until = now().saturating_add(self.policy.cooldown_secs);
            self.store.set_cooldown(target, until).await?;
        }
        Ok(())
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
            let why = format!("would run on {}: {statement}", action.replica());
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
        let intent = Detail {
            sql: Some(statement),
            query_id: Some(&sending.query_id),
            ..Detail::default()
        };
        self.audit_conf(conf, "executing", intent).await?;
        let ending = match action {
            Action::BackupReplica { .. } => {
                backup::run(&sending, self.follow_every, self.follow_for, progress).await
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
        let detail = Detail {
            outcome: Some(outcome),
            sql: None,
            query_id: query_id.as_deref(),
            duration_ms: Some(ms),
        };
        if state == FinalState::Running {
            // No end yet: a row that says so; the confirmation stays `executing`.
            self.audit_conf(conf, decision(state), detail).await?;
        } else {
            let row = self.audit_row(conf, decision(state), detail);
            count_action(&conf.action_key, decision(state));
            if !self.store.end_action(&conf.id, state, row).await? {
                tracing::warn!(action = %conf.id, "its end was already recorded; this one is not");
            }
        }
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
        detail: Detail<'_>,
    ) -> Result<(), FlowError> {
        count_action(&c.action_key, decision);
        let row = self.audit_row(c, decision, detail);
        self.store.audit(row).await?;
        Ok(())
    }

    /// An audit row of a confirmed action (`outcome` is the reason when it was refused).
    fn audit_row(&self, c: &Confirmation, decision: &str, detail: Detail<'_>) -> AuditRow {
        let Detail {
            outcome,
            sql,
            query_id,
            duration_ms,
        } = detail;
        let (reason, outcome) = if decision == "refused" {
            (outcome, None)
        } else {
            (None, outcome)
        };
        AuditRow {
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
        }
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

/// What an audit row of a confirmed action says beyond its decision (none of it for a plain
/// transition such as `approved`).
#[derive(Default)]
struct Detail<'a> {
    /// What happened; stored as the reason when the decision is `refused`.
    outcome: Option<String>,
    /// The statement sent, when it is not the confirmation's own.
    sql: Option<&'a str>,
    query_id: Option<&'a str>,
    duration_ms: Option<i64>,
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
        FinalState::Running => "still-running",
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

/// The lock owner for an action run by this process: `<action id>@<pid>` (the PID is only shown;
/// who owns a running action is its claim, see `store::Claim`).
fn lock_owner(id: &str) -> String {
    format!("{id}@{}", std::process::id())
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
