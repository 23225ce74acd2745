//! `[discord]`: the proxy URL and the name of the token's variable.

use super::{env_name_ok, Problems};
use crate::config::DiscordConfig;

pub(super) fn check(d: &DiscordConfig, p: &mut Problems<'_>) {
    if let Some(proxy) = &d.proxy {
        p.url("discord.proxy".into(), proxy);
    }
    if !env_name_ok(&d.token_env) {
        p.add(
            "discord.token_env".into(),
            "must be the NAME of an environment variable, e.g. DISCORD_TOKEN",
        );
    }
}
