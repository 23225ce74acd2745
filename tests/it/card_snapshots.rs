//! Snapshot tests of the terminal and JSON card, built from fixed check rows (no cluster, no clock).

use std::collections::BTreeMap;
use std::time::Duration;

use chops::checks::{backups, blockers, keeper, lag, replicas, settings};
use chops::domain::diagnose::{diagnose, CheckResult, Context, ReplicaRef};
use chops::domain::thresholds::Thresholds;
use chops::domain::{Card, CheckKind, ProbeError, Scope};
use chops::render;

const NOW: u64 = 1_795_645_636; // 2026-11-25T22:27:16Z
const SRVR: &str = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.4/2\nReceived: 3\nSent: 3\nConnections: 3\nOutstanding: 0\nZxid: 0x0\nMode: standalone\nNode count: 12\n";

fn ctx() -> Context {
    Context {
        cluster: "prod".into(),
        remote_cluster: String::new(),
        replicas: ["ch-1", "ch-2", "ch-3"]
            .iter()
            .map(|n| ReplicaRef {
                name: n.to_string(),
                shard: Some(1),
            })
            .collect(),
        keeper_nodes: vec!["zk-1:2181".into()],
        databases: ["ch-1", "ch-2", "ch-3"]
            .iter()
            .map(|r| (r.to_string(), vec!["events".to_string()]))
            .collect(),
        backup_disk: "backups".into(),
        settings: BTreeMap::from([("backup_restore_keeper_max_retries".to_string(), 1000)]),
        now_unix: NOW,
        elapsed_ms: 42,
    }
}

fn version() -> Vec<replicas::VersionRow> {
    vec![replicas::VersionRow {
        version: "26.9.2.1".into(),
        uptime: 90_000,
    }]
}

fn settings_rows() -> Vec<settings::SettingRow> {
    settings::SYNC_SETTINGS
        .iter()
        .map(|(n, d)| settings::SettingRow {
            name: n.to_string(),
            value: d.to_string(),
        })
        .collect()
}

fn result(check: CheckKind, findings: Vec<chops::domain::Finding>) -> CheckResult {
    CheckResult {
        check,
        elapsed_ms: 7,
        findings,
        slowest: None,
    }
}

/// The six sections for three replicas; `down` is refused, and Keeper answers as `keeper_up` says.
fn scenario(down: Option<&str>, keeper_up: bool, backup_error: Option<&str>) -> Card {
    let names = ["ch-1", "ch-2", "ch-3"];
    let answer = |r: &str| -> Result<(), ProbeError> {
        if Some(r) == down {
            Err(ProbeError::Refused)
        } else {
            Ok(())
        }
    };
    let node = keeper::NodeAnswers {
        node: "zk-1:2181".into(),
        answers: keeper::WORDS
            .iter()
            .map(|w| {
                (
                    *w,
                    if keeper_up {
                        Ok(if *w == "srvr" {
                            SRVR.to_string()
                        } else if *w == "ruok" {
                            "imok".into()
                        } else if *w == "isro" {
                            "rw".into()
                        } else {
                            format!("{w} is not executed because it is not in the whitelist.")
                        })
                    } else {
                        Err(ProbeError::Refused)
                    },
                )
            })
            .collect(),
    };
    let views: Vec<(String, Result<Vec<keeper::ZkRow>, ProbeError>)> = names
        .iter()
        .map(|r| {
            (
                r.to_string(),
                answer(r).and(Err(ProbeError::Server {
                    code: 60,
                    name: "UNKNOWN_TABLE".into(),
                    message: "Unknown table".into(),
                })),
            )
        })
        .collect();
    let rp: Vec<replicas::ReplicaProbe> = names
        .iter()
        .map(|r| replicas::ReplicaProbe {
            replica: r.to_string(),
            // A refused replica is not pinged (nothing listens), an answering one needs no ping.
            ping: None,
            answered: Duration::from_millis(2),
            version: answer(r).map(|_| version()),
            cluster: answer(r).map(|_| vec![]).map(|_: Vec<()>| {
                vec![replicas::ClusterRow {
                    shard_num: 1,
                    replica_num: 1,
                    host_name: "ch-1".into(),
                    port: 9000,
                    is_local: 1,
                    errors_count: 0,
                }]
            }),
        })
        .collect();
    let lp: Vec<lag::LagProbe> = names
        .iter()
        .map(|r| lag::LagProbe {
            replica: r.to_string(),
            replicas: answer(r).map(|_| vec![]),
            queue: answer(r).map(|_| vec![]),
        })
        .collect();
    // The DDL queue is asked of the first replicas that answered.
    let ddl_asked: Vec<&str> = names
        .iter()
        .copied()
        .filter(|r| answer(r).is_ok())
        .take(blockers::DDL_WANTED)
        .collect();
    let bp: Vec<blockers::BlockersProbe> = names
        .iter()
        .map(|r| blockers::BlockersProbe {
            replica: r.to_string(),
            mutations: answer(r).map(|_| vec![]),
            merges: answer(r).map(|_| vec![]),
            backups: answer(r).map(|_| vec![]),
            ddl: ddl_asked.contains(r).then(|| Ok(vec![])),
        })
        .collect();
    let kp: Vec<backups::BackupsProbe> = names
        .iter()
        .map(|r| backups::BackupsProbe {
            replica: r.to_string(),
            rows: answer(r).map(|_| match (backup_error, *r) {
                (Some(e), "ch-1") => vec![backups::BackupRow {
                    id: "5f0c3c1e-0000-4000-8000-000000000001".into(),
                    name: "Disk('backups', 'nightly-2026-11-25')".into(),
                    status: "BACKUP_FAILED".into(),
                    error: e.into(),
                    age_secs: 300,
                    duration_secs: 0,
                    num_files: 0,
                    total_size: 0,
                }],
                _ => vec![],
            }),
        })
        .collect();
    let sp: Vec<settings::SettingsProbe> = names
        .iter()
        .map(|r| settings::SettingsProbe {
            replica: r.to_string(),
            settings: answer(r).map(|_| settings_rows()),
            databases: answer(r).map(|_| {
                vec![settings::NameRow {
                    name: "events".into(),
                }]
            }),
            disk: answer(r).map(|_| {
                vec![settings::NameRow {
                    name: "backups".into(),
                }]
            }),
        })
        .collect();
    let (sf, _) = settings::evaluate(&sp, "backups");
    diagnose(
        &ctx(),
        Scope::Full,
        vec![
            result(CheckKind::Keeper, keeper::evaluate(&[node], &views)),
            result(
                CheckKind::Replicas,
                replicas::evaluate(&rp, "prod", Duration::from_secs(2)),
            ),
            result(CheckKind::Lag, lag::evaluate(&lp, &Thresholds::default())),
            result(CheckKind::Blockers, blockers::evaluate(&bp)),
            result(CheckKind::Backups, backups::evaluate(&kp)),
            result(CheckKind::Settings, sf),
        ],
    )
}

fn terminal(card: &Card) -> String {
    // The version in the footer changes with every release; everything else is fixed input.
    render::terminal::render(card, false).replace(env!("CARGO_PKG_VERSION"), "X.Y.Z")
}

#[test]
fn healthy_card() {
    let card = scenario(None, true, None);
    assert_eq!(card.verdict.label(), "healthy");
    insta::assert_snapshot!("healthy_terminal", terminal(&card));
}

#[test]
fn failing_card_replica_down_after_lost_connection() {
    let card = scenario(Some("ch-2"), true, Some("Code: 655. DB::Exception: Got error from host ch%2D2:9000. Lost connection to host ch%2D2:9000. (FAILED_TO_SYNC_BACKUP_OR_RESTORE) (version 26.9.2.1)"));
    assert_eq!(card.verdict.label(), "failing");
    insta::assert_snapshot!("failing_replica_down_terminal", terminal(&card));
}

#[test]
fn failing_card_keeper_down() {
    let card = scenario(
        None,
        false,
        Some("Code: 999. Coordination::Exception: Connection loss. (KEEPER_EXCEPTION)"),
    );
    insta::assert_snapshot!("failing_keeper_down_terminal", terminal(&card));
    insta::assert_json_snapshot!("failing_keeper_down_json", card);
}
