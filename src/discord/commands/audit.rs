//! `/audit`: the audit log of actions, newest first, only to the one who asked.

use super::cluster_names;
use crate::discord::{render, Context, Error, UserError};
use crate::domain::guard;

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
