//! The ledger under chaos: thousands of concurrent transfers over HTTP
//! while the server is killed with SIGKILL and restarted again and again.
//! Afterwards no unit was made or lost, every transfer was credited or
//! refunded exactly once, and only undeliverable messages are parked.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mantle_example_ledger::{Balance, Entry};
use mantle_site::Site;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

const PW: &str = "correct horse battery";
/// Ordinary users (senders and recipients).
const USERS: usize = 100;
/// Users disabled before the transfers start (recipients only).
const FROZEN: usize = 2;
/// Units granted to each ordinary user.
const GRANT: i64 = 1_000;
/// Transfers that must be acknowledged (202) before the chaos stops.
const TARGET_ACKED: usize = 10_000;
/// SIGKILLs (each followed by a restart) before the chaos may stop.
const MIN_KILLS: usize = 5;
/// Concurrent HTTP clients.
const CLIENTS: usize = 32;
/// How long the outboxes get to drain once the killing stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(180);

fn user(i: usize) -> String {
    format!("user{i}@localhost")
}

fn frozen(i: usize) -> String {
    format!("frozen{i}@localhost")
}

/// A transfer the server acknowledged with 202.
#[derive(Debug, Clone)]
struct Acked {
    transfer: String,
    from: usize,
    to: String,
    amount: i64,
}

#[derive(Default)]
struct Shared {
    /// Set when the chaos is over: clients stop.
    done: AtomicBool,
    acked: AtomicUsize,
    attempts: AtomicUsize,
    connection_errors: AtomicUsize,
    insufficient: AtomicUsize,
    acked_list: Mutex<Vec<Acked>>,
    /// Answers other than 202 / 409 (should stay empty).
    unexpected: Mutex<Vec<String>>,
}

/// One client: random transfers until told to stop.
async fn client_loop(
    c: reqwest::Client,
    base: String,
    tokens: Arc<Vec<String>>,
    shared: Arc<Shared>,
    seed: u64,
) {
    let mut rng = Rng(seed);
    let url = format!("{base}/api/ledger/transfer");
    while !shared.done.load(Ordering::Relaxed) {
        let from = rng.below(USERS as u64) as usize;
        let to = match rng.below(100) {
            0 | 1 => format!("ghost{}@localhost", rng.below(1_000)),
            2 | 3 => frozen(rng.below(FROZEN as u64) as usize),
            _ => {
                let mut to = rng.below(USERS as u64 - 1) as usize;
                if to >= from {
                    to += 1;
                }
                user(to)
            }
        };
        let amount = 1 + rng.below(10) as i64;
        shared.attempts.fetch_add(1, Ordering::Relaxed);
        let sent = c
            .post(&url)
            .bearer_auth(&tokens[from])
            .json(&json!({ "to": to, "amount": amount }))
            .send()
            .await;
        let answered = match sent {
            Ok(r) => {
                let status = r.status();
                r.text().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        match answered {
            Ok((StatusCode::ACCEPTED, body)) => {
                let v: Value = serde_json::from_str(&body).expect("transfer JSON");
                let transfer = v["transfer"].as_str().expect("transfer id").to_string();
                shared.acked_list.lock().unwrap().push(Acked {
                    transfer,
                    from,
                    to,
                    amount,
                });
                shared.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok((StatusCode::CONFLICT, _)) => {
                shared.insufficient.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, body)) => {
                shared
                    .unexpected
                    .lock()
                    .unwrap()
                    .push(format!("{status} from {} to {to}: {body}", user(from)));
            }
            Err(_) => {
                // The server is down or died mid-request: the transfer may
                // or may not have been committed. Try again shortly.
                shared.connection_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(rng.millis(20, 100)).await;
            }
        }
    }
}

/// What the chaos did.
struct Chaos {
    server: Server,
    kills: usize,
    /// Lines with "panicked" from the servers killed.
    panics: Vec<String>,
    /// ERROR lines from the servers killed.
    errors: Vec<String>,
}

/// Kills the server every 1–3 s (now and then sooner) and restarts it on
/// the same port, until enough transfers were acknowledged and enough kills
/// done.
async fn chaos_loop(
    mut server: Server,
    args: Vec<String>,
    env: Vec<(String, String)>,
    shared: Arc<Shared>,
    seed: u64,
) -> Chaos {
    let mut rng = Rng(seed);
    let mut kills = 0;
    let (mut panics, mut errors) = (Vec::new(), Vec::new());
    loop {
        // Mostly 1–3 s of service; sometimes less, to catch a server
        // still catching up on what the last one left undelivered.
        let uptime = if rng.below(5) == 0 {
            rng.millis(200, 1_000)
        } else {
            rng.millis(1_000, 3_000)
        };
        tokio::time::sleep(uptime).await;
        if shared.acked.load(Ordering::Relaxed) >= TARGET_ACKED && kills >= MIN_KILLS {
            shared.done.store(true, Ordering::Relaxed);
            return Chaos {
                server,
                kills,
                panics,
                errors,
            };
        }
        let lines = tokio::task::spawn_blocking(move || server.kill())
            .await
            .expect("kill");
        kills += 1;
        panics.extend(lines.iter().filter(|l| l.contains("panicked")).cloned());
        errors.extend(error_lines(&lines));
        eprintln!(
            "chaos: kill #{kills} at {} acknowledged transfers",
            shared.acked.load(Ordering::Relaxed)
        );
        let (args, env) = (args.clone(), env.clone());
        server = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Server::spawn(&args, &env)
        })
        .await
        .expect("restart");
    }
}

/// Every user's balance and history, as seen over HTTP.
struct Snapshot {
    total: i64,
    /// Debits with neither a credit nor a refund yet.
    pending: Vec<String>,
    /// Transfers credited or refunded more than once, or both.
    doubled: Vec<String>,
}

async fn snapshot(c: &reqwest::Client, base: &str, tokens: &[String]) -> Snapshot {
    let per_user: Vec<(i64, Vec<Value>)> = futures::stream::iter(tokens.iter())
        .map(|t| async move {
            let b: Value = c
                .get(format!("{base}/api/ledger/balance"))
                .bearer_auth(t)
                .send()
                .await
                .expect("GET balance")
                .json()
                .await
                .expect("balance JSON");
            let h: Value = c
                .get(format!("{base}/api/ledger/history?limit=10000"))
                .bearer_auth(t)
                .send()
                .await
                .expect("GET history")
                .json()
                .await
                .expect("history JSON");
            let balance = b["balance"].as_i64().unwrap_or_else(|| panic!("{b}"));
            let entries = h["entries"].as_array().unwrap_or_else(|| panic!("{h}"));
            assert!(entries.len() < 10_000, "history longer than one page");
            (balance, entries.clone())
        })
        .buffered(8)
        .collect()
        .await;
    let mut total = 0;
    let mut debits = Vec::new();
    let mut settled: HashMap<String, usize> = HashMap::new();
    for (balance, entries) in per_user {
        total += balance;
        for e in entries {
            let id = e["transfer"].as_str().expect("transfer").to_string();
            match e["kind"].as_str().expect("kind") {
                "debit" => debits.push(id),
                "credit" | "refund" => *settled.entry(id).or_default() += 1,
                _ => {}
            }
        }
    }
    let pending = debits
        .iter()
        .filter(|d| !settled.contains_key(*d))
        .cloned()
        .collect();
    let doubled = settled
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id.clone())
        .collect();
    Snapshot {
        total,
        pending,
        doubled,
    }
}

/// One user store's ledger, read offline.
struct Book {
    login: String,
    /// Its file, relative to the site directory.
    file: String,
    disabled: bool,
    balance: i64,
    entries: Vec<Entry>,
    /// Outbox entries not parked (should be none once drained).
    waiting: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_survives_sigkill_chaos() {
    let started = Instant::now();
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("chaos seed {seed} (set CHAOS_SEED to repeat the choices)");

    // The site, an administrator, and two users disabled from the start.
    let site = TestSite::init("open");
    site.add_admin("admin", PW);
    for i in 0..FROZEN {
        site.add_user(&frozen(i), PW);
        ok(mantle(&["user", "disable", site.path(), &frozen(i)]));
    }
    let port = free_port();
    let env = [("MANTLE_LOGIN_ATTEMPTS_PER_MINUTE", "1000000")];
    let server = site.serve_on(port, &env);
    let base = server.base.clone();
    assert_eq!(base, format!("http://127.0.0.1:{port}"));
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");

    // A hundred users sign up; everyone logs in once (tokens outlive restarts).
    let signed: Vec<StatusCode> = futures::stream::iter(0..USERS)
        .map(|i| {
            let c = c.clone();
            let base = base.clone();
            async move {
                c.post(format!("{base}/api/signup"))
                    .json(&json!({ "username": user(i), "password": PW }))
                    .send()
                    .await
                    .expect("POST /api/signup")
                    .status()
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    assert!(
        signed.iter().all(|s| *s == StatusCode::CREATED),
        "{signed:?}"
    );
    let tokens: Vec<String> = futures::stream::iter(0..USERS)
        .map(|i| {
            let c = c.clone();
            let server = &server;
            async move { token(&c, server, &user(i), PW).await }
        })
        .buffered(4)
        .collect()
        .await;
    let tokens = Arc::new(tokens);
    let admin = token(&c, &server, "admin@localhost", PW).await;
    for i in 0..FROZEN {
        let r = login(&c, &server, &frozen(i), PW).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "a disabled user logs in");
    }

    // The administrator grants every user its units.
    let mut granted = 0;
    for i in 0..USERS {
        let r = c
            .post(server.url("/api/ledger/grant"))
            .bearer_auth(&admin)
            .json(&json!({ "to": user(i), "amount": GRANT }))
            .send()
            .await
            .expect("POST grant");
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        granted += GRANT;
    }
    let r = c
        .post(server.url("/api/ledger/grant"))
        .bearer_auth(&tokens[0])
        .json(&json!({ "to": user(0), "amount": 5 }))
        .send()
        .await
        .expect("POST grant");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "only admins grant");
    let setup = started.elapsed();
    eprintln!("setup (site, {USERS} signups, logins, grants): {setup:?}");

    // Transfers from many clients while the server is killed and restarted.
    let shared = Arc::new(Shared::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            tokio::spawn(client_loop(
                c.clone(),
                base.clone(),
                tokens.clone(),
                shared.clone(),
                seed ^ (k as u64 + 1).wrapping_mul(0x5851_F42D_4C95_7F2D),
            ))
        })
        .collect();
    let http = format!("127.0.0.1:{port}");
    let args: Vec<String> = ["serve", site.path(), "--http", &http]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let env_owned: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let chaos = tokio::spawn(chaos_loop(server, args, env_owned, shared.clone(), !seed));
    let chaos = match chaos.await {
        Ok(c) => c,
        Err(e) => {
            shared.done.store(true, Ordering::Relaxed);
            panic!("chaos task failed: {e}");
        }
    };
    for cl in clients {
        cl.await.expect("client task");
    }
    let chaos_time = started.elapsed() - setup;
    let acked = shared.acked_list.lock().unwrap().clone();
    let unexpected = shared.unexpected.lock().unwrap().clone();
    eprintln!(
        "chaos: {} attempts, {} acknowledged, {} insufficient funds, {} connection errors, {} kills, {chaos_time:?}",
        shared.attempts.load(Ordering::Relaxed),
        acked.len(),
        shared.insufficient.load(Ordering::Relaxed),
        shared.connection_errors.load(Ordering::Relaxed),
        chaos.kills,
    );
    assert!(acked.len() >= TARGET_ACKED);
    assert!(chaos.kills >= MIN_KILLS);
    assert!(
        unexpected.is_empty(),
        "unexpected answers ({}): {:#?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(20)]
    );
    assert!(
        chaos.panics.is_empty(),
        "servers panicked: {:#?}",
        chaos.panics
    );
    let server = chaos.server;

    // Let the outboxes drain: the books balance and every debit is settled,
    // several polls in a row.
    let drain_start = Instant::now();
    let mut calm = 0;
    let mut last = None;
    while calm < 3 {
        let snap = snapshot(&c, &base, &tokens).await;
        assert!(
            snap.doubled.is_empty(),
            "{} transfers settled twice, e.g. {:?}",
            snap.doubled.len(),
            &snap.doubled[..snap.doubled.len().min(5)]
        );
        if snap.total == granted && snap.pending.is_empty() {
            calm += 1;
        } else {
            calm = 0;
        }
        if drain_start.elapsed() > DRAIN_TIMEOUT {
            panic!(
                "not drained after {DRAIN_TIMEOUT:?}: total {} of {granted}, {} pending, e.g. {:?}; server stderr tail:\n{}",
                snap.total,
                snap.pending.len(),
                &snap.pending[..snap.pending.len().min(5)],
                server
                    .stderr()
                    .iter()
                    .rev()
                    .take(30)
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        last = Some(snap.total);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("drained in {:?} (total {last:?})", drain_start.elapsed());

    let (status, stderr) = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{status:?}");
    assert!(
        !stderr.iter().any(|l| l.contains("panicked")),
        "the last server panicked:\n{}",
        stderr.join("\n")
    );
    let mut errors = chaos.errors;
    errors.extend(error_lines(&stderr));

    // Offline, through the library: every store's balance and history.
    // Declaring the sections the server's configuration has ([http],
    // [live]), as the server does.
    let lib = mantle_example_ledger::install(
        mantle_web::install(Site::builder(&site.dir))
            .section::<mantle_live_server::LiveConfig>()
            .with(mantle_example_notes::register),
    )
    .open()
    .await
    .expect("open the site");
    let mut books = Vec::new();
    let mut by_store: HashMap<String, String> = HashMap::new();
    for a in lib.accounts().list().await.expect("accounts") {
        let store = lib
            .stores()
            .user_store_unchecked(a.id)
            .await
            .expect("user store");
        let (balance, entries) = store
            .read(|r| {
                let balance = r.query::<Balance>().first()?.map_or(0, |b| b.units);
                let entries: Vec<Entry> = r
                    .query::<Entry>()
                    .all()?
                    .into_iter()
                    .map(|e| e.into_inner())
                    .collect();
                mantle_store::ok((balance, entries))
            })
            .await
            .expect("read ledger");
        let waiting = store
            .outbox()
            .await
            .expect("outbox")
            .iter()
            .filter(|e| !e.parked)
            .count();
        by_store.insert(format!("account:{}", a.id.raw()), a.primary.clone());
        books.push(Book {
            login: a.primary,
            file: a.store,
            disabled: a.disabled,
            balance,
            entries,
            waiting,
        });
    }
    let parked = lib.messaging().parked().await.expect("parked messages");
    lib.close().await;

    assert_eq!(books.len(), USERS + FROZEN + 1);
    let total: i64 = books.iter().map(|b| b.balance).sum();
    assert_eq!(total, granted, "units were made or lost");
    for b in &books {
        assert_eq!(b.waiting, 0, "{} still has messages to send", b.login);
        let from_entries: i64 = b
            .entries
            .iter()
            .map(|e| match e.kind.as_str() {
                "debit" => -e.amount,
                _ => e.amount,
            })
            .sum();
        assert_eq!(
            b.balance, from_entries,
            "{}: the balance disagrees with the history",
            b.login
        );
        if b.disabled {
            assert!(
                b.entries.is_empty(),
                "{} is disabled but has entries",
                b.login
            );
        }
    }

    // Per transfer: one debit, and one credit at the recipient or one
    // refund at the sender, never both, never two.
    #[derive(Default)]
    struct Fate {
        debits: Vec<(String, String, i64)>,
        credits: Vec<(String, String, i64)>,
        refunds: Vec<(String, i64)>,
    }
    let mut fates: BTreeMap<String, Fate> = BTreeMap::new();
    let mut grants = 0;
    for b in &books {
        for e in &b.entries {
            let f = fates.entry(e.transfer.clone()).or_default();
            match e.kind.as_str() {
                "debit" => f
                    .debits
                    .push((b.login.clone(), e.counterparty.clone(), e.amount)),
                "credit" => {
                    let from = by_store
                        .get(&e.counterparty)
                        .unwrap_or_else(|| panic!("credit from unknown {}", e.counterparty));
                    f.credits.push((b.login.clone(), from.clone(), e.amount));
                }
                "refund" => f.refunds.push((b.login.clone(), e.amount)),
                "grant" => grants += 1,
                other => panic!("unknown entry kind {other}"),
            }
        }
    }
    assert_eq!(grants, USERS);
    let undeliverable = |to: &str| to.starts_with("ghost") || to.starts_with("frozen");
    let (mut credited, mut refunded) = (0, 0);
    for (id, f) in &fates {
        if f.debits.is_empty() && f.credits.is_empty() && f.refunds.is_empty() {
            continue; // a grant
        }
        assert_eq!(f.debits.len(), 1, "transfer {id}: debits {:?}", f.debits);
        let (sender, to, amount) = &f.debits[0];
        match (f.credits.as_slice(), f.refunds.as_slice()) {
            ([(at, from, n)], []) => {
                assert_eq!(at, to, "transfer {id} credited to the wrong store");
                assert_eq!(from, sender, "transfer {id}: credit names the wrong sender");
                assert_eq!(n, amount, "transfer {id}: credit amount");
                assert!(!undeliverable(to), "transfer {id} credited to {to}");
                credited += 1;
            }
            ([], [(at, n)]) => {
                assert_eq!(at, sender, "transfer {id} refunded to the wrong store");
                assert_eq!(n, amount, "transfer {id}: refund amount");
                assert!(undeliverable(to), "transfer {id} to {to} refunded");
                refunded += 1;
            }
            (c, r) => panic!("transfer {id}: credits {c:?}, refunds {r:?}"),
        }
    }
    for a in &acked {
        let f = fates
            .get(&a.transfer)
            .unwrap_or_else(|| panic!("acknowledged transfer {a:?} has no debit"));
        assert_eq!(
            f.debits
                .first()
                .map(|(s, t, n)| (s.as_str(), t.as_str(), *n)),
            Some((user(a.from).as_str(), a.to.as_str(), a.amount)),
            "acknowledged transfer {} recorded differently",
            a.transfer
        );
    }
    let acked_ids: HashSet<&str> = acked.iter().map(|a| a.transfer.as_str()).collect();
    let committed = credited + refunded;
    assert!(committed >= acked_ids.len());

    // Parked: exactly the refused messages, each to a ghost or a disabled user.
    for p in &parked {
        assert_eq!(p.kind, "ledger.credit");
        if p.to.starts_with("ghost") {
            assert!(p.reason.contains("NO_SUCH_RECIPIENT"), "{p:?}");
        } else if p.to.starts_with("frozen") {
            assert!(p.reason.contains("RECIPIENT_DISABLED"), "{p:?}");
        } else {
            panic!("parked message to a live user: {p:?}");
        }
    }
    assert_eq!(parked.len(), refunded, "one parked message per refund");

    // The same through the binary.
    let listed: Value =
        serde_json::from_str(&ok(mantle(&["messages", "list", site.path(), "--json"])))
            .expect("messages JSON");
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), parked.len());
    assert!(
        listed
            .iter()
            .all(|m| undeliverable(m["to"].as_str().unwrap()))
    );
    let entries: usize = books.iter().map(|b| b.entries.len()).sum();
    let out = ok(mantle(&["fanout", site.path(), "count", "ledger_entry"]));
    assert!(
        out.contains(&format!(
            "ledger_entry: {entries} items in {} user stores",
            books.len()
        )),
        "{out}"
    );
    let out = ok(mantle(&["ledger", "balance", site.path(), &user(0)]));
    assert_eq!(
        out.trim(),
        format!(
            "{}: {}",
            user(0),
            books.iter().find(|b| b.login == user(0)).unwrap().balance
        )
    );
    // SQLite's and the store's own checks, on the site store and a few
    // user stores.
    ok(mantle(&["store", "check", s(&site.dir.join("site.store"))]));
    for b in books.iter().filter(|b| !b.disabled).take(5) {
        ok(mantle(&["store", "check", s(&site.dir.join(&b.file))]));
    }

    eprintln!(
        "ledger chaos: {} acknowledged of {committed} committed transfers ({credited} credited, {refunded} refunded), {} kills, {} parked, {} ERROR lines, {:?} in all",
        acked.len(),
        chaos.kills,
        parked.len(),
        errors.len(),
        started.elapsed()
    );
    for e in errors.iter().take(10) {
        eprintln!("  server error: {e}");
    }
}
