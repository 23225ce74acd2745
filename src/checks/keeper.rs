//! Keeper health: four-letter words on every Keeper node, and `system.zookeeper` from every replica.
//! The words and SQL, the probe (`run`) and the pure `evaluate`.

use std::collections::BTreeMap;

use ::clickhouse::Row;
use serde::Deserialize;

use super::{gather, timed, BoxFut, Cluster};
use crate::clickhouse::batch::Part;
use crate::domain::{Cause, CheckKind, Finding, ProbeError, Severity, Subject};

/// The replica's own view of Keeper (runbook step 1).
pub const ZOOKEEPER_ROOT_SQL: &str = "SELECT name FROM system.zookeeper WHERE path = '/' LIMIT 100";

/// Every word a node may be asked, in the order its answers are listed. `ruok` only proves the
/// process lives; `mntr`/`srvr` tell whether it serves; `isro` whether it is read-only.
pub const WORDS: [&str; 4] = ["ruok", "mntr", "srvr", "isro"];

/// Asked of every node first: either tells the node's state (a read-only ZooKeeper's is
/// `read-only`), which makes `ruok` and `isro` redundant. ZooKeeper 3.5+ allows only `srvr` by
/// default, ClickHouse Keeper all four.
pub const STATE_WORDS: [&str; 2] = ["srvr", "mntr"];

/// Asked only when neither state word told the state (not allowed, or failed): whether the
/// process lives at all, and whether it is read-only. A healthy card spends two connections per
/// node, not four.
pub const FALLBACK_WORDS: [&str; 2] = ["ruok", "isro"];

/// Latency (ms) and outstanding requests above which a node is reported as overloaded.
pub const MAX_AVG_LATENCY_MS: f64 = 100.0;
pub const MAX_OUTSTANDING: u64 = 100;

#[derive(Debug, Clone, Row, Deserialize)]
pub struct ZkRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub name: String,
}

/// Each word asked of a node and what it answered.
pub type WordAnswers = Vec<(&'static str, Result<String, ProbeError>)>;

/// What one node answered to each word.
#[derive(Debug, Clone)]
pub struct NodeAnswers {
    pub node: String,
    pub answers: WordAnswers,
}

/// One word's answer, interpreted (borrowing the answer: `mntr` runs to kilobytes).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<'a> {
    Text(&'a str),
    /// ZooKeeper's "… is not executed because it is not in the whitelist."
    NotAllowed,
    /// Nothing before the close: how ClickHouse Keeper refuses a word outside its
    /// `four_letter_word_white_list` (it sends no text, unlike ZooKeeper).
    Silent,
    NotServing,
    Failed(&'a ProbeError),
}

pub fn interpret(result: &Result<String, ProbeError>) -> Answer<'_> {
    match result {
        Err(e) => Answer::Failed(e),
        Ok(t) if t.trim().is_empty() => Answer::Silent,
        Ok(t) if t.contains("not in the whitelist") => Answer::NotAllowed,
        Ok(t) if t.contains("not currently serving requests") => Answer::NotServing,
        Ok(t) => Answer::Text(t),
    }
}

/// The `mntr` keys a node is judged by (`parse_srvr` maps `srvr` onto six of them). A leader
/// counts its voting followers in `zk_followers` (ZooKeeper up to 3.5, ClickHouse Keeper) or,
/// from ZooKeeper 3.6, as `zk_quorum_size` less itself (`zk_learners` counts observers too).
const MNTR_KEYS: [&str; 9] = [
    "zk_server_state",
    "zk_avg_latency",
    "zk_max_latency",
    "zk_outstanding_requests",
    "zk_num_alive_connections",
    "zk_znode_count",
    "zk_followers",
    "zk_quorum_size",
    "zk_synced_followers",
];

/// `mntr` lines (`key<TAB>value`) of the keys in [`MNTR_KEYS`]: a 3.8 node sends a few hundred
/// metrics, and keeping them all cost more than the rest of a small cluster's card.
pub fn parse_mntr(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(k, _)| MNTR_KEYS.contains(&k.trim()))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
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

/// Judge one Keeper node from its answers: down, not serving, read-only, of unknown state,
/// strained, or healthy. Words it refused or failed to answer are listed as evidence.
pub fn evaluate_node(n: &NodeAnswers) -> Finding {
    let all: Vec<(&str, Answer)> = n.answers.iter().map(|(w, r)| (*w, interpret(r))).collect();
    let f = unreachable_node(&n.node, &all).unwrap_or_else(|| serving_node(&n.node, &all));
    refusals(&all).into_iter().fold(f, |f, e| f.evidence(e))
}

/// What each word that gave no usable text said instead.
fn refusals(all: &[(&str, Answer)]) -> Vec<String> {
    all.iter()
        .filter_map(|(w, a)| match a {
            Answer::NotAllowed => Some(format!("{w}: not allowed (not in 4lw.commands.whitelist)")),
            Answer::Silent => Some(format!(
                "{w}: empty answer (not in a ClickHouse Keeper's four_letter_word_white_list?)"
            )),
            Answer::Failed(e) => Some(format!("{w}: {e}")),
            Answer::NotServing => Some(format!("{w}: not currently serving requests")),
            Answer::Text(_) => None,
        })
        .collect()
}

fn node_finding(node: &str, severity: Severity, text: impl std::fmt::Display) -> Finding {
    let subject = Subject::KeeperNode {
        node: node.to_string(),
    };
    Finding::new(
        CheckKind::Keeper,
        severity,
        subject,
        format!("Keeper {node}: {text}"),
    )
}

/// Down (nothing answered) or not serving (no quorum): the node is of no use to the cluster.
fn unreachable_node(node: &str, all: &[(&str, Answer)]) -> Option<Finding> {
    if all.iter().all(|(_, a)| matches!(a, Answer::Failed(_))) {
        let first = all.iter().find_map(|(_, a)| match a {
            Answer::Failed(e) => Some(*e),
            _ => None,
        });
        // A TLS failure is a server chops would not trust, not a Keeper that is down.
        if let Some(e @ ProbeError::Tls(_)) = &first {
            return Some(node_finding(
                node,
                Severity::Unknown,
                format!("cannot be checked ({e})"),
            ));
        }
        let why = first
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no answer".into());
        let f = node_finding(node, Severity::Crit, format!("down ({why})"));
        return Some(f.cause(Cause::Keeper));
    }
    // ZooKeeper's `isro` says `null` where the other words say "not currently serving".
    let isro_null = all
        .iter()
        .any(|(w, a)| *w == "isro" && matches!(a, Answer::Text(t) if t.trim() == "null"));
    if isro_null || all.iter().any(|(_, a)| *a == Answer::NotServing) {
        let f = node_finding(node, Severity::Crit, "not serving requests (no quorum?)");
        return Some(f.cause(Cause::Keeper));
    }
    None
}

/// The text word `w` answered, if it answered with usable text.
fn text_of<'a>(all: &[(&str, Answer<'a>)], w: &str) -> Option<&'a str> {
    match all.iter().find(|(word, _)| *word == w) {
        Some((_, Answer::Text(t))) => Some(*t),
        _ => None,
    }
}

/// A node that answers: judged by `isro`, `ruok` and the numbers of `srvr`/`mntr`.
fn serving_node(node: &str, all: &[(&str, Answer)]) -> Finding {
    let text = |w: &str| text_of(all, w);
    let stats = Stats::read(text("srvr"), text("mntr"));
    // Only ClickHouse Keeper refuses a word silently, and there `isro = ro` means an observer.
    let keeper = all.iter().any(|(_, a)| *a == Answer::Silent);
    if let Some(f) = read_only_node(node, &stats, text("isro"), keeper) {
        return f;
    }
    if stats.state.is_none() {
        // Alive at best, but whether it serves is unknown (mntr/srvr not allowed or failed).
        let what = if text("ruok").is_some_and(|t| t.trim() == "imok") {
            "alive (imok) but its serving state is unknown"
        } else {
            "serving state unknown"
        };
        return node_finding(node, Severity::Unknown, what);
    }
    let problems = stats.problems();
    if problems.is_empty() {
        return node_finding(node, Severity::Ok, stats.detail());
    }
    node_finding(node, Severity::Warn, problems.join(", "))
        .cause(Cause::Keeper)
        .evidence(stats.detail())
}

/// A node in read-only mode: its state says so (ZooKeeper's `read-only`), or `isro` answers `ro`
/// while the state is unknown or another. A ClickHouse Keeper observer answers `ro` to `isro` too,
/// but forwards writes to the leader: with its state (`observer`) known, or the node known to be
/// a ClickHouse Keeper (`clickhouse_keeper`), that is no fault.
fn read_only_node(
    node: &str,
    stats: &Stats,
    isro: Option<&str>,
    clickhouse_keeper: bool,
) -> Option<Finding> {
    let state = stats.state.as_deref();
    let isro_ro = isro.is_some_and(|t| t.trim() == "ro");
    let what = if state == Some("read-only") {
        "read-only mode (state read-only), writes fail"
    } else if isro_ro && state != Some("observer") && !clickhouse_keeper {
        "read-only mode (isro = ro), writes fail"
    } else {
        return None;
    };
    let f = node_finding(node, Severity::Crit, what).cause(Cause::Keeper);
    Some(match state {
        None => {
            f.evidence("a ClickHouse Keeper observer answers ro too; allow srvr to tell them apart")
        }
        Some(_) => f,
    })
}

/// Whether `ruok` and `isro` could add anything to these answers: no word told the node's state,
/// none said the node is not serving (which settles it), and none timed out (the round's
/// deadline is spent: more words would only fail at once).
pub fn needs_fallback(answers: &WordAnswers) -> bool {
    let all: Vec<(&str, Answer)> = answers.iter().map(|(w, r)| (*w, interpret(r))).collect();
    let text = |w: &str| text_of(&all, w);
    let settled = all.iter().any(|(_, a)| {
        *a == Answer::NotServing || matches!(a, Answer::Failed(ProbeError::Timeout { .. }))
    });
    !settled && Stats::read(text("srvr"), text("mntr")).state.is_none()
}

/// A node's numbers, from `srvr` and `mntr` (mntr's win where both say).
#[derive(Debug, Default)]
struct Stats {
    state: Option<String>,
    avg: Option<f64>,
    max: Option<f64>,
    outstanding: Option<u64>,
    conns: Option<u64>,
    znodes: Option<u64>,
    followers: Option<u64>,
    synced: Option<u64>,
}

impl Stats {
    fn read(srvr: Option<&str>, mntr: Option<&str>) -> Stats {
        let mut m = BTreeMap::new();
        m.extend(srvr.map(parse_srvr).unwrap_or_default());
        m.extend(mntr.map(parse_mntr).unwrap_or_default());
        Stats {
            state: m.get("zk_server_state").cloned(),
            avg: num(&m, "zk_avg_latency"),
            max: num(&m, "zk_max_latency"),
            outstanding: num(&m, "zk_outstanding_requests"),
            conns: num(&m, "zk_num_alive_connections"),
            znodes: num(&m, "zk_znode_count"),
            followers: num(&m, "zk_followers")
                .or_else(|| num::<u64>(&m, "zk_quorum_size").map(|q| q.saturating_sub(1))),
            synced: num(&m, "zk_synced_followers"),
        }
    }

    /// "leader, latency avg 0.5 ms / max 3 ms, 0 outstanding, …": whatever the node told.
    fn detail(&self) -> String {
        let mut numbers = Vec::new();
        numbers.extend(self.state.clone());
        if let (Some(a), Some(m)) = (self.avg, self.max) {
            numbers.push(format!("latency avg {a} ms / max {m} ms"));
        }
        numbers.extend(self.outstanding.map(|o| format!("{o} outstanding")));
        numbers.extend(self.conns.map(|c| format!("{c} connections")));
        numbers.extend(self.znodes.map(|z| format!("{z} znodes")));
        if let (Some(f), Some(s)) = (self.followers, self.synced) {
            numbers.push(format!("{s}/{f} followers synced"));
        }
        numbers.join(", ")
    }

    /// Latency, backlog and lagging followers beyond the limits.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(a) = self.avg.filter(|a| *a > MAX_AVG_LATENCY_MS) {
            problems.push(format!("high latency (avg {a} ms)"));
        }
        if let Some(o) = self.outstanding.filter(|o| *o > MAX_OUTSTANDING) {
            problems.push(format!("{o} outstanding requests"));
        }
        if let (Some(f), Some(s)) = (self.followers, self.synced) {
            if s < f {
                problems.push(format!("only {s} of {f} followers synced"));
            }
        }
        problems
    }
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

/// `system.zookeeper` waits on Keeper: a risky part of the round's batch.
pub(super) fn batched() -> Vec<Part> {
    vec![Part::risky(ZOOKEEPER_ROOT_SQL, &[])]
}

/// The probe: every word on every Keeper node, and `system.zookeeper` on every replica; judged.
pub(super) async fn run(cl: &Cluster) -> Vec<Finding> {
    let nodes = gather(
        cl.mode,
        cl.keeper
            .iter()
            .cloned()
            .map(|node| Box::pin(ask(cl, node)) as BoxFut<'_, _>)
            .collect(),
    );
    let views = cl.per_replica(|c| async move {
        let r: Result<Vec<ZkRow>, ProbeError> = c.fetch(ZOOKEEPER_ROOT_SQL, &[]).await;
        (c.name.clone(), r)
    });
    let (nodes, views) = join_in!(cl.mode; nodes, views);
    evaluate(&nodes, &views)
}

/// One node's answers, timed as one probe of that node: the state words, then the fallback
/// words only if those did not tell (one round trip more, only for a node that is off).
async fn ask(cl: &Cluster, node: String) -> NodeAnswers {
    let answers = timed(node.clone(), async {
        let mut answers = words(cl, &node, &STATE_WORDS).await;
        if needs_fallback(&answers) {
            answers.extend(words(cl, &node, &FALLBACK_WORDS).await);
        }
        answers.sort_by_key(|(w, _)| WORDS.iter().position(|x| x == w));
        answers
    })
    .await;
    NodeAnswers { node, answers }
}

/// `words` asked of `node` at once, one connection each.
async fn words<'a>(cl: &'a Cluster, node: &'a str, words: &'static [&'static str]) -> WordAnswers {
    let (deadline, budget) = (cl.deadline, &cl.budget);
    let asks: Vec<BoxFut<'a, _>> = words
        .iter()
        .map(|w| {
            Box::pin(async move {
                let answer = crate::keeper::four_letter(node, w, deadline, budget).await;
                (*w, answer)
            }) as BoxFut<'a, _>
        })
        .collect();
    gather(cl.mode, asks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leader's mntr as ZooKeeper up to 3.5 and ClickHouse Keeper write it.
    const MNTR: &str = "zk_version\t3.5.9\nzk_server_state\tleader\nzk_avg_latency\t0.5\nzk_max_latency\t3\nzk_outstanding_requests\t0\nzk_num_alive_connections\t4\nzk_znode_count\t42\nzk_followers\t2\nzk_synced_followers\t2\n";
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

    /// Only the numbers a node is judged by are kept from a long `mntr`.
    #[test]
    fn mntr_keeps_the_keys_it_is_judged_by() {
        let long = format!("{MNTR}zk_packets_sent\t7\nzk_uptime\t354\nno tab here\n");
        let m = parse_mntr(&long);
        assert_eq!(m.len(), 8, "{m:?}");
        assert_eq!(m["zk_server_state"], "leader");
        assert!(!m.contains_key("zk_uptime") && !m.contains_key("zk_version"));
    }

    #[test]
    fn node_table() {
        let mntr_slow = MNTR
            .replace("zk_avg_latency\t0.5", "zk_avg_latency\t250")
            .replace("zk_synced_followers\t2", "zk_synced_followers\t1");
        let (wl_ruok, wl_mntr, wl_isro, wl_srvr) = (wl("ruok"), wl("mntr"), wl("isro"), wl("srvr"));
        let srvr_ro = SRVR.replace("Mode: standalone", "Mode: read-only");
        let mntr_observer = MNTR.replace("zk_server_state\tleader", "zk_server_state\tobserver");
        // ZooKeeper 3.6+: no zk_followers; three voters (the leader and two followers) and an
        // observer among the learners.
        let mntr_38 = MNTR
            .replace("zk_version\t3.5.9", "zk_version\t3.8.4")
            .replace(
                "zk_followers\t2",
                "zk_learners\t3\nzk_quorum_size\t3\nzk_synced_observers\t1",
            );
        let mntr_38_lagging = mntr_38.replace("zk_synced_followers\t2", "zk_synced_followers\t1");
        let cases: Vec<(&str, NodeAnswers, Severity, &str)> = vec![
            ("healthy leader", node(&[("ruok", Ok("imok")), ("mntr", Ok(MNTR)), ("srvr", Ok(SRVR)), ("isro", Ok("rw"))]), Severity::Ok, "leader, latency avg 0.5 ms / max 3 ms, 0 outstanding, 4 connections, 42 znodes, 2/2 followers synced"),
            ("only srvr allowed", node(&[("ruok", Ok(&wl_ruok)), ("mntr", Ok(&wl_mntr)), ("srvr", Ok(SRVR)), ("isro", Ok(&wl_isro))]), Severity::Ok, "standalone"),
            ("refused", node(&[("ruok", Err(ProbeError::Refused)), ("mntr", Err(ProbeError::Refused)), ("srvr", Err(ProbeError::Refused)), ("isro", Err(ProbeError::Refused))]), Severity::Crit, "down (connection refused)"),
            ("not serving", node(&[("ruok", Ok("imok")), ("mntr", Ok(NOT_SERVING)), ("srvr", Ok(NOT_SERVING)), ("isro", Ok("null"))]), Severity::Crit, "not serving requests"),
            ("imok only", node(&[("ruok", Ok("imok")), ("mntr", Ok(&wl_mntr)), ("srvr", Err(ProbeError::Timeout { after_ms: 2000 })), ("isro", Ok(&wl_isro))]), Severity::Unknown, "alive (imok) but its serving state is unknown"),
            ("read-only", node(&[("ruok", Ok("imok")), ("mntr", Ok(MNTR)), ("srvr", Ok(SRVR)), ("isro", Ok("ro"))]), Severity::Crit, "read-only mode"),
            ("read-only, told by srvr alone", node(&[("mntr", Ok(&wl_mntr)), ("srvr", Ok(&srvr_ro))]), Severity::Crit, "read-only mode (state read-only)"),
            ("read-only, told by isro alone", node(&[("ruok", Ok("imok")), ("mntr", Ok(&wl_mntr)), ("srvr", Ok(&wl_srvr)), ("isro", Ok("ro"))]), Severity::Crit, "read-only mode (isro = ro)"),
            ("a Keeper observer", node(&[("ruok", Ok("imok")), ("mntr", Ok(&mntr_observer)), ("srvr", Ok(SRVR)), ("isro", Ok("ro"))]), Severity::Ok, "observer"),
            ("a Keeper observer, srvr and mntr refused", node(&[("ruok", Ok("imok")), ("mntr", Ok("")), ("srvr", Ok("")), ("isro", Ok("ro"))]), Severity::Unknown, "alive (imok) but its serving state is unknown"),
            ("isro null", node(&[("ruok", Ok("imok")), ("mntr", Ok(&wl_mntr)), ("srvr", Ok(&wl_srvr)), ("isro", Ok("null"))]), Severity::Crit, "not serving requests"),
            ("overloaded", node(&[("ruok", Ok("imok")), ("mntr", Ok(&mntr_slow)), ("srvr", Ok(SRVR)), ("isro", Ok("rw"))]), Severity::Warn, "high latency (avg 250 ms), only 1 of 2 followers synced"),
            ("3.8 leader, an observer", node(&[("ruok", Ok("imok")), ("mntr", Ok(&mntr_38)), ("srvr", Ok(SRVR)), ("isro", Ok("rw"))]), Severity::Ok, "2/2 followers synced"),
            ("3.8 leader, a follower behind", node(&[("ruok", Ok("imok")), ("mntr", Ok(&mntr_38_lagging)), ("srvr", Ok(SRVR)), ("isro", Ok("rw"))]), Severity::Warn, "only 1 of 2 followers synced"),
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

    /// `ruok` and `isro` are asked only of a node whose state words did not tell its state.
    #[test]
    fn fallback_words_only_when_the_state_is_unknown() {
        let owned = |a: &[(&'static str, Result<&str, ProbeError>)]| node(a).answers;
        let (wl_mntr, wl_srvr) = (wl("mntr"), wl("srvr"));
        let timeout = || Err(ProbeError::Timeout { after_ms: 2000 });
        let cases: Vec<(&str, WordAnswers, bool)> = vec![
            (
                "both tell",
                owned(&[("srvr", Ok(SRVR)), ("mntr", Ok(MNTR))]),
                false,
            ),
            (
                "srvr tells (3.5+ default whitelist)",
                owned(&[("srvr", Ok(SRVR)), ("mntr", Ok(&wl_mntr))]),
                false,
            ),
            (
                "mntr tells",
                owned(&[("srvr", timeout()), ("mntr", Ok(MNTR))]),
                false,
            ),
            (
                "not serving settles it",
                owned(&[("srvr", Ok(NOT_SERVING)), ("mntr", Ok(&wl_mntr))]),
                false,
            ),
            (
                "neither allowed",
                owned(&[("srvr", Ok(&wl_srvr)), ("mntr", Ok(&wl_mntr))]),
                true,
            ),
            (
                "both refused",
                owned(&[
                    ("srvr", Err(ProbeError::Refused)),
                    ("mntr", Err(ProbeError::Refused)),
                ]),
                true,
            ),
            (
                "garbage",
                owned(&[("srvr", Ok("\u{0}\u{1}")), ("mntr", Ok(""))]),
                true,
            ),
            (
                "ClickHouse Keeper refuses silently",
                owned(&[("srvr", Ok("")), ("mntr", Ok(""))]),
                true,
            ),
            (
                "timed out: the deadline is spent",
                owned(&[("srvr", timeout()), ("mntr", Ok(&wl_mntr))]),
                false,
            ),
        ];
        for (name, answers, want) in cases {
            assert_eq!(needs_fallback(&answers), want, "{name}");
        }
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
        type View = Result<Vec<ZkRow>, ProbeError>;
        let cases: Vec<(View, Severity, &str)> = vec![
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
