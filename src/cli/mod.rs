//! The command line: parses, runs one subcommand, prints, and maps the outcome to an exit code
//! (0 healthy/done, 1 degraded/refused, 2 failing/failed, 3 usage or config error, 4 an action
//! still running when `chops act` stopped following it).
//!
//! One file per subcommand group:
//! - `chops check [backup|keeper|replicas|lag|blockers|backups|settings]` — [`check`]
//! - `chops act backup|restart-replica` — [`act`]
//! - `chops explain` — [`explain`]
//! - `chops audit` — [`audit`]
//! - `chops serve` — [`serve`]
//! - `chops register-commands` — [`register`]
//! - `chops healthcheck` — [`healthcheck`]
//! - `chops config check` — [`config`]
//!
//! `explain` and `healthcheck` run without reading the config (explain reads it only for
//! `--cluster`); every other subcommand gets the loaded config.

pub mod act;
pub mod audit;
pub mod check;
pub mod config;
pub mod explain;
pub mod healthcheck;
pub mod register;
pub mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::checks::SetupError;
use crate::config::{ConfigError, Loaded};
use crate::discord::BotError;

pub use act::{ActArgs, ActCommand};
pub use check::{Color, What};
pub use config::ConfigCommand;

pub const EXIT_USAGE: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "chops",
    version,
    about = "Diagnose ClickHouse backup/restore sync failures (code 655) and guide the fix"
)]
pub struct Cli {
    /// Config file [default: $CHOPS_CONFIG, else config/chops.toml]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the checks against a cluster and print the diagnosis card.
    Check(check::CheckArgs),
    /// Run the bot, the HTTP server (/livez, /readyz, /metrics, /alertmanager), the backup
    /// watcher and the pre-flight schedules until SIGINT/SIGTERM (token from `discord.token_env`).
    Serve(serve::ServeArgs),
    /// Ask a running `chops serve` whether it is up (for container health checks): exit 0 on a
    /// 2xx answer from the URL, 1 otherwise.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Register the slash commands (in each `discord.guild_ids` guild, else globally) and exit.
    RegisterCommands,
    /// Run a remediation on one replica, guarded like the bot's buttons: policy (`cli_users`),
    /// live preconditions, confirmation, lock, audit, progress.
    Act {
        #[command(subcommand)]
        what: ActCommand,
    },
    /// Classify one error text (a failed BACKUP/RESTORE message, a log line): category, causes,
    /// code, host, meaning, next steps. Exit 3 for an empty text.
    Explain(explain::ExplainArgs),
    /// Show the audit log of actions (newest first).
    Audit(audit::AuditArgs),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// Errors shown to the user as one line, exit code 3.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Bot(#[from] BotError),
    #[error(transparent)]
    Flow(#[from] crate::actions::FlowError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Run(#[from] crate::serve::RunError),
    #[error("{0}")]
    Usage(String),
}

impl UserError {
    /// One line per problem, shown: only a list of config problems spans lines; anything else
    /// (a name typed with a newline in it, too) stays one escaped line.
    fn lines(&self) -> Vec<String> {
        match self {
            UserError::Config(ConfigError::Many(list))
            | UserError::Run(crate::serve::RunError::Config(ConfigError::Many(list))) => list
                .iter()
                .map(|e| crate::domain::display::plain(&e.to_string()))
                .collect(),
            e => vec![crate::domain::display::plain(&e.to_string())],
        }
    }
}

/// Run a parsed command; returns the exit code. Output goes to stdout, errors to stderr.
pub async fn run(cli: Cli) -> i32 {
    match execute(cli).await {
        Ok(code) => code,
        Err(e) => {
            // One line per problem, each through the display boundary (config text is untrusted).
            for line in e.lines() {
                eprintln!("chops: {line}");
            }
            EXIT_USAGE
        }
    }
}

async fn execute(cli: Cli) -> Result<i32, UserError> {
    let flag = cli.config;
    match cli.command {
        Command::Explain(args) => explain::run(flag, args).await,
        Command::Healthcheck(args) => Ok(healthcheck::run(&args.url).await),
        Command::Config { command } => config::run(&load(flag)?, command),
        Command::Serve(args) => serve::run(load(flag)?, args).await,
        Command::RegisterCommands => register::run(&load(flag)?).await,
        Command::Act { what } => act::run(&load(flag)?, what).await,
        Command::Audit(args) => audit::run(&load(flag)?, args).await,
        Command::Check(args) => check::run(&load(flag)?, args).await,
    }
}

/// The config named by `--config` (else `$CHOPS_CONFIG`, else the default path), loaded.
fn load(flag: Option<PathBuf>) -> Result<Loaded, UserError> {
    Ok(Loaded::load(&crate::config::resolve_path(flag))?)
}
