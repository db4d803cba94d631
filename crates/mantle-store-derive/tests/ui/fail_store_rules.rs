//! The store's rules for names and `on_delete`, enforced at compile time.

use mantle_store::{Id, Item};

#[derive(Item)]
#[item(name = "9lives")]
struct NameStartsWithADigit {
    a: i64,
}

#[derive(Item)]
#[item(name = "has-dash")]
struct NameWithADash {
    a: i64,
}

#[derive(Item)]
#[item(name = "underscored")]
struct Underscored {
    _hidden: i64,
}

#[derive(Item)]
#[item(name = "target")]
struct Target {
    a: i64,
}

#[derive(Item)]
#[item(name = "not_optional")]
struct NotOptional {
    #[item(on_delete = "nullify")]
    target: Id<Target>,
}

#[derive(Item)]
#[item(name = "optional")]
struct Optional {
    #[item(on_delete = "nullify")]
    target: Option<Id<Target>>,
}

fn main() {}
