//! The live benches: commands over AMP through the real client, and model
//! deltas fanned out to many observers, against plain TCP moving the same
//! bytes.
//!
//! Every bench builds a fresh site (durability `full`, the default) with
//! the live layer installed, one account, a trivial command (`Sum {a, b}
//! -> {total}`) and one observed model (`notes`, in the account's store),
//! and serves it over AMP on loopback (`amp::start_on`). Clients are
//! [`mantle_client::Client`]s in the same process, logged in as that
//! account.
//!
//! The references are "the ceiling": plain tokio TCP on loopback, in the
//! same process, doing only the byte traffic — an echo server sent the
//! same AMP request box the client sends (read back byte for byte), and a
//! loop writing the same `Delta` box the server pushes to as many plain
//! sockets as there are observers. They parse nothing they need not, log
//! nobody in, read no store and commit nothing, so a ratio says how much
//! of the ceiling the whole stack reaches.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use mantle_client::{CallError, Client, ClientOptions, Credentials, ModelEvent, Subscription};
use mantle_live::builtin::{Delta, DeltaArgs};
use mantle_live::{Arguments, Command, NoError, arguments, codec};
use mantle_live_server::{Failure, Live};
use mantle_site::{Account, RunningService, Site, SiteConfig};
use mantle_store::{Id, Item, ReadTx, Registry};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::BenchError;
use crate::report::{BenchRecord, percentile_ms};
use crate::store::{BenchDir, check, scaled};

/// The benches [`run_live`] runs, in order; each emits one record of its
/// name.
pub const LIVE_BENCHES: &[&str] = &["amp_calls_1", "amp_calls_100", "observer_latency_1000"];

/// Options of the live benches (see [`BenchOptions`](crate::BenchOptions)).
pub type LiveBenchOptions = crate::BenchOptions;

/// Calls in flight at once in `amp_calls_100` (both sides).
pub const IN_FLIGHT: usize = 100;
/// Observers of the model in `observer_latency_1000` at scale 1.0.
pub const OBSERVERS: u64 = 1_000;

// Sizes at scale 1.0.
const CALLS_1: u64 = 50_000;
const CALLS_100: u64 = 200_000;
const CHANGES: u64 = 100;
/// Rounds each side of the call benches is split in.
const ROUNDS: u64 = 4;
/// Time between two changes of the observed model.
const SPACING: Duration = Duration::from_millis(20);
/// Connections opened at once while setting up observers.
const CONNECTING: usize = 64;
/// How long observers may wait for the last delta after the last change.
const GRACE: Duration = Duration::from_secs(30);

const DOMAIN: &str = "bench.test";
const PASSWORD: &str = "bench password, not secret";
const MODEL: &str = "notes";
/// The first `a` of the calls (so every request has as many digits).
const FIRST_A: i64 = 1_000_000;

/// Runs the live benches (all, or `opts.only`), calling `emit` with each
/// record as soon as it is measured.
///
/// | bench | work (scale 1.0) | one op |
/// |---|---|---|
/// | `amp_calls_1` | 50,000 `Sum` calls through one logged-in [`Client`], one in flight; reference: the same request box echoed by a plain TCP server, one in flight | call |
/// | `amp_calls_100` | 200,000 calls from 100 tasks sharing one client (100 in flight on one connection); reference: the echo with 100 requests pipelined on one connection | call |
/// | `observer_latency_1000` | 1,000 clients (one connection each) observe `notes`; 100 changes 20 ms apart, each a store transaction that calls `publish`; every observer must get every delta; reference: the same `Delta` box written to 1,000 plain sockets | delivery |
///
/// For the calls, each side runs in four rounds, alternating (reference,
/// ours, ours, reference, …) after an untimed warm-up of both; latencies
/// are per call. For the
/// observers, `p50_ms`/`p99_ms` are commit-to-observer latencies over all
/// observers × changes: from a time taken inside the changing transaction
/// (just before its commit; the delta carries it) to the observer's
/// client handing the delta to the application. Deliveries per second
/// count the time during which some change was being fanned out (from a
/// change's commit to its last observer), so the 20 ms spacing between
/// changes is not counted. Needs an open-file limit of about two
/// descriptors per observer (raised to the hard limit first).
///
/// Errors: [`BenchError::UnknownBench`] for an unknown `only`; site,
/// store, connection and file errors; [`BenchError::Check`] if an answer
/// is wrong, an echo differs from the request, or an observer misses a
/// delta.
pub async fn run_live(
    opts: &LiveBenchOptions,
    emit: &mut dyn FnMut(BenchRecord),
) -> Result<(), BenchError> {
    opts.check_only(LIVE_BENCHES)?;
    let workspace = opts.workspace()?;
    let base = workspace.path().to_path_buf();
    let scale = opts.scale;
    if opts.wants("amp_calls_1") {
        let base = base.clone();
        emit(on_worker(async move { amp_calls("amp_calls_1", scale, &base, 1).await }).await?);
    }
    if opts.wants("amp_calls_100") {
        let base = base.clone();
        emit(
            on_worker(async move { amp_calls("amp_calls_100", scale, &base, IN_FLIGHT).await })
                .await?,
        );
    }
    if opts.wants("observer_latency_1000") {
        let base = base.clone();
        emit(on_worker(async move { observer_latency(scale, &base).await }).await?);
    }
    Ok(())
}

/// Runs a bench as a task of the runtime, so that both of its sides run on
/// the runtime's worker threads whatever thread polls [`run_live`]. (A
/// future polled by `block_on` on another thread pays a cross-thread
/// wake-up on every I/O; on the standard machine that makes a one-in-flight
/// echo 5–6 times slower.)
async fn on_worker<F>(bench: F) -> Result<BenchRecord, BenchError>
where
    F: std::future::Future<Output = Result<BenchRecord, BenchError>> + Send + 'static,
{
    tokio::spawn(bench)
        .await
        .map_err(|e| BenchError::Task(e.to_string()))?
}

// ---- The offering ----------------------------------------------------------------

arguments! {
    struct SumArgs { a: i64, b: i64 }
    struct SumAnswer { total: i64 }
}

/// The trivial command the call benches make.
struct Sum;

impl Command for Sum {
    const NAME: &'static str = "Sum";
    type Args = SumArgs;
    type Answer = SumAnswer;
    type Error = NoError;
}

/// What each change of the model stores.
#[derive(Item, Debug, Clone)]
#[item(name = "bench_live_note", version = 1)]
struct LiveNote {
    change: i64,
    t: i64,
}

/// The delta published for each change.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Change {
    change: i64,
    /// µs since the bench's base instant, taken inside the changing
    /// transaction, just before it commits (reference: just before the
    /// writes).
    t: i64,
}

fn types(registry: &mut Registry) {
    registry.register::<LiveNote>();
}

fn snapshot(r: &ReadTx, _key: &str) -> mantle_store::Result<serde_json::Value> {
    Ok(serde_json::json!({ "changes": r.query::<LiveNote>().count()? }))
}

fn offering(live: &mut Live) {
    live.command::<Sum, _, _>(|_caller, a| async move {
        Ok::<_, Failure<NoError>>(SumAnswer { total: a.a + a.b })
    })
    .model(
        MODEL,
        |caller, _key| async move { caller.store().await.map_err(Failure::internal) },
        snapshot,
    );
}

fn live_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Live(e.to_string())
}

/// Microseconds since `base`.
fn micros(base: Instant) -> i64 {
    base.elapsed().as_micros() as i64
}

// ---- The site ----------------------------------------------------------------------

/// A fresh site with the live offering, one account and an AMP listener
/// on loopback.
struct LiveSite {
    site: Site,
    amp: Option<RunningService>,
    addr: SocketAddr,
    /// The account's address (its primary login).
    user: String,
    account: Id<Account>,
}

impl LiveSite {
    async fn new(dir: &Path) -> Result<Self, BenchError> {
        let site = mantle_live_server::install(mantle_web::install(Site::builder(dir).with(types)))
            .extension::<Live>(offering)
            .init(SiteConfig {
                domain: DOMAIN.into(),
                ..SiteConfig::default()
            })
            .await?;
        let account = site.accounts().create("bench", PASSWORD, false).await?;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let amp = mantle_live_server::amp::start_on(&site, loopback).await?;
        let addr = amp
            .address
            .as_deref()
            .and_then(|a| a.strip_prefix("amp://"))
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            amp.stop().await;
            site.close().await;
            return Err(BenchError::Live("the AMP listener gave no address".into()));
        };
        Ok(Self {
            site,
            amp: Some(amp),
            addr,
            user: account.primary,
            account: account.id,
        })
    }

    /// Options of a client of this site: no reconnection (a lost
    /// connection must show, not be papered over).
    fn client_options(&self, credentials: Credentials) -> ClientOptions {
        let mut o = ClientOptions::new(self.addr.to_string());
        o.credentials = Some(credentials);
        o.reconnect = false;
        o
    }

    fn observers(&self) -> usize {
        self.site.extension::<Live>().map_or(0, Live::observers)
    }

    async fn close(mut self) {
        if let Some(amp) = self.amp.take() {
            amp.stop().await;
        }
        self.site.close().await;
    }
}

// ---- Calls -------------------------------------------------------------------------

/// One side's run: its time and its per-operation latencies.
#[derive(Default)]
struct Run {
    took: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.took += other.took;
        self.latencies.extend(other.latencies);
    }
}

/// The bytes of the request box our client sends for a `Sum` call (the
/// same arguments and a tag as long as the client's at call `n`).
fn sum_request(n: u64) -> Result<Vec<u8>, BenchError> {
    let args = serde_json::to_value(SumArgs { a: FIRST_A, b: 1 }).map_err(live_err)?;
    let fields = args
        .as_object()
        .ok_or_else(|| live_err("arguments are not a struct"))?;
    let b = codec::to_amp(fields, SumArgs::schema()).map_err(live_err)?;
    let tag = format!("{:x}", n.max(1));
    let request = mantle_amp::frame::request(Sum::NAME.as_bytes(), Some(tag.as_bytes()), b);
    mantle_amp::encode(&request).map_err(live_err)
}

/// `n` calls of `Sum` from `tasks` tasks sharing `client`, each call
/// checked.
async fn our_calls(
    bench: &'static str,
    client: &Client,
    n: u64,
    tasks: usize,
) -> Result<Run, BenchError> {
    let start = Instant::now();
    let mut set = JoinSet::new();
    let tasks = tasks.max(1) as u64;
    for t in 0..tasks {
        let client = client.clone();
        let count = n / tasks + u64::from(t < n % tasks);
        set.spawn(async move {
            let mut latencies = Vec::with_capacity(count as usize);
            for i in 0..count {
                let a = FIRST_A + i as i64;
                let t0 = Instant::now();
                let answer = client
                    .call::<Sum>(SumArgs { a, b: 1 })
                    .await
                    .map_err(|e: CallError<NoError>| live_err(format!("Sum: {e}")))?;
                latencies.push(t0.elapsed());
                check(bench, answer.total == a + 1, || {
                    format!("Sum({a}, 1) answered {}", answer.total)
                })?;
            }
            Ok::<_, BenchError>(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(n as usize);
    while let Some(done) = set.join_next().await {
        latencies.extend(done.map_err(|e| BenchError::Task(e.to_string()))??);
    }
    Ok(Run {
        took: start.elapsed(),
        latencies,
    })
}

/// A plain TCP echo server on loopback; abort the task to stop it.
async fn echo_server() -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BenchError> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            connections.spawn(async move {
                let (mut rd, mut wr) = stream.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    Ok((addr, task))
}

/// `n` requests echoed by the server at `addr`, `depth` in flight on one
/// connection; every echo is checked against the request.
async fn echo_calls(
    bench: &'static str,
    addr: SocketAddr,
    request: &[u8],
    n: u64,
    depth: usize,
) -> Result<Run, BenchError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    if depth <= 1 {
        return echo_one_at_a_time(bench, stream, request, n).await;
    }
    let len = request.len();
    let (mut rd, mut wr) = stream.into_split();
    let permits = std::sync::Arc::new(Semaphore::new(depth));
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Instant>();
    let start = Instant::now();
    // The writer sends as many requests as there are free slots, in one
    // write.
    let writer = tokio::spawn({
        let permits = permits.clone();
        let request = request.to_vec();
        async move {
            let mut left = n;
            let mut buf = Vec::with_capacity(len * depth);
            while left > 0 {
                permits
                    .acquire()
                    .await
                    .map_err(|e| BenchError::Task(e.to_string()))?
                    .forget();
                let mut k = 1;
                while k < left {
                    match permits.try_acquire() {
                        Ok(p) => {
                            p.forget();
                            k += 1;
                        }
                        Err(_) => break,
                    }
                }
                buf.clear();
                let now = Instant::now();
                for _ in 0..k {
                    buf.extend_from_slice(&request);
                    let _ = sent_tx.send(now);
                }
                wr.write_all(&buf).await?;
                left -= k;
            }
            Ok::<_, BenchError>(wr)
        }
    });
    let mut latencies = Vec::with_capacity(n as usize);
    let mut pending: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    let read = async {
        while got < n {
            let m = rd.read(&mut chunk).await?;
            if m == 0 {
                return Err(BenchError::Check {
                    bench,
                    reason: format!("the echo server closed after {got} of {n} echoes"),
                });
            }
            pending.extend_from_slice(&chunk[..m]);
            let mut at = 0;
            let mut done = 0;
            while pending.len() - at >= len {
                check(bench, pending[at..at + len] == *request, || {
                    "an echo differs from the request".into()
                })?;
                at += len;
                done += 1;
                let sent = sent_rx
                    .recv()
                    .await
                    .ok_or_else(|| BenchError::Task("the echo writer stopped".into()))?;
                latencies.push(sent.elapsed());
            }
            pending.drain(..at);
            got += done;
            permits.add_permits(done as usize);
        }
        Ok(())
    }
    .await;
    let took = start.elapsed();
    if read.is_err() {
        // Unblocks the writer if it waits for a free slot.
        permits.close();
    }
    let written = writer.await;
    read?;
    drop(written.map_err(|e| BenchError::Task(e.to_string()))??);
    Ok(Run { took, latencies })
}

async fn echo_one_at_a_time(
    bench: &'static str,
    mut stream: TcpStream,
    request: &[u8],
    n: u64,
) -> Result<Run, BenchError> {
    let mut latencies = Vec::with_capacity(n as usize);
    let mut back = vec![0u8; request.len()];
    let start = Instant::now();
    for _ in 0..n {
        let t0 = Instant::now();
        stream.write_all(request).await?;
        stream.read_exact(&mut back).await?;
        latencies.push(t0.elapsed());
        check(bench, back == request, || {
            "an echo differs from the request".into()
        })?;
    }
    Ok(Run {
        took: start.elapsed(),
        latencies,
    })
}

async fn amp_calls(
    name: &'static str,
    scale: f64,
    base: &Path,
    depth: usize,
) -> Result<BenchRecord, BenchError> {
    let n = match depth {
        1 => scaled(CALLS_1, scale),
        _ => scaled(CALLS_100, scale).max(depth as u64),
    };
    let dir = BenchDir::new(base, name)?;
    let (echo_addr, echo) = echo_server().await?;
    let ls = match LiveSite::new(&dir.join("site")).await {
        Ok(ls) => ls,
        Err(e) => {
            echo.abort();
            return Err(e);
        }
    };
    let measured = async {
        let client = Client::connect(ls.client_options(Credentials::Password {
            username: ls.user.clone(),
            password: PASSWORD.into(),
        }))
        .await
        .map_err(live_err)?;
        let request = sum_request(n + 1)?;
        let warm = (n / 10).clamp(1, 1_000);
        our_calls(name, &client, warm, depth).await?;
        echo_calls(name, echo_addr, &request, warm, depth).await?;

        // Rounds alternate (reference, ours, ours, reference, …), so a
        // drift in background load falls on both sides.
        let (mut ours, mut reference) = (Run::default(), Run::default());
        for round in 0..ROUNDS {
            let count = n / ROUNDS + u64::from(round < n % ROUNDS);
            if count == 0 {
                continue;
            }
            if round % 2 == 0 {
                reference.add(echo_calls(name, echo_addr, &request, count, depth).await?);
                ours.add(our_calls(name, &client, count, depth).await?);
            } else {
                ours.add(our_calls(name, &client, count, depth).await?);
                reference.add(echo_calls(name, echo_addr, &request, count, depth).await?);
            }
        }
        client.close();
        Ok::<_, BenchError>((ours, reference, request.len()))
    }
    .await;
    echo.abort();
    ls.close().await;
    let (mut ours, mut reference, request_len) = measured?;
    check(name, ours.latencies.len() as u64 == n, || {
        format!("{} of {n} calls timed", ours.latencies.len())
    })?;

    let mut rec = BenchRecord::new(name, "call", n, scale, ours.took, reference.took);
    rec.p50_ms = percentile_ms(&mut ours.latencies, 0.5);
    rec.p99_ms = percentile_ms(&mut ours.latencies, 0.99);
    rec.reference_p50_ms = percentile_ms(&mut reference.latencies, 0.5);
    rec.reference_p99_ms = percentile_ms(&mut reference.latencies, 0.99);
    rec.p99_of = Some(
        "one call, from Client::call to its decoded answer (reference: from writing the \
         request to reading back its last echoed byte)"
            .into(),
    );
    rec.concurrency = Some(depth as u64);
    rec.items = Some(n);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let how = if depth == 1 {
        "one call in flight".to_string()
    } else {
        format!(
            "{depth} tasks sharing one client, so {depth} calls in flight on its one connection"
        )
    };
    rec.note = Some(format!(
        "ours: Sum {{a, b}} -> {{total}} through mantle_client::Client (logged in with a \
         password) to the site's AMP listener on loopback, {how}; each call is encoded, \
         tagged, dispatched to the handler as the logged-in user, answered and decoded, \
         and its total checked; reference: a plain tokio TCP echo server on loopback sent \
         the same {request_len}-byte AMP request box and read back byte for byte, {}; each \
         side in {ROUNDS} rounds, alternating (reference, ours, ours, reference), after an \
         untimed warm-up of both; \
         client and server share the machine's {cores} cores",
        if depth == 1 {
            "one in flight (write, read back, repeat)".to_string()
        } else {
            format!(
                "{depth} requests pipelined on one connection (a writer fills the free \
                 slots in one write, the reader frees a slot per echo)"
            )
        }
    ));
    Ok(rec)
}

// ---- Observers ---------------------------------------------------------------------

/// One delta as one observer received it (µs since the base instant).
#[derive(Clone, Copy)]
struct Receipt {
    change: i64,
    sent: i64,
    at: i64,
}

/// What one side's fan-out measured.
#[derive(Default)]
struct Fanout {
    /// Per observer, what it received.
    receipts: Vec<Vec<Receipt>>,
}

impl Fanout {
    fn add(&mut self, other: Fanout) {
        if self.receipts.is_empty() {
            self.receipts = other.receipts;
        } else {
            for (mine, theirs) in self.receipts.iter_mut().zip(other.receipts) {
                mine.extend(theirs);
            }
        }
    }

    /// Checks that each of `observers` received each of `changes` exactly
    /// once.
    fn check(
        &self,
        bench: &'static str,
        side: &str,
        observers: u64,
        changes: u64,
    ) -> Result<(), BenchError> {
        let expected = observers * changes;
        let mut complete = 0;
        let mut delivered = 0;
        for r in &self.receipts {
            let mut seen: Vec<i64> = r.iter().map(|x| x.change).collect();
            seen.sort_unstable();
            seen.dedup();
            delivered += r.len() as u64;
            if seen.len() == r.len() && seen == (0..changes as i64).collect::<Vec<_>>() {
                complete += 1;
            }
        }
        check(
            bench,
            self.receipts.len() as u64 == observers && complete == observers,
            || {
                format!(
                    "{side}: {delivered} of {expected} deliveries; {complete} of {observers} \
                     observers got every delta exactly once"
                )
            },
        )
    }

    /// Commit-to-observer latencies.
    fn latencies(&self) -> Vec<Duration> {
        self.receipts
            .iter()
            .flatten()
            .map(|r| Duration::from_micros((r.at - r.sent).max(0) as u64))
            .collect()
    }

    /// The time during which some change was being fanned out: the union
    /// of the spans from each change's time to its last receipt.
    fn busy(&self) -> Duration {
        let mut spans: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
        for r in self.receipts.iter().flatten() {
            let span = spans.entry(r.change).or_insert((r.sent, r.at));
            span.1 = span.1.max(r.at);
        }
        let mut spans: Vec<(i64, i64)> = spans.into_values().collect();
        spans.sort_unstable();
        let (mut total, mut end) = (0i64, i64::MIN);
        for (s, e) in spans {
            let s = s.max(end);
            if e > s {
                total += e - s;
            }
            end = end.max(e);
        }
        Duration::from_micros(total.max(1) as u64)
    }

    fn deliveries(&self) -> u64 {
        self.receipts.iter().map(|r| r.len() as u64).sum()
    }
}

/// The bytes of the `Delta` push the server sends for `change` as
/// sequence `sequence` of the model.
fn delta_bytes(sequence: i64, change: &Change) -> Result<Vec<u8>, BenchError> {
    let args = DeltaArgs {
        model: MODEL.into(),
        sequence,
        delta: serde_json::to_value(change).map_err(live_err)?,
    };
    let value = serde_json::to_value(&args).map_err(live_err)?;
    let fields = value
        .as_object()
        .ok_or_else(|| live_err("delta arguments are not a struct"))?;
    let b = codec::to_amp(fields, DeltaArgs::schema()).map_err(live_err)?;
    mantle_amp::encode(&mantle_amp::frame::request(Delta::NAME.as_bytes(), None, b))
        .map_err(live_err)
}

/// Our side: `observers` clients observing the model, `changes` changes
/// committed `SPACING` apart.
async fn our_fanout(
    bench: &'static str,
    ls: &LiveSite,
    observers: u64,
    changes: u64,
    base: Instant,
) -> Result<Fanout, BenchError> {
    let token = ls.site.auth().issue_token(ls.account, "bench").await?.token;
    let options = ls.client_options(Credentials::Token(token));
    let subs: Vec<(Client, Subscription)> = futures::stream::iter(0..observers)
        .map(|_| {
            let options = options.clone();
            async move {
                let client = Client::connect(options).await.map_err(live_err)?;
                let mut sub = client.observe(MODEL).await.map_err(live_err)?;
                match sub.next().await {
                    Some(ModelEvent::Snapshot { .. }) => Ok((client, sub)),
                    other => Err(BenchError::Check {
                        bench,
                        reason: format!("an observation began with {other:?}, not a snapshot"),
                    }),
                }
            }
        })
        .buffer_unordered(CONNECTING)
        .try_collect()
        .await?;
    let registered = ls.observers();
    check(bench, registered as u64 == observers, || {
        format!("the server has {registered} observers, not {observers}")
    })?;

    let deadline = tokio::time::Instant::now() + SPACING * changes as u32 + GRACE;
    let mut tasks = JoinSet::new();
    for (i, (client, mut sub)) in subs.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut got = Vec::with_capacity(changes as usize);
            while (got.len() as u64) < changes {
                match tokio::time::timeout_at(deadline, sub.next()).await {
                    Ok(Some(ModelEvent::Delta { value, .. })) => {
                        let at = micros(base);
                        if let Ok(c) = serde_json::from_value::<Change>(value) {
                            got.push(Receipt {
                                change: c.change,
                                sent: c.t,
                                at,
                            });
                        }
                    }
                    // A new snapshot: deltas were skipped (the count
                    // check reports it).
                    Ok(Some(ModelEvent::Snapshot { .. })) => {}
                    Ok(Some(ModelEvent::Ended { .. }) | None) | Err(_) => break,
                }
            }
            drop(sub);
            drop(client);
            (i, got)
        });
    }

    let store = ls.site.stores().user_store_unchecked(ls.account).await?;
    let mut ticker = tokio::time::interval(SPACING);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for k in 0..changes as i64 {
        ticker.tick().await;
        store
            .transact(move |tx| {
                let t = micros(base);
                tx.insert(&LiveNote { change: k, t })?;
                mantle_live_server::publish(tx, MODEL, &Change { change: k, t })?;
                mantle_store::ok(())
            })
            .await?;
    }
    drop(store);
    collect(tasks, observers).await
}

/// Gathers the observer tasks' receipts, in observer order.
async fn collect(
    mut tasks: JoinSet<(usize, Vec<Receipt>)>,
    observers: u64,
) -> Result<Fanout, BenchError> {
    let mut receipts = vec![Vec::new(); observers as usize];
    while let Some(done) = tasks.join_next().await {
        let (i, got) = done.map_err(|e| BenchError::Task(e.to_string()))?;
        receipts[i] = got;
    }
    Ok(Fanout { receipts })
}

/// Reads one AMP box from `r` and returns its `delta` value.
async fn read_delta<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut delta = None;
    loop {
        let key_len = r.read_u16().await? as usize;
        if key_len == 0 {
            return Ok(delta);
        }
        let mut key = vec![0u8; key_len];
        r.read_exact(&mut key).await?;
        let value_len = r.read_u16().await? as usize;
        let mut value = vec![0u8; value_len];
        r.read_exact(&mut value).await?;
        if key == b"delta" {
            delta = Some(value);
        }
    }
}

/// The reference: `changes` `Delta` boxes (sequences from `first`),
/// `SPACING` apart, each written to `observers` plain sockets in a loop;
/// each receiver reads boxes and parses the delta's JSON.
async fn reference_fanout(
    observers: u64,
    first: i64,
    changes: u64,
    base: Instant,
) -> Result<Fanout, BenchError> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let accept = tokio::spawn(async move {
        let mut sockets = Vec::with_capacity(observers as usize);
        while (sockets.len() as u64) < observers {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            sockets.push(s);
        }
        Ok::<_, std::io::Error>(sockets)
    });
    let receivers: Vec<TcpStream> = futures::stream::iter(0..observers)
        .map(|_| async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok::<_, std::io::Error>(s)
        })
        .buffer_unordered(CONNECTING)
        .try_collect()
        .await?;
    let mut sockets = accept
        .await
        .map_err(|e| BenchError::Task(e.to_string()))??;

    let deadline = tokio::time::Instant::now() + SPACING * changes as u32 + GRACE;
    let mut tasks = JoinSet::new();
    for (i, s) in receivers.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut r = BufReader::new(s);
            let mut got = Vec::with_capacity(changes as usize);
            while (got.len() as u64) < changes {
                match tokio::time::timeout_at(deadline, read_delta(&mut r)).await {
                    Ok(Ok(Some(delta))) => {
                        let at = micros(base);
                        if let Ok(c) = serde_json::from_slice::<Change>(&delta) {
                            got.push(Receipt {
                                change: c.change,
                                sent: c.t,
                                at,
                            });
                        }
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            (i, got)
        });
    }

    let mut ticker = tokio::time::interval(SPACING);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for k in 0..changes as i64 {
        ticker.tick().await;
        let t = micros(base);
        let change = first + k;
        let bytes = delta_bytes(change + 1, &Change { change, t })?;
        for s in &mut sockets {
            s.write_all(&bytes).await?;
        }
    }
    let fanout = collect(tasks, observers).await;
    drop(sockets);
    fanout
}

async fn observer_latency(scale: f64, base_dir: &Path) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "observer_latency_1000";
    let observers = scaled(OBSERVERS, scale);
    let changes = scaled(CHANGES, scale);
    // Ours holds two descriptors per observer (client and server ends),
    // as does the reference (run separately), plus the site's stores.
    let limit = mantle_store::raise_open_file_limit()?;
    let needed = 2 * observers + 256;
    check(NAME, limit >= needed, || {
        format!("needs an open-file limit of at least {needed}, have {limit} (ulimit -n)")
    })?;
    let dir = BenchDir::new(base_dir, NAME)?;
    let base = Instant::now();

    // Half of the reference's changes before ours, half after.
    let first_half = changes / 2;
    let mut reference = Fanout::default();
    if first_half > 0 {
        reference.add(reference_fanout(observers, 0, first_half, base).await?);
    }
    let ls = LiveSite::new(&dir.join("site")).await?;
    let ours = our_fanout(NAME, &ls, observers, changes, base).await;
    ls.close().await;
    let ours = ours?;
    reference
        .add(reference_fanout(observers, first_half as i64, changes - first_half, base).await?);

    ours.check(NAME, "ours", observers, changes)?;
    reference.check(NAME, "reference", observers, changes)?;
    let deliveries = ours.deliveries();
    let (ours_busy, reference_busy) = (ours.busy(), reference.busy());
    let mut rec = BenchRecord::new(
        NAME,
        "delivery",
        deliveries,
        scale,
        ours_busy,
        reference_busy,
    );
    let (mut ol, mut rl) = (ours.latencies(), reference.latencies());
    rec.p50_ms = percentile_ms(&mut ol, 0.5);
    rec.p99_ms = percentile_ms(&mut ol, 0.99);
    rec.reference_p50_ms = percentile_ms(&mut rl, 0.5);
    rec.reference_p99_ms = percentile_ms(&mut rl, 0.99);
    rec.p99_of = Some(
        "one delivery: from the time taken inside the changing store transaction, just \
         before its commit, to the observer's client handing the delta to the application \
         (reference: from just before the first socket write to the receiver having parsed \
         the delta)"
            .into(),
    );
    rec.recipients = Some(observers);
    rec.concurrency = Some(observers);
    rec.items = Some(changes);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    rec.note = Some(format!(
        "ours: {observers} mantle_client::Client connections on loopback (one each, all \
         logged in as the same account with a token: Authenticate) observe `{MODEL}` in \
         that account's store; {changes} changes {} ms apart, each a store transaction \
         (synchronous=FULL) inserting an item and calling publish; the delta reaches the \
         observers after the commit (effect dispatch, the hub, each connection's writer, \
         the client's reader and its subscription channel); every observer must get every \
         delta exactly once (items = changes, ops = deliveries = observers × changes); \
         reference: {observers} plain tokio TCP connections on loopback, and per change one \
         loop writing the same AMP Delta box to every socket; each receiver reads the box \
         and parses the delta's JSON; no store, no commit, no login; half of its changes \
         before ours and half after; ops/s = deliveries per second of fan-out time (the \
         union of the spans from each change's time to its last delivery, so the spacing \
         between changes does not count): {:.3} s ours, {:.3} s reference; client, server \
         and references share the machine's {cores} cores",
        SPACING.as_millis(),
        ours_busy.as_secs_f64(),
        reference_busy.as_secs_f64(),
    ));
    Ok(rec)
}
