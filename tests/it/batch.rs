//! A round's batch (`clickhouse::batch`) against the engine: every batched query reads the same
//! rows through the batch as on its own, and a part the replica refuses is asked on its own (once
//! in the batch, never again). How few requests a whole card sends: `faults::a_full_check_sends…`.

use std::sync::Arc;
use std::time::Duration;

use chops::checks::{backups, blockers, replicas, settings};
use chops::clickhouse::batch::{Part, Plan};
use chops::clickhouse::{Budget, ReplicaClient};
use chops::config::Secret;
use chops::domain::ProbeError;
use clickhouse::{RowOwned, RowRead};

use crate::common::*;

fn client(url: &str) -> ReplicaClient {
    let budget = Budget::default();
    ReplicaClient::new(
        "r1",
        url,
        None,
        "default",
        &Secret::default(),
        Duration::from_secs(10),
        &budget,
    )
}

/// A replica with something in every batched table: a database, a backup that failed.
fn furnished() -> LocalCluster {
    let c = LocalCluster::start(1).expect("start a local cluster");
    let url = &c.urls[0];
    must(url, "CREATE DATABASE shop");
    must(
        url,
        "CREATE TABLE shop.t (x UInt64) ENGINE = MergeTree ORDER BY x",
    );
    must(url, "INSERT INTO shop.t SELECT number FROM numbers(10)");
    let err = sql(url, "BACKUP TABLE shop.t TO Disk('elsewhere', 'b1')").unwrap_err();
    assert!(err.contains("Code: 36."), "{err}");
    c
}

/// The queries replica 1 received after the first `before`, and which of them were batches.
fn sent_since(c: &LocalCluster, before: usize) -> (Vec<String>, Vec<String>) {
    let sent: Vec<String> = queries(c, 1)[before..]
        .iter()
        .map(|(_, q)| q.clone())
        .collect();
    let batches = sent
        .iter()
        .filter(|q| q.contains("formatRowNoNewline"))
        .cloned()
        .collect();
    (sent, batches)
}

/// The rows of `sql` asked on its own and through the batch.
async fn both<T: RowOwned + RowRead>(
    alone: &ReplicaClient,
    batched: &ReplicaClient,
    sql: &str,
    binds: &[&str],
) -> (Vec<T>, Vec<T>) {
    let a = alone.fetch(sql, binds).await.unwrap();
    (a, batched.fetch(sql, binds).await.unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn every_batched_query_reads_the_same_rows_as_on_its_own() {
    let c = furnished();
    let plan = Arc::new(Plan::new([
        Part::new(replicas::VERSION_SQL, &[]),
        Part::new(replicas::CLUSTER_SQL, &["local"]),
        Part::new(settings::COMBINED_SQL, &["backups"]),
        Part::new(blockers::ACTIVITY_SQL, &[]),
        Part::new(backups::RECENT_SQL, &[]),
    ]));
    let alone = client(&c.urls[0]);
    let batched = alone.next_round().with_plan(&plan);

    let (a, b) = both::<replicas::VersionRow>(&alone, &batched, replicas::VERSION_SQL, &[]).await;
    assert_eq!((a.len(), &a[0].version), (b.len(), &b[0].version));

    let (a, b) =
        both::<replicas::ClusterRow>(&alone, &batched, replicas::CLUSTER_SQL, &["local"]).await;
    assert!(!a.is_empty());
    assert_eq!(format!("{a:?}"), format!("{b:?}"));

    let (a, b) =
        both::<settings::SettingRow>(&alone, &batched, settings::COMBINED_SQL, &["backups"]).await;
    // A UNION ALL of its own, without an order: compared as sets.
    let sorted = |rows: &[settings::SettingRow]| {
        let mut v: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
        v.sort();
        v
    };
    assert!(format!("{a:?}").contains("shop"), "{a:?}");
    assert_eq!(sorted(&a), sorted(&b));

    let (a, b) = both::<blockers::BlockerRow>(&alone, &batched, blockers::ACTIVITY_SQL, &[]).await;
    assert_eq!(a.len(), b.len());

    let (a, b) = both::<backups::BackupRow>(&alone, &batched, backups::RECENT_SQL, &[]).await;
    let key = |r: &backups::BackupRow| {
        (
            r.id.clone(),
            r.name.clone(),
            r.status.clone(),
            r.error.clone(),
        )
    };
    assert!(!a.is_empty() && a[0].error.contains("Code: 36"), "{a:?}");
    assert_eq!(
        a.iter().map(key).collect::<Vec<_>>(),
        b.iter().map(key).collect::<Vec<_>>()
    );

    // All five came in one request to the replica.
    let batches = queries(&c, 1)
        .into_iter()
        .filter(|(_, q)| q.contains("formatRowNoNewline"))
        .count();
    assert_eq!(batches, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_part_goes_alone_and_stays_out_of_later_batches() {
    let c = furnished();
    // The engine has no distributed DDL: that part fails, alone too (code 139).
    let plan = Arc::new(Plan::new([
        Part::new(replicas::VERSION_SQL, &[]),
        Part::new(blockers::DDL_QUEUE_SQL, &[]),
        Part::new(replicas::CLUSTER_SQL, &["local"]),
    ]));
    let base = client(&c.urls[0]);
    let before = queries(&c, 1).len();
    for round in 0..2 {
        let r = base.next_round().with_plan(&plan);
        let v = r
            .fetch::<replicas::VersionRow>(replicas::VERSION_SQL, &[])
            .await;
        let d = r
            .fetch::<blockers::DdlRow>(blockers::DDL_QUEUE_SQL, &[])
            .await;
        let k = r
            .fetch::<replicas::ClusterRow>(replicas::CLUSTER_SQL, &["local"])
            .await;
        assert!(v.is_ok() && k.is_ok(), "round {round}: {v:?} {k:?}");
        assert!(
            matches!(d, Err(ProbeError::Server { code: 139, .. })),
            "{d:?}"
        );
    }
    let (sent, batches) = sent_since(&c, before);
    assert_eq!(batches.len(), 2, "{sent:#?}");
    assert!(batches[0].contains("system.distributed_ddl_queue"));
    assert!(
        !batches[1].contains("system.distributed_ddl_queue"),
        "{}",
        batches[1]
    );
    // Round one: the batch, then each part alone; round two: the batch and the refused part.
    assert_eq!(sent.len(), 1 + 3 + 1 + 1, "{sent:#?}");
}

/// Rows that do not fit the type asked for are never guessed at: the part is asked on its own,
/// where the crate's own check reports the mismatch, and stays out of later batches.
#[tokio::test(flavor = "current_thread")]
async fn rows_that_do_not_fit_their_type_are_asked_alone_and_reported() {
    let c = furnished();
    let plan = Arc::new(Plan::new([
        Part::new(replicas::VERSION_SQL, &[]),
        Part::new(replicas::CLUSTER_SQL, &["local"]),
        Part::new(backups::RECENT_SQL, &[]),
    ]));
    let base = client(&c.urls[0]);
    let before = queries(&c, 1).len();
    for _ in 0..2 {
        let r = base.next_round().with_plan(&plan);
        // The version query's two columns asked as a cluster row.
        let wrong = r
            .fetch::<replicas::ClusterRow>(replicas::VERSION_SQL, &[])
            .await;
        assert!(matches!(wrong, Err(ProbeError::Decode(_))), "{wrong:?}");
        let k = r
            .fetch::<replicas::ClusterRow>(replicas::CLUSTER_SQL, &["local"])
            .await;
        assert_eq!(k.unwrap().len(), 1);
    }
    let (sent, batches) = sent_since(&c, before);
    let alone = |q: &&String| q.as_str() == replicas::VERSION_SQL;
    // Round one: the batch, then the version query alone; round two: the rest batched, it alone.
    assert_eq!(sent.iter().filter(alone).count(), 2, "{sent:#?}");
    assert_eq!(batches.len(), 2, "{sent:#?}");
    assert!(!batches[1].contains("version()"), "{}", batches[1]);
}
