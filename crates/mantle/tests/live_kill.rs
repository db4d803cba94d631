//! Live objects survive SIGKILL: every change a client saw acknowledged
//! (over AMP) is in the model after a restart, and the model's sequence
//! counts exactly its committed changes (nothing half-done: no entry
//! without its delta, no delta without its entry).

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mantle_client::{Client, ClientOptions, Credentials, ModelEvent};
use mantle_example_lists::{AddEntry, AddEntryArgs, OpenList, OpenListArgs};
use support::*;

const PASSWORD: &str = "correct horse battery";
const WRITERS: usize = 6;
const KILLS: usize = 3;
/// Stays under the example's 500 entries per list.
const MAX_ADDS: usize = 400;

fn serve(site: &TestSite, amp_port: u16) -> Server {
    let amp = format!("127.0.0.1:{amp_port}");
    Server::spawn(
        &["serve", site.path(), "--http", "127.0.0.1:0", "--amp", &amp],
        &[],
    )
}

async fn connect(amp_port: u16, credentials: Credentials) -> Client {
    let mut options = ClientOptions::new(format!("127.0.0.1:{amp_port}"));
    options.credentials = Some(credentials);
    options.reconnect = false;
    // The AMP line comes just after the HTTP one: retry briefly.
    for _ in 0..200 {
        match Client::connect(options.clone()).await {
            Ok(c) => return c,
            Err(mantle_client::ConnectError::Io { .. }) => {
                tokio::time::sleep(Duration::from_millis(25)).await
            }
            Err(e) => panic!("cannot log in: {e}"),
        }
    }
    panic!("the AMP listener did not come up");
}

/// Adds entries to alice's list `crash-{writer}` until the connection
/// goes.
async fn write(
    client: Client,
    writer: usize,
    acked: Arc<Mutex<HashSet<String>>>,
    tried: Arc<Mutex<HashSet<String>>>,
) {
    let Ok(list) = client
        .reference::<OpenList>(
            OpenListArgs {
                owner: None,
                name: format!("crash-{writer}"),
            },
            "handle",
        )
        .await
    else {
        return;
    };
    loop {
        let n = tried
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.starts_with(&format!("w{writer}-")))
            .count();
        if n >= MAX_ADDS {
            return;
        }
        let text = format!("w{writer}-{n}");
        tried.lock().unwrap().insert(text.clone());
        match list
            .call::<AddEntry>(AddEntryArgs { text: text.clone() })
            .await
        {
            Ok(_) => {
                acked.lock().unwrap().insert(text);
            }
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_sigkill_with_their_sequence() {
    let site = TestSite::init("admin");
    site.add_user("alice", PASSWORD);
    let amp_port = free_port();
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let tried = Arc::new(Mutex::new(HashSet::new()));
    let mut token = None;
    for round in 0..KILLS {
        let server = serve(&site, amp_port);
        // One password login; tokens after (password logins are limited).
        let credentials = match &token {
            Some(t) => Credentials::Token(String::clone(t)),
            None => {
                let c = connect(
                    amp_port,
                    Credentials::Password {
                        username: "alice@localhost".into(),
                        password: PASSWORD.into(),
                    },
                )
                .await;
                let answer = c
                    .call::<mantle_live::builtin::Login>(mantle_live::builtin::LoginArgs {
                        username: "alice@localhost".into(),
                        password: PASSWORD.into(),
                    })
                    .await
                    .unwrap();
                token = Some(answer.token.clone());
                Credentials::Token(answer.token)
            }
        };
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let client = connect(amp_port, credentials.clone()).await;
            writers.push(tokio::spawn(write(client, w, acked.clone(), tried.clone())));
        }
        // Let them work, then kill the server mid-stream.
        tokio::time::sleep(Duration::from_millis(300 + 200 * round as u64)).await;
        let stderr = server.kill();
        assert!(
            stderr.iter().all(|l| !l.contains("panicked")),
            "the server panicked:\n{}",
            stderr.join("\n")
        );
        for w in writers {
            w.await.unwrap();
        }
    }

    // After the last kill: every list holds every acknowledged entry, only
    // entries that were tried, and its sequence is its number of entries.
    let server = serve(&site, amp_port);
    let client = connect(amp_port, Credentials::Token(token.unwrap())).await;
    let acked = acked.lock().unwrap().clone();
    let tried = tried.lock().unwrap().clone();
    let mut found = HashSet::new();
    for w in 0..WRITERS {
        let mut sub = client
            .observe(&format!("list:alice@localhost/crash-{w}"))
            .await
            .unwrap();
        let Some(ModelEvent::Snapshot { sequence, value }) =
            tokio::time::timeout(Duration::from_secs(20), sub.next())
                .await
                .unwrap()
        else {
            panic!("a snapshot first");
        };
        let entries = value["entries"].as_array().unwrap();
        assert_eq!(
            sequence,
            entries.len() as i64,
            "list {w}: one committed delta per committed entry"
        );
        for e in entries {
            let text = e["text"].as_str().unwrap().to_string();
            assert!(tried.contains(&text), "{text} was never sent");
            assert!(found.insert(text.clone()), "{text} is there twice");
        }
    }
    let lost: Vec<_> = acked.difference(&found).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after SIGKILL: {lost:?}"
    );
    eprintln!(
        "{} entries acknowledged, {} sent, {} found after {KILLS} SIGKILLs",
        acked.len(),
        tried.len(),
        found.len()
    );
    assert!(
        acked.len() >= 10 * KILLS,
        "too little was acknowledged to mean anything"
    );
    drop(client);
    server.stop();
}
