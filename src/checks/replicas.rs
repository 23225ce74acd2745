//! Replicas online: `SELECT version(), uptime()` on every replica, timed, plus each replica's view
//! of the cluster in `system.clusters` (connection errors to its peers); `/ping` only when the
//! query fails or is slow, to tell a dead server from a sick one. The SQL, the probe (`run`) and
//! the pure `evaluate`.

use std::time::Duration;

use ::clickhouse::Row;
use serde::Deserialize;

use super::Cluster;
use crate::clickhouse::batch::Part;
use crate::clickhouse::ReplicaClient;
use crate::domain::{Cause, CheckKind, Finding, ProbeError, Severity, Subject};

pub const VERSION_SQL: &str = "SELECT version() AS version, toUInt64(uptime()) AS uptime";

/// `is_active` is NULL except for Replicated-database clusters, so it is not read.
pub const CLUSTER_SQL: &str =
    "SELECT toUInt32(shard_num) AS shard_num, toUInt32(replica_num) AS replica_num, host_name, \
     toUInt16(port) AS port, toUInt8(is_local) AS is_local, toUInt64(errors_count) AS errors_count \
     FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num";

#[derive(Debug, Clone, Row, Deserialize)]
pub struct VersionRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub version: String,
    pub uptime: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct ClusterRow {
    pub shard_num: u32,
    pub replica_num: u32,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub host_name: String,
    pub port: u16,
    pub is_local: u8,
    pub errors_count: u64,
}

/// What one replica answered.
#[derive(Debug, Clone)]
pub struct ReplicaProbe {
    pub replica: String,
    /// `/ping`, when it was asked (the version query failed or was slow).
    pub ping: Option<Result<Duration, ProbeError>>,
    pub version: Result<Vec<VersionRow>, ProbeError>,
    /// How long the version query took to answer.
    pub answered: Duration,
    pub cluster: Result<Vec<ClusterRow>, ProbeError>,
}

pub fn uptime_text(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

fn unreachable(check: CheckKind, replica: &str, e: &ProbeError) -> Finding {
    let subject = Subject::replica(replica);
    match e {
        ProbeError::Refused => Finding::new(
            check,
            Severity::Crit,
            subject,
            format!("{replica}: unreachable (connection refused)"),
        )
        .cause(Cause::ReplicaOffline),
        ProbeError::Timeout { .. } => Finding::new(
            check,
            Severity::Crit,
            subject,
            format!("{replica}: no answer ({e})"),
        )
        // A plain timeout: offline as far as the sync can tell, not evidence of intermittency.
        .cause(Cause::ReplicaOffline),
        ProbeError::Auth { .. } => Finding::new(
            check,
            Severity::Unknown,
            subject,
            format!("{replica}: {e}: check `user` and the password in `password_env`"),
        ),
        // Up, but not trusted over TLS: what is wrong is in the message, not an outage.
        ProbeError::Tls(_) => {
            Finding::new(check, Severity::Unknown, subject, format!("{replica}: {e}"))
        }
        ProbeError::Network(_) => Finding::new(
            check,
            Severity::Crit,
            subject,
            format!("{replica}: unreachable ({e})"),
        )
        .cause(Cause::ReplicaOffline)
        .cause(Cause::Network),
        _ => Finding::new(
            check,
            Severity::Warn,
            subject,
            format!("{replica}: answers, but {e}"),
        ),
    }
}

/// Judge every replica; `deadline` marks answers slower than half of it as slow.
pub fn evaluate(probes: &[ReplicaProbe], cluster: &str, deadline: Duration) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut versions: Vec<(String, String)> = Vec::new();
    for p in probes {
        let Some(version) = evaluate_replica(p, cluster, deadline, &mut out) else {
            continue;
        };
        versions.push((p.replica.clone(), version));
    }
    out.extend(mixed_versions(&versions));
    out
}

/// One replica's findings into `out`; its server version when it told one.
fn evaluate_replica(
    p: &ReplicaProbe,
    cluster: &str,
    deadline: Duration,
    out: &mut Vec<Finding>,
) -> Option<String> {
    let r = &p.replica;
    // A failed query says more than a failed ping (auth, server errors), unless the ping was
    // refused; a ping that failed late never overrides a query that answered.
    let failure = match (&p.ping, &p.version) {
        (_, Err(e @ ProbeError::Auth { .. })) => Some(e),
        (Some(Err(e)), Err(_)) => Some(e),
        (_, Err(e)) => Some(e),
        _ => None,
    };
    if let Some(e) = failure {
        let mut f = unreachable(CheckKind::Replicas, r, e);
        if let Some(Ok(_)) = p.ping {
            f = f.evidence("/ping answered Ok.");
        }
        out.push(f);
        return None;
    }
    let Some(v) = p.version.as_ref().ok().and_then(|rows| rows.first()) else {
        out.push(Finding::new(
            CheckKind::Replicas,
            Severity::Warn,
            Subject::replica(r),
            format!("{r}: SELECT version() returned no row"),
        ));
        return None;
    };
    out.push(up(r, v, p.answered, p.ping.as_ref(), deadline));
    out.extend(cluster_view(r, cluster, &p.cluster));
    Some(v.version.clone())
}

/// An answering replica: its version, uptime and answer time, or that it is slow (the network's
/// fault unless `/ping`, asked once it was slow, came back quickly: then the queries are slow).
fn up(
    r: &str,
    v: &VersionRow,
    answered: Duration,
    ping: Option<&Result<Duration, ProbeError>>,
    deadline: Duration,
) -> Finding {
    let subject = Subject::replica(r);
    let ms = answered.as_secs_f64() * 1000.0;
    let mut f = if answered > deadline / 2 {
        let f = Finding::new(
            CheckKind::Replicas,
            Severity::Warn,
            subject,
            format!("{r}: slow: answered in {ms:.0} ms"),
        );
        match ping {
            Some(Ok(d)) if *d <= deadline / 2 => f.evidence(format!(
                "/ping answered in {} ms: the server is slow, not the network",
                d.as_millis()
            )),
            Some(Err(e)) => f.evidence(format!("/ping: {e}")).cause(Cause::Network),
            _ => f.cause(Cause::Network),
        }
    } else {
        Finding::new(
            CheckKind::Replicas,
            Severity::Ok,
            subject,
            format!(
                "{r}: up, {}, uptime {}, answered in {ms:.0} ms",
                v.version,
                uptime_text(v.uptime)
            ),
        )
    };
    if v.uptime < 300 {
        f = f.evidence(format!(
            "restarted {} ago: in-memory system.backups history was lost",
            uptime_text(v.uptime)
        ));
    }
    f
}

/// The replica's own view of the cluster: missing from it, or counting errors to its peers.
fn cluster_view(
    r: &str,
    cluster: &str,
    view: &Result<Vec<ClusterRow>, ProbeError>,
) -> Vec<Finding> {
    let subject = Subject::replica(r);
    match view {
        Ok(rows) if rows.is_empty() => vec![Finding::new(
            CheckKind::Replicas,
            Severity::Warn,
            subject,
            format!("{r}: cluster '{cluster}' is not in its system.clusters, ON CLUSTER from it would fail"),
        )],
        Ok(rows) => rows
            .iter()
            .filter(|row| row.errors_count > 0)
            .map(|row| {
                Finding::new(
                    CheckKind::Replicas,
                    Severity::Warn,
                    subject.clone(),
                    format!("{r} counts {} connection errors to {}:{}", row.errors_count, row.host_name, row.port),
                )
                .cause(Cause::Network)
                .evidence("system.clusters.errors_count is this host's own view")
            })
            .collect(),
        Err(e) => vec![Finding::new(CheckKind::Replicas, Severity::Unknown, subject, format!("{r}: system.clusters: {e}"))],
    }
}

/// Replicas on different server versions (backup coordination may refuse them).
fn mixed_versions(versions: &[(String, String)]) -> Option<Finding> {
    let mut distinct: Vec<&str> = versions.iter().map(|(_, v)| v.as_str()).collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() <= 1 {
        return None;
    }
    let list = versions
        .iter()
        .map(|(r, v)| format!("{r}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(Finding::new(
        CheckKind::Replicas,
        Severity::Warn,
        Subject::Cluster,
        format!("Mixed server versions ({list}): backup coordination may refuse them"),
    ))
}

/// The version query, timed; `/ping` as well once it is slower than half the deadline (so a
/// replica whose queries hang says whether its HTTP server still answers), or after it failed in
/// a way a ping can tell apart (not refused, not a wrong password). A healthy replica gets no ping.
async fn version_and_ping(
    c: &ReplicaClient,
) -> (
    Option<Result<Duration, ProbeError>>,
    Result<Vec<VersionRow>, ProbeError>,
    Duration,
) {
    // The answer time is the request's that answered (the batch's when the version came in it),
    // not how long this probe waited.
    let version = c.fetch_timed::<VersionRow>(VERSION_SQL, &[]);
    tokio::pin!(version);
    tokio::select! {
        (v, answered) = &mut version => {
            let ping = match &v {
                Err(ProbeError::Refused | ProbeError::Auth { .. }) | Ok(_) => None,
                Err(_) => Some(c.ping().await),
            };
            (ping, v, answered)
        }
        _ = tokio::time::sleep(c.deadline() / 2) => {
            let ((v, answered), ping) = tokio::join!(version, c.ping());
            (Some(ping), v, answered)
        }
    }
}

/// The version and the cluster view go in the round's batch.
pub(super) fn batched(cl: &Cluster) -> Vec<Part> {
    vec![
        Part::new(VERSION_SQL, &[]),
        Part::new(CLUSTER_SQL, &[&cl.remote_cluster]),
    ]
}

/// The probe: the version (timed) and the cluster view on every replica, `/ping` where it tells
/// something, judged; plus the hosts discovery refused.
pub(super) async fn run(cl: &Cluster) -> Vec<Finding> {
    let cluster = cl.remote_cluster.clone();
    let mode = cl.mode;
    let probes = cl
        .per_replica(|c| {
            let cluster = cluster.clone();
            async move {
                let binds = [cluster.as_str()];
                let ((ping, version, answered), view) = join_in!(mode;
                    version_and_ping(&c),
                    c.fetch::<ClusterRow>(CLUSTER_SQL, &binds)
                );
                ReplicaProbe {
                    replica: c.name.clone(),
                    ping,
                    version,
                    answered,
                    cluster: view,
                }
            }
        })
        .await;
    let mut findings = evaluate(&probes, &cl.remote_cluster, cl.deadline);
    findings.extend(cl.rejected.iter().map(|r| {
        Finding::new(
            CheckKind::Replicas,
            Severity::Warn,
            Subject::Cluster,
            r.clone(),
        )
    }));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(
        r: &str,
        ping: Result<u64, ProbeError>,
        version: Result<&str, ProbeError>,
    ) -> ReplicaProbe {
        // A slow answer came with a ping; a fast one without.
        let answered = Duration::from_millis(*ping.as_ref().unwrap_or(&0));
        ReplicaProbe {
            replica: r.into(),
            ping: (answered.as_millis() > 1000 || ping.is_err() || version.is_err())
                .then(|| ping.clone().map(Duration::from_millis)),
            answered,
            version: version.map(|v| {
                vec![VersionRow {
                    version: v.into(),
                    uptime: 4000,
                }]
            }),
            cluster: Ok(vec![ClusterRow {
                shard_num: 1,
                replica_num: 1,
                host_name: "h".into(),
                port: 9000,
                is_local: 1,
                errors_count: 0,
            }]),
        }
    }

    #[test]
    fn replica_table() {
        let d = Duration::from_secs(2);
        let cases: Vec<(ReplicaProbe, Severity, &str, &[Cause])> = vec![
            (probe("r1", Ok(1), Ok("26.9.2.1")), Severity::Ok, "r1: up, 26.9.2.1, uptime 1h 6m, answered in 1 ms", &[]),
            (probe("r2", Err(ProbeError::Refused), Err(ProbeError::Refused)), Severity::Crit, "r2: unreachable (connection refused)", &[Cause::ReplicaOffline]),
            (
                probe("r3", Err(ProbeError::Timeout { after_ms: 2000 }), Err(ProbeError::Timeout { after_ms: 2000 })),
                Severity::Crit,
                "r3: no answer (timed out after 2000 ms)",
                &[Cause::ReplicaOffline],
            ),
            (probe("r4", Ok(1), Err(ProbeError::Auth { code: 516 })), Severity::Unknown, "r4: authentication failed (code 516): check `user` and the password in `password_env`", &[]),
            (probe("r5", Ok(1500), Ok("26.9.2.1")), Severity::Warn, "r5: slow: answered in 1500 ms", &[Cause::Network]),
        ];
        for (p, sev, text, causes) in cases {
            let f = &evaluate(&[p], "c", d)[0];
            assert_eq!(f.severity, sev, "{text}");
            assert_eq!(f.summary, text);
            assert_eq!(f.causes, causes, "{text}");
        }
    }

    #[test]
    fn a_slow_answer_is_the_network_only_when_ping_is_slow_too_and_a_late_ping_never_wins() {
        let d = Duration::from_secs(2);
        let mut p = probe("r1", Ok(1500), Ok("26.9.2.1"));
        p.ping = Some(Ok(Duration::from_millis(3)));
        let f = &evaluate(&[p.clone()], "c", d)[0];
        assert_eq!(f.summary, "r1: slow: answered in 1500 ms");
        assert!(f.causes.is_empty(), "{:?}", f.causes);
        assert!(f.evidence[0].starts_with("/ping answered in 3 ms"));
        // The version answered; the ping sent once it was slow timed out: still up, slowly.
        p.ping = Some(Err(ProbeError::Timeout { after_ms: 2000 }));
        let f = &evaluate(&[p], "c", d)[0];
        assert_eq!(
            (f.severity, f.causes.as_slice()),
            (Severity::Warn, &[Cause::Network][..])
        );
        assert_eq!(f.summary, "r1: slow: answered in 1500 ms");
    }

    #[test]
    fn refused_timeout_and_auth_are_distinct() {
        let d = Duration::from_secs(2);
        let s = |p| evaluate(&[p], "c", d)[0].summary.clone();
        let a = s(probe(
            "r",
            Err(ProbeError::Refused),
            Err(ProbeError::Refused),
        ));
        let b = s(probe(
            "r",
            Err(ProbeError::Timeout { after_ms: 2000 }),
            Err(ProbeError::Timeout { after_ms: 2000 }),
        ));
        let c = s(probe("r", Ok(1), Err(ProbeError::Auth { code: 516 })));
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn cluster_view_and_versions() {
        let mut p = probe("r1", Ok(1), Ok("26.9.2.1"));
        p.cluster = Ok(vec![ClusterRow {
            shard_num: 1,
            replica_num: 2,
            host_name: "ch2".into(),
            port: 9000,
            is_local: 0,
            errors_count: 7,
        }]);
        let q = probe("r2", Ok(1), Ok("25.3.1.1"));
        let f = evaluate(&[p, q], "c", Duration::from_secs(2));
        assert!(f
            .iter()
            .any(|f| f.summary == "r1 counts 7 connection errors to ch2:9000"
                && f.causes == [Cause::Network]));
        assert!(f.iter().any(|f| f
            .summary
            .starts_with("Mixed server versions (r1=26.9.2.1, r2=25.3.1.1)")));
        let mut p = probe("r1", Ok(1), Ok("26.9.2.1"));
        p.cluster = Ok(vec![]);
        assert!(evaluate(&[p], "c", Duration::from_secs(2))[1]
            .summary
            .contains("cluster 'c' is not in its system.clusters"));
    }
}
