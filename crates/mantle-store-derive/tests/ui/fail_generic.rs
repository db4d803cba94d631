//! A stored type has one schema: no type parameters.

use mantle_store::Item;

#[derive(Item)]
#[item(name = "boxed")]
pub struct Boxed<T> {
    pub value: T,
}

fn main() {}
