//! Wordings of ClickHouse's backup/restore coordination, Keeper, access control and restore
//! checks, and of the clients and tools around them (clickhouse-client, JDBC, clickhouse-backup),
//! older and newer forms side by side. Each entry names the file or issue its wording comes from.
//!
//! A bare error code is not here: [`super::codes`] maps every code. An entry may require the
//! code of its link (`.codes(…)`) when the wording alone is too common.

use super::ErrorKind as K;
use super::{p, Pattern};

/// The table. Order matters only within one link of a chain: specific first.
#[rustfmt::skip]
pub static PATTERNS: &[Pattern] = &[
    // Client side: the client gave up, the server may still be working.
    p(K::ClientTimeout, &["Read timed out"], "JDBC SocketTimeoutException (ClickHouse/ClickHouse#73981)"),
    p(K::ClientTimeout, &["Timeout exceeded while receiving data from server"], "clickhouse-client receive_timeout (ClickHouse/ClickHouse#61871)"),
    p(K::ClientTimeout, &["i/o timeout"], "Go net deadline in clickhouse-backup (Altinity/clickhouse-backup#1052)").also(K::Network),
    p(K::ClientTimeout, &["context deadline exceeded"], "Go context deadline in clickhouse-backup").also(K::Network),
    p(K::ClientTimeout, &["Exception: Timeout."], "bare Poco timeout of a relayed call (Altinity/clickhouse-backup#957)").codes(&[1000]).also(K::Network),
    // Keeper.
    p(K::Keeper, &["Session expired", "Session is considered to be expired", "Connection loss", "Lost ZooKeeper connection", "No ZooKeeper", "ZSESSIONEXPIRED", "ZCONNECTIONLOSS", "ZOPERATIONTIMEOUT", "Keeper server is not ready", "Coordination::Exception"], "Coordination::Exception texts (src/Common/ZooKeeper/IKeeper.cpp; ClickHouse/ClickHouse#51217)"),
    p(K::Keeper, &["All connection tries failed while connecting to ZooKeeper", "Cannot use any of provided ZooKeeper nodes", "Cannot resolve any of provided ZooKeeper hosts"], "src/Common/ZooKeeper/ZooKeeper.cpp init (Keeper unreachable at connect)"),
    // Hosts lost or never started.
    p(K::ReplicaOffline, &["Operation didn't start"], "src/Backups/BackupCoordinationStageSync.cpp waitImpl (23.x)").also(K::Timeout),
    p(K::ReplicaOffline, &["hasn't been updated in ZooKeeper"], "src/Backups/BackupCoordinationStageSync.cpp cancelQueryIfDisconnectedTooLong (24.12+)").also(K::Keeper),
    p(K::ReplicaOffline, &["Lost connection to host", "No connection to host", "Never connected to host", "suddenly stopped working", "no alive node for host"], "src/Backups/BackupCoordinationStageSync.cpp readCurrentState (23.x-24.11; ClickHouse/ClickHouse#52506)").also(K::Keeper),
    // Stages not reached.
    p(K::Timeout, &["finished without coming to stage"], "src/Backups/BackupCoordinationStageSync.cpp checkIfHostsReachStage (24.12+)").also(K::VersionMismatch),
    p(K::Timeout, &["Couldn't create the 'finish' node"], "src/Backups/BackupCoordinationStageSync.cpp createFinishNodeAndRemoveAliveNode (24.12+)").also(K::Keeper),
    p(K::Timeout, &["Waited for host"], "src/Backups/BackupCoordinationStatusSync.cpp / StageSync.cpp waitImpl (22.x-23.x)").also(K::ReplicaOffline),
    // Concurrent operations.
    p(K::ConflictingOperation, &["A concurrent backup writing to the same destination", "is being written already"], "src/Backups/BackupImpl.cpp checkLockFile / checkBackupDoesntExist").also(K::Destination),
    p(K::ConflictingOperation, &["Concurrent backups are not allowed", "Concurrent restores are not allowed", "Concurrent backups not supported", "Concurrent restores not supported"], "src/Backups/BackupConcurrencyCheck.cpp; BackupsWorker.cpp (23.x)"),
    p(K::ConflictingOperation, &["Couldn't create the start node"], "src/Backups/BackupCoordinationStageSync.cpp createStartAndAliveNodesAndCheckConcurrency (24.12+)").also(K::Timeout),
    p(K::ConflictingOperation, &["num_hosts changed", "alive_tracker changed", "Concurrent backup or restore changed"], "src/Backups/BackupCoordinationStageSync.cpp (runbook table)"),
    p(K::ConflictingOperation, &["another operation is currently running"], "clickhouse-backup API (Altinity/clickhouse-backup#1167)"),
    // Replicas behind or read-only.
    p(K::ReplicaLag, &["on other node or sync it"], "src/Databases/DatabaseReplicated.cpp createTableRestoredFromBackup"),
    p(K::ReplicaLag, &["is in readonly mode", "table will remain readonly"], "src/Storages/StorageReplicatedMergeTree.cpp (ClickHouse/ClickHouse#78495)").also(K::Keeper),
    p(K::ReplicaLag, &["replication in progress from another replica"], "clickhouse-backup restore (Altinity/clickhouse-backup#1043)"),
    // Server-side timeouts without their code.
    p(K::Timeout, &["Timeout exceeded: elapsed", "Watching task", "is executing longer than distributed_ddl_task_timeout"], "src/QueryPipeline/ExecutionSpeedLimits.cpp (TIMEOUT_EXCEEDED); src/Interpreters/executeDDLQueryOnCluster.cpp"),
    // Names and ids already taken.
    p(K::NameReuse, &["Cannot start a backup or restore: ID"], "src/Backups/BackupsWorker.cpp addInfo"),
    p(K::NameReuse, &["is already in use", "with the same ID"], "BAD_ARGUMENTS on a reused id (runbook)").codes(&[36]),
    p(K::NameReuse, &["backup is already exists"], "clickhouse-backup (Altinity/clickhouse-backup#587)"),
    // Destinations.
    p(K::Destination, &["suddenly disappeared while writing backup", "not shared between hosts"], "src/Backups/BackupImpl.cpp checkLockFile (ClickHouse/ClickHouse#41313, #47729)").shared(),
    p(K::Destination, &["is not allowed for backups", "backups.allowed_path", "backups.allowed_disk"], "src/Backups/registerBackupEnginesFileAndDisk.cpp checkPath / checkDiskName"),
    p(K::Destination, &["Path to backup must end with"], "src/Backups/registerBackupEnginesFileAndDisk.cpp (a directory backup needs a trailing '/')"),
    p(K::Destination, &["is not found on remote storage", "backup not found"], "clickhouse-backup download/restore_remote (pkg/backup)"),
    p(K::Destination, &["not found in backup", "in backup\" not found"], "src/Backups/RestorerFromBackup.cpp findTableInBackupImpl (BACKUP_ENTRY_NOT_FOUND)").also(K::Schema),
    // Rights and credentials of the server's own users.
    p(K::Access, &["Not enough privileges", "necessary to have the grant", "privileges are not enough"], "src/Access/ContextAccess.cpp (ACCESS_DENIED)").detail("grant_missing"),
    p(K::Access, &["Authentication failed", "password is incorrect", "Wrong password", "There is no user"], "src/Access/AccessControl.cpp (AUTHENTICATION_FAILED; 193 WRONG_PASSWORD before 21.x)").detail("bad_credentials"),
    // Tables.
    p(K::Schema, &["already contains some data", "has a different definition", "Extracted two different create queries"], "src/Backups/RestorerFromBackup.cpp checkTable / insertDataToTable"),
    p(K::Schema, &["during scanning"], "src/Backups/BackupEntriesCollector.cpp (ClickHouse/ClickHouse#44252)").also(K::ConflictingOperation),
    // Cancelled.
    p(K::Cancelled, &["Query was cancelled", "was cancelled by"], "QUERY_WAS_CANCELLED (tests/integration/test_backup_restore_on_cluster/test_cancel_backup.py)"),
    p(K::Cancelled, &["BACKUP_CANCELLED", "RESTORE_CANCELLED"], "system.backups status (src/Backups/BackupStatus.cpp)"),
    p(K::Cancelled, &["context canceled"], "Go context: a sibling task of clickhouse-backup failed first").symptom(),
    // Versions.
    p(K::VersionMismatch, &["Coordination version"], "src/Backups/BackupCoordinationStageSync.cpp (runbook table)"),
    p(K::VersionMismatch, &["Not found backup engine", "Not found: contents"], "BACKUP_ENGINE_NOT_FOUND; .backup parsed by another version (ClickHouse/ClickHouse#50885)"),
    p(K::VersionMismatch, &["is not supported by this client"], "clickhouse-backup on an unsupported server version"),
    // Sockets and names between servers (no code in the text).
    p(K::Network, &["Timeout exceeded while reading from socket", "Timeout exceeded while writing to socket"], "src/IO/ReadBufferFromPocoSocket.cpp / WriteBufferFromPocoSocket.cpp (SOCKET_TIMEOUT)"),
    p(K::Network, &["Not found address of host", "Temporary failure in name resolution", "no such host", "Name or service not known"], "src/Common/DNSResolver.cpp (DNS_ERROR); Go net.DNSError; glibc getaddrinfo"),
    // Object storage through Poco (ClickHouse's S3 client).
    p(K::Network, &["e.code() = 0, Timeout", "Gateway Timeout", "Response status: 504"], "AWS S3 client over Poco (ClickHouse/ClickHouse#69671, #93571, PR #78001)"),
];
