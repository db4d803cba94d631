//! The item types this program knows: the store's built-ins and the
//! offerings compiled into this binary.

use mantle_store::Registry;

/// What this binary registers beyond the store's and the site's own types.
pub const REGISTRATIONS: &[mantle_site::Registration] = &[
    mantle_web::register,
    mantle_live_server::register,
    mantle_example_notes::register,
    mantle_example_ledger::register,
    mantle_example_lists::register,
];

/// The registry used by `mantle store` commands: everything a site of this
/// binary can hold.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    mantle_site::register(&mut registry);
    for r in REGISTRATIONS {
        r(&mut registry);
    }
    registry
}

/// A site builder for DIR with everything this binary offers: the web
/// front, live objects (AMP and WebSocket), the notes example's types, and
/// the ledger offering.
pub fn site(dir: &std::path::Path) -> mantle_site::SiteBuilder {
    let builder = mantle_site::Site::builder(dir).with(mantle_example_notes::register);
    let builder = mantle_web::install(builder);
    let builder = mantle_live_server::install(builder);
    // The lists use the live layer: installed after it.
    let builder = mantle_example_lists::install(builder);
    mantle_example_ledger::install(builder)
}
