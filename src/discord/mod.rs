//! The Discord bot (poise on serenity): `chops serve` answers the slash commands with the card,
//! `chops register-commands` registers them. Commands are thin adapters (parse → check → render).
//!
//! Errors: a [`UserError`] is shown to the user as a short ephemeral message; anything else shows
//! "internal error, reference <id>" and is logged with that id.

pub mod buttons;
pub mod commands;
pub mod render;
pub mod speak;

use std::future::Future;
use std::sync::Arc;

use poise::serenity_prelude as serenity;

use crate::config::Secret;
use crate::domain::display::plain;
use crate::domain::guard;

/// What every command handler can reach: the application state of `chops serve`.
pub type Data = crate::app::App;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Context<'a> = poise::Context<'a, Data, Error>;

/// A problem the user can fix (unknown cluster, wrong channel, …): shown as is, ephemerally.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// Errors of `serve` / `register-commands` themselves.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// Boxed: serenity's error is large, and this one travels up through every CLI result.
    #[error("Discord: {0}")]
    Discord(Box<serenity::Error>),
    #[error("cannot open the action store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl From<serenity::Error> for BotError {
    fn from(e: serenity::Error) -> Self {
        BotError::Discord(Box::new(e))
    }
}

/// The permissions chops needs in its channels, granted by the invite URL (README): it posts
/// incident messages (view the channel, send), each with its card (embed links) and the card's
/// statements as a file (attach files), and edits them. Answers to commands and clicks go
/// through the interaction's webhook and need none; chops reads no history and mentions no one.
pub const PERMISSIONS: serenity::Permissions = serenity::Permissions::VIEW_CHANNEL
    .union(serenity::Permissions::SEND_MESSAGES)
    .union(serenity::Permissions::EMBED_LINKS)
    .union(serenity::Permissions::ATTACH_FILES);

/// Every command the bot offers.
pub fn commands() -> Vec<poise::Command<Data, Error>> {
    vec![
        commands::backup_check(),
        commands::keeper(),
        commands::replicas(),
        commands::lag(),
        commands::blockers(),
        commands::backups(),
        commands::settings(),
        commands::backup_replica(),
        commands::restart_replica(),
        commands::audit(),
        commands::explain(),
        commands::explain_message(),
        commands::chops(),
    ]
}

/// The REST client. With a proxy, every call goes to it (the rate limiter is the proxy's job).
pub fn http(token: &Secret, proxy: Option<&str>) -> serenity::Http {
    let b = serenity::HttpBuilder::new(token.expose());
    match proxy {
        Some(p) => b.proxy(p).ratelimiter_disabled(true).build(),
        None => b.build(),
    }
}

/// Register the commands: in each configured guild, or globally when none is configured.
/// Returns how many registrations were made.
pub async fn register(http: &serenity::Http, guild_ids: &[u64]) -> Result<usize, BotError> {
    if http.application_id().is_none() {
        let me = http.get_current_user().await?;
        http.set_application_id(serenity::ApplicationId::new(me.id.get()));
    }
    let cmds = commands();
    if guild_ids.is_empty() {
        poise::builtins::register_globally(http, &cmds).await?;
        return Ok(1);
    }
    for g in guild_ids {
        poise::builtins::register_in_guild(http, &cmds, serenity::GuildId::new(*g)).await?;
    }
    Ok(guild_ids.len())
}

/// DMs and guilds outside `discord.guild_ids` are refused before anything else happens.
async fn place_guard(ctx: Context<'_>) -> Result<bool, Error> {
    guard::may_speak_in(
        &ctx.data().config.config.discord.guild_ids,
        ctx.guild_id().map(|g| g.get()),
    )
    .map_err(|r| Box::new(UserError(r.to_string())) as Error)?;
    Ok(true)
}

async fn on_error(err: poise::FrameworkError<'_, Data, Error>) {
    match err {
        poise::FrameworkError::CommandCheckFailed { error, ctx, .. } => {
            // The check runs for autocomplete too: there, the refusal is an empty list.
            if let poise::Context::Application(app) = ctx {
                if app.interaction_type == poise::CommandInteractionType::Autocomplete {
                    let empty = serenity::CreateInteractionResponse::Autocomplete(
                        serenity::CreateAutocompleteResponse::new(),
                    );
                    if let Err(e) = app.interaction.create_response(ctx.http(), empty).await {
                        tracing::warn!(error = %e, "could not send the empty autocomplete");
                    }
                    return;
                }
            }
            crate::metrics::get().interaction(&ctx.command().qualified_name, "refused");
            let text = error
                .and_then(|e| e.downcast_ref::<UserError>().map(|u| u.0.clone()))
                .unwrap_or_else(|| guard::Refusal::Place.to_string());
            if let Err(e) = ctx
                .send(poise::CreateReply::default().content(text).ephemeral(true))
                .await
            {
                tracing::warn!(error = %e, "could not send the refusal");
            }
        }
        poise::FrameworkError::Command { error, ctx, .. } => {
            let user = error.downcast_ref::<UserError>();
            let outcome = if user.is_some() {
                "user_error"
            } else {
                "internal_error"
            };
            crate::metrics::get().interaction(&ctx.command().qualified_name, outcome);
            let text = match user {
                Some(u) => u.0.clone(),
                None => {
                    let r = crate::app::reference();
                    tracing::error!(reference = %r, command = %ctx.command().qualified_name, error = %plain(&error.to_string()), "command failed");
                    format!("internal error, reference {r}")
                }
            };
            if let Err(e) = ctx
                .send(poise::CreateReply::default().content(text).ephemeral(true))
                .await
            {
                tracing::warn!(error = %e, "could not send the error reply");
            }
        }
        other => {
            if let Err(e) = poise::builtins::on_error(other).await {
                tracing::warn!(error = %e, "error while handling an error");
            }
        }
    }
}

/// Connect to the gateway and answer commands for `app` until `shutdown` completes.
pub async fn bot(
    app: Data,
    token: Secret,
    speaker: Arc<speak::Speaker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BotError> {
    let guild_ids = app.config.config.discord.guild_ids.clone();
    let http = http(&token, app.config.config.discord.proxy.as_deref());
    let data = app.clone();
    let framework = poise::Framework::builder()
        .options(options())
        .setup(move |ctx, ready, _framework| Box::pin(on_ready(ctx, ready, data, guild_ids)))
        .build();
    // Slash commands arrive as interactions: no gateway intents are needed.
    let client = serenity::ClientBuilder::new_with_http(http, serenity::GatewayIntents::empty())
        .framework(framework)
        .await?;
    // Incidents are posted with the bot's own REST client (one rate limiter).
    speaker.connect(client.http.clone());
    run_client(client, &app, shutdown).await
}

/// The framework's options: the commands, the place guard, errors, metrics, mentions, buttons.
fn options() -> poise::FrameworkOptions<Data, Error> {
    poise::FrameworkOptions {
        commands: commands(),
        on_error: |e| Box::pin(on_error(e)),
        // Declared once for every command: the place guard runs before any config lookup.
        command_check: Some(|ctx| Box::pin(place_guard(ctx))),
        post_command: |ctx| {
            Box::pin(async move {
                crate::metrics::get().interaction(&ctx.command().qualified_name, "ok");
            })
        },
        // Nothing chops sends may ping anyone, whatever a name or an error text contains.
        allowed_mentions: Some(serenity::CreateAllowedMentions::new()),
        event_handler: |fw, event| Box::pin(on_event(fw, event)),
        ..Default::default()
    }
}

/// Buttons outlive the command that drew them: handled here, state in the store. Shard stages
/// feed `/readyz`.
async fn on_event(
    fw: poise::FrameworkContext<'_, Data, Error>,
    event: &serenity::FullEvent,
) -> Result<(), Error> {
    match event {
        serenity::FullEvent::InteractionCreate {
            interaction: serenity::Interaction::Component(ci),
        } => {
            buttons::handle(fw.serenity_context, fw.user_data, ci).await;
        }
        serenity::FullEvent::ShardStageUpdate { event } => {
            let up = event.new == serenity::ConnectionStage::Connected;
            fw.user_data
                .health
                .discord_connected
                .store(up, std::sync::atomic::Ordering::Relaxed);
        }
        _ => {}
    }
    Ok(())
}

/// Once connected: register the commands, mark Discord connected, finish earlier actions.
async fn on_ready(
    ctx: &serenity::Context,
    ready: &serenity::Ready,
    data: Data,
    guild_ids: Vec<u64>,
) -> Result<Data, Error> {
    // A failed registration must not stop the bot: commands registered earlier still work.
    match register(&ctx.http, &guild_ids).await {
        Ok(n) => {
            tracing::info!(user = %ready.user.name, registrations = n, "connected; commands registered")
        }
        Err(e) => {
            tracing::error!(user = %ready.user.name, error = %e, "connected; registering commands failed")
        }
    }
    data.health
        .discord_connected
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // Actions left running by an earlier process: finish their records and messages, in the
    // background (a backup may still be running for a while).
    let (http, again) = (ctx.http.clone(), data.clone());
    tokio::spawn(async move { buttons::reconcile(&http, &again).await });
    Ok(data)
}

/// Run the gateway until `shutdown`, then close the shards; give up on them after
/// [`SHUTDOWN_GRACE`].
async fn run_client(
    mut client: serenity::Client,
    app: &Data,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BotError> {
    let shards = client.shard_manager.clone();
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
        shards.shutdown_all().await;
    });
    // A shard stuck reconnecting to an unreachable gateway must not keep the process alive.
    let grace = async {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let stuck = tokio::select! {
        r = client.start() => {
            r?;
            false
        }
        _ = grace => true,
    };
    app.health
        .discord_connected
        .store(false, std::sync::atomic::Ordering::Relaxed);
    if stuck {
        tracing::warn!(
            "shards did not stop within {:?}; exiting anyway",
            SHUTDOWN_GRACE
        );
        // Dropping the client would wait for the stuck shard; the process is about to exit.
        std::mem::forget(client);
    }
    Ok(())
}

/// How long `serve` waits for the gateway connection to close after SIGINT/SIGTERM.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(4);
