//! Powerups: items installed on the store or on other items as providers
//! of a named interface, in priority order.

mod common;

use mantle_store::{Error, Id, Interface, Item, Registry, Store, Target};

/// The interface the greeting items provide as powerups.
pub trait Greeter: Send {
    /// A greeting for `who`, naming the item that made it.
    fn greet(&self, who: &str) -> String;
}

impl Interface for dyn Greeter {
    const NAME: &'static str = "greeter";
}

#[derive(Item, Debug, Clone)]
#[item(name = "english", version = 1)]
struct English {
    tag: String,
}

impl Greeter for English {
    fn greet(&self, who: &str) -> String {
        format!("Hello {who} ({})", self.tag)
    }
}

#[derive(Item, Debug, Clone)]
#[item(name = "french", version = 1)]
struct French {
    tag: String,
}

impl Greeter for French {
    fn greet(&self, who: &str) -> String {
        format!("Bonjour {who} ({})", self.tag)
    }
}

/// An item type that does not provide `Greeter`.
#[derive(Item, Debug, Clone)]
#[item(name = "mute", version = 1)]
struct Mute {
    x: i64,
}

/// Something to install powerups on.
#[derive(Item, Debug, Clone)]
#[item(name = "room", version = 1)]
struct Room {
    title: String,
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register::<English>()
        .register::<French>()
        .register::<Mute>()
        .register::<Room>()
        .provide::<English, dyn Greeter>(|e| Box::new(e))
        .provide::<French, dyn Greeter>(|f| Box::new(f));
    r
}

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("p.store"), &common::config(registry()))
        .await
        .unwrap();
    (dir, store)
}

async fn greetings(store: &Store, target: Target) -> Vec<String> {
    store
        .read(move |r| {
            Ok::<_, Error>(
                r.powerups::<dyn Greeter>(target)?
                    .iter()
                    .map(|g| g.greet("Ada"))
                    .collect(),
            )
        })
        .await
        .unwrap()
}

struct Greeters {
    en1: Id<English>,
    en2: Id<English>,
    fr: Id<French>,
    room: Id<Room>,
}

async fn greeters(store: &Store) -> Greeters {
    store
        .transact(|tx| {
            Ok::<_, Error>(Greeters {
                en1: tx.insert(&English { tag: "en1".into() })?,
                en2: tx.insert(&English { tag: "en2".into() })?,
                fr: tx.insert(&French { tag: "fr".into() })?,
                room: tx.insert(&Room {
                    title: "lobby".into(),
                })?,
            })
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powerups_on_the_store_come_back_highest_priority_first() {
    let (_dir, store) = open().await;
    let g = greeters(&store).await;
    assert!(greetings(&store, Target::STORE).await.is_empty());
    let (en1, en2, fr) = (g.en1, g.en2, g.fr);
    store
        .transact(move |tx| {
            tx.install::<dyn Greeter, _>(Target::STORE, en1, 1)?;
            tx.install::<dyn Greeter, _>(Target::STORE, fr, 10)?;
            tx.install::<dyn Greeter, _>(Target::STORE, en2, 5)
        })
        .await
        .unwrap();
    assert_eq!(
        greetings(&store, Target::STORE).await,
        ["Bonjour Ada (fr)", "Hello Ada (en2)", "Hello Ada (en1)"]
    );
    // Installing again changes the priority.
    store
        .transact(move |tx| tx.install::<dyn Greeter, _>(Target::STORE, en1, 20))
        .await
        .unwrap();
    assert_eq!(
        greetings(&store, Target::STORE).await,
        ["Hello Ada (en1)", "Bonjour Ada (fr)", "Hello Ada (en2)"]
    );
    let report = mantle_store::inspect(store.path()).unwrap();
    let installed: Vec<_> = report
        .powerups
        .iter()
        .map(|p| (p.interface.as_str(), p.powerup_type.as_str(), p.count))
        .collect();
    assert_eq!(
        installed,
        [("greeter", "english", 2), ("greeter", "french", 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_priorities_keep_installation_order() {
    let (_dir, store) = open().await;
    let g = greeters(&store).await;
    let (en1, en2, fr) = (g.en1, g.en2, g.fr);
    store
        .transact(move |tx| {
            tx.install::<dyn Greeter, _>(Target::STORE, fr, 0)?;
            tx.install::<dyn Greeter, _>(Target::STORE, en2, 0)?;
            tx.install::<dyn Greeter, _>(Target::STORE, en1, 0)
        })
        .await
        .unwrap();
    assert_eq!(
        greetings(&store, Target::STORE).await,
        ["Bonjour Ada (fr)", "Hello Ada (en2)", "Hello Ada (en1)"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powerups_on_an_item_are_separate_from_those_on_the_store() {
    let (_dir, store) = open().await;
    let g = greeters(&store).await;
    let (en1, fr, room) = (g.en1, g.fr, g.room);
    let other_room = store
        .transact(move |tx| {
            tx.install::<dyn Greeter, _>(room, fr, 1)?;
            tx.install::<dyn Greeter, _>(room, en1, 2)?;
            tx.install::<dyn Greeter, _>(Target::STORE, fr, 0)?;
            tx.insert(&Room {
                title: "attic".into(),
            })
        })
        .await
        .unwrap();
    assert_eq!(
        greetings(&store, room.into()).await,
        ["Hello Ada (en1)", "Bonjour Ada (fr)"]
    );
    assert_eq!(greetings(&store, Target::STORE).await, ["Bonjour Ada (fr)"]);
    assert!(greetings(&store, other_room.into()).await.is_empty());
    // A stored item works as a target too.
    let lobby = store.read(move |r| r.get(room)).await.unwrap().unwrap();
    assert_eq!(Target::from(&lobby), Target::from(room));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_removes_one_installation_and_reports_whether_it_existed() {
    let (_dir, store) = open().await;
    let g = greeters(&store).await;
    let (en1, fr, room) = (g.en1, g.fr, g.room);
    store
        .transact(move |tx| {
            tx.install::<dyn Greeter, _>(room, en1, 1)?;
            tx.install::<dyn Greeter, _>(room, fr, 2)?;
            tx.install::<dyn Greeter, _>(Target::STORE, en1, 1)
        })
        .await
        .unwrap();
    let (first, second) = store
        .transact(move |tx| {
            Ok::<_, Error>((
                tx.uninstall::<dyn Greeter, _>(room, en1)?,
                tx.uninstall::<dyn Greeter, _>(room, en1)?,
            ))
        })
        .await
        .unwrap();
    assert!(first);
    assert!(!second);
    assert_eq!(greetings(&store, room.into()).await, ["Bonjour Ada (fr)"]);
    assert_eq!(
        greetings(&store, Target::STORE).await,
        ["Hello Ada (en1)"],
        "the store's installation of the same item is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installing_a_type_that_does_not_provide_the_interface_fails_with_not_a_provider() {
    let (_dir, store) = open().await;
    let mute = store
        .transact(|tx| tx.insert(&Mute { x: 1 }))
        .await
        .unwrap();
    let err = store
        .transact(move |tx| tx.install::<dyn Greeter, _>(Target::STORE, mute, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotAProvider {
                type_name: "mute",
                interface: "greeter"
            }
        ),
        "{err:?}"
    );
    // Installing a provider item that does not exist fails too.
    let err = store
        .transact(|tx| tx.install::<dyn Greeter, _>(Target::STORE, Id::<English>::from_raw(404), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NoSuchItem {
                type_name: "english",
                id: 404
            }
        ),
        "{err:?}"
    );
    assert!(greetings(&store, Target::STORE).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_powerup_item_or_its_target_removes_the_installation() {
    let (_dir, store) = open().await;
    let g = greeters(&store).await;
    let (en1, en2, fr, room) = (g.en1, g.en2, g.fr, g.room);
    store
        .transact(move |tx| {
            tx.install::<dyn Greeter, _>(Target::STORE, en1, 3)?;
            tx.install::<dyn Greeter, _>(Target::STORE, en2, 2)?;
            tx.install::<dyn Greeter, _>(Target::STORE, fr, 1)?;
            tx.install::<dyn Greeter, _>(room, fr, 1)
        })
        .await
        .unwrap();
    store.transact(move |tx| tx.delete(en1)).await.unwrap();
    assert_eq!(
        greetings(&store, Target::STORE).await,
        ["Hello Ada (en2)", "Bonjour Ada (fr)"]
    );
    // delete_where removes installations too.
    store
        .transact(|tx| tx.delete_where(English::TAG.eq("en2")))
        .await
        .unwrap();
    assert_eq!(greetings(&store, Target::STORE).await, ["Bonjour Ada (fr)"]);
    // Deleting the target removes what was installed on it.
    store.transact(move |tx| tx.delete(room)).await.unwrap();
    let report = mantle_store::inspect(store.path()).unwrap();
    let installed: Vec<_> = report
        .powerups
        .iter()
        .map(|p| (p.powerup_type.as_str(), p.count))
        .collect();
    assert_eq!(installed, [("french", 1)], "only the store's fr is left");
    // A new item reusing nothing: ids are not reused, so a new room does
    // not inherit the old room's powerups.
    let new_room = store
        .transact(|tx| {
            tx.insert(&Room {
                title: "new".into(),
            })
        })
        .await
        .unwrap();
    assert!(greetings(&store, new_room.into()).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_not_registering_a_provider_skips_its_installations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.store");
    let store = Store::open(&path, &common::config(registry()))
        .await
        .unwrap();
    let g = greeters(&store).await;
    let (en1, fr) = (g.en1, g.fr);
    store
        .transact(move |tx| {
            tx.install::<dyn Greeter, _>(Target::STORE, en1, 1)?;
            tx.install::<dyn Greeter, _>(Target::STORE, fr, 2)
        })
        .await
        .unwrap();
    common::close(store).await;
    // Same types, but French is not registered as a provider.
    let mut r = Registry::new();
    r.register::<English>()
        .register::<French>()
        .register::<Mute>()
        .register::<Room>()
        .provide::<English, dyn Greeter>(|e| Box::new(e));
    let store = common::reopen(&path, &common::config(r)).await;
    assert_eq!(greetings(&store, Target::STORE).await, ["Hello Ada (en1)"]);
}
