//! The offerings this program includes: the layers (web front, live
//! objects) and the examples, which a site has only once installed.

use mantle_site::{Offering, SiteBuilder};
use mantle_store::Registry;

/// The layers and offerings of this binary, in no particular order: a
/// site builder takes them as they come and checks their requirements.
pub fn offerings() -> Vec<Offering> {
    vec![
        mantle_web::offering(),
        mantle_live_server::offering(),
        mantle_example_notes::offering(),
        mantle_example_ledger::offering(),
        mantle_example_lists::offering(),
    ]
}

/// The names of the offerings a site can install (not the layers).
pub fn installable() -> Vec<String> {
    offerings()
        .into_iter()
        .filter(|o| !o.is_layer())
        .map(|o| o.name().to_string())
        .collect()
}

/// A site builder for DIR with every offering of this binary.
pub fn site(dir: &std::path::Path) -> SiteBuilder {
    offerings()
        .into_iter()
        .fold(mantle_site::Site::builder(dir), SiteBuilder::offering)
}

/// The registry used by `mantle store` commands: everything a site of this
/// binary can hold.
pub fn registry() -> Registry {
    site(std::path::Path::new(".")).registry()
}
