//! The application state of `chops serve` (config, store, check rounds, where incidents go,
//! health), built once by the composition root (`serve`) and shared by the bot, the HTTP server,
//! the watcher, the scheduler and the incident poster. Only state lives here: the parts that use
//! it import it, and the composition root that starts them sits above them all.
//!
//! Where incidents go is the [`Speak`] trait, so this state need not know the bot: the Discord
//! speaker (`discord::speak`) or stdout (`chops serve --no-discord`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::{watch, Notify, Semaphore};

use crate::checks::flight::Flights;
use crate::checks::{Cluster, SetupError};
use crate::config::{ClusterTarget, Loaded, Secret};
use crate::domain::incident::{Counted, Incident};
use crate::domain::Card;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum SpeakError {
    #[error("Discord is not connected yet")]
    NotConnected,
    #[error("Discord: {0}")]
    Discord(Box<dyn std::error::Error + Send + Sync>),
}

/// Where incident messages go: Discord, or stdout (`--no-discord`: one line per message).
pub trait Speak: Send + Sync {
    /// True when messages reach a channel (false: `--no-discord`).
    fn posts_to_discord(&self) -> bool;

    /// Posts a new message ([`Post`]): the header, then the card when there is one; returns the
    /// message id (None when posting nowhere).
    fn post<'a>(&'a self, post: Post<'a>) -> BoxFuture<'a, Result<Option<u64>, SpeakError>>;

    /// Rewrites the header of a posted message (every incident it shows, as they are now); with
    /// no message (`--no-discord`), says the update once more.
    fn edit<'a>(
        &'a self,
        channel: Option<u64>,
        message: Option<u64>,
        incidents: &'a [Incident],
        counted: Counted,
    ) -> BoxFuture<'a, Result<(), SpeakError>>;
}

/// A new incident message, as [`Speak::post`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct Post<'a> {
    /// Where it goes (None: printed only).
    pub channel: Option<u64>,
    /// One incident, or several of one kind posted together.
    pub incidents: &'a [Incident],
    /// How many more of a storm the header counts.
    pub counted: Counted,
    pub card: Option<&'a Card>,
    /// A line after the header (why there is no card, say).
    pub note: Option<&'a str>,
    /// The card's runnable steps as buttons: (label, custom id).
    pub offers: &'a [(String, String)],
}

/// What `/readyz` reports besides the store.
#[derive(Debug, Default)]
pub struct Health {
    pub discord_enabled: bool,
    pub discord_connected: AtomicBool,
    /// The stop signal came: start no new post.
    pub stopping: AtomicBool,
    /// Why the audit's hash chain did not verify at start (actions are refused meanwhile).
    pub audit_broken: std::sync::Mutex<Option<String>>,
}

impl Health {
    /// Why the audit's hash chain did not verify at start, if it did not.
    pub fn audit_broken(&self) -> Option<String> {
        self.audit_broken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Shared by every part of `chops serve` (cheap to clone).
#[derive(Clone)]
pub struct App {
    pub config: Arc<Loaded>,
    /// Offers, confirmations, locks, audit, incidents (one SQLite file, shared with `chops act`).
    pub store: Store,
    /// Resolved clusters and single-flight check rounds.
    pub flights: Arc<Flights>,
    /// Where incident messages go.
    pub speaker: Arc<dyn Speak>,
    pub health: Arc<Health>,
    /// Wakes the incident poster when something new is recorded.
    pub outbox: Arc<Notify>,
    /// The webhook's bearer token (None: no webhook).
    pub webhook_token: Option<Secret>,
    /// Bytes of webhook bodies in flight, one permit a byte (`[http] max_body_bytes_in_flight`).
    pub body_bytes: Arc<Semaphore>,
}

impl App {
    pub fn new(config: Arc<Loaded>, store: Store, speaker: Arc<dyn Speak>) -> App {
        let in_flight = config.config.http.max_body_bytes_in_flight;
        let body_bytes = Arc::new(Semaphore::new(
            usize::try_from(in_flight)
                .map_or(Semaphore::MAX_PERMITS, |n| n.min(Semaphore::MAX_PERMITS)),
        ));
        App {
            body_bytes,
            health: Arc::new(Health {
                discord_enabled: speaker.posts_to_discord(),
                discord_connected: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                audit_broken: std::sync::Mutex::new(store.chain_broken()),
            }),
            config,
            store,
            flights: Arc::default(),
            speaker,
            outbox: Arc::default(),
            webhook_token: None,
        }
    }

    /// `target` ready for a check round (resolved once, then reused for a while).
    pub async fn cluster(&self, target: &ClusterTarget) -> Result<Cluster, SetupError> {
        self.flights.cluster(target).await
    }

    /// The incident channel of `cluster`, if it has one.
    pub fn incident_channel(&self, cluster: &str) -> Option<u64> {
        self.config
            .config
            .clusters
            .get(cluster)
            .and_then(|c| c.incidents.as_ref())
            .map(|i| i.channel)
    }

    pub fn discord_connected(&self) -> bool {
        self.health.discord_connected.load(Ordering::Relaxed)
    }
}

/// Completes when the stop flag turns true (or its sender is gone).
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A short reference that ties an "internal error" message to its log line (random, so two
/// processes never hand out the same one).
pub fn reference() -> String {
    format!("{:08x}", crate::clock::random_u64() as u32)
}
