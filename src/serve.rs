//! `chops serve`, the composition root: builds the [`App`] state and starts the bot, the HTTP
//! server, the watcher, the scheduler and the incident poster together; stops them on one signal.
//! Nothing imports this module back (only the CLI calls [`run`]).
//!
//! Shutdown: the signal stops the HTTP server accepting (requests in flight finish), the watcher
//! and scheduler stop between rounds, the poster finishes the post it is sending, the gateway
//! closes; whatever is still running after [`SHUTDOWN_GRACE`] is abandoned so the process exits.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{stopped, App, Speak};
use crate::config::{ConfigError, Loaded, Secret};
use crate::discord::speak::Speaker;
use crate::store::{Store, StoreError};

/// From the signal to exit, at most.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bot(#[from] crate::discord::BotError),
}

/// How to run.
#[derive(Default)]
pub struct Options {
    /// Post nowhere and do not connect to Discord (metrics, webhooks, dry runs, tests).
    pub no_discord: bool,
    /// The bot token (required unless `no_discord`).
    pub token: Option<Secret>,
    /// Serve HTTP on this listener instead of binding `[http] listen` (tests bind port 0).
    pub listener: Option<TcpListener>,
    /// Told the HTTP address once it listens (`chops serve` prints it).
    pub on_listen: Option<Box<dyn FnOnce(std::net::SocketAddr) + Send>>,
}

/// Runs every enabled part until `shutdown` completes, then stops them (≤ [`SHUTDOWN_GRACE`]).
pub async fn run(
    loaded: Loaded,
    mut opts: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let cfg = &loaded.config;
    opts.no_discord |= !cfg.discord.enabled;
    let webhook_token = match &cfg.webhook {
        Some(w) if w.enabled => Some(loaded.webhook_token(&crate::config::process_env)?),
        _ => None,
    };
    init_metrics(&loaded);
    let store = open_store(&loaded).await?;
    let listener = listen(&loaded, opts.listener.take()).await?;
    let speaker = Arc::new(if opts.no_discord {
        Speaker::nowhere()
    } else {
        Speaker::discord()
    });
    let mut app = App::new(Arc::new(loaded), store, speaker.clone() as Arc<dyn Speak>);
    app.webhook_token = webhook_token;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = start(&app, listener, opts.on_listen.take(), &stop_rx);
    let signalled = Arc::new(std::sync::OnceLock::new());
    let at = signalled.clone();
    let health = app.health.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down");
        health.stopping.store(true, Ordering::Relaxed);
        let _ = at.set(tokio::time::Instant::now());
        let _ = stop_tx.send(true);
    };
    let result = if opts.no_discord {
        signal.await;
        Ok(())
    } else {
        let token = opts.token.take().ok_or(ConfigError::MissingToken {
            var: app.config.config.discord.token_env.clone(),
        })?;
        crate::discord::bot(app.clone(), token, speaker, signal)
            .await
            .map_err(RunError::from)
    };
    // Everything got the stop signal with the bot's: the rest shares the same grace period.
    let deadline = signalled
        .get()
        .copied()
        .unwrap_or_else(tokio::time::Instant::now)
        + SHUTDOWN_GRACE
        - Duration::from_millis(300);
    let _ = tokio::time::timeout_at(deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    result
}

/// Opens the store and verifies the audit's hash chain before anything acts: a broken chain
/// refuses actions, sets the metric and makes `/readyz` say why (see `store::audit`).
async fn open_store(loaded: &Loaded) -> Result<Store, RunError> {
    let store = Store::open(&loaded.store_path())?;
    if let Err(broken) = store.verify_audit().await? {
        tracing::error!(%broken, "the audit log does not verify: actions are refused (chops audit --verify)");
    }
    Ok(store)
}

/// Replica labels as configured; every command's interaction counters start at zero.
fn init_metrics(loaded: &Loaded) {
    let metrics = crate::metrics::get();
    metrics.set_replica_labels(loaded.config.metrics.replica_labels);
    let names: Vec<String> = crate::discord::commands()
        .iter()
        .map(|c| c.qualified_name.to_string())
        .collect();
    metrics.init_interactions(&names);
}

/// The HTTP listener: the one given, else `[http] listen` bound; none when HTTP is off.
async fn listen(
    loaded: &Loaded,
    given: Option<TcpListener>,
) -> Result<Option<TcpListener>, RunError> {
    let http = &loaded.config.http;
    match (http.enabled, given) {
        (false, _) => Ok(None),
        (true, Some(l)) => Ok(Some(l)),
        (true, None) => TcpListener::bind(&http.listen)
            .await
            .map(Some)
            .map_err(|source| RunError::Listen {
                addr: http.listen.clone(),
                source,
            }),
    }
}

/// Start the HTTP server (telling `on_listen` its address), the incident poster, and the
/// watcher and scheduler when enabled; each stops when `stop` turns true.
fn start(
    app: &App,
    listener: Option<TcpListener>,
    on_listen: Option<Box<dyn FnOnce(std::net::SocketAddr) + Send>>,
    stop: &watch::Receiver<bool>,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(listener) = listener {
        if let (Some(tell), Ok(addr)) = (on_listen, listener.local_addr()) {
            tell(addr);
        }
        tasks.spawn(crate::http::serve(
            listener,
            app.clone(),
            stopped(stop.clone()),
        ));
    }
    tasks.spawn(crate::automation::outbox::run(app.clone(), stop.clone()));
    if app.config.config.watch.enabled {
        tasks.spawn(crate::automation::watch::run(app.clone(), stop.clone()));
    }
    if app.config.config.scheduler.enabled {
        tasks.spawn(crate::automation::schedule::run(app.clone(), stop.clone()));
    }
    tasks
}
