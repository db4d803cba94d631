//! What the stores record of offerings: which are installed in the site,
//! which products exist and who holds them, and which offerings each user
//! was given.

use mantle_store::{Id, Item, Timestamp};

use crate::items::Account;

/// An offering installed in the site (in the site store). Uninstalling
/// deletes it and keeps the offering's data.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_installed_offering", version = 1)]
pub struct InstalledOffering {
    /// The offering's name.
    #[item(index)]
    pub name: String,
    /// The code version installed (raised when a newer program upgrades it).
    pub version: i64,
    /// When it was installed.
    pub installed: Timestamp,
}

/// An offering given to the user (in the user's store): its hook ran
/// here, once. Taking it back deletes this and keeps the user's data.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_given_offering", version = 1)]
pub struct GivenOffering {
    /// The offering's name.
    #[item(index)]
    pub name: String,
    /// When it was given.
    pub given: Timestamp,
}

/// A product: a named set of offerings that users are given together (in
/// the site store).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_product", version = 1)]
pub struct Product {
    /// Its name.
    #[item(index)]
    pub name: String,
    /// Its offerings' names, separated by commas.
    pub offerings: String,
}

impl Product {
    /// Its offerings' names.
    pub fn offering_names(&self) -> Vec<String> {
        self.offerings
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A product granted to an account (in the site store). Deleting the
/// account deletes its grants.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_product_grant", version = 1)]
pub struct ProductGrant {
    /// The account.
    #[item(on_delete = "cascade")]
    pub account: Id<Account>,
    /// The product's name.
    #[item(index)]
    pub product: String,
    /// When it was granted.
    pub granted: Timestamp,
}
