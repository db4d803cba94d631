//! The ledger across three nodes under chaos: transfers between users on
//! different nodes, sent through random nodes, while Mantle nodes are
//! killed with SIGKILL and restarted, and one etcd member is killed and
//! restarted. Afterwards no unit was made or lost, and every transfer was
//! credited once or refunded once.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mantle_cluster::harness::EtcdCluster;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::cluster::*;
use support::*;

const PW: &str = "correct horse battery";
/// Users per node.
const PER_NODE: usize = 4;
const NODES: usize = 3;
/// Units granted to each user.
const GRANT: i64 = 1_000;
/// Transfers acknowledged (202) before the chaos may stop.
const TARGET_ACKED: usize = 400;
/// Node kills (each followed by a restart) before the chaos may stop.
const MIN_KILLS: usize = 4;
/// How long the outboxes get to settle once the killing stops.
const SETTLE: Duration = Duration::from_secs(120);

fn login(i: usize) -> String {
    format!("user{i}@localhost")
}

#[derive(Default)]
struct Shared {
    done: AtomicBool,
    acked: AtomicUsize,
    /// Answers other than 202, 409 (funds), 502/503/504 (a node down or
    /// fenced: nothing saved), or a broken connection.
    unexpected: Mutex<Vec<String>>,
}

/// Random transfers through random nodes until told to stop.
async fn client_loop(bases: Vec<String>, tokens: Arc<Vec<String>>, shared: Arc<Shared>, seed: u64) {
    let c = client();
    let users = tokens.len() as u64;
    let mut rng = Rng(seed);
    while !shared.done.load(Ordering::Relaxed) {
        let from = rng.below(users) as usize;
        let to = if rng.below(50) == 0 {
            format!("ghost{}@localhost", rng.below(100))
        } else {
            let mut to = rng.below(users - 1) as usize;
            if to >= from {
                to += 1;
            }
            login(to)
        };
        let base = &bases[rng.below(bases.len() as u64) as usize];
        let sent = c
            .post(format!("{base}/api/ledger/transfer"))
            .bearer_auth(&tokens[from])
            .json(&json!({ "to": to, "amount": 1 + rng.below(10) }))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match sent.map(|r| r.status()) {
            Ok(StatusCode::ACCEPTED) => {
                shared.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(
                StatusCode::CONFLICT
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT,
            )
            | Err(_) => tokio::time::sleep(Duration::from_millis(30)).await,
            Ok(other) => shared.unexpected.lock().unwrap().push(format!(
                "{other} from {} to {to} through {base}",
                login(from)
            )),
        }
    }
}

/// Every user's balance, and the transfers settled (credited or refunded)
/// more than once or not yet, through node `base`.
async fn books(base: &str, tokens: &[String]) -> Option<(i64, usize, usize)> {
    let c = client();
    let (mut total, mut debits, mut settled) = (0, Vec::new(), HashMap::<String, usize>::new());
    for t in tokens {
        let get = async |path: &str| -> Option<Value> {
            c.get(format!("{base}{path}"))
                .bearer_auth(t)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()
        };
        total += get("/api/ledger/balance").await?["balance"].as_i64()?;
        let h = get("/api/ledger/history?limit=10000").await?;
        for e in h["entries"].as_array()? {
            let id = e["transfer"].as_str()?.to_string();
            match e["kind"].as_str()? {
                "debit" => debits.push(id),
                "credit" | "refund" => *settled.entry(id).or_default() += 1,
                _ => {}
            }
        }
    }
    let pending = debits.iter().filter(|d| !settled.contains_key(*d)).count();
    let doubled = settled.values().filter(|n| **n > 1).count();
    Some((total, pending, doubled))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_across_nodes_survives_killed_nodes_and_a_lost_etcd_member() {
    let Some(mut etcd) = EtcdCluster::start(3) else {
        return;
    };
    let sites: Vec<TestSite> = (0..NODES).map(|_| TestSite::init("admin")).collect();
    // Every node with an AMP listener: batches and answers travel over
    // the links between nodes.
    let mut envs = envs(&etcd, NODES);
    for env in &mut envs {
        env.push((
            "MANTLE_LIVE_AMP".into(),
            format!("127.0.0.1:{}", free_port()),
        ));
    }
    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let mut servers: Vec<Option<Server>> = (0..NODES)
        .map(|i| Some(sites[i].serve_on(ports[i], &pairs(&envs[i]))))
        .collect();
    let bases: Vec<String> = servers
        .iter()
        .map(|s| s.as_ref().unwrap().base.clone())
        .collect();
    let c = client();
    let mut tokens = Vec::new();
    for (n, site) in sites.iter().enumerate() {
        site.add_admin(&format!("root{n}"), PW);
        let root = token(&c, servers[n].as_ref().unwrap(), &format!("root{n}"), PW).await;
        for k in 0..PER_NODE {
            let i = n * PER_NODE + k;
            site.add_user(&format!("user{i}"), PW);
            let r = c
                .post(format!("{}/api/ledger/grant", bases[n]))
                .bearer_auth(&root)
                .json(&json!({ "to": login(i), "amount": GRANT }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "grant: {:?}", r.text().await);
            tokens.push(token(&c, servers[n].as_ref().unwrap(), &format!("user{i}"), PW).await);
        }
    }
    let total = GRANT * tokens.len() as i64;
    let tokens = Arc::new(tokens);
    let shared = Arc::new(Shared::default());
    let clients: Vec<_> = (0..8)
        .map(|k| {
            tokio::spawn(client_loop(
                bases.clone(),
                tokens.clone(),
                shared.clone(),
                7 + k,
            ))
        })
        .collect();

    // The chaos: a random node killed and restarted every 1-2 s; the
    // first etcd member killed after the second kill, back after the
    // fourth.
    let mut rng = Rng(42);
    let mut kills = 0;
    while kills < MIN_KILLS || shared.acked.load(Ordering::Relaxed) < TARGET_ACKED {
        tokio::time::sleep(Duration::from_millis(1_000 + rng.below(1_000))).await;
        let victim = rng.below(NODES as u64) as usize;
        let server = servers[victim].take().unwrap();
        let lines = tokio::task::spawn_blocking(move || server.kill())
            .await
            .unwrap();
        assert!(
            !lines.iter().any(|l| l.contains("panicked")),
            "{}",
            lines.join("\n")
        );
        kills += 1;
        match kills {
            2 => etcd.kill(0),
            4 => etcd.restart(0),
            _ => {}
        }
        let (site_path, env, port) = (
            sites[victim].dir.clone(),
            envs[victim].clone(),
            ports[victim],
        );
        let restarted = tokio::task::spawn_blocking(move || {
            let http = format!("127.0.0.1:{port}");
            Server::spawn(&["serve", s(&site_path), "--http", &http], &pairs(&env))
        })
        .await
        .unwrap();
        servers[victim] = Some(restarted);
        eprintln!(
            "chaos: kill #{kills} (n{}) at {} acknowledged transfers",
            victim + 1,
            shared.acked.load(Ordering::Relaxed)
        );
    }
    shared.done.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let unexpected = shared.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "{unexpected:#?}");

    // Once the outboxes drain: every unit accounted for, every transfer
    // credited or refunded exactly once.
    let deadline = Instant::now() + SETTLE;
    let mut last = None;
    loop {
        if let Some((sum, pending, doubled)) = books(&bases[0], &tokens).await {
            assert_eq!(doubled, 0, "transfers settled twice");
            if sum == total && pending == 0 {
                break;
            }
            last = Some((sum, pending));
        }
        assert!(
            Instant::now() < deadline,
            "not settled after {SETTLE:?}: (sum, pending) {last:?}, total {total}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "chaos: {} transfers acknowledged, {kills} node kills, all settled",
        shared.acked.load(Ordering::Relaxed)
    );
}
