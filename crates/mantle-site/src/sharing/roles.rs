//! Roles, viewers and access names, and the closure that gives a viewer
//! their roles in one store.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;

use mantle_store::{Id, ReadTx};
use serde::{Deserialize, Serialize};

use super::items::Membership;
use crate::auth::Avatar;
use crate::items::Account;
use crate::{Result, SiteError};

/// Access name: see the item. Every share grants it.
pub const READ: &str = "read";
/// Access name: change the item.
pub const EDIT: &str = "edit";
/// Access name: delete the item.
pub const DELETE: &str = "delete";

/// The longest group name and access name, in bytes.
const MAX_NAME: usize = 64;

/// Who an item can be shared with, in one user's store.
///
/// Stored and written as text: `everyone` (anybody, anonymous visitors
/// included), `authenticated` (anybody logged in), `account:ID` (one
/// user's primary role) and `group:NAME` (a group the owner made; its
/// members are roles).
///
/// ```
/// use mantle_site::sharing::Role;
/// let friends: Role = "group:friends".parse().unwrap();
/// assert_eq!(friends, Role::group("friends").unwrap());
/// assert_eq!(Role::Everyone.to_string(), "everyone");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Anybody, anonymous visitors included.
    Everyone,
    /// Anybody logged in.
    Authenticated,
    /// One account (its primary role).
    Account(Id<Account>),
    /// A group the store's owner made.
    Group(String),
}

impl Role {
    /// The group role `group:NAME`, if `name` is a valid group name
    /// (1-64 of `a-z 0-9 _ . -`).
    pub fn group(name: &str) -> Result<Role> {
        check_name("group", name)?;
        Ok(Role::Group(name.to_string()))
    }

    /// The primary role of an account.
    pub fn account(account: Id<Account>) -> Role {
        Role::Account(account)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Everyone => f.write_str("everyone"),
            Role::Authenticated => f.write_str("authenticated"),
            Role::Account(id) => write!(f, "account:{}", id.raw()),
            Role::Group(name) => write!(f, "group:{name}"),
        }
    }
}

impl std::str::FromStr for Role {
    type Err = SiteError;
    fn from_str(s: &str) -> Result<Role> {
        let bad = || SiteError::BadRole(s.to_string());
        match s {
            "everyone" => Ok(Role::Everyone),
            "authenticated" => Ok(Role::Authenticated),
            _ => match s.split_once(':') {
                // Canonical digits only (no `+`, no leading zero): a role
                // has one written form.
                Some(("account", id)) => id
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0 && n.to_string() == id)
                    .map(|id| Role::Account(Id::from_raw(id)))
                    .ok_or_else(bad),
                Some(("group", name)) => Role::group(name).map_err(|_| bad()),
                _ => Err(bad()),
            },
        }
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Role, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks a group or access name: 1-64 of `a-z 0-9 _ . -`.
pub(super) fn check_name(what: &'static str, name: &str) -> Result<()> {
    // `.` and `..` are refused: group names are URL path segments.
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SiteError::BadSharingName {
            what,
            name: name.to_string(),
        })
    }
}

/// Who is asking: an anonymous visitor or a logged-in account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Viewer {
    /// Nobody logged in: only `everyone` applies.
    Anonymous,
    /// A logged-in account.
    Account(Id<Account>),
}

impl Viewer {
    /// The viewer of a request made with `avatar` (anonymous if none).
    pub fn of(avatar: Option<&Avatar>) -> Viewer {
        avatar.map_or(Viewer::Anonymous, |a| Viewer::Account(a.account))
    }

    /// The viewer a message sender stands for: `account:ID` is that
    /// account; the site store and app stores are anonymous (they act for
    /// nobody in particular).
    pub fn of_sender(address: &str) -> Viewer {
        address
            .strip_prefix("account:")
            .and_then(|id| id.parse::<i64>().ok())
            .map_or(Viewer::Anonymous, |id| Viewer::Account(Id::from_raw(id)))
    }

    /// The roles that apply before groups: `everyone`, and for an account
    /// `authenticated` and its own.
    fn base_roles(self) -> Vec<Role> {
        match self {
            Viewer::Anonymous => vec![Role::Everyone],
            Viewer::Account(id) => vec![Role::Everyone, Role::Authenticated, Role::Account(id)],
        }
    }
}

impl From<&Avatar> for Viewer {
    fn from(a: &Avatar) -> Viewer {
        Viewer::Account(a.account)
    }
}

/// The access names one viewer holds on one share: read, and what the
/// shares that apply grant. The owner holds every access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    names: BTreeSet<String>,
    owner: bool,
}

impl Access {
    /// Every access (the store's owner).
    pub(super) fn owner() -> Access {
        Access {
            names: BTreeSet::new(),
            owner: true,
        }
    }

    /// The access named in a share's `access` column.
    pub(super) fn stored(text: &str) -> Access {
        Access {
            names: text
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            owner: false,
        }
    }

    /// Adds what `other` grants.
    pub(super) fn extend(&mut self, other: Access) {
        self.names.extend(other.names);
        self.owner |= other.owner;
    }

    /// Whether `access` is held. Every share grants [`READ`]; the owner
    /// holds everything.
    pub fn permits(&self, access: &str) -> bool {
        self.owner || access == READ || self.names.contains(access)
    }

    /// Whether this is the owner's access.
    pub fn is_owner(&self) -> bool {
        self.owner
    }

    /// The access names held (`read` first), for showing (the owner's
    /// are `["owner"]`).
    pub fn names(&self) -> Vec<String> {
        if self.owner {
            return vec!["owner".to_string()];
        }
        let mut out = vec![READ.to_string()];
        out.extend(self.names.iter().filter(|n| *n != READ).cloned());
        out
    }
}

/// The access names a share grants, checked and in stored form (sorted,
/// comma-separated). `read` is implied and may be left out.
pub(super) fn stored_access(access: &[&str]) -> Result<String> {
    let mut names = BTreeSet::new();
    for a in access {
        check_name("access", a)?;
        names.insert(*a);
    }
    names.insert(READ);
    Ok(names.into_iter().collect::<Vec<_>>().join(","))
}

/// The roles `viewer` has in the store read by `r`: the base roles, and
/// every group they are (transitively) a member of.
pub fn roles_in(r: &ReadTx, viewer: Viewer) -> mantle_store::Result<Vec<Role>> {
    let members = r.query::<Membership>().all()?;
    let mut groups_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for m in &members {
        groups_of.entry(&m.member).or_default().push(&m.group);
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<String> = viewer.base_roles().iter().map(Role::to_string).collect();
    while let Some(role) = queue.pop_front() {
        if !seen.insert(role.clone()) {
            continue;
        }
        for g in groups_of.get(role.as_str()).into_iter().flatten() {
            queue.push_back(format!("group:{g}"));
        }
    }
    Ok(seen.iter().filter_map(|r| r.parse().ok()).collect())
}

/// Whether making `member` a member of group `group` would close a
/// cycle: `group` is `member`, or already (transitively) a member of it.
pub(super) fn would_cycle(r: &ReadTx, group: &str, member: &Role) -> mantle_store::Result<bool> {
    let Role::Group(member_group) = member else {
        // Only groups have members: no cycle can pass through another role.
        return Ok(false);
    };
    let members = r.query::<Membership>().all()?;
    // Walk down from `member`: the groups among its members, theirs, …
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([member_group.clone()]);
    while let Some(g) = queue.pop_front() {
        if g == group {
            return Ok(true);
        }
        if !seen.insert(g.clone()) {
            continue;
        }
        for m in members.iter().filter(|m| m.group == g) {
            if let Some(sub) = m.member.strip_prefix("group:") {
                queue.push_back(sub.to_string());
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_back_what_they_write() {
        let roles = [
            Role::Everyone,
            Role::Authenticated,
            Role::Account(Id::from_raw(1)),
            Role::Account(Id::from_raw(i64::MAX)),
            Role::group("friends").unwrap(),
            Role::group("a.b_c-9").unwrap(),
            Role::group(&"x".repeat(64)).unwrap(),
        ];
        for role in roles {
            let text = role.to_string();
            assert_eq!(text.parse::<Role>().unwrap(), role, "{text}");
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
        assert_eq!(Role::Everyone.to_string(), "everyone");
        assert_eq!(Role::Authenticated.to_string(), "authenticated");
        assert_eq!(Role::account(Id::from_raw(7)).to_string(), "account:7");
        assert_eq!(Role::group("family").unwrap().to_string(), "group:family");
    }

    #[test]
    fn malformed_roles_are_refused() {
        for bad in [
            "",
            "Everyone",
            "everyone ",
            "nobody",
            "account",
            "account:",
            "account:0",
            "account:-3",
            "account:x",
            "account:1.5",
            "account:99999999999999999999",
            "group",
            "group:",
            "group:Friends",
            "group:a b",
            "group:a:b",
            "group:a,b",
            "group:é",
            "user:1",
            ":1",
        ] {
            match bad.parse::<Role>() {
                Err(SiteError::BadRole(s)) => assert_eq!(s, bad),
                other => panic!("{bad:?} parsed as {other:?}"),
            }
            assert!(serde_json::from_str::<Role>(&format!("{bad:?}")).is_err());
        }
        let long = format!("group:{}", "x".repeat(65));
        assert!(matches!(long.parse::<Role>(), Err(SiteError::BadRole(_))));
        assert!(matches!(
            Role::group(""),
            Err(SiteError::BadSharingName { what: "group", .. })
        ));
    }

    #[test]
    fn access_names_are_checked() {
        for ok in ["read", "edit", "comment", "a.b_c-9", &"x".repeat(64)] {
            assert!(check_name("access", ok).is_ok(), "{ok}");
        }
        for bad in ["", "Edit", "a,b", "a b", "é", "a:b", &"x".repeat(65)] {
            match check_name("access", bad) {
                Err(SiteError::BadSharingName { what, name }) => {
                    assert_eq!((what, name.as_str()), ("access", bad));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Stored sorted and without repeats, `read` always among them; a
        // comma can never come from a name.
        assert_eq!(stored_access(&[]).unwrap(), "read");
        assert_eq!(
            stored_access(&["edit", "comment", "edit", "read"]).unwrap(),
            "comment,edit,read"
        );
        assert!(matches!(
            stored_access(&["edit", "a,b"]),
            Err(SiteError::BadSharingName { what: "access", .. })
        ));
    }

    #[test]
    fn access_permits_what_was_granted() {
        let mut a = Access::stored("comment,read");
        assert!(a.permits(READ) && a.permits("comment"));
        assert!(!a.permits(EDIT) && !a.permits(DELETE) && !a.is_owner());
        assert_eq!(a.names(), ["read", "comment"]);
        a.extend(Access::stored("edit,read"));
        assert!(a.permits(EDIT));
        assert_eq!(a.names(), ["read", "comment", "edit"]);
        // Every share grants read, even one stored without it.
        assert!(Access::stored("").permits(READ));
        let owner = Access::owner();
        assert!(owner.is_owner() && owner.permits("anything") && owner.permits(DELETE));
        assert_eq!(owner.names(), ["owner"]);
    }

    #[test]
    fn viewers_of_senders() {
        assert_eq!(
            Viewer::of_sender("account:12"),
            Viewer::Account(Id::from_raw(12))
        );
        assert_eq!(Viewer::of_sender("site"), Viewer::Anonymous);
        assert_eq!(Viewer::of_sender("app:blog"), Viewer::Anonymous);
        assert_eq!(Viewer::of_sender("account:x"), Viewer::Anonymous);
        assert_eq!(Viewer::Anonymous.base_roles(), [Role::Everyone]);
        let id = Id::from_raw(3);
        assert_eq!(
            Viewer::Account(id).base_roles(),
            [Role::Everyone, Role::Authenticated, Role::Account(id)]
        );
    }
}
