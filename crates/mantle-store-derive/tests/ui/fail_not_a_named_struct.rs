//! Only structs with named fields are items.

use mantle_store::Item;

#[derive(Item)]
#[item(name = "colour")]
pub enum Colour {
    Red,
    Green,
}

#[derive(Item)]
#[item(name = "pair")]
pub struct Pair(i64, i64);

#[derive(Item)]
#[item(name = "marker")]
pub struct Marker;

fn main() {}
