//! The one wall clock: seconds since the Unix epoch. Everything that stamps, expires or compares
//! stored times reads it here (store rows, offers, incidents, the check round's `now`), so they
//! agree with each other; elapsed times within a process use `Instant` instead. Also the one
//! source of unguessable ids (offers, error references): the operating system's generator, and
//! of the check round's end that every probe's deadline is cut to.

/// Seconds since the epoch (0 if the system clock is before it).
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second().max(0)
}

/// 64 random bits from the operating system; where it cannot answer, std's randomly keyed SipHash
/// over a counter and the pid (still not guessable from another id).
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            use std::sync::atomic::{AtomicU64, Ordering};
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
            h.write_u32(std::process::id());
            h.finish()
        }
    }
}

tokio::task_local! {
    /// When the check round running in this task must end: every probe polled by it stops by then.
    static ROUND_END: tokio::time::Instant;
}

/// Run `fut` as a round that ends at `end`: probes inside it cut their own deadlines to it, so a
/// replica that hangs on its first query cannot push a later query past the card's deadline.
pub async fn round<F: std::future::Future>(end: tokio::time::Instant, fut: F) -> F::Output {
    ROUND_END.scope(end, fut).await
}

/// `end`, or the running round's end if that comes first.
pub fn by(end: tokio::time::Instant) -> tokio::time::Instant {
    ROUND_END.try_with(|r| (*r).min(end)).unwrap_or(end)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_after_this_code_was_written() {
        // 2026-01-01T00:00:00Z: a clock that reads earlier is broken, not chops.
        assert!(super::now() > 1_767_225_600);
    }

    #[tokio::test]
    async fn a_round_cuts_later_deadlines_only() {
        let now = tokio::time::Instant::now();
        let (soon, late) = (
            now + std::time::Duration::from_secs(1),
            now + std::time::Duration::from_secs(9),
        );
        assert_eq!(super::by(late), late, "no round: the probe's own end");
        super::round(soon, async {
            assert_eq!(super::by(late), soon);
            assert_eq!(super::by(now), now);
        })
        .await;
    }

    #[test]
    fn random_ids_differ() {
        let ids: std::collections::HashSet<u64> = (0..64).map(|_| super::random_u64()).collect();
        assert_eq!(ids.len(), 64);
    }
}
