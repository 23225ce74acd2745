//! Classify a backup/restore error text (system.backups.error, a client exception, a log line) into
//! what it means for on-call, following the runbook's classification table.
//!
//! All knowledge lives in one table, [`PATTERNS`]; the code only finds evidence in the text and
//! picks the strongest. A relayed error is a chain ("Code: 655 … Got error from host X. DB::Exception:
//! <the host's own error>"): the innermost link is what failed, so evidence is weighed innermost
//! first, and within one link a specific wording beats a bare error code.

use serde::Serialize;

use super::cause::Cause;

/// What an error text means (the issue's categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Keeper/ZooKeeper errors: 999, 225, session expired, connection loss.
    Keeper,
    /// A host was lost, never connected, or stopped working (down or its Keeper session lost).
    ReplicaOffline,
    /// A host did not reach a coordination stage in time (server-side timeouts).
    Timeout,
    /// A network or object-storage request between the server and a peer/destination failed.
    Network,
    /// Another backup/restore (or coordination contention) got in the way.
    ConflictingOperation,
    /// A replica is read-only or behind in replication.
    ReplicaLag,
    /// The backup name or operation id was used before: not a sync problem.
    NameReuse,
    /// The destination is not allowed, missing, or not shared between hosts.
    Destination,
    /// Authentication or access rights (server or storage).
    Access,
    /// A table missing on a host, not empty, defined differently, or changed during the operation.
    Schema,
    /// The operation was cancelled (KILL QUERY, shutdown).
    Cancelled,
    /// The client stopped waiting; the operation may still run on the server.
    ClientTimeout,
    /// Servers, or a server and the backup's format, are of versions that don't fit.
    VersionMismatch,
    /// Nothing the table knows.
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::Keeper,
        ErrorKind::ReplicaOffline,
        ErrorKind::Timeout,
        ErrorKind::Network,
        ErrorKind::ConflictingOperation,
        ErrorKind::ReplicaLag,
        ErrorKind::NameReuse,
        ErrorKind::Destination,
        ErrorKind::Access,
        ErrorKind::Schema,
        ErrorKind::Cancelled,
        ErrorKind::ClientTimeout,
        ErrorKind::VersionMismatch,
        ErrorKind::Other,
    ];

    /// The snake_case name (the serde name).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Keeper => "keeper",
            ErrorKind::ReplicaOffline => "replica_offline",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Network => "network",
            ErrorKind::ConflictingOperation => "conflicting_operation",
            ErrorKind::ReplicaLag => "replica_lag",
            ErrorKind::NameReuse => "name_reuse",
            ErrorKind::Destination => "destination",
            ErrorKind::Access => "access",
            ErrorKind::Schema => "schema",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::ClientTimeout => "client_timeout",
            ErrorKind::VersionMismatch => "version_mismatch",
            ErrorKind::Other => "other",
        }
    }

    /// Short human text, as the card shows it.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Keeper => "Keeper error",
            ErrorKind::ReplicaOffline => "host lost or offline",
            ErrorKind::Timeout => "timeout / host stalled",
            ErrorKind::Network => "network error",
            ErrorKind::ConflictingOperation => "concurrent operation or Keeper contention",
            ErrorKind::ReplicaLag => "replica lagging or read-only",
            ErrorKind::NameReuse => "backup name reused (not a sync problem)",
            ErrorKind::Destination => "backup destination not allowed, missing or not shared",
            ErrorKind::Access => "authentication or access rights",
            ErrorKind::Schema => "table missing, changed or not empty",
            ErrorKind::Cancelled => "cancelled (KILL QUERY or shutdown)",
            ErrorKind::ClientTimeout => "client stopped waiting (may still run)",
            ErrorKind::VersionMismatch => "server or backup version mismatch",
            ErrorKind::Other => "unclassified error",
        }
    }

    /// One sentence: what it means for on-call.
    pub fn meaning(self) -> &'static str {
        match self {
            ErrorKind::Keeper => "Keeper/ZooKeeper failed or was unreachable while the hosts coordinated; check Keeper health before retrying.",
            ErrorKind::ReplicaOffline => "A host stopped taking part (down, unreachable, or its Keeper session lost), so the whole ON CLUSTER operation failed.",
            ErrorKind::Timeout => "A host did not reach a coordination stage in time: it is stalled, or slower than the configured timeouts and retries allow.",
            ErrorKind::Network => "A request between the server and a peer or the backup storage failed or timed out on the network.",
            ErrorKind::ConflictingOperation => "Another backup or restore (or contention on its coordination nodes) got in the way; let it finish or use another destination.",
            ErrorKind::ReplicaLag => "A replica is read-only or behind in replication, so it could not create or fill its tables in time.",
            ErrorKind::NameReuse => "The backup name or operation id is already taken; not a sync problem, retry with a new unique name.",
            ErrorKind::Destination => "The backup destination is not allowed, does not exist, or is not shared by every host of the cluster.",
            ErrorKind::Access => "The user lacks a grant or the credentials (server or storage) the operation needs.",
            ErrorKind::Schema => "A table is missing on a host, not empty, defined differently, or was changed by DDL during the operation.",
            ErrorKind::Cancelled => "The operation was cancelled (KILL QUERY or a server shutdown); it is not a sync failure.",
            ErrorKind::ClientTimeout => "The client stopped waiting for the answer; the operation may still run on the server, so check system.backups before retrying.",
            ErrorKind::VersionMismatch => "Hosts, or a host and the backup's format, come from server versions that don't understand each other; align the versions.",
            ErrorKind::Other => "Not a known backup/restore failure; read the message itself.",
        }
    }

    /// The runbook causes this kind is evidence for, most likely first.
    pub fn causes(self) -> &'static [Cause] {
        match self {
            ErrorKind::Keeper => &[Cause::Keeper],
            // The 'alive' node also vanishes when a live host loses its Keeper session.
            ErrorKind::ReplicaOffline => &[Cause::ReplicaOffline, Cause::Keeper],
            ErrorKind::Timeout => &[Cause::Timeout],
            ErrorKind::Network => &[Cause::Network],
            ErrorKind::ConflictingOperation => &[Cause::ConflictingOperation],
            ErrorKind::ReplicaLag => &[Cause::ReplicaLag],
            _ => &[],
        }
    }
}

/// One piece of knowledge: wording and/or error codes that mean `kind`.
///
/// An entry with fragments matches where one of them occurs (case-insensitively); when it also
/// lists codes, the code of that link of the chain must be one of them. An entry without
/// fragments matches a `Code: N` (or `SQL Error [N]`) in `codes`, or a `(NAME)` in `code_names`.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    pub kind: ErrorKind,
    pub codes: &'static [u32],
    pub code_names: &'static [&'static str],
    pub fragments: &'static [&'static str],
    /// A second plausible kind for this wording.
    pub also: Option<ErrorKind>,
    /// The wording says the destination is not shared between hosts.
    pub shared_destination: bool,
    /// Where the wording comes from (ClickHouse file, issue, tool).
    pub source: &'static str,
}

const fn p(
    kind: ErrorKind,
    codes: &'static [u32],
    code_names: &'static [&'static str],
    fragments: &'static [&'static str],
    source: &'static str,
) -> Pattern {
    Pattern {
        kind,
        codes,
        code_names,
        fragments,
        also: None,
        shared_destination: false,
        source,
    }
}

impl Pattern {
    const fn also(mut self, kind: ErrorKind) -> Self {
        self.also = Some(kind);
        self
    }

    const fn shared(mut self) -> Self {
        self.shared_destination = true;
        self
    }
}

use ErrorKind as K;

/// The classification table. Order matters only within one link of a chain: specific first.
pub static PATTERNS: &[Pattern] = &[
    // Client side: the client gave up, the server may still be working.
    p(K::ClientTimeout, &[], &[], &["Read timed out"], "JDBC SocketTimeoutException (ClickHouse/ClickHouse#73981)"),
    p(K::ClientTimeout, &[], &[], &["Timeout exceeded while receiving data from server"], "clickhouse-client receive_timeout (ClickHouse/ClickHouse#61871)"),
    p(K::ClientTimeout, &[], &[], &["i/o timeout"], "Go net deadline in clickhouse-backup (Altinity/clickhouse-backup#1052)").also(K::Network),
    p(K::ClientTimeout, &[1000], &[], &["Exception: Timeout."], "bare Poco timeout of a relayed call (Altinity/clickhouse-backup#957)").also(K::Network),
    // Keeper.
    p(K::Keeper, &[], &[], &["Session expired", "Session is considered to be expired", "Connection loss", "Lost ZooKeeper connection", "No ZooKeeper"], "Coordination::Exception texts (src/Common/ZooKeeper/IKeeper.cpp; ClickHouse/ClickHouse#51217)"),
    p(K::Keeper, &[999, 225], &["KEEPER_EXCEPTION", "NO_ZOOKEEPER"], &[], "src/Common/ErrorCodes.cpp"),
    // Hosts lost or never started.
    p(K::ReplicaOffline, &[], &[], &["Operation didn't start"], "src/Backups/BackupCoordinationStageSync.cpp waitImpl (23.x)").also(K::Timeout),
    p(K::ReplicaOffline, &[], &[], &["hasn't been updated in ZooKeeper"], "src/Backups/BackupCoordinationStageSync.cpp cancelQueryIfDisconnectedTooLong (24.12+)").also(K::Keeper),
    p(K::ReplicaOffline, &[], &[], &["Lost connection to host", "No connection to host", "Never connected to host", "suddenly stopped working", "no alive node for host"], "src/Backups/BackupCoordinationStageSync.cpp readCurrentState (23.x-24.11; ClickHouse/ClickHouse#52506)").also(K::Keeper),
    // Stages not reached.
    p(K::Timeout, &[], &[], &["finished without coming to stage"], "src/Backups/BackupCoordinationStageSync.cpp checkIfHostsReachStage (24.12+)").also(K::VersionMismatch),
    p(K::Timeout, &[], &[], &["Couldn't create the 'finish' node"], "src/Backups/BackupCoordinationStageSync.cpp createFinishNodeAndRemoveAliveNode (24.12+)").also(K::Keeper),
    p(K::Timeout, &[], &[], &["Waited for host"], "src/Backups/BackupCoordinationStatusSync.cpp / StageSync.cpp waitImpl (22.x-23.x)").also(K::ReplicaOffline),
    // Concurrent operations.
    p(K::ConflictingOperation, &[], &[], &["A concurrent backup writing to the same destination", "is being written already"], "src/Backups/BackupImpl.cpp checkLockFile / checkBackupDoesntExist").also(K::Destination),
    p(K::ConflictingOperation, &[], &[], &["Concurrent backups are not allowed", "Concurrent restores are not allowed", "Concurrent backups not supported", "Concurrent restores not supported"], "src/Backups/BackupConcurrencyCheck.cpp; BackupsWorker.cpp (23.x)"),
    p(K::ConflictingOperation, &[], &[], &["Couldn't create the start node"], "src/Backups/BackupCoordinationStageSync.cpp createStartAndAliveNodesAndCheckConcurrency (24.12+)").also(K::Timeout),
    p(K::ConflictingOperation, &[], &[], &["num_hosts changed", "alive_tracker changed", "Concurrent backup or restore changed"], "src/Backups/BackupCoordinationStageSync.cpp (runbook table)"),
    p(K::ConflictingOperation, &[], &[], &["another operation is currently running"], "clickhouse-backup API (Altinity/clickhouse-backup#1167)"),
    p(K::ConflictingOperation, &[587], &["CONCURRENT_ACCESS_NOT_SUPPORTED"], &[], "src/Common/ErrorCodes.cpp"),
    // Replicas behind or read-only.
    p(K::ReplicaLag, &[], &[], &["on other node or sync it"], "src/Databases/DatabaseReplicated.cpp createTableRestoredFromBackup"),
    p(K::ReplicaLag, &[], &[], &["is in readonly mode"], "src/Storages/StorageReplicatedMergeTree.cpp (ClickHouse/ClickHouse#78495)").also(K::Keeper),
    p(K::ReplicaLag, &[], &[], &["replication in progress from another replica"], "clickhouse-backup restore (Altinity/clickhouse-backup#1043)"),
    p(K::ReplicaLag, &[242], &["TABLE_IS_READ_ONLY"], &[], "src/Common/ErrorCodes.cpp"),
    // Names and ids already taken.
    p(K::NameReuse, &[], &[], &["Cannot start a backup or restore: ID"], "src/Backups/BackupsWorker.cpp addInfo"),
    p(K::NameReuse, &[36], &[], &["is already in use", "with the same ID"], "BAD_ARGUMENTS on a reused id (runbook)"),
    p(K::NameReuse, &[], &[], &["backup is already exists"], "clickhouse-backup (Altinity/clickhouse-backup#587)"),
    p(K::NameReuse, &[598], &["BACKUP_ALREADY_EXISTS"], &[], "src/Backups/BackupImpl.cpp checkBackupDoesntExist"),
    // Destinations.
    p(K::Destination, &[], &[], &["suddenly disappeared while writing backup", "not shared between hosts"], "src/Backups/BackupImpl.cpp checkLockFile (ClickHouse/ClickHouse#41313, #47729)").shared(),
    p(K::Destination, &[], &[], &["is not allowed for backups", "backups.allowed_path", "backups.allowed_disk"], "src/Backups/registerBackupEnginesFileAndDisk.cpp checkPath / checkDiskName"),
    p(K::Destination, &[599], &["BACKUP_NOT_FOUND"], &[], "src/Backups/BackupImpl.cpp readBackupMetadata"),
    // Rights.
    p(K::Access, &[], &[], &["Not enough privileges", "Authentication failed", "Access Denied", "AccessDenied"], "src/Access (ACCESS_DENIED, AUTHENTICATION_FAILED); S3 AccessDenied (Altinity/clickhouse-backup#876)"),
    p(K::Access, &[497, 516, 192, 193, 194], &["ACCESS_DENIED", "AUTHENTICATION_FAILED", "UNKNOWN_USER", "WRONG_PASSWORD", "REQUIRED_PASSWORD"], &[], "src/Common/ErrorCodes.cpp"),
    // Tables.
    p(K::Schema, &[], &[], &["already contains some data", "has a different definition"], "src/Backups/RestorerFromBackup.cpp checkTable / insertDataToTable"),
    p(K::Schema, &[], &[], &["during scanning"], "src/Backups/BackupEntriesCollector.cpp (ClickHouse/ClickHouse#44252)").also(K::ConflictingOperation),
    p(K::Schema, &[663], &["INCONSISTENT_METADATA_FOR_BACKUP"], &[], "src/Backups/BackupEntriesCollector.cpp").also(K::ConflictingOperation),
    p(K::Schema, &[60, 81, 57, 608], &["UNKNOWN_TABLE", "UNKNOWN_DATABASE", "TABLE_ALREADY_EXISTS", "CANNOT_RESTORE_TABLE"], &[], "src/Common/ErrorCodes.cpp; Altinity/clickhouse-backup#962"),
    // Cancelled.
    p(K::Cancelled, &[], &[], &["Query was cancelled"], "QUERY_WAS_CANCELLED (tests/integration/test_backup_restore_on_cluster/test_cancel_backup.py)"),
    p(K::Cancelled, &[394], &["QUERY_WAS_CANCELLED"], &[], "src/Common/ErrorCodes.cpp"),
    // Versions.
    p(K::VersionMismatch, &[], &[], &["Coordination version"], "src/Backups/BackupCoordinationStageSync.cpp (runbook table)"),
    p(K::VersionMismatch, &[], &[], &["Not found backup engine", "Not found: contents"], "BACKUP_ENGINE_NOT_FOUND; .backup parsed by another version (ClickHouse/ClickHouse#50885)"),
    p(K::VersionMismatch, &[600, 627], &["BACKUP_VERSION_NOT_SUPPORTED", "BACKUP_ENGINE_NOT_FOUND"], &[], "src/Common/ErrorCodes.cpp"),
    // Network and object storage.
    p(K::Network, &[], &[], &["e.code() = 0, Timeout", "Gateway Timeout", "Response status: 504"], "AWS S3 client over Poco (ClickHouse/ClickHouse#69671, #93571, PR #78001)"),
    p(K::Network, &[], &[], &["Connection refused", "Connection reset by peer", "connect timed out", "No route to host", "Network is unreachable"], "Poco::Net errors (NETWORK_ERROR)"),
    p(K::Network, &[209, 210, 279], &["SOCKET_TIMEOUT", "NETWORK_ERROR", "ALL_CONNECTION_TRIES_FAILED"], &[], "src/Common/ErrorCodes.cpp"),
    // Server-side timeout: after the client wordings above, which also carry 159.
    p(K::Timeout, &[159], &["TIMEOUT_EXCEEDED"], &[], "src/Common/ErrorCodes.cpp; src/QueryPipeline/ExecutionSpeedLimits.cpp"),
];

/// Error code names worth reporting, from src/Common/ErrorCodes.cpp.
const CODE_NAMES: &[(u32, &str)] = &[
    (36, "BAD_ARGUMENTS"),
    (57, "TABLE_ALREADY_EXISTS"),
    (60, "UNKNOWN_TABLE"),
    (80, "INCORRECT_QUERY"),
    (81, "UNKNOWN_DATABASE"),
    (159, "TIMEOUT_EXCEEDED"),
    (164, "READONLY"),
    (192, "UNKNOWN_USER"),
    (193, "WRONG_PASSWORD"),
    (194, "REQUIRED_PASSWORD"),
    (209, "SOCKET_TIMEOUT"),
    (210, "NETWORK_ERROR"),
    (225, "NO_ZOOKEEPER"),
    (241, "MEMORY_LIMIT_EXCEEDED"),
    (242, "TABLE_IS_READ_ONLY"),
    (279, "ALL_CONNECTION_TRIES_FAILED"),
    (318, "INVALID_CONFIG_PARAMETER"),
    (394, "QUERY_WAS_CANCELLED"),
    (497, "ACCESS_DENIED"),
    (499, "S3_ERROR"),
    (516, "AUTHENTICATION_FAILED"),
    (587, "CONCURRENT_ACCESS_NOT_SUPPORTED"),
    (598, "BACKUP_ALREADY_EXISTS"),
    (599, "BACKUP_NOT_FOUND"),
    (600, "BACKUP_VERSION_NOT_SUPPORTED"),
    (608, "CANNOT_RESTORE_TABLE"),
    (627, "BACKUP_ENGINE_NOT_FOUND"),
    (655, "FAILED_TO_SYNC_BACKUP_OR_RESTORE"),
    (663, "INCONSISTENT_METADATA_FOR_BACKUP"),
    (999, "KEEPER_EXCEPTION"),
    (1000, "POCO_EXCEPTION"),
];

/// Longest text looked at: error texts worth reading are far shorter; the rest is clipped.
pub const MAX_TEXT: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub kind: ErrorKind,
    /// The innermost ClickHouse error code relevant to the kind.
    pub code: Option<u32>,
    /// That code's name (`KEEPER_EXCEPTION`), when known.
    pub code_name: Option<String>,
    /// The host the error names (decoded), the failing one of a relayed chain first.
    pub host: Option<String>,
    /// The first line of the error, without stack trace and "(version …)".
    pub message: String,
    /// The wording says the destination is not shared by every host (the lock-file error).
    pub shared_destination: bool,
    /// A second plausible kind when the text is ambiguous.
    pub also: Option<ErrorKind>,
}

/// Classify an error text. Pure: the same text always gives the same answer.
pub fn classify(text: &str) -> Classification {
    let body = percent_decode(&strip_versions(before_stack_trace(clip(text, MAX_TEXT))));
    let message = first_message_line(&body);
    let chain = Chain::new(&body);

    let best = chain.evidence();
    let first = best.first();
    let (kind, also, shared_destination) = match first {
        Some(e) => {
            let pat = &PATTERNS[e.pattern];
            // A second kind: the entry's own, else a different specific wording elsewhere in the chain.
            let also = pat.also.or_else(|| {
                best.iter()
                    .filter(|o| o.rank == Rank::Fragment)
                    .map(|o| PATTERNS[o.pattern].kind)
                    .find(|k| *k != pat.kind)
            });
            (
                pat.kind,
                also.filter(|a| *a != pat.kind),
                pat.shared_destination,
            )
        }
        None => (ErrorKind::Other, None, false),
    };
    let code = match first {
        Some(e) => chain.code_at(e.pos).or(e.named_code),
        None => chain
            .codes
            .last()
            .map(|c| c.1)
            .or_else(|| chain.names.last().and_then(|n| code_of(&n.1))),
    };
    let code_name = code
        .and_then(name_of)
        .map(str::to_string)
        // An unknown number: the text's own trailing name belongs to its outermost code.
        .or_else(|| {
            let outer = chain.codes.first().map(|c| c.1);
            (outer.is_none() || outer == code)
                .then(|| chain.names.last().map(|n| n.1.clone()))
                .flatten()
        });
    Classification {
        kind,
        code,
        code_name,
        host: named_host(&body),
        message,
        shared_destination,
        also,
    }
}

/// How a piece of evidence was found; earlier is stronger within one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Fragment,
    Code,
    CodeName,
}

#[derive(Debug, Clone, Copy)]
struct Evidence {
    /// Link of the chain, 0 = outermost.
    link: usize,
    rank: Rank,
    pattern: usize,
    pos: usize,
    /// For a code name: its number, if known.
    named_code: Option<u32>,
}

/// The text split into the links of a relayed chain.
struct Chain {
    lower: String,
    /// Start of each link (0 first), ascending.
    starts: Vec<usize>,
    /// `Code: N` / `SQL Error [N]` occurrences, ascending.
    codes: Vec<(usize, u32)>,
    /// `(UPPER_NAME)` occurrences, ascending.
    names: Vec<(usize, String)>,
}

/// Where a new link of the chain starts (lowercase).
const LINK_MARKERS: &[&str] = &[
    "got error from ",
    "error from host ",
    "received from ",
    "exception: ",
];

impl Chain {
    fn new(body: &str) -> Chain {
        // ASCII lowercase keeps byte offsets, so positions apply to `body` too.
        let lower = body.to_ascii_lowercase();
        let mut starts = vec![0];
        for m in LINK_MARKERS {
            for (i, _) in lower.match_indices(m) {
                // "Got error from host": one link, not two.
                if !(*m == "error from host " && lower[..i].ends_with("got ")) {
                    starts.push(i);
                }
            }
        }
        // ClickHouse's "Code: N", JDBC's "SQL Error [N]", clickhouse-go's "code: N, message: …";
        // not any "code: " ("HTTP status code: 500" is not a ClickHouse code).
        let mut codes = Vec::new();
        for marker in ["Code: ", "SQL Error [", "code: "] {
            for (i, m) in body.match_indices(marker) {
                let rest = &body[i + m.len()..];
                let Some(n) = number_at(rest) else { continue };
                let go_style = rest
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .starts_with(", message:");
                if marker != "code: " || go_style {
                    codes.push((i, n));
                    starts.push(i);
                }
            }
        }
        codes.sort_unstable();
        starts.sort_unstable();
        starts.dedup();
        Chain {
            names: code_names(body),
            lower,
            starts,
            codes,
        }
    }

    fn link_of(&self, pos: usize) -> usize {
        self.starts.partition_point(|&s| s <= pos).saturating_sub(1)
    }

    /// The innermost code number at or before `pos`: the code of the link holding `pos`.
    fn code_at(&self, pos: usize) -> Option<u32> {
        let i = self.codes.partition_point(|c| c.0 <= pos);
        i.checked_sub(1).map(|i| self.codes[i].1)
    }

    /// All evidence, strongest first.
    fn evidence(&self) -> Vec<Evidence> {
        // A trailing "(NAME)" belongs to the outermost code of the message, not to the last link.
        let name_link = self.codes.first().map(|c| self.link_of(c.0));
        let mut found = Vec::new();
        for (pi, pat) in PATTERNS.iter().enumerate() {
            let mut push = |pos: usize, rank: Rank, link: usize, named_code: Option<u32>| {
                found.push(Evidence {
                    link,
                    rank,
                    pattern: pi,
                    pos,
                    named_code,
                })
            };
            if !pat.fragments.is_empty() {
                for frag in pat.fragments {
                    let frag = frag.to_ascii_lowercase();
                    // Innermost occurrence whose link carries an allowed code (if the entry asks).
                    let hit = self.lower.rmatch_indices(&frag).map(|(i, _)| i).find(|&i| {
                        pat.codes.is_empty()
                            || self.code_at(i).is_some_and(|c| pat.codes.contains(&c))
                    });
                    if let Some(i) = hit {
                        push(i, Rank::Fragment, self.link_of(i), None);
                    }
                }
                continue;
            }
            if let Some(&(i, _)) = self.codes.iter().rev().find(|c| pat.codes.contains(&c.1)) {
                push(i, Rank::Code, self.link_of(i), None);
            }
            if let Some((i, n)) = self
                .names
                .iter()
                .rev()
                .find(|n| pat.code_names.contains(&n.1.as_str()))
            {
                let link = name_link.unwrap_or_else(|| self.link_of(*i));
                push(*i, Rank::CodeName, link, code_of(n));
            }
        }
        found.sort_by_key(|e| (std::cmp::Reverse(e.link), e.rank, e.pattern));
        found
    }
}

fn number_at(s: &str) -> Option<u32> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    s[..digits.min(9)].parse().ok().filter(|_| digits <= 9)
}

/// `(UPPER_SNAKE)` tokens: how ClickHouse appends an error code's name.
fn code_names(body: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, _) in body.match_indices('(') {
        let rest = &body[i + 1..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        if len >= 3 && rest[len..].starts_with(')') && rest.as_bytes()[0].is_ascii_uppercase() {
            out.push((i, rest[..len].to_string()));
        }
    }
    out
}

fn name_of(code: u32) -> Option<&'static str> {
    CODE_NAMES.iter().find(|c| c.0 == code).map(|c| c.1)
}

fn code_of(name: &str) -> Option<u32> {
    CODE_NAMES.iter().find(|c| c.1 == name).map(|c| c.0)
}

/// The host the text names: the failing host of a relay first, the initiator last.
fn named_host(body: &str) -> Option<String> {
    // (prefix, must look like host:port). Checked in order; the innermost occurrence wins.
    const PREFIXES: &[(&str, bool)] = &[
        ("got error from host ", false),
        ("got error from ", false),
        ("error from host ", false),
        ("lost connection to host ", false),
        ("no connection to host ", false),
        ("never connected to host ", false),
        ("waited for host ", false),
        ("host ", true),
        ("received from ", false),
    ];
    let lower = body.to_ascii_lowercase();
    PREFIXES.iter().find_map(|(prefix, port)| {
        lower.rmatch_indices(prefix).find_map(|(i, m)| {
            let rest = &body[i + m.len()..];
            let end = rest
                .find(|c: char| {
                    c.is_whitespace() || matches!(c, ',' | '\'' | '"' | ')' | '(' | ';')
                })
                .unwrap_or(rest.len());
            let host = rest[..end].trim_end_matches(['.', ':']);
            let ok = !host.is_empty() && (!port || has_port(host));
            ok.then(|| host.to_string())
        })
    })
}

/// `name:9000`: how coordination names a host.
fn has_port(host: &str) -> bool {
    host.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
    })
}

/// At most `max` bytes of `s`, cut at a char boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The text before the stack trace (", Stack trace (when copying …):" or "Stack trace:").
fn before_stack_trace(s: &str) -> &str {
    let cut = s.find("Stack trace").map_or(s, |i| &s[..i]);
    cut.trim_end_matches([' ', ',', '\n', '\r', '\t'])
}

/// Drops every " (version 24.5.1.22957 (official build))": the server build is not the error.
fn strip_versions(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("(version ") {
        let after = &rest[i + "(version ".len()..];
        if !after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(&rest[..i + 1]);
            rest = &rest[i + 1..];
            continue;
        }
        out.push_str(rest[..i].strip_suffix(' ').unwrap_or(&rest[..i]));
        // Skip to the matching ')' (the build type nests one more pair); unbalanced: to the line's end.
        let mut depth = 0usize;
        let mut end = None;
        for (j, c) in rest[i..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i + j + 1);
                        break;
                    }
                }
                '\n' => {
                    end = Some(i + j);
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[end.unwrap_or(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// The first line that says something; clickhouse-client's "Received exception from server:" header is skipped.
fn first_message_line(body: &str) -> String {
    let mut lines = body.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    if first.starts_with("Received exception") && first.ends_with(':') {
        if let Some(next) = lines.next() {
            return next.to_string();
        }
    }
    first.to_string()
}

/// Older servers URL-escape host names (`clickhouse%2Dshard1%3A9000`). Only printable ASCII is
/// decoded, so the result stays valid text whatever the input.
fn percent_decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let b = rest.as_bytes();
        let decoded = (b.len() > i + 2)
            .then(|| Some(hex(b[i + 1])? * 16 + hex(b[i + 2])?))
            .flatten()
            .filter(|v| (0x20..0x7f).contains(v));
        match decoded {
            Some(v) => {
                out.push(v as char);
                rest = &rest[i + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::text::from_bytes;

    /// (text, kind, code, host) — every wording of the runbook's table and the issue's examples.
    #[test]
    fn runbook_and_issue_examples() {
        let cases: &[(&str, ErrorKind, Option<u32>, Option<&str>)] = &[
            ("Code: 655. DB::Exception: Lost connection to host ch-2:9000. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ReplicaOffline, Some(655), Some("ch-2:9000")),
            ("Code: 655. DB::Exception: The 'alive' node hasn't been updated in ZooKeeper for host ch-3:9000 for 30 seconds. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ReplicaOffline, Some(655), Some("ch-3:9000")),
            ("Code: 655. DB::Exception: Never connected to host ch-1:9000. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ReplicaOffline, Some(655), Some("ch-1:9000")),
            ("Code: 655. DB::Exception: Host ch-2:9000 suddenly stopped working. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ReplicaOffline, Some(655), Some("ch-2:9000")),
            ("Code: 655. DB::Exception: No connection to host ch-2:9000 yet. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ReplicaOffline, Some(655), Some("ch-2:9000")),
            ("Code: 655. DB::Exception: Got error from host ch-2:9000. Code: 999. Coordination::Exception: Session expired. (KEEPER_EXCEPTION)", K::Keeper, Some(999), Some("ch-2:9000")),
            ("Code: 655. DB::Exception: Got error from host ch-2:9000. Code: 999. Coordination::Exception: Transaction failed (Node exists). (KEEPER_EXCEPTION)", K::Keeper, Some(999), Some("ch-2:9000")),
            ("Code: 655. DB::Exception: Got error from host ch-2:9000. Code: 159. Timeout exceeded. (TIMEOUT_EXCEEDED)", K::Timeout, Some(159), Some("ch-2:9000")),
            ("Code: 655. DB::Exception: Backup ch-1:9000 finished without coming to stage 'completed'. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::Timeout, Some(655), None),
            ("Code: 655. DB::Exception: Waited for host ch-3:9000 too long (180 sec). (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::Timeout, Some(655), Some("ch-3:9000")),
            ("Code: 655. DB::Exception: Couldn't create the start node. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ConflictingOperation, Some(655), None),
            ("Code: 655. DB::Exception: num_hosts changed. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ConflictingOperation, Some(655), None),
            ("Code: 655. DB::Exception: alive_tracker changed. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ConflictingOperation, Some(655), None),
            ("Code: 655. DB::Exception: Concurrent backup or restore changed the stage. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ConflictingOperation, Some(655), None),
            ("Code: 587. DB::Exception: Concurrent backups are not allowed. (CONCURRENT_ACCESS_NOT_SUPPORTED)", K::ConflictingOperation, Some(587), None),
            ("Code: 598. DB::Exception: A concurrent backup writing to the same destination Disk('backups', 'b') detected. (BACKUP_ALREADY_EXISTS)", K::ConflictingOperation, Some(598), None),
            ("Code: 655. DB::Exception: Lock file .lock suddenly disappeared while writing backup Disk('backups', 'b'). (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::Destination, Some(655), None),
            ("Code: 655. DB::Exception: Coordination version 2 used by host ch-2:9000 is not supported. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::VersionMismatch, Some(655), Some("ch-2:9000")),
            ("Code: 999. Coordination::Exception: Connection loss. (KEEPER_EXCEPTION)", K::Keeper, Some(999), None),
            ("Code: 225. DB::Exception: No ZooKeeper. (NO_ZOOKEEPER)", K::Keeper, Some(225), None),
            ("Coordination::Exception: Transaction failed (Bad version). (KEEPER_EXCEPTION)", K::Keeper, Some(999), None),
            ("Code: 159. DB::Exception: Timeout exceeded: elapsed 600 seconds. (TIMEOUT_EXCEEDED)", K::Timeout, Some(159), None),
            ("SQL Error [159] [07000]: Read timed out, server ClickHouseNode", K::ClientTimeout, Some(159), None),
            ("Code: 598. DB::Exception: Backup Disk('backups', 'b1') already exists. (BACKUP_ALREADY_EXISTS)", K::NameReuse, Some(598), None),
            ("Code: 36. DB::Exception: Cannot start a backup or restore: ID daily is already in use. (BAD_ARGUMENTS)", K::NameReuse, Some(36), None),
            ("Code: 36. DB::Exception: Disk ''nope'' is not allowed for backups, see the 'backups.allowed_disk' configuration parameter. (BAD_ARGUMENTS)", K::Destination, Some(36), None),
            ("Code: 599. DB::Exception: Backup Disk('backups', 'x') not found. (BACKUP_NOT_FOUND)", K::Destination, Some(599), None),
            ("Code: 210. DB::NetException: Connection refused (ch-2:9000). (NETWORK_ERROR)", K::Network, Some(210), None),
            ("Code: 209. DB::NetException: Timeout exceeded while reading from socket. (SOCKET_TIMEOUT)", K::Network, Some(209), None),
            ("Code: 516. DB::Exception: default: Authentication failed. (AUTHENTICATION_FAILED)", K::Access, Some(516), None),
            ("Code: 608. DB::Exception: Cannot restore the table db.t because it already contains some data. (CANNOT_RESTORE_TABLE)", K::Schema, Some(608), None),
            ("Code: 608. DB::Exception: Couldn't restore table db.t on other node or sync it (elapsed 300s). (CANNOT_RESTORE_TABLE)", K::ReplicaLag, Some(608), None),
            ("Code: 663. DB::Exception: Table db.t was dropped during scanning. (INCONSISTENT_METADATA_FOR_BACKUP)", K::Schema, Some(663), None),
            ("Code: 60. DB::Exception: Got error from node2:9000. DB::Exception: Table default.tbl was not found. (UNKNOWN_TABLE)", K::Schema, Some(60), Some("node2:9000")),
            ("Code: 394. DB::Exception: Got error from host node2:9000. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)", K::Cancelled, Some(394), Some("node2:9000")),
            ("Code: 62. DB::Exception: Syntax error. (SYNTAX_ERROR)", K::Other, Some(62), None),
        ];
        for (text, kind, code, host) in cases {
            let c = classify(text);
            assert_eq!(c.kind, *kind, "{text}");
            assert_eq!(c.code, *code, "{text}");
            assert_eq!(c.host.as_deref(), *host, "{text}");
        }
    }

    /// The same failures as each server generation words them.
    #[test]
    fn wording_across_versions() {
        let cases: &[(&str, ErrorKind, Option<&str>)] = &[
            // 22.x: escaped hosts, elapsed seconds with decimals.
            ("Code: 655. DB::Exception: Waited for host node2%3A9000 too long (180.000512s). (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::Timeout, Some("node2:9000")),
            ("Code: 655. DB::Exception: Got error from chi%2Dchi%2Dhorus%2D2%2D1:9000. DB::Exception: Lock file .lock suddenly disappeared while writing backup Disk('b', '7'). (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::Destination, Some("chi-chi-horus-2-1:9000")),
            // 23.x–24.11.
            ("Code: 655. DB::Exception: Lost connection to host node2:9000. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ReplicaOffline, Some("node2:9000")),
            ("No connection to host new_node:9000 yet, will retry", K::ReplicaOffline, Some("new_node:9000")),
            ("Code: 655. DB::Exception: Waited for host node3:9000 too long (> 180s): Operation didn't start. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ReplicaOffline, Some("node3:9000")),
            ("Code: 373. DB::Exception: Concurrent backups not supported, turn on setting 'allow_concurrent_backups'. (CONCURRENT_ACCESS_NOT_SUPPORTED)", K::ConflictingOperation, None),
            // 24.12+.
            ("Code: 655. DB::Exception: Got error from host ch-2.example:9000. DB::Exception: Table is in readonly mode. (TABLE_IS_READ_ONLY)", K::ReplicaLag, Some("ch-2.example:9000")),
            ("Code: 655. DB::Exception: Lost connection to host node2:9000: The 'alive' node hasn't been updated in ZooKeeper for host node2:9000 for 4s which is more than the specified timeout 3s. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ReplicaOffline, Some("node2:9000")),
            ("Code: 655. DB::Exception: host node2:9000 finished without coming to stage creating tables. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::Timeout, Some("node2:9000")),
            ("Code: 655. DB::Exception: Couldn't create the start node in ZooKeeper for host node2:9000 after 17 attempts: The version of node /clickhouse/backups/alive_tracker changed. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::ConflictingOperation, Some("node2:9000")),
            ("Code: 655. DB::Exception: Couldn't create the 'finish' node for host node2:9000 after 17 attempts: The version of node /b/stage/num_hosts changed. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", K::Timeout, Some("node2:9000")),
            // 26.x.
            ("Code: 598. DB::Exception: A concurrent backup writing to the same destination Disk('backups', 'b.zip') detected. (BACKUP_ALREADY_EXISTS) (version 26.9.2.1 (official build))", K::ConflictingOperation, None),
        ];
        for (text, kind, host) in cases {
            let c = classify(text);
            assert_eq!(c.kind, *kind, "{text}");
            assert_eq!(c.host.as_deref(), *host, "{text}");
        }
    }

    #[test]
    fn ambiguity_and_destination_sharing() {
        let c = classify("Code: 598. DB::Exception: A concurrent backup writing to the same destination Disk('backups', 'b') detected. (BACKUP_ALREADY_EXISTS)");
        assert_eq!(
            (c.kind, c.also),
            (K::ConflictingOperation, Some(K::Destination))
        );
        assert!(!c.shared_destination);
        assert_eq!(c.code_name.as_deref(), Some("BACKUP_ALREADY_EXISTS"));
        let c = classify("Code: 655. DB::Exception: Got error from clickhouse02:9000. DB::Exception: Lock file b.zip.lock suddenly disappeared while writing backup Disk('backups', 'b.zip'). Stack trace:");
        assert_eq!(c.kind, K::Destination);
        assert!(c.shared_destination);
        let c = classify("Code: 36. DB::Exception: Path '/tmp/x.zip' is not allowed for backups. (BAD_ARGUMENTS)");
        assert!(!c.shared_destination);
        let c = classify("Code: 655. DB::Exception: Waited for host n2:9000 too long (> 180s). (FAILED_TO_SYNC_BACKUP_OR_RESTORE)");
        assert_eq!((c.kind, c.also), (K::Timeout, Some(K::ReplicaOffline)));
        assert_eq!(
            classify("Code: 999. Coordination::Exception: Session expired.").also,
            None
        );
    }

    #[test]
    fn only_clickhouse_codes_count() {
        let c = classify("Code: 86. DB::HTTPException: Received error from remote server. HTTP status code: 500, body: x");
        assert_eq!(c.code, Some(86));
        // clickhouse-go (clickhouse-backup) writes the code in lowercase.
        let c =
            classify("error can't create table: code: 60, message: Table default.t doesn't exist");
        assert_eq!((c.kind, c.code), (K::Schema, Some(60)));
    }

    #[test]
    fn code_names_without_numbers() {
        let c = classify("Coordination::Exception: Session expired (KEEPER_EXCEPTION)");
        assert_eq!(c.kind, K::Keeper);
        let c = classify("DB::Exception: Not enough rights (ACCESS_DENIED)");
        assert_eq!(
            (c.kind, c.code, c.code_name.as_deref()),
            (K::Access, Some(497), Some("ACCESS_DENIED"))
        );
        // An unknown number keeps the name the text gives it.
        let c = classify("Code: 1234. DB::Exception: something new. (SOMETHING_NEW)");
        assert_eq!(
            (c.kind, c.code, c.code_name.as_deref()),
            (K::Other, Some(1234), Some("SOMETHING_NEW"))
        );
    }

    #[test]
    fn url_escaped_host_names_are_decoded() {
        let c = classify("Code: 655. DB::Exception: Lost connection to host clickhouse%2Dshard1%3A9000. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)");
        assert_eq!(c.kind, K::ReplicaOffline);
        assert_eq!(c.host.as_deref(), Some("clickhouse-shard1:9000"));
        assert_eq!(c.code, Some(655));
        assert_eq!(
            c.code_name.as_deref(),
            Some("FAILED_TO_SYNC_BACKUP_OR_RESTORE")
        );
        // Escapes that would not decode to printable ASCII stay as they are.
        assert_eq!(percent_decode("a%FFb%2 %zz%41"), "a%FFb%2 %zzA");
    }

    #[test]
    fn stack_trace_and_version_are_cut() {
        let c = classify("Code: 598. DB::Exception: Backup Disk('backups', 'b1') already exists. (BACKUP_ALREADY_EXISTS), Stack trace (when copying this message, always include the lines below):\n\n0. ? @ 0x1 Session expired");
        assert_eq!(c.message, "Code: 598. DB::Exception: Backup Disk('backups', 'b1') already exists. (BACKUP_ALREADY_EXISTS)");
        assert_eq!(c.kind, K::NameReuse);
        let c = classify(
            "Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED) (version 26.9.2.1)",
        );
        assert_eq!(
            c.message,
            "Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED)"
        );
        assert_eq!(c.kind, K::Timeout);
        let c = classify("Failed: Code: 1000, e.code() = 0, Timeout (version 24.5.1.22957 (official build)), Key: k");
        assert_eq!(
            c.message,
            "Failed: Code: 1000, e.code() = 0, Timeout, Key: k"
        );
        assert_eq!(c.kind, K::Network);
        let c = classify("Received exception from server (version 24.3.1):\nCode: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)");
        assert_eq!(
            c.message,
            "Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)"
        );
        assert_eq!(c.kind, K::Cancelled);
        assert_eq!(strip_versions("x (version 1.2 (official"), "x");
    }

    #[test]
    fn empty_and_blank_texts_are_other() {
        for text in ["", "   ", "\n\n", "Stack trace:\n0. x"] {
            let c = classify(text);
            assert_eq!(c.kind, K::Other, "{text:?}");
            assert_eq!((c.code, c.host, c.also), (None, None, None));
            assert!(c.message.is_empty());
        }
    }

    #[test]
    fn huge_texts_are_clipped_not_fatal() {
        let head = "Code: 655. DB::Exception: Lost connection to host ch-2:9000. ";
        let mut text = String::from(head);
        while text.len() < 10 << 20 {
            text.push_str("é€x ");
        }
        let c = classify(&text);
        assert_eq!(c.kind, K::ReplicaOffline);
        assert!(c.message.len() <= MAX_TEXT);
        // Every cut position of a multi-byte text, and a text made only of chain markers.
        for extra in 0..4 {
            let t = "€".repeat(MAX_TEXT / 3 + extra);
            assert_eq!(classify(&t).kind, K::Other);
        }
        let markers = "Code: 999. Got error from host h:1. DB::Exception: ".repeat((10 << 20) / 50);
        let c = classify(&markers);
        assert_eq!((c.kind, c.host.as_deref()), (K::Keeper, Some("h:1")));
        // Evidence past the first MiB is not looked at.
        let late = format!("{}Session expired", "x".repeat(MAX_TEXT));
        assert_eq!(classify(&late).kind, K::Other);
    }

    #[test]
    fn invalid_utf8_text_is_classified() {
        let mut bytes = b"Code: 655. DB::Exception: Got error from host ch\xff2:9000. Code: 999. Coordination::Exception: Session expired \xc3(".to_vec();
        bytes.extend_from_slice(&[0xf4, 0x8f, 0xbd, 0x81, b'%', 0xff]);
        let text = from_bytes(&bytes);
        let c = classify(&text);
        assert_eq!((c.kind, c.code), (K::Keeper, Some(999)));
        assert_eq!(
            c.host.as_deref(),
            Some(from_bytes(b"ch\xff2:9000").as_str())
        );
        // Raw bytes clipped at the limit stay whole characters.
        let raw = from_bytes(&vec![0xff; MAX_TEXT + 7]);
        assert_eq!(classify(&raw).kind, K::Other);
    }

    #[test]
    fn kinds_are_consistent() {
        for k in ErrorKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name(), "{k:?}");
            assert!(!k.label().is_empty() && k.meaning().ends_with('.'), "{k:?}");
        }
        assert_eq!(
            ErrorKind::ReplicaOffline.causes(),
            &[Cause::ReplicaOffline, Cause::Keeper]
        );
        assert_eq!(ErrorKind::NameReuse.causes(), &[] as &[Cause]);
        assert_eq!(
            classify("Code: 587. x").kind.causes(),
            &[Cause::ConflictingOperation]
        );
    }

    /// Every name in the table is a real code's, and numbers and names agree.
    #[test]
    fn table_is_well_formed() {
        for pat in PATTERNS {
            assert!(!pat.source.is_empty());
            assert!(
                !pat.fragments.is_empty() || !pat.codes.is_empty(),
                "{pat:?}"
            );
            for name in pat.code_names {
                let code =
                    code_of(name).unwrap_or_else(|| panic!("{name} missing from CODE_NAMES"));
                assert!(pat.codes.contains(&code), "{name} vs {pat:?}");
            }
            assert_ne!(pat.kind, K::Other);
        }
    }
}
