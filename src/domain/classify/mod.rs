//! Classify a backup/restore error text (system.backups.error, a client exception, a log line) into
//! what it means for on-call: one of the categories ([`ErrorKind`], the names scripts use) and a
//! finer `detail` (`store_throttled`, `disk_full`, …) with [`advice`] for it.
//!
//! Knowledge is data, one table per kind of source: [`wording`] (ClickHouse's backup coordination,
//! Keeper, access, restore checks; clients and clickhouse-backup), [`stores`] (S3 / GCS / Azure /
//! MinIO error names and HTTP statuses), [`os`] (errno texts on disks and sockets) and [`codes`]
//! (every ClickHouse error code, by number and by name). The code here only finds evidence and
//! picks the strongest. A relayed error is a chain ("Code: 655 … Got error from host X.
//! DB::Exception: <the host's own error>"): the innermost link is what failed, so evidence is
//! weighed innermost first; within one link a wording beats an HTTP status, which beats a bare
//! code; and a symptom (a task cancelled because another failed) only counts when nothing else does.
//! `Other` means nothing in the text was recognised as a cause; [`Classification::unrecognised`]
//! then lists the parts that were not.

pub mod codes;
pub mod os;
pub mod stores;
pub mod wording;

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
    /// Nothing in the text is a known cause (or only codes that mean nothing for a backup).
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
            ErrorKind::Other => "cause unknown",
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
            ErrorKind::Other => "The cause is unknown: nothing in the message is a known backup/restore failure; read the message itself.",
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

/// One piece of knowledge: wordings that mean `kind`.
///
/// It matches where one of its fragments occurs (case-insensitively); with `codes`, only in a
/// link of the chain whose error code is one of them.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    pub kind: ErrorKind,
    pub fragments: &'static [&'static str],
    /// Required code of the link, if any.
    pub codes: &'static [u32],
    /// A second plausible kind for this wording.
    pub also: Option<ErrorKind>,
    /// The finer kind (`store_throttled`, `disk_full`, …).
    pub detail: Option<&'static str>,
    /// The wording says the destination is not shared between hosts.
    pub shared_destination: bool,
    /// A consequence of another failure (a task cancelled because a sibling failed): it only
    /// counts when nothing else in the text does.
    pub symptom: bool,
    /// Where the wording comes from (ClickHouse file, issue, documentation).
    pub source: &'static str,
}

/// A pattern of `kind` matching any of `fragments`.
pub const fn p(
    kind: ErrorKind,
    fragments: &'static [&'static str],
    source: &'static str,
) -> Pattern {
    Pattern {
        kind,
        fragments,
        codes: &[],
        also: None,
        detail: None,
        shared_destination: false,
        symptom: false,
        source,
    }
}

impl Pattern {
    pub const fn also(mut self, kind: ErrorKind) -> Self {
        self.also = Some(kind);
        self
    }

    pub const fn shared(mut self) -> Self {
        self.shared_destination = true;
        self
    }

    pub const fn detail(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }

    pub const fn codes(mut self, codes: &'static [u32]) -> Self {
        self.codes = codes;
        self
    }

    pub const fn symptom(mut self) -> Self {
        self.symptom = true;
        self
    }
}

/// Every wording table, in the order ties are broken.
pub fn tables() -> [&'static [Pattern]; 3] {
    [wording::PATTERNS, stores::PATTERNS, os::PATTERNS]
}

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
    /// The finer kind within the category (`store_access_denied`, `disk_full`, …), shown as
    /// `kind` by `chops explain --json`; see [`advice`].
    pub detail: Option<&'static str>,
    /// When the kind is `Other`: the parts of the text (links of the chain) nothing recognised.
    pub unrecognised: Vec<String>,
}

/// Classify an error text. Pure: the same text always gives the same answer.
pub fn classify(text: &str) -> Classification {
    let body = percent_decode(&strip_versions(before_stack_trace(head_bytes(
        text, MAX_TEXT,
    ))));
    let chain = Chain::new(&body);
    let found = chain.evidence();
    // `Other` codes are recognised but are evidence of nothing.
    let best = found.iter().find(|e| e.kind != ErrorKind::Other);
    let (kind, also, shared_destination, detail) = match best {
        Some(e) => {
            // A second kind: the entry's own, else a different wording elsewhere in the chain.
            let also = e.also.or_else(|| {
                found
                    .iter()
                    .filter(|o| o.rank == Rank::Fragment && o.kind != ErrorKind::Other)
                    .map(|o| o.kind)
                    .find(|k| *k != e.kind)
            });
            (e.kind, also.filter(|a| *a != e.kind), e.shared, e.detail)
        }
        None => (ErrorKind::Other, None, false, None),
    };
    let (code, code_name) = chain.reported_code(best);
    let unrecognised = match kind {
        ErrorKind::Other => chain.unrecognised(&body, &found),
        _ => Vec::new(),
    };
    Classification {
        kind,
        code,
        code_name,
        host: named_host(&body),
        message: first_message_line(&body),
        shared_destination,
        also,
        detail,
        unrecognised,
    }
}

/// What to do about a finer kind: the grant, credential, path or setting to look at. `None`
/// where the category's own next steps already say it.
pub fn advice(detail: &str) -> Option<&'static str> {
    Some(match detail {
        "store_access_denied" => "The object store refused the request: give the credentials the backup uses (S3 key or IAM role, Azure SAS or managed identity, GCS service account) read, write, list and delete rights on the bucket and prefix named in the message",
        "store_bad_credentials" => "The object store does not accept the credentials: check the access key id and secret (and the session token of temporary credentials) in the BACKUP statement, the named collection or the disk's configuration",
        "store_no_bucket" => "The bucket or container in the destination URL does not exist: check its name and the endpoint",
        "store_no_key" => "An object the operation needs is missing: check the backup path, and that no retention rule or lifecycle policy removed it",
        "store_region" => "The bucket lives in another region or behind another endpoint: use its own regional endpoint in the URL (or set the disk's region)",
        "store_endpoint" => "The object-store endpoint is malformed: give the full URL with http:// or https:// and the bucket",
        "store_full" => "The object store is out of space (MinIO's free-drive threshold): free space or add drives before retrying",
        "store_throttled" => "The object store is throttling: retry with fewer parallel requests — lower backup_threads / restore_threads (and max_backups_io_thread_pool_size), set s3_max_put_rps / s3_max_get_rps (with s3_max_put_burst / s3_max_get_burst); for clickhouse-backup lower upload_concurrency / download_concurrency",
        "store_timeout" => "Requests to the object store timed out: check the network path to the endpoint, then retry with a longer s3_request_timeout_ms and more backup_restore_s3_retry_attempts",
        "store_transport" => "No answer from the object store: check DNS, proxy and firewall between the servers and the endpoint",
        "tls" => "TLS to the endpoint failed: check the CA bundle the server uses and the endpoint's certificate",
        "grant_missing" => "Grant the privilege the message names (BACKUP for a backup; CREATE and INSERT on the targets for a restore) to the user that ran it",
        "bad_credentials" => "ClickHouse refused the login: check the user and password the client or tool connects with",
        "disk_full" => "The disk holding the path in the message is full: free space on it (df -h, and df -i for inodes) or write the backup to another disk",
        "disk_quota" => "The filesystem quota of the server's user is exhausted: raise the quota or free space in the path",
        "disk_read_only" => "The filesystem is mounted read-only (often after I/O errors): check the kernel log, repair and remount it read-write",
        "disk_permission" => "The server's OS user cannot access the path in the message: give the clickhouse user ownership or rights on it (and check mount options, SELinux/AppArmor, container security profiles)",
        "disk_missing" => "A path the operation needs does not exist: check the disk's path in the storage configuration and that the volume is mounted",
        "disk_io" => "The disk returned I/O errors: check the device and the kernel log before retrying",
        "too_many_open_files" => "The process ran out of file descriptors: raise its open-files limit (LimitNOFILE for systemd, ulimit -n)",
        _ => return None,
    })
}

/// How a piece of evidence was found; earlier is stronger within one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Fragment,
    Status,
    Code,
    CodeName,
}

#[derive(Debug, Clone, Copy)]
struct Evidence {
    /// Link of the chain, 0 = outermost.
    link: usize,
    rank: Rank,
    /// Place of the knowledge in its table, for a stable order between equals.
    order: usize,
    pos: usize,
    kind: ErrorKind,
    also: Option<ErrorKind>,
    detail: Option<&'static str>,
    shared: bool,
    symptom: bool,
    /// For code evidence: the code as the text means it.
    code: Option<codes::Resolved>,
}

impl Evidence {
    fn new(link: usize, rank: Rank, order: usize, pos: usize, kind: ErrorKind) -> Evidence {
        Evidence {
            link,
            rank,
            order,
            pos,
            kind,
            also: None,
            detail: None,
            shared: false,
            symptom: false,
            code: None,
        }
    }

    fn of_pattern(pat: &Pattern, link: usize, order: usize, pos: usize) -> Evidence {
        Evidence {
            also: pat.also,
            detail: pat.detail,
            shared: pat.shared_destination,
            symptom: pat.symptom,
            ..Evidence::new(link, Rank::Fragment, order, pos, pat.kind)
        }
    }

    fn of_code(code: codes::Resolved, link: usize, rank: Rank, pos: usize) -> Evidence {
        Evidence {
            detail: code.detail,
            code: Some(code),
            ..Evidence::new(link, rank, code.number as usize, pos, code.kind)
        }
    }
}

/// Every fragment of every table in one automaton: one pass over the text finds them all.
struct Matcher {
    automaton: aho_corasick::AhoCorasick,
    /// For each fragment: (table, pattern in that table).
    owners: Vec<(usize, usize)>,
}

fn matcher() -> &'static Matcher {
    static MATCHER: std::sync::OnceLock<Matcher> = std::sync::OnceLock::new();
    MATCHER.get_or_init(|| {
        let mut fragments = Vec::new();
        let mut owners = Vec::new();
        for (t, table) in tables().iter().enumerate() {
            for (i, pat) in table.iter().enumerate() {
                for f in pat.fragments {
                    fragments.push(*f);
                    owners.push((t, i));
                }
            }
        }
        let automaton = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&fragments)
            // The fragments are a fixed, small set of literals: building cannot fail.
            .expect("fragment automaton");
        Matcher { automaton, owners }
    })
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
        let codes = code_numbers(body);
        starts.extend(codes.iter().map(|c| c.0));
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

    /// The text's own `(NAME)` for its code, where the text has a single code to pair it with.
    fn paired_name(&self) -> Option<&str> {
        (self.codes.len() <= 1)
            .then(|| self.names.last().map(|n| n.1.as_str()))
            .flatten()
    }

    /// All evidence, strongest first.
    fn evidence(&self) -> Vec<Evidence> {
        let mut found = self.fragment_evidence();
        for &(i, status) in &stores::statuses(&self.lower) {
            if let Some((kind, detail)) = stores::status_meaning(status) {
                let mut e =
                    Evidence::new(self.link_of(i), Rank::Status, usize::from(status), i, kind);
                e.detail = Some(detail);
                found.push(e);
            }
        }
        let paired = self.paired_name();
        for &(i, n) in &self.codes {
            if let Some(code) = codes::resolve(Some(n), paired) {
                found.push(Evidence::of_code(code, self.link_of(i), Rank::Code, i));
            }
        }
        // A trailing "(NAME)" belongs to the outermost code of the message, not to the last link.
        let name_link = self.codes.first().map(|c| self.link_of(c.0));
        for (i, name) in &self.names {
            if let Some(code) = codes::resolve(None, Some(name)) {
                let link = name_link.unwrap_or_else(|| self.link_of(*i));
                found.push(Evidence::of_code(code, link, Rank::CodeName, *i));
            }
        }
        found.sort_by_key(|e| (e.symptom, std::cmp::Reverse(e.link), e.rank, e.order));
        found
    }

    /// For each wording pattern: its innermost occurrence whose link carries an allowed code.
    fn fragment_evidence(&self) -> Vec<Evidence> {
        let m = matcher();
        let tables = tables();
        let mut last: Vec<Option<Evidence>> = Vec::new();
        let mut offsets = [0usize; 3];
        for t in 1..3 {
            offsets[t] = offsets[t - 1] + tables[t - 1].len();
        }
        last.resize(offsets[2] + tables[2].len(), None);
        for hit in m.automaton.find_overlapping_iter(self.lower.as_str()) {
            let (t, i) = m.owners[hit.pattern().as_usize()];
            let pat = &tables[t][i];
            let pos = hit.start();
            let allowed =
                pat.codes.is_empty() || self.code_at(pos).is_some_and(|c| pat.codes.contains(&c));
            let slot = &mut last[offsets[t] + i];
            if allowed && slot.is_none_or(|e| e.pos < pos) {
                *slot = Some(Evidence::of_pattern(
                    pat,
                    self.link_of(pos),
                    offsets[t] + i,
                    pos,
                ));
            }
        }
        last.into_iter().flatten().collect()
    }

    /// The code (and its name) to report for the winning evidence, else the text's innermost.
    fn reported_code(&self, best: Option<&Evidence>) -> (Option<u32>, Option<String>) {
        let innermost = || {
            self.codes.last().map(|c| c.1).or_else(|| {
                let name = self.names.last()?;
                codes::resolve(None, Some(&name.1)).map(|c| c.number)
            })
        };
        let number = match best {
            Some(e) => self.code_at(e.pos).or(e.code.map(|c| c.number)),
            None => None,
        }
        .or_else(innermost);
        let name = codes::resolve(number, self.paired_name())
            .filter(|c| Some(c.number) == number || self.paired_name() == Some(c.name))
            .map(|c| c.name.to_string())
            // An unknown number: the text's own trailing name belongs to its outermost code.
            .or_else(|| {
                let outer = self.codes.first().map(|c| c.1);
                (outer.is_none() || outer == number)
                    .then(|| self.names.last().map(|n| n.1.clone()))
                    .flatten()
            });
        (number, name)
    }

    /// The links no wording, status or code (not even an `Other` one) was found in, trimmed and
    /// clipped. A trailing `(NAME)` does not make its link recognised: it names the code, not the wording.
    fn unrecognised(&self, body: &str, found: &[Evidence]) -> Vec<String> {
        let mut seen: Vec<usize> = found
            .iter()
            .filter(|e| e.rank != Rank::CodeName)
            .map(|e| self.link_of(e.pos))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        let ends = self.starts.iter().skip(1).copied().chain([body.len()]);
        self.starts
            .iter()
            .zip(ends)
            .enumerate()
            .filter(|(link, _)| seen.binary_search(link).is_err())
            .map(|(_, (&s, e))| crate::domain::text::clip(body[s..e].trim(), 200))
            .filter(|part| part.chars().any(char::is_alphanumeric))
            .take(8)
            .collect()
    }
}

/// ClickHouse's "Code: N", JDBC's "SQL Error [N]", clickhouse-go's "code: N, message: …" — not
/// any "code: " ("HTTP status code: 500" is not a ClickHouse code). Ascending.
fn code_numbers(body: &str) -> Vec<(usize, u32)> {
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
            }
        }
    }
    codes.sort_unstable();
    codes
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

/// The first `max` bytes of `s` (cut at a char boundary): how much of a text is read at all.
/// Not a display clip: what is shown is clipped by `text::clip`.
fn head_bytes(s: &str, max: usize) -> &str {
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
    use ErrorKind as K;

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

    /// Every wording entry names its source, means something, and is reachable.
    #[test]
    fn tables_are_well_formed() {
        for table in tables() {
            for pat in table {
                assert!(
                    !pat.source.is_empty() && !pat.fragments.is_empty(),
                    "{pat:?}"
                );
                assert_ne!(pat.kind, K::Other, "{pat:?}");
                for code in pat.codes {
                    assert!(codes::by_number(*code).is_some(), "{pat:?}");
                }
                if let Some(d) = pat.detail {
                    assert!(
                        d.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                        "{d}"
                    );
                }
            }
        }
    }

    /// A failed BACKUP whose cause is an object-store or disk error reports the cause.
    #[test]
    fn the_cause_outranks_the_symptom() {
        let c = classify("Failed to make backup S3('https://b.s3.amazonaws.com/x'): Code: 499. DB::Exception: Unable to parse ExceptionName: SlowDown Message: Please reduce your request rate. (S3_ERROR)");
        assert_eq!((c.kind, c.detail), (K::Network, Some("store_throttled")));
        assert_eq!(
            (c.code, c.code_name.as_deref()),
            (Some(499), Some("S3_ERROR"))
        );
        // clickhouse-backup: the first task's error, then its siblings cancelled.
        let c = classify("error one of upload go-routine return error: operation error S3: PutObject, https response error StatusCode: 403, api error AccessDenied: Access Denied\nerror can't upload: context canceled");
        assert_eq!((c.kind, c.detail), (K::Access, Some("store_access_denied")));
        // A symptom alone still counts.
        assert_eq!(
            classify("b.AddTableToLocalBackup error: context canceled").kind,
            K::Cancelled
        );
        // An HTTP status alone is evidence; a wording in the same link is stronger.
        let c = classify("HTTP/1.1 503 Service Unavailable");
        assert_eq!(c.kind, K::Network);
        let c = classify("Response status: 400; AWSError 'AuthorizationHeaderMalformed': the region 'us-east-1' is wrong");
        assert_eq!((c.kind, c.detail), (K::Destination, Some("store_region")));
        // Disk errors inside a relayed chain.
        let c = classify("Code: 655. DB::Exception: Got error from host n2:9000. Code: 75. DB::ErrnoException: Cannot write to file /backups/b/data.bin, errno: 28, strerror: No space left on device. (CANNOT_WRITE_TO_FILE_DESCRIPTOR)");
        assert_eq!(
            (c.kind, c.detail, c.code),
            (K::Destination, Some("disk_full"), Some(75))
        );
        assert_eq!(c.host.as_deref(), Some("n2:9000"));
    }

    /// `Other` says what was not recognised; a recognised code that means nothing is not guessed.
    #[test]
    fn honest_other() {
        let c =
            classify("Code: 62. DB::Exception: Syntax error: failed at position 8. (SYNTAX_ERROR)");
        assert_eq!(
            (c.kind, c.code_name.as_deref()),
            (K::Other, Some("SYNTAX_ERROR"))
        );
        assert_eq!(
            c.unrecognised,
            vec!["Exception: Syntax error: failed at position 8. (SYNTAX_ERROR)"]
        );
        let c = classify("something odd happened: frobnication exceeded");
        assert_eq!(c.kind, K::Other);
        assert_eq!(
            c.unrecognised,
            vec!["something odd happened: frobnication exceeded"]
        );
        let c =
            classify("Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)");
        assert_eq!((c.kind, c.code), (K::Other, Some(241)));
        assert_eq!(
            c.unrecognised,
            vec!["Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)"]
        );
        assert!(
            classify("Code: 999. Coordination::Exception: Session expired.")
                .unrecognised
                .is_empty()
        );
    }

    #[test]
    fn advice_follows_the_detail() {
        let throttled = advice("store_throttled").unwrap();
        for setting in [
            "backup_threads",
            "s3_max_put_rps",
            "s3_max_get_rps",
            "upload_concurrency",
        ] {
            assert!(throttled.contains(setting), "{setting}");
        }
        assert!(advice("store_access_denied").unwrap().contains("bucket"));
        assert!(advice("disk_full").unwrap().contains("df -i"));
        assert_eq!(advice("no_such_detail"), None);
        // Every detail the tables can give has advice, or is deliberately left to the category.
        let generic = ["store_error", "connection_reset", "connection_failed"];
        let details = tables().into_iter().flatten().filter_map(|p| p.detail);
        let code_details = codes::CODES.iter().filter_map(|c| c.detail);
        let status_details = stores::STATUSES.iter().map(|s| s.2);
        for d in details.chain(code_details).chain(status_details) {
            assert!(advice(d).is_some() || generic.contains(&d), "{d}");
        }
    }
}
