//! The item types this program knows: the store's built-ins and the
//! offerings compiled into this binary.

use mantle_store::Registry;

/// The registry used by `mantle store` commands.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    mantle_example_notes::register(&mut registry);
    registry
}
