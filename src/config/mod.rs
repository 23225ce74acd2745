//! Configuration: `config/chops.toml` (clusters, Keeper nodes, deadlines, thresholds) plus secrets
//! from the environment (or `.env`). Unknown keys are errors that name the key and line.
//!
//! This file is the schema and its resolution ([`Loaded`], [`ClusterTarget`]); `automation`
//! holds the tables of what `chops serve` runs besides the bot, `validate/` one validator per
//! section, `secret` the [`Secret`] type that nothing prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod automation;
mod env;
mod secret;
pub mod tls;
mod validate;

pub use automation::{
    HttpConfig, IncidentsConfig, MetricsConfig, PostWhen, Schedule, ScheduleConfig,
    SchedulerConfig, WatchConfig, WebhookConfig, DEFAULT_HTTP_LISTEN,
};
pub use secret::Secret;
pub use tls::Tls;

use crate::domain::action::ActionKind;
use crate::domain::guard::Policy;
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
    #[error("`clusters.{cluster}.{key}` names {}, which is not set in the environment or .env", env::shown(.var))]
    MissingSecret {
        cluster: String,
        /// `password_env` or `operator_password_env`.
        key: &'static str,
        var: String,
    },
    #[error("no operator account for cluster '{cluster}': set `operator_user` (and `operator_password_env`) in [clusters.{cluster}]")]
    NoOperator { cluster: String },
    #[error("`discord.token_env` names {}, which is not set in the environment or .env", env::shown(.var))]
    MissingToken { var: String },
    #[error("`webhook.token_env` names {}, which is not set in the environment or .env (or remove [webhook])", env::shown(.var))]
    MissingWebhookToken { var: String },
    #[error("`webhook.token_env` names {var}, whose token is {len} bytes: use at least {min} random bytes (e.g. `openssl rand -hex 32`), a short token can be guessed")]
    WeakWebhookToken { var: String, len: usize, min: usize },
    #[error(".env in the working directory: {0}")]
    DotEnv(String),
    /// Several problems at once, one per line (a single problem is never wrapped in this).
    #[error("{}", lines(.0))]
    Many(Vec<ConfigError>),
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
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub watch: WatchConfig,
    /// Absent: no `/alertmanager` endpoint.
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
}

/// The Discord bot (`chops serve`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// false: `chops serve` runs without the bot (as `--no-discord`).
    #[serde(default = "automation::yes")]
    pub enabled: bool,
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
            enabled: true,
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
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// What one answer may cost chops, and how many probes may be in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one successful answer (also sent as `max_result_bytes`).
    pub answer_bytes: u64,
    /// Bytes of one error answer (a server's exception text is small; default 256 KiB).
    pub error_bytes: u64,
    /// Rows of one answer (also sent as `max_result_rows`).
    pub rows: u64,
    /// Probes in flight at once for one check, half in each lane (`clickhouse::Lane`).
    pub in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            answer_bytes: 64 << 20,
            // Cards show an error's first line (≤ 2,000 characters); a stack trace fits too.
            error_bytes: 256 << 10,
            rows: 100_000,
            in_flight: 256,
        }
    }
}

/// What one answer may cost chops (`[defaults.limits]`); every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Bytes of one successful answer (default 64 MiB).
    pub max_answer_bytes: Option<u64>,
    /// Bytes of one error answer (default 256 KiB).
    pub max_error_bytes: Option<u64>,
    /// Rows of one answer (default 100000).
    pub max_rows: Option<u64>,
    /// Probes in flight at once during one check, half in each lane (default 256).
    pub max_in_flight: Option<usize>,
}

impl LimitsConfig {
    pub fn resolve(&self) -> Limits {
        let d = Limits::default();
        Limits {
            answer_bytes: self.max_answer_bytes.unwrap_or(d.answer_bytes),
            error_bytes: self.max_error_bytes.unwrap_or(d.error_bytes),
            rows: self.max_rows.unwrap_or(d.rows),
            in_flight: self.max_in_flight.unwrap_or(d.in_flight),
        }
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            deadline_ms: DEFAULT_DEADLINE_MS,
            thresholds: ThresholdsConfig::default(),
            limits: LimitsConfig::default(),
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
    /// Keeper/ZooKeeper nodes, `host:port`, or `tls://host:port` for their secure port.
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
    /// The account write actions run as (checks keep `user`). No operator: no actions.
    pub operator_user: Option<String>,
    /// Name of the environment variable holding the operator's password.
    pub operator_password_env: Option<String>,
    /// Who may run which action (default deny).
    #[serde(default)]
    pub actions: ActionsConfig,
    /// Where chops posts on its own (watcher, alerts, pre-flight) about this cluster.
    pub incidents: Option<IncidentsConfig>,
    /// The scheduled pre-flight check.
    pub schedule: Option<ScheduleConfig>,
    /// How https:// replicas and tls:// Keeper nodes are verified (and chops' client certificate).
    pub tls: Option<TlsConfig>,
}

/// `[clusters.X.tls]`. There is deliberately no key that turns verification off.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust *instead of* the built-in Mozilla roots;
    /// relative to the config file's directory.
    pub ca_file: Option<String>,
    /// PEM client certificate (chain) for servers that require one; needs `key_file`.
    pub cert_file: Option<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: Option<String>,
    /// Verify every server of the cluster against this name instead of its URL's host (also
    /// sent as SNI): for certificates issued to one shared name, or hosts reached by IP.
    pub server_name: Option<String>,
}

/// `[clusters.X.actions]`: the remediation policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsConfig {
    /// Discord role IDs that may start a per-replica backup.
    #[serde(default)]
    pub backup_roles: Vec<u64>,
    /// Discord role IDs that may restart a replica.
    #[serde(default)]
    pub restart_roles: Vec<u64>,
    /// Discord role IDs that may approve (two-person rule).
    #[serde(default)]
    pub approver_roles: Vec<u64>,
    /// OS users that may run `chops act`.
    #[serde(default)]
    pub cli_users: Vec<String>,
    /// Action kinds ("backup", "restart") that need a second member's approval.
    #[serde(default)]
    pub two_person: Vec<String>,
    #[serde(default = "default_confirm_ttl")]
    pub confirm_ttl_secs: u64,
    /// After an action on a target, the same action on it waits this long.
    #[serde(default = "default_cooldown")]
    pub cooldown_secs: u64,
    /// Run the whole flow, audited, but send nothing that writes.
    #[serde(default)]
    pub dry_run: bool,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            backup_roles: Vec::new(),
            restart_roles: Vec::new(),
            approver_roles: Vec::new(),
            cli_users: Vec::new(),
            two_person: Vec::new(),
            confirm_ttl_secs: default_confirm_ttl(),
            cooldown_secs: default_cooldown(),
            dry_run: false,
        }
    }
}

fn default_confirm_ttl() -> u64 {
    120
}
fn default_cooldown() -> u64 {
    600
}

impl ActionsConfig {
    pub fn policy(&self, has_operator: bool) -> Policy {
        Policy {
            backup_roles: self.backup_roles.clone(),
            restart_roles: self.restart_roles.clone(),
            approver_roles: self.approver_roles.clone(),
            cli_users: self.cli_users.clone(),
            two_person: self
                .two_person
                .iter()
                .filter_map(|k| ActionKind::parse(k))
                .collect(),
            confirm_ttl_secs: self.confirm_ttl_secs as i64,
            cooldown_secs: self.cooldown_secs as i64,
            dry_run: self.dry_run,
            has_operator,
        }
    }
}

/// `[store]`: the SQLite file for locks, confirmations and the audit log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Path of the file; relative paths are relative to the config file. Default `chops.db`.
    pub path: Option<String>,
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
    /// http:// or https:// URL of a host that knows the cluster.
    pub seed: String,
    /// HTTP port of discovered hosts that `hosts` does not map (an http:// seed).
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// HTTPS port of discovered hosts that `hosts` does not map (an https:// seed: they get
    /// https:// too).
    #[serde(default = "default_https_port")]
    pub https_port: u16,
    /// `host` or `host:port` (as in system.clusters) → HTTP URL.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
}

fn default_http_port() -> u16 {
    8123
}

fn default_https_port() -> u16 {
    8443
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
    pub limits: Limits,
    pub policy: Policy,
    /// TLS for https:// replicas and tls:// Keeper nodes (the built-in roots without `[tls]`).
    pub tls: Tls,
}

/// A loaded, validated config and the path it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: String,
    pub config: Config,
}

impl Loaded {
    /// Read and validate `path`. Also loads `./.env` (if any) into the environment.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        env::load_dotenv()?;
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
        validate::validate(path, &config_dir(path), &config)?;
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
                key: "password_env",
                var: var.clone(),
            })?),
        };
        let tls = Tls::load(c.tls.as_ref(), &self.dir()).map_err(|list| {
            let mut all: Vec<ConfigError> = list
                .into_iter()
                .map(|e| ConfigError::Invalid {
                    path: self.path.clone(),
                    key: format!("clusters.{}.tls.{}", crate::domain::url::shown(name), e.key),
                    message: e.message,
                })
                .collect();
            match all.len() {
                1 => all.remove(0),
                _ => ConfigError::Many(all),
            }
        })?;
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
            limits: d.limits.resolve(),
            policy: c.actions.policy(c.operator_user.is_some()),
            tls,
        })
    }

    /// What `config check` warns about without failing: passwords that would cross the network
    /// in clear (http:// to a host that is not this machine).
    pub fn warnings(&self) -> Vec<String> {
        validate::plain_password_warnings(&self.config)
    }

    /// The config file's directory: relative paths in the config are relative to it.
    pub fn dir(&self) -> PathBuf {
        config_dir(&self.path)
    }

    /// The operator account of `cluster` (user, password), for write actions only.
    pub fn operator(
        &self,
        cluster: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(String, Secret), ConfigError> {
        let c = self
            .config
            .clusters
            .get(cluster)
            .ok_or_else(|| ConfigError::UnknownCluster {
                name: cluster.to_string(),
                known: self.cluster_names().join(", "),
            })?;
        let user = c
            .operator_user
            .clone()
            .ok_or_else(|| ConfigError::NoOperator {
                cluster: cluster.to_string(),
            })?;
        let password = match &c.operator_password_env {
            None => Secret::default(),
            Some(var) => Secret::new(env(var).ok_or_else(|| ConfigError::MissingSecret {
                cluster: cluster.to_string(),
                key: "operator_password_env",
                var: var.clone(),
            })?),
        };
        Ok((user, password))
    }

    /// Every password variable the config names is set (`password_env` and
    /// `operator_password_env` of each cluster): every missing one reported at once.
    pub fn check_secrets(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let mut missing = Vec::new();
        for (cluster, c) in &self.config.clusters {
            let named = [
                ("password_env", &c.password_env),
                ("operator_password_env", &c.operator_password_env),
            ];
            for (key, var) in named {
                if let Some(var) = var.as_ref().filter(|v| env(v).is_none()) {
                    missing.push(ConfigError::MissingSecret {
                        cluster: cluster.clone(),
                        key,
                        var: var.clone(),
                    });
                }
            }
        }
        match missing.len() {
            0 => Ok(()),
            1 => Err(missing.remove(0)),
            _ => Err(ConfigError::Many(missing)),
        }
    }

    /// Where the store file is: `[store] path`, relative to the config file; default `chops.db`.
    pub fn store_path(&self) -> PathBuf {
        let p = PathBuf::from(self.config.store.path.as_deref().unwrap_or("chops.db"));
        if p.is_absolute() {
            return p;
        }
        self.dir().join(p)
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

    /// The webhook's bearer token from the variable `webhook.token_env` names: at least
    /// [`WEBHOOK_TOKEN_MIN`] bytes (the token is the webhook's only guard).
    pub fn webhook_token(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, ConfigError> {
        let var = self
            .config
            .webhook
            .as_ref()
            .map(|w| w.token_env.clone())
            .unwrap_or_default();
        let token = env(&var)
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| ConfigError::MissingWebhookToken { var: var.clone() })?;
        let len = token.trim().len();
        if len < WEBHOOK_TOKEN_MIN {
            return Err(ConfigError::WeakWebhookToken {
                var,
                len,
                min: WEBHOOK_TOKEN_MIN,
            });
        }
        Ok(Secret::new(token.trim()))
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

/// Bytes a webhook token must have at least.
pub const WEBHOOK_TOKEN_MIN: usize = 16;

/// The directory of the config file at `path` (`""` for a bare file name: the working directory).
fn config_dir(path: &str) -> PathBuf {
    Path::new(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
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

fn lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
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
    fn a_short_webhook_token_is_refused_with_its_length_never_its_value() {
        let l = Loaded::parse("c.toml", &format!("{GOOD}\n[webhook]\n")).unwrap();
        let e = l
            .webhook_token(&env_with("CHOPS_WEBHOOK_TOKEN", "  s3cret-15-bytes "))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("CHOPS_WEBHOOK_TOKEN, whose token is 15 bytes: use at least 16"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"), "{msg}");
        let ok = l.webhook_token(&env_with("CHOPS_WEBHOOK_TOKEN", "0123456789abcdef"));
        assert_eq!(ok.unwrap().expose(), "0123456789abcdef");
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

    const R: &str = "replicas = [{ name = \"r\", url = \"http://h:1\" }]\n";

    #[test]
    fn hostile_values_are_refused_without_echoing_secrets() {
        let cases: Vec<(String, &str)> = vec![
            ("[clusters.a]\nreplicas = [{ name = \"r\", url = \"HTTP://user:S3cret@h:1\" }]\n".to_string(), "`clusters.a.replicas[0].url`: credentials do not belong"),
            ("[clusters.a]\nreplicas = [{ name = \"r\", url = \"http://h:8123/?password=S3cret\" }]\n".to_string(), "`clusters.a.replicas[0].url`: query strings and fragments are not allowed (`http://h:8123/?***`)"),
            (format!("[discord]\nproxy = \"https://h:1\"\n[clusters.a]\n{R}"), "`discord.proxy`: https is not supported here"),
            ("[clusters.a]\ndiscover = { seed = \"socks5://u:S3cret@h:1\" }\n".into(), "`clusters.a.discover.seed`: only http:// and https:// URLs are supported, not socks5://"),
            ("[clusters.a]\ndiscover = { seed = \"https://h:1\", https_port = 0 }\n".into(), "`clusters.a.discover.https_port`"),
            (format!("[clusters.a]\nkeeper = [\"ssl://zk:2281\"]\n{R}"), "`clusters.a.keeper[0]`: 'ssl://zk:2281' is not host:port: Keeper nodes are host:port or tls://host:port, not ssl://"),
            (format!("[clusters.a]\n{R}[clusters.a.tls]\nverify = false\n"), "unknown field `verify`"),
            (format!("[clusters.a]\n{R}[clusters.a.tls]\nserver_name = \"a b\"\n"), "`clusters.a.tls.server_name`: 'a b' is not a valid DNS name"),
            (format!("[clusters.a]\n{R}[clusters.a.tls]\ncert_file = \"c.pem\"\n"), "`clusters.a.tls.key_file`: is needed with `cert_file`"),
            ("[clusters.a]\ndiscover = { seed = \"http://h:1\", http_port = 0 }\n".into(), "`clusters.a.discover.http_port`"),
            ("[clusters.a]\ndiscover = { seed = \"http://h:1\", hosts = { \"h:1\" = \"http://h:99999\" } }\n".into(), "`clusters.a.discover.hosts.\"h:1\"`: the port must be"),
            ("[clusters.a]\ndiscover = { seed = \"http://h:1\", hosts = { \"a b\\n\" = \"http://h:1\" } }\n".into(), "`clusters.a.discover.hosts.\"a b\\n\"`: the key must be host or host:port"),
            (format!("[discord]\nproxy = \"ftp://user:S3cret@h\"\n[clusters.a]\n{R}"), "`discord.proxy`: only http:// URLs"),
            (format!("[clusters.a]\nkeeper = [\"x;touch pwned #:2181\"]\n{R}"), "`clusters.a.keeper[0]`: 'x;touch pwned #:2181' is not host:port"),
            (format!("[clusters.a]\nkeeper = [\"u:S3cret@zk:2181\"]\n{R}"), "'***@zk:2181' is not host:port"),
            (format!("[clusters.a]\nkeeper = [\"zk\\n:1\"]\n{R}"), "'zk\\n:1' is not host:port"),
            ("[clusters.a]\nreplicas = [{ name = \"a\\nb\", url = \"http://h:1\" }]\n".into(), "`clusters.a.replicas[0].name`: 'a\\nb' contains a control character"),
            ("[clusters.a]\nreplicas = [{ name = \"r\", url = \"http://h:1\" }, { name = \"r \", url = \"http://h:2\" }]\n".into(), "`clusters.a.replicas[1].name`: 'r ' starts or ends with whitespace"),
            ("[clusters.a]\nreplicas = [{ name = \"\", url = \"http://h:1\" }]\n".into(), "must not be empty"),
            (format!("[clusters.a]\nreplicas = [{{ name = \"{}\", url = \"http://h:1\" }}]\n", "x".repeat(129)), "longer than 128"),
            ("[clusters.a]\nreplicas = [{ name = \"r\", url = \"http://h:1\" }, { name = \"r\", url = \"http://h:2\" }]\n".into(), "`clusters.a.replicas[1].name`: 'r' is listed twice"),
            ("[clusters.\"a\\nb\"]\nreplicas = [{ name = \"r\", url = \"http://h:1\" }]\n".into(), "`clusters.a\\nb`: cluster names use"),
        ];
        for (text, want) in &cases {
            let err = Loaded::parse("c.toml", text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: got {err}");
            assert!(!err.contains("S3cret"), "{text:?}: leaked: {err}");
            assert_eq!(err.lines().count(), 1, "{text:?}: {err}");
        }
    }

    #[test]
    fn good_values_pass() {
        let text = "[discord]\nproxy = \"http://127.0.0.1:8080\"\n[clusters.a]\nkeeper = [\"[::1]:2181\", \"zk-1.example.com:9181\", \"tls://zk-2:2281\"]\n\
            replicas = [{ name = \"r 1\", url = \"http://[::1]:8123\" }, { name = \"r2\", url = \"HTTP://ch-1.example.com:8123/\" }, { name = \"r3\", url = \"https://ch-3.example.com:8443\" }]\n\
            discover = { seed = \"http://127.0.0.1:8123\", hosts = { \"ch2\" = \"http://10.0.0.2:8123\", \"ch3:9000\" = \"http://h\", \"[::1]:9000\" = \"http://[::1]:8123\", \"::1\" = \"http://h\" } }\n";
        Loaded::parse("c.toml", text).unwrap();
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "[defaults]\ndeadline_ms = 5\n[clusters.a]\nkeeper = [\"zk\"]\nreplicas = [{ name = \"\", url = \"http://u:S3cret@h:1\" }]\n";
        let err = Loaded::parse("c.toml", text).unwrap_err();
        let ConfigError::Many(list) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(list.len(), 4, "{err}");
        let shown = err.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 4, "{shown}");
        assert!(
            lines[0].starts_with("c.toml: `defaults.deadline_ms`"),
            "{shown}"
        );
        assert!(lines.iter().all(|l| l.starts_with("c.toml: `")), "{shown}");
        assert!(!shown.contains("S3cret"));
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
