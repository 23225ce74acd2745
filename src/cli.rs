//! The command line: `chops check …` and `chops config check`. Parses, runs, prints, and maps the
//! outcome to an exit code (0 healthy, 1 degraded, 2 failing, 3 usage/config error).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::checks::{Cluster, SetupError};
use crate::config::{self, ConfigError, Loaded};
use crate::discord::{self, BotError};
use crate::domain::CheckKind;
use crate::render;

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
    Check {
        /// `backup` runs every check and ranks the causes; the others print one section.
        #[arg(value_enum, default_value_t = What::Backup)]
        what: What,
        /// Cluster name from the config (default: the only one configured).
        #[arg(long)]
        cluster: Option<String>,
        /// Print the card as JSON.
        #[arg(long)]
        json: bool,
        /// Deadline per check and probe in ms, overriding the config (100–60000).
        #[arg(long, value_parser = clap::value_parser!(u64).range(100..=60_000))]
        deadline_ms: Option<u64>,
        /// Colour: auto (only on a terminal), always, never.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
    },
    /// Run the Discord bot until SIGINT/SIGTERM (token from the env var `discord.token_env` names).
    Serve,
    /// Register the slash commands (in each `discord.guild_ids` guild, else globally) and exit.
    RegisterCommands,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config (unknown keys, values, password env vars) and report the exact key that is wrong.
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    Backup,
    Keeper,
    Replicas,
    Lag,
    Blockers,
    Backups,
    Settings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
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
}

impl What {
    fn kinds(self) -> (&'static str, Vec<CheckKind>) {
        let one = |k: CheckKind| (k.name(), vec![k]);
        match self {
            What::Backup => ("backup", CheckKind::ALL.to_vec()),
            What::Keeper => one(CheckKind::Keeper),
            What::Replicas => one(CheckKind::Replicas),
            What::Lag => one(CheckKind::Lag),
            What::Blockers => one(CheckKind::Blockers),
            What::Backups => one(CheckKind::Backups),
            What::Settings => one(CheckKind::Settings),
        }
    }
}

/// Run a parsed command; returns the exit code. Output goes to stdout, errors to stderr.
pub async fn run(cli: Cli) -> i32 {
    match execute(cli).await {
        Ok(code) => code,
        Err(e) => {
            // One line per problem, each through the display boundary (config text is untrusted).
            for line in e.to_string().lines() {
                eprintln!("chops: {}", crate::render::display::plain(line));
            }
            EXIT_USAGE
        }
    }
}

async fn execute(cli: Cli) -> Result<i32, UserError> {
    let path = config::resolve_path(cli.config);
    let loaded = Loaded::load(&path)?;
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            for name in loaded.cluster_names() {
                loaded.target(Some(&name), &config::process_env)?;
            }
            println!(
                "{}: ok (clusters: {})",
                loaded.path,
                loaded.cluster_names().join(", ")
            );
            Ok(0)
        }
        Command::Serve => {
            let token = loaded.discord_token(&config::process_env)?;
            discord::serve(loaded, token, shutdown_signal()).await?;
            Ok(0)
        }
        Command::RegisterCommands => {
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
        Command::Check {
            what,
            cluster,
            json,
            color,
            deadline_ms,
        } => {
            let mut target = loaded.target(cluster.as_deref(), &config::process_env)?;
            if let Some(ms) = deadline_ms {
                target.deadline = std::time::Duration::from_millis(ms);
            }
            let cluster = Cluster::connect(&target).await?;
            let (scope, kinds) = what.kinds();
            let card = cluster.check(scope, &kinds).await;
            if json {
                println!("{}", render::json(&card));
            } else {
                let color = match color {
                    Color::Always => true,
                    Color::Never => false,
                    Color::Auto => {
                        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                    }
                };
                print!("{}", render::terminal::render(&card, color));
            }
            Ok(card.verdict.exit_code())
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
