//! Operating-system errors on the disks a backup reads or writes (and the sockets it talks
//! through), as ClickHouse prints them (`errno: 28, strerror: No space left on device`, Poco's
//! `e.code() = 30`), as Go prints them in clickhouse-backup's logs (`…: permission denied`), and
//! as Python/Java clients do. Each maps to the category an SRE acts on: rights on a path are
//! `access`, a full, read-only or missing disk is `destination`, a reset socket is `network`.
//!
//! Numbers are Linux errno values (`errno.h`); the texts are glibc's `strerror` and Go's
//! `syscall.Errno` wordings (lowercase in Go, which matching ignores).

use super::ErrorKind as K;
use super::{p, Pattern};

const ERRNO: &str = "Linux errno / strerror";
const CH: &str = "ClickHouse disk space reservation (src/Disks)";

/// Wordings, checked case-insensitively. An `errno: N,` form is given with its comma so 2 does
/// not match 28.
#[rustfmt::skip]
pub static PATTERNS: &[Pattern] = &[
    // Rights on the path (EACCES 13, EPERM 1).
    p(K::Access, &["Permission denied", "errno: 13,", "e.code() = 13,", "Operation not permitted", "errno: 1,", "Access to file denied", "insufficient permissions"], ERRNO).also(K::Destination).detail("disk_permission"),
    // Space (ENOSPC 28), quota (EDQUOT 122), and ClickHouse's own reservation check.
    p(K::Destination, &["No space left on device", "errno: 28,", "e.code() = 28,"], ERRNO).detail("disk_full"),
    p(K::Destination, &["Cannot reserve", "not enough space"], CH).detail("disk_full"),
    p(K::Destination, &["Disk quota exceeded", "errno: 122,"], ERRNO).detail("disk_quota"),
    // Read-only filesystem (EROFS 30).
    p(K::Destination, &["Read-only file system", "errno: 30,", "e.code() = 30,", "File is read-only"], ERRNO).detail("disk_read_only"),
    // File descriptors (EMFILE 24, ENFILE 23).
    p(K::Destination, &["Too many open files", "errno: 24,", "errno: 23,"], ERRNO).detail("too_many_open_files"),
    // I/O errors (EIO 5) and missing paths (ENOENT 2, ENOTDIR 20).
    p(K::Destination, &["Input/output error", "errno: 5,"], ERRNO).detail("disk_io"),
    p(K::Destination, &["No such file or directory", "errno: 2,", "Not a directory"], ERRNO).detail("disk_missing"),
    p(K::Destination, &["File not found", "Path not found"], "Poco::FileNotFoundException / PathNotFoundException").detail("disk_missing"),
    // Sockets: reset (ECONNRESET 104), refused (ECONNREFUSED 111), broken pipe (EPIPE 32),
    // timed out (ETIMEDOUT 110), unreachable (EHOSTUNREACH 113, ENETUNREACH 101).
    p(K::Network, &["Connection reset by peer", "e.code() = 104,", "errno: 104,", "Connection reset", "Broken pipe", "errno: 32,"], ERRNO).detail("connection_reset"),
    p(K::Network, &["client connection force closed", "use of closed network connection", "server sent GOAWAY"], "Go net and net/http2 transport errors (clickhouse-backup)").detail("connection_reset"),
    p(K::Network, &["Connection refused", "errno: 111,", "e.code() = 111,", "No route to host", "Network is unreachable", "connect timed out", "Connection timed out", "errno: 110,"], ERRNO).detail("connection_failed"),
];

#[cfg(test)]
mod tests {
    use super::super::classify;
    use super::*;

    #[test]
    fn errno_numbers_do_not_match_longer_ones() {
        let c = classify(
            "Code: 76. DB::ErrnoException: Cannot open file /x, errno: 28, strerror: whatever",
        );
        assert_eq!((c.kind, c.detail), (K::Destination, Some("disk_full")));
        let c = classify("Cannot open file /x, errno: 2, strerror: No such file or directory");
        assert_eq!(c.detail, Some("disk_missing"));
        let c = classify("open /var/lib/clickhouse/backup/b/x.bin: permission denied");
        assert_eq!((c.kind, c.also), (K::Access, Some(K::Destination)));
        assert!(PATTERNS.iter().all(|p| p.detail.is_some()));
    }
}
