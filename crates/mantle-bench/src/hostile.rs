//! The hostile benches: a real `mantle serve` under attack on loopback,
//! with a legitimate client measured through each attack against the same
//! client on the same server unloaded, just before.
//!
//! The server is a process of its own: this executable (`mantle`) run as
//! `mantle serve --http 127.0.0.1:0 --amp 127.0.0.1:0` on a fresh site made
//! with `mantle init` and `mantle user add`, so its memory (`VmHWM`, reset
//! before each phase, and `VmRSS` sampled every 5 ms, from
//! `/proc/PID/status`) is the server's alone. Its settings are the
//! defaults but for `auth.login_attempts_per_minute`
//! ([`LOGIN_ATTEMPTS_PER_MINUTE`]); every record reports them.
//!
//! The legitimate client comes from 127.0.0.1 and runs on a runtime of its
//! own (one thread), so the attackers' tasks never delay its wake-ups: it
//! sends `GET /api/me` with a bearer token on a kept-alive connection, one
//! request in flight, in a loop, and meanwhile logs in with the right
//! password (`POST /api/login`, on a new connection each time, as a user
//! arriving would) every 500 ms. Before each attack the same client runs
//! alone for as long as the attack lasts: that is the reference.
//!
//! - `hostile_login_flood`: 64 attackers, each with one wrong login in
//!   flight, round-robin over 1,000 source addresses (127.0.1.0 upwards,
//!   one kept-alive connection each): every other attempt at an unknown
//!   login (a new one each time), the others at an existing account
//!   (`victim`), for 10 s.
//! - `hostile_idle_connections`: 20,000 TCP connections opened against
//!   the HTTP port and 20,000 against the AMP port, from 250 source
//!   addresses (127.1.0.1 upwards; 80 per address and listener, under the
//!   per-address caps), 128 at a time per helper, sending nothing, and
//!   held for 10 s after the last is open; the client is measured from the
//!   first connection to the end of the hold. Helper processes hold them
//!   (`mantle bench-hold`, [`hold_idle`]), 10,000 each, as one process's
//!   descriptors are limited. What the server held is sampled from its
//!   side (descriptors, and its statistics' AMP connections).
//!
//! Everything is on loopback, bounded in count and time, and stops by
//! itself; the server and the helpers are killed (also if the bench dies)
//! and the site is removed on every way out.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use mantle_site::SiteConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::BenchError;
use crate::report::{BenchRecord, Timings, percentile_ms, round};
use crate::rss::{Peak, PeakRss};
use crate::store::{BenchDir, check, scaled};

/// The benches [`run_hostile`] runs, in order; each emits one record of
/// its name.
pub const HOSTILE_BENCHES: &[&str] = &["hostile_login_flood", "hostile_idle_connections"];

/// Options of the hostile benches (see [`BenchOptions`](crate::BenchOptions)).
pub type HostileBenchOptions = crate::BenchOptions;

/// The hidden `mantle` subcommand that runs [`hold_idle`] with the
/// arguments of [`HoldSpec::args`].
pub const HOLD_COMMAND: &str = "bench-hold";

/// `auth.login_attempts_per_minute` of the server under attack (default
/// 10): 1,000 addresses × 600 attempts a minute is far more than the
/// password workers can check (a few dozen a second), so the flood
/// reaches them rather than stopping at the per-address allowance; and
/// the legitimate client's 2 logins a second stay within its own.
pub const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 600;

// Sizes at scale 1.0.
/// Seconds each phase lasts (reference and attack alike).
const PHASE_SECS: f64 = 10.0;
const ATTACKERS: u64 = 64;
const ATTACK_ADDRESSES: u64 = 1_000;
const IDLE_PER_LISTENER: u64 = 20_000;

/// Idle connections per source address and listener (the per-address
/// caps are 256).
const IDLE_PER_SOURCE: u64 = 80;
/// Idle connections one helper process holds.
const PER_HOLDER: u64 = 10_000;
/// Connections a helper opens at once.
const CONNECTING: usize = 128;
/// A connection the server closes sooner than this after it was opened
/// counts as refused (a full listener accepts and closes at once).
const REFUSED_WITHIN: Duration = Duration::from_secs(1);
/// The longest a helper holds its connections, whatever it is told.
const HOLD_MAX_SECS: u64 = 300;
/// The longest a helper spends opening its connections; those it has not
/// opened by then are given up (`not_tried`).
const OPEN_WITHIN: Duration = Duration::from_secs(60);

/// Time between two real logins.
const LOGIN_EVERY: Duration = Duration::from_millis(500);
/// The longest any one request of the bench may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long attackers' requests still in flight at the end of the attack
/// may take to finish before they are dropped.
const GRACE: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a process of the bench gets to start, answer or stop.
const PROCESS_WAIT: Duration = Duration::from_secs(60);
/// How often what the server holds is sampled during the idle-connection
/// attack.
const HELD_SAMPLING: Duration = Duration::from_millis(500);

const USER: &str = "alice";
const PASSWORD: &str = "legitimate password, not secret";
const VICTIM: &str = "victim";
const VICTIM_PASSWORD: &str = "the victim's password, not secret";

const FLOOD_TARGET: &str = "server peak RSS < 512 MB; /api/me p99 <= 5 x unloaded; \
                            every real login < 1 s";
const IDLE_TARGET: &str = "server peak RSS < 512 MB; /api/me p99 <= 5 x unloaded";

/// Runs the hostile benches (all, or `opts.only`) against one `mantle
/// serve` process, calling `emit` with each record as soon as it is
/// measured.
///
/// | bench | attack (scale 1.0) | one op |
/// |---|---|---|
/// | `hostile_login_flood` | 64 attackers with one wrong login in flight each, from 1,000 addresses, for 10 s | the legitimate client's `GET /api/me` |
/// | `hostile_idle_connections` | 20,000 idle connections against each of the HTTP and AMP ports, held 10 s after the last is open | the same |
///
/// Each record: the client's `/api/me` rate and p50/p99 under attack
/// against the same client unloaded (for 10 s just before), its real
/// logins (`login_ms`: count, failed, p50, max), the server's peak RSS
/// (`peak_rss_mb`: `VmHWM`; `sampled_peak_rss_mb`: `VmRSS` every 5 ms),
/// what the attackers got (`attackers`), what the server held and
/// counted (`server`), and its settings (`settings`). Scale multiplies
/// the durations and the counts.
///
/// Must run as the `mantle` executable (it starts `mantle serve` and
/// `mantle bench-hold` from [`std::env::current_exe`]), with an open-file
/// limit above 1,000 (raised to the hard limit first).
///
/// Errors: [`BenchError::UnknownBench`] for an unknown `only`;
/// [`BenchError::Process`] if the server or a helper does not start or
/// answer; [`BenchError::Check`] if the unloaded client is not served;
/// HTTP and file errors.
pub async fn run_hostile(
    opts: &HostileBenchOptions,
    emit: &mut dyn FnMut(BenchRecord),
) -> Result<(), BenchError> {
    opts.check_only(HOSTILE_BENCHES)?;
    let plan = Plan::new(opts.scale);
    let limit = mantle_store::raise_open_file_limit()?;
    let needed = plan.addresses + 256;
    check("hostile_login_flood", limit >= needed, || {
        format!("needs an open-file limit of at least {needed}, have {limit} (ulimit -n)")
    })?;
    let exe = std::env::current_exe()?;
    let workspace = opts.workspace()?;
    let dir = BenchDir::new(workspace.path(), "hostile")?;
    let site = dir.join("site");
    let config = make_site(&exe, &site).await?;
    let server = Server::start(&exe, &site).await?;
    let measured = async {
        let legit = Legit::start(server.http).await?;
        let target = Target {
            exe: &exe,
            server: &server,
            legit: &legit,
            config: &config,
            plan: &plan,
        };
        if opts.wants("hostile_login_flood") {
            emit(login_flood(&target).await?);
        }
        if opts.wants("hostile_idle_connections") {
            emit(idle_connections(&target).await?);
        }
        Ok(())
    }
    .await;
    server.stop().await;
    measured
}

/// Counts and durations at a scale.
struct Plan {
    scale: f64,
    phase: Duration,
    attackers: u64,
    addresses: u64,
    idle_per_listener: u64,
}

impl Plan {
    fn new(scale: f64) -> Self {
        Self {
            scale,
            phase: Duration::from_secs_f64((PHASE_SECS * scale).max(1.0)),
            attackers: scaled(ATTACKERS, scale),
            addresses: scaled(ATTACK_ADDRESSES, scale),
            idle_per_listener: scaled(IDLE_PER_LISTENER, scale),
        }
    }

    /// What each helper holds against `target`: at most [`PER_HOLDER`]
    /// connections, [`IDLE_PER_SOURCE`] per source address, the helpers
    /// of one listener on separate addresses.
    fn holders(&self, target: SocketAddr) -> Vec<HoldSpec> {
        let mut specs = Vec::new();
        let mut left = self.idle_per_listener;
        let mut next_source = u32::from(Ipv4Addr::new(127, 1, 0, 1));
        while left > 0 {
            let count = left.min(PER_HOLDER);
            let sources = count.div_ceil(IDLE_PER_SOURCE) as u32;
            specs.push(HoldSpec {
                target,
                count,
                first_source: Ipv4Addr::from(next_source),
                sources,
                max_secs: HOLD_MAX_SECS,
            });
            next_source += sources;
            left -= count;
        }
        specs
    }
}

/// What the benches work on.
struct Target<'a> {
    exe: &'a Path,
    server: &'a Server,
    legit: &'a Legit,
    config: &'a SiteConfig,
    plan: &'a Plan,
}

fn http_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Http(e.to_string())
}

fn task_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Task(e.to_string())
}

// ---- Processes ---------------------------------------------------------------------

/// `exe` as a child of the bench: with none of the bench's `MANTLE_*`
/// variables (the server's configuration is its file's alone), logging
/// warnings only, and killed when dropped or when the bench dies.
fn child(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MANTLE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("MANTLE_LOG", "warn")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes one system call. The signal comes when the *thread* that
    // spawned the child ends: the bench spawns from its async tasks, on
    // the runtime's threads, which live as long as the bench.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// Runs `cmd` to its end with `input` on its standard input.
async fn run(mut cmd: Command, input: &str, what: &str) -> Result<(), BenchError> {
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // It may exit before reading (a bad argument): its status says.
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    let out = tokio::time::timeout(PROCESS_WAIT, child.wait_with_output())
        .await
        .map_err(|_| BenchError::Process(format!("{what} took over {PROCESS_WAIT:?}")))??;
    if !out.status.success() {
        return Err(BenchError::Process(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A site with the legitimate user and the victim, made with `mantle init`
/// and `mantle user add`, and the attack's settings; returns them.
async fn make_site(exe: &Path, dir: &Path) -> Result<SiteConfig, BenchError> {
    let mut init = child(exe);
    init.arg("init")
        .arg(dir)
        .args(["--http", "127.0.0.1:0", "--signup", "admin"]);
    run(init, "", "mantle init").await?;
    for (login, password) in [(USER, PASSWORD), (VICTIM, VICTIM_PASSWORD)] {
        let mut add = child(exe);
        add.args(["user", "add"]).arg(dir).arg(login);
        run(add, &format!("{password}\n"), "mantle user add").await?;
    }
    let mut config = SiteConfig::load(dir)?;
    config.auth.login_attempts_per_minute = LOGIN_ATTEMPTS_PER_MINUTE;
    config.save(dir)?;
    Ok(config)
}

/// The `mantle serve` process under attack; killed when dropped.
struct Server {
    child: Child,
    pid: u32,
    http: SocketAddr,
    amp: SocketAddr,
    /// What it wrote to stderr.
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `mantle serve DIR` on loopback ports of its choosing and
    /// waits for both of its "listening on" lines.
    async fn start(exe: &Path, dir: &Path) -> Result<Self, BenchError> {
        let mut cmd = child(exe);
        cmd.arg("serve")
            .arg(dir)
            .args(["--http", "127.0.0.1:0", "--amp", "127.0.0.1:0"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Process("mantle serve ended at once".into()))?;
        let stderr = child.stderr.take();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        if let Some(stderr) = stderr {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().expect("not poisoned").push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let (mut http, mut amp) = (None, None);
        let _ = tokio::time::timeout(PROCESS_WAIT, async {
            while http.is_none() || amp.is_none() {
                let Some(line) = rx.recv().await else { break };
                if let Some(a) = line.strip_prefix("mantle: http listening on http://") {
                    http = a.trim().trim_end_matches('/').parse().ok();
                }
                if let Some(a) = line.strip_prefix("mantle: amp listening on amp://") {
                    amp = a.trim().parse().ok();
                }
            }
        })
        .await;
        match (http, amp) {
            (Some(http), Some(amp)) => Ok(Self {
                child,
                pid,
                http,
                amp,
                stderr: lines,
            }),
            _ => {
                let _ = child.kill().await;
                Err(BenchError::Process(format!(
                    "mantle serve did not say where it listens; stderr:\n{}",
                    lines.lock().expect("not poisoned").join("\n")
                )))
            }
        }
    }

    /// Lines of its stderr so far that contain `text`.
    fn lines_with(&self, text: &str) -> u64 {
        let lines = self.stderr.lock().expect("not poisoned");
        lines.iter().filter(|l| l.contains(text)).count() as u64
    }

    /// Stops it as an operator would (SIGTERM), killing it if it has not
    /// ended within [`PROCESS_WAIT`].
    async fn stop(mut self) {
        // SAFETY: kill only sends a signal, to our own child.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(PROCESS_WAIT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Descriptors process `pid` holds now.
fn open_fds(pid: u32) -> Option<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count() as u64)
}

/// The soft open-file limit of process `pid`.
fn open_file_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// CPU time (user and system) process `pid` (`"self"`: this one) has
/// used so far, in seconds.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which ends with the last ')': state
    // is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| round(ticks as f64 / hz as f64, 2))
}

/// CPU seconds between two readings of [`cpu_secs`].
fn cpu_used(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(round(after? - before?, 2))
}

/// Connections the kernel dropped because a listener's accept queue was
/// full (`TcpExt ListenOverflows`, this network namespace, every
/// listener).
fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut tcp_ext = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next()?, tcp_ext.next()?);
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Growth of a counter between two readings.
fn grew(before: Option<u64>, after: Option<u64>) -> Option<u64> {
    Some(after?.saturating_sub(before?))
}

/// The most the server held at once during the idle-connection attack.
#[derive(Debug, Default, Clone, Copy)]
struct HeldPeak {
    /// Its descriptors.
    fds: Option<u64>,
    /// Its open AMP connections (the `Live` statistics' `Connections`).
    amp: Option<u64>,
    /// About its open HTTP connections: its descriptors above those it
    /// held before the attack, less the AMP connections, in one sample.
    http: Option<u64>,
}

/// Samples what the server `pid` holds every [`HELD_SAMPLING`] until
/// `stop` is set: its descriptors, and its statistics' count of AMP
/// connections (fetched from 127.0.0.1 on a kept-alive connection).
async fn watch_held(pid: u32, http: SocketAddr, before: u64, stop: &AtomicBool) -> HeldPeak {
    let url = format!("http://{http}/stats.json");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build();
    let mut peak = HeldPeak::default();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(HELD_SAMPLING).await;
        let fds = open_fds(pid);
        let amp = match &client {
            Ok(c) => match c.get(&url).send().await {
                Ok(r) => r.json::<Value>().await.ok().and_then(|s| {
                    stat(&s, mantle_live_server::LIVE_NAMESPACE, "Connections")
                        .and_then(|n| u64::try_from(n).ok())
                }),
                Err(_) => None,
            },
            Err(_) => None,
        };
        peak.fds = peak.fds.max(fds);
        peak.amp = peak.amp.max(amp);
        if let (Some(fds), Some(amp)) = (fds, amp) {
            peak.http = peak.http.max(Some(fds.saturating_sub(before + amp)));
        }
    }
    peak
}

// ---- The legitimate client ---------------------------------------------------------

/// The legitimate client, on a runtime of its own (one worker thread).
struct Legit {
    runtime: Apart,
    client: Arc<LegitClient>,
}

/// A runtime apart from the bench's, shut down in the background when
/// dropped (a runtime may not be dropped in place inside another one).
struct Apart(Option<tokio::runtime::Runtime>);

impl Drop for Apart {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

struct LegitClient {
    base: String,
    /// `/api/me` and the statistics, on a kept-alive connection.
    api: reqwest::Client,
    /// Logins, each on a new connection.
    fresh: reqwest::Client,
    token: String,
}

/// What the legitimate client saw in one phase.
struct Observed {
    took: Duration,
    me: Vec<Duration>,
    me_failed: u64,
    logins: Vec<Duration>,
    login_failed: u64,
    /// Status of each login ("0": no answer).
    login_statuses: BTreeMap<String, u64>,
}

impl Observed {
    fn rate(&self) -> f64 {
        self.me.len() as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

/// `POST /api/login`: the status (0 if no answer) and the token if any.
async fn login(client: &reqwest::Client, base: &str, user: &str, password: &str) -> (u16, String) {
    let sent = client
        .post(format!("{base}/api/login"))
        .json(&json!({ "username": user, "password": password }))
        .send()
        .await;
    let Ok(r) = sent else {
        return (0, String::new());
    };
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    let token = body["token"].as_str().unwrap_or_default().to_string();
    (status, token)
}

impl LegitClient {
    /// `/api/me` in a loop and a real login every [`LOGIN_EVERY`], for
    /// `run` or until `stop` is set.
    async fn observe(&self, run: Duration, stop: &AtomicBool) -> Observed {
        let start = Instant::now();
        let end = start + run;
        let going = || Instant::now() < end && !stop.load(Ordering::Relaxed);
        let me = async {
            let url = format!("{}/api/me", self.base);
            let (mut latencies, mut failed) = (Vec::new(), 0);
            while going() {
                let t0 = Instant::now();
                let sent = self.api.get(&url).bearer_auth(&self.token).send().await;
                let ok = match sent {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t0.elapsed());
                } else {
                    failed += 1;
                }
            }
            (latencies, failed)
        };
        let logins = async {
            let mut ticker = tokio::time::interval(LOGIN_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut latencies, mut failed, mut statuses) = (Vec::new(), 0, BTreeMap::new());
            loop {
                ticker.tick().await;
                if !going() {
                    break;
                }
                let t0 = Instant::now();
                let (status, _) = login(&self.fresh, &self.base, USER, PASSWORD).await;
                latencies.push(t0.elapsed());
                if status != 200 {
                    failed += 1;
                }
                *statuses.entry(status.to_string()).or_insert(0) += 1;
            }
            (latencies, failed, statuses)
        };
        let ((me, me_failed), (logins, login_failed, login_statuses)) = tokio::join!(me, logins);
        Observed {
            took: start.elapsed(),
            me,
            me_failed,
            logins,
            login_failed,
            login_statuses,
        }
    }
}

impl Legit {
    /// The client of the server at `http`, logged in once for its token.
    async fn start(http: SocketAddr) -> Result<Self, BenchError> {
        let runtime = Apart(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("bench-legit")
                .enable_all()
                .build()?,
        ));
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .timeout(REQUEST_TIMEOUT)
        };
        let api = builder().build().map_err(http_err)?;
        let fresh = builder()
            .pool_max_idle_per_host(0)
            .build()
            .map_err(http_err)?;
        let base = format!("http://{http}");
        let (status, token) = {
            let (fresh, base) = (fresh.clone(), base.clone());
            runtime
                .0
                .as_ref()
                .ok_or_else(|| task_err("no runtime"))?
                .spawn(async move { login(&fresh, &base, USER, PASSWORD).await })
                .await
                .map_err(task_err)?
        };
        check("hostile_login_flood", status == 200, || {
            format!("the legitimate user's first login answered {status}")
        })?;
        Ok(Self {
            runtime,
            client: Arc::new(LegitClient {
                base,
                api,
                fresh,
                token,
            }),
        })
    }

    /// Runs `work` with the client, on the client's runtime.
    async fn on<T, F>(&self, work: impl FnOnce(Arc<LegitClient>) -> F) -> Result<T, BenchError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let runtime = self
            .runtime
            .0
            .as_ref()
            .ok_or_else(|| task_err("the client's runtime is gone"))?;
        runtime
            .spawn(work(self.client.clone()))
            .await
            .map_err(task_err)
    }

    /// The client's loops for `run`.
    async fn observe(&self, run: Duration) -> Result<Observed, BenchError> {
        self.observe_until(run, Arc::default()).await
    }

    /// The client's loops until `stop` is set, for at most `max`.
    async fn observe_until(
        &self,
        max: Duration,
        stop: Arc<AtomicBool>,
    ) -> Result<Observed, BenchError> {
        self.on(move |c| async move { c.observe(max, &stop).await })
            .await
    }

    /// The server's statistics (`/stats.json`, answered to loopback).
    async fn stats(&self) -> Result<Value, BenchError> {
        self.on(|c| async move {
            let r = c
                .api
                .get(format!("{}/stats.json", c.base))
                .send()
                .await
                .map_err(http_err)?;
            r.json::<Value>().await.map_err(http_err)
        })
        .await?
    }
}

/// A value of the server's statistics (`None` if absent).
fn stat(stats: &Value, namespace: &str, name: &str) -> Option<i64> {
    stats["namespaces"][namespace]["values"][name]["value"].as_i64()
}

/// `after - before` of a statistic.
fn stat_delta(before: &Value, after: &Value, namespace: &str, name: &str) -> Option<i64> {
    Some(stat(after, namespace, name)? - stat(before, namespace, name).unwrap_or(0))
}

// ---- Phases and records ------------------------------------------------------------

/// The legitimate client alone for a phase, and the server's peak memory
/// meanwhile; a client that is not served unloaded makes the bench fail.
async fn unloaded(bench: &'static str, t: &Target<'_>) -> Result<(Observed, Peak), BenchError> {
    let phase = PeakRss::start_for(t.server.pid);
    let observed = t.legit.observe(t.plan.phase).await;
    let peak = phase.finish();
    let observed = observed?;
    check(
        bench,
        observed.me_failed == 0 && observed.login_failed == 0 && !observed.me.is_empty(),
        || {
            format!(
                "unloaded, the legitimate client saw {} failed /api/me of {} and logins {:?}",
                observed.me_failed,
                observed.me.len() as u64 + observed.me_failed,
                observed.login_statuses
            )
        },
    )?;
    Ok((observed, peak))
}

/// The record of a phase under attack against its unloaded reference,
/// with `note` saying how it was measured.
fn record(
    name: &str,
    t: &Target<'_>,
    (mut ours, peak): (Observed, Peak),
    (mut reference, reference_peak): (Observed, Peak),
    note: String,
) -> BenchRecord {
    let mut rec = BenchRecord::from_rates(
        name,
        "request",
        ours.me.len() as u64,
        t.plan.scale,
        (ours.rate(), ours.took),
        (reference.rate(), reference.took),
    )
    .p99(
        "one GET /api/me of the legitimate client (bearer token, kept-alive connection \
         from 127.0.0.1, one in flight), from sending to its whole answer",
        &mut ours.me,
        &mut reference.me,
    );
    rec.p50_ms = percentile_ms(&mut ours.me, 0.5);
    rec.reference_p50_ms = percentile_ms(&mut reference.me, 0.5);
    rec.items = Some(reference.me.len() as u64);
    rec.concurrency = Some(1);
    rec.errors = Some(ours.me_failed);
    rec.login_ms = Some(Timings::of(&mut ours.logins, ours.login_failed));
    rec.reference_login_ms = Some(Timings::of(&mut reference.logins, reference.login_failed));
    rec.peak_rss_mb = peak.mb;
    rec.sampled_peak_rss_mb = peak.sampled_mb;
    rec.rss_baseline_mb = peak.baseline_mb;
    rec.rss_method = Some(peak.method.into());
    rec.reference_peak_rss_mb = reference_peak.mb;
    rec.settings = Some(settings(t.config, t.server.pid));
    rec.note = Some(if ours.login_statuses.keys().any(|s| s != "200") {
        format!(
            "{note}; the real logins were answered (status: count, 0: no answer) {:?}",
            ours.login_statuses
        )
    } else {
        note
    });
    rec
}

/// The server's settings that the attacks meet.
fn settings(config: &SiteConfig, pid: u32) -> Value {
    let auth = &config.auth;
    // As the server reads them (the bench sets none of these).
    let http = config
        .section::<mantle_web::HttpConfig>()
        .unwrap_or_default();
    let live = config
        .section::<mantle_live_server::LiveConfig>()
        .unwrap_or_default();
    json!({
        "auth.login_attempts_per_minute": auth.login_attempts_per_minute,
        "auth.password_workers": auth.workers(),
        "auth.password_queue": auth.password_queue,
        "auth.suspect_cpu_share": auth.suspect_cpu_share,
        "auth.failures_before_backoff": auth.failures_before_backoff,
        "auth.max_backoff_secs": auth.max_backoff_secs,
        "http.max_connections": http.max_connections,
        "http.max_connections_per_address": http.max_connections_per_address,
        "http.header_timeout_secs": http.header_timeout_secs,
        "http.idle_timeout_secs": http.idle_timeout_secs,
        "live.max_connections": live.max_connections,
        "live.max_connections_per_address": live.max_connections_per_address,
        "live.login_timeout_secs": live.login_timeout_secs,
        "stores.cache_capacity": config.stores.cache_capacity,
        "open_file_limit": open_file_limit(pid),
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

// ---- (a) The login flood -----------------------------------------------------------

/// The source address of attack connection `n`: 127.0.1.0 upwards, never
/// 127.0.0.1 (the legitimate client's).
fn attack_address(n: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(127, 0, 1, 0)) + n as u32,
    ))
}

/// What the attackers got, by status.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    unauthorized: AtomicU64,
    too_many: AtomicU64,
    busy: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn answered(&self, status: u16) {
        match status {
            401 => &self.unauthorized,
            429 => &self.too_many,
            503 => &self.busy,
            _ => &self.other,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

/// `attackers` tasks sending wrong logins to `http` for `run`, round-robin
/// over `addresses` source addresses.
async fn flood(
    http: SocketAddr,
    attackers: u64,
    addresses: u64,
    run: Duration,
) -> Result<Value, BenchError> {
    let url = format!("http://{http}/api/login");
    let clients = (0..addresses)
        .map(|n| {
            reqwest::Client::builder()
                .no_proxy()
                .local_address(attack_address(n))
                .timeout(REQUEST_TIMEOUT)
                .build()
                .map_err(http_err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let clients = Arc::new(clients);
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let end = start + run;
    let mut set = JoinSet::new();
    for _ in 0..attackers {
        let (clients, next, tally, url) =
            (clients.clone(), next.clone(), tally.clone(), url.clone());
        set.spawn(async move {
            while Instant::now() < end {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let client = &clients[(n % clients.len() as u64) as usize];
                let username = if n % 2 == 0 {
                    format!("nobody{n}")
                } else {
                    VICTIM.to_string()
                };
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let sent = client
                    .post(&url)
                    .json(&json!({ "username": username, "password": format!("guess {n}") }))
                    .send()
                    .await;
                match sent {
                    Ok(r) => {
                        tally.answered(r.status().as_u16());
                        let _ = r.bytes().await;
                    }
                    Err(_) => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let finished = tokio::time::timeout_at(end + GRACE, async {
        while let Some(done) = set.join_next().await {
            done.map_err(task_err)?;
        }
        Ok::<_, BenchError>(())
    })
    .await;
    let unfinished = match finished {
        Ok(done) => {
            done?;
            0
        }
        Err(_) => {
            let n = set.len();
            set.shutdown().await;
            n
        }
    };
    let took = start.elapsed();
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let sent = n(&tally.sent);
    Ok(json!({
        "attackers": attackers,
        "addresses": addresses,
        "sent": sent,
        "per_s": round(sent as f64 / took.as_secs_f64(), 1),
        "401": n(&tally.unauthorized),
        "429": n(&tally.too_many),
        "503": n(&tally.busy),
        "other_status": n(&tally.other),
        "no_answer": n(&tally.errors),
        "unfinished": unfinished,
    }))
}

async fn login_flood(t: &Target<'_>) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "hostile_login_flood";
    let reference = unloaded(NAME, t).await?;
    let before = t.legit.stats().await?;
    let accept_failures = t.server.lines_with("accept failed");
    let overflows = listen_overflows();
    let pid = t.server.pid.to_string();
    let cpu = (cpu_secs(&pid), cpu_secs("self"));

    let phase = PeakRss::start_for(t.server.pid);
    let attack = tokio::spawn(flood(
        t.server.http,
        t.plan.attackers,
        t.plan.addresses,
        t.plan.phase,
    ));
    let ours = t.legit.observe(t.plan.phase).await;
    let got = attack.await.map_err(task_err);
    let peak = phase.finish();
    let cpu = (
        cpu_used(cpu.0, cpu_secs(&pid)),
        cpu_used(cpu.1, cpu_secs("self")),
    );
    let overflows = grew(overflows, listen_overflows());
    let (ours, mut got) = (ours?, got??);
    let after = t.legit.stats().await?;
    got["bench_cpu_secs"] = json!(cpu.1);

    let note = format!(
        "ours: the legitimate client (127.0.0.1, its own runtime thread) during the attack: \
         GET /api/me in a loop, one in flight, on a kept-alive connection, and a real login \
         (POST /api/login, right password, new connection) every {} ms; attack: {} tasks, \
         each with one wrong login in flight, round-robin over {} source addresses \
         (127.0.1.0 upwards, one kept-alive connection each), every other one at an unknown \
         login (new each time) and the others at the existing account '{VICTIM}', for {:.0} s; \
         reference: the same client alone for as long, just before; the server is a separate \
         `mantle serve` process (peak RSS: its VmHWM, reset before the phase; \
         sampled_peak_rss_mb: its VmRSS every 5 ms); cpu_secs: the server's CPU time in the \
         phase, bench_cpu_secs: this process's (attackers and client); listen_overflows: \
         connections the kernel dropped because an accept queue was full; attackers, \
         client and server share the machine's {} cores",
        LOGIN_EVERY.as_millis(),
        t.plan.attackers,
        t.plan.addresses,
        t.plan.phase.as_secs_f64(),
        cores(),
    );
    let mut rec = record(NAME, t, (ours, peak), reference, note);
    rec.attackers = Some(got);
    let auth = mantle_site::AUTH_NAMESPACE;
    rec.server = Some(json!({
        "logins": stat_delta(&before, &after, auth, "Logins"),
        "login_failures": stat_delta(&before, &after, auth, "Login Failures"),
        "login_refusals": stat_delta(&before, &after, auth, "Login Refusals"),
        "suspect_addresses": stat(&after, auth, "Suspect Addresses"),
        "suspect_turns": stat_delta(&before, &after, auth, "Suspect Turns"),
        "suspect_pauses": stat_delta(&before, &after, auth, "Suspect Pauses"),
        "accept_failures_logged": t.server.lines_with("accept failed") - accept_failures,
        "listen_overflows": overflows,
        "cpu_secs": cpu.0,
    }));
    rec.target = Some(FLOOD_TARGET.into());
    Ok(rec)
}

// ---- (b) Idle connections ----------------------------------------------------------

/// What a helper holds (see [`hold_idle`]): `count` connections to
/// `target`, from `sources` addresses starting at `first_source` (in
/// turn), for at most `max_secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldSpec {
    /// Where to connect.
    pub target: SocketAddr,
    /// How many connections.
    pub count: u64,
    /// The first source address.
    pub first_source: Ipv4Addr,
    /// Source addresses used, from `first_source` upwards.
    pub sources: u32,
    /// The longest the connections are held.
    pub max_secs: u64,
}

impl HoldSpec {
    /// The arguments of `mantle bench-hold` ([`HOLD_COMMAND`]) asking for
    /// this.
    pub fn args(&self) -> Vec<String> {
        vec![
            self.target.to_string(),
            "--count".into(),
            self.count.to_string(),
            "--first-source".into(),
            self.first_source.to_string(),
            "--sources".into(),
            self.sources.to_string(),
            "--max-secs".into(),
            self.max_secs.to_string(),
        ]
    }

    fn source(&self, n: u64) -> IpAddr {
        let offset = (n % u64::from(self.sources.max(1))) as u32;
        IpAddr::V4(Ipv4Addr::from(u32::from(self.first_source) + offset))
    }
}

/// A helper's first line: it has opened its connections (or given up
/// opening the rest).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Opened {
    opened: u64,
    /// Connections that could not be opened (refused, timed out).
    failed: u64,
    /// Connections not tried within [`OPEN_WITHIN`].
    not_tried: u64,
    /// Seconds it took.
    secs: f64,
}

/// A helper's last line: what became of the connections it opened.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct Held {
    /// Closed by the server within [`REFUSED_WITHIN`] of opening.
    closed_at_once: u64,
    /// Closed by the server later (made room for another, timed out).
    closed_later: u64,
    /// Still open when the helper was told to stop.
    open_at_end: u64,
}

/// Connects to `target` from `source` (any port).
async fn connect_from(source: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: sets an int option on a socket we own. The port is then
        // chosen at connect, per destination, not at bind: the ephemeral
        // range is not used up by bound but unconnected sockets.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    socket.bind(SocketAddr::new(source, 0))?;
    tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(target))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Waits until the server closes `stream`, and counts when.
async fn watch(
    mut stream: TcpStream,
    opened: Instant,
    at_once: Arc<AtomicU64>,
    later: Arc<AtomicU64>,
) {
    let mut buf = [0u8; 256];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    if opened.elapsed() < REFUSED_WITHIN {
        &at_once
    } else {
        &later
    }
    .fetch_add(1, Ordering::Relaxed);
}

/// The body of `mantle bench-hold` (a helper of the hostile benches):
/// opens `spec.count` connections that send nothing (`CONNECTING` at
/// once, for at most 60 s), writes one JSON line to `out` once they are
/// open (`opened`, `failed`, `not_tried`, `secs`), holds them until its
/// standard input ends (the bench closes it, or dies) or `spec.max_secs`
/// have passed, writes a second line (`closed_at_once`, `closed_later`,
/// `open_at_end`) and closes them.
///
/// Errors: the open-file limit is below `spec.count` plus a margin; I/O
/// errors writing `out`.
pub async fn hold_idle(spec: &HoldSpec, out: &mut dyn std::io::Write) -> Result<(), BenchError> {
    const NAME: &str = "hostile_idle_connections";
    let limit = mantle_store::raise_open_file_limit()?;
    check(NAME, limit >= spec.count + 64, || {
        format!(
            "holding {} connections needs an open-file limit of at least {}, have {limit}",
            spec.count,
            spec.count + 64
        )
    })?;
    let start = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = stop_tx.send(());
    });
    let (at_once, later) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut watchers = JoinSet::new();
    let (mut opened, mut failed) = (0, 0);
    let mut connects = futures::stream::iter(0..spec.count)
        .map(|n| connect_from(spec.source(n), spec.target))
        .buffer_unordered(CONNECTING);
    while let Ok(Some(connected)) =
        tokio::time::timeout_at(start + OPEN_WITHIN, connects.next()).await
    {
        match connected {
            Ok(stream) => {
                opened += 1;
                let (a, l) = (at_once.clone(), later.clone());
                watchers.spawn(watch(stream, Instant::now(), a, l));
            }
            Err(_) => failed += 1,
        }
    }
    drop(connects);
    let line = Opened {
        opened,
        failed,
        not_tried: spec.count - opened - failed,
        secs: round(start.elapsed().as_secs_f64(), 3),
    };
    writeln!(out, "{}", serde_json::to_string(&line).map_err(task_err)?)?;
    out.flush()?;
    tokio::select! {
        _ = stop_rx => {}
        _ = tokio::time::sleep_until(start + Duration::from_secs(spec.max_secs)) => {}
    }
    let (closed_at_once, closed_later) = (
        at_once.load(Ordering::Relaxed),
        later.load(Ordering::Relaxed),
    );
    let held = Held {
        closed_at_once,
        closed_later,
        open_at_end: opened.saturating_sub(closed_at_once + closed_later),
    };
    writeln!(out, "{}", serde_json::to_string(&held).map_err(task_err)?)?;
    out.flush()?;
    watchers.shutdown().await;
    Ok(())
}

/// A helper process holding connections; killed when dropped.
struct Holder {
    /// Which listener it attacks (an index into the bench's list).
    listener: usize,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Holder {
    fn spawn(exe: &Path, listener: usize, spec: &HoldSpec) -> Result<Self, BenchError> {
        let mut cmd = child(exe);
        cmd.arg(HOLD_COMMAND)
            .args(spec.args())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BenchError::Process("a helper has no pipes".into()));
        };
        Ok(Self {
            listener,
            child,
            stdin: Some(stdin),
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// Its next line, as JSON, within `wait`.
    async fn line<T: serde::de::DeserializeOwned>(
        &mut self,
        wait: Duration,
    ) -> Result<T, BenchError> {
        let line = tokio::time::timeout(wait, self.lines.next_line())
            .await
            .map_err(|_| BenchError::Process(format!("a helper said nothing for {wait:?}")))??
            .ok_or_else(|| BenchError::Process("a helper ended early".into()))?;
        serde_json::from_str(&line)
            .map_err(|e| BenchError::Process(format!("a helper said {line:?}: {e}")))
    }

    /// The CPU time it has used so far.
    fn cpu_secs(&self) -> Option<f64> {
        cpu_secs(&self.child.id()?.to_string())
    }

    /// Tells it to stop (its standard input ends) and reads its report.
    async fn finish(mut self) -> Result<Held, BenchError> {
        drop(self.stdin.take());
        let held = self.line(PROCESS_WAIT).await;
        let _ = tokio::time::timeout(PROCESS_WAIT, self.child.wait()).await;
        held
    }
}

/// What the helpers of one listener reported, added up.
fn listener_report(target: u64, reports: &[(Opened, Held)]) -> Value {
    let sum = |f: fn(&(Opened, Held)) -> u64| reports.iter().map(f).sum::<u64>();
    json!({
        "target": target,
        "opened": sum(|(o, _)| o.opened),
        "connect_failed": sum(|(o, _)| o.failed),
        "not_tried": sum(|(o, _)| o.not_tried),
        "open_secs": reports.iter().map(|(o, _)| o.secs).fold(0.0, f64::max),
        "closed_at_once": sum(|(_, h)| h.closed_at_once),
        "closed_later": sum(|(_, h)| h.closed_later),
        "open_at_end": sum(|(_, h)| h.open_at_end),
    })
}

/// What the idle-connection attack saw, from its start to its end.
struct Siege {
    /// Per helper: its listener, and what it opened and held.
    reports: Vec<(usize, Opened, Held)>,
    helpers_cpu_secs: Option<f64>,
}

/// Opens the idle connections (helpers for each of `listeners`), holds
/// them for a phase after the last is open, and collects the helpers'
/// reports; sets `done` when the hold ends, whatever happens.
async fn siege(
    t: &Target<'_>,
    listeners: &[SocketAddr],
    done: &AtomicBool,
) -> Result<Siege, BenchError> {
    let attack = async {
        let mut holders = Vec::new();
        for (i, target) in listeners.iter().enumerate() {
            for spec in t.plan.holders(*target) {
                holders.push(Holder::spawn(t.exe, i, &spec)?);
            }
        }
        let mut opened = Vec::new();
        for h in &mut holders {
            opened.push(h.line::<Opened>(OPEN_WITHIN + PROCESS_WAIT).await?);
        }
        tokio::time::sleep(t.plan.phase).await;
        let cpu: Option<Vec<f64>> = holders.iter().map(Holder::cpu_secs).collect();
        done.store(true, Ordering::Relaxed);
        let mut reports = Vec::new();
        for (h, o) in holders.into_iter().zip(opened) {
            let listener = h.listener;
            reports.push((listener, o, h.finish().await?));
        }
        Ok(Siege {
            reports,
            helpers_cpu_secs: cpu.map(|c| round(c.iter().sum(), 2)),
        })
    };
    let result = attack.await;
    done.store(true, Ordering::Relaxed);
    result
}

async fn idle_connections(t: &Target<'_>) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "hostile_idle_connections";
    let pid = t.server.pid;
    let reference = unloaded(NAME, t).await?;
    let accept_failures = t.server.lines_with("accept failed");
    let fds_before = open_fds(pid);
    let overflows = listen_overflows();
    let cpu = cpu_secs(&pid.to_string());

    let phase = PeakRss::start_for(pid);
    let listeners = [("http", t.server.http), ("amp", t.server.amp)];
    let addresses: Vec<SocketAddr> = listeners.iter().map(|(_, a)| *a).collect();
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // The client measures from the first connection to the end of the
    // hold (bounded in any case).
    let longest = OPEN_WITHIN + PROCESS_WAIT + t.plan.phase;
    let (ours, siege, held) = tokio::join!(
        t.legit.observe_until(longest, done.clone()),
        siege(t, &addresses, &done),
        watch_held(pid, t.server.http, fds_before.unwrap_or(0), &done),
    );
    let window = started.elapsed();
    let peak = phase.finish();
    let cpu = cpu_used(cpu, cpu_secs(&pid.to_string()));
    let overflows = grew(overflows, listen_overflows());
    let (ours, siege) = (ours?, siege?);

    let note = format!(
        "ours: the legitimate client (127.0.0.1, its own runtime thread) from the first idle \
         connection to the end of the hold ({:.1} s): GET /api/me in a loop, one in flight, \
         on a kept-alive connection, and a real login (POST /api/login, new connection) \
         every {} ms; attack: {} TCP connections per listener opened against the HTTP port \
         and the AMP port ({CONNECTING} at once per helper) and held, sending nothing, for \
         {:.0} s after the last was open; helper processes (mantle {HOLD_COMMAND}, at most \
         {PER_HOLDER} each) hold them, {IDLE_PER_SOURCE} per source address and listener \
         from 127.1.0.1 upwards; closed_at_once: closed by the server within {} ms of \
         opening (refused: listener full); closed_later: made room for a newer one or \
         timed out; open_at_end: still open as the helper saw it, which includes \
         connections dropped from a full accept queue that the server never accepted; \
         server.held_peak: the most the server held at once (sampled every {} ms: its \
         descriptors, its statistics' AMP connections, and the descriptors above those \
         held before the attack less the AMP connections for HTTP); listen_overflows: connections the kernel dropped because an accept queue was full \
         (the client then retries after 1 s, 3 s, ...); reference: the same client alone \
         for {:.0} s, just before; helpers, client and server share the machine's {} cores",
        window.as_secs_f64(),
        LOGIN_EVERY.as_millis(),
        t.plan.idle_per_listener,
        t.plan.phase.as_secs_f64(),
        REFUSED_WITHIN.as_millis(),
        HELD_SAMPLING.as_millis(),
        t.plan.phase.as_secs_f64(),
        cores(),
    );
    let mut rec = record(NAME, t, (ours, peak), reference, note);
    let mut attackers = serde_json::Map::new();
    for (i, (name, _)) in listeners.iter().enumerate() {
        let reports: Vec<(Opened, Held)> = siege
            .reports
            .iter()
            .filter(|(l, _, _)| *l == i)
            .map(|(_, o, h)| (*o, *h))
            .collect();
        attackers.insert(
            (*name).into(),
            listener_report(t.plan.idle_per_listener, &reports),
        );
    }
    attackers.insert("helpers_cpu_secs".into(), json!(siege.helpers_cpu_secs));
    rec.attackers = Some(Value::Object(attackers));
    rec.server = Some(json!({
        "fds_before": fds_before,
        "held_peak": { "fds": held.fds, "http": held.http, "amp": held.amp },
        "accept_failures_logged": t.server.lines_with("accept failed") - accept_failures,
        "listen_overflows": overflows,
        "cpu_secs": cpu,
    }));
    rec.target = Some(IDLE_TARGET.into());
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_split_the_connections_and_stay_under_the_per_address_caps() {
        let target: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let specs = Plan::new(1.0).holders(target);
        assert_eq!(specs.len(), 2);
        assert_eq!(
            specs.iter().map(|s| s.count).sum::<u64>(),
            IDLE_PER_LISTENER
        );
        let (a, b) = (&specs[0], &specs[1]);
        assert_eq!(a.first_source, Ipv4Addr::new(127, 1, 0, 1));
        // The second helper starts where the first one's addresses end.
        assert_eq!(
            u32::from(b.first_source),
            u32::from(a.first_source) + a.sources
        );
        assert!(a.count.div_ceil(u64::from(a.sources)) <= IDLE_PER_SOURCE);
        assert_eq!(a.source(0), a.source(u64::from(a.sources)));
        assert_eq!(Plan::new(0.001).holders(target).len(), 1);
        assert_eq!(
            a.args()[..3],
            ["127.0.0.1:9".to_string(), "--count".into(), "10000".into()]
        );
    }

    #[test]
    fn attack_addresses_avoid_the_legitimate_client() {
        assert_eq!(attack_address(0), IpAddr::from([127, 0, 1, 0]));
        assert_eq!(attack_address(999), IpAddr::from([127, 0, 4, 231]));
        assert!((0..ATTACK_ADDRESSES).all(|n| attack_address(n) != IpAddr::from([127, 0, 0, 1])));
    }

    #[test]
    fn statistics_are_read_from_the_report() {
        let before = json!({"namespaces": {"Auth": {"values": {"Logins": {"value": 3}}}}});
        let after = json!({"namespaces": {"Auth": {"values": {"Logins": {"value": 10}}}}});
        assert_eq!(stat_delta(&before, &after, "Auth", "Logins"), Some(7));
        assert_eq!(stat(&after, "Auth", "Nothing"), None);
    }
}
