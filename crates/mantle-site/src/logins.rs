//! Logins beyond this site: when several sites serve as one (a cluster's
//! nodes), a directory they share makes a login name one account across
//! all of them, and says which store holds it, so that any node can route
//! a login to the node that owns the account.
//!
//! The site consults its [`LoginDirectory`] (given with
//! [`SiteBuilder::logins`](crate::SiteBuilder::logins)) when an account or
//! a login is made (a login taken elsewhere is refused as taken) and when
//! an account is deleted. Without one, logins are this site's alone.
//!
//! **Routed tokens.** A site built with
//! [`SiteBuilder::route_tokens`](crate::SiteBuilder::route_tokens) issues
//! tokens that name the account's store before the secret
//! (`users~alice_example.com.SECRET`), so any node can tell where a token
//! belongs without a lookup ([`token_route`]). The store's name is not a
//! secret (it derives from the login); the secret part is the same 256
//! random bits, and only the whole token's hash is kept.

use std::future::Future;
use std::pin::Pin;

/// What a [`LoginDirectory`] hands back.
pub type LoginFuture<'a> = Pin<Box<dyn Future<Output = Result<(), LoginRefusal>> + Send + 'a>>;

/// Why a login directory refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefusal {
    /// The login belongs to an account elsewhere (where, for the logs).
    Taken(String),
    /// The directory cannot be reached now; nothing was changed.
    Unavailable(String),
}

/// A directory of logins shared by several sites (see the module docs).
pub trait LoginDirectory: Send + Sync + 'static {
    /// Reserves `address` for an account of this site whose user store is
    /// `store` (its [`store_name`]). Claiming again what this site holds is
    /// no error.
    fn claim<'a>(&'a self, address: &'a str, store: &'a str) -> LoginFuture<'a>;
    /// Gives `address` up, if the account of `store` holds it (its
    /// account was deleted here, or was never made).
    fn release<'a>(&'a self, address: &'a str, store: &'a str) -> LoginFuture<'a>;
}

/// A store's name among several sites: its file's path in the site
/// directory, without the extension (`users/alice_example.com`).
///
/// ```
/// assert_eq!(mantle_site::store_name("users/alice_example.com.store"), "users/alice_example.com");
/// ```
pub fn store_name(relative: &str) -> String {
    match relative.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.contains('/') => stem.to_string(),
        _ => relative.to_string(),
    }
}

/// The name among several nodes of the store in the file `relative` (to
/// the site directory) of node `node`: a user store by its file (see
/// [`store_name`]); each node's own site store `sites/NODE` and app
/// stores `apps/NODE/NAME`.
///
/// ```
/// use mantle_site::node_store_name;
/// assert_eq!(node_store_name("n1", "users/alice_example.com.store"), "users/alice_example.com");
/// assert_eq!(node_store_name("n1", "site.store"), "sites/n1");
/// assert_eq!(node_store_name("n1", "apps/notes.store"), "apps/n1/notes");
/// ```
pub fn node_store_name(node: &str, relative: &str) -> String {
    if relative == crate::SITE_STORE {
        return format!("sites/{node}");
    }
    let name = store_name(relative);
    match name.strip_prefix("apps/") {
        Some(app) => format!("apps/{node}/{app}"),
        None => name,
    }
}

/// The file (relative to the site directory) of node `node` holding the
/// store named `name` among the nodes, if that node holds such a store:
/// the inverse of [`node_store_name`].
pub fn node_store_file(node: &str, name: &str) -> Option<String> {
    if name == format!("sites/{node}") {
        return Some(crate::SITE_STORE.to_string());
    }
    if let Some(rest) = name.strip_prefix("apps/") {
        let app = rest.strip_prefix(node)?.strip_prefix('/')?;
        return Some(format!("apps/{app}.store"));
    }
    (name.starts_with("users/")).then(|| format!("{name}.store"))
}

/// Length of a token's secret part (256 bits, URL-safe base64).
pub(crate) const SECRET_LEN: usize = 43;
/// Longest route a token may carry.
const ROUTE_MAX: usize = 200;

/// The route part of a token for the store named `store`.
pub(crate) fn route_for(store: &str) -> String {
    store.replace('/', "~")
}

/// The store a routed token names (`None` for a token without a route,
/// or one that is not of our shape).
///
/// ```
/// let token = format!("users~alice_example.com.{}", "a".repeat(43));
/// assert_eq!(mantle_site::token_route(&token).as_deref(), Some("users/alice_example.com"));
/// assert_eq!(mantle_site::token_route(&"a".repeat(43)), None);
/// ```
pub fn token_route(token: &str) -> Option<String> {
    let (route, secret) = split_token(token)?;
    route
        .map(|r| r.replace('~', "/"))
        .filter(|_| secret.len() == SECRET_LEN)
}

/// A token's route (if any) and secret, when it has our shape.
pub(crate) fn split_token(token: &str) -> Option<(Option<&str>, &str)> {
    let secret_ok = |s: &str| {
        s.len() == SECRET_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if token.len() == SECRET_LEN {
        return secret_ok(token).then_some((None, token));
    }
    let (route, secret) = token.split_at(token.len().checked_sub(SECRET_LEN + 1)?);
    let secret = secret.strip_prefix('.')?;
    let route_ok = !route.is_empty()
        && route.len() <= ROUTE_MAX
        && route
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-~".contains(&b));
    (route_ok && secret_ok(secret)).then_some((Some(route), secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_with_and_without_routes_are_told_apart() {
        let secret = "A".repeat(43);
        assert_eq!(split_token(&secret), Some((None, secret.as_str())));
        let routed = format!("users~bob_x.org-2.{secret}");
        assert_eq!(
            split_token(&routed),
            Some((Some("users~bob_x.org-2"), secret.as_str()))
        );
        assert_eq!(token_route(&routed).as_deref(), Some("users/bob_x.org-2"));
        // Not our shape: wrong lengths, no dot, odd characters.
        assert_eq!(split_token(&"A".repeat(42)), None);
        assert_eq!(split_token(&format!("x{secret}")), None);
        assert_eq!(split_token(&format!("a b.{secret}")), None);
        assert_eq!(split_token(&format!(".{secret}")), None);
        assert_eq!(split_token(&format!("{}.{secret}", "r".repeat(201))), None);
        assert_eq!(split_token(&format!("users~x.{}", "é".repeat(22))), None);
    }

    #[test]
    fn store_names_drop_the_extension_only() {
        assert_eq!(store_name("site.store"), "site");
        assert_eq!(store_name("users/a.b_c.store"), "users/a.b_c");
        assert_eq!(store_name("users/plain"), "users/plain");
        assert_eq!(route_for("users/a.b_c"), "users~a.b_c");
    }
}
