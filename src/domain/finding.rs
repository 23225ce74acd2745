//! Findings: one observation of one check about one subject, with its severity and evidence.

use serde::Serialize;
use std::fmt;

use super::cause::Cause;
use super::classify::ErrorKind;
use super::text::{clip, EVIDENCE_MAX, SUMMARY_MAX};

/// How bad a finding is. Ordered: `Ok < Unknown < Warn < Crit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    /// The check could not tell (no answer in time, not permitted, not available).
    Unknown,
    Warn,
    Crit,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Unknown => "unknown",
            Severity::Warn => "warn",
            Severity::Crit => "crit",
        }
    }
}

/// The checks of the runbook, in the order the card shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Keeper,
    Replicas,
    Lag,
    Blockers,
    Backups,
    Settings,
}

impl CheckKind {
    pub const ALL: [CheckKind; 6] = [
        CheckKind::Keeper,
        CheckKind::Replicas,
        CheckKind::Lag,
        CheckKind::Blockers,
        CheckKind::Backups,
        CheckKind::Settings,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Keeper => "keeper",
            CheckKind::Replicas => "replicas",
            CheckKind::Lag => "lag",
            CheckKind::Blockers => "blockers",
            CheckKind::Backups => "backups",
            CheckKind::Settings => "settings",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            CheckKind::Keeper => "Keeper",
            CheckKind::Replicas => "Replicas",
            CheckKind::Lag => "Replication lag",
            CheckKind::Blockers => "Blocking operations",
            CheckKind::Backups => "Recent backups",
            CheckKind::Settings => "Backup sync settings",
        }
    }

    pub fn parse(s: &str) -> Option<CheckKind> {
        CheckKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// What a finding is about. Carries the real names that next steps are filled with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    Cluster,
    Replica {
        replica: String,
    },
    KeeperNode {
        node: String,
    },
    Table {
        replica: String,
        database: String,
        table: String,
    },
    Backup {
        replica: String,
        id: String,
        name: String,
    },
    Mutation {
        replica: String,
        database: String,
        table: String,
        mutation_id: String,
    },
}

impl Subject {
    pub fn replica(r: &str) -> Subject {
        Subject::Replica {
            replica: r.to_string(),
        }
    }

    /// The replica this subject lives on, if any.
    pub fn replica_name(&self) -> Option<&str> {
        match self {
            Subject::Replica { replica }
            | Subject::Table { replica, .. }
            | Subject::Backup { replica, .. }
            | Subject::Mutation { replica, .. } => Some(replica),
            Subject::Cluster | Subject::KeeperNode { .. } => None,
        }
    }
}

/// One observation. `summary` is the one line the card shows; `evidence` holds the numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub check: CheckKind,
    pub severity: Severity,
    pub subject: Subject,
    pub summary: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Causes of the runbook this finding is evidence for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
    /// Facts the next steps and guards depend on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<Flag>,
}

/// Structured facts about a finding's subject that decide which next step is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "flag", content = "kind")]
pub enum Flag {
    /// The replicated table is read-only on that replica.
    ReadOnly,
    /// The replica's Keeper session expired.
    SessionExpired,
    /// The replica is the last active one of its shard for that table.
    LastActiveReplica,
    /// The operation keeps failing (mutation with a fail reason).
    Failing,
    /// A replication delay or queue over the thresholds.
    Lagging,
    /// A failed backup/restore, with what its error means.
    BackupError(ErrorKind),
    /// The finer kind of a failed backup's error (`store_throttled`, `disk_full`, …): its own
    /// next step when it has one.
    BackupDetail(&'static str),
    /// The backup's error says its destination is not shared by every host.
    DestinationNotShared,
    /// The destination has no backup by that name (599 BACKUP_NOT_FOUND).
    BackupNotFound,
}

impl Finding {
    pub fn new(
        check: CheckKind,
        severity: Severity,
        subject: Subject,
        summary: impl Into<String>,
    ) -> Self {
        Finding {
            check,
            severity,
            subject,
            // Server text can be any length: a card line never is.
            summary: clip(&summary.into(), SUMMARY_MAX),
            evidence: Vec::new(),
            causes: Vec::new(),
            flags: Vec::new(),
        }
    }

    pub fn evidence(mut self, e: impl Into<String>) -> Self {
        self.evidence.push(clip(&e.into(), EVIDENCE_MAX));
        self
    }

    pub fn cause(mut self, c: Cause) -> Self {
        if !self.causes.contains(&c) {
            self.causes.push(c);
        }
        self
    }

    pub fn flag(mut self, f: Flag) -> Self {
        if !self.flags.contains(&f) {
            self.flags.push(f);
        }
        self
    }

    pub fn has(&self, f: Flag) -> bool {
        self.flags.contains(&f)
    }

    /// The finding a check reports for a replica it could not query.
    pub fn probe_failed(check: CheckKind, replica: &str, err: &ProbeError) -> Self {
        let full = format!("{replica}: no answer ({err})");
        let mut f = Finding::new(check, Severity::Unknown, Subject::replica(replica), &*full);
        if full.len() > SUMMARY_MAX {
            f = f.evidence(full);
        }
        // A plain timeout is a replica that does not answer; "network trouble" is kept for
        // evidence of intermittency (errors between peers, 209/210, retries).
        match err {
            ProbeError::Timeout { .. } | ProbeError::Refused | ProbeError::Network(_) => {
                f.cause(Cause::ReplicaOffline)
            }
            _ => f,
        }
    }
}

/// Why a probe of a replica or Keeper node produced no data. Adapters map their errors into this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeError {
    /// TCP connection refused: nothing listens there.
    Refused,
    /// No complete answer within the deadline.
    Timeout { after_ms: u64 },
    /// The server rejected the credentials (codes 516, 192, 193, 194).
    Auth { code: u32 },
    /// The server answered with a ClickHouse exception.
    Server {
        code: u32,
        name: String,
        message: String,
    },
    /// Any other transport failure (reset, DNS …).
    Network(String),
    /// The TLS handshake or session failed: what is wrong (untrusted, wrong name, expired, a
    /// client certificate wanted …). Not "offline": the server answered, chops would not trust it.
    Tls(String),
    /// The answer did not have the expected shape.
    Decode(String),
    /// The answer was larger than chops reads (`limits` in config); the rest was not read.
    TooLarge { limit: u64, unit: &'static str },
    /// chops itself could not probe (out of file descriptors, …): not the server's fault.
    Local(String),
}

impl ProbeError {
    /// A short, bounded name of the kind (metrics labels).
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeError::Refused => "refused",
            ProbeError::Timeout { .. } => "timeout",
            ProbeError::Auth { .. } => "auth",
            ProbeError::Server { .. } => "server",
            ProbeError::Network(_) => "network",
            ProbeError::Tls(_) => "tls",
            ProbeError::Decode(_) => "decode",
            ProbeError::TooLarge { .. } => "too_large",
            ProbeError::Local(_) => "local",
        }
    }

    pub fn code(&self) -> Option<u32> {
        match self {
            ProbeError::Server { code, .. } | ProbeError::Auth { code } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Refused => write!(f, "connection refused"),
            ProbeError::Timeout { after_ms } => write!(f, "timed out after {after_ms} ms"),
            ProbeError::Auth { code } => write!(f, "authentication failed (code {code})"),
            ProbeError::Server {
                code,
                name,
                message,
            } => {
                if name.is_empty() {
                    write!(f, "code {code}: {message}")
                } else {
                    write!(f, "code {code} {name}: {message}")
                }
            }
            ProbeError::Network(m) => write!(f, "network error: {m}"),
            ProbeError::Tls(m) => write!(f, "TLS: {m}"),
            ProbeError::Decode(m) => write!(f, "unexpected answer: {m}"),
            ProbeError::TooLarge { limit, unit } => {
                write!(f, "answer too large (> {limit} {unit})")
            }
            ProbeError::Local(m) => write!(f, "chops could not send the probe: {m}"),
        }
    }
}
