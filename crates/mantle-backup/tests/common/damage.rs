//! Damaged objects, for any target whose objects are plain files: a
//! changed byte or a cut-short object fails the restore, which names it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mantle_backup::{Backup, BackupError, Catalog, restore_store, verify};
use mantle_store::Store;

use super::{Row, ns, pad, restored_ns, store_config};

/// The rows the store of [`damaged_objects_are_caught_and_named`] holds.
const ROWS: i64 = 40;

/// Every file under `dir`, as object names (relative, `/`-separated).
pub fn object_names(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The file name of an object's name.
fn file_name(object: &str) -> &str {
    object.rsplit('/').next().unwrap()
}

/// A log segment's first commit and the moment (µs) it was made, from
/// its name (`log-FIRST-LAST-T0-T1`).
fn first_commit(log: &str) -> (u64, u64) {
    let fields: Vec<u64> = file_name(log)
        .strip_prefix("log-")
        .unwrap()
        .split('-')
        .map(|f| f.parse().unwrap())
        .collect();
    (fields[0], fields[2])
}

/// Restores `store` (latest state) to a new file in `out`, expecting a
/// failure, which is returned.
async fn restore_fails(backup: &Backup, store: &str, out: &Path, tag: &str) -> BackupError {
    let catalog = Catalog::read(backup.target()).await.unwrap();
    let dest = out.join(format!("{tag}.store"));
    let result = restore_store(backup.target(), backup.keys(), &catalog, store, None, &dest).await;
    let err = match result {
        Ok(r) => panic!("{tag}: the restore succeeded despite the damage: {r:?}"),
        Err(e) => e,
    };
    assert!(!dest.exists(), "{tag}: a failed restore leaves no file");
    err
}

/// Checks `err` is [`BackupError::Corrupt`] about `object`, and says so.
fn assert_names(err: &BackupError, object: &str, what: &str) {
    match err {
        BackupError::Corrupt { object: o, .. } => assert_eq!(o, object, "{what}: {err}"),
        other => panic!("{what}: expected the object {object} to be found damaged, got: {other}"),
    }
    assert!(
        err.to_string().contains(object),
        "{what}: the message names the object {object}: {err}"
    );
}

/// Backs up a store of [`ROWS`] rows in several log segments with
/// `backup` (of site `site`), whose objects are the files under
/// `objects_dir` (object NAME is `objects_dir/NAME`); then damages one
/// object at a time: a flipped byte in a log segment, a snapshot cut in
/// half, a log segment missing its last bytes. Each restore must fail
/// naming the object, and succeed again once it is put back.
pub async fn damaged_objects_are_caught_and_named(
    backup: &Backup,
    site: &Path,
    objects_dir: &Path,
) {
    let store = Store::open(site.join("d.store"), &store_config(backup))
        .await
        .unwrap();
    for n in 0..ROWS {
        store
            .transact(move |tx| tx.insert(&Row { n, pad: pad(n) }))
            .await
            .unwrap();
        // Past the lag now and then: several segments.
        if n % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
    }
    assert!(
        backup.flush(Duration::from_secs(30)).await,
        "{:?}",
        backup.status()
    );
    assert_eq!(ns(&store).await, (0..ROWS).collect::<Vec<_>>());
    store.close().await;

    let objects = object_names(objects_dir);
    let of_kind = |prefix: &str| -> Vec<String> {
        objects
            .iter()
            .filter(|o| o.starts_with("stores/d.store/") && file_name(o).starts_with(prefix))
            .cloned()
            .collect()
    };
    let (logs, snaps) = (of_kind("log-"), of_kind("snap-"));
    assert!(logs.len() >= 3, "several log segments: {objects:?}");
    assert_eq!(snaps.len(), 1, "one snapshot, in one part: {objects:?}");
    let file = |object: &str| -> PathBuf { objects_dir.join(object) };

    let out = tempfile::tempdir().unwrap();
    let all: Vec<i64> = (0..ROWS).collect();
    let whole = |tag: &str| out.path().join(format!("{tag}.store"));
    assert_eq!(
        restored_ns(backup, "d.store", None, &whole("undamaged")).await,
        all
    );

    // A byte changed in the middle of a segment in the middle.
    let mid = &logs[logs.len() / 2];
    let original = std::fs::read(file(mid)).unwrap();
    let mut flipped = original.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x20;
    std::fs::write(file(mid), &flipped).unwrap();
    let err = restore_fails(backup, "d.store", out.path(), "flipped").await;
    assert_names(&err, mid, "a flipped byte");
    // A verification reports it too, naming the object.
    let catalog = Catalog::read(backup.target()).await.unwrap();
    let verified = verify(
        backup.target(),
        backup.keys(),
        &catalog,
        &["d.store".into()],
    )
    .await
    .unwrap();
    assert!(verified.ok.is_empty(), "{verified:?}");
    assert_eq!(verified.failed.len(), 1, "{verified:?}");
    assert!(verified.failed[0].1.contains(mid.as_str()), "{verified:?}");
    // A moment before that segment needs none of it: still restorable,
    // exactly up to the commit before it (commit k wrote row k - 1).
    let (first, first_us) = first_commit(mid);
    let before = restored_ns(
        backup,
        "d.store",
        Some(first_us - 1),
        &whole("before-damage"),
    )
    .await;
    assert_eq!(before, (0..first as i64 - 1).collect::<Vec<_>>(), "{mid}");
    assert!(!before.is_empty() && before.len() < all.len(), "{before:?}");
    std::fs::write(file(mid), &original).unwrap();
    assert_eq!(
        restored_ns(backup, "d.store", None, &whole("mended-1")).await,
        all
    );

    // The snapshot cut in half.
    let snap = &snaps[0];
    let original = std::fs::read(file(snap)).unwrap();
    std::fs::write(file(snap), &original[..original.len() / 2]).unwrap();
    let err = restore_fails(backup, "d.store", out.path(), "short-snapshot").await;
    assert_names(&err, snap, "a snapshot cut in half");
    std::fs::write(file(snap), &original).unwrap();
    assert_eq!(
        restored_ns(backup, "d.store", None, &whole("mended-2")).await,
        all
    );

    // The last segment missing its last few bytes.
    let last = logs.last().unwrap();
    let original = std::fs::read(file(last)).unwrap();
    std::fs::write(file(last), &original[..original.len() - 5]).unwrap();
    let err = restore_fails(backup, "d.store", out.path(), "short-segment").await;
    assert_names(&err, last, "a segment cut short");
    std::fs::write(file(last), &original).unwrap();
    assert_eq!(
        restored_ns(backup, "d.store", None, &whole("mended-3")).await,
        all
    );
}
