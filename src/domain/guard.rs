//! Guard decisions: where the bot may speak. (Remediation guards — roles, locks, cooldowns — join here.)
//!
//! Two steps, in this order: the *place* (guild, DM) before anything reads the config or a secret,
//! then the *channel* of the resolved cluster. Refusals name no cluster.

/// Why a command is refused in a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A DM, or a guild not in `discord.guild_ids`.
    Place,
    /// Not a channel of the cluster's allow-list; carries the allowed channels.
    Channel { allowed: Vec<u64> },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Place => write!(
                f,
                "chops is not enabled here. Use it in a channel of your team's server."
            ),
            Refusal::Channel { allowed } => {
                let list: Vec<String> = allowed.iter().map(|c| format!("<#{c}>")).collect();
                write!(
                    f,
                    "This cluster can be checked only in {}.",
                    list.join(", ")
                )
            }
        }
    }
}

/// May chops answer in `guild` (None: a DM)? DMs never; `guild_ids` empty allows every guild.
pub fn may_speak_in(guild_ids: &[u64], guild: Option<u64>) -> Result<(), Refusal> {
    match guild {
        Some(g) if guild_ids.is_empty() || guild_ids.contains(&g) => Ok(()),
        _ => Err(Refusal::Place),
    }
}

/// May a command about a cluster run in `channel`? `allowed` empty allows every channel.
pub fn may_speak(channel: u64, allowed: &[u64]) -> Result<(), Refusal> {
    if !allowed.is_empty() && !allowed.contains(&channel) {
        return Err(Refusal::Channel {
            allowed: allowed.to_vec(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_rules() {
        let cases: Vec<(&[u64], Option<u64>, bool)> = vec![
            (&[], None, false),
            (&[], Some(7), true),
            (&[10], Some(10), true),
            (&[10], Some(11), false),
            (&[10], None, false),
        ];
        for (guilds, guild, ok) in cases {
            assert_eq!(
                may_speak_in(guilds, guild).is_ok(),
                ok,
                "{guilds:?} {guild:?}"
            );
        }
    }

    #[test]
    fn channel_rules() {
        assert_eq!(may_speak(1, &[]), Ok(()));
        assert_eq!(may_speak(1, &[1, 2]), Ok(()));
        let r = may_speak(3, &[1, 2]).unwrap_err();
        assert_eq!(
            r.to_string(),
            "This cluster can be checked only in <#1>, <#2>."
        );
    }
}
