//! `mantle serve` as a cluster node, on a real three-member etcd: it
//! joins, claims the stores it opens, shows in `mantle cluster status`,
//! leaves at shutdown; paused past its lease, it acknowledges nothing, and
//! its stores can be taken over only then.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mantle_cluster::ClusterError;
use mantle_cluster::harness::EtcdCluster;
use reqwest::StatusCode;
use serde_json::Value;
use support::cluster::*;
use support::*;

const PW: &str = "correct horse battery";

/// `mantle cluster status DIR --json` with the node's environment.
fn status(site: &TestSite, env: &[(String, String)]) -> Value {
    let out = ok(mantle_in(
        env,
        &["cluster", "status", site.path(), "--json"],
    ));
    serde_json::from_str(&out).expect("status JSON")
}

/// Makes the slate `sN` (a new one each time: no version needed).
async fn put_slate(c: &reqwest::Client, server: &Server, token: &str, n: u32) -> StatusCode {
    c.put(server.url(&format!("/api/slates/s{n}")))
        .bearer_auth(token)
        .json(&serde_json::json!({ "n": n }))
        .send()
        .await
        .expect("PUT slate")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_claims_what_it_opens_shows_in_status_and_leaves() {
    let _one = one_at_a_time().await;
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let site = TestSite::init_bare("admin", &[]);
    site.add_user("alice", PW);
    let env = node_env(&etcd, "n1");
    let server = site.serve(&pairs(&env));
    assert!(
        server
            .stderr()
            .iter()
            .any(|l| l.contains("node n1 joined cluster mantle")),
        "{:?}",
        server.stderr()
    );
    let c = client();
    let t = token(&c, &server, "alice", PW).await;
    assert_eq!(put_slate(&c, &server, &t, 1).await, StatusCode::CREATED);

    let d = directory(&etcd);
    let site_store = d
        .owner("sites/n1")
        .await
        .unwrap()
        .expect("the site store's owner");
    assert_eq!(
        (site_store.owner.node.as_str(), site_store.owner.epoch),
        ("n1", 1)
    );
    assert_eq!(user_stores_of(&d, "n1").await.len(), 1);

    let s = status(&site, &env);
    assert_eq!(s["nodes"][0]["node"], "n1", "{s}");
    assert!(s["nodes"][0]["stores"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(s["this_node"]["lease"]["node"], "n1", "{s}");
    assert!(
        s["this_node"]["lease"]["valid_for_ms"].as_u64().unwrap() > 0,
        "{s}"
    );

    // A clean stop leaves the cluster: the node key goes at once (its
    // stores stay its own until someone takes them).
    server.stop_cleanly();
    assert!(d.node("n1").await.unwrap().is_none());
    let s = status(&site, &env);
    assert_eq!(s["nodes"].as_array().unwrap().len(), 0, "{s}");
    assert!(s["orphaned_stores"].as_array().unwrap().len() >= 2, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_acknowledges_nothing_once_its_lease_may_have_run_out() {
    let _one = one_at_a_time().await;
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let one = TestSite::init_bare("admin", &[]);
    one.add_user("alice", PW);
    let n1 = one.serve(&pairs(&node_env(&etcd, "n1")));
    let d = directory(&etcd);
    // The node taking over: alive in the cluster (serving no HTTP).
    let _n2 = mantle_cluster::NodeLease::join(
        d.clone(),
        "n2",
        "127.0.0.1:1",
        "test",
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let c = client();
    let t = token(&c, &n1, "alice", PW).await;
    assert_eq!(put_slate(&c, &n1, &t, 1).await, StatusCode::CREATED);
    let alice = user_stores_of(&d, "n1").await.pop().expect("alice's store");

    // While n1's lease lives, n2 may not take its store.
    let err = d.take_over(&alice, "n2").await.unwrap_err();
    assert!(matches!(err, ClusterError::OwnerAlive { .. }), "{err}");

    // A write whose request n1 has begun to serve (routed, waiting for
    // the rest of its body) when it is paused.
    let mut write = std::net::TcpStream::connect(n1.base.trim_start_matches("http://")).unwrap();
    write
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "PUT /api/slates/s2 HTTP/1.1\r\nHost: n1\r\nAuthorization: Bearer {t}\r\n\
         Content-Type: application/json\r\nContent-Length: 8\r\n\r\n{{\"n\":"
    );
    std::io::Write::write_all(&mut write, head.as_bytes()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Paused past its lease: etcd drops its node key, and only then does
    // the takeover go through, with the next epoch.
    unsafe { libc::kill(n1.pid() as i32, libc::SIGSTOP) };
    let deadline = Instant::now() + Duration::from_secs(15);
    while d.node("n1").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "n1's node key outlived its lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let taken = d.take_over(&alice, "n2").await.unwrap();
    assert_eq!((taken.owner.node.as_str(), taken.owner.epoch), ("n2", 2));

    // n1 wakes and gets the rest of the write: its own fence refuses it,
    // and nothing of it is saved.
    unsafe { libc::kill(n1.pid() as i32, libc::SIGCONT) };
    std::io::Write::write_all(&mut write, b"22}").unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut write, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        n1.stderr()
            .iter()
            .any(|l| l.contains("refused a write: fenced")),
        "{:?}",
        n1.stderr()
    );
    // And later writes too: the store is n2's now, whatever n1's lease.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        put_slate(&c, &n1, &t, 3).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // n1 is back in the cluster, under a new lease.
    assert!(d.node("n1").await.unwrap().is_some());
    // Its copy holds only the write acknowledged before the pause.
    n1.stop_cleanly();
    assert_eq!(one.item_count(&format!("{alice}.store"), "mantle_slate"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_logs_in_and_works_through_every_node() {
    let _one = one_at_a_time().await;
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let users = ["alice", "bob", "carol"];
    let sites: Vec<TestSite> = (0..3).map(|_| TestSite::init_bare("admin", &[])).collect();
    // Made before the site became a node: its login is published when
    // the node starts.
    sites[0].add_user("dave", PW);
    let servers: Vec<Server> = sites
        .iter()
        .enumerate()
        .map(|(i, site)| {
            let env = node_env(&etcd, &format!("n{}", i + 1));
            let args = [
                "serve",
                site.path(),
                "--http",
                "127.0.0.1:0",
                "--amp",
                "127.0.0.1:0",
            ];
            Server::spawn(&args, &pairs(&env))
        })
        .collect();
    // Each user is made on its own node (through that node's admin API).
    for (site, user) in sites.iter().zip(users) {
        site.add_user(user, PW);
    }
    // A login names one account across the cluster.
    let taken = mantle_with_stdin(
        &["user", "add", sites[1].path(), "alice"],
        &format!("{PW}\n"),
    );
    assert!(!taken.status.success());
    assert!(
        stderr(&taken).contains("'alice@localhost' is already taken"),
        "{}",
        stderr(&taken)
    );

    let c = client();
    let mut n = 0;
    for (home, user) in users.iter().enumerate() {
        for (i, server) in servers.iter().enumerate() {
            // Logging in through any node, and working through any other.
            let t = token(&c, server, user, PW).await;
            let other = &servers[(i + 1) % 3];
            n += 1;
            assert_eq!(
                put_slate(&c, other, &t, n).await,
                StatusCode::CREATED,
                "{user} (home n{}) through n{}",
                home + 1,
                (i + 1) % 3 + 1
            );
            let me: Value = get_auth(&c, server, "/api/me", &t)
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(me["primary"], format!("{user}@localhost"), "{me}");
            let wrong = login(&c, server, user, "not the password").await;
            assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        }
        // Everything the user wrote through any node is in its home store.
        let slates: Value = {
            let t = token(&c, &servers[home], user, PW).await;
            get_auth(&c, &servers[home], "/api/slates", &t)
                .await
                .json()
                .await
                .unwrap()
        };
        assert_eq!(
            slates["slates"].as_array().map(Vec::len),
            Some(3),
            "{slates}"
        );
    }
    let t = token(&c, &servers[2], "dave", PW).await;
    assert_eq!(
        put_slate(&c, &servers[1], &t, 99).await,
        StatusCode::CREATED
    );
    // A fan-out from any node counts every node's stores.
    let env = node_env(&etcd, "n3");
    let said = ok(mantle_in(
        &env,
        &["fanout", sites[2].path(), "count", "mantle_slate"],
    ));
    assert!(
        said.contains("mantle_slate: 10 items in 4 user stores (4 hold some) on 3 nodes"),
        "{said}"
    );
    // A WebSocket to any node reaches the user's own node.
    for (home, user) in users.iter().enumerate() {
        let t = token(&c, &servers[home], user, PW).await;
        for server in &servers {
            let me = whoami_over_websocket(server, &t).await;
            assert_eq!(
                me["answer"]["username"],
                format!("{user}@localhost"),
                "{me}"
            );
        }
    }
    // An AMP connection to any node is passed on to the user's own node
    // (`mantle amp call`, logging in with a password).
    for user in &users {
        for server in &servers {
            let amp = amp_address(server);
            let login = format!("{user}:{PW}");
            let said = ok(mantle(&["amp", "call", &amp, "Whoami", "--login", &login]));
            assert!(said.contains(&format!("{user}@localhost")), "{said}");
        }
    }
    // The Rust client too: logging in with a password at one node and
    // with a token at another, it is served by the user's own node.
    for (home, user) in users.iter().enumerate() {
        let t = token(&c, &servers[home], user, PW).await;
        for (i, server) in servers.iter().enumerate() {
            let credentials = if i == (home + 1) % servers.len() {
                mantle_client::Credentials::Password {
                    username: user.to_string(),
                    password: PW.into(),
                }
            } else {
                mantle_client::Credentials::Token(t.clone())
            };
            let mut options = mantle_client::ClientOptions::new(amp_address(server));
            options.credentials = Some(credentials);
            options.reconnect = false;
            let client = mantle_client::Client::connect(options).await.unwrap();
            let me = client
                .call::<mantle_live::builtin::Whoami>(mantle_live::Empty {})
                .await
                .unwrap();
            assert_eq!(
                me.username,
                format!("{user}@localhost"),
                "through n{}",
                i + 1
            );
            client.close();
        }
    }
    // A stranger claiming to be a node passing a connection on is cut off.
    let forged = mantle_amp::encode(
        &mantle_amp::AmpBox::new()
            .with(&b"_command"[..], &b"MantleForwarded"[..])
            .with(&b"voucher"[..], &b"n2 198.51.100.7 0 00"[..]),
    )
    .unwrap();
    let mut raw = std::net::TcpStream::connect(amp_address(&servers[0])).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut raw, &forged).unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut raw, &mut rest);
    assert!(rest.is_empty(), "answered a forged voucher: {rest:?}");
    // One keep-alive connection to n2, whose first request is Alice's
    // (joined to n1 whole), then Carol's (n1 forwards it to n3), then
    // Bob's (back to n2): each answered as its own user.
    let tokens: Vec<String> = {
        let mut t = Vec::new();
        for (home, user) in users.iter().enumerate() {
            t.push(token(&c, &servers[home], user, PW).await);
        }
        t
    };
    let http = servers[1].base.trim_start_matches("http://").to_string();
    let asked = [0, 2, 1].map(|u| tokens[u].clone());
    let answers = tokio::task::spawn_blocking(move || keep_alive_gets(&http, "/api/me", &asked))
        .await
        .unwrap();
    for (answer, u) in answers.iter().zip([0, 2, 1]) {
        assert!(
            answer.contains(&format!("\"{}@localhost\"", users[u])),
            "{answer}"
        );
    }
    // curl too, through the node that does not hold the user.
    let said = std::process::Command::new("curl")
        .args(["-sS", "-H"])
        .arg(format!("Authorization: Bearer {}", tokens[0]))
        .arg(servers[1].url("/api/me"))
        .output()
        .expect("curl (scripts/test installs it)");
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(said.contains("\"alice@localhost\""), "{said}");
    // A stranger's connection claiming to be joined by a node is closed
    // unanswered.
    let mut raw =
        std::net::TcpStream::connect(servers[0].base.trim_start_matches("http://")).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let forged = format!(
        "MANTLE-SPLICED n2 198.51.100.7 0 00\r\nGET /api/me HTTP/1.1\r\nHost: n1\r\n\
         Authorization: Bearer {}\r\n\r\n",
        tokens[0]
    );
    std::io::Write::write_all(&mut raw, forged.as_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut raw, &mut rest);
    assert!(rest.is_empty(), "answered a forged voucher: {rest:?}");
    // Unknown users and bad tokens are refused wherever they arrive.
    assert_eq!(
        login(&c, &servers[0], "nobody", PW).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let forged = format!("users~alice_localhost.{}", "A".repeat(43));
    let r = get_auth(&c, &servers[2], "/api/me", &forged).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A stranger's store "moved in" is refused before its 4 GB body is
    // read, as is a batch of messages.
    for path in [mantle_cluster::ADOPT_PATH, mantle_cluster::DELIVER_PATH] {
        let mut raw =
            std::net::TcpStream::connect(servers[0].base.trim_start_matches("http://")).unwrap();
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: n1\r\nContent-Length: 4000000000\r\n\r\n");
        std::io::Write::write_all(&mut raw, head.as_bytes()).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = [0u8; 12];
        std::io::Read::read_exact(&mut raw, &mut answer).unwrap();
        assert_eq!(&answer, b"HTTP/1.1 403", "{path}");
    }
    // A forged forwarding voucher is refused.
    let r = c
        .get(servers[0].url("/api/me"))
        .header(mantle_web::FORWARDED_HEADER, "n2 127.0.0.1 0 00")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// `GET path` once per token in `tokens`, one after another on one
/// keep-alive HTTP/1.1 connection to `addr`; each answer's head and body.
fn keep_alive_gets(addr: &str, path: &str, tokens: &[String]) -> Vec<String> {
    use std::io::{BufRead, Read, Write};
    let raw = std::net::TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = std::io::BufReader::new(raw.try_clone().unwrap());
    let mut raw = raw;
    let mut answers = Vec::new();
    for token in tokens {
        let head =
            format!("GET {path} HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {token}\r\n\r\n");
        raw.write_all(head.as_bytes()).unwrap();
        let (mut answer, mut length) = (String::new(), 0usize);
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "closed: {answer}");
            if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = n.trim().parse().unwrap();
            }
            answer.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        answer.push_str(&String::from_utf8_lossy(&body));
        answers.push(answer);
    }
    answers
}

/// `Whoami` over a WebSocket to `server`'s `/live`, logged in by `token`.
async fn whoami_over_websocket(server: &Server, token: &str) -> Value {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let url = format!("{}/live", server.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::Text(r#"{"id":1,"command":"Whoami"}"#.into()))
        .await
        .unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("an answer in time")
            .expect("an open socket")
            .unwrap();
        if let Message::Text(text) = m {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// `mantle cluster ARGS` with a node's environment; its output.
fn cluster_cli(env: &[(String, String)], args: &[&str]) -> std::process::Output {
    mantle_in(env, &[&["cluster"], args].concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_moves_back_and_forth_under_writes_and_loses_nothing() {
    let _one = one_at_a_time().await;
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let sites: Vec<TestSite> = (0..2).map(|_| TestSite::init("admin")).collect();
    let envs = envs(&etcd, 2);
    let servers: Vec<Server> = sites
        .iter()
        .zip(&envs)
        .map(|(s, e)| s.serve(&pairs(e)))
        .collect();
    sites[0].add_user("alice", PW);
    // Bob, on n2 (which his store never leaves), pays Alice all along.
    sites[1].add_admin("root", PW);
    sites[1].add_user("bob", PW);
    let c = client();
    let t = token(&c, &servers[0], "alice", PW).await;
    let bob = token(&c, &servers[1], "bob", PW).await;
    let root = token(&c, &servers[1], "root", PW).await;
    grant(&c, &servers[1], &root, "bob@localhost", 100_000).await;
    let d = directory(&etcd);
    let store = user_stores_of(&d, "n1")
        .await
        .into_iter()
        .find(|s| s.contains("alice"))
        .expect("alice's store");

    // A client writes new slates through both nodes all along, trying
    // again whatever is not acknowledged.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let urls: Vec<String> = servers.iter().map(|s| s.url("/api/slates/")).collect();
    let writer = {
        let (c, t, stop) = (c.clone(), t.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut acknowledged, mut attempts) = (Vec::new(), 0u32);
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let name = format!("w{n}");
                loop {
                    attempts += 1;
                    let url = format!("{}{name}", urls[attempts as usize % 2]);
                    let r = c
                        .put(url)
                        .bearer_auth(&t)
                        .json(&serde_json::json!({ "n": n }))
                        .send()
                        .await;
                    match r.map(|r| r.status()) {
                        Ok(StatusCode::CREATED) => {
                            acknowledged.push(name.clone());
                            break;
                        }
                        // Made by an attempt whose answer was lost.
                        Ok(StatusCode::PRECONDITION_REQUIRED) => break,
                        Ok(s) if s.is_server_error() => {}
                        Ok(s) => panic!("{name}: unexpected {s}"),
                        Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            (acknowledged, n)
        })
    };
    // Bob's payments, one unit each, through either node: each is
    // acknowledged once it is in his outbox, and reaches Alice's store
    // wherever it is by then.
    let payer = {
        let (c, bob, stop) = (c.clone(), bob.clone(), stop.clone());
        let servers: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
        tokio::spawn(async move {
            let mut paid = 0i64;
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let r = c
                    .post(format!("{}/api/ledger/transfer", servers[i % 2]))
                    .bearer_auth(&bob)
                    .json(&serde_json::json!({ "to": "alice@localhost", "amount": 1 }))
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status() == StatusCode::ACCEPTED) {
                    paid += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            paid
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut epoch = 1;
    for to in ["n2", "n1", "n2"] {
        let out = cluster_cli(&envs[0], &["move", sites[0].path(), &store, "--to", to]);
        let said = ok(out);
        epoch += 1;
        assert!(said.contains(&format!("to {to} (epoch {epoch}")), "{said}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acknowledged, made) = writer.await.unwrap();
    let paid = payer.await.unwrap();
    assert!(paid > 10, "{paid} payments acknowledged");
    // Every payment Bob's store debited reached Alice's once: whatever
    // Bob lost, Alice has (and at least every acknowledged one).
    let alice_has = async || balance(&c, &servers[1], &t).await;
    settles("alice's credits", async || {
        alice_has().await == 100_000 - balance(&c, &servers[0], &bob).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (alice, bob_left) = (alice_has().await, balance(&c, &servers[0], &bob).await);
    assert_eq!(alice + bob_left, 100_000, "applied twice, or lost");
    assert!(alice >= paid, "{alice} credited, {paid} acknowledged");
    assert!(
        acknowledged.len() > 10,
        "{} writes acknowledged",
        acknowledged.len()
    );

    let owner = d.owner(&store).await.unwrap().unwrap();
    assert_eq!((owner.owner.node.as_str(), owner.owner.epoch), ("n2", 4));
    // Every acknowledged write is there, and nothing that was not tried;
    // the token from before the moves still works, through either node.
    for server in &servers {
        let r = get_auth(&c, server, "/api/slates", &t).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        let names: Vec<String> = body["slates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        for a in &acknowledged {
            assert!(names.contains(a), "{a} acknowledged but missing");
        }
        for name in &names {
            let n: u32 = name.trim_start_matches('w').parse().unwrap();
            assert!(n <= made, "{name} was never written");
        }
    }
    // The old copies were set aside on n1 (moved out twice).
    let aside = std::fs::read_dir(sites[0].dir.join("moved"))
        .unwrap()
        .count();
    assert_eq!(aside, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_takes_stores_by_rebalancing_and_a_drained_node_keeps_none() {
    let _one = one_at_a_time().await;
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let sites: Vec<TestSite> = (0..3).map(|_| TestSite::init_bare("admin", &[])).collect();
    let envs = envs(&etcd, 3);
    // One node with every user, then two more join.
    let mut servers = vec![sites[0].serve(&pairs(&envs[0]))];
    let users = ["u1", "u2", "u3", "u4", "u5"];
    for u in users {
        sites[0].add_user(u, PW);
    }
    servers.push(sites[1].serve(&pairs(&envs[1])));
    servers.push(sites[2].serve(&pairs(&envs[2])));
    let c = client();
    let mut tokens = Vec::new();
    for u in users {
        let t = token(&c, &servers[0], u, PW).await;
        assert_eq!(put_slate(&c, &servers[0], &t, 1).await, StatusCode::CREATED);
        tokens.push(t);
    }
    let d = directory(&etcd);
    let counts = async || {
        let mut n = Vec::new();
        for node in ["n1", "n2", "n3"] {
            n.push(user_stores_of(&d, node).await.len());
        }
        n
    };
    assert_eq!(counts().await, [5, 0, 0]);

    let said = ok(cluster_cli(&envs[0], &["rebalance", sites[0].path()]));
    assert_eq!(said.matches("moved users/").count(), 3, "{said}");
    let mut after = counts().await;
    after.sort();
    assert_eq!(after, [1, 2, 2]);
    // Rebalancing a balanced cluster moves nothing.
    let said = ok(cluster_cli(&envs[1], &["rebalance", sites[1].path()]));
    assert!(said.contains("nothing to move"), "{said}");

    let said = ok(cluster_cli(&envs[2], &["drain", sites[2].path(), "n1"]));
    assert!(said.contains("moved users/"), "{said}");
    let now = counts().await;
    assert_eq!(now[0], 0, "{now:?}");
    assert_eq!(now.iter().sum::<usize>(), 5);
    // Every user still works, with the token from before, through n1.
    for t in &tokens {
        let r = get_auth(&c, &servers[0], "/api/slates/s1", t).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Moving to a node that does not exist is refused, and nothing moves.
    let out = cluster_cli(
        &envs[0],
        &["move", sites[0].path(), "users/u1_localhost", "--to", "n9"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not alive"), "{}", stderr(&out));
}

/// A user's ledger balance, asked through `server`.
async fn balance(c: &reqwest::Client, server: &Server, token: &str) -> i64 {
    let r = get_auth(c, server, "/api/ledger/balance", token).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["balance"].as_i64().expect("balance")
}

/// Grants `amount` units to `to` as the admin whose token is `root`.
async fn grant(c: &reqwest::Client, server: &Server, root: &str, to: &str, amount: i64) {
    let r = c
        .post(server.url("/api/ledger/grant"))
        .bearer_auth(root)
        .json(&serde_json::json!({ "to": to, "amount": amount }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

/// `POST /api/ledger/transfer` as the holder of `token`; the status.
async fn transfer(
    c: &reqwest::Client,
    server: &Server,
    token: &str,
    to: &str,
    amount: i64,
) -> StatusCode {
    c.post(server.url("/api/ledger/transfer"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "to": to, "amount": amount }))
        .send()
        .await
        .expect("POST transfer")
        .status()
}

/// Waits until `check` holds (a hang guard, not a speed check).
async fn settles(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_between_users_on_different_nodes_take_effect_once_and_answer() {
    let _one = one_at_a_time().await;
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let sites: Vec<TestSite> = (0..2).map(|_| TestSite::init("admin")).collect();
    let envs = envs(&etcd, 2);
    // n1 has an AMP listener: n2 carries batches and answers to it over a
    // link. n2 has none: n1 carries them to n2 over HTTP.
    let n1_args = [
        "serve",
        sites[0].path(),
        "--http",
        "127.0.0.1:0",
        "--amp",
        "127.0.0.1:0",
    ];
    let servers = [
        Server::spawn(&n1_args, &pairs(&envs[0])),
        sites[1].serve(&pairs(&envs[1])),
    ];
    sites[0].add_admin("root", PW);
    sites[0].add_user("alice", PW);
    sites[1].add_user("bob", PW);
    let c = client();
    let root = token(&c, &servers[0], "root", PW).await;
    grant(&c, &servers[0], &root, "alice@localhost", 100).await;
    // Alice (on n1) pays Bob (on n2), through either node.
    let alice = token(&c, &servers[1], "alice", PW).await;
    let bob = token(&c, &servers[0], "bob", PW).await;
    settles("the grant", async || {
        balance(&c, &servers[1], &alice).await == 100
    })
    .await;
    for (server, amount) in [(&servers[0], 30), (&servers[1], 12)] {
        assert_eq!(
            transfer(&c, server, &alice, "bob@localhost", amount).await,
            StatusCode::ACCEPTED
        );
    }
    settles("bob's credits", async || {
        balance(&c, &servers[0], &bob).await == 42
    })
    .await;
    assert_eq!(balance(&c, &servers[0], &alice).await, 58);
    // To nobody, anywhere: refused, and the answer refunds Alice.
    assert_eq!(
        transfer(&c, &servers[0], &alice, "ghost@localhost", 8).await,
        StatusCode::ACCEPTED
    );
    settles("the refund", async || {
        balance(&c, &servers[0], &alice).await == 58
    })
    .await;
    // Bob pays back (n2 to n1); his history names Alice's store.
    assert_eq!(
        transfer(&c, &servers[1], &bob, "alice@localhost", 2).await,
        StatusCode::ACCEPTED
    );
    settles("alice's credit", async || {
        balance(&c, &servers[1], &alice).await == 60
    })
    .await;
    assert_eq!(balance(&c, &servers[1], &bob).await, 40);
    // Sums hold, once settled: nothing applied twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        balance(&c, &servers[0], &alice).await + balance(&c, &servers[0], &bob).await,
        100
    );

    // A batch from a store at a stale epoch is refused.
    let secret = std::fs::read(secret_file(&etcd)).unwrap();
    let routing = mantle_cluster::Routing::new(
        directory(&etcd),
        "t",
        "localhost",
        secret.trim_ascii().to_vec(),
    );
    let voucher = mantle_web::Forwarding::vouch(
        &routing,
        "127.0.0.1".parse().unwrap(),
        "POST",
        mantle_cluster::DELIVER_PATH,
    );
    let alice_store = user_stores_of(&directory(&etcd), "n1").await;
    let alice_store = alice_store.iter().find(|s| s.contains("alice")).unwrap();
    let r = c
        .post(servers[1].url(mantle_cluster::DELIVER_PATH))
        .header(mantle_cluster::NODE_HEADER, voucher)
        .json(&serde_json::json!({
            "from": alice_store, "from_node": "n1", "from_epoch": 7,
            "to": "users/bob_localhost", "body": { "from_store": alice_store, "from_login": null, "msgs": [] },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("stale epoch"));
    // The same over a link to n1 (Bob's store's epoch is not 7): refused
    // as stale, the link staying open for the next request.
    let bob_store = user_stores_of(&directory(&etcd), "n2").await;
    let bob_store = bob_store.iter().find(|s| s.contains("bob")).unwrap();
    let link_voucher = mantle_web::Forwarding::vouch(
        &routing,
        "127.0.0.1".parse().unwrap(),
        "AMP",
        mantle_cluster::links::LINK_VOUCHER_PATH,
    );
    let stale = serde_json::to_vec(&serde_json::json!({
        "from": bob_store, "from_node": "n2", "from_epoch": 7,
        "to": alice_store, "body": { "from_store": bob_store, "from_login": null, "msgs": [] },
    }))
    .unwrap();
    let deliver = |tag: &str, json: &[u8]| {
        mantle_amp::AmpBox::new()
            .with(&b"_command"[..], &b"Deliver"[..])
            .with(&b"_ask"[..], tag.as_bytes())
            .with(&b"j0"[..], json)
    };
    let amp = amp_address(&servers[0]);
    let said = over_link(
        &amp,
        &link_voucher,
        &[
            deliver("1", &stale),
            deliver("2", b"{"),
            deliver("3", &stale).with(&b"_command"[..], &b"Nope"[..]),
        ],
    );
    // (Answered as each is done, not in order: matched by their tags.)
    let mut codes: Vec<_> = said.iter().map(|m| (tag_of(m), error_code(m))).collect();
    codes.sort();
    let codes: Vec<_> = codes.into_iter().map(|(_, c)| c).collect();
    assert_eq!(codes, ["", "STALE", "REFUSED", "REFUSED"], "{said:?}");
    // A stranger's link is refused, and closed, before anything it sends.
    let said = over_link(&amp, "n2 127.0.0.1 0 00", &[deliver("1", &stale)]);
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(error_code(&said[0]), "UNAUTHORIZED");

    // A store handed over cut short, or whose bytes are not what its
    // manifest says, is refused and nothing is kept.
    let adopt = |body: Vec<u8>| {
        let voucher = mantle_web::Forwarding::vouch(
            &routing,
            "127.0.0.1".parse().unwrap(),
            "POST",
            mantle_cluster::ADOPT_PATH,
        );
        c.post(servers[1].url(mantle_cluster::ADOPT_PATH))
            .header(mantle_cluster::NODE_HEADER, voucher)
            .body(body)
            .send()
    };
    let r = adopt(vec![0, 0, 1, 0, b'{']).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("manifest cut off"));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "store": "users/mallory_localhost", "from": "n1", "sha256": "00",
        "account": {
            "store": "users/mallory_localhost.store", "password_hash": "x",
            "disabled": false, "admin": false, "created": 0,
            "logins": [["mallory@localhost", true]], "tokens": [], "products": [],
        },
    }))
    .unwrap();
    let mut body = (manifest.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(&manifest);
    body.extend_from_slice(b"not a store");
    let r = adopt(body).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("SHA-256 does not match"));
    assert!(!sites[1].dir.join("users/mallory_localhost.store").exists());
    assert_eq!(
        login(&c, &servers[1], "mallory", "x").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Opens a link to the AMP listener `amp` as a node would (its hello
/// carrying `voucher`), sends `requests`, and reads what comes back until
/// the hello and every request are answered, or the node closes.
fn over_link(
    amp: &str,
    voucher: &str,
    requests: &[mantle_amp::AmpBox],
) -> Vec<mantle_amp::Message> {
    use std::io::{Read, Write};
    let hello = mantle_amp::AmpBox::new()
        .with(&b"_command"[..], &b"MantleNode"[..])
        .with(&b"_ask"[..], &b"0"[..])
        .with(&b"node"[..], &b"t"[..])
        .with(&b"voucher"[..], voucher.as_bytes());
    let mut raw = std::net::TcpStream::connect(amp).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for b in std::iter::once(&hello).chain(requests) {
        raw.write_all(&mantle_amp::encode(b).unwrap()).unwrap();
    }
    let (mut said, mut buf) = (Vec::new(), bytes::BytesMut::new());
    let mut decoder = mantle_amp::BoxDecoder::new();
    while said.len() < 1 + requests.len() {
        while let Some(b) = decoder.decode(&mut buf).unwrap() {
            said.push(mantle_amp::Message::classify(b).unwrap());
        }
        let mut chunk = [0u8; 4096];
        match raw.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while let Some(b) = decoder.decode(&mut buf).unwrap() {
            said.push(mantle_amp::Message::classify(b).unwrap());
        }
    }
    said
}

/// The `_ask` tag a box answers.
fn tag_of(m: &mantle_amp::Message) -> Vec<u8> {
    match m {
        mantle_amp::Message::Answer { tag, .. } | mantle_amp::Message::Error { tag, .. } => {
            tag.clone()
        }
        mantle_amp::Message::Request { .. } => Vec::new(),
    }
}

/// An error box's code ("" for an answer).
fn error_code(m: &mantle_amp::Message) -> String {
    match m {
        mantle_amp::Message::Error { code, .. } => String::from_utf8_lossy(code).into_owned(),
        _ => String::new(),
    }
}

#[test]
fn a_site_that_is_no_node_is_told_so_and_a_node_without_its_secret_does_not_start() {
    let site = TestSite::init_bare("admin", &[]);
    for args in [
        vec!["cluster", "status", site.path()],
        vec!["cluster", "rebalance", site.path()],
    ] {
        let out = mantle(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("is not a cluster node: set [cluster] etcd"),
            "{}",
            stderr(&out)
        );
    }
    let env = [
        (
            "MANTLE_CLUSTER_ETCD".to_string(),
            "http://127.0.0.1:1".to_string(),
        ),
        ("MANTLE_CLUSTER_NODE".to_string(), "n1".to_string()),
        (
            "MANTLE_CLUSTER_ADVERTISE".to_string(),
            "127.0.0.1:1".to_string(),
        ),
    ];
    let out = mantle_in(&env, &["serve", site.path(), "--http", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cluster.secret_file is not set"),
        "{}",
        stderr(&out)
    );
    // Nor one whose certificates to trust cannot be read.
    std::fs::write(site.dir.join("cluster.secret"), "s".repeat(40)).unwrap();
    let mut env = env.to_vec();
    env.push(("MANTLE_CLUSTER_SECRET_FILE".into(), "cluster.secret".into()));
    env.push(("MANTLE_CLUSTER_CA_FILE".into(), "no-such.pem".into()));
    let out = mantle_in(&env, &["serve", site.path(), "--http", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cluster.ca_file") && stderr(&out).contains("no-such.pem"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_users_come_back_on_a_live_node_from_its_backup() {
    let _one = one_at_a_time().await;
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let backups = tempfile::tempdir().unwrap();
    let target = format!("file://{}", backups.path().display());
    let dead = TestSite::init_bare("admin", &["--backup", &target]);
    let live = TestSite::init_bare("admin", &[]);
    let (dead_env, live_env) = (node_env(&etcd, "n1"), node_env(&etcd, "n2"));
    let n1 = dead.serve(&pairs(&dead_env));
    let n2 = live.serve(&pairs(&live_env));
    dead.add_user("alice", PW);
    let c = client();
    let t = token(&c, &n1, "alice", PW).await;
    for n in 1..=2 {
        assert_eq!(put_slate(&c, &n1, &t, n).await, StatusCode::CREATED);
    }
    let key = dead.dir.join("backup.key");
    let key = s(&key).to_string();
    let recover = |env: &[(String, String)]| {
        let args = ["cluster", "recover", live.path(), "n1", "--from", &target];
        mantle_in(env, &[&args[..], &["--key-file", &key]].concat())
    };
    // Refused while n1 lives.
    let alive = recover(&live_env);
    assert_eq!(alive.status.code(), Some(1));
    assert!(
        stderr(&alive).contains("node n1 is alive"),
        "{}",
        stderr(&alive)
    );

    // n1 dies after its backup caught up (1 s point of loss).
    tokio::time::sleep(Duration::from_secs(3)).await;
    n1.kill();
    let d = directory(&etcd);
    let deadline = Instant::now() + Duration::from_secs(15);
    while d.node("n1").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "n1's lease outlived it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let said = ok(recover(&live_env));
    assert!(
        said.contains("recovered users/alice_localhost on n2 (epoch 2"),
        "{said}"
    );
    // Alice logs in through n2 with her password, and her token from
    // before works too; her slates are there.
    let again = token(&c, &n2, "alice", PW).await;
    for token in [&again, &t] {
        let body: Value = get_auth(&c, &n2, "/api/slates", token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["slates"], serde_json::json!(["s1", "s2"]), "{body}");
    }
    // n1 coming back is fenced off the store: it routes alice to n2.
    let back = dead.serve(&pairs(&dead_env));
    let body: Value = get_auth(&c, &back, "/api/slates", &t)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["slates"], serde_json::json!(["s1", "s2"]), "{body}");
    assert_eq!(put_slate(&c, &back, &t, 3).await, StatusCode::CREATED);
    assert_eq!(
        d.owner("users/alice_localhost")
            .await
            .unwrap()
            .unwrap()
            .owner
            .node,
        "n2"
    );
}

/// Nodes whose HTTP fronts and AMP listeners speak TLS: a client uses TLS
/// with any node; the nodes reach each other over plain listeners on
/// their advertised addresses and pass AMP connections on over TLS
/// (trusting `cluster.ca_file`); messages between them arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serving_tls_pass_requests_amp_and_messages_on() {
    let _one = one_at_a_time().await;
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let sites: Vec<TestSite> = (0..2)
        .map(|_| TestSite::init_with("admin", &["--tls", "self-signed"]))
        .collect();
    // One file trusting both nodes' certificates.
    let certs: Vec<String> = sites
        .iter()
        .map(|s| std::fs::read_to_string(s.dir.join("tls/cert.pem")).unwrap())
        .collect();
    let ca = etcd.path().join("nodes.pem");
    std::fs::write(&ca, certs.concat()).unwrap();
    let mut envs = envs(&etcd, 2);
    for env in &mut envs {
        env.push(("MANTLE_CLUSTER_CA_FILE".into(), s(&ca).to_string()));
        env.push(("MANTLE_LIVE_TLS".into(), "true".into()));
    }
    let servers: Vec<Server> = sites
        .iter()
        .zip(&envs)
        .map(|(site, env)| {
            let args = [
                "serve",
                site.path(),
                "--http",
                "127.0.0.1:0",
                "--amp",
                "127.0.0.1:0",
            ];
            Server::spawn(&args, &pairs(env))
        })
        .collect();
    assert!(
        servers[0].base.starts_with("https://"),
        "{}",
        servers[0].base
    );
    sites[0].add_admin("root", PW);
    sites[0].add_user("alice", PW);
    sites[1].add_user("bob", PW);
    let mut trusted = reqwest::Client::builder();
    for cert in &certs {
        trusted =
            trusted.add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap());
    }
    let c = trusted.build().unwrap();
    // HTTPS at n2 for Alice (on n1): her login and her requests.
    let alice = token(&c, &servers[1], "alice", PW).await;
    assert_eq!(
        put_slate(&c, &servers[1], &alice, 1).await,
        StatusCode::CREATED
    );
    let me: Value = get_auth(&c, &servers[1], "/api/me", &alice)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["primary"], "alice@localhost", "{me}");
    // AMP over TLS at n2 for Alice: passed on to n1 over TLS.
    let cert = s(&sites[1].dir.join("tls/cert.pem")).to_string();
    let login = format!("alice:{PW}");
    let said = ok(mantle(&[
        "amp",
        "call",
        &amp_address(&servers[1]),
        "Whoami",
        "--login",
        &login,
        "--tls",
        "--cacert",
        &cert,
    ]));
    assert_eq!(said, "username=alice@localhost\n");
    // A payment from Alice (n1) to Bob (n2): over the link between the
    // nodes, AMP over TLS.
    let root = token(&c, &servers[0], "root", PW).await;
    grant(&c, &servers[0], &root, "alice@localhost", 10).await;
    let bob = token(&c, &servers[0], "bob", PW).await;
    assert_eq!(
        transfer(&c, &servers[1], &alice, "bob@localhost", 4).await,
        StatusCode::ACCEPTED
    );
    settles("bob's credit", async || {
        balance(&c, &servers[0], &bob).await == 4
    })
    .await;
    assert_eq!(balance(&c, &servers[0], &alice).await, 6);
}
