//! The incident poster: every incident recorded but not yet in its channel (or resolved but not
//! yet shown so) is delivered here — after a crash too, since the store is the queue. A failed
//! post is retried with a backoff; on shutdown the post being sent is finished, no new one starts.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::app::SpeakError;
use crate::checks::flight::Tuning;
use crate::clock::now;
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
                for batch in batches(due) {
                    if *stop.borrow() {
                        return;
                    }
                    deliver_batch(&app, batch).await;
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

/// Incidents one message may show together.
const BATCH_MAX: usize = 50;

/// What goes out together: alerts not yet posted of one cluster and channel (an Alertmanager
/// group, a storm) in one message, likewise replicas not answering (chops' own network, a zone
/// down); posted incidents due for an edit of the same message in one edit; everything else
/// alone. Order is kept.
pub fn batches(due: Vec<Incident>) -> Vec<Vec<Incident>> {
    let mut out: Vec<Vec<Incident>> = Vec::new();
    for i in due {
        if i.posted && i.message_id.is_some() {
            let same = out.iter_mut().find(|b| {
                b[0].posted && b[0].message_id == i.message_id && b[0].channel_id == i.channel_id
            });
            if let Some(b) = same {
                b.push(i);
                continue;
            }
            out.push(vec![i]);
            continue;
        }
        let groupable =
            !i.posted && matches!(i.detail, Detail::Alert { .. } | Detail::Unreachable { .. });
        if groupable {
            let with = out.iter_mut().find(|b| {
                let f = &b[0];
                !f.posted
                    && f.detail.kind() == i.detail.kind()
                    && f.cluster == i.cluster
                    && f.channel_id == i.channel_id
                    && b.len() < BATCH_MAX
            });
            if let Some(b) = with {
                b.push(i);
                continue;
            }
        }
        out.push(vec![i]);
    }
    out
}

/// Post one incident, or edit its message (resolved, or another replica joined).
pub async fn deliver(app: &App, i: Incident) {
    deliver_batch(app, vec![i]).await
}

/// How one delivery went.
enum Try {
    Done,
    /// Not tried (not connected yet, or stopping): no try spent, the next pass sends it.
    NotNow,
    Failed(String),
}

/// Post `batch` as one message, or edit the message its first incident is on (every incident
/// that message shows, as they are now).
async fn deliver_batch(app: &App, batch: Vec<Incident>) {
    let Some(first) = batch.first().cloned() else {
        return;
    };
    let Some(channel) = first
        .channel_id
        .or_else(|| app.incident_channel(&first.cluster))
    else {
        tracing::warn!(incident = first.id, cluster = %crate::domain::display::plain(&first.cluster),
            "incident has no channel ([clusters.NAME.incidents] channel); recorded only");
        let _ = app.store.mark_posted(&batch, None, None).await;
        return;
    };
    let tried = if first.posted {
        edit(app, channel, &first, &batch).await
    } else {
        post(app, channel, &first, &batch).await
    };
    if let Try::Failed(e) = tried {
        retry_later(app, channel, &batch, &e).await;
    }
}

/// A new message for `batch`, with the card of its cluster and the card's runnable steps as
/// buttons (guarded on click like those under /backup-check); header only after a few failed
/// tries.
async fn post(app: &App, channel: u64, first: &Incident, batch: &[Incident]) -> Try {
    let (mut card, mut note) = card_for(app, batch).await;
    if first.attempts >= PLAIN_AFTER {
        card = None;
        note = Some("The card could not be posted here; run /backup-check.".into());
    }
    let target = app
        .config
        .target(Some(&first.cluster), &crate::config::process_env);
    let offers = match (&card, target) {
        (Some(c), Ok(t)) => crate::actions::offer::offers(&app.store, &t.policy, c).await,
        _ => Vec::new(),
    };
    // The check may have used up the grace period: the next start posts it instead.
    if app.health.stopping.load(Ordering::Relaxed) {
        return Try::NotNow;
    }
    match app
        .speaker
        .post(channel, batch, card.as_deref(), note.as_deref(), &offers)
        .await
    {
        Ok(message) => {
            crate::metrics::get().message_posted(batch.iter().map(|i| i.detail.kind().as_str()));
            match app.store.mark_posted(batch, Some(channel), message).await {
                Ok(()) => Try::Done,
                Err(e) => {
                    // In the channel but not recorded so: a retry with the same nonce returns
                    // this message instead of a second one.
                    tracing::error!(error = %e, "incident posted but not recorded as posted");
                    Try::Failed(e.to_string())
                }
            }
        }
        // Not connected yet: not the incident's fault, no try spent.
        Err(SpeakError::NotConnected) => Try::NotNow,
        Err(e) => Try::Failed(e.to_string()),
    }
}

/// Resolved, or its header changed: the same message is edited (never a second one), showing
/// every incident on it as they are now.
async fn edit(app: &App, channel: u64, first: &Incident, batch: &[Incident]) -> Try {
    let all = match first.message_id {
        Some(m) => match app.store.incidents_on_message(channel, m).await {
            Ok(all) if !all.is_empty() => all,
            Ok(_) => batch.to_vec(),
            // Never rewrite a shared message from part of what it shows.
            Err(e) => return Try::Failed(e.to_string()),
        },
        None => batch.to_vec(),
    };
    let shown = match first.message_id {
        Some(m) => app.speaker.edit(channel, m, &all).await,
        None => Ok(()),
    };
    match shown {
        Ok(()) => match app.store.mark_edited(&all).await {
            Ok(()) => Try::Done,
            Err(e) => Try::Failed(e.to_string()),
        },
        Err(SpeakError::NotConnected) => Try::NotNow,
        Err(e) => Try::Failed(e.to_string()),
    }
}

/// One message, one backoff: its incidents are tried again together (or given up on together).
async fn retry_later(app: &App, channel: u64, batch: &[Incident], e: &str) {
    let e = crate::domain::display::plain(e);
    let first = batch.first().map_or(0, |i| i.id);
    let ids: Vec<i64> = batch.iter().map(|i| i.id).collect();
    let gave_up = app
        .store
        .retry_later(&ids, now(), MAX_ATTEMPTS)
        .await
        .unwrap_or(false);
    if gave_up {
        crate::metrics::get().incident_given_up();
        tracing::error!(incident = first, together = ids.len(), channel, error = %e,
            "incident post failed; giving up (does the bot see the channel and may it send there?)");
    } else {
        tracing::warn!(incident = first, together = ids.len(), channel, error = %e,
            "incident post failed; will retry");
    }
}

/// The card a message is posted with: the full check of its cluster, shared with any round in
/// flight. None (with a note) when the cluster cannot be checked; none for alerts that were all
/// resolved already when they arrived.
async fn card_for(
    app: &App,
    batch: &[Incident],
) -> (Option<std::sync::Arc<crate::domain::Card>>, Option<String>) {
    let Some(first) = batch.first() else {
        return (None, None);
    };
    if batch
        .iter()
        .all(|i| matches!(i.detail, Detail::Alert { .. }) && i.resolution.is_some())
    {
        return (None, None);
    }
    let target = match app
        .config
        .target(Some(&first.cluster), &crate::config::process_env)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::Op;

    fn incident(id: i64, cluster: &str, detail: Detail, posted: bool) -> Incident {
        Incident {
            id,
            cluster: cluster.into(),
            detail,
            channel_id: Some(7),
            message_id: posted.then_some(70),
            posted,
            resolution: None,
            attempts: 0,
            edit_due: false,
            created_at: 0,
        }
    }

    fn alert(n: &str) -> Detail {
        Detail::Alert {
            alertname: n.into(),
            severity: String::new(),
            summary: String::new(),
            description: String::new(),
            generator_url: String::new(),
            links: Vec::new(),
            truncated: 0,
            starts_at: String::new(),
        }
    }

    fn down(r: &str) -> Detail {
        Detail::Unreachable {
            replica: r.into(),
            since: 0,
            error: String::new(),
        }
    }

    #[test]
    fn alerts_and_silent_replicas_of_one_cluster_go_out_together() {
        let failure = Detail::Operation {
            op: Op::Backup,
            status: "BACKUP_FAILED".into(),
            name: "n".into(),
            replicas: vec!["r1".into()],
            error: String::new(),
            start: 0,
            end: 0,
        };
        let due = vec![
            incident(1, "prod", alert("A"), false),
            incident(2, "prod", down("r1"), false),
            incident(3, "prod", alert("B"), false),
            incident(4, "stage", alert("C"), false),
            incident(5, "prod", failure.clone(), false),
            incident(6, "prod", failure, false),
            incident(7, "prod", down("r2"), false),
            // Posted ones due for an edit: one edit per message.
            incident(8, "prod", alert("D"), true),
            incident(9, "prod", alert("E"), true),
        ];
        let ids: Vec<Vec<i64>> = batches(due)
            .iter()
            .map(|b| b.iter().map(|i| i.id).collect())
            .collect();
        assert_eq!(
            ids,
            [
                vec![1, 3],
                vec![2, 7],
                vec![4],
                vec![5],
                vec![6],
                vec![8, 9]
            ]
        );
    }

    #[test]
    fn a_batch_holds_at_most_batch_max() {
        let due: Vec<Incident> = (0..(BATCH_MAX as i64 + 1))
            .map(|i| incident(i, "prod", alert("A"), false))
            .collect();
        let sizes: Vec<usize> = batches(due).iter().map(Vec::len).collect();
        assert_eq!(sizes, [BATCH_MAX, 1]);
    }
}
