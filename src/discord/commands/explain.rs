//! `/explain` (a pasted error text) and the "Explain this error" message command: classify the
//! text and answer with the explanation embed.

use poise::serenity_prelude as serenity;

use crate::discord::{render, Context, Error, UserError};

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
    let mut reply = poise::CreateReply::default()
        .embed(embed.to_builder())
        .ephemeral(ephemeral);
    for f in embed.files() {
        reply = reply.attachment(f);
    }
    ctx.send(reply).await?;
    Ok(())
}
