//! Damaged objects in a local-directory target (objects are plain files
//! under it): a changed byte or a cut-short object fails the restore,
//! which names the object.

mod common;

use common::damage::damaged_objects_are_caught_and_named;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_cut_short_object_is_caught_at_restore_and_named() {
    let site = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let backup = backup(site.path(), target.path().to_str().unwrap(), "20ms");
    damaged_objects_are_caught_and_named(&backup, site.path(), target.path()).await;
}
