//! Backup statements the steps share: the per-replica fallback (the runbook's step 6), the
//! ON CLUSTER list of the databases every replica has, and the retry once the cluster is ready.

use std::collections::BTreeSet;

use crate::domain::action::Action;
use crate::domain::card::NextStep;
use crate::domain::diagnose::Context;
use crate::domain::{sql, time};

/// What ON CLUSTER takes: the servers' name of the cluster, else chops' own.
fn on_cluster_name(ctx: &Context) -> &str {
    if ctx.remote_cluster.is_empty() {
        &ctx.cluster
    } else {
        &ctx.remote_cluster
    }
}

/// `DATABASE a, DATABASE b`, or None for no databases.
fn database_list(dbs: &[String]) -> Option<String> {
    (!dbs.is_empty()).then(|| {
        dbs.iter()
            .map(|d| format!("DATABASE {}", sql::ident(d)))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The databases every replica that answered has, followed by `ON CLUSTER '<cluster>'`.
fn on_cluster_list(ctx: &Context) -> Option<String> {
    let mut lists = ctx.databases.values();
    let first = lists.next()?;
    let common: Vec<String> = first
        .iter()
        .filter(|d| ctx.databases.values().all(|l| l.contains(d)))
        .cloned()
        .collect();
    database_list(&common).map(|l| format!("{l} ON CLUSTER {}", sql::string(on_cluster_name(ctx))))
}

/// What an ON CLUSTER backup covers: the shared databases, else everything.
pub(super) fn on_cluster_what(ctx: &Context) -> String {
    on_cluster_list(ctx)
        .unwrap_or_else(|| format!("ALL ON CLUSTER {}", sql::string(on_cluster_name(ctx))))
}

/// `Disk('<backup disk>', '<name>')`.
pub(super) fn disk_target(ctx: &Context, name: &str) -> String {
    format!(
        "Disk({}, {})",
        sql::string(&ctx.backup_disk),
        sql::string(name)
    )
}

/// A unique name for an ON CLUSTER backup taken now.
pub(super) fn cluster_backup_name(ctx: &Context) -> String {
    sql::backup_name(&ctx.cluster, "cluster", &time::compact(ctx.now_unix))
}

/// The per-replica backup of the runbook's step 6, for every reachable replica, of the
/// databases that replica has.
pub(super) fn per_replica(ctx: &Context, down: &BTreeSet<String>) -> Vec<NextStep> {
    let stamp = time::compact(ctx.now_unix);
    ctx.replicas
        .iter()
        .filter(|r| !down.contains(&r.name))
        .map(|r| match ctx.databases.get(&r.name) {
            None => NextStep::text(format!("Back up {} on its own: its databases are unknown (no answer to the settings check)", r.name)),
            Some(dbs) if dbs.is_empty() => NextStep::text(format!("{} has no user databases: nothing to back up there", r.name)),
            Some(dbs) => {
                let action = Action::BackupReplica {
                    cluster: ctx.cluster.clone(),
                    replica: r.name.clone(),
                    databases: dbs.clone(),
                    disk: ctx.backup_disk.clone(),
                };
                let name = sql::backup_name(&ctx.cluster, &r.name, &stamp);
                NextStep::sql(
                    format!("Back up {} on its own (no ON CLUSTER coordination)", r.name),
                    Some(&r.name),
                    action.sql(&name),
                )
                .action(action)
                .note("Returns (id, status); follow it with SELECT status, error FROM system.backups WHERE id = '<id>' until BACKUP_CREATED or BACKUP_FAILED")
            }
        })
        .collect()
}

/// A healthy cluster: the ON CLUSTER backup to retry now.
pub(super) fn ready(ctx: &Context) -> NextStep {
    match on_cluster_list(ctx) {
        Some(what) => NextStep::sql(
            "Cluster is ready: retry the backup",
            None,
            format!(
                "BACKUP {what} TO {} ASYNC",
                disk_target(ctx, &cluster_backup_name(ctx))
            ),
        ),
        None => NextStep::text("Cluster is ready for a backup (no user databases found)"),
    }
}
