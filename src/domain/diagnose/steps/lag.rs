//! Cause 6, a replica lagging or read-only: re-initialise a read-only table (unless the guard's
//! restart rules say not now), or look at what blocks a lagging table's queue.

use super::{Facts, Steps};
use crate::domain::action::Action;
use crate::domain::card::NextStep;
use crate::domain::finding::{CheckKind, Flag, Subject};
use crate::domain::guard::{self, RestartRisk};
use crate::domain::sql;

pub(super) fn steps(facts: &Facts<'_>, steps: &mut Steps) {
    for f in facts.problems(CheckKind::Lag) {
        let Subject::Table {
            replica,
            database,
            table,
        } = &f.subject
        else {
            continue;
        };
        if f.has(Flag::ReadOnly) || f.has(Flag::SessionExpired) {
            let action = Action::RestartReplica {
                cluster: facts.ctx.cluster.clone(),
                replica: replica.clone(),
                database: database.clone(),
                table: table.clone(),
            };
            // The guard's rules, so the card never offers what the guard would refuse.
            let note =
                match guard::restart_risk(!facts.keeper_down, f.has(Flag::LastActiveReplica)) {
                    Some(RestartRisk::KeeperDown) => "Not now: Keeper is down, the replica cannot re-initialise without it",
                    Some(RestartRisk::LastActive) => "Not now: it is the last active replica of its shard; the table would be unavailable",
                    None => "The table is briefly unavailable on that replica",
                };
            steps.push(
                NextStep::sql(
                    format!("Re-initialise {database}.{table} on {replica}"),
                    Some(replica),
                    action.sql(""),
                )
                .action(action)
                .note(note),
            );
        } else if f.has(Flag::Lagging) {
            steps.push(NextStep::sql(
                format!("Let {database}.{table} on {replica} catch up; look at what blocks its queue"),
                Some(replica),
                format!(
                    "SELECT type, create_time, num_tries, last_exception, postpone_reason FROM system.replication_queue WHERE database = {} AND table = {} ORDER BY create_time LIMIT 10",
                    sql::string(database),
                    sql::string(table)
                ),
            ));
        }
    }
}
