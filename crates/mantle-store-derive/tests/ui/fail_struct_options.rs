//! Bad struct options: each item stops at its first mistake.

use mantle_store::Item;

#[derive(Item)]
#[item(nmae = "typo")]
pub struct UnknownOption {
    pub a: i64,
}

#[derive(Item)]
#[item(name = "zero", version = 0)]
pub struct VersionZero {
    pub a: i64,
}

#[derive(Item)]
#[item(name = "text_version", version = "2")]
pub struct VersionNotANumber {
    pub a: i64,
}

#[derive(Item)]
#[item(name = bare)]
pub struct NameNotAString {
    pub a: i64,
}

#[derive(Item)]
#[item(name = "twice", name = "again")]
pub struct NameTwice {
    pub a: i64,
}

#[derive(Item)]
#[item(name = "versions", version = 2, version = 3)]
pub struct VersionTwice {
    pub a: i64,
}

fn main() {}
