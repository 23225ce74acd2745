//! The slash commands, one file per group; each command is a thin adapter (parse → run → render)
//! and its `///` comment is the help text Discord shows.
//!
//! - `/backup-check` and the six section commands (`/keeper`, `/replicas`, `/lag`, `/blockers`,
//!   `/backups`, `/settings`), all one body ([`checks::run_check`]) — [`checks`]
//! - `/backup-replica`, `/restart-replica` (into the button flow) — [`actions`]
//! - `/explain` and the "Explain this error" message command — [`explain`]
//! - `/audit` — [`audit`]
//! - `/chops help` — [`help`]
//!
//! Here: the autocomplete helpers the groups share.

pub mod actions;
pub mod audit;
pub mod checks;
pub mod explain;
pub mod help;

use poise::serenity_prelude as serenity;

use super::{Context, UserError};
use crate::config;
use crate::domain::action::ActionKind;
use crate::domain::display;
use crate::domain::guard::{self, ActRefusal, Policy, Requester};
use crate::domain::text::clip;

pub use actions::{backup_replica, restart_replica};
pub use audit::audit;
pub use checks::{backup_check, backups, blockers, keeper, lag, replicas, run_check, settings};
pub use explain::{explain, explain_message};
pub use help::{chops, help};

/// Cluster names from the config that start with what the user typed.
async fn cluster_names(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    choices(ctx.data().config.cluster_names(), partial)
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

/// The cluster a command is about (typed, else the channel's); without either, a user error
/// naming the configured clusters.
fn chosen_cluster(ctx: Context<'_>, typed: Option<String>) -> Result<String, UserError> {
    action_cluster(ctx, typed).ok_or_else(|| {
        UserError(format!(
            "Which cluster? Pass `cluster:` (configured: {}).",
            ctx.data().config.cluster_names().join(", ")
        ))
    })
}

/// What the config says of `cluster`, its secrets read from the environment; a failure is a
/// user error, shown escaped.
fn cluster_target(ctx: Context<'_>, cluster: &str) -> Result<config::ClusterTarget, UserError> {
    ctx.data()
        .config
        .target(Some(cluster), &config::process_env)
        .map_err(|e| UserError(display::discord(&e.to_string())))
}

/// The member behind the command, with the roles the policy looks at.
fn requester(ctx: Context<'_>) -> Requester {
    match ctx {
        poise::Context::Application(app) => {
            let ci = app.interaction;
            super::buttons::requester(&ci.user, ci.member.as_deref())
        }
        poise::Context::Prefix(_) => Requester::Discord {
            id: ctx.author().id.get(),
            name: ctx.author().name.clone(),
            roles: Vec::new(),
        },
    }
}

/// The guard of a command about `cluster` (typed, else the channel's), from the config alone —
/// before a secret is read or a replica asked: the cluster is configured and this channel may
/// speak about it. Returns the cluster's name and policy.
fn cluster_guard(ctx: Context<'_>, typed: Option<String>) -> Result<(String, Policy), UserError> {
    let cfg = &ctx.data().config;
    let name = chosen_cluster(ctx, typed)?;
    let Some(c) = cfg.config.clusters.get(&name) else {
        return Err(UserError(format!(
            "unknown cluster '{}' (configured: {})",
            display::discord(&name),
            cfg.cluster_names().join(", ")
        )));
    };
    guard::may_speak(ctx.channel_id().get(), cfg.allowed_channels(&name))
        .map_err(|r| UserError(r.to_string()))?;
    Ok((name.clone(), c.actions.policy(c.operator_user.is_some())))
}

/// [`cluster_guard`], then the member's role for `kind`: what an action command and its
/// autocompletes check before anything reaches a replica.
fn action_guard(
    ctx: Context<'_>,
    typed: Option<String>,
    kind: ActionKind,
) -> Result<String, UserError> {
    let (cluster, policy) = cluster_guard(ctx, typed)?;
    if !policy.enabled() {
        return Err(UserError(ActRefusal::NotEnabled { cluster }.to_string()));
    }
    if !policy.allows(kind, &requester(ctx)) {
        return Err(UserError(ActRefusal::NoRole { kind }.to_string()));
    }
    Ok(cluster)
}

/// At most 25 of `names` containing `partial` (any case), as autocomplete choices.
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
