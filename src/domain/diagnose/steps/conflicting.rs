//! Cause 5, a conflicting operation in flight: wait for a running backup or mutation, or kill
//! a mutation that keeps failing.

use super::{Facts, Steps};
use crate::domain::card::NextStep;
use crate::domain::finding::{CheckKind, Flag, Subject};
use crate::domain::sql;

pub(super) fn steps(facts: &Facts<'_>, steps: &mut Steps) {
    for f in facts.problems(CheckKind::Blockers) {
        match &f.subject {
            Subject::Backup { replica, id, name } => steps.push(
                NextStep::sql(
                    format!("Wait for {name} to finish before starting another backup"),
                    Some(replica),
                    format!(
                        "SELECT id, name, status, num_files, total_size, error FROM system.backups WHERE id = {}",
                        sql::string(id)
                    ),
                )
                .note("Concurrent backups fail with code 587 or break the sync"),
            ),
            Subject::Mutation {
                replica,
                database,
                table,
                mutation_id,
            } => {
                let at = format!(
                    "database = {} AND table = {} AND mutation_id = {}",
                    sql::string(database),
                    sql::string(table),
                    sql::string(mutation_id)
                );
                steps.push(if f.has(Flag::Failing) {
                    NextStep::sql(
                        format!("Mutation {mutation_id} on {database}.{table} keeps failing: fix its cause or kill it"),
                        Some(replica),
                        format!("KILL MUTATION WHERE {at}"),
                    )
                    .note("Only if the mutation is not needed; it will never finish as it is")
                } else {
                    NextStep::sql(
                        format!("Wait for mutation {mutation_id} on {database}.{table}"),
                        Some(replica),
                        format!("SELECT mutation_id, parts_to_do, latest_fail_reason FROM system.mutations WHERE {at}"),
                    )
                });
            }
            _ => {}
        }
    }
}
