//! Every field must be a type the store can hold (`Attribute`).

use mantle_store::Item;

pub struct Elsewhere;

#[derive(Item)]
#[item(name = "holder")]
pub struct Holder {
    pub fine: String,
    pub not_stored: Elsewhere,
}

fn main() {}
