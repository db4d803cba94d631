//! Upgrade test: a store of 100,000 items is upgraded v1 -> v2 -> v3 on
//! open, in batches; the upgrading process is killed with SIGKILL twice
//! (once while moving v1 -> v2, once while moving v2 -> v3), and a last
//! open finishes the upgrade. Every item must end at v3 exactly once, with
//! its id and the values its upgraders derive.
//!
//! The parent test re-runs this test binary as a child process (the ignored
//! test `upgrade_child`) to do the killable upgrades.

#![cfg(unix)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use mantle_store::{Item, Registry, Store, StoreConfig, UpgradeProgress};
use rand::Rng;

const ITEMS: u64 = 100_000;
const INSERT_TX: u64 = 10_000;
/// Items moved per upgrade transaction in the killed child.
const CHILD_BATCH: usize = 500;

const STORE_ENV: &str = "MANTLE_UPGRADE_STORE";
const BATCH_ENV: &str = "MANTLE_UPGRADE_BATCH";

#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "note", version = 1)]
struct NoteV1 {
    title: String,
    body: String,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "note", version = 2)]
struct NoteV2 {
    title: String,
    body: String,
    words: i64,
}

#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "note", version = 3)]
struct NoteV3 {
    title: String,
    body: String,
    words: i64,
    summary: String,
}

fn v1_registry() -> Registry {
    let mut r = Registry::new();
    r.register::<NoteV1>();
    r
}

fn v3_registry() -> Registry {
    let mut r = Registry::new();
    r.register::<NoteV3>()
        .upgrader::<NoteV1, NoteV2>(|n| NoteV2 {
            words: n.body.split_whitespace().count() as i64,
            title: n.title,
            body: n.body,
        })
        .upgrader::<NoteV2, NoteV3>(|n| NoteV3 {
            summary: n.body.split_whitespace().next().unwrap_or("").to_string(),
            title: n.title,
            body: n.body,
            words: n.words,
        });
    r
}

const VOCABULARY: [&str; 9] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
];

/// Note number `i`: its v1 value, and the words count and summary its
/// upgrades must produce (known by construction, not by re-running the
/// upgraders' code).
fn note(i: u64) -> (NoteV1, i64, String) {
    let n = (i % 7) as usize; // 0..=6 words
    let words: Vec<&str> = (0..n)
        .map(|k| VOCABULARY[(i as usize / 7 + k * 4) % VOCABULARY.len()])
        .collect();
    let sep = match i % 3 {
        0 => " ",
        1 => "  ",
        _ => " \n\t",
    };
    let lead = if i.is_multiple_of(5) { "\t " } else { "" };
    let trail = if i.is_multiple_of(11) { "  " } else { "" };
    let body = format!("{lead}{}{trail}", words.join(sep));
    (
        NoteV1 {
            title: format!("note {i}"),
            body,
        },
        n as i64,
        words.first().copied().unwrap_or("").to_string(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The value after `marker` in a line of child output (tolerates libtest
/// text before it).
fn marked<'l>(line: &'l str, marker: &str) -> Option<&'l str> {
    line.rfind(marker)
        .map(|at| line[at + marker.len()..].trim())
}

// ---------------------------------------------------------------- child

/// Opens the store with the v3 registry, printing upgrade progress.
#[test]
#[ignore = "child process of upgrade_of_100k_items_resumes_after_sigkill"]
fn upgrade_child() {
    let Ok(path) = std::env::var(STORE_ENV) else {
        return;
    };
    let batch: usize = std::env::var(BATCH_ENV)
        .expect("batch env")
        .parse()
        .expect("batch size");
    let config = StoreConfig::new(v3_registry()).upgrade_batch(batch);
    runtime().block_on(async move {
        let store = Store::open_with_progress(&path, &config, |p| {
            let mut out = std::io::stdout().lock();
            writeln!(out, "PROGRESS {} {} {}", p.from_version, p.done, p.total).expect("stdout");
            out.flush().expect("flush stdout");
        })
        .await
        .expect("child: open with upgrade");
        let mut out = std::io::stdout().lock();
        writeln!(out, "OPENED 1").expect("stdout");
        out.flush().expect("flush stdout");
        drop(out);
        store.close().await;
    });
}

// ---------------------------------------------------------------- parent

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs the upgrading child and SIGKILLs it at the first progress line for
/// which `kill_at(from_version, done, total)` holds. Returns that line's
/// (from_version, done, total) and the number of progress lines seen.
fn run_child_and_kill(
    path: &Path,
    what: &str,
    mut kill_at: impl FnMut(u32, u64, u64) -> bool,
) -> ((u32, u64, u64), usize) {
    let mut child = ChildGuard(
        Command::new(std::env::current_exe().expect("current exe"))
            .args([
                "--exact",
                "upgrade_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(STORE_ENV, path)
            .env(BATCH_ENV, CHILD_BATCH.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child"),
    );
    let lines = read_lines(child.0.stdout.take().expect("child stdout"));
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = 0usize;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: child stalled"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "{what}: the child finished (or failed) before it could be killed; \
                 make CHILD_BATCH smaller (see the child's stderr)"
            ),
        };
        if marked(&line, "OPENED ").is_some() {
            panic!(
                "{what}: the child finished the upgrade before it could be killed; \
                 make CHILD_BATCH smaller"
            );
        }
        let Some(p) = marked(&line, "PROGRESS ") else {
            continue;
        };
        let f: Vec<u64> = p
            .split(' ')
            .map(|x| x.parse().expect("progress number"))
            .collect();
        let (from, done, total) = (f[0] as u32, f[1], f[2]);
        seen += 1;
        if kill_at(from, done, total) {
            child.0.kill().expect("kill child");
            let status = child.0.wait().expect("reap child");
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "{what}: child was not killed by SIGKILL: {status}"
            );
            return ((from, done, total), seen);
        }
    }
}

/// Items per version of `note`, from the catalog; checks that every item is
/// in exactly one table.
fn note_versions(path: &Path, when: &str) -> BTreeMap<u32, i64> {
    let report = mantle_store::inspect(path).expect("inspect");
    let versions: BTreeMap<u32, i64> = report
        .types
        .iter()
        .filter(|t| t.type_name == "note")
        .map(|t| (t.version, t.items))
        .collect();
    assert_eq!(
        versions.values().sum::<i64>(),
        ITEMS as i64,
        "{when}: items across versions {versions:?} do not add up to {ITEMS}"
    );
    versions
}

#[test]
fn upgrade_of_100k_items_resumes_after_sigkill() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = tmp.path().join("notes.store");
    let rt = runtime();

    // 1. A v1 store of 100,000 notes; remember which id holds which note.
    let mut note_of_id: HashMap<i64, u64> = HashMap::with_capacity(ITEMS as usize);
    rt.block_on(async {
        let store = Store::open(&path, &StoreConfig::new(v1_registry()))
            .await
            .expect("create v1 store");
        for start in (0..ITEMS).step_by(INSERT_TX as usize) {
            let ids = store
                .transact(move |tx| {
                    (start..start + INSERT_TX)
                        .map(|i| Ok((tx.insert(&note(i).0)?.raw(), i)))
                        .collect::<mantle_store::Result<Vec<_>>>()
                })
                .await
                .expect("insert v1 notes");
            note_of_id.extend(ids);
        }
        store.close().await;
    });
    assert_eq!(note_of_id.len(), ITEMS as usize, "ids are not distinct");
    assert_eq!(
        note_versions(&path, "after creation"),
        BTreeMap::from([(1, ITEMS as i64)])
    );
    let created = started.elapsed();

    // 2. Kill the upgrade while it moves v1 -> v2.
    let mut rng = rand::rng();
    let first_kill: u64 = rng.random_range(5_000..60_000);
    let (at, seen1) = run_child_and_kill(&path, "first child", |from, done, _| {
        from == 1 && done > first_kill
    });
    let after_first = note_versions(&path, "after the first kill");
    eprintln!("first kill at progress {at:?} (threshold {first_kill}): {after_first:?}");
    assert_eq!(at.2, 2 * ITEMS, "first child: total moves");
    assert!(
        after_first.get(&3).copied().unwrap_or(0) == 0,
        "the first kill came after v2 -> v3 had started: {after_first:?}"
    );
    assert!(
        after_first.get(&1).copied().unwrap_or(0) > 0,
        "the first child finished v1 -> v2 before the kill: {after_first:?}; make CHILD_BATCH smaller"
    );

    // 3. Kill the resumed upgrade while it moves v2 -> v3.
    let second_extra: u64 = rng.random_range(5_000..40_000);
    let mut v2_start = None;
    let (at, seen2) = run_child_and_kill(&path, "second child", |from, done, _| {
        if from != 2 {
            return false;
        }
        let start = *v2_start.get_or_insert(done);
        done > start + second_extra
    });
    let after_second = note_versions(&path, "after the second kill");
    eprintln!(
        "second kill at progress {at:?} (v2 -> v3 {second_extra} items in): {after_second:?}"
    );
    assert_eq!(
        after_second.get(&1).copied().unwrap_or(0),
        0,
        "v1 items left after v1 -> v2 finished"
    );
    assert!(
        after_second.get(&2).copied().unwrap_or(0) > 0,
        "the second child finished before the kill: {after_second:?}; make CHILD_BATCH smaller"
    );
    assert!(
        after_second.get(&3).copied().unwrap_or(0) > 0,
        "the second kill came before any v3 item: {after_second:?}"
    );

    // 4. The parent reopens with the v3 registry: the upgrade resumes.
    let remaining_moves = 2 * after_second.get(&1).copied().unwrap_or(0) as u64
        + after_second.get(&2).copied().unwrap_or(0) as u64;
    let progress: Arc<Mutex<Vec<UpgradeProgress>>> = Arc::default();
    let notes = rt.block_on(async {
        let seen = progress.clone();
        let store = Store::open_with_progress(&path, &StoreConfig::new(v3_registry()), move |p| {
            seen.lock().expect("progress lock").push(p.clone())
        })
        .await
        .expect("reopen with v3 registry");
        let notes = store
            .read(|r| r.query::<NoteV3>().all())
            .await
            .expect("read v3 notes");
        store.close().await;
        notes
    });
    let progress = progress.lock().expect("progress lock").clone();
    let last = progress
        .last()
        .expect("the reopen reported no upgrade progress");
    assert_eq!(last.type_name, "note");
    assert_eq!(
        last.from_version, 2,
        "the resumed upgrade ends with v2 -> v3"
    );
    assert_eq!(
        (last.done, last.total),
        (remaining_moves, remaining_moves),
        "resumed upgrade progress"
    );
    assert!(
        progress.windows(2).all(|w| w[0].done <= w[1].done),
        "progress went backwards"
    );

    // 5. Every note is at v3, once, under its id, with derived values.
    assert_eq!(notes.len(), ITEMS as usize, "number of v3 notes");
    let mut seen_notes = vec![false; ITEMS as usize];
    for n in &notes {
        let raw = n.id().raw();
        let i = *note_of_id
            .get(&raw)
            .unwrap_or_else(|| panic!("v3 note with unknown id {raw}"));
        assert!(!seen_notes[i as usize], "note {i} is stored twice");
        seen_notes[i as usize] = true;
        let (v1, words, summary) = note(i);
        let expected = NoteV3 {
            title: v1.title,
            body: v1.body,
            words,
            summary,
        };
        assert_eq!(**n, expected, "note {i} (id {raw})");
        assert_eq!(n.revision(), 1, "note {i}: revision changed by the upgrade");
    }

    // 6. Only v3 tables remain.
    let report = mantle_store::inspect(&path).expect("inspect");
    for t in report.types.iter().filter(|t| t.type_name == "note") {
        if t.version == 3 {
            assert_eq!(t.items, ITEMS as i64, "v3 items in the catalog");
        } else {
            assert_eq!(t.items, 0, "note v{} still holds items", t.version);
        }
    }
    assert!(
        report
            .types
            .iter()
            .any(|t| t.type_name == "note" && t.version == 3),
        "no note v3 table"
    );
    let problems = mantle_store::check(&path, Some(&v3_registry())).expect("check");
    assert!(problems.is_empty(), "check found problems: {problems:?}");
    eprintln!(
        "created {ITEMS} notes in {:.1} s; children saw {seen1} and {seen2} progress lines; \
         parent resumed {remaining_moves} moves in {} steps; total {:.1} s",
        created.as_secs_f64(),
        progress.len(),
        started.elapsed().as_secs_f64()
    );
}
