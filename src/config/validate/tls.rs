//! `[clusters.X.tls]`: the server name parses, the PEM files exist, parse and hold what they
//! should, and the client key matches its certificate (each message names the file). Also the
//! warnings of `config check` about passwords sent in clear.

use std::path::Path;

use super::Problems;
use crate::config::tls::Tls;
use crate::config::{ClusterConfig, Config};
use crate::domain::url::{self, HttpUrl};

/// Every problem of the cluster's `[tls]` table, if it has one.
pub(super) fn check(raw: &str, cl: &ClusterConfig, dir: &Path, p: &mut Problems<'_>) {
    if cl.tls.is_none() {
        return;
    }
    if let Err(list) = Tls::load(cl.tls.as_ref(), dir) {
        for e in list {
            p.add(
                format!("clusters.{}.tls.{}", url::shown(raw), e.key),
                e.message,
            );
        }
    }
}

/// One line per URL that would carry a cluster's password over plain http to a host that is not
/// this machine (a warning: a trusted network or a local proxy may make it fine).
pub fn plain_password_warnings(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (raw, cl) in &c.clusters {
        let var = match (&cl.password_env, &cl.operator_password_env) {
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => continue,
        };
        let name = url::shown(raw);
        let mut urls: Vec<(String, &str)> = cl
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("replicas[{i}].url"), r.url.as_str()))
            .collect();
        if let Some(d) = &cl.discover {
            urls.push(("discover.seed".into(), &d.seed));
            for (h, u) in &d.hosts {
                urls.push((format!("discover.hosts.\"{}\"", url::shown(h)), u));
            }
        }
        for (key, u) in urls {
            let Ok(u) = HttpUrl::parse_server(u) else {
                continue;
            };
            if !u.tls && !u.is_loopback() {
                out.push(format!(
                    "`clusters.{name}.{key}`: the password in {} would cross the network in clear \
                     (http:// to {}); use https://",
                    url::shown(var),
                    url::shown(&u.host)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Loaded;

    #[test]
    fn plain_passwords_to_other_hosts_are_warned_about() {
        let text = "[clusters.a]\npassword_env = \"PW\"\nreplicas = [\
            { name = \"r1\", url = \"http://10.0.0.1:8123\" },\
            { name = \"r2\", url = \"http://127.0.0.1:8123\" },\
            { name = \"r3\", url = \"https://ch-3:8443\" }]\n\
            [clusters.b]\nreplicas = [{ name = \"r1\", url = \"http://10.0.0.1:8123\" }]\n\
            [clusters.c]\noperator_password_env = \"OP\"\n\
            discover = { seed = \"http://seed\", hosts = { \"h\" = \"http://localhost:1\" } }\n";
        let w = Loaded::parse("c.toml", text).unwrap().warnings();
        assert_eq!(
            w,
            [
                "`clusters.a.replicas[0].url`: the password in PW would cross the network in clear (http:// to 10.0.0.1); use https://",
                "`clusters.c.discover.seed`: the password in OP would cross the network in clear (http:// to seed); use https://",
            ]
        );
    }
}
