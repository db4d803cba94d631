//! The stored type name is required, in the `item` attribute.

use mantle_store::Item;

#[derive(Item)]
pub struct Nameless {
    pub title: String,
}

#[derive(Item)]
#[item(version = 2)]
pub struct VersionOnly {
    pub title: String,
}

fn main() {}
