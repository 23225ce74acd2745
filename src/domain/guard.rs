//! Guard decisions: where the bot may speak. (Remediation guards — roles, locks, cooldowns — join here.)

/// Why a command is refused in a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The guild is not in `discord.guild_ids`.
    Guild,
    /// Not a channel of the cluster's allow-list; carries the allowed channels.
    Channel { cluster: String, allowed: Vec<u64> },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Guild => write!(f, "chops is not enabled in this server."),
            Refusal::Channel { cluster, allowed } => {
                let list: Vec<String> = allowed.iter().map(|c| format!("<#{c}>")).collect();
                write!(
                    f,
                    "Cluster `{cluster}` can be checked only in {}.",
                    list.join(", ")
                )
            }
        }
    }
}

/// May a command about `cluster` run in `channel` of `guild` (None: a DM)?
/// `guild_ids` empty allows every guild (and DMs); `allowed` empty allows every channel.
pub fn may_speak(
    guild_ids: &[u64],
    guild: Option<u64>,
    channel: u64,
    cluster: &str,
    allowed: &[u64],
) -> Result<(), Refusal> {
    if !guild_ids.is_empty() && !guild.is_some_and(|g| guild_ids.contains(&g)) {
        return Err(Refusal::Guild);
    }
    if !allowed.is_empty() && !allowed.contains(&channel) {
        return Err(Refusal::Channel {
            cluster: cluster.to_string(),
            allowed: allowed.to_vec(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaking_rules() {
        let ch = |_channel: u64, a: &[u64]| Refusal::Channel {
            cluster: "prod".into(),
            allowed: a.to_vec(),
        };
        let cases: Vec<(&[u64], Option<u64>, u64, &[u64], Result<(), Refusal>)> = vec![
            (&[], None, 1, &[], Ok(())),
            (&[10], Some(10), 1, &[], Ok(())),
            (&[10], Some(11), 1, &[], Err(Refusal::Guild)),
            (&[10], None, 1, &[], Err(Refusal::Guild)),
            (&[10], Some(10), 1, &[1, 2], Ok(())),
            (&[10], Some(10), 3, &[1, 2], Err(ch(3, &[1, 2]))),
        ];
        for (guilds, guild, channel, allowed, want) in cases {
            assert_eq!(
                may_speak(guilds, guild, channel, "prod", allowed),
                want,
                "{guilds:?} {guild:?} {channel} {allowed:?}"
            );
        }
        assert_eq!(
            ch(3, &[1, 2]).to_string(),
            "Cluster `prod` can be checked only in <#1>, <#2>."
        );
    }
}
