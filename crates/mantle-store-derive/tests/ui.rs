//! What `#[derive(Item)]` accepts and what it refuses, and with which
//! message: each file under `tests/ui/` is compiled on its own; the
//! refused ones must fail with exactly the `.stderr` beside them.
//!
//! After changing a message on purpose, regenerate the expected output
//! with `TRYBUILD=overwrite cargo test -p mantle-store-derive --test ui`
//! and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
