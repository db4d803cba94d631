//! `mantle fanout`, `mantle messages` and `mantle ledger` against sites
//! prepared through the library (faster than a thousand `user add`s).

mod support;

use std::time::Instant;

use futures::StreamExt;
use support::*;

const PW: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_1000_user_stores_collates_the_right_answer() {
    const ACCOUNTS: usize = 1_000;
    let site = TestSite::init("admin");
    let lib = library_site(&site.dir).open().await.expect("open the site");

    // Password hashing dominates: overlap it with the stores' commits.
    let t = Instant::now();
    let made: Vec<_> = futures::stream::iter(1..=ACCOUNTS)
        .map(|i| {
            let lib = lib.clone();
            async move { lib.accounts().create(&format!("u{i}"), PW, false).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(made.iter().all(Result::is_ok), "an account failed");
    eprintln!("{ACCOUNTS} accounts in {:?}", t.elapsed());

    let t = Instant::now();
    // Every seventh account gets as many units as its number.
    let granted: Vec<usize> = (1..=ACCOUNTS).filter(|i| i % 7 == 0).collect();
    futures::stream::iter(granted.iter())
        .map(|&i| {
            let lib = lib.clone();
            async move {
                mantle_example_ledger::grant(&lib, &format!("u{i}"), i as i64)
                    .await
                    .expect("grant")
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let total = lib
        .accounts()
        .fanout(
            8,
            |_, _| {},
            |account, _| {
                let lib = lib.clone();
                async move { Ok(mantle_example_ledger::balance(&lib, account.id).await? as u64) }
            },
        )
        .await
        .expect("fan-out in the library");
    let units: u64 = total.iter().map(|r| *r.result.as_ref().unwrap()).sum();
    assert_eq!(units, granted.iter().map(|&i| i as u64).sum::<u64>());
    lib.close().await;
    eprintln!("grants, library fan-out and close in {:?}", t.elapsed());

    let t = Instant::now();
    let out = ok(mantle(&[
        "fanout",
        site.path(),
        "--parallel",
        "16",
        "count",
        "ledger_entry",
    ]));
    eprintln!("mantle fanout over {ACCOUNTS} stores in {:?}", t.elapsed());
    let n = granted.len();
    assert_eq!(
        out.trim(),
        format!("ledger_entry: {n} items in {ACCOUNTS} user stores ({n} hold some)")
    );
    let out = ok(mantle(&["fanout", site.path(), "count", "ledger_balance"]));
    assert_eq!(
        out.trim(),
        format!("ledger_balance: {n} items in {ACCOUNTS} user stores ({n} hold some)")
    );
    // A type no store holds counts as none, not as a failure.
    let out = ok(mantle(&["fanout", site.path(), "count", "notes_note"]));
    assert_eq!(
        out.trim(),
        format!("notes_note: 0 items in {ACCOUNTS} user stores (0 hold some)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_messages_can_be_listed_retried_and_dropped() {
    let site = TestSite::init("admin");
    let lib = library_site(&site.dir).open().await.expect("open the site");
    lib.accounts().create("alice", PW, false).await.unwrap();
    let bob = lib.accounts().create("bob", PW, false).await.unwrap().id;
    let alice = credit_a_ghost(&lib, "alice").await;
    mantle_example_ledger::transfer(&lib, alice, "bob@localhost", 20)
        .await
        .unwrap();
    // The credit to nobody is refused, the refusal answered (a refund),
    // and the message parked; the credit to bob goes through.
    eventually("settled", async || {
        let a = mantle_example_ledger::balance(&lib, alice).await.unwrap();
        let b = mantle_example_ledger::balance(&lib, bob).await.unwrap();
        let parked = lib.messaging().parked().await.unwrap();
        (a == 80 && b == 20 && parked.len() == 1, (a, b, parked))
    })
    .await;
    lib.close().await;

    let out = ok(mantle(&["messages", "list", site.path()]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("ID "), "{out}");
    let row = lines[1];
    let id = row.split_whitespace().next().unwrap().to_string();
    assert!(
        id.starts_with(&format!("account:{}/", alice.raw())),
        "{row}"
    );
    for part in ["ghost@localhost", "ledger.credit", "NO_SUCH_RECIPIENT"] {
        assert!(row.contains(part), "{part} missing: {row}");
    }

    // Retrying would credit after the refund: refused, nothing changes.
    let o = mantle(&["messages", "retry", site.path(), &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("answered with a refusal"), "{err}");
    assert!(stdout(&o).is_empty());
    let again = ok(mantle(&["messages", "list", site.path()]));
    assert_eq!(again, out, "a refused retry changed the list");

    let o = mantle(&["messages", "retry", site.path(), "account:1/nonsense"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    assert_eq!(
        ok(mantle(&["messages", "drop", site.path(), &id])).trim(),
        format!("{id}: dropped")
    );
    assert_eq!(
        ok(mantle(&["messages", "list", site.path()])).trim(),
        "no parked messages"
    );
    let listed = ok(mantle(&["messages", "list", site.path(), "--json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&listed).unwrap(),
        serde_json::json!([])
    );
    let o = mantle(&["messages", "drop", site.path(), &id]);
    assert_eq!(o.status.code(), Some(1), "dropped twice");
    assert!(stderr(&o).contains("no parked message"), "{}", stderr(&o));

    // The ledger's own commands.
    assert_eq!(
        ok(mantle(&["ledger", "grant", site.path(), "alice", "5"])).trim(),
        "alice: granted 5, balance 85"
    );
    assert_eq!(
        ok(mantle(&["ledger", "balance", site.path(), "alice"])).trim(),
        "alice: 85"
    );
    assert_eq!(
        ok(mantle(&["ledger", "balance", site.path(), "bob@localhost"])).trim(),
        "bob@localhost: 20"
    );
    let o = mantle(&["ledger", "grant", site.path(), "alice", "0"]);
    assert_eq!(o.status.code(), Some(1), "a grant of nothing");
    let o = mantle(&["ledger", "balance", site.path(), "nobody"]);
    assert_eq!(o.status.code(), Some(1), "the balance of nobody");
    assert_eq!(
        ok(mantle(&["ledger", "balance", site.path(), "alice"])).trim(),
        "alice: 85"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_grant_refuses_what_would_overflow_in_one_line() {
    let site = TestSite::init("admin");
    let lib = library_site(&site.dir).open().await.expect("open the site");
    let alice = lib.accounts().create("alice", PW, false).await.unwrap().id;
    mantle_example_ledger::grant(&lib, "alice", 1)
        .await
        .unwrap();
    // A balance near the top, as if granted over years.
    lib.stores()
        .user_store_unchecked(alice)
        .await
        .unwrap()
        .transact(|tx| {
            let mut b = tx
                .query::<mantle_example_ledger::Balance>()
                .first()?
                .expect("a balance");
            b.units = i64::MAX - 5;
            tx.update(&mut b)
        })
        .await
        .unwrap();
    lib.close().await;

    let refused = |args: &[&str], says: &str| {
        let o = mantle(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{says} missing: {err}");
        assert!(stdout(&o).is_empty());
    };
    refused(
        &["ledger", "grant", site.path(), "alice", "6"],
        "a balance of 9223372036854775802 cannot take 6 more units",
    );
    refused(
        &["ledger", "grant", site.path(), "alice", "1000000000001"],
        "amount must be between 1 and 1000000000000 (got 1000000000001)",
    );
    assert_eq!(
        ok(mantle(&["ledger", "balance", site.path(), "alice"])).trim(),
        format!("alice: {}", i64::MAX - 5)
    );
    assert_eq!(
        ok(mantle(&["ledger", "grant", site.path(), "alice", "5"])).trim(),
        format!("alice: granted 5, balance {}", i64::MAX)
    );
    refused(
        &["ledger", "grant", site.path(), "alice", "1"],
        "cannot take 1 more units",
    );
}
