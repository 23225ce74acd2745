//! The seven check commands: `/backup-check` (every check, causes ranked) and one per card
//! section. Each is one call of [`run_check`] with its scope and tuning; the `///` comments are
//! the help text Discord shows.

use poise::serenity_prelude as serenity;

use super::{chosen_cluster, cluster_names, cluster_target};
use crate::checks::flight::Tuning;
use crate::config;
use crate::discord::{render, Context, Error, UserError};
use crate::domain::display;
use crate::domain::text::clip;
use crate::domain::{guard, CheckKind, Scope};

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

/// One section of the card (`/keeper`, `/replicas`, …): the same round, guard and reply as
/// `/backup-check`, scoped to `kind`.
async fn section(ctx: Context<'_>, cluster: Option<String>, kind: CheckKind) -> Result<(), Error> {
    run_check(ctx, cluster, Scope::One(kind), Tuning::default()).await
}

/// Keeper health: four-letter words on every node, and each replica's view
#[poise::command(slash_command)]
pub async fn keeper(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
) -> Result<(), Error> {
    section(ctx, cluster, CheckKind::Keeper).await
}

/// Which replicas answer (ping, version, uptime, connection errors)
#[poise::command(slash_command)]
pub async fn replicas(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
) -> Result<(), Error> {
    section(ctx, cluster, CheckKind::Replicas).await
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
    run_check(ctx, cluster, Scope::One(CheckKind::Lag), tuning).await
}

/// Blocking operations: running backups/restores, mutations, long merges, distributed DDL
#[poise::command(slash_command)]
pub async fn blockers(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
) -> Result<(), Error> {
    section(ctx, cluster, CheckKind::Blockers).await
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
    run_check(ctx, cluster, Scope::One(CheckKind::Backups), tuning).await
}

/// Backup sync settings: Keeper retries, timeouts, differences between replicas, the backup disk
#[poise::command(slash_command)]
pub async fn settings(
    ctx: Context<'_>,
    #[description = "Cluster"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
) -> Result<(), Error> {
    section(ctx, cluster, CheckKind::Settings).await
}

/// The body of all seven: resolve the cluster and where we are, defer at once, run the checks
/// (one shared round per cluster, scope and tuning), edit the answer with the card.
pub async fn run_check(
    ctx: Context<'_>,
    cluster: Option<String>,
    scope: Scope,
    tuning: Tuning,
) -> Result<(), Error> {
    let target = checked_target(ctx, cluster)?;
    ctx.defer().await?;
    // One round per cluster, scope and tuning at a time: a storm of callers shares it.
    let reply = match ctx.data().flights.card(&target, scope, tuning).await {
        Ok(card) => card_reply(ctx, &target, &card).await,
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

/// The cluster asked for (else the channel's), refused before its secrets are read when this
/// channel may not speak about it.
fn checked_target(
    ctx: Context<'_>,
    cluster: Option<String>,
) -> Result<config::ClusterTarget, UserError> {
    // The place (guild, DM) was checked before this command ran (`place_guard`).
    let cfg = &ctx.data().config;
    let channel = ctx.channel_id().get();
    let name = chosen_cluster(ctx, cluster)?;
    if cfg.config.clusters.contains_key(&name) {
        // The channel before the secret: a refusal here reads nothing else.
        guard::may_speak(channel, cfg.allowed_channels(&name))
            .map_err(|r| UserError(r.to_string()))?;
    }
    cluster_target(ctx, &name)
}

/// The card as an embed, with its offers as buttons (and a note when actions are off).
async fn card_reply(
    ctx: Context<'_>,
    target: &config::ClusterTarget,
    card: &crate::domain::Card,
) -> serenity::EditInteractionResponse {
    let mut e = render::embed(card);
    let offers = crate::actions::offer::offers(&ctx.data().store, &target.policy, card).await;
    let actions = || card.next_steps.iter().filter_map(|s| s.action.as_ref());
    let why = if !target.policy.enabled() && actions().next().is_some() {
        Some(format!("actions are not enabled for {}", target.name))
    } else if actions().any(|a| !target.policy.offered_in_discord(a.kind())) {
        // `cli_users` alone (or no role for a kind): no button, and the footer says why.
        Some(format!(
            "no Discord role may run some of these actions on {}",
            target.name
        ))
    } else {
        None
    };
    if let Some(why) = why {
        e.footer = clip(&format!("{} · {why}", e.footer), render::FOOTER_MAX);
    }
    let mut reply = serenity::EditInteractionResponse::new()
        .embed(e.to_builder())
        .components(render::card_buttons(&offers));
    for f in e.files() {
        reply = reply.new_attachment(f);
    }
    reply
}
