//! A smoke test of the live benches at a tiny size: each runs, checks
//! what it measured (every answer, every echo, every delta at every
//! observer), and reports positive rates. Not a timing test: the figures
//! of a debug build at this size mean nothing.

use mantle_bench::{BenchError, BenchRecord, LIVE_BENCHES, LiveBenchOptions, run_live};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_bench_reports_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LiveBenchOptions {
        scale: 0.02,
        dir: Some(dir.path().to_path_buf()),
        only: None,
    };
    let mut records: Vec<BenchRecord> = Vec::new();
    run_live(&opts, &mut |r| records.push(r)).await.unwrap();

    let names: Vec<&str> = records.iter().map(|r| r.bench.as_str()).collect();
    assert_eq!(names, LIVE_BENCHES, "one record per bench, in order");
    for r in &records {
        assert!(r.ops >= 1, "{r:?}");
        for rate in [r.ours_ops_per_s, r.reference_ops_per_s, r.ratio] {
            assert!(rate > 0.0 && rate.is_finite(), "{r:?}");
        }
        assert!(r.p50_ms.is_some() && r.p99_ms.is_some(), "{r:?}");
        assert!(r.reference_p50_ms.is_some() && r.reference_p99_ms.is_some());
        assert!(r.p50_ms <= r.p99_ms, "{r:?}");
        let line = serde_json::to_string(r).unwrap();
        assert!(!line.contains('\n'), "one JSON line: {line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["bench"], r.bench.as_str());
    }
    let find = |name: &str| records.iter().find(|r| r.bench == name).unwrap();
    let one = find("amp_calls_1");
    assert_eq!((one.ops, one.concurrency), (1_000, Some(1)));
    let hundred = find("amp_calls_100");
    assert_eq!((hundred.ops, hundred.concurrency), (4_000, Some(100)));
    // 20 observers × 2 changes, each delivered once.
    let observers = find("observer_latency_1000");
    assert_eq!(observers.recipients, Some(20));
    assert_eq!(observers.items, Some(2));
    assert_eq!(observers.ops, 40);
    assert_eq!(observers.op, "delivery");
    // Every bench removed its files.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_runs_the_named_live_bench() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = LiveBenchOptions {
        scale: 0.1,
        dir: Some(dir.path().to_path_buf()),
        only: Some("observer_latency_1000".into()),
    };
    let mut records = Vec::new();
    run_live(&opts, &mut |r| records.push(r)).await.unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.bench, "observer_latency_1000");
    // 100 observers × 10 changes.
    assert_eq!((r.recipients, r.items, r.ops), (Some(100), Some(10), 1_000));

    opts.only = Some("no_such_bench".into());
    let err = run_live(&opts, &mut |_| panic!("nothing runs"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BenchError::UnknownBench(ref n) if n == "no_such_bench"),
        "{err}"
    );
}
