//! The record each bench produces, and the arithmetic behind it.

use std::time::Duration;

use serde::Serialize;

/// One bench's result: our rate, the reference's rate in the same run, and
/// their ratio. Serialized as one JSON object (absent options are left out).
#[derive(Debug, Clone, Serialize)]
pub struct BenchRecord {
    /// The bench's name (one of [`STORE_BENCHES`](crate::STORE_BENCHES),
    /// [`MESSAGING_BENCHES`](crate::MESSAGING_BENCHES),
    /// [`SITE_BENCHES`](crate::SITE_BENCHES),
    /// [`LIVE_BENCHES`](crate::LIVE_BENCHES),
    /// [`HOSTILE_BENCHES`](crate::HOSTILE_BENCHES),
    /// [`SHARING_BENCHES`](crate::SHARING_BENCHES),
    /// [`BACKUP_BENCHES`](crate::BACKUP_BENCHES)).
    pub bench: String,
    /// Operations timed on each side (what "ops" counts is in `op`).
    pub ops: u64,
    /// What one operation is ("insert", "transaction", "lookup", "query",
    /// "store", "message", "request", "call", "delivery", "read"; "MB"
    /// for a restore, whose rates are MB/s).
    pub op: String,
    /// Our operations per second.
    pub ours_ops_per_s: f64,
    /// The reference's operations per second.
    pub reference_ops_per_s: f64,
    /// `ours_ops_per_s / reference_ops_per_s`: 1.0 is as fast as raw SQLite.
    pub ratio: f64,
    /// Our wall-clock time, in seconds.
    pub ours_secs: f64,
    /// The reference's wall-clock time, in seconds.
    pub reference_secs: f64,
    /// Our 99th-percentile latency of the unit named in `p99_of`, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// The reference's 99th-percentile latency of the same unit, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_p99_ms: Option<f64>,
    /// What the p99 latencies are of (one transaction, one read call…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_of: Option<String>,
    /// Our median latency of the unit named in `p99_of`, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// The reference's median latency of the same unit, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_p50_ms: Option<f64>,
    /// A second reference doing the same work batched as ours is (see
    /// `per_tx`), operations per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_batched_ops_per_s: Option<f64>,
    /// `ours_ops_per_s / reference_batched_ops_per_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batched_ratio: Option<f64>,
    /// Commits the reference makes per operation (unbatched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_commits_per_op: Option<u64>,
    /// Operations per transaction on our side (and per commit in the
    /// batched reference).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_tx: Option<u64>,
    /// Sending stores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub senders: Option<u64>,
    /// Receiving stores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<u64>,
    /// What the bench aims for, as stated in its issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The system's 1-minute load average when the record was made (other
    /// processes share the machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_1m: Option<f64>,
    /// Our peak resident memory during the timed phase, in MB (MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mb: Option<f64>,
    /// The reference's peak resident memory during its phase, in MB (MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_peak_rss_mb: Option<f64>,
    /// Resident memory at the start of our phase (after trimming the
    /// allocator): the part of `peak_rss_mb` that the phase did not add.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_baseline_mb: Option<f64>,
    /// How peak memory was measured: `VmHWM` (kernel high-water mark,
    /// reset before each phase) or `VmRSS sampling` (every 5 ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_method: Option<String>,
    /// Our peak resident memory as `VmRSS` sampled every 5 ms, in MB
    /// (MiB), where it was sampled beside the high-water mark of
    /// `peak_rss_mb` (a server process the bench started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled_peak_rss_mb: Option<f64>,
    /// Operations of ours that failed (answered with an error, or not at
    /// all) and are left out of the rate and the latencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    /// A few operations timed beside the main one during our phase (the
    /// hostile benches' real logins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_ms: Option<Timings>,
    /// The same operations during the reference's phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_login_ms: Option<Timings>,
    /// What the attackers of a hostile bench sent and what they got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attackers: Option<serde_json::Value>,
    /// What the server under attack reported, or was seen holding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<serde_json::Value>,
    /// The server's settings in force during the bench.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
    /// Items written or read by the timed work on each side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<u64>,
    /// Rows in the table queried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_rows: Option<u64>,
    /// Lookups (or queries) done per `store.read` call (and per read
    /// transaction on the reference side).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookups_per_read: Option<u64>,
    /// Operations in flight at once (both sides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// How long after our load ended until the backup reported
    /// everything stored (`Backup::flush`), in ms: the median over the
    /// rounds (the backup benches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_ms: Option<f64>,
    /// The 99th percentile of the backup's lag (how long its oldest commit
    /// not yet stored had waited), sampled every 20 ms during our load, in
    /// ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_p99_ms: Option<f64>,
    /// Bytes one operation handles (a restore: the bytes read from the
    /// target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Bytes the backup target held at the end of the bench.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_bytes: Option<u64>,
    /// CPU time (user + system, all threads of this process) per
    /// operation during our timed phases, in µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_op: Option<f64>,
    /// The same during the reference's timed phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_cpu_us_per_op: Option<f64>,
    /// The size scale the run used (1.0 = documented sizes).
    pub scale: f64,
    /// How the two sides were run, where it matters for reading the figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl BenchRecord {
    /// A record of `ops` operations done in `ours` and `reference` time.
    pub(crate) fn new(
        bench: &str,
        op: &str,
        ops: u64,
        scale: f64,
        ours: Duration,
        reference: Duration,
    ) -> Self {
        let ours_rate = rate(ops, ours);
        let reference_rate = rate(ops, reference);
        Self {
            bench: bench.to_string(),
            ops,
            op: op.to_string(),
            ours_ops_per_s: round(ours_rate, 1),
            reference_ops_per_s: round(reference_rate, 1),
            ratio: round(ours_rate / reference_rate, 3),
            ours_secs: round(ours.as_secs_f64(), 4),
            reference_secs: round(reference.as_secs_f64(), 4),
            p99_ms: None,
            reference_p99_ms: None,
            p99_of: None,
            p50_ms: None,
            reference_p50_ms: None,
            reference_batched_ops_per_s: None,
            batched_ratio: None,
            reference_commits_per_op: None,
            per_tx: None,
            senders: None,
            recipients: None,
            target: None,
            load_1m: load_1m(),
            peak_rss_mb: None,
            reference_peak_rss_mb: None,
            rss_baseline_mb: None,
            rss_method: None,
            sampled_peak_rss_mb: None,
            errors: None,
            login_ms: None,
            reference_login_ms: None,
            attackers: None,
            server: None,
            settings: None,
            items: None,
            table_rows: None,
            lookups_per_read: None,
            concurrency: None,
            flush_ms: None,
            lag_p99_ms: None,
            bytes: None,
            backup_bytes: None,
            cpu_us_per_op: None,
            reference_cpu_us_per_op: None,
            scale,
            note: None,
        }
    }

    /// Adds the p99 latencies of both sides over `unit`.
    pub(crate) fn p99(
        mut self,
        unit: &str,
        ours: &mut [Duration],
        reference: &mut [Duration],
    ) -> Self {
        self.p99_ms = p99_ms(ours);
        self.reference_p99_ms = p99_ms(reference);
        self.p99_of = Some(unit.to_string());
        self
    }

    /// A record from rates measured elsewhere (a load generator's
    /// requests per second): `ops` is our count, the times are each side's
    /// run.
    pub(crate) fn from_rates(
        bench: &str,
        op: &str,
        ops: u64,
        scale: f64,
        (ours_rate, ours): (f64, Duration),
        (reference_rate, reference): (f64, Duration),
    ) -> Self {
        let mut r = Self::new(bench, op, ops, scale, ours, reference);
        r.ours_ops_per_s = round(ours_rate, 1);
        r.reference_ops_per_s = round(reference_rate, 1);
        r.ratio = round(ours_rate / reference_rate.max(1e-9), 3);
        r
    }
}

/// A handful of timed operations: how many, how many failed, and the
/// median and worst of their latencies (failed ones included), in ms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timings {
    /// Operations timed.
    pub count: u64,
    /// Of which failed (the hostile benches: a login not answered 200).
    pub failed: u64,
    /// Median latency, ms.
    pub p50: Option<f64>,
    /// Worst latency, ms.
    pub max: Option<f64>,
}

impl Timings {
    /// The timings of `samples` (sorted in place), `failed` of which
    /// failed.
    pub(crate) fn of(samples: &mut [Duration], failed: u64) -> Self {
        Self {
            count: samples.len() as u64,
            failed,
            p50: percentile_ms(samples, 0.5),
            max: percentile_ms(samples, 1.0),
        }
    }
}

/// The 1-minute load average (Linux), if known.
fn load_1m() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Operations per second (never infinite: a zero time counts as 1 ns).
fn rate(ops: u64, took: Duration) -> f64 {
    ops as f64 / took.as_secs_f64().max(1e-9)
}

/// `x` rounded to `digits` decimals (JSON lines stay readable).
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The 99th percentile (nearest rank) of `samples`, in ms; sorts them.
pub(crate) fn p99_ms(samples: &mut [Duration]) -> Option<f64> {
    percentile_ms(samples, 0.99)
}

/// The `q` quantile (nearest rank, `0 < q <= 1`) of `samples`, in ms;
/// sorts them.
pub(crate) fn percentile_ms(samples: &mut [Duration], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = ((samples.len() as f64) * q).ceil() as usize;
    let d = samples[rank.clamp(1, samples.len()) - 1];
    Some(round(d.as_secs_f64() * 1e3, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(p99_ms(&mut v), Some(99.0));
        let mut one = vec![Duration::from_millis(3)];
        assert_eq!(p99_ms(&mut one), Some(3.0));
        assert_eq!(p99_ms(&mut []), None);
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&mut v, 0.5), Some(50.0));
        let t = Timings::of(&mut v, 2);
        assert_eq!(
            (t.count, t.failed, t.p50, t.max),
            (100, 2, Some(50.0), Some(100.0))
        );
    }

    #[test]
    fn ratio_is_ours_over_reference() {
        let r = BenchRecord::new(
            "x",
            "op",
            100,
            1.0,
            Duration::from_secs(2),
            Duration::from_secs(1),
        );
        assert_eq!(r.ours_ops_per_s, 50.0);
        assert_eq!(r.reference_ops_per_s, 100.0);
        assert_eq!(r.ratio, 0.5);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.starts_with(r#"{"bench":"x","#), "{json}");
        assert!(
            !json.contains("p99_ms"),
            "absent options are left out: {json}"
        );
    }
}
