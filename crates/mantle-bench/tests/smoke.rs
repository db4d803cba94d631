//! A correctness smoke test of the store benches at 1% size: every bench
//! runs, checks what it read back, and reports positive rates. Not a
//! timing test: the figures of a debug build at this size mean nothing.

use mantle_bench::{BenchError, BenchRecord, STORE_BENCHES, StoreBenchOptions, run_store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_bench_reports_positive_rates() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreBenchOptions {
        scale: 0.01,
        dir: Some(dir.path().to_path_buf()),
        only: None,
    };
    let mut records: Vec<BenchRecord> = Vec::new();
    run_store(&opts, &mut |r| records.push(r)).await.unwrap();

    let names: Vec<&str> = records.iter().map(|r| r.bench.as_str()).collect();
    assert_eq!(names, STORE_BENCHES, "one record per bench, in order");
    for r in &records {
        assert!(r.ops >= 1, "{r:?}");
        assert!(
            r.ours_ops_per_s > 0.0 && r.ours_ops_per_s.is_finite(),
            "{r:?}"
        );
        assert!(
            r.reference_ops_per_s > 0.0 && r.reference_ops_per_s.is_finite(),
            "{r:?}"
        );
        assert!(r.ratio > 0.0 && r.ratio.is_finite(), "{r:?}");
        let line = serde_json::to_string(r).unwrap();
        assert!(!line.contains('\n'), "one JSON line: {line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["bench"], r.bench.as_str());
    }
    let find = |name: &str| records.iter().find(|r| r.bench == name).unwrap();
    assert_eq!(find("point_query").lookups_per_read, Some(1000));
    assert_eq!(find("point_query_single").lookups_per_read, Some(1));
    let many = find("many_stores");
    assert_eq!(many.ops, 100);
    assert!(many.concurrency.is_some());
    if std::path::Path::new("/proc/self/status").exists() {
        assert!(many.peak_rss_mb.is_some_and(|mb| mb > 0.0), "{many:?}");
        assert!(
            many.reference_peak_rss_mb.is_some_and(|mb| mb > 0.0),
            "{many:?}"
        );
    }
    // Every bench removed its files.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_runs_the_named_bench() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreBenchOptions {
        scale: 0.001,
        dir: Some(dir.path().to_path_buf()),
        only: Some("point_query_single".into()),
    };
    let mut names = Vec::new();
    run_store(&opts, &mut |r| names.push(r.bench))
        .await
        .unwrap();
    assert_eq!(names, ["point_query_single"]);

    opts.only = Some("no_such_bench".into());
    let err = run_store(&opts, &mut |_| panic!("nothing runs"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BenchError::UnknownBench(ref n) if n == "no_such_bench"),
        "{err}"
    );
}
