//! Offerings: assembling a program from them, installation as data in the
//! site store, message handlers present only while installed, products
//! giving offerings to users exactly once, upgrades, and offerings'
//! configuration sections.

use std::path::Path;
use std::time::Duration;

use mantle_site::offerings::GivenOffering;
use mantle_site::{
    ConfigSection, Message, NO_HANDLER, Offering, OfferingState, SendMessage, Site, SiteBuilder,
    SiteConfig, SiteError,
};
use mantle_store::{Id, Item, Store, Tx};
use serde::{Deserialize, Serialize};

const PW: &str = "correct horse battery";

/// What hooks and handlers leave in a store: a named counter.
#[derive(Item, Debug, Clone)]
#[item(name = "offtest_mark", version = 1)]
struct Mark {
    #[item(index)]
    what: String,
    n: i64,
}

fn bump(tx: &mut Tx<'_>, what: &str) -> mantle_store::Result<()> {
    let mut m = tx.find_or_create(Mark::WHAT.eq(what), || Mark {
        what: what.to_string(),
        n: 0,
    })?;
    m.n += 1;
    tx.update(&mut m)
}

/// The counter `what` in `store` (0 if never bumped).
async fn marks(store: &Store, what: &str) -> i64 {
    let what = what.to_string();
    store
        .read(move |r| {
            mantle_store::ok(
                r.query::<Mark>()
                    .filter(Mark::WHAT.eq(what.as_str()))
                    .first()?
                    .map_or(0, |m| m.n),
            )
        })
        .await
        .unwrap()
}

/// Waits (at most 10 s) until the counter `what` in `store` is `want`.
async fn marks_reach(store: &Store, what: &str, want: i64) {
    for _ in 0..500 {
        if marks(store, what).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{what} never reached {want} in {} (is {})",
        store.path().display(),
        marks(store, what).await
    );
}

/// How many offerings `store` (a user store) records as given.
async fn given_records(store: &Store) -> u64 {
    store
        .read(|r| r.query::<GivenOffering>().count())
        .await
        .unwrap()
}

/// Waits (at most 10 s) until `store` has sent everything it queued
/// (what is left is parked): after it, whatever it sent has been applied
/// at the recipient, so an absence there is final.
async fn settled(store: &Store) {
    for _ in 0..500 {
        if store.outbox().await.unwrap().iter().all(|e| e.parked) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{} never sent what it queued: {:?}",
        store.path().display(),
        store.outbox().await
    );
}

/// A one-way message that the offering "x" handles in user stores.
#[derive(Serialize, Deserialize)]
struct Poke;
impl Message for Poke {
    const TYPE: &'static str = "offtest.poke";
    type Answer = ();
    const ONE_WAY: bool = true;
}

/// A question that the offering "x" answers in user stores.
#[derive(Serialize, Deserialize)]
struct Ask;
impl Message for Ask {
    const TYPE: &'static str = "offtest.ask";
    type Answer = ();
}

/// The offering "x" at `version`. Its install hook leaves a seed in the
/// site store (and notes whether it found one already); upgrades, gives
/// and takes leave marks where they run; it handles `Poke` and `Ask` in
/// user stores (the asker counts the answers).
fn x(version: u32) -> Offering {
    Offering::new("x", version)
        .description("the offering under test")
        .on_install(|tx, _| {
            let found = tx
                .query::<Mark>()
                .filter(Mark::WHAT.eq("x:seed"))
                .exists()?;
            bump(tx, if found { "x:seed found" } else { "x:seed" })?;
            bump(tx, "x:installed")
        })
        .on_upgrade(|tx, up| {
            bump(tx, "x:upgraded")?;
            bump(
                tx,
                &format!("x:upgraded from {:?} to {}", up.from, up.version),
            )
        })
        .on_given(|tx, _| bump(tx, "x:given"))
        .on_taken(|tx, _| bump(tx, "x:taken"))
        .messages(|h| {
            h.on::<Poke>(|tx, _, Poke| Ok(bump(tx, "x:poked")?))
                .on::<Ask>(|tx, _, Ask| Ok(bump(tx, "x:asked")?))
                .on_answer::<Ask>(|tx, Ask, answer| match answer {
                    Ok(()) => bump(tx, "x:answered"),
                    Err(r) => bump(tx, &format!("x:refused {}", r.code)),
                });
        })
}

/// The offering "y", which needs "x".
fn y() -> Offering {
    Offering::new("y", 1).requires("x")
}

/// A program: the counters' item type and `offerings`, in that order.
fn program(dir: &Path, offerings: Vec<Offering>) -> SiteBuilder {
    offerings.into_iter().fold(
        Site::builder(dir).with(|r| {
            r.register::<Mark>();
        }),
        SiteBuilder::offering,
    )
}

fn config() -> SiteConfig {
    SiteConfig {
        domain: "example.com".into(),
        ..SiteConfig::default()
    }
}

/// A new site of `program`'s offerings in `dir`.
async fn new_site(dir: &Path, offerings: Vec<Offering>) -> Site {
    program(dir, offerings).init(config()).await.unwrap()
}

/// The state of `name` as the site lists it.
async fn state(site: &Site, name: &str) -> OfferingState {
    site.offerings().get(name).await.unwrap().state
}

async fn user_store(site: &Site, login: &str) -> Store {
    let id = site.accounts().get(login).await.unwrap().id;
    site.stores().user_store_unchecked(id).await.unwrap()
}

// ---- Assembly ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_without_a_required_offering_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let needs_absent = || Offering::new("y", 1).requires("absent");
    match program(&dir.path().join("new"), vec![needs_absent()])
        .init(config())
        .await
    {
        Err(SiteError::OfferingMissing { offering, needs }) => {
            assert_eq!((offering.as_str(), needs.as_str()), ("y", "absent"));
        }
        other => panic!("expected OfferingMissing, got {other:?}"),
    }
    // An existing site, opened by such a program.
    let existing = dir.path().join("existing");
    new_site(&existing, vec![]).await.close().await;
    match program(&existing, vec![needs_absent()]).open().await {
        Err(SiteError::OfferingMissing { offering, needs }) => {
            assert_eq!((offering.as_str(), needs.as_str()), ("y", "absent"));
        }
        other => panic!("expected OfferingMissing, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offering_included_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    match program(
        dir.path(),
        vec![Offering::new("z", 1), Offering::new("z", 2)],
    )
    .init(config())
    .await
    {
        Err(SiteError::DuplicateOffering(name)) => assert_eq!(name, "z"),
        other => panic!("expected DuplicateOffering, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offering_with_a_bad_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let too_long = "a".repeat(65);
    for (i, bad) in ["Bad Name", "", "a/b", too_long.as_str()]
        .into_iter()
        .enumerate()
    {
        let site_dir = dir.path().join(i.to_string());
        match program(&site_dir, vec![Offering::new(bad, 1)])
            .init(config())
            .await
        {
            Err(SiteError::BadOfferingName(name)) => assert_eq!(name, bad),
            other => panic!("{bad:?}: expected BadOfferingName, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_offerings_are_included_in_does_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    // The requirement after the offering that needs it.
    let site = new_site(dir.path(), vec![y(), x(1)]).await;
    let names: Vec<String> = site
        .offerings()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["y", "x"], "listed in the program's order");
    assert_eq!(
        site.offerings().get("y").await.unwrap().requires,
        ["x".to_string()]
    );
    site.close().await;
    // And the other way round, on the same site.
    let site = program(dir.path(), vec![x(1), y()]).open().await.unwrap();
    assert_eq!(state(&site, "y").await, OfferingState::Available);
    site.close().await;
}

// ---- Installation ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offering_is_installed_by_a_record_in_the_site_store() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![x(1)]).await;
    // Compiled in is not installed.
    assert_eq!(state(&site, "x").await, OfferingState::Available);
    assert!(!site.offerings().is_installed("x"));
    assert!(matches!(
        site.offerings().get("nope").await,
        Err(SiteError::NoSuchOffering(_))
    ));
    assert!(matches!(
        site.offerings().install("nope").await,
        Err(SiteError::NoSuchOffering(_))
    ));

    let info = site.offerings().install("x").await.unwrap();
    assert_eq!(
        info.state,
        OfferingState::Installed {
            installed_version: 1
        }
    );
    assert_eq!(info.description, "the offering under test");
    assert!(site.offerings().is_installed("x"));
    // Installing again changes nothing: the hook ran once.
    site.offerings().install("x").await.unwrap();
    let site_store = site.stores().site_store().clone();
    assert_eq!(marks(&site_store, "x:installed").await, 1);
    site.close().await;
    drop((site, site_store));

    let site = program(dir.path(), vec![x(1)]).open().await.unwrap();
    assert!(
        site.offerings().is_installed("x"),
        "installed across a reopen"
    );
    assert_eq!(
        state(&site, "x").await,
        OfferingState::Installed {
            installed_version: 1
        }
    );
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirements_order_installing_and_uninstalling() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![x(1), y()]).await;
    match site.offerings().install("y").await {
        Err(SiteError::OfferingNeeds { offering, needs }) => {
            assert_eq!((offering.as_str(), needs.as_str()), ("y", "x"));
        }
        other => panic!("expected OfferingNeeds, got {other:?}"),
    }
    assert!(!site.offerings().is_installed("y"));
    assert_eq!(state(&site, "y").await, OfferingState::Available);

    site.offerings().install("x").await.unwrap();
    site.offerings().install("y").await.unwrap();
    match site.offerings().uninstall("x").await {
        Err(SiteError::OfferingNeeds { offering, needs }) => {
            assert_eq!((offering.as_str(), needs.as_str()), ("y", "x"));
        }
        other => panic!("expected OfferingNeeds, got {other:?}"),
    }
    assert!(site.offerings().is_installed("x"));
    assert_eq!(
        state(&site, "x").await,
        OfferingState::Installed {
            installed_version: 1
        }
    );

    // The dependent first, then its requirement.
    site.offerings().uninstall("y").await.unwrap();
    site.offerings().uninstall("x").await.unwrap();
    assert!(!site.offerings().is_installed("x"));
    assert!(matches!(
        site.offerings().uninstall("x").await,
        Err(SiteError::OfferingNotInstalled(name)) if name == "x"
    ));
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstalling_keeps_the_data_and_reinstalling_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![x(1)]).await;
    let site_store = site.stores().site_store().clone();
    site.offerings().install("x").await.unwrap();
    assert_eq!(marks(&site_store, "x:seed").await, 1);

    site.offerings().uninstall("x").await.unwrap();
    assert!(!site.offerings().is_installed("x"));
    assert_eq!(state(&site, "x").await, OfferingState::Available);
    assert_eq!(marks(&site_store, "x:seed").await, 1, "its data stays");

    site.offerings().install("x").await.unwrap();
    assert_eq!(
        marks(&site_store, "x:seed found").await,
        1,
        "the install hook found what the first install left"
    );
    assert_eq!(marks(&site_store, "x:seed").await, 1);
    assert_eq!(marks(&site_store, "x:installed").await, 2);
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_is_always_present_and_never_installed() {
    let dir = tempfile::tempdir().unwrap();
    let web = Offering::new("web", 1).layer();
    let needs_web = Offering::new("pages", 1).requires("web");
    let site = new_site(dir.path(), vec![web, needs_web]).await;
    assert!(site.offerings().is_installed("web"));
    assert_eq!(state(&site, "web").await, OfferingState::Layer);
    assert!(matches!(
        site.offerings().install("web").await,
        Err(SiteError::OfferingIsLayer(name)) if name == "web"
    ));
    assert!(matches!(
        site.offerings().uninstall("web").await,
        Err(SiteError::OfferingIsLayer(name)) if name == "web"
    ));
    assert!(matches!(
        site.products().create("with-web", &["web"]).await,
        Err(SiteError::OfferingIsLayer(name)) if name == "web"
    ));
    assert!(site.offerings().is_installed("web"));
    // A layer meets a requirement without being installed.
    site.offerings().install("pages").await.unwrap();
    assert!(site.offerings().is_installed("pages"));
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offering_the_program_no_longer_has_is_kept_as_data_only() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![x(1)]).await;
    site.offerings().install("x").await.unwrap();
    site.close().await;
    drop(site);

    // A program without x.
    let site = program(dir.path(), vec![]).open().await.unwrap();
    assert!(!site.offerings().is_installed("x"));
    let listed = site.offerings().list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, "x");
    assert_eq!(
        listed[0].state,
        OfferingState::NotInProgram {
            installed_version: 1
        }
    );
    assert!(matches!(
        site.offerings().install("x").await,
        Err(SiteError::NoSuchOffering(_))
    ));
    site.close().await;
    drop(site);

    // The record was left alone: a program with x finds it installed.
    let site = program(dir.path(), vec![x(1)]).open().await.unwrap();
    assert!(site.offerings().is_installed("x"));
    assert_eq!(
        state(&site, "x").await,
        OfferingState::Installed {
            installed_version: 1
        }
    );
    site.close().await;
}

// ---- Messages ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_an_offering_are_handled_only_while_it_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![x(1)]).await;
    site.accounts().create("alice", PW, false).await.unwrap();
    site.accounts().create("bob", PW, false).await.unwrap();
    let (alice, bob) = (
        user_store(&site, "alice").await,
        user_store(&site, "bob").await,
    );
    let poke = |store: Store| async move {
        store
            .transact(|tx| tx.send("bob", &Poke).map(|_| ()))
            .await
            .unwrap();
    };

    // Not installed: refused with NO_HANDLER, parked at the sender.
    poke(alice.clone()).await;
    let parked = {
        let mut found = None;
        for _ in 0..500 {
            let all = site.messaging().parked().await.unwrap();
            if let Some(p) = all.into_iter().find(|p| p.kind == Poke::TYPE) {
                found = Some(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        found.expect("the poke was never parked")
    };
    assert!(parked.reason.contains(NO_HANDLER), "{parked:?}");
    assert!(parked.reason.contains("not installed"), "{parked:?}");
    assert_eq!(parked.to, "bob");
    assert_eq!(marks(&bob, "x:poked").await, 0);

    // Installed: a new message is applied.
    site.offerings().install("x").await.unwrap();
    poke(alice.clone()).await;
    marks_reach(&bob, "x:poked", 1).await;
    // And the parked one, retried, is applied too: its refusal was not
    // recorded as the message's outcome at the recipient.
    site.messaging().retry(&parked.id).await.unwrap();
    marks_reach(&bob, "x:poked", 2).await;
    settled(&alice).await;
    assert!(site.messaging().parked().await.unwrap().is_empty());

    // Uninstalled again: refused again.
    site.offerings().uninstall("x").await.unwrap();
    poke(alice.clone()).await;
    settled(&alice).await;
    let parked = site.messaging().parked().await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].reason.contains(NO_HANDLER), "{parked:?}");
    assert_eq!(marks(&bob, "x:poked").await, 2);
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_to_an_uninstalled_offering_is_refused_and_parked() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![x(1)]).await;
    site.accounts().create("alice", PW, false).await.unwrap();
    site.accounts().create("bob", PW, false).await.unwrap();
    let (alice, bob) = (
        user_store(&site, "alice").await,
        user_store(&site, "bob").await,
    );
    let ask = || alice.transact(|tx| tx.send("bob", &Ask).map(|_| ()));

    // As if bob's store had no handler: alice is answered NO_HANDLER,
    // and the question is parked in her outbox.
    ask().await.unwrap();
    marks_reach(&alice, &format!("x:refused {NO_HANDLER}"), 1).await;
    settled(&alice).await;
    let parked = site.messaging().parked().await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].kind, Ask::TYPE);
    assert!(parked[0].reason.contains("not installed"), "{parked:?}");
    assert_eq!(marks(&bob, "x:asked").await, 0);

    site.offerings().install("x").await.unwrap();
    ask().await.unwrap();
    marks_reach(&alice, "x:answered", 1).await;
    assert_eq!(marks(&bob, "x:asked").await, 1);
    site.close().await;
}

// ---- Products ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_offering_is_given_once_when_it_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![x(1)]).await;
    let alice_id = site.accounts().create("alice", PW, false).await.unwrap().id;
    let bob_id = site.accounts().create("bob", PW, false).await.unwrap().id;
    let alice = user_store(&site, "alice").await;
    let site_store = site.stores().site_store().clone();

    let basic = site.products().create("basic", &["x"]).await.unwrap();
    assert_eq!((basic.offerings, basic.holders), (vec!["x".to_string()], 0));
    assert!(site.products().grant("basic", alice_id).await.unwrap());
    assert_eq!(site.products().get("basic").await.unwrap().holders, 1);
    // x is not installed: nothing is given yet.
    settled(&site_store).await;
    assert_eq!(given_records(&alice).await, 0);
    assert_eq!(marks(&alice, "x:given").await, 0);
    assert!(!site.products().holds(alice_id, "x").await.unwrap());
    assert!(site.products().given(alice_id).await.unwrap().is_empty());

    // Installed: given to alice, her hook runs in her store.
    site.offerings().install("x").await.unwrap();
    marks_reach(&alice, "x:given", 1).await;
    assert_eq!(given_records(&alice).await, 1);
    assert!(site.products().holds(alice_id, "x").await.unwrap());
    assert!(!site.products().holds(bob_id, "x").await.unwrap());
    assert_eq!(site.products().given(alice_id).await.unwrap(), ["x"]);

    // Given once, however often it comes again.
    assert!(!site.products().grant("basic", alice_id).await.unwrap());
    site.offerings().uninstall("x").await.unwrap();
    assert!(
        !site.products().holds(alice_id, "x").await.unwrap(),
        "an uninstalled offering is held by nobody"
    );
    site.offerings().install("x").await.unwrap();
    site.products().create("plus", &["x"]).await.unwrap();
    assert!(site.products().grant("plus", alice_id).await.unwrap());
    settled(&site_store).await;
    assert_eq!(marks(&alice, "x:given").await, 1);
    assert_eq!(given_records(&alice).await, 1);
    assert!(site.products().holds(alice_id, "x").await.unwrap());
    let bob = user_store(&site, "bob").await;
    assert_eq!(given_records(&bob).await, 0);
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_takes_back_only_what_no_other_product_gives() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![x(1)]).await;
    site.offerings().install("x").await.unwrap();
    let alice_id = site.accounts().create("alice", PW, false).await.unwrap().id;
    let alice = user_store(&site, "alice").await;
    let site_store = site.stores().site_store().clone();
    site.products().create("basic", &["x"]).await.unwrap();
    site.products().create("plus", &["x"]).await.unwrap();
    site.products().grant("basic", alice_id).await.unwrap();
    site.products().grant("plus", alice_id).await.unwrap();
    marks_reach(&alice, "x:given", 1).await;

    // A held product is not deleted.
    match site.products().delete("basic").await {
        Err(SiteError::ProductHeld { product, holders }) => {
            assert_eq!((product.as_str(), holders), ("basic", 1));
        }
        other => panic!("expected ProductHeld, got {other:?}"),
    }

    // "plus" still gives x: nothing is taken.
    assert!(site.products().revoke("basic", alice_id).await.unwrap());
    assert!(!site.products().revoke("basic", alice_id).await.unwrap());
    settled(&site_store).await;
    assert_eq!(marks(&alice, "x:taken").await, 0);
    assert_eq!(given_records(&alice).await, 1);
    assert!(site.products().holds(alice_id, "x").await.unwrap());

    // The last product giving x: taken back, the user's data kept.
    assert!(site.products().revoke("plus", alice_id).await.unwrap());
    marks_reach(&alice, "x:taken", 1).await;
    assert_eq!(given_records(&alice).await, 0);
    assert_eq!(marks(&alice, "x:given").await, 1, "the user's data stays");
    assert!(!site.products().holds(alice_id, "x").await.unwrap());
    assert!(site.products().given(alice_id).await.unwrap().is_empty());

    // Held by nobody now: deleted.
    site.products().delete("basic").await.unwrap();
    assert!(matches!(
        site.products().get("basic").await,
        Err(SiteError::NoSuchProduct(name)) if name == "basic"
    ));
    assert!(matches!(
        site.products().delete("basic").await,
        Err(SiteError::NoSuchProduct(_))
    ));
    let names: Vec<String> = site
        .products()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["plus"]);
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_refuse_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![x(1)]).await;
    let alice_id = site.accounts().create("alice", PW, false).await.unwrap().id;
    assert!(matches!(
        site.products().grant("nope", alice_id).await,
        Err(SiteError::NoSuchProduct(name)) if name == "nope"
    ));
    assert!(matches!(
        site.products().create("bad", &["x", "nope"]).await,
        Err(SiteError::NoSuchOffering(name)) if name == "nope"
    ));
    assert!(matches!(
        site.products().get("bad").await,
        Err(SiteError::NoSuchProduct(_))
    ));
    assert!(matches!(
        site.products().create("Bad Name", &["x"]).await,
        Err(SiteError::BadProductName(_))
    ));
    site.products().create("basic", &["x"]).await.unwrap();
    assert!(matches!(
        site.products().create("basic", &[]).await,
        Err(SiteError::ProductExists(name)) if name == "basic"
    ));
    assert!(matches!(
        site.products().grant("basic", Id::from_raw(9999)).await,
        Err(SiteError::NoSuchAccount(_))
    ));
    assert_eq!(site.products().get("basic").await.unwrap().holders, 0);
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_accounts_are_granted_the_signup_product() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.signup.product = Some("basic".into());
    let site = program(dir.path(), vec![x(1)]).init(config).await.unwrap();
    site.products().create("basic", &["x"]).await.unwrap();

    // Before x is installed: holds the product, given x when installed.
    let alice_id = site.accounts().create("alice", PW, false).await.unwrap().id;
    assert_eq!(site.products().get("basic").await.unwrap().holders, 1);
    assert!(!site.products().holds(alice_id, "x").await.unwrap());
    site.offerings().install("x").await.unwrap();
    let alice = user_store(&site, "alice").await;
    marks_reach(&alice, "x:given", 1).await;
    assert!(site.products().holds(alice_id, "x").await.unwrap());

    // With x installed: given x as the account is made.
    let bob_id = site.accounts().create("bob", PW, false).await.unwrap().id;
    assert!(site.products().holds(bob_id, "x").await.unwrap());
    let bob = user_store(&site, "bob").await;
    marks_reach(&bob, "x:given", 1).await;
    assert_eq!(given_records(&bob).await, 1);
    assert_eq!(site.products().get("basic").await.unwrap().holders, 2);
    site.close().await;
}

// ---- Upgrades ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_program_upgrades_an_installed_offering_once() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![x(1)]).await;
    site.offerings().install("x").await.unwrap();
    site.close().await;
    drop(site);

    for _ in 0..2 {
        let site = program(dir.path(), vec![x(2)]).open().await.unwrap();
        let site_store = site.stores().site_store().clone();
        assert_eq!(marks(&site_store, "x:upgraded").await, 1);
        assert_eq!(marks(&site_store, "x:upgraded from Some(1) to 2").await, 1);
        let info = site.offerings().get("x").await.unwrap();
        assert_eq!(
            info.state,
            OfferingState::Installed {
                installed_version: 2
            }
        );
        assert_eq!(info.version, 2);
        assert!(site.offerings().is_installed("x"));
        site.close().await;
    }
}

// ---- Configuration -----------------------------------------------------

/// The offering x's settings, `[offerings.x]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct XSettings {
    greeting: String,
}
impl ConfigSection for XSettings {
    const NAME: &'static str = "x";
}

/// `config()` with `[offerings.NAME]` holding `settings`.
fn config_with(name: &str, settings: toml::Table) -> SiteConfig {
    let mut offerings = toml::Table::new();
    offerings.insert(name.into(), toml::Value::Table(settings));
    let mut config = config();
    config
        .sections
        .insert("offerings".into(), toml::Value::Table(offerings));
    config
}

fn greeting(value: impl Into<toml::Value>) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("greeting".into(), value.into());
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offering_reads_its_own_section() {
    let dir = tempfile::tempdir().unwrap();
    let with_config = || x(1).config::<XSettings>();
    let site = program(dir.path(), vec![with_config()])
        .init(config_with("x", greeting("hi")))
        .await
        .unwrap();
    assert_eq!(site.section::<XSettings>().greeting, "hi");
    site.close().await;
    drop(site);
    // Read back from mantle.toml.
    let site = program(dir.path(), vec![with_config()])
        .open()
        .await
        .unwrap();
    assert_eq!(site.section::<XSettings>().greeting, "hi");
    site.close().await;
    drop(site);
    // Absent: its defaults.
    let site = program(dir.path(), vec![with_config()])
        .config(config())
        .open()
        .await
        .unwrap();
    assert_eq!(site.section::<XSettings>(), &XSettings::default());
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_section_for_an_offering_the_program_lacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let with_config = || x(1).config::<XSettings>();
    match program(&dir.path().join("new"), vec![with_config()])
        .init(config_with("y", greeting("hi")))
        .await
    {
        Err(SiteError::Config(text)) => assert!(text.contains("offerings.y"), "{text}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    let existing = dir.path().join("existing");
    program(&existing, vec![with_config()])
        .init(config())
        .await
        .unwrap()
        .close()
        .await;
    match program(&existing, vec![with_config()])
        .config(config_with("y", greeting("hi")))
        .open()
        .await
    {
        Err(SiteError::Config(text)) => assert!(text.contains("offerings.y"), "{text}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrongly_typed_offering_setting_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    match program(dir.path(), vec![x(1).config::<XSettings>()])
        .init(config_with("x", greeting(3)))
        .await
    {
        Err(SiteError::Config(text)) => {
            assert!(text.contains("offerings.x"), "{text}");
            assert!(text.contains("greeting"), "{text}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

// ---- Purging -------------------------------------------------------------

/// What the offering "p" keeps in the site store.
#[derive(Item, Debug, Clone)]
#[item(name = "purgetest_seed", version = 1)]
struct Seed {
    n: i64,
}

/// What the offering "p" gives each user.
#[derive(Item, Debug, Clone)]
#[item(name = "purgetest_note", version = 1)]
struct PNote {
    text: String,
}

/// An offering with items in the site store and in user stores, and an
/// app store.
fn p() -> Offering {
    Offering::new("p", 1)
        .items(mantle_site::Scope::Site, |r| {
            r.register::<Seed>();
        })
        .items(mantle_site::Scope::User, |r| {
            r.register::<PNote>();
        })
        .app_store()
        .on_install(|tx, _| {
            tx.insert(&Seed { n: 1 })?;
            Ok(())
        })
        .on_given(|tx, _| {
            tx.insert(&PNote { text: "hi".into() })?;
            Ok(())
        })
}

async fn count<T: Item>(store: &Store) -> u64 {
    store.read(|r| r.query::<T>().count()).await.unwrap()
}

/// Waits (at most 10 s) until `store` holds `want` items of `T`.
async fn count_reaches<T: Item>(store: &Store, want: u64) {
    for _ in 0..500 {
        if count::<T>(store).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{} never held {want} {}",
        store.path().display(),
        T::TYPE_NAME
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_deletes_an_uninstalled_offerings_data_everywhere_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let site = new_site(dir.path(), vec![p()]).await;
    let alice = site.accounts().create("alice", PW, false).await.unwrap();
    site.products().create("pp", &["p"]).await.unwrap();
    site.products().grant("pp", alice.id).await.unwrap();
    site.offerings().install("p").await.unwrap();
    let home = user_store(&site, "alice").await;
    count_reaches::<PNote>(&home, 1).await;
    let app = site.stores().app_store("p").await.unwrap();
    let app_file = app.path().to_path_buf();
    assert!(app_file.exists());
    assert_eq!(count::<Seed>(site.stores().site_store()).await, 1);

    // Installed: refused, nothing deleted.
    assert!(matches!(
        site.offerings().purge("p").await,
        Err(SiteError::OfferingInstalled(name)) if name == "p"
    ));
    assert_eq!(count::<PNote>(&home).await, 1);

    site.offerings().uninstall("p").await.unwrap();
    assert_eq!(site.offerings().purge("p").await.unwrap(), 2);
    assert_eq!(count::<Seed>(site.stores().site_store()).await, 0);
    assert_eq!(count::<PNote>(&home).await, 0);
    assert_eq!(given_records(&home).await, 0);
    assert!(matches!(
        site.stores().app_store("p").await,
        Err(SiteError::NoSuchAppStore(_))
    ));
    assert!(!app_file.exists(), "the app store's file is gone");

    // Installed again: everything starts afresh, and the grant still gives.
    site.offerings().install("p").await.unwrap();
    assert_eq!(count::<Seed>(site.stores().site_store()).await, 1);
    count_reaches::<PNote>(&home, 1).await;
    assert!(site.stores().app_store("p").await.is_ok());
    site.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_read_the_offerings_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let configured = Offering::new("x", 1)
        .config::<XSettings>()
        .on_install(|tx, i| {
            let said = &i.settings.get::<XSettings>().expect("declared").greeting;
            bump(tx, &format!("installed saying {said}"))
        })
        .on_given(|tx, g| {
            let said = &g.settings.get::<XSettings>().expect("declared").greeting;
            bump(tx, &format!("given saying {said}"))
        });
    let mut config = config_with("x", greeting("hi"));
    config.signup.product = Some("px".into());
    let site = program(dir.path(), vec![configured])
        .init(config)
        .await
        .unwrap();
    assert_eq!(site.settings().get::<XSettings>().unwrap().greeting, "hi");
    site.products().create("px", &["x"]).await.unwrap();
    site.offerings().install("x").await.unwrap();
    assert_eq!(
        marks(site.stores().site_store(), "installed saying hi").await,
        1
    );
    site.accounts().create("alice", PW, false).await.unwrap();
    marks_reach(&user_store(&site, "alice").await, "given saying hi", 1).await;
    site.close().await;
}
