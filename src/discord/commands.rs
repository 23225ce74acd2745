//! The slash commands. Each is a thin adapter: parse → [`run_check`] → render. The `///` comments
//! are the help text Discord shows.

use poise::serenity_prelude as serenity;

use super::{buttons, render, Context, Error, UserError};
use crate::checks::flight::Tuning;
use crate::config;
use crate::domain::action::Action;
use crate::domain::display;
use crate::domain::text::clip;
use crate::domain::{guard, CheckKind, Scope};

/// Cluster names from the config that start with what the user typed.
async fn cluster_names(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    choices(ctx.data().config.cluster_names(), partial)
}

/// Diagnose a failed backup/restore: every check, the likely cause first, the next steps
#[poise::command(slash_command, rename = "backup-check")]
pub async fn backup_check(
    ctx: Context<'_>,
    #[description = "Cluster (default: this channel's)"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
) -> Result<(), Error> {
    run_check(ctx, cluster, Scope::Full, Tuning::default()).await
}

/// Keeper health: four-letter words on every node, and each replica's view
#[poise::command(slash_command)]
pub async fn keeper(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
) -> Result<(), Error> {
    section(ctx, cluster, CheckKind::Keeper, Tuning::default()).await
}

/// Which replicas answer (ping, version, uptime, connection errors)
#[poise::command(slash_command)]
pub async fn replicas(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
) -> Result<(), Error> {
    section(ctx, cluster, CheckKind::Replicas, Tuning::default()).await
}

/// Replication lag: read-only tables, expired sessions, delay and queue per table
#[poise::command(slash_command)]
pub async fn lag(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
    #[description = "Report tables delayed more than this many seconds"]
    #[min = 0]
    min_delay: Option<u64>,
) -> Result<(), Error> {
    let tuning = Tuning {
        min_delay,
        ..Tuning::default()
    };
    section(ctx, cluster, CheckKind::Lag, tuning).await
}

/// Blocking operations: running backups/restores, mutations, long merges, distributed DDL
#[poise::command(slash_command)]
pub async fn blockers(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
) -> Result<(), Error> {
    section(ctx, cluster, CheckKind::Blockers, Tuning::default()).await
}

/// Recent backups and restores per replica, failures classified
#[poise::command(slash_command)]
pub async fn backups(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
    #[description = "Rows per replica (1–20, default 20)"]
    #[min = 1]
    #[max = 20]
    limit: Option<u64>,
) -> Result<(), Error> {
    let tuning = Tuning {
        backups_limit: limit,
        ..Tuning::default()
    };
    section(ctx, cluster, CheckKind::Backups, tuning).await
}

/// Backup sync settings: Keeper retries, timeouts, differences between replicas, the backup disk
#[poise::command(slash_command)]
pub async fn settings(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
) -> Result<(), Error> {
    section(ctx, cluster, CheckKind::Settings, Tuning::default()).await
}

/// The value typed so far for another option of the same command (autocomplete).
fn arg(ctx: Context<'_>, name: &str) -> Option<String> {
    let poise::Context::Application(app) = ctx else {
        return None;
    };
    app.args
        .iter()
        .find(|o| o.name == name)
        .and_then(|o| match &o.value {
            serenity::ResolvedValue::String(s) => Some(s.to_string()),
            serenity::ResolvedValue::Autocomplete { value, .. } => Some(value.to_string()),
            _ => None,
        })
}

/// The cluster an action command is about: typed, else the channel's.
fn action_cluster(ctx: Context<'_>, typed: Option<String>) -> Option<String> {
    typed
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .or_else(|| ctx.data().config.channel_cluster(ctx.channel_id().get()))
}

/// Replica names of the cluster chosen so far.
async fn replica_names(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let mut names = Vec::new();
    if let Some(cluster) = action_cluster(ctx, arg(ctx, "cluster")) {
        if let Ok(t) = ctx
            .data()
            .config
            .target(Some(&cluster), &config::process_env)
        {
            names = match ctx.data().cluster(&t).await {
                Ok(cl) => cl.replicas.iter().map(|r| r.name.clone()).collect(),
                Err(_) => t.replicas.iter().map(|r| r.name.clone()).collect(),
            };
        }
    }
    choices(names, partial)
}

/// Replicated tables (`db.table`) of the replica chosen so far, from its system.replicas.
async fn table_names(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let mut names = Vec::new();
    if let (Some(cluster), Some(replica)) = (
        action_cluster(ctx, arg(ctx, "cluster")),
        arg(ctx, "replica"),
    ) {
        if let Ok(t) = ctx
            .data()
            .config
            .target(Some(&cluster), &config::process_env)
        {
            if let Ok(cl) = ctx.data().cluster(&t).await {
                if let Some(c) = cl.replicas.iter().find(|r| r.name == replica) {
                    let sql = "SELECT concat(database, '.', table) AS name FROM system.replicas ORDER BY name LIMIT 500";
                    if let Ok(rows) = c.fetch::<crate::checks::settings::NameRow>(sql, &[]).await {
                        names = rows.into_iter().map(|r| r.name).collect();
                    }
                }
            }
        }
    }
    choices(names, partial)
}

fn choices(names: Vec<String>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let partial = partial.to_lowercase();
    let list = names
        .into_iter()
        // Values must stay the exact name: one that does not fit Discord's 100 characters is
        // left out rather than cut. Choice names are shown as typed, so escaped.
        .filter(|n| n.chars().count() <= 100 && n.to_lowercase().contains(&partial))
        .take(25)
        .map(|n| serenity::AutocompleteChoice::new(clip(&display::plain(&n), 100), n))
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(list)
}

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
        Some(d) => d
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => replica_databases(ctx, &cluster, &replica).await?,
    };
    if databases.is_empty() {
        return Err(UserError(
            "`databases` lists no database: give names, comma-separated, or leave it out.".into(),
        )
        .into());
    }
    let disk = ctx
        .data()
        .config
        .target(Some(&cluster), &config::process_env)
        .map_err(|e| UserError(display::discord(&e.to_string())))?
        .backup_disk;
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

/// The user databases of a replica (what a per-replica backup covers by default).
async fn replica_databases(
    ctx: Context<'_>,
    cluster: &str,
    replica: &str,
) -> Result<Vec<String>, Error> {
    use crate::checks::DatabasesError;
    let t = ctx
        .data()
        .config
        .target(Some(cluster), &config::process_env)
        .map_err(|e| UserError(display::discord(&e.to_string())))?;
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

/// Explain a backup/restore error text: category, causes, code, host, next steps
#[poise::command(slash_command)]
pub async fn explain(
    ctx: Context<'_>,
    #[description = "The error text (e.g. what a failed BACKUP printed)"] error: String,
    #[description = "Post it in the channel (default: only you see it)"] public: Option<bool>,
) -> Result<(), Error> {
    explain_text(ctx, &error, !public.unwrap_or(false)).await
}

/// Explain the error text of a message (right-click → Apps → Explain this error)
#[poise::command(context_menu_command = "Explain this error")]
pub async fn explain_message(
    ctx: Context<'_>,
    #[description = "The message with the error"] msg: serenity::Message,
) -> Result<(), Error> {
    // The message's text, and its embeds' (a card or another bot's alert) when it has none.
    let mut text = msg.content.clone();
    for e in &msg.embeds {
        for part in [&e.title, &e.description].into_iter().flatten() {
            text.push('\n');
            text.push_str(part);
        }
    }
    explain_text(ctx, &text, true).await
}

async fn explain_text(ctx: Context<'_>, text: &str, ephemeral: bool) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(UserError("There is no error text to explain.".into()).into());
    }
    let e = crate::domain::explain::explain(text);
    let embed = render::explain_embed(&e);
    ctx.send(
        poise::CreateReply::default()
            .embed(embed.to_builder())
            .ephemeral(ephemeral),
    )
    .await?;
    Ok(())
}

/// The audit log of actions (newest first)
#[poise::command(slash_command)]
pub async fn audit(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
    #[description = "Rows (1–50, default 20)"]
    #[min = 1]
    #[max = 50]
    limit: Option<u64>,
) -> Result<(), Error> {
    let cluster = cluster
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if let Some(c) = &cluster {
        guard::may_speak(
            ctx.channel_id().get(),
            ctx.data().config.allowed_channels(c),
        )
        .map_err(|r| UserError(r.to_string()))?;
    }
    let rows = ctx
        .data()
        .store
        .audit_rows(
            cluster.as_deref(),
            limit.unwrap_or(20).clamp(1, 50) as usize,
        )
        .await?;
    let e = render::audit_embed(cluster.as_deref(), &rows);
    ctx.send(
        poise::CreateReply::default()
            .embed(e.to_builder())
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// chops: diagnose ClickHouse backup/restore sync failures
#[poise::command(slash_command, subcommands("help"))]
pub async fn chops(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// What chops can do here
#[poise::command(slash_command)]
pub async fn help(ctx: Context<'_>) -> Result<(), Error> {
    let mut text =
        String::from("**chops** diagnoses ClickHouse backup/restore sync failures (code 655).\n");
    for c in &ctx.framework().options().commands {
        if c.name == "chops" {
            continue;
        }
        text.push_str(&format!(
            "`/{}` — {}\n",
            c.name,
            c.description.as_deref().unwrap_or("")
        ));
    }
    text.push_str(
        "`cluster` defaults to this channel's cluster. Verdicts: healthy, degraded, failing.",
    );
    ctx.send(poise::CreateReply::default().content(text).ephemeral(true))
        .await?;
    Ok(())
}

/// One check's section of the card.
async fn section(
    ctx: Context<'_>,
    cluster: Option<String>,
    kind: CheckKind,
    tuning: Tuning,
) -> Result<(), Error> {
    run_check(ctx, cluster, Scope::One(kind), tuning).await
}

/// Resolve the cluster and where we are, defer at once, run the checks, edit the answer with the card.
pub async fn run_check(
    ctx: Context<'_>,
    cluster: Option<String>,
    scope: Scope,
    tuning: Tuning,
) -> Result<(), Error> {
    // The place (guild, DM) was checked before this command ran (`place_guard`).
    let cfg = &ctx.data().config;
    let channel = ctx.channel_id().get();
    let name = match cluster
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
    {
        Some(c) => c,
        None => cfg.channel_cluster(channel).ok_or_else(|| {
            UserError(format!(
                "Which cluster? Pass `cluster:` (configured: {}).",
                cfg.cluster_names().join(", ")
            ))
        })?,
    };
    if cfg.config.clusters.contains_key(&name) {
        // The channel before the secret: a refusal here reads nothing else.
        guard::may_speak(channel, cfg.allowed_channels(&name))
            .map_err(|r| UserError(r.to_string()))?;
    }
    let target = cfg
        .target(Some(&name), &config::process_env)
        .map_err(|e| UserError(display::discord(&e.to_string())))?;

    ctx.defer().await?;
    // One round per cluster, scope and tuning at a time: a storm of callers shares it.
    let reply = match ctx.data().flights.card(&target, scope, tuning).await {
        Ok(card) => {
            let mut e = render::embed(&card);
            let offers =
                crate::actions::offer::offers(&ctx.data().store, &target.policy, &card).await;
            if !target.policy.enabled() && card.next_steps.iter().any(|s| s.action.is_some()) {
                e.footer = clip(
                    &format!("{} · actions are not enabled for {}", e.footer, target.name),
                    render::FOOTER_MAX,
                );
            }
            let mut reply = serenity::EditInteractionResponse::new()
                .embed(e.to_builder())
                .components(render::card_buttons(&offers));
            for f in e.files() {
                reply = reply.new_attachment(f);
            }
            reply
        }
        Err(e) => serenity::EditInteractionResponse::new().content(
            crate::domain::text::clip_chars(&display::discord(&e.to_string()), 2000),
        ),
    };
    // Sent past poise (an edit), so its `allowed_mentions` default is set here too.
    let reply = reply.allowed_mentions(serenity::CreateAllowedMentions::new());
    if let poise::Context::Application(app) = ctx {
        app.interaction.edit_response(ctx.http(), reply).await?;
    }
    Ok(())
}
