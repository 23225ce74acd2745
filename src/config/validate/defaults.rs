//! `[defaults]`: the deadline, the thresholds and the limits every cluster inherits.

use super::Problems;
use crate::config::Defaults;

pub(super) fn check(d: &Defaults, p: &mut Problems<'_>) {
    p.deadline("defaults.deadline_ms".into(), d.deadline_ms);
    p.levels(
        "defaults.thresholds.delay_secs".into(),
        &d.thresholds.delay_secs,
    );
    p.levels(
        "defaults.thresholds.queue_size".into(),
        &d.thresholds.queue_size,
    );
    let l = &d.limits;
    for (key, v, min, max) in [
        ("max_answer_bytes", l.max_answer_bytes, 1024, 1 << 40),
        ("max_error_bytes", l.max_error_bytes, 1024, 1 << 30),
        ("max_rows", l.max_rows, 1, 1 << 40),
        (
            "max_in_flight",
            l.max_in_flight.map(|n| n as u64),
            1,
            65_536,
        ),
    ] {
        p.range(format!("defaults.limits.{key}"), v, min, max);
    }
}
