//! Compound indexes name one or more of the item's own fields, once each.

use mantle_store::Item;

#[derive(Item)]
#[item(name = "empty", index())]
pub struct EmptyIndex {
    pub a: i64,
}

#[derive(Item)]
#[item(name = "unknown", index(a, missing))]
pub struct UnknownField {
    pub a: i64,
}

#[derive(Item)]
#[item(name = "repeated", index(a, b, a))]
pub struct RepeatedField {
    pub a: i64,
    pub b: i64,
}

fn main() {}
