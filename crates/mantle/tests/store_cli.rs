//! `mantle store …` against the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mantle_example_notes::legacy::NoteV1;
use mantle_example_notes::{Note, Notebook};
use mantle_store::{Item, Registry, Store, StoreConfig, Timestamp};

fn mantle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mantle"))
        .args(args)
        .output()
        .expect("run mantle")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn notes_config() -> StoreConfig {
    let mut registry = Registry::new();
    mantle_example_notes::register(&mut registry);
    StoreConfig::new(registry)
}

async fn notes_store(path: &Path, notes: usize) {
    let store = Store::open(path, &notes_config()).await.unwrap();
    store
        .transact(move |tx| {
            let book = tx.insert(&Notebook {
                name: "ideas".into(),
            })?;
            for i in 0..notes {
                tx.insert(&Note::new(
                    book,
                    &format!("note {i}"),
                    "one two three",
                    Timestamp::now(),
                ))?;
            }
            mantle_store::ok(())
        })
        .await
        .unwrap();
    store.close().await;
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An error is one line on stderr, starting with "mantle: ".
fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("mantle: "), "got: {err}");
    assert!(lines[0].contains(needle), "expected '{needle}' in: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_lists_types_versions_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alice.store");
    notes_store(&file, 7).await;

    let o = mantle(&["store", "inspect", path_str(&file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("note"), "{out}");
    assert!(out.contains("notebook"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("note ") && l.trim_end().ends_with(" 7")),
        "{out}"
    );

    let o = mantle(&["store", "inspect", "--json", path_str(&file)]);
    assert!(o.status.success());
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let types = report["types"].as_array().unwrap();
    let note = types.iter().find(|t| t["type_name"] == "note").unwrap();
    assert_eq!(note["version"], 3);
    assert_eq!(note["items"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_a_healthy_store_and_exits_3_on_problems() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alice.store");
    notes_store(&file, 3).await;
    let o = mantle(&["store", "check", path_str(&file)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok"));
    assert!(!stdout(&o).contains("warning"), "{}", stdout(&o));

    // Notes at a version newer than this program's: a problem.
    #[derive(Item)]
    #[item(name = "note", version = 4)]
    struct NoteV4 {
        x: i64,
    }
    let newer = dir.path().join("newer.store");
    let mut registry = Registry::new();
    registry.register::<NoteV4>();
    let store = Store::open(&newer, &StoreConfig::new(registry))
        .await
        .unwrap();
    store
        .transact(|tx| tx.insert(&NoteV4 { x: 1 }))
        .await
        .unwrap();
    store.close().await;
    let o = mantle(&["store", "check", path_str(&newer)]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("note: stored at version 4, newer than this program's 3"),
        "{}",
        stdout(&o)
    );
}

/// A store holding a type this program does not register opens all the
/// same, its items left alone: `check` warns and passes, `inspect` warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_inspect_warn_of_types_this_program_does_not_register_and_pass() {
    #[derive(Item)]
    #[item(name = "stranger", version = 1)]
    struct Stranger {
        x: i64,
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("other.store");
    let mut registry = Registry::new();
    mantle_example_notes::register(&mut registry);
    registry.register::<Stranger>();
    let store = Store::open(&file, &StoreConfig::new(registry))
        .await
        .unwrap();
    store
        .transact(|tx| {
            tx.insert(&Stranger { x: 1 })?;
            tx.insert(&Stranger { x: 2 })
        })
        .await
        .unwrap();
    store.close().await;
    notes_store(&file, 1).await;
    let warning = format!(
        "{}: warning: 2 item(s) of type stranger v1, not registered by this program",
        file.display()
    );

    let o = mantle(&["store", "check", path_str(&file)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [warning.as_str(), &format!("{}: ok", file.display())],
        "{out}"
    );

    let o = mantle(&["store", "inspect", path_str(&file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l == "warning: 2 item(s) of type stranger v1, not registered by this program"),
        "{}",
        stdout(&o)
    );
    let o = mantle(&["store", "inspect", "--json", path_str(&file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        report["unregistered"],
        serde_json::json!([{"type_name": "stranger", "version": 1, "items": 2}])
    );

    // `upgrade` opens it too, and says what it left alone.
    let o = mantle(&["store", "upgrade", path_str(&file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).lines().any(|l| l == warning), "{}", stdout(&o));
}

#[test]
fn bad_files_get_one_clear_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.store");
    let o = mantle(&["store", "inspect", path_str(&missing)]);
    assert_one_line_error(&o, 1, "no such store file");

    let junk = dir.path().join("junk.store");
    let bytes: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&junk, &bytes).unwrap();
    for cmd in ["inspect", "check", "upgrade"] {
        let o = mantle(&["store", cmd, path_str(&junk)]);
        assert_one_line_error(&o, 1, "not a Mantle store");
    }
    assert_eq!(std::fs::read(&junk).unwrap(), bytes, "the file was changed");

    let o = mantle(&["store", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));

    // A bench asked for nothing gets one clear line, before any work.
    #[cfg(feature = "bench")]
    for scale in ["0", "-1", "NaN"] {
        let flag = format!("--scale={scale}");
        let o = mantle(&["bench", "store", &flag]);
        assert_eq!(o.status.code(), Some(1), "--scale {scale}: {}", stderr(&o));
        let err = stderr(&o);
        let last = err.lines().last().unwrap_or("");
        assert!(
            last.starts_with("mantle: --scale must be greater than 0"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_brings_old_items_to_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.store");
    // Written by an "older program" that knew notes at version 1.
    let mut old = Registry::new();
    old.register::<NoteV1>();
    let store = Store::open(&file, &StoreConfig::new(old)).await.unwrap();
    store
        .transact(|tx| {
            for i in 0..2500 {
                tx.insert(&NoteV1 {
                    title: format!("t{i}"),
                    body: "a b c d".repeat(i % 3 + 1),
                })?;
            }
            mantle_store::ok(())
        })
        .await
        .unwrap();
    store.close().await;

    let o = mantle(&["store", "upgrade", path_str(&file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("note v3: 2500 items"), "{}", stdout(&o));

    let store = Store::open(&file, &notes_config()).await.unwrap();
    let notes = store.read(|r| r.query::<Note>().all()).await.unwrap();
    assert_eq!(notes.len(), 2500);
    for n in &notes {
        let i: usize = n.title[1..].parse().unwrap();
        // "a b c d" repeated k times has 3k + 1 words ("da" joins).
        assert_eq!(n.words, 3 * (i % 3 + 1) as i64 + 1);
        assert_eq!(n.notebook, None);
    }
    store.close().await;

    let o = mantle(&["store", "upgrade", path_str(&file)]);
    assert!(stdout(&o).contains("already current"), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_refuses_a_store_open_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busy.store");
    notes_store(&file, 1).await;
    let store = Store::open(&file, &notes_config()).await.unwrap();
    let o = mantle(&["store", "upgrade", path_str(&file)]);
    assert_one_line_error(&o, 1, "already open");
    store.close().await;
}

/// Child process for the backup test: writes pairs of notes, one pair per
/// transaction, until killed; prints "READY" after the first commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of backup_is_consistent_while_another_process_writes"]
async fn backup_writer_child() {
    let Ok(file) = std::env::var("MANTLE_TEST_WRITER_STORE") else {
        return;
    };
    let store = Store::open(&file, &notes_config()).await.unwrap();
    let book = store
        .transact(|tx| {
            tx.insert(&Notebook {
                name: "pairs".into(),
            })
        })
        .await
        .unwrap();
    println!("READY");
    for i in 0.. {
        store
            .transact(move |tx| {
                for half in ["a", "b"] {
                    tx.insert(&Note::new(
                        book,
                        &format!("{i}{half}"),
                        "x",
                        Timestamp::now(),
                    ))?;
                }
                mantle_store::ok(())
            })
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_is_consistent_while_another_process_writes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("live.store");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "backup_writer_child", "--ignored", "--nocapture"])
        .env("MANTLE_TEST_WRITER_STORE", &file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // `by_ref`: the pipe stays open (the child keeps writing) until the end.
    for line in lines.by_ref() {
        if line.unwrap().contains("READY") {
            break;
        }
    }
    let mut sizes = Vec::new();
    for round in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(150));
        let dest: PathBuf = dir.path().join(format!("copy{round}.store"));
        let o = mantle(&["store", "backup", path_str(&file), path_str(&dest)]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = mantle(&["store", "check", path_str(&dest)]);
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
        let store = Store::open(&dest, &notes_config()).await.unwrap();
        let titles = store
            .read(|r| {
                mantle_store::ok(
                    r.query::<Note>()
                        .all()?
                        .into_iter()
                        .map(|n| n.into_inner().title)
                        .collect::<Vec<_>>(),
                )
            })
            .await
            .unwrap();
        store.close().await;
        // Every transaction wrote an "a" and a "b": a copy never has half.
        let a = titles.iter().filter(|t| t.ends_with('a')).count();
        let b = titles.iter().filter(|t| t.ends_with('b')).count();
        assert_eq!(a, b, "a half-written transaction is in the copy");
        sizes.push(a);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        sizes.windows(2).all(|w| w[0] <= w[1]) && sizes.last() > sizes.first(),
        "copies should grow while the writer runs: {sizes:?}"
    );
}
