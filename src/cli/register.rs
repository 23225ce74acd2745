//! `chops register-commands`: register the slash commands (in each `discord.guild_ids` guild,
//! else globally) and exit.

use super::UserError;
use crate::config::{self, Loaded};
use crate::discord;

pub async fn run(loaded: &Loaded) -> Result<i32, UserError> {
    let token = loaded.discord_token(&config::process_env)?;
    let http = discord::http(&token, loaded.config.discord.proxy.as_deref());
    let n = discord::register(&http, &loaded.config.discord.guild_ids).await?;
    let scope = if loaded.config.discord.guild_ids.is_empty() {
        "globally".to_string()
    } else {
        format!("in {n} guild(s)")
    };
    println!("registered {} commands {scope}", discord::commands().len());
    Ok(0)
}
