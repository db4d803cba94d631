//! The sharing layer against a brute-force model: random role graphs
//! (groups in groups, cycles refused) and random shares in one user's
//! store, then every viewer's roles, `accessible`, and grants — read in a
//! transaction and through the cached `site.sharing()` (its grants and its
//! `accessible` list) — compared with
//! what plain Rust computes from the same operations; then random
//! removals, after each of which the cached grants must already agree
//! (revocation at once).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use mantle_site::sharing::{Grant, ReadShares, Role, ShareItems, Viewer};
use mantle_site::{AccountInfo, Site, SiteConfig, SiteError, StoresConfig};
use mantle_store::{Id, Item, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::{Deserialize, Serialize};

/// The shared type.
#[derive(Item, Debug, Clone, Serialize, Deserialize)]
#[item(name = "prop_doc", version = 1)]
struct Doc {
    n: i64,
}

/// Another type, shared beside it (never listed as a `Doc`).
#[derive(Item, Debug, Clone, Serialize, Deserialize)]
#[item(name = "prop_other", version = 1)]
struct Other {
    n: i64,
}

const GROUPS: usize = 4;
/// `everyone`, `authenticated`, the owner, three other accounts, the groups.
const ROLES: usize = 6 + GROUPS;
/// Three `Doc`s and one `Other`.
const ITEMS: usize = 4;
const DOCS: usize = 3;
/// Share ids the operations choose from (so some are reused, for other
/// roles of the same item or — refused — for another item).
const IDS: [&str; 4] = ["s0", "s1", "s2", "s3"];
const ACCESS: [&str; 4] = ["read", "edit", "delete", "comment"];
const CASES: u32 = 64;
const PW: &str = "correct horse battery";

#[derive(Debug, Clone)]
enum Op {
    CreateGroup(usize),
    AddMember(usize, usize),
    Share {
        item: usize,
        role: usize,
        /// A bit per name of `ACCESS`.
        access: u8,
        /// An index into `IDS`, or `None` for a new random id.
        id: Option<usize>,
    },
    RemoveMember(usize, usize),
    /// The membership of this index (modulo their number) among those
    /// there are.
    RemoveExisting(usize),
    /// The share id of this index (modulo their number) among those there
    /// are, from the role of the second index among its roles (`None`:
    /// from every role).
    UnshareExisting(usize, Option<usize>),
    /// A share id (an index into the ids used so far) and a role (`None`:
    /// every role).
    Unshare(usize, Option<usize>),
    UnshareItem(usize),
    DeleteGroup(usize),
}

fn build_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..GROUPS).prop_map(Op::CreateGroup),
        5 => (0..GROUPS, 0..ROLES).prop_map(|(g, r)| Op::AddMember(g, r)),
        4 => (0..ITEMS, 0..ROLES, 0u8..16, proptest::option::weighted(0.85, 0..IDS.len()))
            .prop_map(|(item, role, access, id)| Op::Share { item, role, access, id }),
    ]
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..GROUPS, 0..ROLES).prop_map(|(g, r)| Op::RemoveMember(g, r)),
        4 => any::<usize>().prop_map(Op::RemoveExisting),
        1 => (0..8usize, proptest::option::of(0..ROLES)).prop_map(|(i, r)| Op::Unshare(i, r)),
        3 => (any::<usize>(), proptest::option::weighted(0.7, any::<usize>()))
            .prop_map(|(i, r)| Op::UnshareExisting(i, r)),
        1 => (0..ITEMS).prop_map(Op::UnshareItem),
        2 => (0..GROUPS).prop_map(Op::DeleteGroup),
        1 => (0..GROUPS).prop_map(Op::CreateGroup),
        1 => (0..GROUPS, 0..ROLES).prop_map(|(g, r)| Op::AddMember(g, r)),
        1 => (0..ITEMS, 0..ROLES, 0u8..16, proptest::option::of(0..IDS.len()))
            .prop_map(|(item, role, access, id)| Op::Share { item, role, access, id }),
    ]
}

/// How often the cases reached what the test is for (so it cannot pass by
/// testing nothing): counted over all cases, checked at the end.
struct Coverage {
    cycles_refused: AtomicUsize,
    ids_taken: AtomicUsize,
    no_such_group: AtomicUsize,
    /// Changes that took access away from some viewer on some id.
    revocations: AtomicUsize,
    /// Checked grants that only a group membership gave.
    via_groups: AtomicUsize,
    /// Checked ids shared with more than one role.
    ids_reused: AtomicUsize,
}

static COVERAGE: Coverage = Coverage {
    cycles_refused: AtomicUsize::new(0),
    ids_taken: AtomicUsize::new(0),
    no_such_group: AtomicUsize::new(0),
    revocations: AtomicUsize::new(0),
    via_groups: AtomicUsize::new(0),
    ids_reused: AtomicUsize::new(0),
};

impl Coverage {
    fn count(&self, got: &Outcome) {
        let counter = match got {
            Outcome::RoleCycle { .. } => &self.cycles_refused,
            Outcome::ShareIdTaken(_) => &self.ids_taken,
            Outcome::NoSuchGroup(_) => &self.no_such_group,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn add(counter: &AtomicUsize, n: usize) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn report(&self) -> [(&'static str, usize, usize); 6] {
        let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        // (what, how many, the least a run of CASES cases should reach)
        [
            ("cycles refused", get(&self.cycles_refused), 10),
            ("share ids taken", get(&self.ids_taken), 10),
            ("missing groups", get(&self.no_such_group), 10),
            ("revocations", get(&self.revocations), 20),
            ("grants through groups", get(&self.via_groups), 20),
            ("ids shared with several roles", get(&self.ids_reused), 20),
        ]
    }
}

/// What an operation answered, in a form both sides give.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Done,
    Shared(String),
    Count(usize),
    Was(bool),
    NoSuchGroup(String),
    RoleCycle { group: String, member: String },
    ShareIdTaken(String),
    Unexpected(String),
}

/// A grant as compared: everything a [`Grant`] says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct G {
    share_id: String,
    item_type: String,
    item_id: i64,
    owner: bool,
    names: Vec<String>,
}

impl From<&Grant> for G {
    fn from(g: &Grant) -> G {
        G {
            share_id: g.share_id.clone(),
            item_type: g.item_type.clone(),
            item_id: g.item_id,
            owner: g.access.is_owner(),
            names: g.access.names(),
        }
    }
}

/// One item of the case: its type name, raw id and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ItemRef {
    type_name: &'static str,
    id: i64,
    n: i64,
}

/// The brute-force model of one store's sharing.
#[derive(Debug, Default)]
struct Model {
    owner: i64,
    groups: BTreeSet<String>,
    /// (group, member).
    members: BTreeSet<(String, Role)>,
    /// share id → the item and the access granted to each role.
    shares: BTreeMap<String, (ItemRef, BTreeMap<Role, BTreeSet<String>>)>,
}

impl Model {
    fn roles(&self, viewer: Viewer) -> BTreeSet<Role> {
        let mut roles = BTreeSet::from([Role::Everyone]);
        if let Viewer::Account(id) = viewer {
            roles.insert(Role::Authenticated);
            roles.insert(Role::Account(id));
        }
        // Transitive closure by fixpoint.
        loop {
            let before = roles.len();
            for (group, member) in &self.members {
                if roles.contains(member) {
                    roles.insert(Role::Group(group.clone()));
                }
            }
            if roles.len() == before {
                return roles;
            }
        }
    }

    /// Whether the membership edges `edges` close a cycle: some role is
    /// (transitively) a member of itself.
    fn cyclic(edges: &BTreeSet<(String, Role)>) -> bool {
        let mut within: BTreeSet<(Role, Role)> = edges
            .iter()
            .map(|(g, m)| (m.clone(), Role::Group(g.clone())))
            .collect();
        loop {
            let mut more = Vec::new();
            for (a, b) in &within {
                for (c, d) in &within {
                    if b == c && !within.contains(&(a.clone(), d.clone())) {
                        more.push((a.clone(), d.clone()));
                    }
                }
            }
            if more.is_empty() {
                break;
            }
            within.extend(more);
        }
        within.iter().any(|(a, b)| a == b)
    }

    fn has_role(&self, role: &Role) -> bool {
        match role {
            Role::Group(g) => self.groups.contains(g),
            _ => true,
        }
    }

    fn grant(&self, viewer: Viewer, share_id: &str) -> Option<G> {
        if viewer == Viewer::Account(Id::from_raw(self.owner)) {
            let (item, _) = self.shares.get(share_id)?;
            return Some(G {
                share_id: share_id.to_string(),
                item_type: item.type_name.to_string(),
                item_id: item.id,
                owner: true,
                names: vec!["owner".to_string()],
            });
        }
        self.grant_to(&self.roles(viewer), share_id)
    }

    /// What holders of `roles` (not the owner) may do with `share_id`.
    fn grant_to(&self, roles: &BTreeSet<Role>, share_id: &str) -> Option<G> {
        let (item, by_role) = self.shares.get(share_id)?;
        let mut names = BTreeSet::new();
        let mut any = false;
        for (role, access) in by_role {
            if roles.contains(role) {
                any = true;
                names.extend(access.iter().cloned());
            }
        }
        any.then(|| {
            names.remove("read");
            let mut all = vec!["read".to_string()];
            all.extend(names);
            G {
                share_id: share_id.to_string(),
                item_type: item.type_name.to_string(),
                item_id: item.id,
                owner: false,
                names: all,
            }
        })
    }

    /// What `accessible::<type_name>(roles_of(viewer))` should answer:
    /// (grant, item id, value), by share id.
    fn accessible(&self, viewer: Viewer, type_name: &str) -> Vec<(G, i64, i64)> {
        let roles = self.roles(viewer);
        let mut out = Vec::new();
        for (share_id, (item, _)) in &self.shares {
            if item.type_name != type_name {
                continue;
            }
            // As a non-owner sees it, whoever asks: `accessible` takes roles.
            if let Some(g) = self.grant_to(&roles, share_id) {
                out.push((g, item.id, item.n));
            }
        }
        out
    }

    fn create_group(&mut self, g: &str) -> Outcome {
        self.groups.insert(g.to_string());
        Outcome::Done
    }

    fn add_member(&mut self, group: &str, member: &Role) -> Outcome {
        if !self.groups.contains(group) {
            return Outcome::NoSuchGroup(group.to_string());
        }
        if let Role::Group(m) = member
            && !self.groups.contains(m)
        {
            return Outcome::NoSuchGroup(m.clone());
        }
        let mut edges = self.members.clone();
        edges.insert((group.to_string(), member.clone()));
        if Self::cyclic(&edges) {
            return Outcome::RoleCycle {
                group: group.to_string(),
                member: member.to_string(),
            };
        }
        self.members = edges;
        Outcome::Done
    }

    fn share(&mut self, item: ItemRef, role: &Role, access: &[&str], id: &str) -> Outcome {
        if let Role::Group(g) = role
            && !self.has_role(role)
        {
            return Outcome::NoSuchGroup(g.clone());
        }
        if let Some((other, _)) = self.shares.get(id)
            && (other.type_name, other.id) != (item.type_name, item.id)
        {
            return Outcome::ShareIdTaken(id.to_string());
        }
        let mut names: BTreeSet<String> = access.iter().map(|a| a.to_string()).collect();
        names.insert("read".to_string());
        self.shares
            .entry(id.to_string())
            .or_insert_with(|| (item, BTreeMap::new()))
            .1
            .insert(role.clone(), names);
        Outcome::Shared(id.to_string())
    }

    fn remove_member(&mut self, group: &str, member: &Role) -> Outcome {
        Outcome::Was(self.members.remove(&(group.to_string(), member.clone())))
    }

    fn unshare(&mut self, id: &str, role: Option<&Role>) -> Outcome {
        let Some((_, by_role)) = self.shares.get_mut(id) else {
            return Outcome::Count(0);
        };
        let n = match role {
            Some(r) => usize::from(by_role.remove(r).is_some()),
            None => std::mem::take(by_role).len(),
        };
        if by_role.is_empty() {
            self.shares.remove(id);
        }
        Outcome::Count(n)
    }

    fn unshare_item(&mut self, item: ItemRef) -> Outcome {
        let ids: Vec<String> = self
            .shares
            .iter()
            .filter(|(_, (i, _))| (i.type_name, i.id) == (item.type_name, item.id))
            .map(|(id, _)| id.clone())
            .collect();
        let mut n = 0;
        for id in ids {
            n += self.shares.remove(&id).map_or(0, |(_, r)| r.len());
        }
        Outcome::Count(n)
    }

    fn delete_group(&mut self, g: &str) -> Outcome {
        if !self.groups.remove(g) {
            return Outcome::Was(false);
        }
        let role = Role::Group(g.to_string());
        self.members
            .retain(|(group, member)| group != g && *member != role);
        for (_, by_role) in self.shares.values_mut() {
            by_role.remove(&role);
        }
        self.shares.retain(|_, (_, by_role)| !by_role.is_empty());
        Outcome::Was(true)
    }
}

/// The site, the owner and the other accounts, made once per test.
struct Fixture {
    site: Site,
    owner: AccountInfo,
    others: Vec<AccountInfo>,
    store: Store,
}

impl Fixture {
    async fn new(dir: &std::path::Path) -> Fixture {
        let site = Site::builder(dir)
            .with(|r| {
                r.register::<Doc>().register::<Other>();
            })
            .init(SiteConfig {
                domain: "example.com".into(),
                // Commits survive a crash, not power loss: fast enough to
                // commit each operation on its own.
                stores: StoresConfig {
                    durability: "process".into(),
                    ..StoresConfig::default()
                },
                ..SiteConfig::default()
            })
            .await
            .unwrap();
        let owner = site.accounts().create("alice", PW, false).await.unwrap();
        let mut others = Vec::new();
        for name in ["bob", "carol", "dave"] {
            others.push(site.accounts().create(name, PW, false).await.unwrap());
        }
        let store = site.stores().user_store_unchecked(owner.id).await.unwrap();
        Fixture {
            site,
            owner,
            others,
            store,
        }
    }

    fn role(&self, i: usize) -> Role {
        match i {
            0 => Role::Everyone,
            1 => Role::Authenticated,
            2 => Role::Account(self.owner.id),
            3..6 => Role::Account(self.others[i - 3].id),
            _ => Role::Group(group(i - 6)),
        }
    }

    fn viewers(&self) -> Vec<Viewer> {
        let mut v = vec![Viewer::Anonymous, Viewer::Account(self.owner.id)];
        v.extend(self.others.iter().map(|a| Viewer::Account(a.id)));
        v
    }

    /// Empties the owner's sharing through the API (so the generation
    /// advances, as in any use) and makes the case's items anew.
    async fn reset(&self) -> Vec<ItemRef> {
        self.store
            .transact(|tx| {
                for (g, _) in tx.groups()? {
                    tx.delete_group(&g)?;
                }
                for s in tx.shares()? {
                    tx.unshare(&s.share_id, None)?;
                }
                assert!(tx.groups()?.is_empty() && tx.shares()?.is_empty());
                tx.delete_where(mantle_store::Filter::<Doc>::all())?;
                tx.delete_where(mantle_store::Filter::<Other>::all())?;
                let mut items = Vec::new();
                for n in 0..ITEMS as i64 {
                    items.push(if (n as usize) < DOCS {
                        ItemRef {
                            type_name: Doc::TYPE_NAME,
                            id: tx.insert(&Doc { n })?.raw(),
                            n,
                        }
                    } else {
                        ItemRef {
                            type_name: Other::TYPE_NAME,
                            id: tx.insert(&Other { n })?.raw(),
                            n,
                        }
                    });
                }
                Ok::<_, SiteError>(items)
            })
            .await
            .unwrap()
    }
}

fn group(i: usize) -> String {
    format!("g{i}")
}

fn access_of(bits: u8) -> Vec<&'static str> {
    (0..ACCESS.len())
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| ACCESS[i])
        .collect()
}

fn outcome<T>(r: Result<T, SiteError>, done: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => done(v),
        Err(SiteError::NoSuchGroup(g)) => Outcome::NoSuchGroup(g),
        Err(SiteError::RoleCycle { group, member }) => Outcome::RoleCycle { group, member },
        Err(SiteError::ShareIdTaken(id)) => Outcome::ShareIdTaken(id),
        Err(e) => Outcome::Unexpected(e.to_string()),
    }
}

/// An operation with everything it names made concrete.
#[derive(Debug, Clone)]
enum Step {
    CreateGroup(String),
    AddMember(String, Role),
    Share {
        item: ItemRef,
        role: Role,
        access: Vec<&'static str>,
        id: Option<String>,
    },
    RemoveMember(String, Role),
    Unshare(String, Option<Role>),
    UnshareItem(ItemRef),
    DeleteGroup(String),
    /// A pick among existing things when there are none.
    Nothing,
}

impl Step {
    /// What `op` does in the state of `model`.
    fn of(op: &Op, fx: &Fixture, model: &Model, items: &[ItemRef], ids: &[String]) -> Step {
        match *op {
            Op::CreateGroup(g) => Step::CreateGroup(group(g)),
            Op::AddMember(g, r) => Step::AddMember(group(g), fx.role(r)),
            Op::Share {
                item,
                role,
                access,
                id,
            } => Step::Share {
                item: items[item],
                role: fx.role(role),
                access: access_of(access),
                id: id.map(|i| IDS[i].to_string()),
            },
            Op::RemoveMember(g, r) => Step::RemoveMember(group(g), fx.role(r)),
            Op::RemoveExisting(i) => match model.members.iter().nth(i % model.members.len().max(1))
            {
                Some((g, m)) => Step::RemoveMember(g.clone(), m.clone()),
                None => Step::Nothing,
            },
            Op::Unshare(i, r) => Step::Unshare(
                ids.get(i)
                    .cloned()
                    .unwrap_or_else(|| IDS[i % IDS.len()].into()),
                r.map(|r| fx.role(r)),
            ),
            Op::UnshareExisting(i, r) => {
                match model.shares.iter().nth(i % model.shares.len().max(1)) {
                    Some((id, (_, by_role))) => Step::Unshare(
                        id.clone(),
                        r.map(|r| by_role.keys().nth(r % by_role.len()).unwrap().clone()),
                    ),
                    None => Step::Nothing,
                }
            }
            Op::UnshareItem(i) => Step::UnshareItem(items[i]),
            Op::DeleteGroup(g) => Step::DeleteGroup(group(g)),
        }
    }
}

/// Applies `op` to the store (one transaction) and to the model; both
/// must answer the same. Answers the step taken.
async fn apply(
    fx: &Fixture,
    model: &mut Model,
    items: &[ItemRef],
    ids: &mut Vec<String>,
    op: &Op,
) -> Result<Step, TestCaseError> {
    let step = Step::of(op, fx, model, items, ids);
    let store = &fx.store;
    let (got, expected) = match step.clone() {
        Step::Nothing => return Ok(step),
        Step::CreateGroup(g) => {
            let n = g.clone();
            let got = store.transact(move |tx| tx.create_group(&n)).await;
            (outcome(got, |_| Outcome::Done), model.create_group(&g))
        }
        Step::AddMember(g, role) => {
            let (n, r) = (g.clone(), role.clone());
            let got = store.transact(move |tx| tx.add_member(&n, &r)).await;
            (
                outcome(got, |()| Outcome::Done),
                model.add_member(&g, &role),
            )
        }
        Step::Share {
            item,
            role,
            access,
            id,
        } => {
            let (r, a, i) = (role.clone(), access.clone(), id.clone());
            let got = store
                .transact(move |tx| {
                    if item.type_name == Doc::TYPE_NAME {
                        tx.share(Id::<Doc>::from_raw(item.id), &r, &a, i.as_deref())
                    } else {
                        tx.share(Id::<Other>::from_raw(item.id), &r, &a, i.as_deref())
                    }
                })
                .await;
            let got = outcome(got, Outcome::Shared);
            // A new random id: the model takes the one the store chose.
            let id = match (id, &got) {
                (Some(id), _) => id,
                (None, Outcome::Shared(new)) => new.clone(),
                (None, _) => "never-chosen".to_string(),
            };
            if !ids.contains(&id) {
                ids.push(id.clone());
            }
            (got, model.share(item, &role, &access, &id))
        }
        Step::RemoveMember(g, role) => {
            let (n, r) = (g.clone(), role.clone());
            let got = store.transact(move |tx| tx.remove_member(&n, &r)).await;
            (outcome(got, Outcome::Was), model.remove_member(&g, &role))
        }
        Step::Unshare(id, role) => {
            let (s, r) = (id.clone(), role.clone());
            let got = store.transact(move |tx| tx.unshare(&s, r.as_ref())).await;
            (
                outcome(got, Outcome::Count),
                model.unshare(&id, role.as_ref()),
            )
        }
        Step::UnshareItem(item) => {
            let got = store
                .transact(move |tx| {
                    if item.type_name == Doc::TYPE_NAME {
                        tx.unshare_item(Id::<Doc>::from_raw(item.id))
                    } else {
                        tx.unshare_item(Id::<Other>::from_raw(item.id))
                    }
                })
                .await;
            (outcome(got, Outcome::Count), model.unshare_item(item))
        }
        Step::DeleteGroup(g) => {
            let n = g.clone();
            let got = store.transact(move |tx| tx.delete_group(&n)).await;
            (outcome(got, Outcome::Was), model.delete_group(&g))
        }
    };
    prop_assert_eq!(&got, &expected, "{:?}", step);
    COVERAGE.count(&got);
    Ok(step)
}

/// The share ids worth asking about: the fixed ones, every id used so far
/// (withdrawn ones included) and some that never existed.
fn ids_to_check(ids: &[String]) -> Vec<String> {
    let mut all: BTreeSet<String> = IDS.iter().map(|s| s.to_string()).collect();
    all.extend(ids.iter().cloned());
    all.insert("unknown".into());
    all.insert("never-chosen".into());
    all.into_iter().collect()
}

/// Grants through the cached enforcement point, for every viewer and id.
async fn check_cached_grants(
    fx: &Fixture,
    model: &Model,
    ids: &[String],
    after: &str,
) -> Result<(), TestCaseError> {
    for viewer in fx.viewers() {
        for id in ids_to_check(ids) {
            let got = match fx.site.sharing().grant(viewer, fx.owner.id, &id).await {
                Ok(g) => Some(G::from(&g)),
                Err(SiteError::NoSuchShare(s)) if s == id => None,
                Err(e) => return Err(TestCaseError::fail(format!("grant {id}: {e}"))),
            };
            prop_assert_eq!(
                got,
                model.grant(viewer, &id),
                "site.sharing().grant({:?}, owner, {}) after {}",
                viewer,
                id,
                after
            );
        }
    }
    Ok(())
}

/// Everything read in one transaction: each viewer's roles, what they may
/// see of each type, and their grant on every id.
async fn check_reads(fx: &Fixture, model: &Model, ids: &[String]) -> Result<(), TestCaseError> {
    let owner = fx.owner.id;
    let reused = model.shares.values().filter(|(_, r)| r.len() > 1).count();
    Coverage::add(&COVERAGE.ids_reused, reused);
    for viewer in fx.viewers() {
        let check = ids_to_check(ids);
        let mut base = model.roles(viewer);
        base.retain(|r| !matches!(r, Role::Group(_)));
        let via_groups = check
            .iter()
            .filter(|id| {
                viewer != Viewer::Account(owner)
                    && model.grant(viewer, id).is_some()
                    && model.grant_to(&base, id).is_none()
            })
            .count();
        Coverage::add(&COVERAGE.via_groups, via_groups);
        type Read = (
            BTreeSet<Role>,
            Vec<(G, i64, i64)>,
            Vec<(G, i64, i64)>,
            Vec<Option<G>>,
        );
        let (roles, docs, others, grants): Read = fx
            .store
            .read(move |r| {
                let roles = r.roles_of(viewer)?;
                let docs = r
                    .accessible::<Doc>(&roles)?
                    .iter()
                    .map(|(g, d)| (G::from(g), d.id().raw(), d.n))
                    .collect();
                let others = r
                    .accessible::<Other>(&roles)?
                    .iter()
                    .map(|(g, o)| (G::from(g), o.id().raw(), o.n))
                    .collect();
                let mut grants = Vec::new();
                for id in &check {
                    grants.push(r.grant(viewer, owner, id)?.as_ref().map(G::from));
                }
                mantle_store::ok((roles.into_iter().collect(), docs, others, grants))
            })
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&roles, &model.roles(viewer), "roles_of({:?})", viewer);
        prop_assert_eq!(
            docs,
            model.accessible(viewer, Doc::TYPE_NAME),
            "accessible::<Doc>(roles_of({:?}))",
            viewer
        );
        prop_assert_eq!(
            others,
            model.accessible(viewer, Other::TYPE_NAME),
            "accessible::<Other>(roles_of({:?}))",
            viewer
        );
        let expected: Vec<Option<G>> = ids_to_check(ids)
            .iter()
            .map(|id| model.grant(viewer, id))
            .collect();
        prop_assert_eq!(grants, expected, "grants of {:?}", viewer);
        // The enforcement point's list (cached roles; the owner sees every
        // shared item of hers, with every access).
        let listed: Vec<(G, i64, i64)> = fx
            .site
            .sharing()
            .accessible::<Doc>(viewer, owner)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .iter()
            .map(|s| (G::from(&s.grant), s.item().id().raw(), s.n))
            .collect();
        let expected = if viewer == Viewer::Account(owner) {
            model
                .shares
                .iter()
                .filter(|(_, (item, _))| item.type_name == Doc::TYPE_NAME)
                .map(|(id, (item, _))| (model.grant(viewer, id).unwrap(), item.id, item.n))
                .collect()
        } else {
            model.accessible(viewer, Doc::TYPE_NAME)
        };
        prop_assert_eq!(listed, expected, "site.sharing().accessible({:?})", viewer);
    }
    check_cached_grants(fx, model, ids, "building").await
}

/// The model's grant of every viewer on every id worth checking.
fn all_grants(fx: &Fixture, model: &Model, ids: &[String]) -> Vec<Option<G>> {
    let mut out = Vec::new();
    for viewer in fx.viewers() {
        for id in ids_to_check(ids) {
            out.push(model.grant(viewer, &id));
        }
    }
    out
}

async fn run_case(fx: &Fixture, build: &[Op], changes: &[Op]) -> Result<(), TestCaseError> {
    let items = fx.reset().await;
    let mut model = Model {
        owner: fx.owner.id.raw(),
        ..Model::default()
    };
    let mut ids = Vec::new();
    for op in build {
        apply(fx, &mut model, &items, &mut ids, op).await?;
    }
    // Also fills the role cache of every viewer.
    check_reads(fx, &model, &ids).await?;
    for (i, op) in changes.iter().enumerate() {
        let before = all_grants(fx, &model, &ids);
        let step = apply(fx, &mut model, &items, &mut ids, op).await?;
        let after = all_grants(fx, &model, &ids);
        let revoked = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| match (b, a) {
                (Some(b), Some(a)) => a.names.len() < b.names.len(),
                (Some(_), None) => true,
                _ => false,
            })
            .count();
        Coverage::add(&COVERAGE.revocations, revoked);
        check_cached_grants(fx, &model, &ids, &format!("change {i}: {step:?}")).await?;
    }
    check_reads(fx, &model, &ids).await
}

#[test]
fn sharing_matches_a_brute_force_model() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = rt.block_on(Fixture::new(dir.path()));
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(build_op(), 8..40),
        proptest::collection::vec(any_op(), 1..12),
    );
    let result = runner.run(&strategy, |(build, changes)| {
        rt.block_on(run_case(&fx, &build, &changes))
    });
    rt.block_on(fx.site.close());
    if let Err(e) = result {
        panic!("{e}");
    }
    for (what, n, least) in COVERAGE.report() {
        eprintln!("{what}: {n}");
        assert!(
            n >= least,
            "only {n} {what} in {CASES} cases (expected {least} or more)"
        );
    }
}

/// The model itself: cycles are found however long, and roles close
/// transitively.
#[test]
fn the_model_closes_and_finds_cycles() {
    let r = |g: &str| Role::Group(g.to_string());
    let mut m = Model::default();
    for g in ["a", "b", "c"] {
        m.create_group(g);
    }
    let alice = Id::from_raw(7);
    assert_eq!(m.add_member("a", &Role::Account(alice)), Outcome::Done);
    assert_eq!(m.add_member("b", &r("a")), Outcome::Done);
    assert_eq!(m.add_member("c", &r("b")), Outcome::Done);
    assert!(matches!(
        m.add_member("a", &r("c")),
        Outcome::RoleCycle { .. }
    ));
    assert!(matches!(
        m.add_member("a", &r("a")),
        Outcome::RoleCycle { .. }
    ));
    assert_eq!(m.add_member("a", &r("x")), Outcome::NoSuchGroup("x".into()));
    let roles = m.roles(Viewer::Account(alice));
    assert!(roles.contains(&r("c")) && roles.len() == 6, "{roles:?}");
    assert_eq!(m.roles(Viewer::Anonymous), BTreeSet::from([Role::Everyone]));
}
