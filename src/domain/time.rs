//! Timestamps as text, from Unix seconds (the caller reads the clock; this only formats).

use jiff::Timestamp;

/// `2026-11-25T22:27:16Z`
pub fn rfc3339(unix_secs: u64) -> String {
    utc(unix_secs).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `20261125T222716`, for names that must sort and be unique per second.
pub fn compact(unix_secs: u64) -> String {
    utc(unix_secs).strftime("%Y%m%dT%H%M%S").to_string()
}

/// The instant, clamped to what a calendar date can show (the year 9999): a clock that far off
/// is shown as the last instant rather than refused.
fn utc(unix_secs: u64) -> Timestamp {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_645_636, "2026-11-25T22:27:16Z"),
        ] {
            assert_eq!(rfc3339(secs), want);
        }
        assert_eq!(compact(1_795_645_636), "20261125T222716");
    }
}
