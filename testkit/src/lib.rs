//! chops' test kit, a dev-dependency of the integration tests and benches (never of the product).
//!
//! - [`tls_front`]: a test CA (rcgen) and a TLS front (tokio-rustls) before any local server.
//! - [`localcluster`]: a local cluster of real Apache ZooKeeper and ClickHouse-engine gateway
//!   replicas (`scripts/local-cluster.sh`); every server is stopped by its own PID.
//! - [`canned`]: a canned-answer stand-in for many replicas (recorded answers, delays, faults).
//! - [`shared`]: the one cluster the read-only tests of a process share, stopped when the process
//!   ends; plain SQL over HTTP; scratch directories.
//! - [`discord`]: a fake Discord (REST and gateway on loopback) for the real serenity/poise client,
//!   checking every body against Discord's OpenAPI request schemas ([`openapi`]).
//! - [`flood`]: webhook floods (thousands of alerts a body), held connections, peak memory.
//! - [`hostile`]: small hostile "ClickHouse servers" (floods, trickles, garbage, hostile names).
//! - [`http`]: a plain HTTP/1.1 client, one request per connection.
//! - [`loopback`]: a loopback accept loop on its own thread, stopped when dropped.
//! - [`serve`]: `chops serve` as a child process, stopped by its PID.
//! - [`alertmanager`]: a real Prometheus Alertmanager routing to a webhook, stopped by its PID.

pub mod alertmanager;
pub mod canned;
pub mod discord;
pub mod flood;
pub mod hostile;
pub mod http;
pub mod localcluster;
pub mod loopback;
pub mod openapi;
pub mod serve;
pub mod shared;
pub mod tls_front;

pub use localcluster::{repo_root, LocalCluster};
pub use shared::{
    must, os_user, scratch, shared, solo, solo_async, sql, write_config, Scratch, SharedCluster,
};

/// Run `program` with `args`, `input` written to its stdin, and wait for it (stdout and stderr
/// captured); `what` names it when it cannot be started.
pub fn run_with_stdin(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
    input: &str,
    what: &str,
) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(what);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
