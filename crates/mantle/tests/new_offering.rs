//! `mantle new offering`: the crate it makes builds against this source
//! tree and its test passes, as made.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

/// This source tree (the workspace root).
fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn a_new_offering_builds_and_its_test_passes_as_made() {
    let temp = tempfile::tempdir().unwrap();
    let out = ok(mantle(&[
        "new",
        "offering",
        "field-notes",
        "--dir",
        s(temp.path()),
        "--mantle-path",
        s(workspace()),
    ]));
    assert!(out.contains("made the offering field-notes"), "{out}");
    let root = temp.path().join("field-notes");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "src/main.rs",
        "tests/offering.rs",
        "README.md",
    ] {
        assert!(root.join(file).exists(), "{file} missing");
    }
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    assert!(lib.contains(r#"#[item(name = "field_notes_entry", version = 1)]"#));
    assert!(lib.contains("MANTLE_FIELD_NOTES_GREETING"));

    // The same dependency versions as this tree, without the network; a
    // target directory of its own under this tree's, kept between runs,
    // built without debug info or incremental state (with them it took
    // several GB of the test disk).
    std::fs::copy(workspace().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = workspace().join("target/new-offering");
    let cargo_in = |args: &[&str]| {
        Command::new(&cargo)
            .args(args)
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_PROFILE_DEV_DEBUG", "false")
            .env("CARGO_INCREMENTAL", "0")
            .env_remove("RUSTFLAGS")
            .output()
            .expect("run cargo")
    };
    let test = cargo_in(&["test", "--offline", "--quiet"]);
    assert!(
        test.status.success(),
        "cargo test in the new offering failed:\n{}\n{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    let says = String::from_utf8_lossy(&test.stdout);
    assert!(says.contains("1 passed"), "{says}");

    // Its program is the mantle command with the offering included.
    let help = cargo_in(&[
        "run",
        "--offline",
        "--quiet",
        "--",
        "offering",
        "list",
        "--help",
    ]);
    assert!(
        help.status.success(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );

    // A program whose offering needs what it does not include is refused
    // at start, with one line naming both, and writes nothing.
    std::fs::write(
        root.join("src/main.rs"),
        "fn main() -> std::process::ExitCode {\n    \
         mantle::main(|site| site.offering(field_notes::offering().requires(\"absent\")))\n}\n",
    )
    .unwrap();
    let build = cargo_in(&["build", "--offline", "--quiet"]);
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let init = Command::new(target.join("debug/field-notes"))
        .args(["init", s(&temp.path().join("site"))])
        .output()
        .expect("run the program");
    assert_eq!(init.status.code(), Some(1));
    let err = String::from_utf8_lossy(&init.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(
            r#"the offering "field-notes" requires "absent", which this program does not include"#
        ),
        "{err}"
    );
    assert!(
        !temp.path().join("site/mantle.toml").exists(),
        "nothing written"
    );
}

#[test]
fn a_new_offering_refuses_a_bad_name_or_an_existing_directory() {
    let temp = tempfile::tempdir().unwrap();
    let bad = mantle(&["new", "offering", "Bad Name", "--dir", s(temp.path())]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("cannot name an offering"),
        "{}",
        stderr(&bad)
    );
    std::fs::create_dir(temp.path().join("taken")).unwrap();
    let taken = mantle(&["new", "offering", "taken", "--dir", s(temp.path())]);
    assert_eq!(taken.status.code(), Some(1));
    assert!(stderr(&taken).contains("exists"), "{}", stderr(&taken));
}
