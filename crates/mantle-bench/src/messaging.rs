//! The messaging benches: interstore messages between the user stores of
//! one site on one node, against raw `rusqlite` doing the commits a
//! message needs.
//!
//! Every bench builds a fresh site (durability `full`, the default) with
//! [`SENDERS`] sender and [`RECIPIENTS`] recipient accounts. Message `i`
//! goes from sender `i % SENDERS` to recipient `(i / SENDERS) % RECIPIENTS`,
//! addressed by login. The recipient's handler inserts one small item in
//! its store; for request/answer messages the sender's answer handler
//! inserts one in the sender's store. The clock runs from the first send
//! until the bench has *read back* all of those items (polling every
//! 10 ms), so every message counted was committed at its recipient.
//!
//! Latency: each message carries its send time (taken inside the sending
//! transaction, before it commits); the handler that applies it records
//! `now - sent` — for a one-way message in the recipient's transaction,
//! for a round trip in the sender's answer transaction. That transaction's
//! own commit (one fsync, shared by its batch) follows and is not included.
//!
//! The reference: two WAL databases with the store's pragmas
//! (`synchronous = FULL`) and, per message, one INSERT + COMMIT in the
//! sender's and one in the recipient's (three commits for a round trip:
//! the answer is one more in the sender's) — the commits a message needs,
//! at one message per commit. A second reference does the same with
//! [`PER_TX`] messages per commit, as our senders batch. Half of each
//! reference runs before ours and half after, so both see the same
//! background load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mantle_site::{Message, MessageHandlers, SendMessage, Site, SiteConfig};
use mantle_store::{Item, Registry, Store, Timestamp};
use rusqlite::{Connection, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::BenchError;
use crate::report::{BenchRecord, percentile_ms};
use crate::store::{BenchDir, blocking, check, ref_open, scaled};

/// The benches [`run_messaging`] runs, in order; each emits one record of
/// its name.
pub const MESSAGING_BENCHES: &[&str] = &[
    "messages_one_way",
    "messages_one_way_single",
    "messages_round_trip",
];

/// Options of the messaging benches (see [`BenchOptions`](crate::BenchOptions)).
pub type MessagingBenchOptions = crate::BenchOptions;

/// Sending user stores.
pub const SENDERS: usize = 8;
/// Receiving user stores.
pub const RECIPIENTS: usize = 8;
/// Messages per sending transaction in `messages_one_way` and
/// `messages_round_trip` (and per commit in the batched reference).
pub const PER_TX: usize = 100;
/// Concurrent sending tasks per sender in `messages_one_way_single`.
const TASKS_PER_SENDER: usize = 8;

// Sizes at scale 1.0.
const ONE_WAY_MESSAGES: u64 = 100_000;
const SINGLE_MESSAGES: u64 = 20_000;
const ROUND_TRIPS: u64 = 50_000;
const REF_MESSAGES: u64 = 2_000;
const REF_BATCHED_MESSAGES: u64 = 20_000;

pub(crate) const DOMAIN: &str = "bench.test";
pub(crate) const PASSWORD: &str = "bench password, not secret";
const POLL: Duration = Duration::from_millis(10);
const TARGET: &str = ">= 20000 one-way messages/s on a 2-core machine";

/// Runs the messaging benches (all, or `opts.only`), calling `emit` with
/// each record as soon as it is measured.
///
/// | bench | work (scale 1.0) | one op |
/// |---|---|---|
/// | `messages_one_way` | 100,000 one-way messages, 8 senders → 8 recipients, 100 per sending transaction | message |
/// | `messages_one_way_single` | 20,000 one-way messages, one per sending transaction, 64 sending tasks (8 per sender) | message |
/// | `messages_round_trip` | 50,000 requests answered, 100 per sending transaction | round trip |
///
/// Errors: [`BenchError::UnknownBench`] for an unknown `only`; site,
/// store, SQLite and file errors; [`BenchError::Check`] if a bench finds
/// other than exactly one item per message (or the messages are not all
/// applied within a generous time).
pub async fn run_messaging(
    opts: &MessagingBenchOptions,
    emit: &mut dyn FnMut(BenchRecord),
) -> Result<(), BenchError> {
    opts.check_only(MESSAGING_BENCHES)?;
    let workspace = opts.workspace()?;
    let base = workspace.path();
    let wants = |name: &str| opts.wants(name);
    let scale = opts.scale;
    if wants("messages_one_way") {
        emit(one_way(scale, base, Sending::Batched).await?);
    }
    if wants("messages_one_way_single") {
        emit(one_way(scale, base, Sending::Single).await?);
    }
    if wants("messages_round_trip") {
        emit(round_trip(scale, base).await?);
    }
    Ok(())
}

// ---- Messages, items and handlers ---------------------------------------------

/// A one-way message: the recipient stores one [`Received`].
#[derive(Serialize, Deserialize)]
pub(crate) struct Note {
    /// The bench run it belongs to (see [`Latencies`]).
    run: u64,
    seq: i64,
    /// When it was sent, µs since the epoch.
    sent_micros: i64,
}

impl Message for Note {
    const TYPE: &'static str = "bench.note";
    type Answer = ();
    const ONE_WAY: bool = true;
}

/// A request: the recipient stores one [`Received`] and answers `seq`; the
/// sender stores one [`Answered`].
#[derive(Serialize, Deserialize)]
struct Request {
    run: u64,
    seq: i64,
    sent_micros: i64,
}

impl Message for Request {
    const TYPE: &'static str = "bench.request";
    type Answer = i64;
}

/// What a recipient stores per message.
#[derive(Item, Debug, Clone)]
#[item(name = "bench_received", version = 1)]
pub(crate) struct Received {
    seq: i64,
    sent: i64,
}

/// What a sender stores per answer.
#[derive(Item, Debug, Clone)]
#[item(name = "bench_answered", version = 1)]
struct Answered {
    seq: i64,
    /// Whether the answer was the expected one (not a refusal).
    ok: bool,
}

pub(crate) fn types(registry: &mut Registry) {
    registry.register::<Received>().register::<Answered>();
}

/// Latencies recorded by the handlers, per bench run. Handlers are plain
/// functions registered on the site, so they reach the bench through this
/// process-wide table; each run takes its own entry (runs may overlap in
/// tests). Acceptable in a bench, not in library code.
struct Latencies;

static LATENCIES: OnceLock<Mutex<HashMap<u64, Vec<u32>>>> = OnceLock::new();
static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

impl Latencies {
    fn table() -> &'static Mutex<HashMap<u64, Vec<u32>>> {
        LATENCIES.get_or_init(Default::default)
    }
    /// A new run's id, with an empty entry.
    fn start() -> u64 {
        let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        Self::table()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run, Vec::new());
        run
    }
    /// Records `now - sent_micros` for `run`.
    fn record(run: u64, sent_micros: i64) {
        let micros = (Timestamp::now().as_micros() - sent_micros).clamp(0, i64::from(u32::MAX));
        if let Some(v) = Self::table()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&run)
        {
            v.push(micros as u32);
        }
    }
    /// Ends `run`, returning what was recorded.
    fn finish(run: u64) -> Vec<Duration> {
        Self::table()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&run)
            .unwrap_or_default()
            .into_iter()
            .map(|us| Duration::from_micros(u64::from(us)))
            .collect()
    }
}

pub(crate) fn handlers(h: &mut MessageHandlers) {
    h.on::<Note>(|tx, _env, note| {
        tx.insert(&Received {
            seq: note.seq,
            sent: note.sent_micros,
        })?;
        Latencies::record(note.run, note.sent_micros);
        Ok(())
    })
    .on::<Request>(|tx, _env, req| {
        tx.insert(&Received {
            seq: req.seq,
            sent: req.sent_micros,
        })?;
        Ok(req.seq)
    })
    .on_answer::<Request>(|tx, req, answer| {
        let ok = answer.is_ok_and(|seq| seq == req.seq);
        tx.insert(&Answered { seq: req.seq, ok })?;
        Latencies::record(req.run, req.sent_micros);
        Ok(())
    });
}

// ---- The site ------------------------------------------------------------------

/// A fresh site with the sender and recipient accounts' stores open.
pub(crate) struct BenchSite {
    site: Site,
    senders: Vec<Store>,
    recipients: Vec<Store>,
    /// The recipients' addresses (logins).
    to: Arc<Vec<String>>,
}

/// The configuration of the messaging benches' sites (the backup bench
/// adds its `[backup]` to it).
pub(crate) fn site_config() -> SiteConfig {
    SiteConfig {
        domain: DOMAIN.into(),
        ..SiteConfig::default()
    }
}

impl BenchSite {
    /// Senders of `site` sending to `to`, whose stores (maybe another
    /// site's) are `recipients`.
    pub(crate) fn of(
        site: Site,
        senders: Vec<Store>,
        recipients: Vec<Store>,
        to: Vec<String>,
    ) -> Self {
        Self {
            site,
            senders,
            recipients,
            to: Arc::new(to),
        }
    }

    async fn new(dir: &Path, config: SiteConfig) -> Result<Self, BenchError> {
        let site = Site::builder(dir)
            .with(types)
            .messages(handlers)
            .init(config)
            .await?;
        let mut senders = Vec::new();
        let mut recipients = Vec::new();
        let mut to = Vec::new();
        for i in 0..SENDERS {
            let account = site
                .accounts()
                .create(&format!("s{i}"), PASSWORD, false)
                .await?;
            senders.push(site.stores().user_store_unchecked(account.id).await?);
        }
        for i in 0..RECIPIENTS {
            let account = site
                .accounts()
                .create(&format!("r{i}"), PASSWORD, false)
                .await?;
            recipients.push(site.stores().user_store_unchecked(account.id).await?);
            to.push(account.primary);
        }
        Ok(Self {
            site,
            senders,
            recipients,
            to: Arc::new(to),
        })
    }

    /// The messages sender `s` sends: (recipient index, seq).
    fn plan(n: u64, s: usize) -> Vec<(usize, i64)> {
        (0..n)
            .filter(|i| (*i as usize) % SENDERS == s)
            .map(|i| (((i as usize) / SENDERS) % RECIPIENTS, i as i64))
            .collect()
    }

    async fn close(self) {
        drop(self.senders);
        drop(self.recipients);
        self.site.close().await;
    }
}

async fn count<T: Item>(stores: &[Store]) -> Result<u64, BenchError> {
    let mut total = 0;
    for s in stores {
        total += s.read(|r| r.query::<T>().count()).await?;
    }
    Ok(total)
}

/// Waits until `stores` hold `n` items of `T` in all; returns when that
/// was seen. Gives up (with what is parked) after a generous time.
async fn wait_for<T: Item>(
    bench: &'static str,
    site: &Site,
    stores: &[Store],
    n: u64,
) -> Result<Instant, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(120) + Duration::from_millis(n);
    loop {
        let seen = count::<T>(stores).await?;
        if seen >= n {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            let parked = site.messaging().parked().await?;
            return Err(BenchError::Check {
                bench,
                reason: format!(
                    "only {seen} of {n} messages applied in time; {} parked{}",
                    parked.len(),
                    parked
                        .first()
                        .map(|p| format!(" (first: {})", p.reason))
                        .unwrap_or_default()
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How senders send.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sending {
    /// Each sender sends its messages in transactions of [`PER_TX`], one
    /// transaction after another.
    Batched,
    /// One message per transaction, [`TASKS_PER_SENDER`] tasks per sender.
    Single,
}

/// Sends `n` messages made by `make(run, seq, sent_micros)` from every
/// sender, as `how` says; returns when every sending transaction has
/// committed, with the time since `start`.
async fn send_all<M: Message>(
    bs: &BenchSite,
    n: u64,
    how: Sending,
    make: fn(u64, i64, i64) -> M,
    run: u64,
    start: Instant,
) -> Result<Duration, BenchError> {
    let mut tasks = tokio::task::JoinSet::new();
    for (s, store) in bs.senders.iter().enumerate() {
        let plan = BenchSite::plan(n, s);
        let groups: Vec<Vec<Vec<(usize, i64)>>> = match how {
            Sending::Batched => vec![plan.chunks(PER_TX).map(<[_]>::to_vec).collect()],
            Sending::Single => (0..TASKS_PER_SENDER)
                .map(|t| {
                    plan.iter()
                        .skip(t)
                        .step_by(TASKS_PER_SENDER)
                        .map(|m| vec![*m])
                        .collect()
                })
                .collect(),
        };
        for txs in groups {
            let (store, to) = (store.clone(), bs.to.clone());
            tasks.spawn(async move {
                for msgs in txs {
                    let to = to.clone();
                    store
                        .transact(move |tx| {
                            for (r, seq) in msgs {
                                let sent = Timestamp::now().as_micros();
                                tx.send(&to[r], &make(run, seq, sent))?;
                            }
                            mantle_store::ok(())
                        })
                        .await?;
                }
                Ok::<_, BenchError>(())
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| BenchError::Task(e.to_string()))??;
    }
    Ok(start.elapsed())
}

// ---- The reference: raw rusqlite ----------------------------------------------

const REF_CREATE: &str = "CREATE TABLE IF NOT EXISTS m (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL)";
const REF_INSERT: &str = "INSERT INTO m (seq, body) VALUES (?1, ?2)";

/// The reference's two databases.
struct RefPair {
    sender: Connection,
    recipient: Connection,
}

impl RefPair {
    fn open(dir: &Path) -> Result<Self, BenchError> {
        let sender = ref_open(&dir.join("sender.db"))?;
        let recipient = ref_open(&dir.join("recipient.db"))?;
        sender.execute_batch(REF_CREATE)?;
        recipient.execute_batch(REF_CREATE)?;
        Ok(Self { sender, recipient })
    }
}

/// One commit of `seqs` rows (a message body each).
fn ref_commit(conn: &mut Connection, seqs: std::ops::Range<u64>) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(REF_INSERT)?;
        for seq in seqs {
            let body = format!(
                r#"{{"run":1,"seq":{seq},"sent_micros":{}}}"#,
                Timestamp::now().as_micros()
            );
            insert.execute(params![seq as i64, body])?;
        }
    }
    tx.commit()
}

/// The reference's figures for one run.
#[derive(Default)]
struct RefRun {
    took: Duration,
    messages: u64,
    /// Per commit group (one message each when unbatched).
    latencies: Vec<Duration>,
}

impl RefRun {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.took.as_secs_f64().max(1e-9)
    }
    fn add(&mut self, other: RefRun) {
        self.took += other.took;
        self.messages += other.messages;
        self.latencies.extend(other.latencies);
    }
}

/// `n` messages, `per_commit` per commit, each group committed in the
/// sender's, then the recipient's database (and, with `answers`, the
/// sender's again).
async fn ref_messages(
    dir: PathBuf,
    first: u64,
    n: u64,
    per_commit: u64,
    answers: bool,
) -> Result<RefRun, BenchError> {
    blocking(move || {
        let mut pair = RefPair::open(&dir)?;
        let mut latencies = Vec::new();
        let t = Instant::now();
        let end = first + n;
        let mut start = first;
        while start < end {
            let stop = (start + per_commit.max(1)).min(end);
            let t0 = Instant::now();
            ref_commit(&mut pair.sender, start..stop)?;
            ref_commit(&mut pair.recipient, start..stop)?;
            if answers {
                ref_commit(&mut pair.sender, start..stop)?;
            }
            latencies.push(t0.elapsed());
            start = stop;
        }
        let took = t.elapsed();
        let rows: i64 = pair.recipient.query_row(
            "SELECT count(*) FROM m WHERE seq >= ?1 AND seq < ?2",
            params![first as i64, end as i64],
            |r| r.get(0),
        )?;
        if rows as u64 != n {
            return Err(BenchError::Check {
                bench: "messaging reference",
                reason: format!("expected {n} rows, found {rows}"),
            });
        }
        Ok(RefRun {
            took,
            messages: n,
            latencies,
        })
    })
    .await
}

/// Both references, each split in two halves around `ours`.
struct References {
    single: RefRun,
    batched: Option<RefRun>,
}

async fn with_references<F, Fut, R>(
    dir: &BenchDir,
    scale: f64,
    answers: bool,
    batched: bool,
    ours: F,
) -> Result<(R, References), BenchError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<R, BenchError>>,
{
    let n_single = scaled(REF_MESSAGES, scale);
    let n_batched = scaled(REF_BATCHED_MESSAGES, scale).max(PER_TX as u64);
    let (single_dir, batched_dir) = (dir.join("reference"), dir.join("reference-batched"));
    std::fs::create_dir_all(&single_dir)?;
    std::fs::create_dir_all(&batched_dir)?;
    let halves = |n: u64| [(0, n / 2), (n / 2, n - n / 2)];

    let mut single = RefRun::default();
    let mut batch = RefRun::default();
    let (s, b) = (halves(n_single), halves(n_batched));
    let per = PER_TX as u64;
    if s[0].1 > 0 {
        single.add(ref_messages(single_dir.clone(), s[0].0, s[0].1, 1, answers).await?);
    }
    if batched && b[0].1 > 0 {
        batch.add(ref_messages(batched_dir.clone(), b[0].0, b[0].1, per, answers).await?);
    }
    let r = ours().await?;
    single.add(ref_messages(single_dir, s[1].0, s[1].1, 1, answers).await?);
    if batched {
        batch.add(ref_messages(batched_dir, b[1].0, b[1].1, per, answers).await?);
    }
    Ok((
        r,
        References {
            single,
            batched: batched.then_some(batch),
        },
    ))
}

// ---- The benches ---------------------------------------------------------------

pub(crate) fn note(run: u64, seq: i64, sent_micros: i64) -> Note {
    Note {
        run,
        seq,
        sent_micros,
    }
}

fn request(run: u64, seq: i64, sent_micros: i64) -> Request {
    Request {
        run,
        seq,
        sent_micros,
    }
}

/// Our side's figures.
pub(crate) struct Ours {
    /// From the first send until every message was seen applied.
    pub(crate) took: Duration,
    /// When the last sending transaction had committed.
    pub(crate) sent: Duration,
    /// Each message's latency (see the module's doc).
    pub(crate) latencies: Vec<Duration>,
}

/// Sends `n` messages made by `make` and times them until `already + n`
/// items `T` are found in `until` (what the handlers write when they are
/// done; `already` were there before).
pub(crate) async fn timed_sends<M: Message, T: Item>(
    name: &'static str,
    bs: &BenchSite,
    (n, already): (u64, u64),
    how: Sending,
    make: fn(u64, i64, i64) -> M,
    until: &[Store],
) -> Result<Ours, BenchError> {
    let run = Latencies::start();
    let t = Instant::now();
    let (sent, done) = tokio::join!(
        send_all(bs, n, how, make, run, t),
        wait_for::<T>(name, &bs.site, until, already + n)
    );
    let latencies = Latencies::finish(run);
    Ok(Ours {
        took: done? - t,
        sent: sent?,
        latencies,
    })
}

fn record(
    name: &str,
    op: &str,
    n: u64,
    scale: f64,
    ours: Ours,
    refs: References,
    per_tx: u64,
) -> BenchRecord {
    let Ours {
        took,
        mut latencies,
        ..
    } = ours;
    let References {
        mut single,
        batched,
    } = refs;
    let mut rec = BenchRecord::new(name, op, n, scale, took, Duration::ZERO);
    let ref_rate = single.rate();
    rec.reference_ops_per_s = crate::report::round(ref_rate, 1);
    rec.reference_secs = crate::report::round(single.took.as_secs_f64(), 4);
    rec.ratio = crate::report::round(rec.ours_ops_per_s / ref_rate.max(1e-9), 3);
    if let Some(b) = &batched {
        rec.reference_batched_ops_per_s = Some(crate::report::round(b.rate(), 1));
        rec.batched_ratio = Some(crate::report::round(
            rec.ours_ops_per_s / b.rate().max(1e-9),
            3,
        ));
    }
    rec.p50_ms = percentile_ms(&mut latencies, 0.5);
    rec.p99_ms = percentile_ms(&mut latencies, 0.99);
    rec.reference_p50_ms = percentile_ms(&mut single.latencies, 0.5);
    rec.reference_p99_ms = percentile_ms(&mut single.latencies, 0.99);
    rec.items = Some(n);
    rec.per_tx = Some(per_tx);
    rec.senders = Some(SENDERS as u64);
    rec.recipients = Some(RECIPIENTS as u64);
    rec
}

async fn one_way(scale: f64, base: &Path, how: Sending) -> Result<BenchRecord, BenchError> {
    let (name, n) = match how {
        Sending::Batched => ("messages_one_way", scaled(ONE_WAY_MESSAGES, scale)),
        Sending::Single => ("messages_one_way_single", scaled(SINGLE_MESSAGES, scale)),
    };
    let dir = BenchDir::new(base, name)?;
    let bs = BenchSite::new(&dir.join("site"), site_config()).await?;
    let (ours, refs) = with_references(&dir, scale, false, how == Sending::Batched, || {
        timed_sends::<_, Received>(name, &bs, (n, 0), how, note, &bs.recipients)
    })
    .await?;
    let received = count::<Received>(&bs.recipients).await?;
    let handled = ours.latencies.len() as u64;
    bs.close().await;
    check(name, received == n, || {
        format!("expected {n} items at the recipients, found {received}")
    })?;
    check(name, handled >= n, || {
        format!("the handler ran {handled} times for {n} messages")
    })?;

    let per_tx = match how {
        Sending::Batched => PER_TX as u64,
        Sending::Single => 1,
    };
    let sent_secs = ours.sent.as_secs_f64();
    let mut rec = record(name, "message", n, scale, ours, refs, per_tx);
    rec.reference_commits_per_op = Some(2);
    rec.p99_of = Some(
        "one message, from send (inside the sending transaction) to its handler running in \
         the recipient's transaction (that transaction's commit not included)"
            .into(),
    );
    rec.target = Some(TARGET.into());
    rec.note = Some(match how {
        Sending::Batched => format!(
            "{SENDERS} sender stores → {RECIPIENTS} recipient stores on one site, each sender \
             one transaction after another of {PER_TX} messages; timed until all are read \
             back at the recipients (polled every {} ms); reference: INSERT+COMMIT in a \
             sender db then in a recipient db per message (reference_batched: {PER_TX} per \
             commit), synchronous=FULL, half before ours, half after",
            POLL.as_millis()
        ),
        Sending::Single => {
            rec.concurrency = Some((SENDERS * TASKS_PER_SENDER) as u64);
            format!(
                "as messages_one_way, but one message per sending transaction, from \
                 {TASKS_PER_SENDER} concurrent tasks per sender (group commit merges them); \
                 reference: one message per commit on each side"
            )
        }
    });
    add_sent(&mut rec, sent_secs);
    Ok(rec)
}

async fn round_trip(scale: f64, base: &Path) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "messages_round_trip";
    let n = scaled(ROUND_TRIPS, scale);
    let dir = BenchDir::new(base, NAME)?;
    let bs = BenchSite::new(&dir.join("site"), site_config()).await?;
    let (ours, refs) = with_references(&dir, scale, true, true, || {
        timed_sends::<_, Answered>(NAME, &bs, (n, 0), Sending::Batched, request, &bs.senders)
    })
    .await?;
    let received = count::<Received>(&bs.recipients).await?;
    let answered = count::<Answered>(&bs.senders).await?;
    let mut ok = 0;
    for s in &bs.senders {
        ok += s
            .read(|r| r.query::<Answered>().filter(Answered::OK.eq(true)).count())
            .await?;
    }
    bs.close().await;
    check(NAME, received == n && answered == n && ok == n, || {
        format!(
            "expected {n} requests applied and {n} good answers; applied {received}, \
                 answered {answered}, good {ok}"
        )
    })?;
    let sent_secs = ours.sent.as_secs_f64();
    let mut rec = record(NAME, "round trip", n, scale, ours, refs, PER_TX as u64);
    rec.reference_commits_per_op = Some(3);
    rec.p99_of = Some(
        "one round trip, from send (inside the sending transaction) to the answer handler \
         running in the sender's transaction (that transaction's commit not included)"
            .into(),
    );
    rec.note = Some(format!(
        "{SENDERS} sender stores → {RECIPIENTS} recipient stores, requests sent {PER_TX} per \
         transaction; each is applied at the recipient (one item, answer recorded) and its \
         answer applied at the sender (one item); timed until all answers are read back at \
         the senders; reference: per round trip INSERT+COMMIT in the sender db, in the \
         recipient db, and in the sender db again (reference_batched: {PER_TX} per commit), \
         synchronous=FULL, half before ours, half after"
    ));
    add_sent(&mut rec, sent_secs);
    Ok(rec)
}

/// Adds when the senders were done to the note: latencies past that point
/// are spent waiting behind the backlog they built up.
fn add_sent(rec: &mut BenchRecord, sent_secs: f64) {
    if let Some(note) = &mut rec.note {
        note.push_str(&format!(
            "; all sending transactions had committed {sent_secs:.2} s after the start \
             (senders send as fast as they can, so latencies include the wait behind that \
             backlog)"
        ));
    }
}

// ---- One-way rounds on one site, for other areas ----------------------------

/// A site of `messages_one_way` (its sender and recipient stores) kept
/// open for several timed rounds, each sending and applying messages as
/// that bench does: the backup bench times it with and without
/// `[backup] target`.
pub(crate) struct OneWaySite {
    bs: BenchSite,
    /// Messages applied by the rounds so far.
    applied: u64,
}

impl OneWaySite {
    /// A fresh site in `dir` (made if missing) with `config`.
    pub(crate) async fn new(dir: &Path, config: SiteConfig) -> Result<Self, BenchError> {
        Ok(Self {
            bs: BenchSite::new(dir, config).await?,
            applied: 0,
        })
    }

    pub(crate) fn site(&self) -> &Site {
        &self.bs.site
    }

    /// Sends `n` one-way messages as `messages_one_way` does ([`PER_TX`]
    /// per sending transaction, each sender one transaction after another)
    /// and times them until all are applied at the recipients.
    pub(crate) async fn round(&mut self, name: &'static str, n: u64) -> Result<Ours, BenchError> {
        let bs = &self.bs;
        let ours = timed_sends::<_, Received>(
            name,
            bs,
            (n, self.applied),
            Sending::Batched,
            note,
            &bs.recipients,
        )
        .await?;
        self.applied += n;
        let handled = ours.latencies.len() as u64;
        check(name, handled >= n, || {
            format!("the handler ran {handled} times for {n} messages")
        })?;
        Ok(ours)
    }

    /// Checks the recipients hold one item per message sent, and closes
    /// the site.
    pub(crate) async fn close(self, name: &'static str) -> Result<(), BenchError> {
        let received = count::<Received>(&self.bs.recipients).await;
        self.bs.close().await;
        let (received, n) = (received?, self.applied);
        check(name, received == n, || {
            format!("expected {n} items at the recipients, found {received}")
        })
    }
}
