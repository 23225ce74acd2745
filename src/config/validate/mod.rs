//! Validation of a parsed config: one validator per section, each adding what is wrong to one
//! [`Problems`] list, so one `config check` run lists every problem rather than one per edit.
//! The order of the calls in [`validate`] is the order of the messages.

use std::path::Path;

use super::{Config, ConfigError};
use crate::domain::thresholds::Levels;
use crate::domain::url::{self, HttpUrl};

mod cluster;
mod defaults;
mod discord;
mod http;
mod schedule;
mod tls;
mod watch;
mod webhook;

pub(super) use tls::plain_password_warnings;

/// Every problem of `c`, or Ok. One problem is returned as itself, several as
/// [`ConfigError::Many`].
pub(super) fn validate(path: &str, dir: &Path, c: &Config) -> Result<(), ConfigError> {
    let mut p = Problems {
        path,
        list: Vec::new(),
    };
    defaults::check(&c.defaults, &mut p);
    cluster::check_any(&c.clusters, &mut p);
    discord::check(&c.discord, &mut p);
    for (raw, cl) in &c.clusters {
        cluster::check(raw, cl, &mut p);
        tls::check(raw, cl, dir, &mut p);
    }
    http::check(&c.http, &mut p);
    watch::check(&c.watch, &mut p);
    if let Some(h) = &c.webhook {
        webhook::check(h, &c.clusters, &mut p);
        http::room_for_a_body(&c.http, h, &mut p);
    }
    for (raw, cl) in &c.clusters {
        schedule::check(raw, cl, &mut p);
    }
    p.finish()
}

/// The problems found so far in the config at `path`.
struct Problems<'a> {
    path: &'a str,
    list: Vec<ConfigError>,
}

impl Problems<'_> {
    fn add(&mut self, key: String, message: impl Into<String>) {
        self.list.push(ConfigError::Invalid {
            path: self.path.to_string(),
            key,
            message: message.into(),
        });
    }

    /// `u` must be a plain `http://` URL.
    fn url(&mut self, key: String, u: &str) {
        // The UrlError text never repeats the URL, which may hold a password.
        if let Err(e) = HttpUrl::parse(u) {
            self.add(key, e.to_string());
        }
    }

    /// `u` must be an `http://` or `https://` URL (a ClickHouse server).
    fn server_url(&mut self, key: String, u: &str) {
        if let Err(e) = HttpUrl::parse_server(u) {
            self.add(key, e.to_string());
        }
    }

    /// Threshold levels, when set, must rise.
    fn levels(&mut self, key: String, l: &Option<Levels>) {
        if l.as_ref().is_some_and(|l| !l.is_ascending()) {
            self.add(key, "must satisfy moderate < major < critical");
        }
    }

    fn deadline(&mut self, key: String, ms: u64) {
        if !(100..=60_000).contains(&ms) {
            self.add(key, format!("{ms} is out of range (100..=60000 ms)"));
        }
    }

    /// `v`, when set, must lie in `min..=max`.
    fn range(&mut self, key: String, v: Option<u64>, min: u64, max: u64) {
        if let Some(v) = v.filter(|v| !(min..=max).contains(v)) {
            self.add(key, format!("{v} is out of range ({min}..={max})"));
        }
    }

    fn finish(mut self) -> Result<(), ConfigError> {
        match self.list.len() {
            0 => Ok(()),
            1 => Err(self.list.remove(0)),
            _ => Err(ConfigError::Many(self.list)),
        }
    }
}

/// The NAME of an environment variable (never its value).
fn env_name_ok(var: &str) -> bool {
    !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Cluster and disk names: they end up in SQL, file names and messages.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A config entry fit for a message: redacted if it may carry credentials, escaped, clipped.
fn show_entry(s: &str) -> String {
    if s.contains('@') {
        url::shown(&url::redact(s))
    } else {
        url::shown(s)
    }
}
