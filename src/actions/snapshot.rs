//! The live pre-checks the guard reads: a [`Snapshot`] of an action's target, probed right before
//! the preview and again under the lock before anything runs. Everything on the target replica
//! with the read-only account, plus Keeper's own `srvr` on its nodes for a restart, plus the
//! store's lock and cooldown on the target.

use std::time::Duration;

use super::{restart_replica, Actor, FlowError, Planned};
use crate::checks::settings::NameRow;
use crate::clickhouse::{Budget, ReplicaClient};
use crate::domain::action::Action;
use crate::domain::guard::Snapshot;
use crate::domain::ProbeError;

impl Actor<'_> {
    /// Fresh probes of everything the guard looks at (read-only account).
    pub async fn snapshot(&self, planned: &Planned, now: i64) -> Result<Snapshot, FlowError> {
        let action = &planned.action;
        let c = self.replica(action.replica())?;
        let key = action.key();
        let held: Option<String> = self
            .store
            .call(move |c| {
                use rusqlite::OptionalExtension;
                c.query_row(
                    "SELECT owner FROM locks WHERE target = ?1 AND expires_at > ?2",
                    rusqlite::params![key, now],
                    |r| r.get(0),
                )
                .optional()
            })
            .await?;
        let mut s = probe(
            c,
            planned,
            &self.cluster.keeper,
            self.cluster.deadline,
            &self.cluster.budget,
        )
        .await;
        s.cooldown_until = self.store.cooldown_until(&action.key(), now).await?;
        s.locked_by = held.map(|o| o.split('@').next().unwrap_or(&o).to_string());
        Ok(s)
    }
}

impl Snapshot {
    /// Nothing probed yet (a refusal that needs no probe).
    pub fn unprobed() -> Snapshot {
        Snapshot {
            replica: Err("not probed".into()),
            running: vec![],
            disk: None,
            missing_databases: vec![],
            name_taken: false,
            table: None,
            keeper: Err("not probed".into()),
            locked_by: None,
            cooldown_until: None,
        }
    }
}

const RUNNING_SQL: &str =
    "SELECT name FROM system.backups WHERE status IN ('CREATING_BACKUP', 'RESTORING')";
const DISK_SQL: &str = "SELECT name FROM system.disks WHERE name = ?";
const DATABASES_SQL: &str = "SELECT name FROM system.databases";
/// A backup with this id, or whose destination has this name, already exists on the replica.
const TAKEN_SQL: &str =
    "SELECT name FROM system.backups WHERE id = ? OR position(name, ?) > 0 LIMIT 1";
const ZK_SQL: &str = "SELECT name FROM system.zookeeper WHERE path = '/' LIMIT 1";

/// The probes behind a [`Snapshot`], all on the target replica with the read-only account, plus
/// Keeper's own `srvr` on its nodes for a restart.
async fn probe(
    c: &ReplicaClient,
    planned: &Planned,
    keeper: &[String],
    deadline: Duration,
    budget: &Budget,
) -> Snapshot {
    let action = &planned.action;
    let mut s = Snapshot::unprobed();
    let running = c.fetch::<NameRow>(RUNNING_SQL, &[]).await;
    s.replica = match &running {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    s.running = running
        .map(|rows| rows.into_iter().map(|r| r.name).collect())
        .unwrap_or_default();
    if s.replica.is_err() {
        return s;
    }
    match action {
        Action::BackupReplica {
            databases, disk, ..
        } => {
            let disk_bind = [disk.as_str()];
            let (d, dbs) = tokio::join!(
                c.fetch::<NameRow>(DISK_SQL, &disk_bind),
                c.fetch::<NameRow>(DATABASES_SQL, &[])
            );
            s.disk = d.ok().map(|rows| !rows.is_empty());
            match dbs {
                Ok(have) => {
                    s.missing_databases = databases
                        .iter()
                        .filter(|d| !have.iter().any(|h| &h.name == *d))
                        .cloned()
                        .collect();
                }
                // Unknown is not "missing": the replica did not answer this probe.
                Err(e) => s.replica = Err(format!("its databases are unknown: {e}")),
            }
            if let Some(id) = &planned.backup_id {
                let bind = [id.as_str(), id.as_str()];
                s.name_taken = c
                    .fetch::<NameRow>(TAKEN_SQL, &bind)
                    .await
                    .map(|rows| !rows.is_empty())
                    // Not known to be new: refuse rather than risk a 598 mid-incident.
                    .unwrap_or(true);
            }
        }
        Action::RestartReplica {
            database, table, ..
        } => {
            s.table = restart_replica::look(c, database, table)
                .await
                .ok()
                .flatten()
                .map(|r| r.state());
            s.keeper = keeper_answers(c, keeper, deadline, budget).await;
        }
    }
    s
}

/// Keeper answers: a majority of the configured nodes serve ([`node_serves`]); with no nodes
/// configured, the replica's own `system.zookeeper` answers.
async fn keeper_answers(
    c: &ReplicaClient,
    nodes: &[String],
    deadline: Duration,
    budget: &Budget,
) -> Result<(), String> {
    if nodes.is_empty() {
        return match c.fetch::<NameRow>(ZK_SQL, &[]).await {
            Ok(_) => Ok(()),
            Err(ProbeError::Server { code: 60, .. }) => {
                Err("no Keeper is configured on that server".into())
            }
            Err(e) => Err(e.to_string()),
        };
    }
    let answers =
        futures_util::future::join_all(nodes.iter().map(|n| node_serves(n, deadline, budget)))
            .await;
    let ok = answers.iter().filter(|a| a.is_ok()).count();
    if ok * 2 > nodes.len() {
        Ok(())
    } else {
        let first = answers
            .iter()
            .find_map(|a| a.as_ref().err().cloned())
            .unwrap_or_else(|| "no quorum".into());
        Err(format!("{ok} of {} nodes serve: {first}", nodes.len()))
    }
}

/// One node serves: `srvr` names a serving state (ZooKeeper 3.5+ allows only `srvr` by default),
/// or, where `srvr` is not allowed, `ruok` answers `imok`.
async fn node_serves(node: &str, deadline: Duration, budget: &Budget) -> Result<(), String> {
    let srvr = crate::keeper::four_letter(node, "srvr", deadline, budget).await;
    match srvr_serves(node, &srvr) {
        Some(judged) => judged,
        None => match crate::keeper::four_letter(node, "ruok", deadline, budget).await {
            Ok(t) if t.trim() == "imok" => Ok(()),
            Ok(_) => Err(format!("{node}: neither srvr nor ruok is allowed")),
            Err(e) => Err(format!("{node}: {e}")),
        },
    }
}

/// What `srvr` says of a node's serving; `None` when it is not allowed (ask `ruok`). Read-only
/// means no quorum: a restart would re-initialise against a Keeper that refuses writes.
fn srvr_serves(node: &str, srvr: &Result<String, ProbeError>) -> Option<Result<(), String>> {
    use crate::checks::keeper::{interpret, parse_srvr, Answer};
    use crate::domain::text::clip;
    Some(match interpret(srvr) {
        Answer::Text(t) => match parse_srvr(t).get("zk_server_state").map(String::as_str) {
            Some("leader" | "follower" | "standalone" | "observer") => Ok(()),
            // The server's words, in a refusal the user reads: clipped like a finding's.
            Some(state) => Err(format!("{node} is {}", clip(state, 40))),
            None => Err(format!("{node}: srvr told no state")),
        },
        Answer::NotServing => Err(format!("{node} is not serving requests")),
        Answer::Failed(e) => Err(format!("{node}: {e}")),
        Answer::NotAllowed | Answer::Silent => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restart's Keeper check reads the state from `srvr`, and asks `ruok` only where `srvr`
    /// is not allowed.
    #[test]
    fn srvr_tells_whether_a_node_serves() {
        let srvr = |mode: &str| {
            Ok(format!(
                "Zookeeper version: 3.8.4\nMode: {mode}\nNode count: 5\n"
            ))
        };
        let n = "zk1:2181";
        assert_eq!(srvr_serves(n, &srvr("follower")), Some(Ok(())));
        assert_eq!(srvr_serves(n, &srvr("observer")), Some(Ok(())));
        assert_eq!(
            srvr_serves(n, &srvr("read-only")),
            Some(Err("zk1:2181 is read-only".into()))
        );
        let refused = Ok("srvr is not executed because it is not in the whitelist.".to_string());
        assert_eq!(srvr_serves(n, &refused), None, "ask ruok");
        assert_eq!(
            srvr_serves(n, &Ok(String::new())),
            None,
            "ClickHouse Keeper: ask ruok"
        );
        let not_serving =
            Ok("This ZooKeeper instance is not currently serving requests\n".to_string());
        assert_eq!(
            srvr_serves(n, &not_serving),
            Some(Err("zk1:2181 is not serving requests".into()))
        );
        assert_eq!(
            srvr_serves(n, &Err(ProbeError::Refused)),
            Some(Err("zk1:2181: connection refused".into()))
        );
        assert!(matches!(srvr_serves(n, &Ok("\u{1}".into())), Some(Err(_))));
        let Some(Err(long)) = srvr_serves(n, &srvr(&"x".repeat(100_000))) else {
            panic!("a state nobody knows is no serving state");
        };
        assert!(
            long.len() < 100,
            "a hostile state is clipped: {} bytes",
            long.len()
        );
    }
}
