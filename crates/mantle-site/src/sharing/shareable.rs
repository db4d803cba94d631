//! The item types offerings declare shareable (`Offering::shareable`),
//! with what it takes to read and write them as JSON by type name: for
//! the web front's shared pages and its Shoji API, which know types only
//! by name.

use std::sync::Arc;

use mantle_store::{Filter, Id, Item, ReadTx, Stored, Tx};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::read::{ReadShares, ShareInfo};
use super::roles::Role;
use super::write::ShareItems;
use crate::{Result, SiteError};

/// An item as JSON: its id, revision and attributes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    /// The item's raw id.
    pub id: i64,
    /// Its revision (1 when inserted, one more at each update).
    pub revision: i64,
    /// Its attributes.
    pub body: Value,
}

type GetFn = fn(&ReadTx, i64) -> Result<Option<Entity>>;
type ListFn = fn(&ReadTx, &[(String, Value)], u64, u64) -> Result<(Vec<Entity>, u64)>;
type SaveFn = fn(&mut Tx, i64, Value, Save, Option<i64>) -> Result<Entity>;
type InsertFn = fn(&mut Tx, Value) -> Result<Entity>;
type DeleteFn = fn(&mut Tx, i64) -> Result<bool>;
type ShareFn = fn(&mut Tx, i64, &Role, &[&str], Option<&str>) -> Result<String>;
type SharesOfFn = fn(&ReadTx, i64) -> Result<Vec<ShareInfo>>;

/// How a body is saved over an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Save {
    /// The body replaces every attribute (HTTP `PUT`).
    Replace,
    /// The body's members replace those attributes only (HTTP `PATCH`).
    Merge,
}

/// One shareable item type: its name, its offering, and its JSON form.
pub struct ShareableType {
    /// The item type's name.
    pub type_name: &'static str,
    /// The offering that declared it.
    pub offering: String,
    /// Its attributes' names (the ones a catalog can be filtered on).
    pub attributes: Vec<&'static str>,
    get: GetFn,
    list: ListFn,
    save: SaveFn,
    insert: InsertFn,
    delete: DeleteFn,
    share: ShareFn,
    shares_of: SharesOfFn,
}

impl std::fmt::Debug for ShareableType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareableType")
            .field("type_name", &self.type_name)
            .field("offering", &self.offering)
            .finish()
    }
}

impl ShareableType {
    /// The item `id`, if it exists.
    pub fn get(&self, r: &ReadTx, id: i64) -> Result<Option<Entity>> {
        (self.get)(r, id)
    }

    /// The items whose attributes equal `filters` (name, JSON value), in
    /// id order, `limit` from `offset`; and how many match in all.
    pub fn list(
        &self,
        r: &ReadTx,
        filters: &[(String, Value)],
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<Entity>, u64)> {
        (self.list)(r, filters, offset, limit)
    }

    /// Saves `body` over the item `id`, if it is still at `revision` (when
    /// given; [`mantle_store::Error::Conflict`] otherwise).
    pub fn save(
        &self,
        tx: &mut Tx,
        id: i64,
        body: Value,
        how: Save,
        revision: Option<i64>,
    ) -> Result<Entity> {
        (self.save)(tx, id, body, how, revision)
    }

    /// Makes a new item from `body`.
    pub fn insert(&self, tx: &mut Tx, body: Value) -> Result<Entity> {
        (self.insert)(tx, body)
    }

    /// Deletes the item `id` and its shares; whether it existed.
    pub fn delete(&self, tx: &mut Tx, id: i64) -> Result<bool> {
        (self.delete)(tx, id)
    }

    /// Shares the item `id` with `role` for `access` under `share_id` (a
    /// new random one if `None`): [`ShareItems::share`] for a type known
    /// by name. Answers the share id.
    pub fn share(
        &self,
        tx: &mut Tx,
        id: i64,
        role: &Role,
        access: &[&str],
        share_id: Option<&str>,
    ) -> Result<String> {
        (self.share)(tx, id, role, access, share_id)
    }

    /// Every share of the item `id` ([`ReadShares::shares_of`] for a type
    /// known by name).
    pub fn shares_of(&self, r: &ReadTx, id: i64) -> Result<Vec<ShareInfo>> {
        (self.shares_of)(r, id)
    }
}

/// The shareable types of a site, by name (an extension filled by
/// `Offering::shareable`).
#[derive(Debug, Clone, Default)]
pub struct ShareableTypes(Vec<Arc<ShareableType>>);

impl ShareableTypes {
    /// Adds `T`, declared by `offering`.
    pub fn add<T>(&mut self, offering: &str)
    where
        T: Item + Serialize + DeserializeOwned,
    {
        self.0.retain(|t| t.type_name != T::TYPE_NAME);
        self.0.push(Arc::new(ShareableType {
            type_name: T::TYPE_NAME,
            offering: offering.to_string(),
            attributes: T::attributes().iter().map(|a| a.name).collect(),
            get: get::<T>,
            list: list::<T>,
            save: save::<T>,
            insert: insert::<T>,
            delete: delete::<T>,
            share: share::<T>,
            shares_of: shares_of::<T>,
        }));
    }

    /// The type named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<ShareableType>> {
        self.0.iter().find(|t| t.type_name == name)
    }

    /// Every type, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ShareableType>> {
        self.0.iter()
    }
}

fn entity<T: Serialize>(item: &Stored<T>) -> Result<Entity> {
    let body = serde_json::to_value(&**item).map_err(|e| mantle_store::Error::Encode {
        what: "entity",
        reason: e.to_string(),
    })?;
    Ok(Entity {
        id: item.id().raw(),
        revision: item.revision(),
        body,
    })
}

fn decode<T: DeserializeOwned>(body: Value) -> Result<T> {
    serde_json::from_value(body).map_err(|e| SiteError::BadEntity(e.to_string()))
}

/// Refuses a change made against `revision` of an item now at another.
pub(super) fn check_revision<T: Item>(item: &Stored<T>, revision: Option<i64>) -> Result<()> {
    match revision {
        Some(r) if r != item.revision() => Err(mantle_store::Error::Conflict {
            type_name: T::TYPE_NAME,
            id: item.id().raw(),
            expected: r,
            actual: item.revision(),
        }
        .into()),
        _ => Ok(()),
    }
}

fn get<T: Item + Serialize>(r: &ReadTx, id: i64) -> Result<Option<Entity>> {
    r.get(Id::<T>::from_raw(id))?
        .map(|item| entity(&item))
        .transpose()
}

fn list<T: Item + Serialize>(
    r: &ReadTx,
    filters: &[(String, Value)],
    offset: u64,
    limit: u64,
) -> Result<(Vec<Entity>, u64)> {
    let mut filter = Filter::<T>::all();
    for (name, value) in filters {
        let f = Filter::<T>::attribute_eq(name, value).ok_or_else(|| SiteError::BadFilter {
            attribute: name.clone(),
            value: value.to_string(),
        })?;
        filter = filter.and(f);
    }
    let total = r.query::<T>().filter(filter.clone()).count()?;
    let items = r
        .query::<T>()
        .filter(filter)
        .offset(offset)
        .limit(limit)
        .all()?;
    let list = items.iter().map(entity).collect::<Result<Vec<_>>>()?;
    Ok((list, total))
}

fn save<T: Item + Serialize + DeserializeOwned>(
    tx: &mut Tx,
    id: i64,
    body: Value,
    how: Save,
    revision: Option<i64>,
) -> Result<Entity> {
    let mut item = tx
        .get(Id::<T>::from_raw(id))?
        .ok_or(mantle_store::Error::NoSuchItem {
            type_name: T::TYPE_NAME,
            id,
        })?;
    check_revision(&item, revision)?;
    let body = match (how, body) {
        (Save::Merge, Value::Object(changes)) => {
            let mut current = entity(&item)?.body;
            if let Value::Object(fields) = &mut current {
                for (k, v) in changes {
                    if !fields.contains_key(&k) {
                        return Err(SiteError::BadEntity(format!("unknown attribute {k:?}")));
                    }
                    fields.insert(k, v);
                }
            }
            current
        }
        (Save::Merge, _) => {
            return Err(SiteError::BadEntity(
                "a PATCH body is an object of the attributes to change".into(),
            ));
        }
        (Save::Replace, body) => body,
    };
    *item = decode::<T>(body)?;
    tx.update(&mut item)?;
    entity(&item)
}

fn insert<T: Item + Serialize + DeserializeOwned>(tx: &mut Tx, body: Value) -> Result<Entity> {
    let value = decode::<T>(body)?;
    let id = tx.insert(&value)?;
    let item = tx.get(id)?.ok_or(mantle_store::Error::NoSuchItem {
        type_name: T::TYPE_NAME,
        id: id.raw(),
    })?;
    entity(&item)
}

fn delete<T: Item>(tx: &mut Tx, id: i64) -> Result<bool> {
    let id = Id::<T>::from_raw(id);
    tx.unshare_item(id)?;
    Ok(tx.delete(id)?)
}

fn share<T: Item>(
    tx: &mut Tx,
    id: i64,
    role: &Role,
    access: &[&str],
    share_id: Option<&str>,
) -> Result<String> {
    tx.share(Id::<T>::from_raw(id), role, access, share_id)
}

fn shares_of<T: Item>(r: &ReadTx, id: i64) -> Result<Vec<ShareInfo>> {
    Ok(r.shares_of(Id::<T>::from_raw(id))?)
}
