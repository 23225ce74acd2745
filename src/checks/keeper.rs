//! Keeper health: four-letter words on every Keeper node, and `system.zookeeper` from every replica.

use std::collections::BTreeMap;

use ::clickhouse::Row;
use serde::Deserialize;

use crate::domain::{Cause, CheckKind, Finding, ProbeError, Severity, Subject};

/// The replica's own view of Keeper (runbook step 1).
pub const ZOOKEEPER_ROOT_SQL: &str = "SELECT name FROM system.zookeeper WHERE path = '/' LIMIT 100";

/// Words asked of every node. `ruok` only proves the process lives; `mntr`/`srvr` tell whether it serves.
pub const WORDS: [&str; 4] = ["ruok", "mntr", "srvr", "isro"];

/// Latency (ms) and outstanding requests above which a node is reported as overloaded.
pub const MAX_AVG_LATENCY_MS: f64 = 100.0;
pub const MAX_OUTSTANDING: u64 = 100;

#[derive(Debug, Clone, Row, Deserialize)]
pub struct ZkRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub name: String,
}

/// What one node answered to each word.
#[derive(Debug, Clone)]
pub struct NodeAnswers {
    pub node: String,
    pub answers: Vec<(&'static str, Result<String, ProbeError>)>,
}

/// One word's answer, interpreted.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Text(String),
    NotAllowed,
    NotServing,
    Failed(ProbeError),
}

pub fn interpret(result: &Result<String, ProbeError>) -> Answer {
    match result {
        Err(e) => Answer::Failed(e.clone()),
        Ok(t) if t.contains("not in the whitelist") => Answer::NotAllowed,
        Ok(t) if t.contains("not currently serving requests") => Answer::NotServing,
        Ok(t) => Answer::Text(t.clone()),
    }
}

/// `mntr` lines: `key<TAB>value`.
pub fn parse_mntr(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            l.split_once('\t')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// `srvr` lines (`Mode: leader`, `Latency min/avg/max: 0/0.5/3`, `Outstanding: 0`) into mntr's keys.
pub fn parse_srvr(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(": ") else {
            continue;
        };
        match k.trim() {
            "Mode" => {
                m.insert("zk_server_state".into(), v.trim().to_string());
            }
            "Outstanding" => {
                m.insert("zk_outstanding_requests".into(), v.trim().to_string());
            }
            "Node count" => {
                m.insert("zk_znode_count".into(), v.trim().to_string());
            }
            "Connections" => {
                m.insert("zk_num_alive_connections".into(), v.trim().to_string());
            }
            "Latency min/avg/max" => {
                let parts: Vec<&str> = v.trim().split('/').collect();
                if parts.len() == 3 {
                    m.insert("zk_avg_latency".into(), parts[1].to_string());
                    m.insert("zk_max_latency".into(), parts[2].to_string());
                }
            }
            _ => {}
        }
    }
    m
}

fn num<T: std::str::FromStr>(m: &BTreeMap<String, String>, k: &str) -> Option<T> {
    m.get(k).and_then(|v| v.parse().ok())
}

/// Judge one Keeper node from its answers.
pub fn evaluate_node(n: &NodeAnswers) -> Finding {
    let subject = Subject::KeeperNode {
        node: n.node.clone(),
    };
    let get = |w: &str| {
        n.answers
            .iter()
            .find(|(word, _)| *word == w)
            .map(|(_, r)| interpret(r))
    };
    let all: Vec<(&str, Answer)> = n.answers.iter().map(|(w, r)| (*w, interpret(r))).collect();
    let mut evidence: Vec<String> = Vec::new();
    for (w, a) in &all {
        match a {
            Answer::NotAllowed => {
                evidence.push(format!("{w}: not allowed (not in 4lw.commands.whitelist)"))
            }
            Answer::Failed(e) => evidence.push(format!("{w}: {e}")),
            Answer::NotServing => evidence.push(format!("{w}: not currently serving requests")),
            Answer::Text(_) => {}
        }
    }
    let finish =
        |f: Finding, evidence: &[String]| evidence.iter().fold(f, |f, e| f.evidence(e.clone()));

    // Nothing answered at all: down.
    if all.iter().all(|(_, a)| matches!(a, Answer::Failed(_))) {
        let first = all.iter().find_map(|(_, a)| {
            if let Answer::Failed(e) = a {
                Some(e.clone())
            } else {
                None
            }
        });
        // A TLS failure is a server chops would not trust, not a Keeper that is down.
        if let Some(e @ ProbeError::Tls(_)) = &first {
            let summary = format!("Keeper {}: cannot be checked ({e})", n.node);
            let f = Finding::new(CheckKind::Keeper, Severity::Unknown, subject, summary);
            return finish(f, &evidence);
        }
        let why = first
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no answer".into());
        return finish(
            Finding::new(
                CheckKind::Keeper,
                Severity::Crit,
                subject,
                format!("Keeper {}: down ({why})", n.node),
            )
            .cause(Cause::Keeper),
            &evidence,
        );
    }
    if all.iter().any(|(_, a)| *a == Answer::NotServing) {
        return finish(
            Finding::new(
                CheckKind::Keeper,
                Severity::Crit,
                subject,
                format!("Keeper {}: not serving requests (no quorum?)", n.node),
            )
            .cause(Cause::Keeper),
            &evidence,
        );
    }
    let mut stats = BTreeMap::new();
    if let Some(Answer::Text(t)) = get("srvr") {
        stats.extend(parse_srvr(&t));
    }
    if let Some(Answer::Text(t)) = get("mntr") {
        stats.extend(parse_mntr(&t));
    }
    let imok = matches!(get("ruok"), Some(Answer::Text(t)) if t.trim() == "imok");
    let read_only = matches!(get("isro"), Some(Answer::Text(t)) if t.trim() == "ro");
    let state = stats.get("zk_server_state").cloned();
    let avg: Option<f64> = num(&stats, "zk_avg_latency");
    let max: Option<f64> = num(&stats, "zk_max_latency");
    let outstanding: Option<u64> = num(&stats, "zk_outstanding_requests");
    let conns: Option<u64> = num(&stats, "zk_num_alive_connections");
    let znodes: Option<u64> = num(&stats, "zk_znode_count");
    let followers: Option<u64> = num(&stats, "zk_followers");
    let synced: Option<u64> = num(&stats, "zk_synced_followers");

    let mut numbers = Vec::new();
    if let Some(s) = &state {
        numbers.push(s.clone());
    }
    if let (Some(a), Some(m)) = (avg, max) {
        numbers.push(format!("latency avg {a} ms / max {m} ms"));
    }
    if let Some(o) = outstanding {
        numbers.push(format!("{o} outstanding"));
    }
    if let Some(c) = conns {
        numbers.push(format!("{c} connections"));
    }
    if let Some(z) = znodes {
        numbers.push(format!("{z} znodes"));
    }
    if let (Some(f), Some(s)) = (followers, synced) {
        numbers.push(format!("{s}/{f} followers synced"));
    }
    let detail = numbers.join(", ");

    if read_only {
        return finish(
            Finding::new(
                CheckKind::Keeper,
                Severity::Crit,
                subject,
                format!("Keeper {}: read-only mode (isro = ro), writes fail", n.node),
            )
            .cause(Cause::Keeper),
            &evidence,
        );
    }
    if state.is_none() {
        // Alive at best, but whether it serves is unknown (mntr/srvr not allowed or failed).
        let what = if imok {
            "alive (imok) but its serving state is unknown"
        } else {
            "serving state unknown"
        };
        return finish(
            Finding::new(
                CheckKind::Keeper,
                Severity::Unknown,
                subject,
                format!("Keeper {}: {what}", n.node),
            ),
            &evidence,
        );
    }
    let mut problems = Vec::new();
    if avg.is_some_and(|a| a > MAX_AVG_LATENCY_MS) {
        problems.push(format!("high latency (avg {} ms)", avg.unwrap_or_default()));
    }
    if outstanding.is_some_and(|o| o > MAX_OUTSTANDING) {
        problems.push(format!(
            "{} outstanding requests",
            outstanding.unwrap_or_default()
        ));
    }
    if let (Some(f), Some(s)) = (followers, synced) {
        if s < f {
            problems.push(format!("only {s} of {f} followers synced"));
        }
    }
    if !problems.is_empty() {
        let f = Finding::new(
            CheckKind::Keeper,
            Severity::Warn,
            subject,
            format!("Keeper {}: {}", n.node, problems.join(", ")),
        )
        .cause(Cause::Keeper)
        .evidence(detail);
        return finish(f, &evidence);
    }
    finish(
        Finding::new(
            CheckKind::Keeper,
            Severity::Ok,
            subject,
            format!("Keeper {}: {detail}", n.node),
        ),
        &evidence,
    )
}

/// Judge a replica's `system.zookeeper` answer.
pub fn evaluate_replica_view(replica: &str, result: &Result<Vec<ZkRow>, ProbeError>) -> Finding {
    let subject = Subject::replica(replica);
    match result {
        Ok(rows) => Finding::new(
            CheckKind::Keeper,
            Severity::Ok,
            subject,
            format!("{replica} sees Keeper ({} root nodes)", rows.len()),
        ),
        Err(ProbeError::Server { code: 60, .. }) => Finding::new(
            CheckKind::Keeper,
            Severity::Ok,
            subject,
            format!(
                "{replica}: system.zookeeper not available (no Keeper configured on that server)"
            ),
        ),
        Err(e @ ProbeError::Server { code, message, .. })
            if matches!(code, 999 | 225)
                || message.contains("Session expired")
                || message.contains("Connection loss") =>
        {
            Finding::new(
                CheckKind::Keeper,
                Severity::Crit,
                subject,
                format!("{replica} cannot reach Keeper ({e})"),
            )
            .cause(Cause::Keeper)
        }
        Err(e @ ProbeError::Server { .. }) => Finding::new(
            CheckKind::Keeper,
            Severity::Unknown,
            subject,
            format!("{replica}: system.zookeeper failed ({e})"),
        ),
        Err(e) => Finding::probe_failed(CheckKind::Keeper, replica, e),
    }
}

/// The whole Keeper section.
pub fn evaluate(
    nodes: &[NodeAnswers],
    views: &[(String, Result<Vec<ZkRow>, ProbeError>)],
) -> Vec<Finding> {
    let mut out: Vec<Finding> = nodes.iter().map(evaluate_node).collect();
    if nodes.is_empty() {
        out.push(Finding::new(
            CheckKind::Keeper,
            Severity::Unknown,
            Subject::Cluster,
            "No Keeper nodes in the chops config: four-letter-word checks skipped",
        ));
    } else {
        let down = out.iter().filter(|f| f.severity == Severity::Crit).count();
        if nodes.len() > 1 && down > 0 && down * 2 < nodes.len() {
            // A minority of an ensemble down: the ensemble still serves. Worth fixing, not the outage.
            let serving = nodes.len() - down;
            for f in out.iter_mut().filter(|f| f.severity == Severity::Crit) {
                f.severity = Severity::Warn;
                f.evidence.push(format!(
                    "quorum holds: {serving} of {} nodes healthy",
                    nodes.len()
                ));
            }
        }
        if nodes.len() > 1 && down * 2 >= nodes.len() {
            out.push(
                Finding::new(
                    CheckKind::Keeper,
                    Severity::Crit,
                    Subject::Cluster,
                    format!(
                        "Keeper quorum lost: {down} of {} nodes unhealthy",
                        nodes.len()
                    ),
                )
                .cause(Cause::Keeper),
            );
        }
    }
    out.extend(views.iter().map(|(r, res)| evaluate_replica_view(r, res)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNTR: &str = "zk_version\t3.8.0\nzk_server_state\tleader\nzk_avg_latency\t0.5\nzk_max_latency\t3\nzk_outstanding_requests\t0\nzk_num_alive_connections\t4\nzk_znode_count\t42\nzk_followers\t2\nzk_synced_followers\t2\n";
    const SRVR: &str = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nReceived: 3\nSent: 3\nConnections: 1\nOutstanding: 0\nZxid: 0x0\nMode: standalone\nNode count: 5\n";
    const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests\n";

    fn node(answers: &[(&'static str, Result<&str, ProbeError>)]) -> NodeAnswers {
        NodeAnswers {
            node: "zk1:2181".into(),
            answers: answers
                .iter()
                .map(|(w, r)| (*w, r.clone().map(str::to_string)))
                .collect(),
        }
    }

    fn wl(w: &str) -> String {
        format!("{w} is not executed because it is not in the whitelist.")
    }

    #[test]
    fn node_table() {
        let mntr_slow = MNTR
            .replace("zk_avg_latency\t0.5", "zk_avg_latency\t250")
            .replace("zk_synced_followers\t2", "zk_synced_followers\t1");
        let (wl_ruok, wl_mntr, wl_isro) = (wl("ruok"), wl("mntr"), wl("isro"));
        let cases: Vec<(&str, NodeAnswers, Severity, &str)> = vec![
            ("healthy leader", node(&[("ruok", Ok("imok")), ("mntr", Ok(MNTR)), ("srvr", Ok(SRVR)), ("isro", Ok("rw"))]), Severity::Ok, "leader, latency avg 0.5 ms / max 3 ms, 0 outstanding, 4 connections, 42 znodes, 2/2 followers synced"),
            ("only srvr allowed", node(&[("ruok", Ok(&wl_ruok)), ("mntr", Ok(&wl_mntr)), ("srvr", Ok(SRVR)), ("isro", Ok(&wl_isro))]), Severity::Ok, "standalone"),
            ("refused", node(&[("ruok", Err(ProbeError::Refused)), ("mntr", Err(ProbeError::Refused)), ("srvr", Err(ProbeError::Refused)), ("isro", Err(ProbeError::Refused))]), Severity::Crit, "down (connection refused)"),
            ("not serving", node(&[("ruok", Ok("imok")), ("mntr", Ok(NOT_SERVING)), ("srvr", Ok(NOT_SERVING)), ("isro", Ok("null"))]), Severity::Crit, "not serving requests"),
            ("imok only", node(&[("ruok", Ok("imok")), ("mntr", Ok(&wl_mntr)), ("srvr", Err(ProbeError::Timeout { after_ms: 2000 })), ("isro", Ok(&wl_isro))]), Severity::Unknown, "alive (imok) but its serving state is unknown"),
            ("read-only", node(&[("ruok", Ok("imok")), ("mntr", Ok(MNTR)), ("srvr", Ok(SRVR)), ("isro", Ok("ro"))]), Severity::Crit, "read-only mode"),
            ("overloaded", node(&[("ruok", Ok("imok")), ("mntr", Ok(&mntr_slow)), ("srvr", Ok(SRVR)), ("isro", Ok("rw"))]), Severity::Warn, "high latency (avg 250 ms), only 1 of 2 followers synced"),
        ];
        for (name, n, sev, text) in cases {
            let f = evaluate_node(&n);
            assert_eq!(f.severity, sev, "{name}: {f:?}");
            assert!(f.summary.contains(text), "{name}: {}", f.summary);
            assert_eq!(
                f.causes.contains(&Cause::Keeper),
                sev >= Severity::Warn,
                "{name}"
            );
        }
    }

    #[test]
    fn whitelist_refusals_are_reported_as_not_allowed() {
        let w = wl("mntr");
        let f = evaluate_node(&node(&[("mntr", Ok(&w)), ("srvr", Ok(SRVR))]));
        assert_eq!(f.severity, Severity::Ok);
        assert!(
            f.evidence
                .iter()
                .any(|e| e == "mntr: not allowed (not in 4lw.commands.whitelist)"),
            "{:?}",
            f.evidence
        );
    }

    #[test]
    fn replica_views() {
        let unknown_table = Err(ProbeError::Server {
            code: 60,
            name: "UNKNOWN_TABLE".into(),
            message: "Unknown table".into(),
        });
        let expired = Err(ProbeError::Server {
            code: 999,
            name: "KEEPER_EXCEPTION".into(),
            message: "Session expired".into(),
        });
        let cases: Vec<(Result<Vec<ZkRow>, ProbeError>, Severity, &str)> = vec![
            (
                Ok(vec![ZkRow {
                    name: "clickhouse".into(),
                }]),
                Severity::Ok,
                "sees Keeper (1 root nodes)",
            ),
            (unknown_table, Severity::Ok, "no Keeper configured"),
            (expired, Severity::Crit, "cannot reach Keeper"),
            (
                Err(ProbeError::Refused),
                Severity::Unknown,
                "no answer (connection refused)",
            ),
        ];
        for (res, sev, text) in cases {
            let f = evaluate_replica_view("r1", &res);
            assert_eq!(f.severity, sev, "{text}");
            assert!(f.summary.contains(text), "{}", f.summary);
        }
    }

    #[test]
    fn quorum_and_missing_config() {
        let down = node(&[("ruok", Err(ProbeError::Refused))]);
        let up = node(&[("srvr", Ok(SRVR))]);
        let f = evaluate(&[down.clone(), down.clone(), up.clone()], &[]);
        assert!(f.iter().any(|f| f.summary.contains("quorum lost: 2 of 3")));
        let f = evaluate(&[down, up.clone(), up], &[]);
        assert!(!f.iter().any(|f| f.summary.contains("quorum lost")));
        assert_eq!(
            f[0].severity,
            Severity::Warn,
            "one of three down: the ensemble still serves"
        );
        assert!(f[0]
            .evidence
            .contains(&"quorum holds: 2 of 3 nodes healthy".to_string()));
        let f = evaluate(&[], &[]);
        assert_eq!(f[0].severity, Severity::Unknown);
    }
}
