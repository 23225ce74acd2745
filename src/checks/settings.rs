//! Sync settings: effective `backup_restore_*` settings per replica, plus what a per-replica backup
//! needs (the user databases, the backup disk). The SQL, the probe (`run`), the pure `evaluate`,
//! and [`Cluster::user_databases`] for commands that offer a backup.

use std::collections::BTreeMap;

use ::clickhouse::Row;
use serde::Deserialize;

use super::Cluster;
use crate::clickhouse::batch::Part;
use crate::domain::text::{clip, SUMMARY_MAX};
use crate::domain::{Cause, CheckKind, Finding, ProbeError, Severity, Subject};

/// The settings that govern ON CLUSTER backup/restore sync, with their current defaults.
pub const SYNC_SETTINGS: [(&str, u64); 5] = [
    ("backup_restore_keeper_max_retries", 1000),
    ("backup_restore_keeper_retry_initial_backoff_ms", 100),
    ("backup_restore_keeper_retry_max_backoff_ms", 5000),
    ("backup_restore_finish_timeout_after_error_sec", 180),
    (
        "backup_restore_failure_after_host_disconnected_for_seconds",
        3600,
    ),
];

pub const SETTINGS_SQL: &str = "SELECT name, value FROM system.settings WHERE name IN (\
     'backup_restore_keeper_max_retries', 'backup_restore_keeper_retry_initial_backoff_ms', \
     'backup_restore_keeper_retry_max_backoff_ms', 'backup_restore_finish_timeout_after_error_sec', \
     'backup_restore_failure_after_host_disconnected_for_seconds') ORDER BY name";

/// Databases holding at least one table, system ones excluded: what a per-replica backup covers.
pub const DATABASES_SQL: &str = "SELECT database AS name FROM system.tables \
     WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') AND NOT is_temporary \
     GROUP BY database ORDER BY database LIMIT 500";

pub const DISK_SQL: &str = "SELECT name FROM system.disks WHERE name = ?";

/// The settings, the backup disk and the user databases in one round trip (gentle on a sick
/// cluster): `(name, value)` rows, the disk as `chops:disk`, each database as `chops:database`.
/// (No aliases in the later parts: ClickHouse resolves an alias in WHERE before the column.)
pub const COMBINED_SQL: &str = "SELECT name, value FROM system.settings WHERE name IN (\
     'backup_restore_keeper_max_retries', 'backup_restore_keeper_retry_initial_backoff_ms', \
     'backup_restore_keeper_retry_max_backoff_ms', 'backup_restore_finish_timeout_after_error_sec', \
     'backup_restore_failure_after_host_disconnected_for_seconds') \
     UNION ALL SELECT 'chops:disk', d.name FROM system.disks AS d WHERE d.name = ? \
     UNION ALL SELECT 'chops:database', database FROM (SELECT database FROM system.tables \
     WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') AND NOT is_temporary \
     GROUP BY database ORDER BY database LIMIT 500)";

impl SettingsProbe {
    /// Split the combined answer into the three parts `evaluate` reads (an error fails all three).
    pub fn from_combined(
        replica: &str,
        rows: Result<Vec<SettingRow>, ProbeError>,
    ) -> SettingsProbe {
        match rows {
            Err(e) => SettingsProbe {
                replica: replica.to_string(),
                settings: Err(e.clone()),
                databases: Err(e.clone()),
                disk: Err(e),
            },
            Ok(rows) => {
                let (mut settings, mut databases, mut disk) = (Vec::new(), Vec::new(), Vec::new());
                for r in rows {
                    match r.name.as_str() {
                        "chops:disk" => disk.push(NameRow { name: r.value }),
                        "chops:database" => databases.push(NameRow { name: r.value }),
                        _ => settings.push(r),
                    }
                }
                databases.sort_by(|a, b| a.name.cmp(&b.name));
                SettingsProbe {
                    replica: replica.to_string(),
                    settings: Ok(settings),
                    databases: Ok(databases),
                    disk: Ok(disk),
                }
            }
        }
    }
}

/// Fewer Keeper retries than this cannot ride out a Keeper hiccup (the pre-24.10 default was 20).
pub const MIN_RETRIES: u64 = 100;

#[derive(Debug, Clone, Row, Deserialize)]
pub struct SettingRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub name: String,
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub value: String,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct NameRow {
    #[serde(deserialize_with = "crate::clickhouse::lossy")]
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct SettingsProbe {
    pub replica: String,
    pub settings: Result<Vec<SettingRow>, ProbeError>,
    pub databases: Result<Vec<NameRow>, ProbeError>,
    pub disk: Result<Vec<NameRow>, ProbeError>,
}

/// What the diagnosis needs besides the findings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsFacts {
    /// Effective values of the first replica that answered.
    pub settings: BTreeMap<String, u64>,
    /// Each answering replica's user databases.
    pub databases: BTreeMap<String, Vec<String>>,
}

fn values(rows: &[SettingRow]) -> BTreeMap<String, u64> {
    rows.iter()
        .filter_map(|r| r.value.parse::<u64>().ok().map(|v| (r.name.clone(), v)))
        .collect()
}

/// Judge every replica's settings, disk and databases; the facts the diagnosis needs besides.
pub fn evaluate(probes: &[SettingsProbe], disk: &str) -> (Vec<Finding>, SettingsFacts) {
    let mut out = Vec::new();
    let mut facts = SettingsFacts::default();
    let mut seen: Vec<(String, BTreeMap<String, u64>)> = Vec::new();
    for p in probes {
        let r = &p.replica;
        let rows = match &p.settings {
            Ok(rows) => rows,
            Err(e) => {
                out.push(Finding::probe_failed(CheckKind::Settings, r, e));
                continue;
            }
        };
        let v = values(rows);
        out.push(sync_settings(r, &v));
        out.extend(disk_finding(r, disk, &p.disk));
        match &p.databases {
            Ok(rows) => {
                facts
                    .databases
                    .insert(r.clone(), rows.iter().map(|n| n.name.clone()).collect());
            }
            Err(e) => out.push(Finding::new(
                CheckKind::Settings,
                Severity::Unknown,
                Subject::replica(r),
                clip(
                    &format!("{r}: its databases are unknown (system.databases: {e}): no per-replica backup can be suggested"),
                    SUMMARY_MAX,
                ),
            )),
        }
        if facts.settings.is_empty() {
            facts.settings = v.clone();
        }
        seen.push((r.clone(), v));
    }
    out.extend(differences(&seen));
    (out, facts)
}

/// One replica's effective sync settings; too few Keeper retries is a warning.
fn sync_settings(r: &str, v: &BTreeMap<String, u64>) -> Finding {
    let get = |k: &str| v.get(k).copied();
    let mut f = Finding::new(
        CheckKind::Settings,
        Severity::Ok,
        Subject::replica(r),
        format!(
            "{r}: keeper retries {}, backoff {}–{} ms, finish timeout after error {} s, host disconnect limit {} s",
            show(get("backup_restore_keeper_max_retries")),
            show(get("backup_restore_keeper_retry_initial_backoff_ms")),
            show(get("backup_restore_keeper_retry_max_backoff_ms")),
            show(get("backup_restore_finish_timeout_after_error_sec")),
            show(get("backup_restore_failure_after_host_disconnected_for_seconds")),
        ),
    );
    if let Some(n) = get("backup_restore_keeper_max_retries").filter(|n| *n < MIN_RETRIES) {
        f.severity = Severity::Warn;
        f.summary =
            format!("{r}: only {n} Keeper retries for backup/restore (default 1000 since 24.10)");
        f = f.cause(Cause::Timeout);
    }
    for (name, default) in SYNC_SETTINGS {
        if let Some(val) = get(name).filter(|val| *val != default) {
            f = f.evidence(format!("{name} = {val} (default {default})"));
        }
    }
    f
}

/// The backup disk missing on the replica (or unknown there); none when it exists.
fn disk_finding(r: &str, disk: &str, rows: &Result<Vec<NameRow>, ProbeError>) -> Option<Finding> {
    match rows {
        Ok(rows) if rows.is_empty() => Some(Finding::new(
            CheckKind::Settings,
            Severity::Warn,
            Subject::replica(r),
            format!("{r}: no disk '{disk}': BACKUP … TO Disk('{disk}', …) would fail there"),
        )),
        Ok(_) => None,
        Err(e) => Some(Finding::new(
            CheckKind::Settings,
            Severity::Unknown,
            Subject::replica(r),
            format!("{r}: system.disks: {e}"),
        )),
    }
}

/// Replicas whose sync settings differ from the first answering one's.
fn differences(seen: &[(String, BTreeMap<String, u64>)]) -> Vec<Finding> {
    let Some((first_r, first)) = seen.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (r, v) in &seen[1..] {
        let differing: Vec<String> = SYNC_SETTINGS
            .iter()
            .filter(|(name, _)| first.get(*name) != v.get(*name))
            .map(|(name, _)| {
                format!(
                    "{name}: {first_r}={} {r}={}",
                    show(first.get(*name).copied()),
                    show(v.get(*name).copied())
                )
            })
            .collect();
        if differing.is_empty() {
            continue;
        }
        let f = Finding::new(
            CheckKind::Settings,
            Severity::Warn,
            Subject::replica(r),
            format!("{r}: sync settings differ from {first_r}"),
        );
        out.push(differing.into_iter().fold(f, |f, d| f.evidence(d)));
    }
    out
}

/// `system.tables` may wait on a database engine's remote, `system.disks` on a hung disk: the
/// combined query is a risky part of the round's batch.
pub(super) fn batched(cl: &Cluster) -> Vec<Part> {
    vec![Part::risky(COMBINED_SQL, &[&cl.backup_disk])]
}

/// The probe: settings, backup disk and user databases in one query on every replica; judged.
pub(super) async fn run(cl: &Cluster) -> (Vec<Finding>, SettingsFacts) {
    let disk = cl.backup_disk.clone();
    let probes = cl
        .per_replica(|c| {
            let disk = disk.clone();
            async move {
                let binds = [disk.as_str()];
                let rows = c.fetch(COMBINED_SQL, &binds).await;
                SettingsProbe::from_combined(&c.name, rows)
            }
        })
        .await;
    evaluate(&probes, &cl.backup_disk)
}

/// Why a replica's user databases could not be listed (each caller words it for its user).
#[derive(Debug)]
pub enum DatabasesError {
    NoReplica,
    Probe(ProbeError),
    Empty,
}

impl Cluster {
    /// The user databases `replica` has: what a per-replica backup covers by default.
    pub async fn user_databases(&self, replica: &str) -> Result<Vec<String>, DatabasesError> {
        let c = self
            .replicas
            .iter()
            .find(|r| r.name == replica)
            .ok_or(DatabasesError::NoReplica)?;
        let rows: Vec<NameRow> = c
            .fetch(DATABASES_SQL, &[])
            .await
            .map_err(DatabasesError::Probe)?;
        if rows.is_empty() {
            return Err(DatabasesError::Empty);
        }
        Ok(rows.into_iter().map(|r| r.name).collect())
    }
}

fn show(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(retries: &str) -> Vec<SettingRow> {
        let mut r: Vec<SettingRow> = SYNC_SETTINGS
            .iter()
            .map(|(n, d)| SettingRow {
                name: n.to_string(),
                value: d.to_string(),
            })
            .collect();
        r[0].value = retries.into();
        r
    }

    fn probe(r: &str, retries: &str, dbs: &[&str]) -> SettingsProbe {
        SettingsProbe {
            replica: r.into(),
            settings: Ok(rows(retries)),
            databases: Ok(dbs
                .iter()
                .map(|d| NameRow {
                    name: d.to_string(),
                })
                .collect()),
            disk: Ok(vec![NameRow {
                name: "backups".into(),
            }]),
        }
    }

    #[test]
    fn settings_table() {
        let cases: Vec<(SettingsProbe, Severity, &str)> = vec![
            (probe("r1", "1000", &[]), Severity::Ok, "r1: keeper retries 1000, backoff 100–5000 ms, finish timeout after error 180 s, host disconnect limit 3600 s"),
            (probe("r1", "20", &[]), Severity::Warn, "r1: only 20 Keeper retries for backup/restore (default 1000 since 24.10)"),
            (SettingsProbe { disk: Ok(vec![]), ..probe("r1", "1000", &[]) }, Severity::Ok, "r1: keeper retries 1000"),
        ];
        for (p, sev, text) in cases {
            let (f, _) = evaluate(&[p], "backups");
            assert_eq!(f[0].severity, sev, "{text}");
            assert!(f[0].summary.starts_with(text), "{}", f[0].summary);
        }
        let (f, _) = evaluate(
            &[SettingsProbe {
                disk: Ok(vec![]),
                ..probe("r1", "1000", &[])
            }],
            "backups",
        );
        assert_eq!(
            f[1].summary,
            "r1: no disk 'backups': BACKUP … TO Disk('backups', …) would fail there"
        );
    }

    #[test]
    fn facts_and_differences() {
        let (f, facts) = evaluate(
            &[
                probe("r1", "1000", &["a", "b"]),
                probe("r2", "20", &["b", "c"]),
            ],
            "backups",
        );
        assert_eq!(facts.databases["r1"], vec!["a", "b"]);
        assert_eq!(facts.databases["r2"], vec!["b", "c"]);
        assert_eq!(
            facts.settings.get("backup_restore_keeper_max_retries"),
            Some(&1000)
        );
        let diff = f
            .iter()
            .find(|f| f.summary == "r2: sync settings differ from r1")
            .expect("difference");
        assert_eq!(
            diff.evidence,
            vec!["backup_restore_keeper_max_retries: r1=1000 r2=20"]
        );
    }
}
