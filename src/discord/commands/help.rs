//! `/chops help`: what chops can do here, listed from the registered commands themselves.

use crate::discord::{Context, Error};

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
