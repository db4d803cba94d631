//! The ledger against the attacks of issue 14: balances that would wrap,
//! transfers to the site's or an app's store, transfers to oneself. Each
//! is refused with a clear error (through the library and over HTTP),
//! nothing is recorded at the recipient, and the sender keeps (or gets
//! back) every unit; a legitimate transfer still goes through.

use std::time::Duration;

use axum::http::StatusCode;
use mantle_example_ledger::{self as ledger, Balance, Credit, Entry, LedgerError, MAX_AMOUNT};
use mantle_site::{Account, Receipt, SendMessage, Site, SiteConfig};
use mantle_store::{Id, Store, Timestamp};
use mantle_web::harness::Harness;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

struct Ledger {
    _dir: tempfile::TempDir,
    site: Site,
    alice: Id<Account>,
    bob: Id<Account>,
    alice_token: String,
    admin_token: String,
}

/// A site with the ledger and an app store `app:lists`; alice holds 100,
/// bob nothing.
async fn ledger_site() -> Ledger {
    let dir = tempfile::tempdir().unwrap();
    let builder = mantle_web::install(Site::builder(dir.path())).app("lists");
    let mut config = SiteConfig {
        domain: "example.com".into(),
        ..SiteConfig::default()
    };
    config.signup.product = Some("all".into());
    let site = ledger::install(builder).init(config).await.unwrap();
    site.offerings().install(ledger::NAME).await.unwrap();
    site.products()
        .create("all", &[ledger::NAME])
        .await
        .unwrap();
    let alice = site.accounts().create("alice", PW, false).await.unwrap().id;
    let bob = site.accounts().create("bob", PW, false).await.unwrap().id;
    site.accounts().create("admin", PW, true).await.unwrap();
    ledger::grant(&site, "alice", 100).await.unwrap();
    let alice_token = site.auth().login("alice", PW, "test").await.unwrap().token;
    let admin_token = site.auth().login("admin", PW, "test").await.unwrap().token;
    Ledger {
        _dir: dir,
        site,
        alice,
        bob,
        alice_token,
        admin_token,
    }
}

impl Ledger {
    /// POSTs `body` to `path` with `token`: the status and the JSON answer.
    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let answer = Harness::for_site(self.site.clone())
            .post(path)
            .bearer(token)
            .json(&body)
            .await;
        (answer.status, answer.json())
    }

    async fn store(&self, account: Id<Account>) -> Store {
        self.site
            .stores()
            .user_store_unchecked(account)
            .await
            .unwrap()
    }

    /// Sets an account's balance directly (as if granted over years).
    async fn set_balance(&self, account: Id<Account>, units: i64) {
        self.store(account)
            .await
            .transact(move |tx| {
                let mut b =
                    tx.find_or_create(mantle_store::Filter::all(), || Balance { units: 0 })?;
                b.units = units;
                tx.update(&mut b)
            })
            .await
            .unwrap();
    }

    async fn balance(&self, account: Id<Account>) -> i64 {
        ledger::balance(&self.site, account).await.unwrap()
    }

    /// Waits until `account` holds `want` units.
    async fn balance_reaches(&self, account: Id<Account>, want: i64) {
        for _ in 0..400 {
            if self.balance(account).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "balance never reached {want} (is {})",
            self.balance(account).await
        );
    }

    /// The kinds of an account's history, oldest first.
    async fn kinds(&self, account: Id<Account>) -> Vec<String> {
        let mut kinds: Vec<String> = ledger::history(&self.site, account, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        kinds.reverse();
        kinds
    }

    /// Has alice send 10 units to `to` through the library and over HTTP:
    /// both must refuse (400, the error naming `to` and saying `says`).
    /// Returns the library's error.
    async fn refused_transfer(&self, to: &str, says: &str) -> LedgerError {
        let (status, body) = self
            .post(
                "/api/ledger/transfer",
                &self.alice_token,
                json!({ "to": to, "amount": 10 }),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{to}: {body}");
        let text = body["error"].as_str().unwrap();
        assert!(text.contains(to) && text.contains(says), "{text}");
        ledger::transfer(&self.site, self.alice, to, 10)
            .await
            .unwrap_err()
    }

    /// Asserts that alice still has her 100 units, her history only their
    /// grant, and nothing to send.
    async fn alice_untouched(&self) {
        assert_eq!(self.balance(self.alice).await, 100);
        assert_eq!(self.kinds(self.alice).await, ["grant"]);
        assert!(
            self.store(self.alice)
                .await
                .outbox()
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// Asserts that the site store and the app store hold no ledger rows
    /// and no message receipts, and have nothing to send.
    async fn shared_stores_untouched(&self) {
        let app = self.site.stores().app_store("lists").await.unwrap();
        for (name, store) in [
            ("site", self.site.stores().site_store().clone()),
            ("app:lists", app),
        ] {
            let counts = store
                .read(|r| {
                    mantle_store::ok((
                        r.query::<Balance>().count()?,
                        r.query::<Entry>().count()?,
                        r.query::<Receipt>().count()?,
                    ))
                })
                .await
                .unwrap();
            assert_eq!(counts, (0, 0, 0), "{name}: balances, entries, receipts");
            assert!(store.outbox().await.unwrap().is_empty(), "{name}'s outbox");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_that_would_overflow_is_refused_and_changes_nothing() {
    let l = ledger_site().await;
    l.set_balance(l.alice, i64::MAX).await;

    let e = ledger::grant(&l.site, "alice", 1).await.unwrap_err();
    assert!(
        matches!(
            e,
            LedgerError::Overflow {
                balance: i64::MAX,
                amount: 1
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("9223372036854775807"), "{e}");
    let (status, body) = l
        .post(
            "/api/ledger/grant",
            &l.admin_token,
            json!({ "to": "alice", "amount": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cannot take 1 more"),
        "{body}"
    );
    assert_eq!(l.balance(l.alice).await, i64::MAX);
    assert_eq!(l.kinds(l.alice).await, ["grant"], "a grant was recorded");

    // Amounts are positive and bounded.
    for amount in [0, -1, i64::MIN, MAX_AMOUNT + 1, i64::MAX] {
        let e = ledger::grant(&l.site, "bob", amount).await.unwrap_err();
        assert!(
            matches!(e, LedgerError::BadAmount(a) if a == amount),
            "{e:?}"
        );
        let (status, body) = l
            .post(
                "/api/ledger/grant",
                &l.admin_token,
                json!({ "to": "bob", "amount": amount }),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{amount}: {body}");
        let text = body["error"].as_str().unwrap();
        assert!(text.contains(&amount.to_string()), "{text}");
    }
    assert_eq!(l.balance(l.bob).await, 0);
    assert!(l.kinds(l.bob).await.is_empty());
    assert_eq!(
        ledger::grant(&l.site, "bob", MAX_AMOUNT).await.unwrap(),
        MAX_AMOUNT
    );
    l.site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_to_the_site_or_an_app_store_are_refused_before_anything_is_recorded() {
    let l = ledger_site().await;
    for to in [
        "site",
        "app:lists",
        "app:nonexistent",
        "not an address!",
        "account:abc",
    ] {
        let e = l.refused_transfer(to, "not a user's account").await;
        assert!(
            matches!(&e, LedgerError::NotAnAccount { to: t } if t == to),
            "{to}: {e:?}"
        );
    }
    l.alice_untouched().await;
    l.shared_stores_untouched().await;
    l.site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_to_oneself_are_refused_however_written() {
    let l = ledger_site().await;
    l.site
        .accounts()
        .add_login("alice", "alice.smith")
        .await
        .unwrap();
    let own_id = format!("account:{}", l.alice.raw());
    for to in [
        "alice",
        "ALICE@Example.com",
        "alice.smith@example.com",
        own_id.as_str(),
    ] {
        let e = l.refused_transfer(to, "yourself").await;
        assert!(
            matches!(&e, LedgerError::ToSelf { to: t } if t == to),
            "{to}: {e:?}"
        );
    }
    l.alice_untouched().await;
    l.site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_transfers_still_go_through() {
    let l = ledger_site().await;
    ledger::transfer(&l.site, l.alice, "bob@example.com", 30)
        .await
        .unwrap();
    let (status, body) = l
        .post(
            "/api/ledger/transfer",
            &l.alice_token,
            json!({ "to": format!("account:{}", l.bob.raw()), "amount": 20 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["balance"], 50);
    // More than she has, or a bad amount: refused, nothing moves.
    let (status, body) = l
        .post(
            "/api/ledger/transfer",
            &l.alice_token,
            json!({ "to": "bob", "amount": 51 }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for amount in [0, -5, MAX_AMOUNT + 1] {
        let e = ledger::transfer(&l.site, l.alice, "bob", amount)
            .await
            .unwrap_err();
        assert!(matches!(e, LedgerError::BadAmount(_)), "{e:?}");
    }
    l.balance_reaches(l.bob, 50).await;
    assert_eq!(l.balance(l.alice).await, 50);
    assert_eq!(l.kinds(l.alice).await, ["grant", "debit", "debit"]);
    assert_eq!(l.kinds(l.bob).await, ["credit", "credit"]);
    l.shared_stores_untouched().await;
    l.site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_that_would_overflow_is_refused_and_refunded() {
    let l = ledger_site().await;
    l.set_balance(l.bob, i64::MAX - 5).await;
    ledger::transfer(&l.site, l.alice, "bob", 10).await.unwrap();
    l.balance_reaches(l.alice, 100).await;
    assert_eq!(l.kinds(l.alice).await, ["grant", "debit", "refund"]);
    assert_eq!(l.balance(l.bob).await, i64::MAX - 5);
    assert!(l.kinds(l.bob).await.is_empty(), "bob recorded the credit");
    l.site.close().await;
}

/// A credit that reaches the messaging layer addressed to `site` or an app
/// store (as a transfer did before the ledger checked its recipients) is
/// refused there, the ledger's handler serving user stores only: the
/// sender is refunded and nothing is written at the site or the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_sent_to_the_site_or_an_app_store_are_refused_and_refunded() {
    let l = ledger_site().await;
    l.store(l.alice)
        .await
        .transact(|tx| {
            // What `transfer` did for these addresses: debit, then send.
            let mut b = tx.query::<Balance>().first()?.expect("a balance");
            b.units -= 60;
            tx.update(&mut b)?;
            for (n, to) in ["site", "app:lists"].into_iter().enumerate() {
                let transfer = format!("raw{n}");
                tx.insert(&Entry {
                    transfer: transfer.clone(),
                    kind: "debit".into(),
                    amount: 30,
                    counterparty: to.into(),
                    at: Timestamp::now(),
                })?;
                tx.send(
                    to,
                    &Credit {
                        transfer,
                        amount: 30,
                        to: to.into(),
                    },
                )?;
            }
            mantle_store::ok(())
        })
        .await
        .unwrap();
    l.balance_reaches(l.alice, 100).await;
    assert_eq!(
        l.kinds(l.alice).await,
        ["grant", "debit", "debit", "refund", "refund"]
    );
    // Parked at alice's with the reason.
    let parked = l.site.messaging().parked().await.unwrap();
    assert_eq!(parked.len(), 2, "{parked:?}");
    assert!(
        parked.iter().all(|p| p.reason.contains("NO_HANDLER")),
        "{parked:?}"
    );
    l.shared_stores_untouched().await;
    l.site.close().await;
}
