//! The action commands: `/backup-replica` and `/restart-replica` build the [`Action`] and hand it
//! to the button flow (role check, preview, Confirm); their replica and table autocompletes.
//! Nothing reaches a replica before the channel and the member's role are checked.

use poise::serenity_prelude as serenity;

use super::{action_cluster, action_guard, arg, choices, cluster_names, cluster_target};
use crate::checks::Cluster;
use crate::config;
use crate::discord::{buttons, Context, Error, UserError};
use crate::domain::action::{Action, ActionKind};
use crate::domain::display;

/// Back up one replica on its own (no ON CLUSTER): preview, then Confirm
#[poise::command(slash_command, rename = "backup-replica")]
pub async fn backup_replica(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
    #[description = "Replica"]
    #[autocomplete = "replica_names"]
    replica: String,
    #[description = "Databases, comma-separated (default: every user database of the replica)"]
    databases: Option<String>,
    #[description = "Go through every step, audited, but send nothing that writes"] dry_run: Option<
        bool,
    >,
) -> Result<(), Error> {
    let cluster = action_cluster(ctx, cluster)
        .ok_or_else(|| UserError("Which cluster? Pass `cluster:`.".into()))?;
    let databases: Vec<String> = match databases {
        Some(d) => {
            let listed: Vec<String> = d
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if listed.is_empty() {
                return Err(UserError(
                    "`databases` lists no database: give names, comma-separated, or leave it out."
                        .into(),
                )
                .into());
            }
            listed
        }
        // Listing them asks the replica: only once the channel and the role allow it. Refused,
        // the action goes on with none listed: the flow refuses it the same way, audited,
        // and asks nothing (the rules are the same).
        None if action_guard(ctx, Some(cluster.clone()), ActionKind::Backup).is_err() => Vec::new(),
        None => replica_databases(ctx, &cluster, &replica).await?,
    };
    let disk = cluster_target(ctx, &cluster)?.backup_disk;
    let action = Action::BackupReplica {
        cluster,
        replica,
        databases,
        disk,
    };
    start_action(ctx, action, dry_run.unwrap_or(false)).await
}

/// SYSTEM RESTART REPLICA on one table of one replica: preview, then Confirm
#[poise::command(slash_command, rename = "restart-replica")]
pub async fn restart_replica(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
    #[description = "Replica"]
    #[autocomplete = "replica_names"]
    replica: String,
    #[description = "Table, as database.table"]
    #[autocomplete = "table_names"]
    table: String,
    #[description = "Go through every step, audited, but send nothing that writes"] dry_run: Option<
        bool,
    >,
) -> Result<(), Error> {
    let cluster = action_cluster(ctx, cluster)
        .ok_or_else(|| UserError("Which cluster? Pass `cluster:`.".into()))?;
    let (database, table) = table
        .split_once('.')
        .filter(|(d, t)| !d.is_empty() && !t.is_empty())
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .ok_or_else(|| {
            UserError("`table` must be database.table (pick one from the list).".into())
        })?;
    let action = Action::RestartReplica {
        cluster,
        replica,
        database,
        table,
    };
    start_action(ctx, action, dry_run.unwrap_or(false)).await
}

/// What an action command's autocompletes ask: the cluster chosen so far, once this channel
/// and the member's role for the command's kind allow it (nothing is read or asked otherwise).
async fn autocomplete_cluster(ctx: Context<'_>) -> Option<(config::ClusterTarget, Cluster)> {
    let kind = match &*ctx.command().name {
        "backup-replica" => ActionKind::Backup,
        _ => ActionKind::Restart,
    };
    let cluster = action_guard(ctx, arg(ctx, "cluster"), kind).ok()?;
    let t = cluster_target(ctx, &cluster).ok()?;
    let cl = ctx.data().cluster(&t).await.ok();
    Some((t, cl?))
}

/// Replica names of the cluster chosen so far.
async fn replica_names(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let names = match autocomplete_cluster(ctx).await {
        Some((_, cl)) => cl.replicas.iter().map(|r| r.name.clone()).collect(),
        None => Vec::new(),
    };
    choices(names, partial)
}

/// Replicated tables (`db.table`) of the replica chosen so far, from its system.replicas.
async fn table_names(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let mut names = Vec::new();
    if let (Some((_, cl)), Some(replica)) = (autocomplete_cluster(ctx).await, arg(ctx, "replica")) {
        if let Some(c) = cl.replicas.iter().find(|r| r.name == replica) {
            let sql = "SELECT concat(database, '.', table) AS name FROM system.replicas ORDER BY name LIMIT 500";
            if let Ok(rows) = c.fetch::<crate::checks::settings::NameRow>(sql, &[]).await {
                names = rows.into_iter().map(|r| r.name).collect();
            }
        }
    }
    choices(names, partial)
}

/// The user databases of a replica (what a per-replica backup covers by default).
async fn replica_databases(
    ctx: Context<'_>,
    cluster: &str,
    replica: &str,
) -> Result<Vec<String>, Error> {
    use crate::checks::DatabasesError;
    let t = cluster_target(ctx, cluster)?;
    let cl = ctx
        .data()
        .cluster(&t)
        .await
        .map_err(|e| UserError(display::discord(&e.to_string())))?;
    let shown = display::discord(replica);
    cl.user_databases(replica).await.map_err(|e| {
        UserError(match e {
            DatabasesError::NoReplica => format!("No replica '{shown}' in {cluster}."),
            DatabasesError::Probe(e) => format!(
                "Cannot list the databases of {shown}: {}",
                display::discord(&e.to_string())
            ),
            DatabasesError::Empty => format!("{shown} has no user databases: nothing to back up."),
        })
        .into()
    })
}

/// Hand an action to the button flow (role check, preview, confirmation).
async fn start_action(ctx: Context<'_>, action: Action, dry_run: bool) -> Result<(), Error> {
    let poise::Context::Application(app) = ctx else {
        return Ok(());
    };
    let ci = app.interaction;
    let who = buttons::requester(&ci.user, ci.member.as_deref());
    let place = buttons::place(ci.guild_id, ci.channel_id);
    buttons::start(
        ctx.serenity_context(),
        ctx.data(),
        buttons::Start::Command(ci),
        action,
        &who,
        &place,
        dry_run,
    )
    .await;
    Ok(())
}
