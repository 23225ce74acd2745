//! `chops act backup|restart-replica`: one remediation on one replica, guarded like the bot's
//! buttons (policy `cli_users`, live preconditions, confirmation, lock, audit, progress).
//! Exit 0 done (or dry run), 1 refused or not confirmed, 2 failed, 3 usage (or the audit log
//! does not verify), 4 still running after `--follow-secs`.
//!
//! Actions an earlier process left `executing` are reconciled alongside this one (only those
//! whose claim can be taken, see `actions::reconcile`), never before it.

use std::io::IsTerminal;

use clap::Subcommand;

use super::UserError;
use crate::actions::{Actor, FlowError};
use crate::checks::{Cluster, DatabasesError};
use crate::config::{self, ClusterTarget, Loaded};
use crate::domain::action::Action;
use crate::domain::display::plain;
use crate::domain::guard::Requester;
use crate::render;
use crate::store::{FinalState, Store};

/// The backup was left running past `--follow-secs` (its end is recorded later, `chops audit`).
pub const EXIT_STILL_RUNNING: i32 = 4;

#[derive(Debug, Subcommand)]
pub enum ActCommand {
    /// BACKUP the replica's databases to the backup disk, without ON CLUSTER coordination.
    Backup {
        #[command(flatten)]
        common: ActArgs,
        /// Databases to back up, comma-separated (default: every user database of the replica).
        #[arg(long, value_delimiter = ',')]
        databases: Vec<String>,
    },
    /// SYSTEM RESTART REPLICA on one replicated table of one replica.
    RestartReplica {
        #[command(flatten)]
        common: ActArgs,
        /// The table as `database.table` (split at the first dot; or give --database).
        #[arg(long)]
        table: String,
        /// The database, when its name contains a dot.
        #[arg(long)]
        database: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ActArgs {
    /// Cluster name from the config (default: the only one configured).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Replica name (as in the card).
    #[arg(long)]
    pub replica: String,
    /// Go through every step and audit it, but send nothing that writes.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask: confirm at once (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Follow a backup this long at most; then leave it running and exit 4 (its end is recorded
    /// by the next `chops act` or start of `chops serve`, see `chops audit`).
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub follow_secs: u64,
}

impl ActCommand {
    fn common(&self) -> &ActArgs {
        match self {
            ActCommand::Backup { common, .. } | ActCommand::RestartReplica { common, .. } => common,
        }
    }
}

/// Refuses at once on a broken audit chain; otherwise runs the flow with the actions an earlier
/// process left `executing` reconciled alongside it (never holding it up, within
/// [`crate::actions::RECONCILE_WITHIN`]), and says what those became.
pub async fn run(loaded: &Loaded, what: ActCommand) -> Result<i32, UserError> {
    let common = what.common();
    let target = loaded.target(common.cluster.as_deref(), &config::process_env)?;
    let operator = loaded.operator(&target.name, &config::process_env).ok();
    // Actions need the operator account itself, not just its name in the config.
    let mut policy = target.policy.clone();
    policy.has_operator = operator.is_some();
    let cluster = Cluster::connect(&target).await?;
    let store = Store::open(&loaded.store_path())?;
    if let Err(broken) = store.verify_audit().await? {
        return Err(UserError::Usage(format!(
            "the audit log does not verify ({broken}): actions are refused until it is looked at (chops audit --verify)"
        )));
    }
    let actor = Actor {
        cluster: &cluster,
        operator,
        policy: &policy,
        store: &store,
        follow_every: std::time::Duration::from_millis(500),
        follow_for: Some(std::time::Duration::from_secs(common.follow_secs)),
    };
    let within = crate::actions::RECONCILE_WITHIN;
    let (code, recorded) = actor
        .alongside(within, flow(&actor, &cluster, &target, &what))
        .await;
    for o in recorded {
        eprintln!(
            "chops: action {} left unfinished earlier, now {}: {}",
            o.id,
            o.state_label(),
            plain(&o.summary)
        );
    }
    code
}

/// Once the actor is set up: the action, its preview, the confirmation, the run.
async fn flow(
    actor: &Actor<'_>,
    cluster: &Cluster,
    target: &ClusterTarget,
    what: &ActCommand,
) -> Result<i32, UserError> {
    let common = what.common();
    let action = action(cluster, target, what).await?;
    let user = os_user();
    let who = Requester::Cli { user: user.clone() };
    let place = format!("cli:{user}");
    let preview = match actor.request(action, &who, &place, common.dry_run).await {
        Ok(p) => p,
        Err(FlowError::Refused(r)) => {
            eprintln!("chops: {}", plain(&r.to_string()));
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    eprint!("{}", render::terminal::preview(&preview));
    if !common.yes && !confirmed(actor, &preview.id, &who).await? {
        return Ok(1);
    }
    execute(actor, &preview, &who).await
}

/// The action the command asks for, on the target's cluster.
async fn action(
    cluster: &Cluster,
    target: &ClusterTarget,
    what: &ActCommand,
) -> Result<Action, UserError> {
    let common = what.common();
    Ok(match what {
        ActCommand::Backup { databases, .. } => Action::BackupReplica {
            cluster: target.name.clone(),
            replica: common.replica.clone(),
            databases: if databases.is_empty() {
                user_databases(cluster, &common.replica).await?
            } else {
                databases.clone()
            },
            disk: target.backup_disk.clone(),
        },
        ActCommand::RestartReplica {
            table, database, ..
        } => {
            let (database, table) = split_table(table, database.as_deref())?;
            Action::RestartReplica {
                cluster: target.name.clone(),
                replica: common.replica.clone(),
                database,
                table,
            }
        }
    })
}

/// `--table db.table` split at the first dot, or `--database db --table [db.]table`.
fn split_table(table: &str, database: Option<&str>) -> Result<(String, String), UserError> {
    match database {
        Some(db) => Ok((
            db.to_string(),
            table
                .strip_prefix(&format!("{db}."))
                .unwrap_or(table)
                .to_string(),
        )),
        None => match table.split_once('.') {
            Some((db, t)) if !db.is_empty() && !t.is_empty() => Ok((db.to_string(), t.to_string())),
            _ => Err(UserError::Usage(
                "--table must be database.table (or give --database)".into(),
            )),
        },
    }
}

/// Ask on the terminal; without one, refuse (`--yes` is how scripts confirm) and cancel the
/// preview, since nothing can confirm it later: no pending confirmation is left behind. A "no"
/// cancels it too.
async fn confirmed(actor: &Actor<'_>, id: &str, who: &Requester) -> Result<bool, UserError> {
    if !std::io::stdin().is_terminal() {
        actor.cancel(id, who).await?;
        eprintln!("chops: not confirmed: add --yes to run without a prompt");
        return Ok(false);
    }
    eprint!("Type yes to run it: ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if answer.trim() == "yes" {
        return Ok(true);
    }
    let _ = actor.cancel(id, who).await;
    eprintln!("chops: cancelled");
    Ok(false)
}

/// Confirm and run it, with a progress line on a terminal; the outcome on stdout.
async fn execute(
    actor: &Actor<'_>,
    preview: &crate::actions::Preview,
    who: &Requester,
) -> Result<i32, UserError> {
    let tty = std::io::stderr().is_terminal();
    let mut show = move |line: &str| {
        // Quiet when not a TTY (logs, CI).
        if tty {
            eprint!("\r\x1b[2K{}", plain(line));
        }
    };
    let result = actor.confirm(&preview.id, who, &mut show).await?;
    if tty {
        eprintln!();
    }
    match result {
        Ok(outcome) => {
            print!("{}", render::terminal::outcome(&outcome));
            Ok(match outcome.state {
                FinalState::Succeeded | FinalState::DryRun => 0,
                FinalState::Refused => 1,
                FinalState::Failed => 2,
                FinalState::Running => EXIT_STILL_RUNNING,
            })
        }
        Err(t) => {
            eprintln!(
                "chops: {}",
                crate::actions::transition_text(t, &preview.requester)
            );
            Ok(1)
        }
    }
}

/// The user databases a replica has (what a per-replica backup covers by default).
async fn user_databases(cluster: &Cluster, replica: &str) -> Result<Vec<String>, UserError> {
    cluster.user_databases(replica).await.map_err(|e| {
        UserError::Usage(match e {
            DatabasesError::NoReplica => {
                format!("no replica '{replica}' in cluster {}", cluster.name)
            }
            DatabasesError::Probe(e) => format!("cannot list the databases of {replica}: {e}"),
            DatabasesError::Empty => format!("{replica} has no user databases: nothing to back up"),
        })
    })
}

/// The OS user running `chops act` (the requester in the audit log): the real user id's name in
/// the password database, not $USER (the environment is the requester's to set); `uid<N>` if it
/// has none.
fn os_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid{uid}"),
    }
}
