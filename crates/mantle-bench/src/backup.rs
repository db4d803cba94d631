//! The backup benches: stores written with continuous backup on (a
//! [`Backup`] to a local directory, in the default mode `point_of_loss =
//! "1s"` unless said otherwise) against the same work with it off, in the
//! same run; and a restore against copying the same bytes.
//!
//! Both sides of a bench run in the same process on the same disk, in
//! rounds alternated ours, reference, reference, ours, … so that a change
//! in background load falls on both. After each of our rounds the bench
//! waits for [`Backup::flush`] (everything stored), so the backup's
//! uploads never run during a reference round; how long that took is
//! `flush_ms`. The backup's work after the load (storing the last
//! segment once it falls due) is charged to the round, the wait for the
//! lag itself is not: the segments' names say when their first commit
//! committed and their files when they were stored. The stores'
//! durability is the default (`Full`: every commit synced), as in the
//! store benches, on both sides. Each note gives the spread of the ratios
//! of the pairs of rounds run one after the other: on a busy machine a
//! single round can run long on either side, which is why there are eight
//! pairs.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mantle_backup::{Backup, BackupConfig, Catalog, Mode, restore_store};
use mantle_store::Store;

use crate::BenchError;
use crate::messaging::{OneWaySite, PER_TX, RECIPIENTS, SENDERS, site_config};
use crate::report::{BenchRecord, percentile_ms, round};
use crate::store::{
    BenchDir, Row, blocking, check, make_row, our_count, our_insert_all, scaled, store_config,
};

/// The benches [`run_backup`] runs, in order; each emits one record of its
/// name.
pub const BACKUP_BENCHES: &[&str] = &["small_tx", "messages_one_way", "small_tx_sync", "restore"];

/// Options of the backup benches (see [`BenchOptions`](crate::BenchOptions)).
pub type BackupBenchOptions = crate::BenchOptions;

// Sizes at scale 1.0.
/// How long each round of `small_tx` and `small_tx_sync` runs.
const ROUND: Duration = Duration::from_secs(3);
/// Messages per side in `messages_one_way`.
const MESSAGES: u64 = 400_000;
/// Rows in the restored store before backup starts (its snapshot).
const RESTORE_BASE_ROWS: u64 = 200_000;
/// Transactions logged after the snapshot.
const RESTORE_LOG_TXS: u64 = 1_000;

/// Tasks each awaiting one transaction after another, on both sides.
pub const CONCURRENCY: usize = 8;
/// Rounds per side of `small_tx` and `small_tx_sync` (eight: see
/// [`MESSAGE_ROUNDS`]).
const ROUNDS: u64 = 8;
/// Rounds per side of `messages_one_way`: on a machine the site keeps
/// busy, one round in several runs long on either side (by a tenth or
/// more); over eight pairs such a round moves the ratio half as much as
/// over four.
const MESSAGE_ROUNDS: u64 = 8;
/// Rounds per side of `restore`.
const RESTORE_ROUNDS: usize = 3;
/// Inserts per logged transaction in `restore`.
const RESTORE_ROWS_PER_TX: u64 = 200;
/// How long a flush may take before the bench fails.
const FLUSH_PATIENCE: Duration = Duration::from_secs(120);
/// The store's path in the site.
const STORE: &str = "bench.store";
const TARGET: &str = "ratio >= 0.9 with point_of_loss = \"1s\"";

/// Runs the backup benches (all, or `opts.only`), calling `emit` with each
/// record as soon as it is measured.
///
/// | bench | work (scale 1.0) | one op |
/// |---|---|---|
/// | `small_tx` | one-insert transactions on one store from 8 tasks for 8 rounds of 3 s per side, backup on (`"1s"`) against off | transaction |
/// | `messages_one_way` | 400,000 one-way messages per side as `mantle bench messaging` sends them, on a site with `[backup] target` set against one without, in 8 rounds after a warm-up round | message |
/// | `small_tx_sync` | `small_tx` with `point_of_loss = "sync"` (a commit acknowledged once stored) | transaction |
/// | `restore` | a store of ≈ 50 MB in the target (a snapshot of 200,000 rows, then 1,000 transactions of 200 inserts logged) restored to a new file, against reading the same objects and writing their bytes to a file; 3 rounds | MB |
///
/// Errors: [`BenchError::UnknownBench`] for an unknown `only`; store,
/// site, backup and file errors; [`BenchError::Check`] if a bench reads
/// back something other than what it wrote, or a flush does not finish.
pub async fn run_backup(
    opts: &BackupBenchOptions,
    emit: &mut dyn FnMut(BenchRecord),
) -> Result<(), BenchError> {
    opts.check_only(BACKUP_BENCHES)?;
    let workspace = opts.workspace()?;
    let base = workspace.path();
    let scale = opts.scale;
    if opts.wants("small_tx") {
        emit(small_tx(scale, base, "small_tx", "1s").await?);
    }
    if opts.wants("messages_one_way") {
        emit(messages_one_way(scale, base).await?);
    }
    if opts.wants("small_tx_sync") {
        emit(small_tx(scale, base, "small_tx_sync", "sync").await?);
    }
    if opts.wants("restore") {
        emit(restore(scale, base).await?);
    }
    Ok(())
}

// ---- Helpers -------------------------------------------------------------------

fn backup_config(target: &Path, point_of_loss: &str) -> BackupConfig {
    BackupConfig {
        target: target.to_string_lossy().into_owned(),
        point_of_loss: point_of_loss.into(),
        ..BackupConfig::default()
    }
}

/// CPU time this process has used (user + system, all threads).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage only writes the struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return Duration::ZERO;
    }
    // SAFETY: filled by the successful call above (and zeroed before).
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A file under a directory.
struct FileInfo {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

/// The files under `dir`, recursively, sorted by path.
fn files_under(dir: &Path) -> std::io::Result<Vec<FileInfo>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                let meta = entry.metadata()?;
                out.push(FileInfo {
                    path: entry.path(),
                    len: meta.len(),
                    modified: meta.modified()?,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    Ok(files_under(dir)?.iter().map(|f| f.len).sum())
}

/// What [`stored_and_merged`] did, as the notes say it.
const MERGED: &str = "every segment was merged (and so compressed), as the hourly \
                      compaction does once they are 10 minutes old";

/// The bytes `backup`'s local `target` holds, then those it holds once
/// every segment is merged (untimed, after the rounds).
async fn stored_and_merged(backup: &Backup, target: &Path) -> Result<(u64, u64), BenchError> {
    let stored = dir_bytes(target)?;
    let catalog = Catalog::read(backup.target()).await?;
    mantle_backup::compact(backup.target(), backup.keys(), &catalog, Duration::ZERO).await?;
    Ok((stored, dir_bytes(target)?))
}

/// A log segment found in a local target: `stores/STORE/GEN/log-FIRST-
/// LAST-T0-T1`, stored when its file was written.
struct Segment {
    /// Its generation's directory (one per store here).
    dir: PathBuf,
    /// When its first commit committed.
    first: SystemTime,
    stored: SystemTime,
}

/// The log segments in `target` stored at or after `since`.
fn segments_since(target: &Path, since: SystemTime) -> std::io::Result<Vec<Segment>> {
    let mut out = Vec::new();
    for f in files_under(target)? {
        let Some(name) = f.path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let fields: Vec<&str> = name.split('-').collect();
        if fields.len() != 5 || fields[0] != "log" || f.modified < since {
            continue;
        }
        let Ok(first_us) = fields[3].parse::<u64>() else {
            continue;
        };
        out.push(Segment {
            dir: f.path.parent().map(Path::to_path_buf).unwrap_or_default(),
            first: UNIX_EPOCH + Duration::from_micros(first_us),
            stored: f.modified,
        });
    }
    Ok(out)
}

/// One side's figures over its rounds.
#[derive(Default)]
struct Side {
    cpu: Duration,
    latencies: Vec<Duration>,
    /// Each round's operations and time, in order.
    rounds: Vec<(u64, Duration)>,
}

impl Side {
    fn ops(&self) -> u64 {
        self.rounds.iter().map(|r| r.0).sum()
    }

    fn time(&self) -> Duration {
        self.rounds.iter().map(|r| r.1).sum()
    }

    fn rate(&self) -> f64 {
        self.ops() as f64 / self.time().as_secs_f64().max(1e-9)
    }

    /// The note's sentence on each pair of rounds (ours' `i`th against the
    /// reference's, run one after the other): the spread of their ratios,
    /// how far a single round strays from the run's.
    fn pairs_note(&self, reference: &Side) -> String {
        let rate = |(ops, t): (u64, Duration)| ops as f64 / t.as_secs_f64().max(1e-9);
        let mut ratios: Vec<f64> = self
            .rounds
            .iter()
            .zip(&reference.rounds)
            .map(|(&o, &r)| rate(o) / rate(r))
            .collect();
        ratios.sort_by(f64::total_cmp);
        let Some((first, last)) = ratios.first().zip(ratios.last()) else {
            return "no pair of rounds".into();
        };
        format!(
            "each pair of rounds' ratio {first:.3}–{last:.3} (median {:.3})",
            ratios[ratios.len() / 2]
        )
    }

    fn cpu_us_per_op(&self) -> Option<f64> {
        Some(round(
            self.cpu.as_secs_f64() * 1e6 / self.ops().max(1) as f64,
            1,
        ))
    }
}

/// One round's load: its operations, how long it took, and the latencies
/// it measured.
type Load = Result<(u64, Duration, Vec<Duration>), BenchError>;

/// What our rounds left behind them: each round's wait for the backup to
/// store everything after the load, the part of it charged to the round,
/// the CPU used meanwhile, and each segment's lag.
#[derive(Default)]
struct Tail {
    flushes: Vec<Duration>,
    charged: Vec<Duration>,
    cpu: Duration,
    lags: Vec<Duration>,
}

impl Tail {
    /// Times our round `load` into `side`, then waits for the backup to
    /// store everything. The round is charged the backup's work after the
    /// load: from when the load ended (or the last segment fell due, if
    /// later: until then the uploader only waits out the lag) to when
    /// that segment was stored, the latest over the stores.
    async fn round(
        &mut self,
        name: &'static str,
        (backup, target, lag): (&Backup, &Path, Duration),
        side: &mut Side,
        load: impl std::future::Future<Output = Load>,
    ) -> Result<(), BenchError> {
        let started = SystemTime::now();
        let cpu = cpu_time();
        let loaded = load.await;
        side.cpu += cpu_time().saturating_sub(cpu);
        let ended = SystemTime::now();
        let (ops, took, latencies) = loaded?;
        let (t, cpu) = (Instant::now(), cpu_time());
        let stored = backup.flush(FLUSH_PATIENCE).await;
        self.flushes.push(t.elapsed());
        self.cpu += cpu_time().saturating_sub(cpu);
        check(name, stored, || {
            format!(
                "the backup did not store everything within {} s",
                FLUSH_PATIENCE.as_secs()
            )
        })?;
        let segments = segments_since(target, started)?;
        let mut last: HashMap<&Path, &Segment> = HashMap::new();
        for s in &segments {
            self.lags
                .push(s.stored.duration_since(s.first).unwrap_or_default());
            let e = last.entry(&s.dir).or_insert(s);
            if s.first > e.first {
                *e = s;
            }
        }
        let charged = last
            .values()
            .map(|s| {
                let from = ended.max(s.first + lag);
                s.stored.duration_since(from).unwrap_or_default()
            })
            .max()
            .unwrap_or_default();
        self.charged.push(charged);
        side.rounds.push((ops, took + charged));
        side.latencies.extend(latencies);
        Ok(())
    }

    /// The note's sentence on the flushes.
    fn note(&self, ops: u64) -> String {
        let (mut flushes, mut charged) = (self.flushes.clone(), self.charged.clone());
        flushes.sort_unstable();
        charged.sort_unstable();
        let ms = |v: &[Duration], i: usize| v.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        format!(
            "after each of our rounds the bench waits for backup.flush() (all stored \
             {:.0}–{:.0} ms after the load ended, flush_ms the median); each round's time \
             includes the backup's work after its load ended (from the load's end, or when \
             the last segment fell due if later, until that segment was stored: {:.0}–{:.0} \
             ms a round), the wait for the lag itself not; the backup used {:.1} µs of CPU \
             per op during the flushes; lag_p99_ms from the segments' names and file times \
             (stored − first commit)",
            ms(&flushes, 0),
            ms(&flushes, flushes.len().saturating_sub(1)),
            ms(&charged, 0),
            ms(&charged, charged.len().saturating_sub(1)),
            self.cpu.as_secs_f64() * 1e6 / ops.max(1) as f64,
        )
    }
}

/// The reference's round: `load` timed into `side`.
async fn reference_round(
    side: &mut Side,
    load: impl std::future::Future<Output = Load>,
) -> Result<(), BenchError> {
    let cpu = cpu_time();
    let loaded = load.await;
    side.cpu += cpu_time().saturating_sub(cpu);
    let (ops, took, latencies) = loaded?;
    side.rounds.push((ops, took));
    side.latencies.extend(latencies);
    Ok(())
}

/// `0..n` in `rounds` consecutive ranges (the last may be shorter; none
/// empty).
fn rounds(n: u64, rounds: u64) -> Vec<Range<u64>> {
    let size = n.div_ceil(rounds.max(1)).max(1);
    (0..n)
        .step_by(size as usize)
        .map(|s| s..(s + size).min(n))
        .collect()
}

/// A record of both sides' rates and the figures every bench with a
/// backed-up side shares.
fn record(
    name: &str,
    op: &str,
    scale: f64,
    mut on: Side,
    mut off: Side,
    mut tail: Tail,
) -> BenchRecord {
    let mut rec = BenchRecord::from_rates(
        name,
        op,
        on.ops(),
        scale,
        (on.rate(), on.time()),
        (off.rate(), off.time()),
    );
    rec.p50_ms = percentile_ms(&mut on.latencies, 0.5);
    rec.reference_p50_ms = percentile_ms(&mut off.latencies, 0.5);
    rec.p99_ms = percentile_ms(&mut on.latencies, 0.99);
    rec.reference_p99_ms = percentile_ms(&mut off.latencies, 0.99);
    rec.cpu_us_per_op = on.cpu_us_per_op();
    rec.reference_cpu_us_per_op = off.cpu_us_per_op();
    rec.flush_ms = percentile_ms(&mut tail.flushes, 0.5);
    rec.lag_p99_ms = percentile_ms(&mut tail.lags, 0.99);
    rec.items = Some(on.ops());
    rec
}

// ---- small_tx, small_tx_sync ---------------------------------------------------

/// One-insert transactions on `store` from [`CONCURRENCY`] tasks, each
/// awaiting one after another, until `until` has passed (each task does
/// at least one): the time it took and each transaction's latency.
async fn inserts(store: &Store, until: Duration, keys: &Arc<AtomicU64>) -> Load {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (store, keys) = (store.clone(), keys.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let row = make_row(keys.fetch_add(1, Ordering::Relaxed) as i64);
                    let t = Instant::now();
                    store.transact(move |tx| tx.insert(&row)).await?;
                    latencies.push(t.elapsed());
                    if started.elapsed() >= until {
                        return Ok::<_, BenchError>(latencies);
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| BenchError::Task(e.to_string()))??);
    }
    Ok((latencies.len() as u64, started.elapsed(), latencies))
}

async fn small_tx(
    scale: f64,
    base: &Path,
    name: &'static str,
    point_of_loss: &str,
) -> Result<BenchRecord, BenchError> {
    let dir = BenchDir::new(base, name)?;
    let site = dir.join("site");
    std::fs::create_dir_all(&site)?;
    let target = dir.join("target");
    let config = backup_config(&target, point_of_loss);
    let lag = match config.mode()? {
        Mode::Lag(lag) => lag,
        Mode::Synchronous => Duration::ZERO,
    };
    let backup = Backup::open(&site, &config, &mantle_stats::StatsRegistry::new())?;
    let on = Store::open(
        site.join(STORE),
        &store_config().replicator(Arc::new(backup.clone())),
    )
    .await?;
    let off = Store::open(dir.join(STORE), &store_config()).await?;
    let round_time = ROUND.mul_f64(scale);
    let measured = measure_small_tx(name, round_time, (&backup, &target, lag), &on, &off).await;
    on.close().await;
    off.close().await;
    let (on_side, off_side, tail) = measured?;
    let (backup_bytes, merged_bytes) = stored_and_merged(&backup, &target).await?;

    let (ours_ops, ref_ops) = (on_side.ops(), off_side.ops());
    let tail_note = tail.note(ours_ops);
    let pairs_note = on_side.pairs_note(&off_side);
    let mut rec = record(name, "transaction", scale, on_side, off_side, tail);
    rec.p99_of = Some("one transaction (submit to commit acknowledged)".into());
    rec.concurrency = Some(CONCURRENCY as u64);
    rec.backup_bytes = Some(backup_bytes);
    if name == "small_tx" {
        rec.target = Some(TARGET.into());
    }
    rec.note = Some(format!(
        "one-insert transactions (the store bench's row) on one store from {CONCURRENCY} \
         tasks each awaiting one after another (the writer groups them into commits), \
         durability Full on both sides; ours: the store opened with a Backup to a local \
         directory (point_of_loss = {point_of_loss:?}), reference: the same store config \
         without it, both open throughout; {ROUNDS} rounds of {:.1} s per side alternated \
         (ours, reference, reference, ours, …) after a warm-up each ({pairs_note}), \
         {ours_ops} transactions ours, {ref_ops} reference; {tail_note}; the target held \
         {:.1} MB at the end ({:.0} bytes per transaction; {:.0} once {MERGED})",
        round_time.as_secs_f64(),
        backup_bytes as f64 / 1e6,
        backup_bytes as f64 / ours_ops.max(1) as f64,
        merged_bytes as f64 / ours_ops.max(1) as f64,
    ));
    Ok(rec)
}

async fn measure_small_tx(
    name: &'static str,
    round_time: Duration,
    backed_up: (&Backup, &Path, Duration),
    on: &Store,
    off: &Store,
) -> Result<(Side, Side, Tail), BenchError> {
    let (on_keys, off_keys) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Warm-up, also storing the backup's first snapshot.
    let warm = round_time / 4;
    inserts(on, warm, &on_keys).await?;
    inserts(off, warm, &off_keys).await?;
    check(name, backed_up.0.flush(FLUSH_PATIENCE).await, || {
        "the first snapshot was not stored".into()
    })?;

    let (mut ours, mut reference, mut tail) = (Side::default(), Side::default(), Tail::default());
    for i in 0..ROUNDS {
        let ours_first = i % 2 == 0;
        for our_turn in [ours_first, !ours_first] {
            if our_turn {
                let load = inserts(on, round_time, &on_keys);
                tail.round(name, backed_up, &mut ours, load).await?;
            } else {
                reference_round(&mut reference, inserts(off, round_time, &off_keys)).await?;
            }
        }
    }
    let (on_rows, off_rows) = (our_count(on).await?, our_count(off).await?);
    let (on_made, off_made) = (
        on_keys.load(Ordering::Relaxed),
        off_keys.load(Ordering::Relaxed),
    );
    check(name, on_rows == on_made && off_rows == off_made, || {
        format!("expected {on_made} rows ours, {off_made} reference; found {on_rows}, {off_rows}")
    })?;
    Ok((ours, reference, tail))
}

// ---- messages_one_way ----------------------------------------------------------

async fn messages_one_way(scale: f64, base: &Path) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "messages_one_way";
    let n = scaled(MESSAGES, scale).max(MESSAGE_ROUNDS);
    let dir = BenchDir::new(base, NAME)?;
    let target = dir.join("target");
    let mut config = site_config();
    config.backup = backup_config(&target, "1s");
    let lag = match config.backup.mode()? {
        Mode::Lag(lag) => lag,
        Mode::Synchronous => Duration::ZERO,
    };
    let mut on = OneWaySite::new(&dir.join("on"), config).await?;
    let mut off = match OneWaySite::new(&dir.join("off"), site_config()).await {
        Ok(site) => site,
        Err(e) => {
            let _ = on.close(NAME).await;
            return Err(e);
        }
    };
    let measured = measure_messages(n, (&target, lag), &mut on, &mut off).await;
    let backup = on.site().backup().cloned();
    let (on_closed, off_closed) = (on.close(NAME).await, off.close(NAME).await);
    let (ours, reference, tail) = measured?;
    on_closed?;
    off_closed?;
    let backup = backup.ok_or_else(|| BenchError::Check {
        bench: NAME,
        reason: "the site with [backup] target has no backup".into(),
    })?;
    let (backup_bytes, merged_bytes) = stored_and_merged(&backup, &target).await?;

    let tail_note = tail.note(ours.ops());
    let pairs_note = ours.pairs_note(&reference);
    let mut rec = record(NAME, "message", scale, ours, reference, tail);
    rec.p99_of = Some(
        "one message, from send (inside the sending transaction) to its handler running in \
         the recipient's transaction (that transaction's commit not included)"
            .into(),
    );
    rec.per_tx = Some(PER_TX as u64);
    rec.senders = Some(SENDERS as u64);
    rec.recipients = Some(RECIPIENTS as u64);
    rec.backup_bytes = Some(backup_bytes);
    rec.note = Some(format!(
        "mantle bench messaging's messages_one_way ({SENDERS} sender stores → {RECIPIENTS} \
         recipient stores, {PER_TX} messages per sending transaction, timed until all are read \
         back at the recipients) on a site whose [backup] target is a local directory \
         (point_of_loss = \"1s\": every store of the site backed up), against the same on a \
         site without [backup]; both sites open throughout, durability Full; {n} messages per \
         side in {MESSAGE_ROUNDS} rounds alternated (ours, reference, reference, ours, …) \
         after an untimed warm-up round each ({pairs_note}); \
         {tail_note}; the target held {:.1} MB at the end ({:.0} bytes per message; {:.0} \
         once {MERGED})",
        backup_bytes as f64 / 1e6,
        // The warm-up's messages are in the target too.
        backup_bytes as f64 / (n + n.div_ceil(MESSAGE_ROUNDS)) as f64,
        merged_bytes as f64 / (n + n.div_ceil(MESSAGE_ROUNDS)) as f64,
    ));
    Ok(rec)
}

async fn measure_messages(
    n: u64,
    (target, lag): (&Path, Duration),
    on: &mut OneWaySite,
    off: &mut OneWaySite,
) -> Result<(Side, Side, Tail), BenchError> {
    const NAME: &str = "messages_one_way";
    let backup = on
        .site()
        .backup()
        .cloned()
        .ok_or_else(|| BenchError::Check {
            bench: NAME,
            reason: "the site with [backup] target has no backup".into(),
        })?;
    check(NAME, backup.flush(FLUSH_PATIENCE).await, || {
        "the first snapshots were not stored".into()
    })?;
    // A warm-up round per side, untimed (as `small_tx` has): both sites'
    // caches, and the backup's buffers, in the state a steady load keeps
    // them in.
    let warm = n.div_ceil(MESSAGE_ROUNDS);
    on.round(NAME, warm).await?;
    off.round(NAME, warm).await?;
    check(NAME, backup.flush(FLUSH_PATIENCE).await, || {
        "the warm-up round was not stored".into()
    })?;
    let (mut ours, mut reference, mut tail) = (Side::default(), Side::default(), Tail::default());
    // A message's latencies count one per handler run: the round's
    // messages are its ops.
    for (i, part) in rounds(n, MESSAGE_ROUNDS).into_iter().enumerate() {
        let count = part.end - part.start;
        let ours_first = i % 2 == 0;
        for our_turn in [ours_first, !ours_first] {
            if our_turn {
                let load = async {
                    let r = on.round(NAME, count).await?;
                    Ok((count, r.took, r.latencies))
                };
                tail.round(NAME, (&backup, target, lag), &mut ours, load)
                    .await?;
            } else {
                let load = async {
                    let r = off.round(NAME, count).await?;
                    Ok((count, r.took, r.latencies))
                };
                reference_round(&mut reference, load).await?;
            }
        }
    }
    Ok((ours, reference, tail))
}

// ---- restore -------------------------------------------------------------------

async fn restore(scale: f64, base: &Path) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "restore";
    let base_rows = scaled(RESTORE_BASE_ROWS, scale);
    let log_txs = scaled(RESTORE_LOG_TXS, scale);
    let rows = base_rows + log_txs * RESTORE_ROWS_PER_TX;
    let dir = BenchDir::new(base, NAME)?;
    let site = dir.join("site");
    std::fs::create_dir_all(&site)?;
    let target = dir.join("target");
    let path = site.join(STORE);
    let batch = |keys: Range<u64>| Arc::new(keys.map(|k| make_row(k as i64)).collect::<Vec<Row>>());

    // What the snapshot holds: written before the backup starts.
    let store = Store::open(&path, &store_config()).await?;
    for chunk in rounds(base_rows, base_rows.div_ceil(50_000)) {
        our_insert_all(&store, batch(chunk)).await?;
    }
    store.close().await;
    drop(store);

    // Backed up from here: a snapshot at open, then the log.
    let backup = Backup::open(
        &site,
        &backup_config(&target, "1s"),
        &mantle_stats::StatsRegistry::new(),
    )?;
    let store = Store::open(&path, &store_config().replicator(Arc::new(backup.clone()))).await?;
    let logged = async {
        for t in 0..log_txs {
            let first = base_rows + t * RESTORE_ROWS_PER_TX;
            our_insert_all(&store, batch(first..first + RESTORE_ROWS_PER_TX)).await?;
        }
        let t = Instant::now();
        let stored = backup.flush(FLUSH_PATIENCE).await;
        let flushed = t.elapsed();
        check(NAME, stored, || {
            "the backup did not store everything".into()
        })?;
        let held = our_count(&store).await?;
        check(NAME, held == rows, || {
            format!("expected {rows} rows, the store holds {held}")
        })?;
        Ok::<_, BenchError>(flushed)
    }
    .await;
    store.close().await;
    drop(store);
    let flushed = logged?;

    let objects = files_under(&target)?;
    let total: u64 = objects.iter().map(|f| f.len).sum();
    let is = |p: &Path, prefix: &str| {
        p.file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with(prefix))
    };
    let snapshot_bytes: u64 = objects
        .iter()
        .filter(|f| is(&f.path, "snap-"))
        .map(|f| f.len)
        .sum();
    let segments = objects.iter().filter(|f| is(&f.path, "log-")).count();
    let catalog = Catalog::read(backup.target()).await?;
    let summary = catalog
        .summaries()
        .into_iter()
        .find(|s| s.store == STORE)
        .ok_or_else(|| BenchError::Check {
            bench: NAME,
            reason: "the target holds no backup of the store".into(),
        })?;
    check(
        NAME,
        summary.generations == 1 && summary.snapshots == 1 && summary.bytes == total,
        || format!("expected one generation, one snapshot and {total} bytes: {summary:?}"),
    )?;

    let (mut ours, mut reference) = (Vec::new(), Vec::new());
    let (mut file_bytes, mut restored_seq) = (0u64, 0u64);
    for i in 0..RESTORE_ROUNDS {
        let ours_first = i % 2 == 0;
        for our_turn in [ours_first, !ours_first] {
            let out = dir.join(format!("out-{i}-{our_turn}"));
            std::fs::create_dir_all(&out)?;
            let dest = out.join(STORE);
            if our_turn {
                let t = Instant::now();
                let catalog = Catalog::read(backup.target()).await?;
                let restored =
                    restore_store(backup.target(), backup.keys(), &catalog, STORE, None, &dest)
                        .await?;
                ours.push(t.elapsed());
                check(NAME, restored.bytes_read == total, || {
                    format!(
                        "the restore read {} bytes of the {total} the target holds",
                        restored.bytes_read
                    )
                })?;
                if file_bytes == 0 {
                    file_bytes = std::fs::metadata(&dest)?.len();
                    // What the reference copies: the restored file itself.
                    std::fs::copy(&dest, dir.join("source.store"))?;
                    restored_seq = restored.seq;
                    let copy = Store::open(&dest, &store_config()).await?;
                    let held = our_count(&copy).await;
                    copy.close().await;
                    let held = held?;
                    check(NAME, held == rows, || {
                        format!("expected {rows} rows restored, found {held}")
                    })?;
                }
            } else {
                let source = dir.join("source.store");
                let (took, copied) = blocking(move || {
                    let t = Instant::now();
                    let copied = std::fs::copy(&source, &dest)?;
                    std::fs::File::open(&dest)?.sync_all()?;
                    Ok((t.elapsed(), copied))
                })
                .await?;
                reference.push(took);
                check(NAME, copied == file_bytes, || {
                    format!("the reference copied {copied} bytes of {file_bytes}")
                })?;
            }
            std::fs::remove_dir_all(&out)?;
        }
    }

    let mb = file_bytes as f64 / 1e6;
    let (ours_time, ref_time): (Duration, Duration) = (ours.iter().sum(), reference.iter().sum());
    let rate = |took: Duration| mb * RESTORE_ROUNDS as f64 / took.as_secs_f64().max(1e-9);
    let mut rec = BenchRecord::from_rates(
        NAME,
        "MB",
        (mb * RESTORE_ROUNDS as f64).round().max(1.0) as u64,
        scale,
        (rate(ours_time), ours_time),
        (rate(ref_time), ref_time),
    )
    .p99(
        "one whole restore (or copy)",
        &mut ours.clone(),
        &mut reference.clone(),
    );
    rec.p50_ms = percentile_ms(&mut ours, 0.5);
    rec.reference_p50_ms = percentile_ms(&mut reference, 0.5);
    rec.bytes = Some(total);
    rec.backup_bytes = Some(total);
    rec.items = Some(rows);
    rec.flush_ms = Some(round(flushed.as_secs_f64() * 1e3, 1));
    rec.note = Some(format!(
        "a store of {rows} rows in the target: a snapshot of {base_rows} rows ({:.1} MB \
         sealed) taken when the backup started, then {log_txs} transactions of \
         {RESTORE_ROWS_PER_TX} inserts logged in {segments} segments ({:.1} MB; flush_ms is the \
         wait for them after the last commit); ours: Catalog::read then restore_store to a new \
         file (objects read and opened, the snapshot written, {restored_seq} commits' pages \
         written over it, synced, integrity-checked; the file is {:.1} MB); reference: copying \
         that restored file (std::fs::copy, synced); MB = 10^6 bytes of the restored file (the \
         snapshot is compressed, the segments as sealed: uncompressed, not yet merged); \
         {RESTORE_ROUNDS} rounds per side alternated (ours, \
         reference, reference, ours, …), the target's files in the page cache for both",
        snapshot_bytes as f64 / 1e6,
        (total - snapshot_bytes) as f64 / 1e6,
        file_bytes as f64 / 1e6,
    ));
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(rounds: &[(u64, u64)]) -> Side {
        Side {
            rounds: rounds
                .iter()
                .map(|&(ops, ms)| (ops, Duration::from_millis(ms)))
                .collect(),
            ..Side::default()
        }
    }

    #[test]
    fn each_pair_of_rounds_is_compared_in_order() {
        // Ours: as fast, half as fast, a fifth faster; round by round.
        let ours = side(&[(100, 1000), (100, 2000), (120, 1000)]);
        let reference = side(&[(100, 1000), (100, 1000), (100, 1000)]);
        assert_eq!(ours.ops(), 320);
        assert_eq!(ours.time(), Duration::from_secs(4));
        assert_eq!(
            ours.pairs_note(&reference),
            "each pair of rounds' ratio 0.500–1.200 (median 1.000)"
        );
        assert_eq!(Side::default().pairs_note(&reference), "no pair of rounds");
    }

    #[test]
    fn rounds_cover_every_operation_once() {
        let parts = rounds(10, 4);
        assert_eq!(parts, vec![0..3, 3..6, 6..9, 9..10]);
        assert_eq!(rounds(3, 8), vec![0..1, 1..2, 2..3]);
    }
}
