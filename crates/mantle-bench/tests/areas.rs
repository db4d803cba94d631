//! Smoke tests of the messaging, site, sharing and backup benches at a tiny size: each runs,
//! checks what it measured, and reports positive rates. Not timing tests:
//! the figures of a debug build at this size mean nothing.

use mantle_bench::{
    BACKUP_BENCHES, BackupBenchOptions, BenchError, BenchRecord, MESSAGING_BENCHES,
    MessagingBenchOptions, SHARING_BENCHES, SITE_BENCHES, SharingBenchOptions, SiteBenchOptions,
    run_backup, run_messaging, run_sharing, run_site,
};

fn assert_sane(r: &BenchRecord) {
    assert!(r.ops >= 1, "{r:?}");
    for rate in [r.ours_ops_per_s, r.reference_ops_per_s, r.ratio] {
        assert!(rate > 0.0 && rate.is_finite(), "{r:?}");
    }
    let line = serde_json::to_string(r).unwrap();
    assert!(!line.contains('\n'), "one JSON line: {line}");
    let back: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(back["bench"], r.bench.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_messaging_bench_reports_positive_rates() {
    let dir = tempfile::tempdir().unwrap();
    let opts = MessagingBenchOptions {
        scale: 0.002,
        dir: Some(dir.path().to_path_buf()),
        only: None,
    };
    let mut records: Vec<BenchRecord> = Vec::new();
    run_messaging(&opts, &mut |r| records.push(r))
        .await
        .unwrap();

    let names: Vec<&str> = records.iter().map(|r| r.bench.as_str()).collect();
    assert_eq!(names, MESSAGING_BENCHES, "one record per bench, in order");
    for r in &records {
        assert_sane(r);
        assert!(r.p50_ms.is_some() && r.p99_ms.is_some(), "{r:?}");
        assert!(r.p50_ms <= r.p99_ms, "{r:?}");
        assert_eq!(r.senders, Some(8));
        assert_eq!(r.recipients, Some(8));
    }
    let find = |name: &str| records.iter().find(|r| r.bench == name).unwrap();
    let one_way = find("messages_one_way");
    assert_eq!(one_way.ops, 200);
    assert_eq!(one_way.per_tx, Some(100));
    assert!(one_way.reference_batched_ops_per_s.is_some_and(|r| r > 0.0));
    assert_eq!(find("messages_one_way_single").per_tx, Some(1));
    assert_eq!(
        find("messages_round_trip").reference_commits_per_op,
        Some(3)
    );
    // Every bench removed its files.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");

    let err = run_messaging(
        &MessagingBenchOptions {
            only: Some("no_such_bench".into()),
            ..opts
        },
        &mut |_| panic!("nothing runs"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, BenchError::UnknownBench(ref n) if n == "no_such_bench"),
        "{err}"
    );
}

fn wrk_installed() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_bench_reports_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SiteBenchOptions {
        scale: 0.01,
        dir: Some(dir.path().to_path_buf()),
        only: None,
    };
    let mut records: Vec<BenchRecord> = Vec::new();
    let result = run_site(&opts, &mut |r| records.push(r)).await;
    if !wrk_installed() {
        eprintln!("note: wrk is not installed (apt-get install wrk); the site bench is skipped");
        assert!(
            matches!(result, Err(BenchError::MissingTool { tool: "wrk", .. })),
            "without wrk the bench says so: {result:?}"
        );
        return;
    }
    result.unwrap();
    let names: Vec<&str> = records.iter().map(|r| r.bench.as_str()).collect();
    assert_eq!(names, SITE_BENCHES);
    let r = &records[0];
    assert_sane(r);
    assert!(r.p99_ms.is_some() && r.reference_p99_ms.is_some(), "{r:?}");
    assert_eq!(r.concurrency, Some(64));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sharing_bench_reports_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SharingBenchOptions {
        scale: 0.0005,
        dir: Some(dir.path().to_path_buf()),
        only: None,
    };
    let mut records: Vec<BenchRecord> = Vec::new();
    run_sharing(&opts, &mut |r| records.push(r)).await.unwrap();
    let names: Vec<&str> = records.iter().map(|r| r.bench.as_str()).collect();
    assert_eq!(names, SHARING_BENCHES);
    let r = &records[0];
    assert_sane(r);
    assert_eq!(r.ops, 200);
    assert!(r.p99_ms.is_some() && r.reference_p99_ms.is_some(), "{r:?}");
    assert!(r.p50_ms <= r.p99_ms, "{r:?}");
    assert_eq!(r.concurrency, Some(16));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backup_bench_reports_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BackupBenchOptions {
        scale: 0.002,
        dir: Some(dir.path().to_path_buf()),
        only: None,
    };
    let mut records: Vec<BenchRecord> = Vec::new();
    run_backup(&opts, &mut |r| records.push(r)).await.unwrap();
    let names: Vec<&str> = records.iter().map(|r| r.bench.as_str()).collect();
    assert_eq!(names, BACKUP_BENCHES, "one record per bench, in order");
    for r in &records {
        assert_sane(r);
        assert!(r.p50_ms <= r.p99_ms, "{r:?}");
        assert!(r.flush_ms.is_some(), "{r:?}");
        assert!(r.backup_bytes.is_some_and(|b| b > 0), "{r:?}");
    }
    let find = |name: &str| records.iter().find(|r| r.bench == name).unwrap();
    for name in ["small_tx", "small_tx_sync"] {
        let r = find(name);
        assert!(r.ops >= 8, "{r:?}");
        assert!(r.lag_p99_ms.is_some() && r.cpu_us_per_op.is_some(), "{r:?}");
    }
    assert_eq!(find("messages_one_way").ops, 800);
    for name in ["small_tx", "messages_one_way", "small_tx_sync"] {
        let note = find(name).note.clone().unwrap_or_default();
        assert!(
            note.contains("each pair of rounds' ratio"),
            "{name}: {note}"
        );
    }
    let restore = find("restore");
    assert!(restore.bytes.is_some_and(|b| b > 0), "{restore:?}");
    assert_eq!(restore.op, "MB");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_bench_reports_both_sides() {
    if mantle_cluster::harness::etcd_binary().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let opts = mantle_bench::ClusterBenchOptions {
        scale: 0.01,
        dir: Some(dir.path().to_path_buf()),
        only: None,
    };
    let mut records: Vec<BenchRecord> = Vec::new();
    mantle_bench::run_cluster(&opts, &mut |r| records.push(r))
        .await
        .unwrap();
    let names: Vec<&str> = records.iter().map(|r| r.bench.as_str()).collect();
    assert_eq!(
        names,
        mantle_bench::CLUSTER_BENCHES,
        "one record per bench, in order"
    );
    for r in &records {
        assert_sane(r);
    }
    assert_eq!(records[0].ops, 200);
    assert_eq!(records[2].op, "MB");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}
