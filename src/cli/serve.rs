//! `chops serve`: reads the token, then hands over to the composition root ([`crate::serve::run`])
//! until SIGINT or SIGTERM.

use super::UserError;
use crate::config::{self, Loaded};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Do not connect to Discord: each incident and resolution is printed on stdout, one line each
    /// (metrics, webhooks, dry runs).
    #[arg(long)]
    pub no_discord: bool,
}

pub async fn run(loaded: Loaded, args: ServeArgs) -> Result<i32, UserError> {
    let no_discord = args.no_discord || !loaded.config.discord.enabled;
    let token = if no_discord {
        None
    } else {
        Some(loaded.discord_token(&config::process_env)?)
    };
    let opts = crate::serve::Options {
        no_discord,
        token,
        listener: None,
        on_listen: Some(Box::new(|addr| {
            use std::io::Write;
            // One line scripts and tests can read (the port may have been 0).
            println!("chops: listening on http://{addr}");
            let _ = std::io::stdout().flush();
        })),
    };
    crate::serve::run(loaded, opts, shutdown_signal()).await?;
    Ok(0)
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
