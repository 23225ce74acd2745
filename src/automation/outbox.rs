//! The incident poster: every incident recorded but not yet in its channel (or resolved but not
//! yet shown so) is delivered here — after a crash too, since the store is the queue. A failed
//! post is retried with a backoff; on shutdown the post being sent is finished, no new one starts.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use super::now;
use crate::app::App;
use crate::checks::flight::Tuning;
use crate::discord::speak::SpeakError;
use crate::domain::incident::{Detail, Incident};
use crate::domain::Scope;

/// A post that keeps failing is given up after this many tries (backoff up to 5 min: ~24 h, so
/// a Discord outage overnight loses nothing).
pub const MAX_ATTEMPTS: u32 = 300;

/// From this try on, the post goes without the card (header only): a channel where the bot may
/// not embed links or attach files still gets told.
const PLAIN_AFTER: u32 = 3;

/// Deliver due incidents until `stop` turns true.
pub async fn run(app: App, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        match app.store.due_incidents(now()).await {
            Ok(due) => {
                for i in due {
                    if *stop.borrow() {
                        return;
                    }
                    deliver(&app, i).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "incident poster: cannot read the store"),
        }
        // Woken by a new record, or each second for backoffs that came due.
        tokio::select! {
            _ = app.outbox.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            r = stop.changed() => if r.is_err() { return },
        }
    }
}

/// Post one incident, or edit its message (resolved, or another replica joined).
pub async fn deliver(app: &App, i: Incident) {
    let kind = i.detail.kind().as_str();
    let Some(channel) = i.channel_id.or_else(|| app.incident_channel(&i.cluster)) else {
        tracing::warn!(incident = i.id, cluster = %crate::render::display::plain(&i.cluster),
            "incident has no channel ([clusters.NAME.incidents] channel); recorded only");
        let _ = app.store.mark_posted(i.id, None, None, &i).await;
        return;
    };
    let result = if !i.posted {
        let (mut card, mut note) = card_for(app, &i).await;
        if i.attempts >= PLAIN_AFTER {
            card = None;
            note = Some("The card could not be posted here; run /backup-check.".into());
        }
        // The card's next steps as buttons, guarded on click like those under /backup-check.
        let offers = match (
            &card,
            app.config
                .target(Some(&i.cluster), &crate::config::process_env),
        ) {
            (Some(c), Ok(t)) => crate::discord::buttons::offers(&app.store, &t.policy, c).await,
            _ => Vec::new(),
        };
        // The check may have used up the grace period: the next start posts it instead.
        if app.health.stopping.load(Ordering::Relaxed) {
            return;
        }
        match app
            .speaker
            .post(channel, &i, card.as_deref(), note.as_deref(), &offers)
            .await
        {
            Ok(message) => {
                crate::metrics::get().incident_posted(kind);
                app.store
                    .mark_posted(i.id, Some(channel), message, &i)
                    .await
                    .map_err(|e| e.to_string())
            }
            // Not connected yet: not the incident's fault, no try spent.
            Err(SpeakError::NotConnected) => return,
            Err(e) => Err(e.to_string()),
        }
    } else {
        // Resolved, or its header changed: the same message is edited, never a second one.
        let shown = match i.message_id {
            Some(m) => app.speaker.edit(channel, m, &i).await,
            None => Ok(()),
        };
        match shown {
            Ok(()) => app
                .store
                .mark_edited(i.id, &i)
                .await
                .map_err(|e| e.to_string()),
            Err(SpeakError::NotConnected) => return,
            Err(e) => Err(e.to_string()),
        }
    };
    if let Err(e) = result {
        let gave_up = app
            .store
            .retry_later(i.id, now(), MAX_ATTEMPTS)
            .await
            .unwrap_or(false);
        let e = crate::render::display::plain(&e);
        if gave_up {
            crate::metrics::get().incident_given_up();
            tracing::error!(incident = i.id, channel, error = %e,
                "incident post failed; giving up (does the bot see the channel and may it send there?)");
        } else {
            tracing::warn!(incident = i.id, channel, error = %e, "incident post failed; will retry");
        }
    }
}

/// The card an incident is posted with: the full check of its cluster, shared with any round in
/// flight. None (with a note) when the cluster cannot be checked; none for an alert that was
/// already resolved when it arrived.
async fn card_for(
    app: &App,
    i: &Incident,
) -> (Option<std::sync::Arc<crate::domain::Card>>, Option<String>) {
    if matches!(i.detail, Detail::Alert { .. }) && i.resolution.is_some() {
        return (None, None);
    }
    let target = match app
        .config
        .target(Some(&i.cluster), &crate::config::process_env)
    {
        Ok(t) => t,
        Err(e) => return (None, Some(format!("No card: {e}"))),
    };
    match app
        .flights
        .card(&target, Scope::Full, Tuning::default())
        .await
    {
        Ok(card) => (Some(card), None),
        Err(e) => (None, Some(format!("No card: {e}"))),
    }
}
