//! The six causes of a failed ON CLUSTER backup/restore sync, in the runbook's order.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// 1. Keeper/ZooKeeper unavailable, overloaded or partitioned.
    Keeper,
    /// 2. A replica offline or unreachable.
    ReplicaOffline,
    /// 3. Sync slower than the configured retries/backoff allow.
    Timeout,
    /// 4. Intermittent network trouble between replicas.
    Network,
    /// 5. Another BACKUP/RESTORE, heavy mutation or schema change in flight.
    ConflictingOperation,
    /// 6. A replica far behind in replication.
    ReplicaLag,
}

impl Cause {
    pub const ALL: [Cause; 6] = [
        Cause::Keeper,
        Cause::ReplicaOffline,
        Cause::Timeout,
        Cause::Network,
        Cause::ConflictingOperation,
        Cause::ReplicaLag,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Cause::Keeper => "Keeper unavailable or unhealthy",
            Cause::ReplicaOffline => "Replica offline or unreachable",
            Cause::Timeout => "Sync timed out",
            Cause::Network => "Network trouble between replicas",
            Cause::ConflictingOperation => "Conflicting operation in flight",
            Cause::ReplicaLag => "Replica lagging or read-only",
        }
    }
}
