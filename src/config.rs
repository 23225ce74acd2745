//! Configuration: `config/chops.toml` (clusters, Keeper nodes, deadlines, thresholds) plus secrets
//! from the environment (or `.env`). Unknown keys are errors that name the key and line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::thresholds::{Levels, Thresholds};

pub const DEFAULT_PATH: &str = "config/chops.toml";
const DEFAULT_DEADLINE_MS: u64 = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("no config at {path}: copy config/chops.example.toml there, or pass --config / set CHOPS_CONFIG")]
    Missing { path: String },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
    #[error("unknown cluster '{name}' (configured: {known})")]
    UnknownCluster { name: String, known: String },
    #[error("several clusters are configured ({known}): pick one with --cluster")]
    NoDefaultCluster { known: String },
    #[error("`clusters.{cluster}.password_env` names {var}, which is not set in the environment or .env")]
    MissingSecret { cluster: String, var: String },
    #[error("`discord.token_env` names {var}, which is not set in the environment or .env")]
    MissingToken { var: String },
}

/// A secret string: never shown by Debug or Display.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterConfig>,
    #[serde(default)]
    pub discord: DiscordConfig,
}

/// The Discord bot (`chops serve`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// Guilds where commands are registered (guild-scoped, instant) and answered. Empty: global.
    #[serde(default)]
    pub guild_ids: Vec<u64>,
    /// Environment variable (or `.env` key) holding the bot token.
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// Send Discord API calls through this HTTP proxy (e.g. a rate-limit proxy), `http://host:port`.
    pub proxy: Option<String>,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            guild_ids: Vec::new(),
            token_env: default_token_env(),
            proxy: None,
        }
    }
}

fn default_token_env() -> String {
    "DISCORD_TOKEN".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default = "default_deadline")]
    pub deadline_ms: u64,
    #[serde(default)]
    pub thresholds: ThresholdsConfig,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            deadline_ms: DEFAULT_DEADLINE_MS,
            thresholds: ThresholdsConfig::default(),
        }
    }
}

fn default_deadline() -> u64 {
    DEFAULT_DEADLINE_MS
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsConfig {
    pub delay_secs: Option<Levels>,
    pub queue_size: Option<Levels>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Replicas listed by hand.
    #[serde(default)]
    pub replicas: Vec<ReplicaConfig>,
    /// Or discovered from `system.clusters` on a seed host.
    pub discover: Option<DiscoverConfig>,
    /// Keeper/ZooKeeper nodes, `host:port`.
    #[serde(default)]
    pub keeper: Vec<String>,
    #[serde(default = "default_user")]
    pub user: String,
    /// Name of the environment variable that holds the password (never the password itself).
    pub password_env: Option<String>,
    pub deadline_ms: Option<u64>,
    pub thresholds: Option<ThresholdsConfig>,
    #[serde(default = "default_disk")]
    pub backup_disk: String,
    /// Name of the cluster in the servers' remote_servers, if it differs from the key.
    pub remote_cluster: Option<String>,
    /// Discord channel IDs where this cluster may be checked; the first cluster that lists a
    /// channel is that channel's default. Empty: any channel of an allowed guild.
    #[serde(default)]
    pub channels: Vec<u64>,
}

fn default_user() -> String {
    "default".into()
}
fn default_disk() -> String {
    "backups".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    pub name: String,
    pub url: String,
    pub shard: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverConfig {
    /// HTTP URL of a host that knows the cluster.
    pub seed: String,
    /// HTTP port of discovered hosts that `hosts` does not map.
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// `host` or `host:port` (as in system.clusters) → HTTP URL.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
}

fn default_http_port() -> u16 {
    8123
}

/// One cluster, validated, with its secret resolved: what the checks run against.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    pub name: String,
    pub remote_cluster: String,
    pub replicas: Vec<ReplicaConfig>,
    pub discover: Option<DiscoverConfig>,
    pub keeper: Vec<String>,
    pub user: String,
    pub password: Secret,
    pub deadline: Duration,
    pub thresholds: Thresholds,
    pub backup_disk: String,
}

/// A loaded, validated config and the path it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: String,
    pub config: Config,
}

impl Loaded {
    /// Read and validate `path`. Also loads `.env` (if any) into the environment.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let _ = dotenvy::dotenv();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ConfigError::Missing {
                path: shown.clone(),
            },
            _ => ConfigError::Read {
                path: shown.clone(),
                source,
            },
        })?;
        Loaded::parse(&shown, &text)
    }

    pub fn parse(path: &str, text: &str) -> Result<Loaded, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
        validate(path, &config)?;
        Ok(Loaded {
            path: path.to_string(),
            config,
        })
    }

    pub fn cluster_names(&self) -> Vec<String> {
        self.config.clusters.keys().cloned().collect()
    }

    /// The named cluster, or the only one when `name` is None; with its password resolved.
    pub fn target(
        &self,
        name: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ClusterTarget, ConfigError> {
        let known = self.cluster_names().join(", ");
        let (name, c) = match name {
            Some(n) => self.config.clusters.get_key_value(n).ok_or_else(|| {
                ConfigError::UnknownCluster {
                    name: n.to_string(),
                    known: known.clone(),
                }
            })?,
            None if self.config.clusters.len() == 1 => {
                self.config.clusters.iter().next().expect("one cluster")
            }
            None => return Err(ConfigError::NoDefaultCluster { known }),
        };
        let password = match &c.password_env {
            None => Secret::default(),
            Some(var) => Secret::new(env(var).ok_or_else(|| ConfigError::MissingSecret {
                cluster: name.clone(),
                var: var.clone(),
            })?),
        };
        let d = &self.config.defaults;
        let t = c.thresholds.as_ref();
        let base = Thresholds::default();
        Ok(ClusterTarget {
            name: name.clone(),
            remote_cluster: c.remote_cluster.clone().unwrap_or_else(|| name.clone()),
            replicas: c.replicas.clone(),
            discover: c.discover.clone(),
            keeper: c.keeper.clone(),
            user: c.user.clone(),
            password,
            deadline: Duration::from_millis(c.deadline_ms.unwrap_or(d.deadline_ms)),
            thresholds: Thresholds {
                delay_secs: t
                    .and_then(|t| t.delay_secs)
                    .or(d.thresholds.delay_secs)
                    .unwrap_or(base.delay_secs),
                queue_size: t
                    .and_then(|t| t.queue_size)
                    .or(d.thresholds.queue_size)
                    .unwrap_or(base.queue_size),
            },
            backup_disk: c.backup_disk.clone(),
        })
    }

    /// The bot token from the variable `discord.token_env` names.
    pub fn discord_token(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, ConfigError> {
        let var = &self.config.discord.token_env;
        env(var)
            .filter(|t| !t.trim().is_empty())
            .map(|t| Secret::new(t.trim()))
            .ok_or_else(|| ConfigError::MissingToken { var: var.clone() })
    }

    /// The cluster a Discord channel defaults to: the first that lists it, else the only one.
    pub fn channel_cluster(&self, channel: u64) -> Option<String> {
        self.config
            .clusters
            .iter()
            .find(|(_, c)| c.channels.contains(&channel))
            .map(|(n, _)| n.clone())
            .or_else(|| (self.config.clusters.len() == 1).then(|| self.cluster_names().remove(0)))
    }

    /// Channels where `cluster` may be checked (empty: any channel).
    pub fn allowed_channels(&self, cluster: &str) -> &[u64] {
        self.config
            .clusters
            .get(cluster)
            .map(|c| c.channels.as_slice())
            .unwrap_or(&[])
    }
}

/// The process environment (after `.env` was loaded).
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// Where the config is: `--config`, else `$CHOPS_CONFIG`, else `config/chops.toml`.
pub fn resolve_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("CHOPS_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

fn parse_error(path: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map(|s| s.start).unwrap_or(0);
    let line = text[..offset.min(text.len())].matches('\n').count() + 1;
    // Name the table the offending key sits in, so "unknown field `x`" says where.
    let table = text[..offset.min(text.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| format!(" (in {l})"))
        .unwrap_or_default();
    ConfigError::Parse {
        path: path.to_string(),
        line,
        message: format!(
            "{}{table}",
            e.message().split_whitespace().collect::<Vec<_>>().join(" ")
        ),
    }
}

fn invalid(path: &str, key: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_string(),
        key,
        message: message.into(),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn check_url(path: &str, key: String, url: &str) -> Result<(), ConfigError> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.starts_with("https://") {
            invalid(path, key, "https is not supported by this build; use http:// (e.g. through a local TLS proxy)")
        } else {
            invalid(path, key, format!("'{url}' is not an http:// URL"))
        });
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err(invalid(
            path,
            key,
            "credentials do not belong in the URL; set `user` and `password_env`",
        ));
    }
    if authority.is_empty() {
        return Err(invalid(path, key, format!("'{url}' has no host")));
    }
    Ok(())
}

fn check_levels(path: &str, key: String, l: &Option<Levels>) -> Result<(), ConfigError> {
    match l {
        Some(l) if !l.is_ascending() => Err(invalid(
            path,
            key,
            "must satisfy moderate < major < critical",
        )),
        _ => Ok(()),
    }
}

fn check_deadline(path: &str, key: String, ms: u64) -> Result<(), ConfigError> {
    if !(100..=60_000).contains(&ms) {
        return Err(invalid(
            path,
            key,
            format!("{ms} is out of range (100..=60000 ms)"),
        ));
    }
    Ok(())
}

fn validate(path: &str, c: &Config) -> Result<(), ConfigError> {
    check_deadline(path, "defaults.deadline_ms".into(), c.defaults.deadline_ms)?;
    check_levels(
        path,
        "defaults.thresholds.delay_secs".into(),
        &c.defaults.thresholds.delay_secs,
    )?;
    check_levels(
        path,
        "defaults.thresholds.queue_size".into(),
        &c.defaults.thresholds.queue_size,
    )?;
    if c.clusters.is_empty() {
        return Err(invalid(path, "clusters".into(), "no cluster is configured"));
    }
    if let Some(p) = &c.discord.proxy {
        check_url(path, "discord.proxy".into(), p)?;
    }
    if !c
        .discord
        .token_env
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        || c.discord.token_env.is_empty()
    {
        return Err(invalid(
            path,
            "discord.token_env".into(),
            "must be the NAME of an environment variable, e.g. DISCORD_TOKEN",
        ));
    }
    for (name, cl) in &c.clusters {
        let k = |s: &str| format!("clusters.{name}.{s}");
        if !valid_name(name) {
            return Err(invalid(
                path,
                format!("clusters.{name}"),
                "cluster names use letters, digits, '_', '.', '-'",
            ));
        }
        if cl.replicas.is_empty() && cl.discover.is_none() {
            return Err(invalid(
                path,
                format!("clusters.{name}"),
                "needs `replicas` or `discover`",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in cl.replicas.iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(invalid(
                    path,
                    k(&format!("replicas[{i}].name")),
                    "must not be empty",
                ));
            }
            if !seen.insert(r.name.as_str()) {
                return Err(invalid(
                    path,
                    k(&format!("replicas[{i}].name")),
                    format!("'{}' is listed twice", r.name),
                ));
            }
            check_url(path, k(&format!("replicas[{i}].url")), &r.url)?;
        }
        if let Some(d) = &cl.discover {
            check_url(path, k("discover.seed"), &d.seed)?;
            for (h, u) in &d.hosts {
                check_url(path, k(&format!("discover.hosts.\"{h}\"")), u)?;
            }
        }
        for (i, node) in cl.keeper.iter().enumerate() {
            let ok = node
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(invalid(
                    path,
                    k(&format!("keeper[{i}]")),
                    format!("'{node}' is not host:port"),
                ));
            }
        }
        if let Some(var) = &cl.password_env {
            let ok = !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(invalid(
                    path,
                    k("password_env"),
                    "must be the NAME of an environment variable, e.g. CLICKHOUSE_PASSWORD",
                ));
            }
        }
        if let Some(ms) = cl.deadline_ms {
            check_deadline(path, k("deadline_ms"), ms)?;
        }
        if let Some(t) = &cl.thresholds {
            check_levels(path, k("thresholds.delay_secs"), &t.delay_secs)?;
            check_levels(path, k("thresholds.queue_size"), &t.queue_size)?;
        }
        if !valid_name(&cl.backup_disk) {
            return Err(invalid(
                path,
                k("backup_disk"),
                "disk names use letters, digits, '_', '.', '-'",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[defaults]
deadline_ms = 1500

[clusters.prod]
keeper = ["zk1:2181", "zk2:2181"]
user = "chops"
password_env = "CH_PASSWORD"
[[clusters.prod.replicas]]
name = "r1"
url = "http://ch1:8123"

[clusters.disc]
discover = { seed = "http://ch1:8123", hosts = { "ch2:9000" = "http://10.0.0.2:8123" } }
"#;

    fn env_with(var: &'static str, val: &'static str) -> impl Fn(&str) -> Option<String> {
        move |k| (k == var).then(|| val.to_string())
    }

    #[test]
    fn loads_and_resolves() {
        let l = Loaded::parse("c.toml", GOOD).unwrap();
        let t = l
            .target(Some("prod"), &env_with("CH_PASSWORD", "s3cret"))
            .unwrap();
        assert_eq!(t.deadline, Duration::from_millis(1500));
        assert_eq!(t.password.expose(), "s3cret");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(t.thresholds, Thresholds::default());
        assert_eq!(l.target(Some("disc"), &|_| None).unwrap().user, "default");
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            ("[clusters.a]\nreplicas = [{ name = \"r\", url = \"http://h:1\" }]\ndedline_ms = 5\n", "c.toml:3: unknown field `dedline_ms`"),
            ("[clusters.a]\nreplicas = [{ name = \"r\", url = \"ftp://h\" }]\n", "`clusters.a.replicas[0].url`"),
            ("[clusters.a]\nreplicas = [{ name = \"r\", url = \"http://u:p@h:1\" }]\n", "credentials do not belong"),
            ("[clusters.a]\nkeeper = [\"zk\"]\nreplicas = [{ name = \"r\", url = \"http://h:1\" }]\n", "`clusters.a.keeper[0]`"),
            ("[clusters.a]\ndeadline_ms = 5\nreplicas = [{ name = \"r\", url = \"http://h:1\" }]\n", "`clusters.a.deadline_ms`"),
            ("[clusters.a]\npassword_env = \"hunter2!\"\nreplicas = [{ name = \"r\", url = \"http://h:1\" }]\n", "`clusters.a.password_env`"),
            ("[clusters.a]\n", "needs `replicas` or `discover`"),
            ("", "no cluster is configured"),
            ("[clusters.a\n", "c.toml:1:"),
            ("[defaults.thresholds]\ndelay_secs = { moderate = 5, major = 4, critical = 9 }\n[clusters.a]\nreplicas = [{ name = \"r\", url = \"http://h:1\" }]\n", "moderate < major"),
        ];
        for (text, want) in cases {
            let err = Loaded::parse("c.toml", text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: got {err}");
        }
    }

    #[test]
    fn cluster_selection_and_secrets() {
        let l = Loaded::parse("c.toml", GOOD).unwrap();
        let e = l.target(Some("nope"), &|_| None).unwrap_err().to_string();
        assert_eq!(e, "unknown cluster 'nope' (configured: disc, prod)");
        assert!(matches!(
            l.target(None, &|_| None),
            Err(ConfigError::NoDefaultCluster { .. })
        ));
        let e = l.target(Some("prod"), &|_| None).unwrap_err().to_string();
        assert!(e.contains("CH_PASSWORD") && e.contains("not set"), "{e}");
    }
}
