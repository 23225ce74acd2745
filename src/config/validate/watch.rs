//! `[watch]`: the watcher's intervals and the statuses it watches.

use super::Problems;
use crate::config::automation::WATCHABLE_STATES;
use crate::config::WatchConfig;
use crate::domain::url;

pub(super) fn check(w: &WatchConfig, p: &mut Problems<'_>) {
    for (key, v, min, max) in [
        ("interval_secs", w.interval_secs, 1, 86_400),
        (
            "unreachable_after_secs",
            w.unreachable_after_secs,
            1,
            86_400 * 7,
        ),
        ("group_window_secs", w.group_window_secs, 0, 86_400),
        ("lookback_secs", w.lookback_secs, 0, 86_400 * 30),
    ] {
        p.range(format!("watch.{key}"), Some(v), min, max);
    }
    for (i, s) in w.states.iter().enumerate() {
        if !WATCHABLE_STATES.contains(&s.as_str()) {
            p.add(
                format!("watch.states[{i}]"),
                format!(
                    "'{}' is not one of {}",
                    url::shown(s),
                    WATCHABLE_STATES.join(", ")
                ),
            );
        }
    }
}
