//! Remediations as typed data: what chops may do to a cluster, and the SQL each one means.
//!
//! A card's next step carries its [`Action`]; the button, the slash command and `chops act` all
//! start from that same value, so nothing ever parses SQL or titles back. SQL is built here from
//! the exact names (`sql::ident`), one line.

use serde::{Deserialize, Serialize};

use super::sql;

/// The kinds of remediation (policy and cooldowns are per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Backup,
    Restart,
}

impl ActionKind {
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Backup => "backup",
            ActionKind::Restart => "restart",
        }
    }

    pub fn parse(s: &str) -> Option<ActionKind> {
        match s {
            "backup" => Some(ActionKind::Backup),
            "restart" => Some(ActionKind::Restart),
            _ => None,
        }
    }
}

/// One remediation on one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// `BACKUP DATABASE … TO Disk(disk, name) ASYNC` on one replica, no ON CLUSTER coordination.
    BackupReplica {
        cluster: String,
        replica: String,
        databases: Vec<String>,
        disk: String,
    },
    /// `SYSTEM RESTART REPLICA db.table` on one replica.
    RestartReplica {
        cluster: String,
        replica: String,
        database: String,
        table: String,
    },
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::BackupReplica { .. } => ActionKind::Backup,
            Action::RestartReplica { .. } => ActionKind::Restart,
        }
    }

    pub fn cluster(&self) -> &str {
        match self {
            Action::BackupReplica { cluster, .. } | Action::RestartReplica { cluster, .. } => {
                cluster
            }
        }
    }

    pub fn replica(&self) -> &str {
        match self {
            Action::BackupReplica { replica, .. } | Action::RestartReplica { replica, .. } => {
                replica
            }
        }
    }

    /// A stable text key: `backup:prod:ch-1`, `restart:prod:ch-2:shop.orders`. Also the lock and
    /// cooldown target (one backup per replica at a time; one restart per table and replica).
    pub fn key(&self) -> String {
        match self {
            Action::BackupReplica {
                cluster, replica, ..
            } => format!("backup:{cluster}:{replica}"),
            Action::RestartReplica {
                cluster,
                replica,
                database,
                table,
            } => format!("restart:{cluster}:{replica}:{database}.{table}"),
        }
    }

    /// What a button or a preview calls it.
    pub fn title(&self) -> String {
        match self {
            Action::BackupReplica { replica, .. } => format!("Back up {replica}"),
            Action::RestartReplica {
                replica,
                database,
                table,
                ..
            } => format!("Restart {database}.{table} on {replica}"),
        }
    }

    /// What running it does to the cluster, for the preview.
    pub fn effect(&self) -> String {
        match self {
            Action::BackupReplica {
                replica, disk, ..
            } => format!(
                "{replica} writes a backup of these databases to its disk '{disk}' in the background; other replicas are not involved"
            ),
            Action::RestartReplica {
                replica,
                database,
                table,
                ..
            } => format!(
                "{database}.{table} is briefly unavailable on {replica} while its Keeper state is re-initialised"
            ),
        }
    }

    /// The statement, without the settings execution adds (the card shows this one).
    /// `name` is the backup's name on the disk (unused for a restart).
    pub fn sql(&self, name: &str) -> String {
        match self {
            Action::BackupReplica {
                databases, disk, ..
            } => format!(
                "BACKUP {} TO Disk({}, {}) ASYNC",
                databases
                    .iter()
                    .map(|d| format!("DATABASE {}", sql::ident(d)))
                    .collect::<Vec<_>>()
                    .join(", "),
                sql::string(disk),
                sql::string(name)
            ),
            Action::RestartReplica {
                database, table, ..
            } => format!("SYSTEM RESTART REPLICA {}", sql::table(database, table)),
        }
    }

    /// The statement execution sends: a backup carries the audit id as its backup id, so the
    /// server refuses a second start with the same id while it runs (code 36) and `system.backups`
    /// can be followed by it.
    pub fn sql_with_id(&self, name: &str, id: &str) -> String {
        match self {
            Action::BackupReplica { .. } => {
                let base = self.sql(name);
                let head = base.strip_suffix(" ASYNC").unwrap_or(&base);
                format!("{head} SETTINGS id = {} ASYNC", sql::string(id))
            }
            Action::RestartReplica { .. } => self.sql(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup() -> Action {
        Action::BackupReplica {
            cluster: "prod".into(),
            replica: "ch-1".into(),
            databases: vec!["shop".into(), "we`ird\n".into()],
            disk: "backups".into(),
        }
    }

    fn restart() -> Action {
        Action::RestartReplica {
            cluster: "prod".into(),
            replica: "ch-2".into(),
            database: "shop".into(),
            table: "orders".into(),
        }
    }

    #[test]
    fn keys_and_sql() {
        assert_eq!(backup().key(), "backup:prod:ch-1");
        assert_eq!(restart().key(), "restart:prod:ch-2:shop.orders");
        assert_eq!(
            backup().sql("n"),
            "BACKUP DATABASE `shop`, DATABASE `we\\`ird\\n` TO Disk('backups', 'n') ASYNC"
        );
        assert_eq!(
            backup().sql_with_id("n", "a1"),
            "BACKUP DATABASE `shop`, DATABASE `we\\`ird\\n` TO Disk('backups', 'n') SETTINGS id = 'a1' ASYNC"
        );
        assert_eq!(restart().sql(""), "SYSTEM RESTART REPLICA `shop`.`orders`");
        assert_eq!(restart().sql_with_id("", "x"), restart().sql(""));
    }

    #[test]
    fn round_trips_as_json() {
        for a in [backup(), restart()] {
            let j = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&j).unwrap(), a);
        }
    }
}
