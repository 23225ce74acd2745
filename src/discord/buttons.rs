//! Actions in Discord: the card's buttons and the preview's Confirm / Approve / Cancel.
//!
//! Every click is answered at once (a deferred response), then handled. A `custom_id` is
//! `chops:<verb>:<id>` where the id points into the store: what to do is read from there, never
//! from the click. State lives in SQLite, so a click after a restart of the bot still works or is
//! refused with the right reason.

use std::time::Duration;

use poise::serenity_prelude as serenity;

use super::{render, Data};
use crate::actions::{self, Actor, FlowError, Preview};
use crate::checks::Cluster;
use crate::config;
use crate::domain::action::Action;
use crate::domain::display;
use crate::domain::guard::{self, Requester};
use crate::store::{Confirmation, Transition};

/// How often a running action's message is edited (Discord rate-limits edits).
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The member behind an interaction, with the roles the policy looks at.
pub fn requester(user: &serenity::User, member: Option<&serenity::Member>) -> Requester {
    Requester::Discord {
        id: user.id.get(),
        name: user.name.clone(),
        roles: member
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default(),
    }
}

/// `guild:G/channel:C`, the place an action was asked for (audit).
pub fn place(guild: Option<serenity::GuildId>, channel: serenity::ChannelId) -> String {
    match guild {
        Some(g) => format!("guild:{}/channel:{}", g.get(), channel.get()),
        None => format!("dm/channel:{}", channel.get()),
    }
}

/// An actor for `cluster`: its replicas resolved, its operator account and policy.
pub async fn actor_parts(
    data: &Data,
    cluster: &str,
) -> Result<(Cluster, Option<(String, config::Secret)>, guard::Policy), String> {
    let cfg = &data.config;
    let target = cfg
        .target(Some(cluster), &config::process_env)
        .map_err(|e| display::discord(&e.to_string()))?;
    let operator = cfg.operator(cluster, &config::process_env).ok();
    let cl = data
        .cluster(&target)
        .await
        .map_err(|e| display::discord(&e.to_string()))?;
    // Actions need the operator account itself, not just its name in the config.
    let mut policy = target.policy;
    policy.has_operator = operator.is_some();
    Ok((cl, operator, policy))
}

fn actor<'a>(
    data: &'a Data,
    cluster: &'a Cluster,
    operator: Option<(String, config::Secret)>,
    policy: &'a guard::Policy,
) -> Actor<'a> {
    Actor {
        cluster,
        operator,
        policy,
        store: &data.store,
        follow_every: PROGRESS_EVERY,
        follow_for: None,
    }
}

async fn ephemeral(ctx: &serenity::Context, ci: &serenity::ComponentInteraction, text: &str) {
    let r = serenity::CreateInteractionResponse::Message(
        serenity::CreateInteractionResponseMessage::new()
            .content(text)
            .ephemeral(true)
            .allowed_mentions(serenity::CreateAllowedMentions::new()),
    );
    if let Err(e) = ci.create_response(&ctx.http, r).await {
        tracing::warn!(error = %e, "could not answer a click");
    }
}

async fn followup(ctx: &serenity::Context, ci: &serenity::ComponentInteraction, text: &str) {
    let f = serenity::CreateInteractionResponseFollowup::new()
        .content(text)
        .ephemeral(true)
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    if let Err(e) = ci.create_followup(&ctx.http, f).await {
        tracing::warn!(error = %e, "could not send a follow-up");
    }
}

/// Replace a message's embed (and drop or set its buttons).
async fn edit(
    ctx: &serenity::Context,
    channel: serenity::ChannelId,
    message: serenity::MessageId,
    embed: &render::Embed,
    buttons: Vec<serenity::CreateActionRow>,
) {
    let m = serenity::EditMessage::new()
        .embed(embed.to_builder())
        .components(buttons)
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    if let Err(e) = channel.edit_message(&ctx.http, message, m).await {
        tracing::warn!(error = %e, "could not edit an action message");
    }
}

/// Route a component interaction that belongs to chops.
pub async fn handle(ctx: &serenity::Context, data: &Data, ci: &serenity::ComponentInteraction) {
    let Some((verb, id)) = ci
        .data
        .custom_id
        .strip_prefix("chops:")
        .and_then(|r| r.split_once(':'))
    else {
        return;
    };
    let guild_ids = &data.config.config.discord.guild_ids;
    if let Err(r) = guard::may_speak_in(guild_ids, ci.guild_id.map(|g| g.get())) {
        return ephemeral(ctx, ci, &r.to_string()).await;
    }
    let who = requester(&ci.user, ci.member.as_ref());
    match verb {
        "offer" => offer(ctx, data, ci, id, &who).await,
        "confirm" | "approve" | "cancel" => decide(ctx, data, ci, verb, id, &who).await,
        "resolve" => resolve(ctx, data, ci, id, &who).await,
        _ => ephemeral(ctx, ci, "This button is not one of chops' any more.").await,
    }
}

/// "Mark resolved" under an incident: by a member holding one of the cluster's action roles;
/// the message is then edited by the poster like any resolution.
async fn resolve(
    ctx: &serenity::Context,
    data: &Data,
    ci: &serenity::ComponentInteraction,
    id: &str,
    who: &Requester,
) {
    let incident = match id.parse::<i64>() {
        Ok(n) => data.store.incident(n).await,
        Err(_) => Ok(None),
    };
    let incident = match incident {
        Ok(Some(i)) => i,
        Ok(None) => return ephemeral(ctx, ci, "This incident is not in chops' store.").await,
        Err(e) => return ephemeral(ctx, ci, &internal(&e.to_string())).await,
    };
    let policy = data
        .config
        .config
        .clusters
        .get(&incident.cluster)
        .map(|c| c.actions.policy(c.operator_user.is_some()))
        .unwrap_or_default();
    if !policy.may_resolve(who) {
        return ephemeral(
            ctx,
            ci,
            "Marking incidents resolved needs one of the cluster's action roles ([clusters.NAME.actions]).",
        )
        .await;
    }
    let name = match who {
        Requester::Discord { name, .. } => name.clone(),
        Requester::Cli { user } => user.clone(),
    };
    let text = format!(
        "marked resolved by {name} at {}",
        crate::domain::incident::utc(crate::clock::now())
    );
    match data.store.resolve_incident(incident.id, &text).await {
        Ok(true) => {
            tracing::info!(incident = incident.id, by = %display::plain(&who.label()), "incident marked resolved");
            data.outbox.notify_one();
            ephemeral(ctx, ci, "Marked resolved; the message says so in a moment.").await
        }
        Ok(false) => ephemeral(ctx, ci, "Already resolved.").await,
        Err(e) => ephemeral(ctx, ci, &internal(&e.to_string())).await,
    }
}

/// A card's button: its action (from the store) → the preview, posted in the channel.
async fn offer(
    ctx: &serenity::Context,
    data: &Data,
    ci: &serenity::ComponentInteraction,
    id: &str,
    who: &Requester,
) {
    let json = match data.store.offer(id, crate::clock::now()).await {
        Ok(Some(j)) => j,
        Ok(None) => {
            return ephemeral(ctx, ci, "This button expired: run /backup-check again.").await
        }
        Err(e) => return ephemeral(ctx, ci, &internal(&e.to_string())).await,
    };
    let Ok(action) = serde_json::from_str::<Action>(&json) else {
        return ephemeral(
            ctx,
            ci,
            "This button cannot be read: run /backup-check again.",
        )
        .await;
    };
    let place = place(ci.guild_id, ci.channel_id);
    start(ctx, data, Start::Component(ci), action, who, &place, false).await;
}

/// Where a preview is asked for from: a button or a slash command.
pub enum Start<'a> {
    Component(&'a serenity::ComponentInteraction),
    Command(&'a serenity::CommandInteraction),
}

impl Start<'_> {
    fn channel(&self) -> serenity::ChannelId {
        match self {
            Start::Component(ci) => ci.channel_id,
            Start::Command(ci) => ci.channel_id,
        }
    }

    async fn respond(
        &self,
        ctx: &serenity::Context,
        r: serenity::CreateInteractionResponse,
    ) -> serenity::Result<()> {
        match self {
            Start::Component(ci) => ci.create_response(&ctx.http, r).await,
            Start::Command(ci) => ci.create_response(&ctx.http, r).await,
        }
    }

    async fn edit(
        &self,
        ctx: &serenity::Context,
        e: serenity::EditInteractionResponse,
    ) -> serenity::Result<serenity::Message> {
        match self {
            Start::Component(ci) => ci.edit_response(&ctx.http, e).await,
            Start::Command(ci) => ci.edit_response(&ctx.http, e).await,
        }
    }

    /// A private refusal, at once.
    async fn refuse(&self, ctx: &serenity::Context, text: String) {
        let msg = serenity::CreateInteractionResponseMessage::new()
            .content(text)
            .ephemeral(true)
            .allowed_mentions(serenity::CreateAllowedMentions::new());
        let r = serenity::CreateInteractionResponse::Message(msg);
        if let Err(e) = self.respond(ctx, r).await {
            tracing::warn!(error = %e, "could not refuse");
        }
    }
}

/// Check the role at once (an ephemeral refusal), else answer publicly and post the preview.
pub async fn start(
    ctx: &serenity::Context,
    data: &Data,
    from: Start<'_>,
    action: Action,
    who: &Requester,
    place: &str,
    dry_run: bool,
) {
    let cluster = action.cluster().to_string();
    if let Err(r) = guard::may_speak(from.channel().get(), data.config.allowed_channels(&cluster)) {
        return from.refuse(ctx, r.to_string()).await;
    }
    let (cl, operator, policy) = match actor_parts(data, &cluster).await {
        Ok(p) => p,
        Err(e) => return from.refuse(ctx, e).await,
    };
    let actor = actor(data, &cl, operator, &policy);
    // The role is known without any probe: a refusal is private and immediate.
    if !(policy.enabled() && policy.allows(action.kind(), who)) {
        let text = match actor.request(action, who, place, dry_run).await {
            // Refusals can quote names and server text: shown through the display boundary.
            Err(FlowError::Refused(r)) => display::discord(&r.to_string()),
            Err(e) => internal(&e.to_string()),
            Ok(_) => "refused".into(),
        };
        return from.refuse(ctx, text).await;
    }
    let deferred = serenity::CreateInteractionResponse::Defer(
        serenity::CreateInteractionResponseMessage::new(),
    );
    if let Err(e) = from.respond(ctx, deferred).await {
        tracing::warn!(error = %e, "could not defer");
        return;
    }
    let (edit, preview_id) = match actor.request(action, who, place, dry_run).await {
        Ok(p) => (preview_message(&p, who), Some(p.id)),
        Err(FlowError::Refused(r)) => (
            serenity::EditInteractionResponse::new().content(display::discord(&r.to_string())),
            None,
        ),
        Err(e) => (
            serenity::EditInteractionResponse::new().content(internal(&e.to_string())),
            None,
        ),
    };
    let edit = edit.allowed_mentions(serenity::CreateAllowedMentions::new());
    match from.edit(ctx, edit).await {
        // Remembered so that a restart of the bot can still update this message.
        Ok(m) => {
            if let Some(id) = preview_id {
                if let Err(e) = data
                    .store
                    .set_message(&id, m.channel_id.get(), m.id.get())
                    .await
                {
                    tracing::warn!(error = %e, "could not remember the preview message");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not post the preview"),
    }
}

fn preview_message(p: &Preview, who: &Requester) -> serenity::EditInteractionResponse {
    let id = match who {
        Requester::Discord { id, .. } => Some(*id),
        Requester::Cli { .. } => None,
    };
    let e = render::preview_embed(p, id);
    let can_run = p.checks.iter().all(|c| c.ok);
    let mut m = serenity::EditInteractionResponse::new()
        .embed(e.to_builder())
        .components(render::preview_buttons(&p.id, p.needs_approval, can_run));
    for f in e.files() {
        m = m.new_attachment(f);
    }
    m
}

/// Confirm, Approve or Cancel on a preview.
async fn decide(
    ctx: &serenity::Context,
    data: &Data,
    ci: &serenity::ComponentInteraction,
    verb: &str,
    id: &str,
    who: &Requester,
) {
    // Acknowledge within Discord's 3 s whatever follows.
    if let Err(e) = ci
        .create_response(&ctx.http, serenity::CreateInteractionResponse::Acknowledge)
        .await
    {
        tracing::warn!(error = %e, "could not acknowledge a click");
        return;
    }
    let conf = match data.store.confirmation(id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return followup(ctx, ci, &actions::transition_text(Transition::Unknown, "")).await
        }
        Err(e) => return followup(ctx, ci, &internal(&e.to_string())).await,
    };
    let (cl, operator, policy) = match actor_parts(data, &conf.cluster).await {
        Ok(p) => p,
        Err(e) => return followup(ctx, ci, &e).await,
    };
    let actor = actor(data, &cl, operator, &policy);
    let requester = format!("<@{}>", conf.requester_id);
    let title = action_title(&conf);
    let (channel, message) = (ci.channel_id, ci.message.id);
    match verb {
        "cancel" => match actor.cancel(id, who).await {
            Ok(Transition::Done) => {
                let by = display::discord(&ci.user.name);
                let e = render::closed_embed(&title, id, &format!("Cancelled by {by}"));
                edit(ctx, channel, message, &e, vec![]).await;
            }
            Ok(t) => followup(ctx, ci, &actions::transition_text(t, &requester)).await,
            Err(e) => followup(ctx, ci, &flow_text(e)).await,
        },
        "approve" => match actor.approve(id, who).await {
            Ok(Transition::Done) => {
                followup(ctx, ci, &format!("Approved: {requester} can confirm now.")).await
            }
            Ok(t) => followup(ctx, ci, &actions::transition_text(t, &requester)).await,
            Err(e) => followup(ctx, ci, &flow_text(e)).await,
        },
        _ => confirm(ctx, ci, &actor, &conf, who, &title, &requester).await,
    }
}

async fn confirm(
    ctx: &serenity::Context,
    ci: &serenity::ComponentInteraction,
    actor: &Actor<'_>,
    conf: &Confirmation,
    who: &Requester,
    title: &str,
    requester: &str,
) {
    let (channel, message) = (ci.channel_id, ci.message.id);
    // Progress goes through a watch channel: the latest line is shown every few seconds, and
    // the action never waits for Discord.
    let (tx, mut rx) = tokio::sync::watch::channel(String::new());
    let editor = {
        let ctx = ctx.clone();
        let (title, sql, id) = (title.to_string(), conf.sql.clone(), conf.id.clone());
        tokio::spawn(async move {
            let mut shown = String::new();
            loop {
                if rx.changed().await.is_err() {
                    return;
                }
                let line = rx.borrow_and_update().clone();
                if line != shown {
                    let e = render::progress_embed(&title, &sql, &id, &line);
                    edit(&ctx, channel, message, &e, vec![]).await;
                    shown = line;
                }
                tokio::time::sleep(PROGRESS_EVERY).await;
            }
        })
    };
    let mut progress = move |line: &str| {
        let _ = tx.send(line.to_string());
    };
    let result = actor.confirm(&conf.id, who, &mut progress).await;
    drop(progress);
    let _ = editor.await;
    match result {
        Ok(Ok(outcome)) => {
            let e = render::outcome_embed(title, &conf.sql, &outcome);
            edit(ctx, channel, message, &e, vec![]).await;
        }
        Ok(Err(t)) => {
            if t == Transition::Expired {
                let e = render::closed_embed(title, &conf.id, "Expired");
                edit(ctx, channel, message, &e, vec![]).await;
            }
            followup(ctx, ci, &actions::transition_text(t, requester)).await
        }
        Err(e) => followup(ctx, ci, &flow_text(e)).await,
    }
}

fn action_title(c: &Confirmation) -> String {
    serde_json::from_str::<actions::Planned>(&c.action_json)
        .map(|p| p.action.title())
        .unwrap_or_else(|_| c.action_key.clone())
}

fn flow_text(e: FlowError) -> String {
    match e {
        FlowError::Store(e) => internal(&e.to_string()),
        other => display::discord(&other.to_string()),
    }
}

/// An internal error: logged with a reference the user can quote.
fn internal(detail: &str) -> String {
    let r = crate::app::reference();
    tracing::error!(reference = %r, error = %display::plain(detail), "action failed");
    format!("internal error, reference {r}")
}

/// After a restart of the bot: every action left running gets its end, and its message says so.
pub async fn reconcile(http: &serenity::Http, data: &Data) {
    for cluster in data.config.cluster_names() {
        let Ok((cl, operator, policy)) = actor_parts(data, &cluster).await else {
            continue;
        };
        let actor = actor(data, &cl, operator, &policy);
        let unfinished = data.store.unfinished().await.unwrap_or_default();
        let outcomes = match actor.reconcile().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(cluster = %cluster, error = %display::plain(&e.to_string()), "reconcile failed");
                continue;
            }
        };
        for o in outcomes {
            let Some(conf) = unfinished.iter().find(|c| c.id == o.id) else {
                continue;
            };
            tracing::info!(action = %o.id, state = o.state_label(), "reconciled an action left running");
            if let (Some(ch), Some(msg)) = (conf.channel_id, conf.message_id) {
                let e = render::outcome_embed(&action_title(conf), &conf.sql, &o);
                let m = serenity::EditMessage::new()
                    .embed(e.to_builder())
                    .components(vec![])
                    .allowed_mentions(serenity::CreateAllowedMentions::new());
                if let Err(e) = serenity::ChannelId::new(ch)
                    .edit_message(http, serenity::MessageId::new(msg), m)
                    .await
                {
                    tracing::warn!(error = %e, "could not update a reconciled action's message");
                }
            }
        }
    }
}
