//! Cause 3, the sync timed out: retry ON CLUSTER with more Keeper retries and longer backoff
//! than the effective settings (at least the runbook's values).

use super::{backup, Facts, Steps};
use crate::domain::card::NextStep;

pub(super) fn steps(facts: &Facts<'_>, steps: &mut Steps) {
    let ctx = facts.ctx;
    let get = |k: &str, d: u64| ctx.settings.get(k).copied().unwrap_or(d);
    let retries = (get("backup_restore_keeper_max_retries", 1000) * 2).max(1000);
    let initial = get("backup_restore_keeper_retry_initial_backoff_ms", 100).max(500);
    let max_backoff = (get("backup_restore_keeper_retry_max_backoff_ms", 5000) * 2).max(10000);
    let name = backup::cluster_backup_name(ctx);
    let what = backup::on_cluster_what(ctx);
    steps.push(
        NextStep::sql(
            "Retry ON CLUSTER with more Keeper retries and longer backoff",
            None,
            format!(
                "BACKUP {what} TO {} SETTINGS backup_restore_keeper_max_retries = {retries}, backup_restore_keeper_retry_initial_backoff_ms = {initial}, backup_restore_keeper_retry_max_backoff_ms = {max_backoff}",
                backup::disk_target(ctx, &name)
            ),
        )
        .note("Only once every replica answers and Keeper is healthy"),
    );
}
