//! The scheduled pre-flight: `[clusters.X.schedule] preflight = "30 1 * * *"` runs the full check
//! before the backup window (cron in the configured time zone, DST as the zone has it) and posts
//! the card to the incident channel when it is not healthy — or always (`post = "always"`).
//! Each scheduled time is recorded once, so a restart at that minute does not post twice.

use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::checks::flight::Tuning;
use crate::clock::now;
use crate::config::{PostWhen, Schedule};
use crate::domain::display::plain;
use crate::domain::incident::Detail;
use crate::domain::{Scope, Verdict};

/// The next time `s` fires strictly after `after`, in its zone.
pub fn next_fire(s: &Schedule, after: &jiff::Zoned) -> Option<jiff::Zoned> {
    let at = after.with_time_zone(s.zone.clone());
    s.cron.find_next_occurrence(&at, false).ok()
}

/// Run every cluster's schedule until `stop` turns true.
pub async fn run(app: App, stop: watch::Receiver<bool>) {
    let mut loops = Vec::new();
    for (name, c) in &app.config.config.clusters {
        let Some(sc) = &c.schedule else { continue };
        match sc.parse() {
            Ok(s) => loops.push(cluster_loop(app.clone(), name.clone(), s, stop.clone())),
            // Validated at load: this is a config that changed under us.
            Err(e) => tracing::error!(cluster = %plain(name), problems = ?e, "schedule: invalid"),
        }
    }
    futures_util::future::join_all(loops).await;
}

async fn cluster_loop(app: App, cluster: String, s: Schedule, stop: watch::Receiver<bool>) {
    loop {
        let now = jiff::Zoned::now();
        let Some(next) = next_fire(&s, &now) else {
            tracing::error!(cluster = %plain(&cluster), "schedule: no next time");
            return;
        };
        let wait = next
            .timestamp()
            .duration_since(now.timestamp())
            .unsigned_abs();
        tracing::info!(cluster = %plain(&cluster), next = %next, "pre-flight scheduled");
        tokio::select! {
            // Long sleeps are re-planned hourly: a suspended host or a clock step must not
            // make the check miss its window by hours.
            _ = tokio::time::sleep(wait.min(Duration::from_secs(3600))) => {
                if jiff::Timestamp::now() >= next.timestamp() {
                    preflight(&app, &cluster, &s, &next).await;
                }
            }
            _ = crate::app::stopped(stop.clone()) => return,
        }
    }
}

/// Run the pre-flight of `cluster` scheduled for `at`: the full check, then an incident to post
/// when the card is not healthy (or always). Returns the incident id when one was recorded.
pub async fn preflight(app: &App, cluster: &str, s: &Schedule, at: &jiff::Zoned) -> Option<i64> {
    let target = match app
        .config
        .target(Some(cluster), &crate::config::process_env)
    {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(cluster = %plain(cluster), error = %plain(&e.to_string()), "pre-flight: cannot use the cluster");
            return None;
        }
    };
    let verdict = match app
        .flights
        .card(&target, Scope::Full, Tuning::default())
        .await
    {
        Ok(card) => card.verdict,
        // Cannot even resolve the cluster: that is not healthy.
        Err(_) => Verdict::Failing,
    };
    if verdict == Verdict::Healthy && s.post == PostWhen::Unhealthy {
        tracing::info!(cluster = %plain(cluster), "pre-flight: healthy");
        return None;
    }
    let detail = Detail::Preflight {
        verdict: verdict.label().to_string(),
        scheduled_for: at.strftime("%Y-%m-%d %H:%M %Z").to_string(),
    };
    let channel = app.incident_channel(cluster);
    match app
        .store
        .record_preflight(cluster, at.timestamp().as_second(), detail, channel, now())
        .await
    {
        Ok(id) => {
            app.outbox.notify_one();
            id
        }
        Err(e) => {
            tracing::error!(error = %e, "pre-flight: cannot record");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScheduleConfig;

    fn schedule(cron: &str, tz: &str) -> Schedule {
        ScheduleConfig {
            preflight: cron.into(),
            timezone: tz.into(),
            post: PostWhen::Unhealthy,
        }
        .parse()
        .unwrap()
    }

    fn at(s: &str) -> jiff::Zoned {
        s.parse().unwrap()
    }

    #[test]
    fn next_fire_is_in_the_schedules_zone() {
        let s = schedule("30 1 * * *", "Europe/Berlin");
        let n = next_fire(&s, &at("2026-11-26T12:00:00+00:00[UTC]")).unwrap();
        assert_eq!(n.to_string(), "2026-11-27T01:30:00+01:00[Europe/Berlin]");
        // Strictly after: at the very minute, the next day.
        let n2 = next_fire(&s, &n).unwrap();
        assert_eq!(n2.to_string(), "2026-11-28T01:30:00+01:00[Europe/Berlin]");
    }

    #[test]
    fn a_time_skipped_by_dst_is_not_lost_forever() {
        // 02:30 does not exist in Berlin on 2027-03-28; the next fire is still found.
        let s = schedule("30 2 * * *", "Europe/Berlin");
        let n = next_fire(&s, &at("2027-03-27T12:00:00+01:00[Europe/Berlin]")).unwrap();
        assert!(n.timestamp() > at("2027-03-27T12:00:00+01:00[Europe/Berlin]").timestamp());
        assert!(n.timestamp() < at("2027-03-30T00:00:00+02:00[Europe/Berlin]").timestamp());
    }

    #[test]
    fn weekdays_and_utc_default() {
        let s = schedule("0 23 * * 1-5", "UTC");
        // Friday 2026-11-27 23:00 → next is Monday 2026-11-30 23:00.
        let n = next_fire(&s, &at("2026-11-27T23:00:00+00:00[UTC]")).unwrap();
        assert_eq!(n.to_string(), "2026-11-30T23:00:00+00:00[UTC]");
    }
}
