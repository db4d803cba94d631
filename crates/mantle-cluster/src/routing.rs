//! Requests and logins routed to the node that owns their store, the
//! vouchers nodes forward with, and logins claimed across the cluster.
//!
//! - [`Routing`] is the web front's [`Forwarding`]: a routed token names
//!   its store, a login names its account's store (through the login's
//!   record in the directory), and the store's owner record names the
//!   node, whose node key says where its HTTP front answers. Lookups are
//!   remembered for a second: a request routed by a stale answer reaches
//!   the old owner, which refuses to write (503) and the client tries
//!   again.
//! - A voucher is `NODE CLIENT-IP UNIX-SECONDS HMAC`, the HMAC-SHA256 of
//!   the rest and the request's method and path under the cluster's
//!   shared secret; it holds for a minute.
//! - [`ClusterLogins`] is the site's [`LoginDirectory`]: the logins'
//!   records in etcd, so a login names one account across every node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use mantle_site::{LoginDirectory, LoginFuture, LoginRefusal};
use mantle_web::{ForwardFuture, Forwarding, Route};
use parking_lot::Mutex;
use sha2::Sha256;

use crate::{ClusterError, Directory, LoginRecord, NodeRecord};

/// How long a lookup is remembered.
const REMEMBER: Duration = Duration::from_secs(1);
/// How long a voucher holds (either way, for clocks a little apart).
const VOUCHER_LIFE_SECS: u64 = 60;

/// Lookups remembered for a while: key → (answer, when it was learnt).
type Remembered<T> = Mutex<HashMap<String, (Option<T>, Instant)>>;

/// Where requests belong in the cluster (see the module docs).
pub struct Routing {
    directory: Directory,
    node: String,
    domain: String,
    secret: Vec<u8>,
    /// Store → its owner (`None`: no owner), and when that was learnt.
    owners: Remembered<Arc<str>>,
    /// Node → its record (`None`: not alive), and when that was learnt.
    nodes: Remembered<Arc<NodeRecord>>,
    /// Login → the store holding it, and when that was learnt.
    logins: Remembered<Arc<str>>,
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing").field("node", &self.node).finish()
    }
}

impl Routing {
    /// Routing for `node` of the cluster in `directory`, whose site's
    /// domain (for logins given without one) is `domain`, with the
    /// cluster's shared `secret`.
    pub fn new(directory: Directory, node: &str, domain: &str, secret: Vec<u8>) -> Self {
        Self {
            directory,
            node: node.to_string(),
            domain: domain.to_string(),
            secret,
            owners: Mutex::new(HashMap::new()),
            nodes: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
        }
    }

    /// Where `store` is served over HTTP: here (this node owns it, or no
    /// node does), by another node, or (its owner not reachable now)
    /// nowhere for the moment.
    pub async fn route_store(&self, store: &str) -> Route {
        self.route(store, |r| &r.http).await
    }

    /// Where AMP connections for `store` go: as [`Routing::route_store`],
    /// the owner's AMP listener: `host:port` for plain AMP, `amps://host:port`
    /// for AMP over TLS.
    pub async fn amp_route_store(&self, store: &str) -> Route {
        match self.route(store, |r| &r.amp).await {
            Route::There(url) => match url.strip_prefix("amp://") {
                Some(addr) => Route::There(addr.to_string()),
                None if url.starts_with("amps://") => Route::There(url),
                None => Route::Unavailable(format!("{url}: not an AMP listener")),
            },
            other => other,
        }
    }

    /// Forgets what was learnt of `store` (it just moved here or away).
    pub fn forget(&self, store: &str) {
        self.owners.lock().remove(store);
    }

    async fn route(&self, store: &str, address: fn(&NodeRecord) -> &String) -> Route {
        let owner = match self.owner_of(store).await {
            Ok(Some(node)) => node,
            Ok(None) => return Route::Here,
            Err(e) => return Route::Unavailable(e.to_string()),
        };
        if *owner == *self.node {
            return Route::Here;
        }
        match self.record_of(&owner).await {
            Ok(Some(record)) if !address(&record).is_empty() => {
                Route::There(address(&record).clone())
            }
            Ok(Some(_)) => Route::Unavailable(format!("node {owner} does not serve this yet")),
            Ok(None) => Route::Unavailable(format!("node {owner} is down")),
            Err(e) => Route::Unavailable(e.to_string()),
        }
    }

    /// The store holding the login `address` (complete, `user@domain`),
    /// remembered for a second. Only a login's store is remembered, not
    /// its absence: a login made a moment ago on another node is found at
    /// once.
    pub(crate) async fn store_of(&self, address: &str) -> crate::Result<Option<Arc<str>>> {
        let fetch = async {
            let record = self.directory.login(address).await?;
            Ok(record.map(|r| r.store.into()))
        };
        recalled(&self.logins, address, false, fetch).await
    }

    /// The owner of `store`, remembered for a second.
    pub(crate) async fn owner_of(&self, store: &str) -> crate::Result<Option<Arc<str>>> {
        let fetch = async {
            let owned = self.directory.owner(store).await?;
            Ok(owned.map(|o| o.owner.node.into()))
        };
        recalled(&self.owners, store, true, fetch).await
    }

    /// The record of live `node`, remembered for a second.
    async fn record_of(&self, node: &str) -> crate::Result<Option<Arc<NodeRecord>>> {
        let fetch = async { Ok(self.directory.node(node).await?.map(Arc::new)) };
        recalled(&self.nodes, node, true, fetch).await
    }

    fn mac(&self, text: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(text.as_bytes());
        mac
    }
}

/// `key`'s value in `map` if learnt within the last second, else what
/// `fetch` reads, remembered (an absence too when `keep_absent`).
async fn recalled<T: Clone>(
    map: &Remembered<T>,
    key: &str,
    keep_absent: bool,
    fetch: impl std::future::Future<Output = crate::Result<Option<T>>>,
) -> crate::Result<Option<T>> {
    if let Some((value, at)) = map.lock().get(key)
        && at.elapsed() < REMEMBER
    {
        return Ok(value.clone());
    }
    let value = fetch.await?;
    if keep_absent || value.is_some() {
        remember(map, key, value.clone());
    }
    Ok(value)
}

/// Remembers `value` for `key` from now (a cache kept from growing past
/// 100,000 entries: it only saves reads).
fn remember<T>(map: &Mutex<HashMap<String, (T, Instant)>>, key: &str, value: T) {
    let mut map = map.lock();
    if map.len() > 100_000 {
        map.clear();
    }
    map.insert(key.to_string(), (value, Instant::now()));
}

fn now_secs() -> u64 {
    crate::node::now_unix_ms() / 1000
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Routing {
    /// The store holding the account with `login` (as typed), if any.
    async fn store_of_login(&self, login: &str) -> std::result::Result<Option<String>, String> {
        let Ok(address) = mantle_site::Address::parse(login, &self.domain) else {
            return Ok(None);
        };
        match self.store_of(&address.to_string()).await {
            Ok(store) => Ok(store.map(|s| s.to_string())),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Forwarding for Routing {
    fn for_store<'a>(&'a self, store: &'a str) -> ForwardFuture<'a> {
        Box::pin(self.route_store(store))
    }

    fn for_login<'a>(&'a self, login: &'a str) -> ForwardFuture<'a> {
        Box::pin(async move {
            match self.store_of_login(login).await {
                Ok(Some(store)) => self.route_store(&store).await,
                Ok(None) => Route::Here,
                Err(e) => Route::Unavailable(e),
            }
        })
    }

    fn amp_for_store<'a>(&'a self, store: &'a str) -> ForwardFuture<'a> {
        Box::pin(self.amp_route_store(store))
    }

    fn amp_for_login<'a>(&'a self, login: &'a str) -> ForwardFuture<'a> {
        Box::pin(async move {
            match self.store_of_login(login).await {
                Ok(Some(store)) => self.amp_route_store(&store).await,
                Ok(None) => Route::Here,
                Err(e) => Route::Unavailable(e),
            }
        })
    }

    fn vouch(&self, client: IpAddr, method: &str, path: &str) -> String {
        let head = format!("{} {client} {}", self.node, now_secs());
        let mac = self.mac(&format!("{head} {method} {path}"));
        format!("{head} {}", hex(&mac.finalize().into_bytes()))
    }

    fn verify(&self, voucher: &str, method: &str, path: &str) -> Option<IpAddr> {
        let mut parts = voucher.split(' ');
        let (node, client, secs, tag) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let at: u64 = secs.parse().ok()?;
        if now_secs().abs_diff(at) > VOUCHER_LIFE_SECS {
            return None;
        }
        let client: IpAddr = client.parse().ok()?;
        let mac = self.mac(&format!("{node} {client} {secs} {method} {path}"));
        mac.verify_slice(&unhex(tag)?).ok()?;
        Some(client)
    }
}

/// The cluster's logins, for the site (see the module docs).
#[derive(Debug)]
pub struct ClusterLogins {
    directory: Directory,
    node: String,
}

impl ClusterLogins {
    /// The logins of the cluster in `directory`, claimed by `node`.
    pub fn new(directory: Directory, node: &str) -> Self {
        Self {
            directory,
            node: node.to_string(),
        }
    }
}

fn refusal(e: ClusterError) -> LoginRefusal {
    match e {
        ClusterError::LoginTaken { node, .. } => LoginRefusal::Taken(format!("node {node}")),
        other => LoginRefusal::Unavailable(other.to_string()),
    }
}

impl LoginDirectory for ClusterLogins {
    fn claim<'a>(&'a self, address: &'a str, store: &'a str) -> LoginFuture<'a> {
        Box::pin(async move {
            let record = LoginRecord {
                store: store.to_string(),
                node: self.node.clone(),
            };
            self.directory
                .claim_login(address, &record)
                .await
                .map_err(refusal)
        })
    }

    fn release<'a>(&'a self, address: &'a str, store: &'a str) -> LoginFuture<'a> {
        Box::pin(async move {
            self.directory
                .release_login(address, store)
                .await
                .map_err(refusal)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn routing(node: &str, secret: &[u8]) -> Routing {
        let etcd =
            crate::Etcd::new(&["http://127.0.0.1:1".into()], Duration::from_millis(10)).unwrap();
        Routing::new(
            Directory::new(Arc::new(etcd), "t"),
            node,
            "example.com",
            secret.to_vec(),
        )
    }

    #[tokio::test]
    async fn a_voucher_holds_for_its_request_under_the_shared_secret_only() {
        let (n1, n2) = (
            routing("n1", b"shared secret"),
            routing("n2", b"shared secret"),
        );
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let v = n1.vouch(client, "PUT", "/api/slates/x?y=1");
        assert_eq!(n2.verify(&v, "PUT", "/api/slates/x?y=1"), Some(client));
        // Another request, another secret, a changed client: refused.
        assert_eq!(n2.verify(&v, "GET", "/api/slates/x?y=1"), None);
        assert_eq!(n2.verify(&v, "PUT", "/api/slates/z"), None);
        assert_eq!(
            routing("n3", b"other").verify(&v, "PUT", "/api/slates/x?y=1"),
            None
        );
        let forged = v.replacen("203.0.113.7", "198.51.100.1", 1);
        assert_eq!(n2.verify(&forged, "PUT", "/api/slates/x?y=1"), None);
        // Old, or not a voucher at all.
        let head = format!("n1 {client} {}", now_secs() - 120);
        let tag = hex(&n1.mac(&format!("{head} PUT /")).finalize().into_bytes());
        assert_eq!(n2.verify(&format!("{head} {tag}"), "PUT", "/"), None);
        assert_eq!(n2.verify("garbage", "PUT", "/"), None);
        assert_eq!(n2.verify("a b c d e", "PUT", "/"), None);
    }
}
