//! What the sharing layer keeps in each user store: groups, their
//! members, shares, and a generation number that changes with any of
//! them (so cached roles and shares are checked, not trusted).

use mantle_store::{Item, Registry};

/// A group of roles the store's owner made (`group:NAME`).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_group", version = 1)]
pub struct Group {
    /// The group's name (`friends`); its role is `group:friends`.
    #[item(index)]
    pub name: String,
}

/// One member of a group: a role (a user, another group, `authenticated`
/// or `everyone`), as stored (`account:7`, `group:family`).
///
/// Invariant (enforced by `add_member`): membership has no cycles, so
/// the roles of a viewer are a finite closure.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_membership", version = 1, index(group, member))]
pub struct Membership {
    /// The group (its name, without `group:`).
    pub group: String,
    /// The member role, as stored.
    #[item(index)]
    pub member: String,
}

/// An item shared with a role, for a set of access names, under a share
/// id.
///
/// Invariant (enforced by `share`): every share with one `share_id`
/// names the same item, and (`share_id`, `role`) is unique.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(
    name = "mantle_share",
    version = 1,
    index(share_id, role),
    index(item_type, item_id)
)]
pub struct Share {
    /// The share id: how others name the item (`/users/alice@…/ID`).
    pub share_id: String,
    /// The role it is shared with, as stored.
    #[item(index)]
    pub role: String,
    /// The item's type name.
    pub item_type: String,
    /// The item's raw id.
    pub item_id: i64,
    /// The access names granted, sorted, comma-separated (`edit,read`).
    pub access: String,
}

/// The store's sharing generation: one more at every change of groups,
/// members or shares. Caches of roles and shares keep the generation
/// they were read at and are used only while it is current.
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_sharing_generation", version = 1)]
pub struct SharingGeneration {
    /// The generation.
    pub generation: i64,
}

/// Something another user shared with this store's owner (a hint for
/// listing: each is checked through the sharing layer when used, and
/// dropped when it no longer opens).
#[derive(Item, Debug, Clone, PartialEq)]
#[item(name = "mantle_shared_with_me", version = 1, index(owner, share_id))]
pub struct SharedWithMe {
    /// The owner's account id.
    pub owner: i64,
    /// The share id in the owner's store.
    pub share_id: String,
    /// The item's type name.
    pub item_type: String,
}

/// Registers the sharing layer's item types (every user store has them).
pub(crate) fn register(registry: &mut Registry) {
    registry
        .register::<Group>()
        .register::<Membership>()
        .register::<Share>()
        .register::<SharingGeneration>()
        .register::<SharedWithMe>();
}
