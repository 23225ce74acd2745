//! `/audit`: a cluster's audit log of actions, newest first, only to the one who asked — in a
//! channel of that cluster, to a member holding one of its roles.

use super::{cluster_guard, cluster_names, requester};
use crate::discord::{render, Context, Error, UserError};

/// The audit log of a cluster's actions (newest first)
#[poise::command(slash_command)]
pub async fn audit(
    ctx: Context<'_>,
    #[description = "Cluster (default: this channel's)"]
    #[autocomplete = "cluster_names"]
    cluster: Option<String>,
    #[description = "Rows (1–50, default 20)"]
    #[min = 1]
    #[max = 50]
    limit: Option<u64>,
) -> Result<(), Error> {
    // Like the checks: the channel's cluster unless one is named, this channel allowed for it,
    // and a member who holds one of its roles (the log names who did what, and where).
    let (cluster, policy) = cluster_guard(ctx, cluster)?;
    if !policy.may_read_audit(&requester(ctx)) {
        return Err(UserError(
            "The audit log needs one of the cluster's action or approver roles ([clusters.NAME.actions])."
                .into(),
        )
        .into());
    }
    let rows = ctx
        .data()
        .store
        .audit_rows(Some(&cluster), limit.unwrap_or(20).clamp(1, 50) as usize)
        .await?;
    let e = render::audit_embed(Some(&cluster), &rows);
    ctx.send(
        poise::CreateReply::default()
            .embed(e.to_builder())
            .ephemeral(true),
    )
    .await?;
    Ok(())
}
