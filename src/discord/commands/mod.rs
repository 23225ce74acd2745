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

use super::Context;
use crate::domain::display;
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
