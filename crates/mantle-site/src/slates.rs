//! Slates: per-user named JSON documents ("A replacement for sessions").
//!
//! Each slate is one item in its user's store. Its version is the item's
//! revision, so a replace names the version it replaces and a stale one is
//! refused: no request ever locks a whole bag of state. A workflow slate may
//! carry a time to live: past it, it reads as absent, and the user store's
//! scheduler deletes it, touching nothing else.

use std::time::Duration;

use mantle_store::{Id, Stored, Timestamp};
use serde::Serialize;

use mantle_store::Registry;

use crate::items::{Account, Slate};
use crate::stores::Stores;
use crate::{Result, SiteError};

/// A slate as read or written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlateDoc {
    /// Its name.
    pub name: String,
    /// The document.
    pub body: serde_json::Value,
    /// Its version: 1 when created, one more at each replace.
    pub version: i64,
    /// When it expires, if it is a workflow slate with a time to live.
    pub expires: Option<Timestamp>,
}

/// What a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing was said: create if absent; refuse to replace
    /// ([`SiteError::SlateVersionRequired`]).
    Unspecified,
    /// Must not exist (create only).
    Absent,
    /// Must exist at this version.
    Version(i64),
}

/// Checks a slate name: 1–128 of `A-Z a-z 0-9 _ . -`.
pub fn check_slate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SiteError::InvalidSlateName(
            name.chars().take(140).collect(),
        ))
    }
}

fn live(slate: &Stored<Slate>, now: Timestamp) -> bool {
    slate.expires.is_none_or(|t| t > now)
}

fn doc(slate: &Stored<Slate>) -> SlateDoc {
    SlateDoc {
        name: slate.name.clone(),
        // Bodies are written by `put_slate` from a `Value`, so they parse.
        body: serde_json::from_str(&slate.body).unwrap_or(serde_json::Value::Null),
        version: slate.revision(),
        expires: slate.expires,
    }
}

/// Every account's slates (see [`Site::slates`](crate::Site::slates)).
///
/// ```no_run
/// # async fn f(site: mantle_site::Site, me: mantle_store::Id<mantle_site::Account>) -> mantle_site::Result<()> {
/// use mantle_site::Expect;
/// let (doc, created) = site
///     .slates()
///     .put(me, "user-info", serde_json::json!({"theme": "dark"}), Expect::Absent, None)
///     .await?;
/// assert!(created && doc.version == 1);
/// # Ok(()) }
/// ```
pub struct Slates {
    stores: Stores,
}

/// Registers the slate item and its expiry task.
pub(crate) fn register(registry: &mut Registry) {
    registry
        .register::<Slate>()
        .task::<Slate>("expire", |tx, slate| {
            if slate.expires.is_some_and(|t| t <= Timestamp::now()) {
                tx.delete(slate.id())?;
            }
            Ok(())
        });
}

impl Slates {
    pub(crate) fn new(stores: Stores) -> Self {
        Self { stores }
    }

    /// Reads a slate of an account (`None` if absent or expired).
    pub async fn get(&self, account: Id<Account>, name: &str) -> Result<Option<SlateDoc>> {
        check_slate_name(name)?;
        let store = self.stores.user_store_unchecked(account).await?;
        let now = Timestamp::now();
        // One indexed lookup: run it here (see `Store::read_now`).
        store.read_now(|r| {
            Ok(r.query::<Slate>()
                .filter(Slate::NAME.eq(name))
                .first()?
                .filter(|s| live(s, now))
                .map(|s| doc(&s)))
        })
    }

    /// Names of an account's live slates.
    pub async fn names(&self, account: Id<Account>) -> Result<Vec<String>> {
        let store = self.stores.user_store_unchecked(account).await?;
        let now = Timestamp::now();
        store
            .read(move |r| {
                Ok(r.query::<Slate>()
                    .order_by(Slate::NAME.asc())
                    .all()?
                    .into_iter()
                    .filter(|s| live(s, now))
                    .map(|s| s.into_inner().name)
                    .collect())
            })
            .await
    }

    /// Creates or replaces a slate, atomically, under `expect`. Returns the
    /// slate as written and whether it was created.
    pub async fn put(
        &self,
        account: Id<Account>,
        name: &str,
        body: serde_json::Value,
        expect: Expect,
        ttl: Option<Duration>,
    ) -> Result<(SlateDoc, bool)> {
        check_slate_name(name)?;
        let store = self.stores.user_store_unchecked(account).await?;
        let name = name.to_string();
        let text = body.to_string();
        store
            .transact(move |tx| {
                let now = Timestamp::now();
                let expires = ttl.map(|d| now + d);
                let existing = tx
                    .query::<Slate>()
                    .filter(Slate::NAME.eq(name.as_str()))
                    .first()?;
                // An expired slate is gone, whether or not it was swept yet.
                let existing = match existing {
                    Some(s) if !live(&s, now) => {
                        tx.delete(s.id())?;
                        None
                    }
                    other => other,
                };
                let (slate, created) = match (existing, expect) {
                    (None, Expect::Version(v)) => {
                        return Err(SiteError::SlateConflict {
                            name,
                            expected: v,
                            current: 0,
                        });
                    }
                    (None, _) => {
                        let id = tx.insert(&Slate {
                            name: name.clone(),
                            body: text,
                            expires,
                        })?;
                        (tx.get(id)?.expect("inserted above"), true)
                    }
                    (Some(_), Expect::Unspecified) => {
                        return Err(SiteError::SlateVersionRequired(name));
                    }
                    (Some(s), Expect::Absent) => {
                        return Err(SiteError::SlateConflict {
                            name,
                            expected: 0,
                            current: s.revision(),
                        });
                    }
                    (Some(mut s), Expect::Version(v)) => {
                        if s.revision() != v {
                            return Err(SiteError::SlateConflict {
                                name,
                                expected: v,
                                current: s.revision(),
                            });
                        }
                        s.body = text;
                        s.expires = expires;
                        tx.update(&mut s)?;
                        (s, false)
                    }
                };
                if let Some(at) = expires {
                    tx.schedule(slate.id(), "expire", at, None)?;
                }
                Ok((doc(&slate), created))
            })
            .await
    }

    /// Deletes a slate; with `Some(version)`, only at that version.
    pub async fn delete(
        &self,
        account: Id<Account>,
        name: &str,
        version: Option<i64>,
    ) -> Result<()> {
        check_slate_name(name)?;
        let store = self.stores.user_store_unchecked(account).await?;
        let name = name.to_string();
        store
            .transact(move |tx| {
                let now = Timestamp::now();
                let slate = tx
                    .query::<Slate>()
                    .filter(Slate::NAME.eq(name.as_str()))
                    .first()?
                    .filter(|s| live(s, now))
                    .ok_or_else(|| SiteError::NoSuchSlate(name.clone()))?;
                if let Some(v) = version
                    && slate.revision() != v
                {
                    return Err(SiteError::SlateConflict {
                        name,
                        expected: v,
                        current: slate.revision(),
                    });
                }
                tx.delete(slate.id())?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slate_names_follow_the_documented_alphabet() {
        assert!(check_slate_name("user-info").is_ok());
        assert!(check_slate_name("a.b_c-9").is_ok());
        assert!(check_slate_name(&"x".repeat(128)).is_ok());
        assert!(check_slate_name(&"x".repeat(129)).is_err());
        assert!(check_slate_name("").is_err());
        assert!(check_slate_name("a/b").is_err());
        assert!(check_slate_name("é").is_err());
    }
}
