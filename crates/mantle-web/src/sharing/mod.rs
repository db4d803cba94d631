//! Shared items on the web: pages at `/users/{login}/{share_id}` (and an
//! owner's default share at `/users/{login}`) and the Shoji catalog API
//! under `/api/shoji/`.
//!
//! Another user's items are reached only through
//! [`Sharing`](mantle_site::sharing::Sharing) (`site.sharing()`), with the
//! viewer the request authenticates (anonymous without a token); a user's
//! own items through their own store. Every refusal of a shared item —
//! unknown or disabled owner, no such share, not permitted, a type whose
//! offering is not installed or that has no page — is one answer (the
//! same status and body), so nobody learns what exists.
//!
//! - [`pages`]: the HTML pages an offering declares with
//!   [`WebOffering::share_page`](crate::WebOffering::share_page) and
//!   [`WebOffering::default_share`](crate::WebOffering::default_share).
//! - [`shoji`]: the root catalog, what is shared with the user, and
//!   shared entities.
//! - [`mine`]: the user's own items, as catalogs and entities.
//! - [`manage`]: the shares of an item, and the user's groups.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use mantle_site::sharing::{Entity, Grant, ShareableType, Viewer};
use mantle_site::{Account, Site, SiteError};
use mantle_store::{Id, ReadTx, Tx};

use crate::{ApiError, AppState};

mod manage;
mod mine;
mod pages;
mod shoji;

pub use pages::not_found as not_found_page;

/// Where the Shoji API is mounted.
pub(crate) const API: &str = "/api/shoji";

/// The page templates offerings declared for their shareable types, and
/// their default shares (see
/// [`WebOffering::share_page`](crate::WebOffering::share_page)).
#[derive(Debug, Default)]
pub struct SharePages {
    /// (offering, item type name, template name), in declaration order.
    pages: Vec<(String, String, String)>,
    /// (offering, share id), in declaration order.
    defaults: Vec<(String, String)>,
}

impl SharePages {
    /// Declares `template` as `offering`'s page for shared items of type
    /// `type_name` (a later declaration for the same type wins).
    pub fn page(&mut self, offering: &str, type_name: &str, template: &str) -> &mut Self {
        self.pages.retain(|(_, t, _)| t != type_name);
        self.pages.push((
            offering.to_string(),
            type_name.to_string(),
            template.to_string(),
        ));
        self
    }

    /// Declares `share_id` as `offering`'s default share: what
    /// `/users/{login}` shows.
    pub fn default_share(&mut self, offering: &str, share_id: &str) -> &mut Self {
        self.defaults
            .push((offering.to_string(), share_id.to_string()));
        self
    }

    /// The template of the page for `type_name`, if an installed offering
    /// declared one.
    fn template(&self, site: &Site, type_name: &str) -> Option<&str> {
        self.pages
            .iter()
            .find(|(o, t, _)| t == type_name && site.offerings().is_installed(o))
            .map(|(_, _, template)| template.as_str())
    }

    /// The default share ids of installed offerings, in declaration order.
    fn defaults<'a>(&'a self, site: &'a Site) -> impl Iterator<Item = &'a str> + 'a {
        self.defaults
            .iter()
            .filter(|(o, _)| site.offerings().is_installed(o))
            .map(|(_, id)| id.as_str())
    }
}

/// The sharing routes: pages and the Shoji API.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/{login}", get(pages::default_page))
        .route("/users/{login}/{share_id}", get(pages::page))
        .route("/api/shoji", get(shoji::root))
        .route("/api/shoji/", get(shoji::root))
        .route("/api/shoji/shared", get(shoji::shared))
        .route("/api/shoji/shared/", get(shoji::shared))
        .route(
            "/api/shoji/users/{login}/{share_id}",
            get(shoji::get_shared)
                .put(shoji::put_shared)
                .patch(shoji::patch_shared)
                .delete(shoji::delete_shared),
        )
        .route(
            "/api/shoji/mine/{type_name}",
            get(mine::catalog).post(mine::create),
        )
        .route(
            "/api/shoji/mine/{type_name}/",
            get(mine::catalog).post(mine::create),
        )
        .route(
            "/api/shoji/mine/{type_name}/{id}",
            get(mine::get)
                .put(mine::put)
                .patch(mine::patch)
                .delete(mine::delete),
        )
        .route(
            "/api/shoji/mine/{type_name}/{id}/shares",
            get(manage::shares).post(manage::share),
        )
        .route(
            "/api/shoji/mine/{type_name}/{id}/shares/{share_id}",
            delete(manage::unshare),
        )
        .route(
            "/api/shoji/groups",
            get(manage::groups).post(manage::create_group),
        )
        .route(
            "/api/shoji/groups/{name}",
            get(manage::group).delete(manage::delete_group),
        )
        .route("/api/shoji/groups/{name}/members", post(manage::add_member))
        .route(
            "/api/shoji/groups/{name}/members/{role}",
            delete(manage::remove_member),
        )
}

/// A shared item as one viewer may see it.
pub(crate) struct Opened {
    /// Whose item it is.
    pub owner: Id<Account>,
    /// What the viewer may do with it.
    pub grant: Grant,
    /// The item.
    pub entity: Entity,
    /// Its type.
    pub ty: Arc<ShareableType>,
}

/// The refusal of every shared item that cannot be had.
pub(crate) fn no_such_share(share_id: &str) -> SiteError {
    SiteError::NoSuchShare(share_id.to_string())
}

/// The shareable type `name`, if its offering is installed.
fn installed_type(site: &Site, name: &str) -> Option<Arc<ShareableType>> {
    site.sharing()
        .types()
        .get(name)
        .filter(|t| site.offerings().is_installed(&t.offering))
        .cloned()
}

/// The account whose share `share_id` the URL's `login` names.
async fn owner_of(site: &Site, login: &str, share_id: &str) -> Result<Id<Account>, SiteError> {
    site.sharing()
        .owner(login)
        .await
        .ok_or_else(|| no_such_share(share_id))
}

/// Opens `login`'s share `share_id` for `viewer`, through the sharing
/// layer: [`SiteError::NoSuchShare`] for every refusal.
pub(crate) async fn open(
    site: &Site,
    viewer: Viewer,
    login: &str,
    share_id: &str,
) -> Result<Opened, SiteError> {
    let owner = owner_of(site, login, share_id).await?;
    let this = site.clone();
    let (grant, entity, ty) = site
        .sharing()
        .read(
            viewer,
            owner,
            share_id,
            mantle_site::sharing::READ,
            move |r, grant| {
                let missing = || no_such_share(&grant.share_id);
                let ty = installed_type(&this, &grant.item_type).ok_or_else(missing)?;
                let entity = ty.get(r, grant.item_id)?.ok_or_else(missing)?;
                Ok::<_, SiteError>((grant.clone(), entity, ty))
            },
        )
        .await?;
    Ok(Opened {
        owner,
        grant,
        entity,
        ty,
    })
}

/// Runs `f` on `login`'s share `share_id` in a transaction of the
/// owner's store, if `viewer` holds `access` on it and its type's offering
/// is installed: [`SiteError::NoSuchShare`] otherwise.
pub(crate) async fn change<R: Send + 'static>(
    site: &Site,
    viewer: Viewer,
    login: &str,
    share_id: &str,
    access: &str,
    f: impl FnOnce(&mut Tx, &Grant, &ShareableType) -> Result<R, SiteError> + Send + 'static,
) -> Result<R, SiteError> {
    let owner = owner_of(site, login, share_id).await?;
    let this = site.clone();
    site.sharing()
        .transact(viewer, owner, share_id, access, move |tx, grant| {
            let ty = installed_type(&this, &grant.item_type)
                .ok_or_else(|| no_such_share(&grant.share_id))?;
            f(tx, grant, &ty)
        })
        .await
}

/// What saving over an entity came to.
pub(crate) enum Saved {
    /// Saved: the entity now.
    Done(Entity),
    /// Refused: it is not at the revision the client had (`If-Match`).
    Conflict {
        /// The revision the client had.
        yours: i64,
        /// The entity now.
        current: Entity,
    },
}

/// Saves `body` over item `id` of type `ty` if at `revision` (when
/// given); a stale revision is [`Saved::Conflict`], with the entity as it
/// is, not an error (the transaction then changes nothing).
pub(crate) fn save_in(
    tx: &mut Tx,
    ty: &ShareableType,
    id: i64,
    body: serde_json::Value,
    how: mantle_site::sharing::Save,
    revision: Option<i64>,
) -> Result<Saved, SiteError> {
    match ty.save(tx, id, body, how, revision) {
        Ok(e) => Ok(Saved::Done(e)),
        Err(SiteError::Store(mantle_store::Error::Conflict { expected, .. })) => {
            let current = current(tx, ty, id)?;
            Ok(Saved::Conflict {
                yours: expected,
                current,
            })
        }
        Err(e) => Err(e),
    }
}

/// The item `id` of type `ty`, which must exist.
fn current(r: &ReadTx, ty: &ShareableType, id: i64) -> Result<Entity, SiteError> {
    ty.get(r, id)?.ok_or_else(|| {
        mantle_store::Error::NoSuchItem {
            type_name: ty.type_name,
            id,
        }
        .into()
    })
}

/// A site error answered to a user about their own items: a missing item
/// is 404 (the store calls it a fault), the rest as usual.
pub(crate) fn own_error(e: SiteError) -> ApiError {
    match e {
        SiteError::Store(mantle_store::Error::NoSuchItem { type_name, id }) => {
            ApiError::new(StatusCode::NOT_FOUND, format!("no {type_name} {id}"))
        }
        e => e.into(),
    }
}

/// `text` as one URL path segment: unreserved characters (and `@ : ~`,
/// which logins and roles hold) as they are, the rest percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    encode(text, b"-._~@:!$'()*,;")
}

/// `text` as a query component (`application/x-www-form-urlencoded`
/// without the `+`).
pub(crate) fn query_part(text: &str) -> String {
    encode(text, b"-._~")
}

fn encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Shoji URL of `login`'s share `share_id`.
pub(crate) fn shared_url(login: &str, share_id: &str) -> String {
    format!("{API}/users/{}/{}", segment(login), segment(share_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_logins_and_encode_the_rest() {
        assert_eq!(segment("alice@example.com"), "alice@example.com");
        assert_eq!(segment("account:7"), "account:7");
        assert_eq!(segment("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
        assert_eq!(query_part("x y&z=é"), "x%20y%26z%3D%C3%A9");
        assert_eq!(
            shared_url("bob+tag@example.com", "front"),
            "/api/shoji/users/bob%2Btag@example.com/front"
        );
    }
}
