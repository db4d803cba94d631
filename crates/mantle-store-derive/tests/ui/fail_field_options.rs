//! Bad field options.

use mantle_store::{Id, Item};

#[derive(Item)]
#[item(name = "target")]
pub struct Target {
    pub a: i64,
}

#[derive(Item)]
#[item(name = "unknown")]
pub struct UnknownOption {
    #[item(indexed)]
    pub a: i64,
}

#[derive(Item)]
#[item(name = "policy")]
pub struct BadPolicy {
    #[item(on_delete = "restrict")]
    pub target: Id<Target>,
}

#[derive(Item)]
#[item(name = "policy_word")]
pub struct PolicyNotAString {
    #[item(on_delete = cascade)]
    pub target: Id<Target>,
}

#[derive(Item)]
#[item(name = "index_twice")]
pub struct IndexTwice {
    #[item(index, index)]
    pub a: i64,
}

#[derive(Item)]
#[item(name = "policy_twice")]
pub struct PolicyTwice {
    #[item(on_delete = "cascade")]
    #[item(on_delete = "forbid")]
    pub target: Id<Target>,
}

fn main() {}
