//! Passwords and tokens ("tokens instead of sessions").
//!
//! A login returns a random 256-bit token. Only its SHA-256 is stored, with
//! an expiry; presenting the token finds the account. A token carries no
//! user data and no request holds a lock for its duration; logout deletes
//! it; a disabled account's tokens stop working at once because every
//! authentication reads the account's state. (SHA-256 suffices for tokens:
//! they are 256 random bits, unlike passwords, which get argon2id.)

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mantle_store::{Id, Timestamp};
use sha2::{Digest, Sha256};

use crate::address::Address;
use crate::items::{Account, AuthToken, LoginMethod};
use crate::passwords::Lane;
use crate::site::Site;
use crate::suspects::SuspectGate;
use crate::{Result, SiteError};

/// How stale `last_used` may get before a request refreshes it: keeps
/// authentication a pure read on the hot path.
const LAST_USED_GRANULARITY: Duration = Duration::from_secs(60);

/// SHA-256 of a secret (token or invite code).
pub(crate) fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A new random 256-bit secret, URL-safe base64 (43 characters): what
/// tokens and invite codes are made of.
pub fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SiteError::NoRandomness(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether a presented token has the shape of one we issue (cheap check
/// before touching the store).
fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A token just issued: the only time the secret is seen.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The secret to present (cookie or `Authorization: Bearer`).
    pub token: String,
    /// When it stops working.
    pub expires: Timestamp,
    /// The account.
    pub account: Id<Account>,
}

/// Who a request acts as, once its token is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Avatar {
    /// The account.
    pub account: Id<Account>,
    /// Its primary login.
    pub address: String,
    /// Whether it may use admin pages.
    pub admin: bool,
    /// The token presented.
    pub token: Id<AuthToken>,
}

/// A token as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokenInfo {
    /// Its id (to revoke it).
    pub id: i64,
    /// When it was issued.
    pub created: Timestamp,
    /// When it expires.
    pub expires: Timestamp,
    /// When it was last used (to the minute).
    pub last_used: Timestamp,
    /// What issued it.
    pub label: String,
}

impl Site {
    /// Checks a login and password and issues a token (for callers with
    /// no client address, such as the CLI; see [`Site::login_from`]).
    pub async fn login(&self, username: &str, password: &str, label: &str) -> Result<IssuedToken> {
        self.login_from(None, username, password, label).await
    }

    /// Checks a login and password from a client at `client` and issues a
    /// token. Every transport calls this, so one allowance holds for all.
    ///
    /// Refused before any password work: [`SiteError::TooManyAttempts`]
    /// past the address's allowance or while the login's back-off lasts,
    /// and [`SiteError::Busy`] when the password workers' queue is full.
    /// Unknown logins and wrong passwords give the same
    /// [`SiteError::BadCredentials`] after the same work (one argon2
    /// verification). A disabled account gives [`SiteError::Disabled`] only
    /// to someone who knew the password.
    pub async fn login_from(
        &self,
        client: Option<IpAddr>,
        username: &str,
        password: &str,
        label: &str,
    ) -> Result<IssuedToken> {
        let stats = &self.inner.stats.auth;
        // Every per-address limit counts the address's block.
        let client = client.map(crate::address_block);
        let refused = |e: SiteError| {
            stats.throttled.inc();
            if let Some(ip) = client {
                self.inner.guard.suspects.note(ip);
            }
            e
        };
        if let Some(ip) = client {
            self.inner.guard.count_attempt(ip).map_err(refused)?;
        }
        let address = Address::parse(username, &self.config().domain).ok();
        // Failures are counted per login name as given (normalised when it
        // parses), whether or not an account holds it.
        let key = address
            .as_ref()
            .map_or_else(|| username.to_ascii_lowercase(), ToString::to_string);
        self.inner
            .guard
            .check_login(&key, Instant::now())
            .map_err(refused)?;
        // Refused before any read when its lane is surely full: under a
        // flood, most attempts end here, and cheaply.
        let passwords = &self.inner.passwords;
        if passwords.full(Lane::Priority) && passwords.full(Lane::Other)
            || passwords.full(Lane::Other) && self.inner.guard.suspect(&key, client, Instant::now())
        {
            return Err(refused(SiteError::Busy {
                retry_after: crate::passwords::BUSY_RETRY_AFTER,
            }));
        }
        let found = match address {
            Some(a) => {
                let address = a.to_string();
                // Two indexed lookups: here rather than on another thread.
                self.site_store().read_now(move |r| {
                    let Some(m) = r
                        .query::<LoginMethod>()
                        .filter(LoginMethod::ADDRESS.eq(address.as_str()))
                        .first()?
                    else {
                        return Ok(None);
                    };
                    Ok::<_, SiteError>(r.get(m.account)?.map(|acc| (address, acc)))
                })?
            }
            None => None,
        };
        let ticket = self
            .inner
            .guard
            .lane(found.is_some(), &key, client, Instant::now());
        let hash = found.as_ref().map(|(_, a)| a.password_hash.clone());
        let checked = self
            .inner
            .passwords
            .verify(ticket.lane, hash, password)
            .await;
        drop(ticket);
        let ok = match checked {
            Ok(ok) => ok,
            Err(e @ SiteError::Busy { .. }) => return Err(refused(e)),
            Err(e) => return Err(e),
        };
        let Some((address, account)) = found.filter(|_| ok) else {
            stats.failures.inc();
            self.inner.guard.failed(&key, client, Instant::now());
            return Err(SiteError::BadCredentials);
        };
        if account.disabled {
            stats.failures.inc();
            return Err(SiteError::Disabled(address));
        }
        self.inner.guard.succeeded(&key);
        let issued = self.issue_token(account.id(), label).await?;
        stats.logins.inc();
        Ok(issued)
    }

    /// Counts an attempt that costs password work but is not a login
    /// (a signup, say) against `client`'s allowance, the same allowance
    /// logins use.
    pub fn count_attempt(&self, client: IpAddr) -> Result<()> {
        let client = crate::address_block(client);
        self.inner.guard.count_attempt(client).inspect_err(|_| {
            self.inner.stats.auth.throttled.inc();
        })
    }

    /// The site's suspect addresses (a failed or refused login lately),
    /// and the gate through which transports serve their connections.
    pub fn suspects(&self) -> &SuspectGate {
        &self.inner.guard.suspects
    }

    /// A new password hash, made by the password workers (refused with
    /// [`SiteError::Busy`] when they are saturated).
    pub(crate) async fn hash_password(&self, password: &str) -> Result<String> {
        self.inner.passwords.hash(password).await
    }

    /// Issues a token for an account without a password (for trusted
    /// callers such as the CLI).
    pub async fn issue_token(&self, account: Id<Account>, label: &str) -> Result<IssuedToken> {
        let token = new_secret()?;
        let hash = digest(&token);
        let now = Timestamp::now();
        let expires = now + self.config().token_ttl();
        let label = label.to_string();
        self.site_store()
            .transact(move |tx| {
                tx.insert(&AuthToken {
                    account,
                    hash,
                    created: now,
                    expires,
                    last_used: now,
                    label,
                })
            })
            .await?;
        Ok(IssuedToken {
            token,
            expires,
            account,
        })
    }

    /// Who a token logs in as. [`SiteError::BadToken`] if it is unknown,
    /// expired, revoked, or its account is disabled.
    pub async fn authenticate(&self, token: &str) -> Result<Avatar> {
        if !plausible_token(token) {
            return Err(SiteError::BadToken);
        }
        let hash = digest(token);
        let now = Timestamp::now();
        let cached = self.inner.tokens.get(&hash, now);
        let (avatar, last_used) = match cached {
            Ok(hit) => hit,
            Err(generation) => {
                let key = hash.clone();
                // A few indexed lookups: run them here rather than on
                // another thread (see `Store::read_now`).
                let (avatar, expires, last_used) = self.site_store().read_now(move |r| {
                    let t = r
                        .query::<AuthToken>()
                        .filter(AuthToken::HASH.eq(key))
                        .first()?
                        .ok_or(SiteError::BadToken)?;
                    if t.expires <= now {
                        return Err(SiteError::BadToken);
                    }
                    let account = r.get(t.account)?.ok_or(SiteError::BadToken)?;
                    if account.disabled {
                        return Err(SiteError::BadToken);
                    }
                    let primary = r
                        .query::<LoginMethod>()
                        .filter(
                            LoginMethod::ACCOUNT
                                .eq(t.account)
                                .and(LoginMethod::PRIMARY.eq(true)),
                        )
                        .first()?
                        .ok_or(SiteError::BadToken)?;
                    let avatar = Avatar {
                        account: t.account,
                        address: primary.into_inner().address,
                        admin: account.admin,
                        token: t.id(),
                    };
                    Ok::<_, SiteError>((avatar, t.expires, t.last_used))
                })?;
                self.inner
                    .tokens
                    .put(generation, hash.clone(), avatar.clone(), expires, last_used);
                (avatar, last_used)
            }
        };
        if now.saturating_since(last_used) >= LAST_USED_GRANULARITY {
            self.inner.tokens.touch(&hash, now);
            // Off the request's path; losing it costs only precision.
            let store = self.site_store().clone();
            let id = avatar.token;
            tokio::spawn(async move {
                let _ = store
                    .transact(move |tx| {
                        if let Some(mut t) = tx.get(id)? {
                            t.last_used = now;
                            tx.update(&mut t)?;
                        }
                        Ok::<_, mantle_store::Error>(())
                    })
                    .await;
            });
        }
        Ok(avatar)
    }

    /// A receiver that is marked changed after anything that can end a
    /// login: logout, token revocation, disabling an account, changing its
    /// password, deleting it. Holders of long-lived logins (live
    /// connections) then ask [`Site::still_valid`] and log out if not.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.tokens.revoked.subscribe()
    }

    /// Whether `avatar`'s token still logs in: not revoked, not expired,
    /// its account neither disabled nor deleted.
    pub async fn still_valid(&self, avatar: &Avatar) -> Result<bool> {
        let (token, account) = (avatar.token, avatar.account);
        let now = Timestamp::now();
        self.site_store()
            .read(move |r| {
                let Some(t) = r.get(token)? else {
                    return Ok(false);
                };
                if t.expires <= now || t.account != account {
                    return Ok(false);
                }
                Ok(r.get(account)?.is_some_and(|a| !a.disabled))
            })
            .await
    }

    /// Revokes a token by its secret; returns whether it existed.
    pub async fn logout(&self, token: &str) -> Result<bool> {
        if !plausible_token(token) {
            return Ok(false);
        }
        let hash = digest(token);
        let key = hash.clone();
        let n = self
            .site_store()
            .transact(move |tx| tx.delete_where(AuthToken::HASH.eq(key)))
            .await?;
        self.inner.tokens.forget_hash(&hash);
        Ok(n > 0)
    }

    /// An account's live tokens, newest first.
    pub async fn tokens(&self, account: Id<Account>) -> Result<Vec<TokenInfo>> {
        let now = Timestamp::now();
        Ok(self
            .site_store()
            .read(move |r| {
                r.query::<AuthToken>()
                    .filter(
                        AuthToken::ACCOUNT
                            .eq(account)
                            .and(AuthToken::EXPIRES.gt(now)),
                    )
                    .order_by(AuthToken::CREATED.desc())
                    .all()
            })
            .await?
            .into_iter()
            .map(|t| TokenInfo {
                id: t.id().raw(),
                created: t.created,
                expires: t.expires,
                last_used: t.last_used,
                label: t.label.clone(),
            })
            .collect())
    }

    /// Revokes one of an account's tokens by id; returns whether it was
    /// the account's.
    pub async fn revoke_token(&self, account: Id<Account>, token_id: i64) -> Result<bool> {
        let id = Id::<AuthToken>::from_raw(token_id);
        let revoked = self
            .site_store()
            .transact(move |tx| {
                tx.delete_where(mantle_store::Filter::ids([id]).and(AuthToken::ACCOUNT.eq(account)))
            })
            .await?
            > 0;
        self.inner.tokens.forget_token(id);
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_43_url_safe_characters_and_differ() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert!(plausible_token(&a) && plausible_token(&b));
        assert_ne!(a, b);
        assert!(!plausible_token("short"));
        assert!(!plausible_token(&"!".repeat(43)));
    }
}

/// Tokens recently authenticated, so a request need not read the site
/// store to know who it is. Entries are dropped whenever the store changes
/// what they say: logout, revoke, disable, password change, account
/// deletion (all go through [`Site`], the only writer of the site store
/// while it is open); expiry is checked on every use.
pub(crate) struct TokenCache {
    entries: parking_lot::Mutex<Entries>,
    /// Bumped after every forgetting, so live connections re-check their
    /// login (see [`Site::revocations`]).
    revoked: tokio::sync::watch::Sender<u64>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            entries: parking_lot::Mutex::default(),
            revoked: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// Invariant: `generation` changes (under the same lock) whenever entries
/// are forgotten, and a lookup's result is only cached if no forgetting
/// happened since it began — so a read that saw the old state (just before
/// a revoke committed) can never put a revoked token back.
#[derive(Default)]
struct Entries {
    map: std::collections::HashMap<Vec<u8>, CachedToken>,
    generation: u64,
}

struct CachedToken {
    avatar: Avatar,
    expires: Timestamp,
    last_used: Timestamp,
}

/// Most tokens remembered; past it the cache starts over (it only saves
/// reads).
const TOKEN_CACHE_MAX: usize = 100_000;

impl TokenCache {
    /// The cached avatar and last use, or the generation to pass to `put`.
    fn get(&self, hash: &[u8], now: Timestamp) -> Result<(Avatar, Timestamp), u64> {
        let entries = self.entries.lock();
        match entries.map.get(hash) {
            Some(e) if e.expires > now => Ok((e.avatar.clone(), e.last_used)),
            _ => Err(entries.generation),
        }
    }

    fn put(
        &self,
        seen: u64,
        hash: Vec<u8>,
        avatar: Avatar,
        expires: Timestamp,
        last_used: Timestamp,
    ) {
        let mut entries = self.entries.lock();
        if entries.generation != seen {
            return;
        }
        if entries.map.len() >= TOKEN_CACHE_MAX {
            entries.map.clear();
        }
        entries.map.insert(
            hash,
            CachedToken {
                avatar,
                expires,
                last_used,
            },
        );
    }

    fn touch(&self, hash: &[u8], now: Timestamp) {
        if let Some(e) = self.entries.lock().map.get_mut(hash) {
            e.last_used = now;
        }
    }

    fn forget(&self, keep: impl Fn(&[u8], &CachedToken) -> bool) {
        {
            let mut entries = self.entries.lock();
            entries.generation += 1;
            entries.map.retain(|h, e| keep(h, e));
        }
        self.revoked.send_modify(|n| *n += 1);
    }

    fn forget_hash(&self, hash: &[u8]) {
        self.forget(|h, _| h != hash);
    }

    fn forget_token(&self, id: Id<AuthToken>) {
        self.forget(|_, e| e.avatar.token != id);
    }

    /// Drops every token of an account.
    pub(crate) fn forget_account(&self, account: Id<Account>) {
        self.forget(|_, e| e.avatar.account != account);
    }
}
