//! Classify a backup/restore error text (system.backups.error or a client exception) into the
//! runbook's causes, following the runbook's classification table.

use serde::Serialize;

use super::cause::Cause;

/// What an error text means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A host was lost, never connected, or stopped working (replica offline or its Keeper session lost).
    HostLost,
    /// A host did not reach a stage in time.
    Timeout,
    /// Another backup/restore or Keeper contention changed the coordination state.
    Concurrent,
    /// Keeper errors: 999, 225, session expired, connection loss.
    Keeper,
    /// The destination is not shared between hosts, or was removed mid-backup.
    LockFileMissing,
    /// Hosts run different server versions.
    MixedVersions,
    /// The backup name was used before (598): not a sync problem.
    NameReuse,
    /// The destination disk/path is not allowed or does not exist.
    Destination,
    /// Authentication or access rights.
    Access,
    /// A network error between hosts (209/210).
    Network,
    /// Nothing the table knows.
    Other,
}

impl ErrorKind {
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::HostLost => "host lost or offline",
            ErrorKind::Timeout => "timeout / host stalled",
            ErrorKind::Concurrent => "concurrent operation or Keeper contention",
            ErrorKind::Keeper => "Keeper error",
            ErrorKind::LockFileMissing => {
                "destination not shared between hosts, or removed mid-backup"
            }
            ErrorKind::MixedVersions => "mixed server versions",
            ErrorKind::NameReuse => "backup name reused (not a sync problem)",
            ErrorKind::Destination => "backup destination not allowed or missing",
            ErrorKind::Access => "authentication or access rights",
            ErrorKind::Network => "network error",
            ErrorKind::Other => "unclassified error",
        }
    }

    /// The runbook causes this kind is evidence for, most likely first.
    pub fn causes(self) -> &'static [Cause] {
        match self {
            ErrorKind::HostLost => &[Cause::ReplicaOffline, Cause::Keeper],
            ErrorKind::Timeout => &[Cause::Timeout],
            ErrorKind::Concurrent => &[Cause::ConflictingOperation],
            ErrorKind::Keeper => &[Cause::Keeper],
            ErrorKind::Network => &[Cause::Network],
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub kind: ErrorKind,
    /// The outermost ClickHouse error code in the text.
    pub code: Option<u32>,
    /// The host the error names (decoded), if any.
    pub host: Option<String>,
    /// The first line of the error, without stack trace and version suffix.
    pub message: String,
}

/// Classify an error text.
pub fn classify(text: &str) -> Classification {
    let message = clean(text);
    let decoded = percent_decode(&message);
    let code = codes(&decoded).into_iter().next();
    let host = named_host(&decoded);
    // "Got error from host X. <inner>": the inner error decides; otherwise the whole text.
    let inner = decoded
        .split_once("Got error from host")
        .map(|(_, rest)| rest)
        .unwrap_or(&decoded);
    let kind = kind_of(inner)
        .or_else(|| kind_of(&decoded))
        .unwrap_or(ErrorKind::Other);
    Classification {
        kind,
        code,
        host,
        message: decoded,
    }
}

fn kind_of(text: &str) -> Option<ErrorKind> {
    const TEXTS: &[(&str, ErrorKind)] = &[
        (
            "Lock file .lock suddenly disappeared",
            ErrorKind::LockFileMissing,
        ),
        ("Coordination version", ErrorKind::MixedVersions),
        ("Concurrent backups are not allowed", ErrorKind::Concurrent),
        ("Concurrent restores are not allowed", ErrorKind::Concurrent),
        ("Couldn't create the start node", ErrorKind::Concurrent),
        ("num_hosts changed", ErrorKind::Concurrent),
        ("alive_tracker changed", ErrorKind::Concurrent),
        (
            "Concurrent backup or restore changed",
            ErrorKind::Concurrent,
        ),
        ("Session expired", ErrorKind::Keeper),
        ("Connection loss", ErrorKind::Keeper),
        ("Lost connection to host", ErrorKind::HostLost),
        ("node hasn't been updated in ZooKeeper", ErrorKind::HostLost),
        ("Never connected to host", ErrorKind::HostLost),
        ("suddenly stopped working", ErrorKind::HostLost),
        ("finished without coming to stage", ErrorKind::Timeout),
        ("Waited for host", ErrorKind::Timeout),
        ("already exists", ErrorKind::NameReuse),
        ("is not allowed for backups", ErrorKind::Destination),
    ];
    for (needle, kind) in TEXTS {
        if text.contains(needle) {
            return Some(*kind);
        }
    }
    for code in codes(text) {
        let kind = match code {
            999 | 225 => ErrorKind::Keeper,
            159 => ErrorKind::Timeout,
            587 => ErrorKind::Concurrent,
            598 => ErrorKind::NameReuse,
            209 | 210 => ErrorKind::Network,
            516 | 497 | 192 | 193 | 194 => ErrorKind::Access,
            _ => continue,
        };
        return Some(kind);
    }
    None
}

/// All `Code: N.` numbers in order of appearance.
fn codes(text: &str) -> Vec<u32> {
    text.match_indices("Code: ")
        .filter_map(|(i, m)| {
            let digits: String = text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits.parse().ok()
        })
        .collect()
}

/// The host named after "host " in the messages of the table (first one).
fn named_host(text: &str) -> Option<String> {
    const PREFIXES: &[&str] = &[
        "Got error from host ",
        "Lost connection to host ",
        "Never connected to host ",
        "Waited for host ",
        "used by host ",
        "for host ",
        "Host ",
    ];
    PREFIXES.iter().find_map(|p| {
        let start = text.find(p)? + p.len();
        let host: String = text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ',' && *c != '\'' && *c != '"' && *c != ')')
            .collect();
        let host = host.trim_end_matches(['.', ':']).to_string();
        (!host.is_empty()).then_some(host)
    })
}

/// First line of an error, without the stack trace and the "(version …)" suffix.
fn clean(text: &str) -> String {
    let first = super::text::first_line(text, usize::MAX);
    match first.rfind(" (version ") {
        Some(i) if first.ends_with(')') => first[..i].to_string(),
        _ => first,
    }
}

/// Older servers URL-escape host names (`clickhouse%2Dshard1%3A9000`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message text and code of the runbook's classification table.
    #[test]
    fn runbook_table() {
        let cases: &[(&str, ErrorKind, Option<&str>)] = &[
            ("Code: 655. DB::Exception: Lost connection to host ch-2:9000. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::HostLost, Some("ch-2:9000")),
            ("Code: 655. DB::Exception: The 'alive' node hasn't been updated in ZooKeeper for host ch-3:9000 for 30 seconds. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::HostLost, Some("ch-3:9000")),
            ("Code: 655. DB::Exception: Never connected to host ch-1:9000. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::HostLost, Some("ch-1:9000")),
            ("Code: 655. DB::Exception: Host ch-2:9000 suddenly stopped working. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::HostLost, Some("ch-2:9000")),
            ("Code: 655. DB::Exception: Got error from host ch-2:9000. Code: 999. Coordination::Exception: Session expired. (KEEPER_EXCEPTION)", ErrorKind::Keeper, Some("ch-2:9000")),
            ("Code: 655. DB::Exception: Got error from host ch-2:9000. Code: 159. Timeout exceeded. (TIMEOUT_EXCEEDED)", ErrorKind::Timeout, Some("ch-2:9000")),
            ("Code: 655. DB::Exception: Backup ch-1:9000 finished without coming to stage 'completed'. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::Timeout, None),
            ("Code: 655. DB::Exception: Waited for host ch-3:9000 too long (180 sec). (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::Timeout, Some("ch-3:9000")),
            ("Code: 655. DB::Exception: Couldn't create the start node. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::Concurrent, None),
            ("Code: 655. DB::Exception: num_hosts changed. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::Concurrent, None),
            ("Code: 655. DB::Exception: alive_tracker changed. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::Concurrent, None),
            ("Code: 655. DB::Exception: Concurrent backup or restore changed the stage. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::Concurrent, None),
            ("Code: 587. DB::Exception: Concurrent backups are not allowed. (CONCURRENT_ACCESS_NOT_SUPPORTED)", ErrorKind::Concurrent, None),
            ("Code: 655. DB::Exception: Lock file .lock suddenly disappeared while writing backup Disk('backups', 'b'). (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::LockFileMissing, None),
            ("Code: 655. DB::Exception: Coordination version 2 used by host ch-2:9000 is not supported. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)", ErrorKind::MixedVersions, Some("ch-2:9000")),
            ("Code: 999. Coordination::Exception: Connection loss. (KEEPER_EXCEPTION)", ErrorKind::Keeper, None),
            ("Code: 225. DB::Exception: No ZooKeeper. (NO_ZOOKEEPER)", ErrorKind::Keeper, None),
            ("Code: 999. Coordination::Exception: Session expired (Session expired). (KEEPER_EXCEPTION)", ErrorKind::Keeper, None),
            ("Code: 159. DB::Exception: Timeout exceeded: elapsed 600 seconds. (TIMEOUT_EXCEEDED)", ErrorKind::Timeout, None),
            ("Code: 598. DB::Exception: Backup Disk('backups', 'b1') already exists. (BACKUP_ALREADY_EXISTS)", ErrorKind::NameReuse, None),
            ("Code: 36. DB::Exception: Disk ''nope'' is not allowed for backups, see the 'backups.allowed_disk' configuration parameter. (BAD_ARGUMENTS)", ErrorKind::Destination, None),
            ("Code: 210. DB::NetException: Connection refused (ch-2:9000). (NETWORK_ERROR)", ErrorKind::Network, None),
            ("Code: 209. DB::NetException: Timeout exceeded while reading from socket. (SOCKET_TIMEOUT)", ErrorKind::Network, None),
            ("Code: 516. DB::Exception: default: Authentication failed. (AUTHENTICATION_FAILED)", ErrorKind::Access, None),
            ("Code: 62. DB::Exception: Syntax error. (SYNTAX_ERROR)", ErrorKind::Other, None),
        ];
        for (text, kind, host) in cases {
            let c = classify(text);
            assert_eq!(c.kind, *kind, "{text}");
            assert_eq!(c.host.as_deref(), *host, "{text}");
        }
    }

    #[test]
    fn url_escaped_host_names_are_decoded() {
        let c = classify("Code: 655. DB::Exception: Lost connection to host clickhouse%2Dshard1%3A9000. (FAILED_TO_SYNC_BACKUP_OR_RESTORE)");
        assert_eq!(c.kind, ErrorKind::HostLost);
        assert_eq!(c.host.as_deref(), Some("clickhouse-shard1:9000"));
        assert_eq!(c.code, Some(655));
    }

    #[test]
    fn stack_trace_and_version_are_cut() {
        let c = classify("Code: 598. DB::Exception: Backup Disk('backups', 'b1') already exists. (BACKUP_ALREADY_EXISTS), Stack trace (when copying this message, always include the lines below):\n\n0. ? @ 0x1");
        assert_eq!(c.message, "Code: 598. DB::Exception: Backup Disk('backups', 'b1') already exists. (BACKUP_ALREADY_EXISTS)");
        let c = classify(
            "Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED) (version 26.9.2.1)",
        );
        assert_eq!(
            c.message,
            "Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED)"
        );
        assert_eq!(c.kind, ErrorKind::Timeout);
    }

    #[test]
    fn causes_of_kinds() {
        assert_eq!(
            ErrorKind::HostLost.causes(),
            &[Cause::ReplicaOffline, Cause::Keeper]
        );
        assert_eq!(ErrorKind::NameReuse.causes(), &[] as &[Cause]);
        assert_eq!(
            classify("Code: 587. x").kind.causes(),
            &[Cause::ConflictingOperation]
        );
    }
}
