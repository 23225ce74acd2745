//! The incident poster: every incident recorded but not yet in its channel (or resolved but not
//! yet shown so) is delivered here — after a crash too, since the store is the queue. A failed
//! post is retried with a backoff; on shutdown the post being sent is finished, no new one starts.
//!
//! Fair and bounded under floods: each pass delivers one round — every due incident of the
//! watcher and the scheduler first, then one message per cluster, round-robin — and reads the
//! store again, so an incident recorded during one cluster's alert storm waits at most one round
//! of posts, never the storm. A storm is one message per cluster and channel: it lists the first
//! alerts and counts the rest ("… and 8,950 more alerts"); the counted alerts are marked
//! delivered with that message (they stay recorded, resolvable and in `/metrics`), and their
//! resolutions show as the message's resolved count when it is edited.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::app::{Post, SpeakError};
use crate::checks::flight::Tuning;
use crate::clock::now;
use crate::domain::incident::{Counted, Detail, Incident, Kind};
use crate::domain::Scope;

/// A post that keeps failing is given up after this many tries (backoff up to 5 min: ~24 h, so
/// a Discord outage overnight loses nothing).
pub const MAX_ATTEMPTS: u32 = 300;

/// From this try on, the post goes without the card (header only): a channel where the bot may
/// not embed links or attach files still gets told.
const PLAIN_AFTER: u32 = 3;

/// Deliver due incidents until `stop` turns true.
pub async fn run(app: App, mut stop: watch::Receiver<bool>) {
    let mut last: Option<String> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let mut progress = false;
        match app.store.due_incidents(now()).await {
            Ok(due) => {
                for batch in round(batches(due), &mut last) {
                    if *stop.borrow() {
                        return;
                    }
                    progress |= deliver_batch(&app, batch).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "incident poster: cannot read the store"),
        }
        if progress {
            // More may be due (the next round of a storm): read again at once.
            continue;
        }
        // Woken by a new record, or each second for backoffs that came due.
        tokio::select! {
            _ = app.outbox.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            r = stop.changed() => if r.is_err() { return },
        }
    }
}

/// One round of `batches`: every batch of the watcher and the scheduler (failed operations,
/// replicas not answering, pre-flights) in order, then one batch of alerts per cluster, taking the
/// clusters in turn from the one after `last` (the cluster served last, updated here).
pub fn round(batches: Vec<Vec<Incident>>, last: &mut Option<String>) -> Vec<Vec<Incident>> {
    let (mut out, alerts): (Vec<_>, Vec<_>) = batches
        .into_iter()
        .partition(|b| b.first().is_some_and(|i| i.detail.kind() != Kind::Alert));
    let mut firsts: Vec<Vec<Incident>> = Vec::new();
    for b in alerts {
        if !firsts.iter().any(|f| f[0].cluster == b[0].cluster) {
            firsts.push(b);
        }
    }
    firsts.sort_by(|a, b| a[0].cluster.cmp(&b[0].cluster));
    // Clusters after the last one served come first, then the others (round-robin by name).
    let after = last.clone();
    firsts.sort_by_key(|b| after.as_ref().is_some_and(|l| b[0].cluster <= *l));
    if let Some(b) = firsts.last() {
        *last = Some(b[0].cluster.clone());
    }
    out.extend(firsts);
    out
}

/// Incidents one message may list together (a storm's others are counted).
const BATCH_MAX: usize = crate::store::LISTED;

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
    deliver_batch(app, vec![i]).await;
}

/// How one delivery went.
enum Try {
    Done,
    /// Not tried (not connected yet, or stopping): no try spent, the next pass sends it.
    NotNow,
    Failed(String),
}

/// Post `batch` as one message, or edit the message its first incident is on (every incident
/// that message shows, as they are now). Returns whether the store changed (delivered, or a try
/// spent); false when it was not tried.
async fn deliver_batch(app: &App, batch: Vec<Incident>) -> bool {
    let Some(first) = batch.first().cloned() else {
        return false;
    };
    let channel = first
        .channel_id
        .or_else(|| app.incident_channel(&first.cluster));
    if channel.is_none() && app.speaker.posts_to_discord() {
        tracing::warn!(incident = first.id, cluster = %crate::domain::display::plain(&first.cluster),
            "incident has no channel ([clusters.NAME.incidents] channel); recorded only");
        let _ = app.store.mark_posted(&batch, None, None).await;
        return true;
    }
    let tried = if first.posted {
        edit(app, channel, &first, &batch).await
    } else {
        post(app, channel, &first, &batch).await
    };
    match tried {
        Try::Done => true,
        Try::NotNow => false,
        Try::Failed(e) => {
            retry_later(app, channel, &batch, &e).await;
            true
        }
    }
}

/// A new message for `batch`, with the card of its cluster and the card's runnable steps as
/// buttons (guarded on click like those under /backup-check); header only after a few failed
/// tries. A batch of alerts also counts the cluster's other unposted alerts (a storm).
async fn post(app: &App, channel: Option<u64>, first: &Incident, batch: &[Incident]) -> Try {
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
    // Counted after the card: alerts recorded while it was checked join this message.
    let storm = match storm_of(app, batch).await {
        Ok(storm) => storm,
        Err(e) => return Try::Failed(e.to_string()),
    };
    // The check may have used up the grace period: the next start posts it instead.
    if app.health.stopping.load(Ordering::Relaxed) {
        return Try::NotNow;
    }
    let counted = storm.map(|s| s.0).unwrap_or_default();
    let message = Post {
        channel,
        incidents: batch,
        counted,
        card: card.as_deref(),
        note: note.as_deref(),
        offers: &offers,
    };
    match app.speaker.post(message).await {
        Ok(message) => {
            crate::metrics::get().message_posted(batch.iter().map(|i| i.detail.kind().as_str()));
            posted(app, channel, batch, storm, message).await
        }
        // Not connected yet: not the incident's fault, no try spent.
        Err(SpeakError::NotConnected) => Try::NotNow,
        Err(e) => Try::Failed(e.to_string()),
    }
}

/// The rest of a storm a batch of unposted alerts counts: (how many, the range of ids), when any.
async fn storm_of(
    app: &App,
    batch: &[Incident],
) -> Result<Option<(Counted, (i64, i64))>, crate::store::StoreError> {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return Ok(None);
    };
    if first.posted || first.detail.kind() != Kind::Alert {
        return Ok(None);
    }
    let (counted, upto) = app
        .store
        .storm_rest(&first.cluster, first.channel_id, last.id)
        .await?;
    Ok((counted.alerts > 0).then_some((counted, (last.id, upto))))
}

/// Records a message as delivered: the batch, and the storm it counted.
async fn posted(
    app: &App,
    channel: Option<u64>,
    batch: &[Incident],
    storm: Option<(Counted, (i64, i64))>,
    message: Option<u64>,
) -> Try {
    let first = &batch[0];
    let mut marked = app.store.mark_posted(batch, channel, message).await;
    if let (Ok(()), Some((counted, ids))) = (&marked, storm) {
        crate::metrics::get().incidents_posted_n(Kind::Alert.as_str(), counted.alerts as u64);
        marked = app
            .store
            .mark_counted(&first.cluster, first.channel_id, ids, message)
            .await
            .map(drop);
    }
    match marked {
        Ok(()) => Try::Done,
        Err(e) => {
            // In the channel but not recorded so: a retry with the same nonce returns this
            // message instead of a second one.
            tracing::error!(error = %e, "incident posted but not recorded as posted");
            Try::Failed(e.to_string())
        }
    }
}

/// Resolved, or its header changed: the same message is edited (never a second one), showing
/// every incident on it as they are now (a storm's first ones listed, the rest counted).
/// Without a message (`--no-discord`), the update is said once more.
async fn edit(app: &App, channel: Option<u64>, first: &Incident, batch: &[Incident]) -> Try {
    let (all, counted, unshown) = match (channel, first.message_id) {
        (Some(c), Some(m)) => match app.store.message_listing(c, m).await {
            Ok((all, counted, unshown)) if !all.is_empty() => (all, counted, unshown),
            Ok(_) => (batch.to_vec(), Counted::default(), Vec::new()),
            // Never rewrite a shared message from part of what it shows.
            Err(e) => return Try::Failed(e.to_string()),
        },
        _ => (batch.to_vec(), Counted::default(), Vec::new()),
    };
    let shown = if first.message_id.is_some() || !app.speaker.posts_to_discord() {
        app.speaker
            .edit(channel, first.message_id, &all, counted)
            .await
    } else {
        Ok(())
    };
    match shown {
        Ok(()) => match app.store.mark_edited(&all).await {
            Ok(()) => match app.store.mark_resolutions_shown(unshown).await {
                Ok(()) => Try::Done,
                Err(e) => Try::Failed(e.to_string()),
            },
            Err(e) => Try::Failed(e.to_string()),
        },
        Err(SpeakError::NotConnected) => Try::NotNow,
        Err(e) => Try::Failed(e.to_string()),
    }
}

/// One message, one backoff: its incidents are tried again together (or given up on together).
async fn retry_later(app: &App, channel: Option<u64>, batch: &[Incident], e: &str) {
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
        tracing::error!(incident = first, together = ids.len(), channel = ?channel, error = %e,
            "incident post failed; giving up (does the bot see the channel and may it send there?)");
    } else {
        tracing::warn!(incident = first, together = ids.len(), channel = ?channel, error = %e,
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

    /// A failed backup the watcher saw.
    fn failure() -> Detail {
        Detail::Operation {
            op: Op::Backup,
            status: "BACKUP_FAILED".into(),
            name: "n".into(),
            replicas: vec!["r1".into()],
            error: String::new(),
            start: 0,
            end: 0,
        }
    }

    #[test]
    fn alerts_and_silent_replicas_of_one_cluster_go_out_together() {
        let failure = failure();
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
        assert_eq!(
            ids(&batches(due)),
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

    fn ids(round: &[Vec<Incident>]) -> Vec<Vec<i64>> {
        round
            .iter()
            .map(|b| b.iter().map(|i| i.id).collect())
            .collect()
    }

    #[test]
    fn a_round_serves_the_watcher_first_then_one_message_per_cluster_in_turn() {
        let failure = failure();
        // A storm of cluster a (oldest), then b's alert and the watcher's own incidents.
        let mut due: Vec<Incident> = (1..=120)
            .map(|i| incident(i, "a", alert("A"), false))
            .collect();
        due.push(incident(200, "b", alert("B"), false));
        due.push(incident(201, "a", failure, false));
        due.push(incident(202, "c", down("r9"), false));
        let mut last = None;
        let first = round(batches(due.clone()), &mut last);
        assert_eq!(first.len(), 4, "{:?}", ids(&first));
        assert_eq!(
            ids(&first[..2]),
            [vec![201], vec![202]],
            "the watcher's first"
        );
        assert_eq!(first[2].len(), BATCH_MAX, "a's storm: one message");
        assert_eq!(ids(&first[3..]), [vec![200]], "then b, not after a's storm");
        assert_eq!(last.as_deref(), Some("b"));
        // The next round starts after the cluster served last.
        let next = round(batches(due), &mut last);
        assert_eq!(next[2][0].cluster, "a");
        let mut last = Some("a".to_string());
        let turned = round(
            batches(vec![
                incident(1, "a", alert("A"), false),
                incident(2, "b", alert("B"), false),
            ]),
            &mut last,
        );
        assert_eq!(ids(&turned), [vec![2], vec![1]]);
    }
}
