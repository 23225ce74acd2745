//! A round's batch: several read-only queries to one replica in one request.
//!
//! A card asks every replica a handful of small questions (version, cluster view, settings,
//! backups, mutations and merges). Each HTTP request costs chops about 50 µs of CPU whatever it
//! asks, most of it the socket, so at 300 replicas a card's CPU was mostly request overhead. The
//! checks name their queries that only read the server's own memory ([`Part`]); a round sends them
//! to each replica as one `UNION ALL`, every row turned into a string by
//! `formatRowNoNewline('RowBinaryWithNamesAndTypes', *)`, so each part keeps its own column names
//! and types and is decoded strictly into its row type ([`super::rowbinary`]).
//!
//! A batch is a shortcut, never a new way to fail: when a replica will not answer one (an older
//! server, a table the account may not read, a cap), each part is asked on its own, exactly as
//! without batching, and a part that fails on its own is not batched again for that replica.
//!
//! Some parts are *risky*: they wait on something besides the server's memory (Keeper for
//! `system.zookeeper`; a remote database engine or a disk for the settings' `system.tables` and
//! `system.disks`), so when that is the trouble they are the slow or failing ones. A risky part
//! joins a replica's batch only once it has answered that replica on its own within the patience
//! (a quarter of the deadline; [`Learned::prove`]), so a first card (`chops check`) asks as it
//! always did. A batch holding one that has not answered within the patience is given up: its
//! risky parts go alone for a while ([`RELEARN_AFTER`]) and the others are asked again in a batch
//! without them, so a Keeper outage delays the rest by the patience, not the deadline.
//! The lag query (`system.replicas`, a row per replicated table) is never a part: its rows would
//! carry their column header each and could outgrow the batch's answer cap.

use std::fmt::Write;
use std::time::{Duration, Instant};

use ::clickhouse::Row;
use serde::Deserialize;

use crate::domain::ProbeError;

/// Most parts in one batch (a part's index travels as a `UInt8`).
pub const MAX_PARTS: usize = 32;

/// One query of a round that may travel in its batch: its SQL and what its `?`s are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub sql: &'static str,
    pub binds: Vec<String>,
    /// Waits on something besides the server's memory (see the module's notes).
    pub risky: bool,
}

impl Part {
    /// A part that reads only the server's memory.
    pub fn new(sql: &'static str, binds: &[&str]) -> Part {
        Part {
            sql,
            binds: binds.iter().map(|b| b.to_string()).collect(),
            risky: false,
        }
    }

    /// A part that may wait on Keeper, a remote or a disk: batched only once proven quick.
    pub fn risky(sql: &'static str, binds: &[&str]) -> Part {
        Part {
            risky: true,
            ..Part::new(sql, binds)
        }
    }

    fn is(&self, sql: &str, binds: &[&str]) -> bool {
        self.sql == sql && self.binds.len() == binds.len() && self.binds.iter().eq(binds.iter())
    }
}

/// The parts of one round (the same for every replica of the cluster), without repeats.
#[derive(Debug, Default)]
pub struct Plan {
    parts: Vec<Part>,
}

impl Plan {
    pub fn new(parts: impl IntoIterator<Item = Part>) -> Plan {
        let mut plan = Plan::default();
        for p in parts {
            if !plan.parts.contains(&p) && plan.parts.len() < MAX_PARTS {
                plan.parts.push(p);
            }
        }
        plan
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Where the query `sql` with `binds` is in the plan, if it is a part.
    pub fn position(&self, sql: &str, binds: &[&str]) -> Option<usize> {
        self.parts.iter().position(|p| p.is(sql, binds))
    }
}

/// The batch's SQL for `parts` and its binds in order: part `k`'s rows come back tagged `k`.
/// The parts' SQL is chops' own constants; binds go through the client's escaping as always.
pub fn compose<'a>(parts: &[&'a Part]) -> (String, Vec<&'a str>) {
    let mut sql = String::with_capacity(parts.iter().map(|p| p.sql.len() + 96).sum());
    let mut binds = Vec::new();
    for (k, p) in parts.iter().enumerate() {
        // Names only in the first SELECT: a UNION ALL takes its columns' names from it.
        let _ = match k {
            0 => write!(
                sql,
                "SELECT toUInt8(0) AS part, formatRowNoNewline('RowBinaryWithNamesAndTypes', *) AS row FROM ({})",
                p.sql
            ),
            _ => write!(
                sql,
                " UNION ALL SELECT toUInt8({k}), formatRowNoNewline('RowBinaryWithNamesAndTypes', *) FROM ({})",
                p.sql
            ),
        };
        binds.extend(p.binds.iter().map(String::as_str));
    }
    (sql, binds)
}

/// One row of a batch's answer: which part, and that part's row with its own header.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct BatchRow {
    pub part: u8,
    #[serde(deserialize_with = "raw")]
    pub row: Vec<u8>,
}

/// The rows of each of `n` parts, in the order the server sent them.
pub fn split(rows: Vec<BatchRow>, n: usize) -> Result<Vec<Vec<Vec<u8>>>, ProbeError> {
    let mut out = vec![Vec::new(); n];
    for r in rows {
        let part = usize::from(r.part);
        let Some(slot) = out.get_mut(part) else {
            return Err(ProbeError::Decode(format!(
                "a batched answer named part {part} of {n}"
            )));
        };
        slot.push(r.row);
    }
    Ok(out)
}

/// Whether a batch that failed with `e` should be asked part by part: yes when the server
/// answered but would not run it (or its answer broke a cap or the format); no when the replica
/// did not answer at all, which each part on its own would meet as well.
pub fn ask_alone_after(e: &ProbeError) -> bool {
    matches!(
        e,
        ProbeError::Server { .. } | ProbeError::Decode(_) | ProbeError::TooLarge { .. }
    )
}

/// How long what a replica taught about its batches holds: a part that failed alone, or a
/// replica that refused batches, is tried in a batch again after this (an overloaded server's
/// refusals pass; a missing table costs one detour per period).
pub const RELEARN_AFTER: Duration = Duration::from_secs(600);

/// Batches refused in a row before a replica gets none (until [`RELEARN_AFTER`]).
pub const MISSES_MAX: u32 = 2;

/// How long a replica waits for a batch holding a risky part before asking without it.
pub fn patience(deadline: Duration) -> Duration {
    deadline / 4
}

/// What one replica's answers taught about its batches.
#[derive(Debug, Default)]
pub struct Learned {
    /// Parts (their SQL) that failed on their own, or held a batch up, and since when.
    solo: Vec<(&'static str, Instant)>,
    /// Risky parts that answered within the patience, and when they last did.
    proven: Vec<(&'static str, Instant)>,
    misses: u32,
    off_since: Option<Instant>,
}

impl Learned {
    /// Whether `sql` goes alone for now.
    pub fn alone(&mut self, sql: &str, now: Instant) -> bool {
        self.solo
            .retain(|(_, at)| now.saturating_duration_since(*at) < RELEARN_AFTER);
        self.solo.iter().any(|(s, _)| *s == sql)
    }

    /// A part goes alone for a while; a risky one must prove itself again afterwards.
    pub fn mark_alone(&mut self, sql: &'static str, now: Instant) {
        self.proven.retain(|(s, _)| *s != sql);
        if !self.solo.iter().any(|(s, _)| *s == sql) {
            self.solo.push((sql, now));
        }
    }

    /// Risky part `sql` answered within the patience (alone, or in a batch that did).
    pub fn prove(&mut self, sql: &'static str, now: Instant) {
        match self.proven.iter_mut().find(|(s, _)| *s == sql) {
            Some((_, at)) => *at = now,
            None => self.proven.push((sql, now)),
        }
    }

    /// Whether risky part `sql` may join a batch: proven lately and not sent alone for now.
    pub fn proven(&mut self, sql: &str, now: Instant) -> bool {
        self.proven
            .retain(|(_, at)| now.saturating_duration_since(*at) < RELEARN_AFTER);
        self.proven.iter().any(|(s, _)| *s == sql) && !self.alone(sql, now)
    }

    /// Whether this replica gets no batch for now.
    pub fn off(&mut self, now: Instant) -> bool {
        match self.off_since {
            Some(at) if now.saturating_duration_since(at) >= RELEARN_AFTER => {
                (self.off_since, self.misses) = (None, 0);
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    pub fn refused(&mut self, now: Instant) {
        self.misses += 1;
        if self.misses >= MISSES_MAX {
            self.off_since.get_or_insert(now);
        }
    }

    pub fn answered(&mut self) {
        self.misses = 0;
    }
}

/// A `String` column's bytes as they are (each is a row of its own format, not text).
fn raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string's bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
            Ok(v.as_bytes().to_vec())
        }
    }
    d.deserialize_bytes(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_keeps_each_query_once_and_finds_it_by_sql_and_binds() {
        let plan = Plan::new([
            Part::new("SELECT 1", &[]),
            Part::new("SELECT ?", &["a"]),
            Part::new("SELECT 1", &[]),
            Part::new("SELECT ?", &["b"]),
        ]);
        assert_eq!(plan.parts().len(), 3);
        assert_eq!(plan.position("SELECT ?", &["b"]), Some(2));
        assert_eq!(plan.position("SELECT ?", &["c"]), None);
        assert_eq!(plan.position("SELECT ?", &[]), None);
    }

    #[test]
    fn composed_sql_tags_each_part_and_keeps_bind_order() {
        let (a, b) = (
            Part::new("SELECT ? AS x", &["one"]),
            Part::new("SELECT 2", &[]),
        );
        let c = Part::new("SELECT ?, ?", &["two", "three"]);
        let (sql, binds) = compose(&[&a, &b, &c]);
        assert!(sql.starts_with("SELECT toUInt8(0) AS part, formatRowNoNewline('RowBinaryWithNamesAndTypes', *) AS row FROM (SELECT ? AS x)"));
        assert!(sql.contains(" UNION ALL SELECT toUInt8(2), formatRowNoNewline('RowBinaryWithNamesAndTypes', *) FROM (SELECT ?, ?)"));
        assert_eq!(binds, ["one", "two", "three"]);
    }

    #[test]
    fn split_sorts_rows_by_part_and_refuses_a_part_never_sent() {
        let row = |part: u8, b: &[u8]| BatchRow {
            part,
            row: b.to_vec(),
        };
        let parts = split(vec![row(1, b"x"), row(0, b"y"), row(1, b"z")], 3).unwrap();
        assert_eq!(
            parts,
            vec![
                vec![b"y".to_vec()],
                vec![b"x".to_vec(), b"z".to_vec()],
                vec![]
            ]
        );
        assert!(matches!(
            split(vec![row(3, b"")], 3),
            Err(ProbeError::Decode(_))
        ));
    }

    #[test]
    fn what_a_replica_taught_is_forgotten_after_a_while() {
        let t0 = Instant::now();
        let mut l = Learned::default();
        l.mark_alone("SELECT 1", t0);
        assert!(l.alone("SELECT 1", t0 + Duration::from_secs(1)));
        assert!(!l.alone("SELECT 2", t0));
        assert!(!l.alone("SELECT 1", t0 + RELEARN_AFTER));
        l.refused(t0);
        l.answered();
        l.refused(t0);
        assert!(!l.off(t0), "one refusal after an answer");
        l.refused(t0);
        assert!(l.off(t0 + Duration::from_secs(1)));
        assert!(!l.off(t0 + RELEARN_AFTER), "tried again after a while");
        l.refused(t0 + RELEARN_AFTER);
        assert!(!l.off(t0 + RELEARN_AFTER), "counting starts over");
    }

    #[test]
    fn a_risky_part_is_batched_only_while_proven_and_not_sent_alone() {
        let t0 = Instant::now();
        let mut l = Learned::default();
        assert!(!l.proven("SELECT 1", t0), "not before it answered");
        l.prove("SELECT 1", t0);
        assert!(l.proven("SELECT 1", t0 + Duration::from_secs(1)));
        assert!(!l.proven("SELECT 2", t0));
        l.prove("SELECT 1", t0 + RELEARN_AFTER / 2);
        assert!(
            l.proven("SELECT 1", t0 + RELEARN_AFTER),
            "a later answer renews it"
        );
        assert!(!l.proven("SELECT 1", t0 + RELEARN_AFTER * 2), "forgotten");
        l.prove("SELECT 1", t0);
        l.mark_alone("SELECT 1", t0);
        assert!(!l.proven("SELECT 1", t0), "it held a batch up");
        l.prove("SELECT 1", t0 + RELEARN_AFTER);
        assert!(
            l.proven("SELECT 1", t0 + RELEARN_AFTER),
            "proven again after a while alone"
        );
        assert_eq!(
            patience(Duration::from_millis(2000)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn only_an_answering_server_is_asked_again_part_by_part() {
        let server = ProbeError::Server {
            code: 62,
            name: "SYNTAX_ERROR".into(),
            message: String::new(),
        };
        assert!(ask_alone_after(&server));
        assert!(ask_alone_after(&ProbeError::Decode("x".into())));
        assert!(!ask_alone_after(&ProbeError::Refused));
        assert!(!ask_alone_after(&ProbeError::Timeout { after_ms: 5 }));
        assert!(!ask_alone_after(&ProbeError::Auth { code: 516 }));
    }
}
