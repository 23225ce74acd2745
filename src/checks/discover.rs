//! Discovery: the replicas a seed's `system.clusters` lists, as hosts chops may send credentials to.
//!
//! A `host_name` there is server data: only a valid DNS name or IP literal becomes a replica (and
//! gets the password); anything else is rejected and reported, and the same host:port listed twice
//! is one replica.

use crate::checks::replicas::ClusterRow;
use crate::config::DiscoverConfig;
use crate::domain::text;
use crate::domain::url::{valid_host, HttpUrl};

/// One replica found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub url: String,
    pub shard: u32,
}

/// What discovery found: hosts to query, and descriptions of the ones it refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub hosts: Vec<Host>,
    pub rejected: Vec<String>,
}

/// Turn `system.clusters` rows into replicas (pure).
pub fn resolve(rows: &[ClusterRow], d: &DiscoverConfig) -> Found {
    let mut found = Found::default();
    let mut seen: Vec<(&str, u16)> = Vec::new();
    for row in rows {
        let host = row.host_name.as_str();
        if !valid_host(host) {
            let shown = format!(
                "discovered host '{}' rejected: not a host name (no request sent to it)",
                text::clip(host, 100)
            );
            if !found.rejected.contains(&shown) {
                found.rejected.push(shown);
            }
            continue;
        }
        if seen.contains(&(host, row.port)) {
            continue;
        }
        seen.push((host, row.port));
    }
    let ports_of = |h: &str| seen.iter().filter(|(s, _)| *s == h).count();
    // An https:// seed: the hosts it lists are spoken to over TLS too, on `https_port`.
    let (scheme, default_port) = if HttpUrl::parse_server(&d.seed).is_ok_and(|u| u.tls) {
        ("https", d.https_port)
    } else {
        ("http", d.http_port)
    };
    for &(host, port) in &seen {
        let row = rows
            .iter()
            .find(|r| r.host_name == host && r.port == port)
            .expect("seen rows come from rows");
        let key = format!("{host}:{port}");
        let url = d
            .hosts
            .get(&key)
            .or_else(|| d.hosts.get(host))
            .cloned()
            .unwrap_or_else(|| {
                let h = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_string()
                };
                format!("{scheme}://{h}:{default_port}")
            });
        let name = if ports_of(host) > 1 {
            key
        } else {
            host.to_string()
        };
        found.hosts.push(Host {
            name,
            url,
            shard: row.shard_num,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: &str, port: u16) -> ClusterRow {
        ClusterRow {
            shard_num: 1,
            replica_num: 1,
            host_name: host.into(),
            port,
            is_local: 0,
            errors_count: 0,
        }
    }

    #[test]
    fn hostile_hosts_are_rejected_and_duplicates_merged() {
        let mut d = DiscoverConfig {
            seed: "http://seed:8123".into(),
            http_port: 8123,
            https_port: 8443,
            hosts: [("ch-2:9000".to_string(), "http://10.0.0.2:8124".to_string())].into(),
        };
        let rows = [
            row("ch-1", 9000),
            row("ch-1", 9000),
            row("evil@127.0.0.2", 9000),
            row("h/x?y#z", 9000),
            row("a\nb", 9000),
            row("ch-2", 9000),
            row("::1", 9000),
            row("ch-3", 9000),
            row("ch-3", 9001),
        ];
        let f = resolve(&rows, &d);
        let hosts: Vec<(&str, &str)> = f
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.url.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("ch-1", "http://ch-1:8123"),
                ("ch-2", "http://10.0.0.2:8124"),
                ("::1", "http://[::1]:8123"),
                ("ch-3:9000", "http://ch-3:8123"),
                ("ch-3:9001", "http://ch-3:8123"),
            ]
        );
        assert_eq!(f.rejected.len(), 3);
        assert!(f.rejected[0].contains("evil@127.0.0.2"), "{:?}", f.rejected);
        // An https seed: its hosts get https on https_port; `hosts` entries still win.
        d.seed = "https://seed:8443".into();
        let urls: Vec<String> = resolve(&rows, &d)
            .hosts
            .into_iter()
            .map(|h| h.url)
            .collect();
        assert_eq!(
            urls[..3],
            [
                "https://ch-1:8443",
                "http://10.0.0.2:8124",
                "https://[::1]:8443"
            ]
        );
    }
}
