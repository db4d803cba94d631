//! Continuous backup through the real binary: a server killed with
//! SIGKILL in the middle of a write load loses no more than its point of
//! loss (nothing at all in the synchronous mode), backing up to a local
//! directory and to a real S3-compatible server (s3s-fs); a store restores
//! to any moment of a write load exactly, and a whole site rebuilt with
//! `mantle backup restore-site` serves its users again (to a directory).
//!
//! The S3 tests use mantle-backup's harness (its tests/common/s3.rs): they
//! are skipped (with a note) when `MANTLE_TEST_S3S_FS` is not set, unless
//! `MANTLE_REQUIRE_S3` is; `scripts/test` sets both.
//!
//! The write load is the ledger's grant (`POST /api/ledger/grant`): one
//! transaction in the user's store that raises the balance and records an
//! entry. Each grant has its own amount (1, 2, 3, …) and they are sent one
//! at a time, so a restored store's entries, in order, must be exactly the
//! first grants sent (a prefix, without a gap), and its balance their sum
//! (no grant half-applied).
//!
//! The random choices (when to kill, which moments to restore to) come
//! from a seed printed at the start of each test; set `BACKUP_SEED` to
//! repeat them.

// The harness is shared, not copied; this file uses only part of it.
#[allow(dead_code)]
#[path = "../../mantle-backup/tests/common/s3.rs"]
mod s3;
mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mantle_backup::BackupConfig;
use mantle_example_ledger::{Balance, Entry};
use mantle_store::{Order, Registry, Store, StoreConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

const PW: &str = "correct horse battery";
/// The user whose store takes the write load.
const ALICE: &str = "alice@localhost";
/// The default point of loss, in µs.
const POINT_OF_LOSS_US: u64 = 1_000_000;

/// Microseconds since 1970, now (the clock the server stamps commits with).
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as u64
}

/// The kinds of target a test backs up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    /// A local directory (`file://…`).
    Directory,
    /// A bucket of a real S3-compatible server (s3s-fs, see [`s3`]).
    S3,
}

/// The prefix in the S3 server's bucket a test site backs up under.
const S3_PREFIX: &str = "site";

/// A test site's backup target, there as long as the site is.
enum Target {
    /// A directory of its own.
    Directory(tempfile::TempDir),
    /// A running s3s-fs of its own; the site backs up to
    /// `s3://BUCKET/S3_PREFIX` on it.
    S3(s3::S3Server),
}

impl Target {
    /// A new target of the kind; `None` (after a printed note) to skip
    /// the test when no s3s-fs is available (see [`s3::s3s_fs_binary`]:
    /// a failure instead when `MANTLE_REQUIRE_S3` is set).
    async fn new(kind: TargetKind) -> Option<Target> {
        match kind {
            TargetKind::Directory => Some(Target::directory()),
            TargetKind::S3 => s3::S3Server::start().await.map(Target::S3),
        }
    }

    fn directory() -> Target {
        Target::Directory(tempfile::tempdir().expect("target directory"))
    }

    /// The `[backup]` settings of a site backing up here.
    fn config(&self, point_of_loss: &str) -> BackupConfig {
        match self {
            Target::Directory(dir) => BackupConfig {
                target: format!("file://{}", s(dir.path())),
                point_of_loss: point_of_loss.into(),
                ..BackupConfig::default()
            },
            Target::S3(server) => server.config(S3_PREFIX, point_of_loss),
        }
    }

    /// The directory holding the target's objects as files (s3s-fs keeps
    /// object KEY of the bucket as the file `ROOT/BUCKET/KEY`).
    fn objects_dir(&self) -> PathBuf {
        match self {
            Target::Directory(dir) => dir.path().to_path_buf(),
            Target::S3(server) => server.objects_dir(S3_PREFIX),
        }
    }
}

/// A site backing up to a target of its own, with an administrator and
/// the users given; the site's `mantle.toml` says `point_of_loss`.
struct BackedUp {
    site: TestSite,
    /// The target.
    target: Target,
    /// Its `[backup]` settings, as in the site's `mantle.toml`.
    config: BackupConfig,
    /// Where restored copies go.
    scratch: tempfile::TempDir,
}

impl BackedUp {
    fn new(target: Target, point_of_loss: &str, users: &[&str]) -> BackedUp {
        let config = target.config(point_of_loss);
        // A directory with `mantle init --backup`; S3 not (without the
        // endpoint and keys, set below, the site made would try AWS).
        let init_backup = matches!(target, Target::Directory(_));
        let flag = ["--backup", config.target.as_str()];
        let site = TestSite::init_with("admin", if init_backup { &flag } else { &[] });
        site.edit_config(|c| {
            if init_backup {
                assert_eq!(
                    c.backup.target, config.target,
                    "mantle init --backup sets the target"
                );
            }
            let key_file = std::mem::take(&mut c.backup.key_file);
            c.backup = BackupConfig {
                key_file,
                ..config.clone()
            };
        });
        assert_eq!(
            mantle_site::SiteConfig::load(&site.dir)
                .expect("load mantle.toml")
                .backup,
            config,
            "the site's [backup] settings"
        );
        site.add_admin("admin", PW);
        for u in users {
            site.add_user(u, PW);
        }
        BackedUp {
            site,
            target,
            config,
            scratch: tempfile::tempdir().expect("scratch directory"),
        }
    }

    fn dir(&self) -> &str {
        self.site.path()
    }

    /// The target, as in `[backup] target`.
    fn target_url(&self) -> &str {
        &self.config.target
    }

    /// A new path for a restored copy.
    fn scratch_file(&self, name: &str) -> PathBuf {
        let p = self.scratch.path().join(name);
        assert!(!p.exists(), "{} used twice", p.display());
        p
    }

    /// `mantle backup restore DIR STORE [--at AT] --to DEST`; its output.
    fn restore(&self, store: &str, at: Option<&str>, dest: &Path) -> String {
        let mut args = vec!["backup", "restore", self.dir(), store, "--to", s(dest)];
        if let Some(at) = at {
            args.extend(["--at", at]);
        }
        ok(mantle(&args))
    }
}

/// One grant sent: its amount (also its place: grant `n` has amount `n`),
/// when it was sent, and when its answer came back (`None`: no answer, the
/// server died meanwhile: it may or may not have committed).
#[derive(Debug, Clone, Copy)]
struct Grant {
    amount: i64,
    started_us: u64,
    acked_us: Option<u64>,
}

/// Sends grants of 1, 2, 3, … units (carrying on from `log`) to `to`,
/// one at a time, logging each, until `stop` is set or the server stops
/// answering. Returns how many were acknowledged.
async fn write_load(
    base: String,
    admin: String,
    to: &'static str,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Grant>>>,
) -> usize {
    let c = client();
    let url = format!("{base}/api/ledger/grant");
    let mut acked = 0;
    while !stop.load(Ordering::Relaxed) {
        let amount = log.lock().unwrap().len() as i64 + 1;
        let started_us = now_us();
        let sent = c
            .post(&url)
            .bearer_auth(&admin)
            .json(&json!({ "to": to, "amount": amount }))
            .send()
            .await;
        let answer = match sent {
            Ok(r) => {
                let status = r.status();
                r.text().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        let acked_us = now_us();
        match answer {
            Ok((StatusCode::OK, body)) => {
                let v: Value = serde_json::from_str(&body).expect("grant JSON");
                let mut log = log.lock().unwrap();
                // Grants are sent one at a time: the balance is the sum of
                // all acknowledged so far, and of those unanswered ones
                // (one per kill at most) that committed.
                let acked_sum: i64 = log
                    .iter()
                    .filter(|g| g.acked_us.is_some())
                    .map(|g| g.amount)
                    .sum();
                let unanswered: i64 = log
                    .iter()
                    .filter(|g| g.acked_us.is_none())
                    .map(|g| g.amount)
                    .sum();
                let balance = v["balance"].as_i64().expect("balance");
                assert!(
                    (acked_sum + amount..=acked_sum + unanswered + amount).contains(&balance),
                    "grant {amount}: balance {balance}, but the grants acknowledged before sum \
                     to {acked_sum} (and those unanswered to {unanswered})"
                );
                log.push(Grant {
                    amount,
                    started_us,
                    acked_us: Some(acked_us),
                });
                acked += 1;
            }
            Ok((status, body)) => panic!("grant {amount}: {status}: {body}"),
            Err(_) => {
                // The server died with the grant in flight.
                log.lock().unwrap().push(Grant {
                    amount,
                    started_us,
                    acked_us: None,
                });
                return acked;
            }
        }
    }
    acked
}

/// A restored ledger: the balance, and each grant's amount in the order
/// the entries were made.
async fn read_ledger(path: &Path) -> (i64, Vec<i64>) {
    let mut registry = Registry::new();
    mantle_example_ledger::register(&mut registry);
    let store = Store::open(path, &StoreConfig::new(registry))
        .await
        .unwrap_or_else(|e| panic!("open the restored {}: {e}", path.display()));
    let (balance, entries) = store
        .read(|r| {
            let balance = r.query::<Balance>().first()?.map_or(0, |b| b.units);
            let entries: Vec<Entry> = r
                .query::<Entry>()
                .order_by(Order::by_id())
                .all()?
                .into_iter()
                .map(|e| e.into_inner())
                .collect();
            mantle_store::ok((balance, entries))
        })
        .await
        .expect("read the ledger");
    store.close().await;
    assert!(
        entries.iter().all(|e| e.kind == "grant"),
        "entries other than grants: {entries:?}"
    );
    (balance, entries.iter().map(|e| e.amount).collect())
}

/// Checks a restored ledger against the log of grants sent: its entries
/// are the grants sent, in order, up to some point, each acknowledged one
/// up to there included (unanswered ones may be either), and its balance
/// is their sum. Returns the amounts it holds.
fn check_prefix(log: &[Grant], balance: i64, amounts: &[i64], what: &str) -> HashSet<i64> {
    let mut held = 0;
    let mut cut = None;
    for g in log {
        if held < amounts.len() && amounts[held] == g.amount {
            held += 1;
        } else if g.acked_us.is_some() {
            cut = Some(g.amount);
            break;
        }
    }
    assert_eq!(
        held,
        amounts.len(),
        "{what}: the restored grants are not a prefix of those sent: after {held} of them, \
         grant {cut:?} (acknowledged) is missing but {:?} follow",
        &amounts[held..amounts.len().min(held + 10)]
    );
    let sum: i64 = amounts.iter().sum();
    assert_eq!(
        balance, sum,
        "{what}: the balance is not the sum of the grants recorded (a half-applied grant)"
    );
    amounts.iter().copied().collect()
}

/// Starts `mantle serve` on the site and logs the administrator in.
async fn serve(site: &BackedUp) -> (Server, String) {
    let server = tokio::task::block_in_place(|| site.site.serve(&[]));
    let admin = token(&client(), &server, "admin", PW).await;
    (server, admin)
}

/// Restores alice's store (latest state) after a crash and checks it
/// against the log: whole grants, a prefix of those sent, holding every
/// grant acknowledged more than `loss_us` before `kill_us` (`None`: every
/// grant acknowledged). Returns how many grants it holds.
async fn check_after_crash(
    site: &BackedUp,
    log: &[Grant],
    kill_us: u64,
    loss_us: Option<u64>,
    round: usize,
) -> usize {
    let dest = site.scratch_file(&format!("crash-{round}.store"));
    let out = site.restore("alice", None, &dest);
    ok(mantle(&["store", "check", s(&dest)]));
    let (balance, amounts) = read_ledger(&dest).await;
    let what = format!("round {round}");
    let held = check_prefix(log, balance, &amounts, &what);
    let due: Vec<&Grant> = log
        .iter()
        .filter(|g| {
            g.acked_us
                .is_some_and(|a| loss_us.is_none_or(|loss| a + loss < kill_us))
        })
        .collect();
    let missing: Vec<(i64, f64)> = due
        .iter()
        .filter(|g| !held.contains(&g.amount))
        .map(|g| {
            let before_kill = (kill_us as f64 - g.acked_us.unwrap() as f64) / 1e6;
            (g.amount, before_kill)
        })
        .collect();
    let acked = log.iter().filter(|g| g.acked_us.is_some()).count();
    // How close the backup came to the point of loss: the oldest
    // acknowledged grant it lacks, in seconds before the kill.
    let oldest_lacked = log
        .iter()
        .filter(|g| !held.contains(&g.amount))
        .filter_map(|g| g.acked_us)
        .min()
        .map(|a| format!("{:.3} s", (kill_us as f64 - a as f64) / 1e6));
    eprintln!(
        "{what}: {acked} grants acknowledged, {} due, {} restored (the oldest acknowledged \
         one lacking: {}); {}",
        due.len(),
        amounts.len(),
        oldest_lacked.as_deref().unwrap_or("none"),
        out.trim()
    );
    if !missing.is_empty() {
        eprintln!("{what}: the target's last log segments, by when they were stored:");
        let segments = segments(&site.target.objects_dir());
        for seg in &segments[segments.len().saturating_sub(6)..] {
            eprintln!(
                "  {}: commits made {:.3} .. {:.3} s before the kill, stored {:.3} s before it",
                seg.name,
                (kill_us as f64 - seg.first_us as f64) / 1e6,
                (kill_us as f64 - seg.last_us as f64) / 1e6,
                (kill_us as f64 - seg.stored_us as f64) / 1e6,
            );
        }
    }
    assert!(
        missing.is_empty(),
        "{what}: {} grants acknowledged {} are not in the backup \
         (grant, seconds before the kill): {:?}",
        missing.len(),
        loss_us.map_or("at all".to_string(), |l| format!(
            "more than {} s before the kill",
            l as f64 / 1e6
        )),
        &missing[..missing.len().min(10)]
    );
    amounts.len()
}

/// A log segment in a target (a directory, or s3s-fs's files).
struct Segment {
    name: String,
    /// When its first and last commits were made.
    first_us: u64,
    last_us: u64,
    /// When it was stored (its file's modification time).
    stored_us: u64,
}

/// The log segments the objects in `target` (a directory target, or
/// the directory s3s-fs keeps a target's objects in) hold, by when they
/// were stored.
fn segments(target: &Path) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut dirs = vec![target.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            // log-FIRST-LAST-T0-T1
            let fields: Vec<&str> = name.split('-').collect();
            if fields.len() != 5 || fields[0] != "log" {
                continue;
            }
            let stored_us = e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as u64)
                })
                .unwrap_or(0);
            out.push(Segment {
                first_us: fields[3].parse().unwrap_or(0),
                last_us: fields[4].parse().unwrap_or(0),
                stored_us,
                name,
            });
        }
    }
    out.sort_by_key(|s| s.stored_us);
    out
}

/// Rounds of: serve, send grants, SIGKILL the server at a random moment,
/// restore alice's store (from a target of the kind given) and check it.
/// Grants acknowledged more than `loss_us` before a kill (`None`: all of
/// them) must be in the backup.
async fn crash_rounds(
    test: &str,
    kind: TargetKind,
    point_of_loss: &str,
    loss_us: Option<u64>,
    rounds: usize,
) {
    let Some(target) = Target::new(kind).await else {
        return;
    };
    let mut rng = Rng::from_env(test);
    let site = BackedUp::new(target, point_of_loss, &["alice"]);
    eprintln!("{test}: backing up to {}", site.target_url());
    let log: Arc<Mutex<Vec<Grant>>> = Arc::default();
    for round in 1..=rounds {
        let (server, admin) = serve(&site).await;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_load(
            server.base.clone(),
            admin,
            ALICE,
            stop.clone(),
            log.clone(),
        ));
        // Mostly a few seconds of load; now and then a kill soon after
        // the start (while the store's new snapshot may be on its way).
        let uptime = if rng.between(0, 3) == 0 {
            rng.between(200, 1_000)
        } else {
            rng.between(1_500, 3_500)
        };
        tokio::time::sleep(Duration::from_millis(uptime)).await;
        let kill_us = now_us();
        let lines = tokio::task::block_in_place(|| server.kill());
        let panics: Vec<&String> = lines.iter().filter(|l| l.contains("panicked")).collect();
        assert!(panics.is_empty(), "the server panicked: {panics:#?}");
        let acked = tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .expect("the writer stops once the server is gone")
            .expect("writer task");
        stop.store(true, Ordering::Relaxed);
        eprintln!("round {round}: killed after {uptime} ms, {acked} grants acknowledged");
        let log = log.lock().unwrap().clone();
        check_after_crash(&site, &log, kill_us, loss_us, round).await;
    }
    let log = log.lock().unwrap().clone();
    let acked = log.iter().filter(|g| g.acked_us.is_some()).count();
    assert!(
        acked >= 100,
        "too few grants acknowledged to mean anything: {acked}"
    );
    // The log went to the target of that kind (the restores read it from
    // there: the site's configuration names nothing else).
    let segments = segments(&site.target.objects_dir());
    assert!(
        !segments.is_empty(),
        "no log segment in {}",
        site.target.objects_dir().display()
    );
    eprintln!(
        "{test}: {acked} grants acknowledged in all, {} log segments in {}",
        segments.len(),
        site.target_url()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_more_than_the_point_of_loss() {
    crash_rounds(
        "sigkill_loses_no_more_than_the_point_of_loss",
        TargetKind::Directory,
        "1s",
        Some(POINT_OF_LOSS_US),
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_acknowledged_in_the_synchronous_mode() {
    crash_rounds(
        "sigkill_loses_nothing_acknowledged_in_the_synchronous_mode",
        TargetKind::Directory,
        "sync",
        None,
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_more_than_the_point_of_loss_with_s3() {
    crash_rounds(
        "sigkill_loses_no_more_than_the_point_of_loss_with_s3",
        TargetKind::S3,
        "1s",
        Some(POINT_OF_LOSS_US),
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_acknowledged_in_the_synchronous_mode_with_s3() {
    crash_rounds(
        "sigkill_loses_nothing_acknowledged_in_the_synchronous_mode_with_s3",
        TargetKind::S3,
        "sync",
        None,
        3,
    )
    .await;
}

/// A moment as `mantle backup restore --at` takes it: seconds since 1970
/// with six decimals, or RFC 3339.
fn moment_text(us: u64, rfc3339: bool) -> String {
    if rfc3339 {
        mantle_backup::format_us(us)
    } else {
        format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restores_to_any_moment_of_a_write_load() {
    let mut rng = Rng::from_env("a_store_restores_to_any_moment_of_a_write_load");
    let site = BackedUp::new(Target::directory(), "1s", &["alice"]);
    let (server, admin) = serve(&site).await;
    let log: Arc<Mutex<Vec<Grant>>> = Arc::default();

    // A first grant opens alice's store; the moments come after its first
    // snapshot is stored.
    let c = client();
    let r = c
        .post(server.url("/api/ledger/grant"))
        .bearer_auth(&admin)
        .json(&json!({ "to": ALICE, "amount": 1 }))
        .send()
        .await
        .expect("grant");
    assert_eq!(r.status(), StatusCode::OK);
    log.lock().unwrap().push(Grant {
        amount: 1,
        started_us: 0,
        acked_us: Some(0),
    });
    let store = format!("users/{}.store", ALICE.replace('@', "_"));
    eventually("alice's store restorable", async || {
        let out = ok(mantle(&["backup", "list", site.dir(), "--json"]));
        let list: Value = serde_json::from_str(&out).expect("list JSON");
        let restorable = list.as_array().expect("array").iter().any(|s| {
            s["store"].as_str() == Some(store.as_str()) && s["earliest_us"].as_u64().is_some()
        });
        (restorable, list)
    })
    .await;

    // Three seconds of grants, with a pause (so that a segment ends early
    // and some moments fall between segments).
    let from_us = now_us();
    let mut acked = 0;
    let pause = rng.between(300, 1_200);
    for (i, run) in [1_200, 1_800].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_load(
            server.base.clone(),
            admin.clone(),
            ALICE,
            stop.clone(),
            log.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(run)).await;
        stop.store(true, Ordering::Relaxed);
        acked += writer.await.expect("writer");
    }
    let to_us = now_us();
    // A clean stop ships everything.
    tokio::task::block_in_place(|| server.stop_cleanly());
    let log = log.lock().unwrap().clone();
    assert!(
        log.iter().all(|g| g.acked_us.is_some()),
        "a grant unanswered"
    );
    assert!(acked >= 50, "too few grants to mean anything: {acked}");
    eprintln!("{acked} grants in {:.1} s", (to_us - from_us) as f64 / 1e6);

    // Twenty moments: at random in the span, and some exactly when a grant
    // was answered or sent.
    let mut moments: Vec<u64> = (0..12).map(|_| rng.between(from_us, to_us)).collect();
    for _ in 0..4 {
        let g = &log[rng.between(1, log.len() as u64 - 1) as usize];
        moments.push(g.acked_us.unwrap());
        let g = &log[rng.between(1, log.len() as u64 - 1) as usize];
        moments.push(g.started_us);
    }
    let mut held = Vec::new();
    for (i, &m) in moments.iter().enumerate() {
        let at = moment_text(m, i % 2 == 1);
        let dest = site.scratch_file(&format!("at-{i}.store"));
        let out = site.restore("alice", Some(&at), &dest);
        ok(mantle(&["store", "check", s(&dest)]));
        let (balance, amounts) = read_ledger(&dest).await;
        let what = format!("restored to {at}");
        check_prefix(&log, balance, &amounts, &what);
        let at_least = log.iter().filter(|g| g.acked_us.unwrap() <= m).count();
        let at_most = log.iter().filter(|g| g.started_us <= m).count();
        assert!(
            amounts.len() >= at_least,
            "{what}: {} grants, but {at_least} were acknowledged by then ({})",
            amounts.len(),
            out.trim()
        );
        assert!(
            amounts.len() <= at_most,
            "{what}: {} grants, but only {at_most} had been sent by then ({})",
            amounts.len(),
            out.trim()
        );
        held.push(amounts.len());
    }
    held.sort_unstable();
    eprintln!(
        "{} moments restored, holding {held:?} of {} grants",
        moments.len(),
        log.len()
    );
}

/// The users of the restore-site test, with what each writes.
const USERS: [&str; 3] = ["alice", "bob", "carol"];

fn address(user: &str) -> String {
    format!("{user}@localhost")
}

/// The slate each user writes, and its grants.
fn slate_of(i: usize, user: &str) -> Value {
    let words = ["one", "two", "three"][..=i].to_vec();
    json!({ "owner": user, "n": i, "words": words })
}

fn grants_of(i: usize) -> Vec<i64> {
    (1..=(3 + i as i64)).map(|k| k * 10 + i as i64).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_rebuilt_from_its_backup_serves_its_users() {
    let site = BackedUp::new(Target::directory(), "1s", &USERS);
    let (server, admin) = serve(&site).await;
    let c = client();
    for (i, user) in USERS.iter().enumerate() {
        let t = token(&c, &server, user, PW).await;
        let r = c
            .put(server.url("/api/slates/profile"))
            .bearer_auth(&t)
            .json(&slate_of(i, user))
            .send()
            .await
            .expect("PUT slate");
        assert_eq!(r.status(), StatusCode::CREATED, "{user}'s slate");
        for amount in grants_of(i) {
            let r = c
                .post(server.url("/api/ledger/grant"))
                .bearer_auth(&admin)
                .json(&json!({ "to": address(user), "amount": amount }))
                .send()
                .await
                .expect("grant");
            assert_eq!(r.status(), StatusCode::OK, "grant to {user}");
        }
    }
    // Past the point of loss, the machine is lost.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    tokio::task::block_in_place(|| server.kill());

    let rebuilt = site.scratch.path().join("rebuilt");
    let key = site.site.dir.join("backup.key");
    let out = ok(mantle(&[
        "backup",
        "restore-site",
        site.target_url(),
        s(&rebuilt),
        "--key-file",
        s(&key),
    ]));
    eprintln!("{}", out.trim());
    assert!(out.contains("restored a site of"), "{out}");
    // Every store, whole, and the configuration.
    let mut stores = vec!["site.store".to_string()];
    stores.extend(
        USERS
            .iter()
            .map(|u| format!("users/{}.store", address(u).replace('@', "_"))),
    );
    for store in &stores {
        let file = rebuilt.join(store);
        assert!(file.exists(), "{store} not restored: {out}");
        ok(mantle(&["store", "check", s(&file)]));
    }
    assert!(rebuilt.join("mantle.toml").exists());
    let restored = TestSiteAt(rebuilt.clone());

    let server = tokio::task::block_in_place(|| restored.serve());
    let c = client();
    let r = support::login(&c, &server, "alice", "not the password").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a wrong password");
    for (i, user) in USERS.iter().enumerate() {
        let t = token(&c, &server, user, PW).await;
        let r = get_auth(&c, &server, "/api/slates/profile", &t).await;
        assert_eq!(r.status(), StatusCode::OK, "{user}'s slate");
        let v: Value = r.json().await.expect("slate JSON");
        assert_eq!(v["body"], slate_of(i, user), "{user}'s slate");
        let r = get_auth(&c, &server, "/api/ledger/balance", &t).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.expect("balance JSON");
        let grants = grants_of(i);
        assert_eq!(
            v["balance"].as_i64(),
            Some(grants.iter().sum::<i64>()),
            "{user}'s balance"
        );
        let r = get_auth(&c, &server, "/api/ledger/history", &t).await;
        let v: Value = r.json().await.expect("history JSON");
        let mut amounts: Vec<i64> = v["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["amount"].as_i64().expect("amount"))
            .collect();
        amounts.reverse();
        assert_eq!(amounts, grants, "{user}'s history");
    }
    let t = token(&c, &server, "admin", PW).await;
    let r = get_auth(&c, &server, "/api/me", &t).await;
    assert_eq!(r.status(), StatusCode::OK, "the administrator");
    tokio::task::block_in_place(|| server.stop_cleanly());
}

/// A site directory not made by `TestSite` (a rebuilt one).
struct TestSiteAt(PathBuf);

impl TestSiteAt {
    fn serve(&self) -> Server {
        Server::spawn(&["serve", s(&self.0), "--http", "127.0.0.1:0"], &[])
    }
}

/// The backup commands' refusals: one line each, exit code 1, nothing
/// written: a site without a target, a store the target does not hold, a
/// moment that is not one, a moment before the first snapshot, and an
/// in-place restore while the server has the store open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_commands_refuse_bad_requests_with_one_line() {
    let refused = |args: &[&str], expected: &str| {
        let out = mantle(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    };
    let plain = TestSite::init_with("admin", &[]);
    refused(&["backup", "list", plain.path()], "has no backup target");

    let site = BackedUp::new(Target::directory(), "20ms", &["alice"]);
    let dest = site.scratch_file("x.store");
    let to = s(&dest);
    refused(
        &["backup", "restore", site.dir(), "nobody", "--to", to],
        "holds no store",
    );
    refused(
        &[
            "backup",
            "restore",
            site.dir(),
            ALICE,
            "--at",
            "yesterday",
            "--to",
            to,
        ],
        "RFC 3339",
    );
    refused(
        &[
            "backup",
            "restore",
            site.dir(),
            ALICE,
            "--at",
            "1000",
            "--to",
            to,
        ],
        "no complete snapshot that early",
    );
    assert!(!dest.exists(), "nothing written by a refused restore");
    let (server, _admin) = serve(&site).await;
    refused(
        &["backup", "restore", site.dir(), ALICE],
        "is open (is `mantle serve` running?)",
    );
    drop(server);
}
