//! The cost of recording on the hot path, enabled and disabled.
//!
//! The target is at most 20 ns per counter increment. The raw `AtomicU64`
//! increment is measured in the same run as the reference.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use mantle_stats::{Record, StatsRegistry};

fn counters(c: &mut Criterion) {
    let stats = StatsRegistry::new();
    let on = stats.namespace("On");
    let off = stats.namespace("Off");
    off.set_enabled(false);

    let mut g = c.benchmark_group("counter");
    let raw = AtomicU64::new(0);
    g.bench_function("raw AtomicU64 fetch_add (reference)", |b| {
        b.iter(|| black_box(&raw).fetch_add(1, Ordering::Relaxed));
    });
    let counter = on.counter("Hits", "");
    g.bench_function("inc enabled", |b| b.iter(|| black_box(&counter).inc()));
    let counter = off.counter("Hits", "");
    g.bench_function("inc disabled", |b| b.iter(|| black_box(&counter).inc()));
    g.finish();

    let mut g = c.benchmark_group("gauge");
    let gauge = on.gauge("Depth", "");
    g.bench_function("set enabled", |b| {
        let mut i = 0i64;
        b.iter(|| {
            i += 1;
            black_box(&gauge).set(i);
        });
    });
    let fgauge = on.float_gauge("Load", "");
    g.bench_function("float set enabled", |b| {
        b.iter(|| black_box(&fgauge).set(black_box(0.5)));
    });
    g.bench_function("float add enabled", |b| {
        b.iter(|| black_box(&fgauge).add(black_box(0.5)));
    });
    g.finish();
}

fn collections(c: &mut Criterion) {
    let stats = StatsRegistry::new();
    let on = stats.namespace("On");
    let off = stats.namespace("Off");
    off.set_enabled(false);

    let mut g = c.benchmark_group("collection");
    let log = on.collection("Recent", "", 100);
    g.bench_function("push enabled (record built per call)", |b| {
        b.iter(|| log.push(Record::new().with("Path", "/index").with("Seconds", 0.01)));
    });
    let log = off.collection("Recent", "", 100);
    g.bench_function("push disabled (record built per call)", |b| {
        b.iter(|| log.push(Record::new().with("Path", "/index").with("Seconds", 0.01)));
    });
    g.bench_function("push disabled (checked before building)", |b| {
        b.iter(|| {
            if log.is_enabled() {
                log.push(Record::new().with("Path", "/index").with("Seconds", 0.01));
            }
        });
    });
    let slowest = on.collection("Slowest", "", 10);
    g.bench_function("keep_largest enabled, full of 10", |b| {
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            let secs = f64::from(i % 1000) / 1000.0;
            slowest.keep_largest(Record::new().with("Seconds", secs), "Seconds")
        });
    });
    g.finish();

    let mut g = c.benchmark_group("report");
    for n in 0..20 {
        on.counter(&format!("Counter {n}"), "A counter.").add(n);
    }
    on.function("Rate", "", |v| v.get_f64("Counter 3"));
    g.bench_function("snapshot + prometheus, ~25 values", |b| {
        b.iter(|| stats.snapshot().to_prometheus());
    });
    g.finish();
}

criterion_group!(benches, counters, collections);
criterion_main!(benches);
