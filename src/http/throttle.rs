//! Peers that keep failing the webhook's token are slowed down: after [`FREE`] failures in a row
//! a peer is answered 429 with a Retry-After that doubles per further failure (up to
//! [`MAX_WAIT`]), without its token being looked at, until the wait is over. One entry per peer
//! (IPv6 by /64, what one host usually holds), at most [`MAX_PEERS`]: the oldest is forgotten
//! first, so the memory is bounded whoever knocks. A success forgets the peer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row a peer gets before it has to wait (a mistyped token, a rotation).
pub const FREE: u32 = 5;
/// The longest wait asked of a peer.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// Peers remembered at most.
pub const MAX_PEERS: usize = 4096;
/// A peer quiet this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    /// No token is looked at before this.
    until: Option<Instant>,
}

/// Failed-token counts per peer (see the module).
#[derive(Debug, Default)]
pub struct Throttle {
    peers: Mutex<HashMap<IpAddr, Entry>>,
}

/// The peer's key: the address, or its /64 for IPv6.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        // A panic while holding it leaves only counts behind: keep going with them.
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `ip` must still wait before its token is looked at; None: look now.
    pub fn wait(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let peers = self.lock();
        let until = peers.get(&key(ip))?.until?;
        (until > now).then(|| until - now)
    }

    /// `ip` sent a wrong or no token: counted, and made to wait once over [`FREE`].
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut peers = self.lock();
        let k = key(ip);
        if !peers.contains_key(&k) && peers.len() >= MAX_PEERS {
            peers.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if peers.len() >= MAX_PEERS {
                let oldest = peers.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| *k);
                if let Some(o) = oldest {
                    peers.remove(&o);
                }
            }
        }
        let e = peers.entry(k).or_insert(Entry {
            failures: 0,
            last: now,
            until: None,
        });
        if now.duration_since(e.last) >= FORGET_AFTER {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
        if e.failures > FREE {
            let doubling = (e.failures - FREE - 1).min(16);
            let wait = Duration::from_secs(1 << doubling).min(MAX_WAIT);
            e.until = Some(now + wait);
        }
    }

    /// `ip` sent the right token: forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        self.lock().remove(&key(ip));
    }

    /// Peers remembered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_peer_waits_after_repeated_failures_and_longer_each_time() {
        let t = Throttle::default();
        let now = Instant::now();
        let peer = ip("10.0.0.1");
        for _ in 0..FREE {
            t.failed(peer, now);
            assert_eq!(t.wait(peer, now), None, "a few mistakes are free");
        }
        t.failed(peer, now);
        assert_eq!(t.wait(peer, now), Some(Duration::from_secs(1)));
        t.failed(peer, now);
        assert_eq!(t.wait(peer, now), Some(Duration::from_secs(2)));
        assert_eq!(
            t.wait(ip("10.0.0.2"), now),
            None,
            "other peers are not slowed"
        );
        let later = now + Duration::from_secs(3);
        assert_eq!(t.wait(peer, later), None, "the wait ends");
        for _ in 0..40 {
            t.failed(peer, later);
        }
        assert_eq!(t.wait(peer, later), Some(MAX_WAIT));
        t.succeeded(peer);
        assert_eq!(t.wait(peer, later), None);
    }

    #[test]
    fn memory_is_bounded_and_ipv6_counts_per_64() {
        let t = Throttle::default();
        let now = Instant::now();
        for n in 0..(MAX_PEERS as u32 + 500) {
            t.failed(IpAddr::V4(n.into()), now + Duration::from_millis(n.into()));
        }
        assert_eq!(t.len(), MAX_PEERS);
        let t = Throttle::default();
        for n in 0..=FREE {
            t.failed(ip(&format!("2001:db8::{n:x}")), now);
        }
        assert!(
            t.wait(ip("2001:db8::ffff"), now).is_some(),
            "one /64, one peer"
        );
        assert_eq!(t.len(), 1);
    }
}
