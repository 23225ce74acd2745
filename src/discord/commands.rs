//! The slash commands. Each is a thin adapter: parse → [`run_check`] → render. The `///` comments
//! are the help text Discord shows.

use poise::serenity_prelude as serenity;

use super::{render, Context, Error, UserError};
use crate::checks::Cluster;
use crate::config;
use crate::domain::{guard, CheckKind};
use crate::render::display;

/// Cluster names from the config that start with what the user typed.
async fn cluster_names(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let partial = partial.to_lowercase();
    let choices = ctx
        .data()
        .config
        .cluster_names()
        .into_iter()
        .filter(|n| n.to_lowercase().starts_with(&partial))
        .take(25)
        .map(serenity::AutocompleteChoice::from)
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

/// Diagnose a failed backup/restore: every check, the likely cause first, the next steps
#[poise::command(slash_command, rename = "backup-check")]
pub async fn backup_check(
    ctx: Context<'_>,
    #[description = "Cluster (default: this channel's)"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
) -> Result<(), Error> {
    run_check(ctx, cluster, "backup", &CheckKind::ALL, Tuning::default()).await
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

/// Options some commands add to a check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tuning {
    pub min_delay: Option<u64>,
    pub backups_limit: Option<u64>,
}

/// One check's section of the card.
async fn section(
    ctx: Context<'_>,
    cluster: Option<String>,
    kind: CheckKind,
    tuning: Tuning,
) -> Result<(), Error> {
    run_check(ctx, cluster, kind.name(), &[kind], tuning).await
}

/// Resolve the cluster and where we are, defer at once, run the checks, edit the answer with the card.
pub async fn run_check(
    ctx: Context<'_>,
    cluster: Option<String>,
    scope: &str,
    kinds: &[CheckKind],
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
    let reply = match Cluster::connect(&target).await {
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
            let card = cl.check(scope, kinds).await;
            serenity::EditInteractionResponse::new().embed(render::embed(&card).to_builder())
        }
        Err(e) => serenity::EditInteractionResponse::new()
            .content(render::clip(&display::discord(&e.to_string()), 2000)),
    };
    // Sent past poise (an edit), so its `allowed_mentions` default is set here too.
    let reply = reply.allowed_mentions(serenity::CreateAllowedMentions::new());
    if let poise::Context::Application(app) = ctx {
        app.interaction.edit_response(ctx.http(), reply).await?;
    }
    Ok(())
}
