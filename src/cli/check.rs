//! `chops check [what]`: run the checks against one cluster and print the card (terminal text or
//! JSON). Exit code from the verdict: 0 healthy, 1 degraded, 2 failing.

use std::io::IsTerminal;

use clap::ValueEnum;

use super::UserError;
use crate::checks::Cluster;
use crate::config::{self, Loaded};
use crate::domain::{CheckKind, Scope};
use crate::render;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// `backup` runs every check and ranks the causes; the others print one section.
    #[arg(value_enum, default_value_t = What::Backup)]
    pub what: What,
    /// Cluster name from the config (default: the only one configured).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Print the card as JSON.
    #[arg(long)]
    pub json: bool,
    /// Deadline per check and probe in ms, overriding the config (100–60000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub deadline_ms: Option<u64>,
    /// Colour: auto (only on a terminal), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Show why each cause ranks where it does (its score, fact by fact; also in --json).
    #[arg(long)]
    pub explain_ranking: bool,
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

impl What {
    fn scope(self) -> Scope {
        match self {
            What::Backup => Scope::Full,
            What::Keeper => Scope::One(CheckKind::Keeper),
            What::Replicas => Scope::One(CheckKind::Replicas),
            What::Lag => Scope::One(CheckKind::Lag),
            What::Blockers => Scope::One(CheckKind::Blockers),
            What::Backups => Scope::One(CheckKind::Backups),
            What::Settings => Scope::One(CheckKind::Settings),
        }
    }
}

impl Color {
    /// Whether to colour stdout: `auto` only on a terminal, and not when `NO_COLOR` is set.
    fn on(self) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

pub async fn run(loaded: &Loaded, args: CheckArgs) -> Result<i32, UserError> {
    let mut target = loaded.target(args.cluster.as_deref(), &config::process_env)?;
    if let Some(ms) = args.deadline_ms {
        target.deadline = std::time::Duration::from_millis(ms);
    }
    let cluster = Cluster::connect(&target).await?;
    let card = cluster.check(args.what.scope()).await;
    if args.json {
        println!("{}", render::json(&card));
    } else {
        print!(
            "{}",
            render::terminal::render_with(&card, args.color.on(), args.explain_ranking)
        );
    }
    Ok(card.verdict.exit_code())
}
