//! Where resumable TLS sessions are kept, per server name: up to [`TICKETS_PER_SERVER`] TLS 1.3
//! tickets (rustls' own store keeps 8, but one card opens ~9 connections to each replica at once,
//! one per concurrent probe, and each resumes only with a ticket of its own), a TLS 1.2 session
//! and the key-exchange hint, for at most [`MAX_SERVERS`] servers (the oldest is forgotten first).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

pub const TICKETS_PER_SERVER: usize = 32;
pub const MAX_SERVERS: usize = 1024;

/// The store one set of TLS settings shares (see `sessions` in the parent module).
#[derive(Default)]
pub(super) struct Sessions {
    servers: Mutex<Servers>,
}

#[derive(Default)]
struct Servers {
    map: HashMap<ServerName<'static>, Entry>,
    /// Insertion order, to forget the oldest server first.
    order: VecDeque<ServerName<'static>>,
}

#[derive(Default)]
struct Entry {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl Servers {
    fn edit(&mut self, name: ServerName<'static>) -> &mut Entry {
        if !self.map.contains_key(&name) {
            if self.map.len() >= MAX_SERVERS {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
            self.order.push_back(name.clone());
        }
        self.map.entry(name).or_default()
    }
}

impl Sessions {
    fn with<T>(&self, f: impl FnOnce(&mut Servers) -> T) -> T {
        // A panic elsewhere while holding the lock leaves only cached sessions behind: use them.
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut servers)
    }

    /// (servers, TLS 1.3 tickets) held.
    pub fn held(&self) -> (usize, usize) {
        self.with(|s| (s.map.len(), s.map.values().map(|e| e.tls13.len()).sum()))
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (servers, tickets) = self.held();
        write!(f, "Sessions {{ servers: {servers}, tickets: {tickets} }}")
    }
}

impl ClientSessionStore for Sessions {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.with(|s| s.edit(name).kx_hint = Some(group));
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(|s| s.map.get(name).and_then(|e| e.kx_hint))
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with(|s| s.edit(name).tls12 = Some(value));
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(|s| s.map.get(name).and_then(|e| e.tls12.clone()))
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.with(|s| s.map.get_mut(name).and_then(|e| e.tls12.take()));
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.with(|s| {
            let tickets = &mut s.edit(name).tls13;
            if tickets.len() >= TICKETS_PER_SERVER {
                tickets.pop_front();
            }
            tickets.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        // The newest first: the most time left before it expires.
        self.with(|s| s.map.get_mut(name).and_then(|e| e.tls13.pop_back()))
    }
}
