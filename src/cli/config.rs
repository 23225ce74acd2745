//! `chops config check`: validate the config and every secret it names, and say which clusters
//! it holds (a wrong key or a missing password variable is a usage error, exit 3).

use clap::Subcommand;

use super::UserError;
use crate::config::{self, Loaded};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config (unknown keys, values, password env vars) and report the exact key that is wrong.
    Check,
}

pub fn run(loaded: &Loaded, command: ConfigCommand) -> Result<i32, UserError> {
    match command {
        ConfigCommand::Check => check(loaded),
    }
}

fn check(loaded: &Loaded) -> Result<i32, UserError> {
    // Every password variable first (all missing ones at once), then what a target loads
    // besides (its TLS files).
    loaded.check_secrets(&config::process_env)?;
    for name in loaded.cluster_names() {
        loaded.target(Some(&name), &config::process_env)?;
    }
    if loaded.config.webhook.as_ref().is_some_and(|w| w.enabled) {
        loaded.webhook_token(&config::process_env)?;
    }
    for w in loaded.warnings() {
        let line = format!("{}: {w}", loaded.path);
        eprintln!("chops: warning: {}", crate::domain::display::plain(&line));
    }
    println!(
        "{}: ok (clusters: {})",
        loaded.path,
        loaded.cluster_names().join(", ")
    );
    Ok(0)
}
