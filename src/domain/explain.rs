//! Explain one error text (pure): its category, the runbook causes it is evidence for, its code
//! and code name, the host it names, what it means, and the next steps — without a cluster, so
//! no step carries cluster-specific SQL. `chops explain` and `/explain` print this.

use serde::Serialize;

use super::card::NextStep;
use super::cause::Cause;
use super::classify::{self, Classification, ErrorKind};
use super::finding::{CheckKind, Finding, Severity, Subject};
use super::text;

/// Texts longer than this are explained from their first MiB.
pub const MAX_TEXT: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub category: ErrorKind,
    /// The finer kind within the category (`store_throttled`, `disk_full`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// A second plausible category when the text is ambiguous.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub also: Option<ErrorKind>,
    pub causes: Vec<Cause>,
    pub code: Option<u32>,
    pub code_name: Option<String>,
    pub host: Option<String>,
    /// The error's first line (no stack trace, no version).
    pub message: String,
    pub meaning: String,
    pub next_steps: Vec<NextStep>,
    /// When the category is `other`: the parts of the text nothing recognised.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unrecognised: Vec<String>,
    /// The text was longer than [`MAX_TEXT`]; only its start was read.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clipped: bool,
}

/// Explain `text` (any length; a huge one is read up to [`MAX_TEXT`]).
pub fn explain(text: &str) -> Explanation {
    let clipped = text.len() > MAX_TEXT;
    let head = if clipped {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        &text[..end]
    } else {
        text
    };
    let c = classify::classify(head);
    Explanation {
        category: c.kind,
        kind: c.detail,
        also: c.also,
        causes: c.kind.causes().to_vec(),
        code: c.code,
        code_name: c.code_name.clone(),
        host: c.host.clone(),
        message: text::clip(&c.message, text::EVIDENCE_MAX),
        meaning: c.kind.meaning().to_string(),
        next_steps: steps(&c),
        unrecognised: c
            .unrecognised
            .iter()
            .map(|u| text::clip(u, text::EVIDENCE_MAX))
            .collect(),
        clipped,
    }
}

/// The finding a pasted error adds to a live card (`chops explain --cluster`).
pub fn finding(e: &Explanation) -> Finding {
    let mut f = Finding::new(
        CheckKind::Backups,
        Severity::Crit,
        Subject::Cluster,
        format!("pasted error: {}: {}", e.category.label(), e.message),
    );
    if let Some(h) = &e.host {
        f = f.evidence(format!("names host {h}"));
    }
    for c in &e.causes {
        f = f.cause(*c);
    }
    f
}

const RUNNING_SQL: &str = "SELECT id, name, status, error FROM system.backups WHERE status IN ('CREATING_BACKUP', 'RESTORING')";

fn steps(c: &Classification) -> Vec<NextStep> {
    // The finer kind names the grant, credential, path or setting: it comes first.
    let advice = c.detail.and_then(classify::advice).map(NextStep::text);
    advice.into_iter().chain(category_steps(c)).collect()
}

fn category_steps(c: &Classification) -> Vec<NextStep> {
    let host = c.host.as_deref().unwrap_or("the host it names");
    let t = NextStep::text;
    match c.kind {
        ErrorKind::Keeper => vec![
            t("Check every Keeper node: the four-letter words mntr, srvr, ruok (state, latency, outstanding requests)")
                .note("`chops check keeper --cluster <name>` asks them all at once"),
            t("Restore Keeper before retrying: ON CLUSTER backups coordinate every host through it")
                .note("Do not run SYSTEM RESTART REPLICA while Keeper is down"),
        ],
        ErrorKind::ReplicaOffline => vec![
            NextStep::text(format!("Bring {host} back (or take it out of the cluster's remote_servers) before an ON CLUSTER retry")),
            t("Meanwhile back up each reachable replica on its own, without ON CLUSTER")
                .note("`chops check backup --cluster <name>` prints the statement for each replica, or use /backup-replica"),
        ],
        ErrorKind::Timeout => vec![
            t("A host did not reach a stage in time: find the slow or stuck host (Keeper latency, a long merge or mutation, a saturated disk)"),
            t("Retry ON CLUSTER with more Keeper retries and a longer backoff (backup_restore_keeper_max_retries, backup_restore_keeper_retry_max_backoff_ms)")
                .note("`chops check backup --cluster <name>` computes the values from the effective settings"),
        ],
        ErrorKind::Network => vec![t(
            "Check the network between the hosts and to Keeper (interserver and Keeper ports, packet loss, DNS); the operation retries on its own",
        )],
        ErrorKind::ConflictingOperation => vec![
            NextStep::sql("Look for another backup or restore in flight", None, RUNNING_SQL)
                .note("Concurrent backups fail with code 587 or break the sync; wait for them, or set allow_concurrent_backups knowingly"),
            t("A shared destination written twice (a retry over NFS/CIFS/S3) reports the same: use a new destination"),
        ],
        ErrorKind::ReplicaLag => vec![
            NextStep::sql(
                "Find the lagging or read-only replicas",
                None,
                "SELECT database, table, is_readonly, absolute_delay, queue_size FROM system.replicas WHERE is_readonly OR absolute_delay > 300",
            ),
            t("Let them catch up; a read-only replica may need SYSTEM RESTART REPLICA on that host (not while Keeper is down)"),
        ],
        ErrorKind::NameReuse => vec![t(
            "The name (or the id) was used before: retry with a new, unique backup name and id",
        )],
        ErrorKind::Destination if c.shared_destination => vec![t(
            "ON CLUSTER needs a destination every host shares (S3 or a shared disk), not a local disk per host",
        )],
        ErrorKind::Destination => vec![t(
            "Back up to a disk listed in the servers' <backups><allowed_disk> (or an allowed path); check the backup exists when restoring",
        )],
        ErrorKind::Access => vec![t(
            "Grant BACKUP (and SELECT on what it reads) to the user that ran it, or fix its credentials",
        )],
        ErrorKind::Schema => vec![t(
            "A table changed during the backup, is missing on a host, or the restore target already has data: retry outside DDL, create the table everywhere, or restore into empty tables",
        )],
        ErrorKind::Cancelled => vec![t(
            "It was cancelled (KILL QUERY, a shutdown): run it again if it is still needed",
        )],
        ErrorKind::ClientTimeout => vec![
            NextStep::sql(
                "The client stopped waiting; the operation may still be running on the server",
                None,
                "SELECT id, name, status, error FROM system.backups ORDER BY start_time DESC LIMIT 10",
            )
            .note("Start backups with ASYNC and follow system.backups instead of holding a connection open"),
        ],
        ErrorKind::VersionMismatch => vec![t(
            "Upgrade every host to the same server version before an ON CLUSTER backup or restore",
        )],
        ErrorKind::Other => vec![t(
            "The cause is unknown (nothing in the message is a known backup/restore failure): run `chops check backup --cluster <name>` for the full diagnosis",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_without_a_cluster() {
        let e = explain("Code: 655. DB::Exception: Failed to sync backup or restore: No connection to host node2:9000 yet. (FAILED_TO_SYNC_BACKUP_OR_RESTORE) (version 24.3.1.1)");
        assert_eq!(e.category, ErrorKind::ReplicaOffline);
        assert!(e.causes.contains(&Cause::ReplicaOffline));
        assert_eq!(e.host.as_deref(), Some("node2:9000"));
        assert!(!e.next_steps.is_empty());
        assert!(e.next_steps.iter().all(|s| s.action.is_none()));
    }

    #[test]
    fn huge_and_empty_texts_never_panic() {
        let huge = format!(
            "Code: 999. DB::Exception: Session expired {}",
            "x".repeat(10 << 20)
        );
        let e = explain(&huge);
        assert!(e.clipped);
        assert_eq!(e.category, ErrorKind::Keeper);
        assert!(e.message.len() <= text::EVIDENCE_MAX + 40);
        assert_eq!(explain("").category, ErrorKind::Other);
    }

    #[test]
    fn the_finer_kind_leads_the_next_steps() {
        let e = explain("Code: 499. DB::Exception: Please reduce your request rate. (S3_ERROR)");
        assert_eq!(
            (e.category, e.kind),
            (ErrorKind::Network, Some("store_throttled"))
        );
        assert!(e.next_steps[0].title.contains("s3_max_put_rps"));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], "store_throttled");
        assert!(json.get("unrecognised").is_none());
        let e = explain("frobnicator jammed");
        assert_eq!(e.unrecognised, vec!["frobnicator jammed"]);
        assert_eq!(
            serde_json::to_value(&e).unwrap()["unrecognised"][0],
            "frobnicator jammed"
        );
    }
}
