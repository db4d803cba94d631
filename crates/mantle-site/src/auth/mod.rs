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
use std::sync::Arc;

use mantle_store::{Registry, Store};

use crate::address::Address;
use crate::config::SiteConfig;
use crate::items::{Account, AuthToken, LoginMethod, TokenSweeper};
use crate::{Result, SiteError};

mod login_guard;
mod passwords;
mod stats;
mod suspects;
mod tokens;

use login_guard::LoginGuard;
use passwords::{Lane, PasswordWorkers};
pub use stats::AUTH_NAMESPACE;
pub(crate) use stats::AuthStats;
pub use suspects::{Gated, SUSPECT_FOR, SuspectGate, address_block};
use tokens::TokenCache;

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
    crate::logins::split_token(token).is_some()
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

/// Logins, tokens and the limits on guessing passwords, for every
/// transport (see [`Site::auth`](crate::Site::auth)).
///
/// ```no_run
/// # async fn f(site: mantle_site::Site) -> mantle_site::Result<()> {
/// let issued = site.auth().login("alice@example.com", "correct horse battery", "cli").await?;
/// let me = site.auth().authenticate(&issued.token).await?;
/// assert_eq!(me.account, issued.account);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Auth(Arc<Inner>);

struct Inner {
    /// Where tokens and accounts are (the site store).
    site_store: Store,
    /// The site's domain, for logins given as a bare localpart.
    domain: String,
    token_ttl: Duration,
    /// Tokens recently authenticated.
    tokens: TokenCache,
    /// Limits on guessing passwords, for every transport.
    guard: LoginGuard,
    /// The threads that hash and check passwords.
    passwords: PasswordWorkers,
    stats: AuthStats,
    /// Tokens name their account's store (see `crate::logins`).
    route_tokens: bool,
}

impl Auth {
    /// Starts the password workers and the limits for a site whose store
    /// is `site_store`, and makes sure its tokens are swept (every
    /// `auth.sweep_interval_secs`).
    pub(crate) async fn start(
        site_store: Store,
        config: &SiteConfig,
        stats: AuthStats,
        route_tokens: bool,
    ) -> Result<Self> {
        ensure_sweeper(
            &site_store,
            Duration::from_secs(config.auth.sweep_interval_secs.max(1)),
        )
        .await?;
        let passwords = PasswordWorkers::start(config.auth.workers(), config.auth.password_queue)?;
        let suspects = SuspectGate::counted(
            config.auth.failures_before_backoff,
            config.auth.suspect_cpu_share,
            Some((stats.suspect_turns.clone(), stats.suspect_pauses.clone())),
        );
        let guard = LoginGuard::new(&config.auth, config.signup.max_per_hour, suspects);
        Ok(Self(Arc::new(Inner {
            site_store,
            domain: config.domain.clone(),
            token_ttl: config.token_ttl(),
            tokens: TokenCache::default(),
            guard,
            passwords,
            stats,
            route_tokens,
        })))
    }

    /// Counts a signup against the site-wide allowance.
    pub(crate) fn count_signup(&self) -> Result<()> {
        self.0.guard.count_signup()
    }

    /// Forgets every cached token of `account` and tells live logins to
    /// check theirs (after its tokens were deleted, it was disabled, …).
    pub(crate) fn forget_account(&self, account: Id<Account>) {
        self.0.tokens.forget_account(account);
    }

    /// Refreshes the gauges counted when a report is made: active tokens
    /// (one indexed count in the site store), suspects, waiting checks.
    pub(crate) async fn refresh_stats(&self) -> Result<()> {
        let stats = &self.0.stats;
        let active = if stats.counts_tokens() {
            let now = Timestamp::now();
            Some(
                self.0
                    .site_store
                    .read(move |r| {
                        r.query::<AuthToken>()
                            .filter(AuthToken::EXPIRES.gt(now))
                            .count()
                    })
                    .await?,
            )
        } else {
            None
        };
        stats.refresh(
            active,
            self.0.guard.suspects.suspects(),
            self.0.passwords.waiting(),
        );
        Ok(())
    }
}

/// Replaces the site store's token sweeper with one sweeping every
/// `interval`. The schedule is persistent, but its interval comes from the
/// configuration, which may have changed since: replacing the sweeper
/// (deleting it drops its schedule) puts the configured interval in force.
/// A reopened site sweeps at once, so restarts never postpone sweeping.
async fn ensure_sweeper(site_store: &Store, interval: Duration) -> Result<()> {
    site_store
        .transact(move |tx| {
            let now = Timestamp::now();
            let mut swept = 0;
            let mut first = now + interval;
            for old in tx.query::<TokenSweeper>().all()? {
                swept += old.swept;
                first = now;
                tx.delete(old.id())?;
            }
            let sweeper = tx.insert(&TokenSweeper { swept })?;
            tx.schedule(sweeper, "sweep", first, Some(interval))?;
            Ok::<_, SiteError>(())
        })
        .await
}

/// Registers the authentication items and the token sweeper's task.
pub(crate) fn register(registry: &mut Registry) {
    registry
        .register::<AuthToken>()
        .register::<TokenSweeper>()
        .task::<TokenSweeper>("sweep", |tx, mut sweeper| {
            let now = Timestamp::now();
            let n = tx.delete_where(AuthToken::EXPIRES.le(now))?;
            if n > 0 {
                sweeper.swept += n as i64;
                tx.update(&mut sweeper)?;
                tracing::info!(swept = n, "expired tokens swept");
            }
            Ok(())
        });
}

impl Auth {
    /// Checks a login and password and issues a token (for callers with
    /// no client address, such as the CLI; see [`Auth::login_from`]).
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
        let stats = &self.0.stats;
        // Every per-address limit counts the address's block.
        let client = client.map(address_block);
        let refused = |e: SiteError| {
            stats.throttled.inc();
            if let Some(ip) = client {
                self.0.guard.suspects.note(ip);
            }
            e
        };
        if let Some(ip) = client {
            self.0.guard.count_attempt(ip).map_err(refused)?;
        }
        let address = Address::parse(username, &self.0.domain).ok();
        // Failures are counted per login name as given (normalised when it
        // parses), whether or not an account holds it.
        let key = address
            .as_ref()
            .map_or_else(|| username.to_ascii_lowercase(), ToString::to_string);
        self.0
            .guard
            .check_login(&key, Instant::now())
            .map_err(refused)?;
        // Refused before any read when its lane is surely full: under a
        // flood, most attempts end here, and cheaply.
        let passwords = &self.0.passwords;
        if passwords.full(Lane::Priority) && passwords.full(Lane::Other)
            || passwords.full(Lane::Other) && self.0.guard.suspect(&key, client, Instant::now())
        {
            return Err(refused(SiteError::Busy {
                retry_after: passwords::BUSY_RETRY_AFTER,
            }));
        }
        let found = match address {
            Some(a) => {
                let address = a.to_string();
                // Two indexed lookups: here rather than on another thread.
                self.0.site_store.read_now(move |r| {
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
            .0
            .guard
            .lane(found.is_some(), &key, client, Instant::now());
        let hash = found.as_ref().map(|(_, a)| a.password_hash.clone());
        let checked = self.0.passwords.verify(ticket.lane, hash, password).await;
        drop(ticket);
        let ok = match checked {
            Ok(ok) => ok,
            Err(e @ SiteError::Busy { .. }) => return Err(refused(e)),
            Err(e) => return Err(e),
        };
        let Some((address, account)) = found.filter(|_| ok) else {
            stats.failures.inc();
            self.0.guard.failed(&key, client, Instant::now());
            return Err(SiteError::BadCredentials);
        };
        if account.disabled {
            stats.failures.inc();
            return Err(SiteError::Disabled(address));
        }
        self.0.guard.succeeded(&key);
        let issued = self.issue_token(account.id(), label).await?;
        stats.logins.inc();
        Ok(issued)
    }

    /// Counts an attempt that costs password work but is not a login
    /// (a signup, say) against `client`'s allowance, the same allowance
    /// logins use.
    pub fn count_attempt(&self, client: IpAddr) -> Result<()> {
        let client = address_block(client);
        self.0.guard.count_attempt(client).inspect_err(|_| {
            self.0.stats.throttled.inc();
        })
    }

    /// The site's suspect addresses (a failed or refused login lately),
    /// and the gate through which transports serve their connections.
    pub fn suspects(&self) -> &SuspectGate {
        &self.0.guard.suspects
    }

    /// A new password hash, made by the password workers (refused with
    /// [`SiteError::Busy`] when they are saturated).
    pub(crate) async fn hash_password(&self, password: &str) -> Result<String> {
        self.0.passwords.hash(password).await
    }

    /// Issues a token for an account without a password (for trusted
    /// callers such as the CLI).
    pub async fn issue_token(&self, account: Id<Account>, label: &str) -> Result<IssuedToken> {
        let mut token = new_secret()?;
        if self.0.route_tokens {
            let store = self.0.site_store.read_now(move |r| {
                let acc = r
                    .get(account)?
                    .ok_or(SiteError::NoSuchAccount(format!("#{}", account.raw())))?;
                let sub = r
                    .get(acc.user_store)?
                    .ok_or(SiteError::NoSuchAccount(format!("#{}", account.raw())))?;
                Ok::<_, SiteError>(sub.into_inner().path)
            })?;
            let name = crate::logins::store_name(&store);
            token = format!("{}.{token}", crate::logins::route_for(&name));
        }
        let hash = digest(&token);
        let now = Timestamp::now();
        let expires = now + self.0.token_ttl;
        let label = label.to_string();
        self.0
            .site_store
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
        let cached = self.0.tokens.get(&hash, now);
        let (avatar, last_used) = match cached {
            Ok(hit) => hit,
            Err(generation) => {
                let key = hash.clone();
                // A few indexed lookups: run them here rather than on
                // another thread (see `Store::read_now`).
                let (avatar, expires, last_used) = self.0.site_store.read_now(move |r| {
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
                self.0
                    .tokens
                    .put(generation, hash.clone(), avatar.clone(), expires, last_used);
                (avatar, last_used)
            }
        };
        if now.saturating_since(last_used) >= LAST_USED_GRANULARITY {
            self.0.tokens.touch(&hash, now);
            // Off the request's path; losing it costs only precision.
            let store = self.0.site_store.clone();
            let id = avatar.token;
            tokio::spawn(async move {
                let _ = store
                    .transact(move |tx| {
                        if let Some(mut t) = tx.get(id)? {
                            t.last_used = now;
                            tx.update(&mut t)?;
                        }
                        mantle_store::ok(())
                    })
                    .await;
            });
        }
        Ok(avatar)
    }

    /// A receiver that is marked changed after anything that can end a
    /// login: logout, token revocation, disabling an account, changing its
    /// password, deleting it. Holders of long-lived logins (live
    /// connections) then ask [`Auth::still_valid`] and log out if not.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.tokens.revocations()
    }

    /// Whether `avatar`'s token still logs in: not revoked, not expired,
    /// its account neither disabled nor deleted.
    pub async fn still_valid(&self, avatar: &Avatar) -> Result<bool> {
        let (token, account) = (avatar.token, avatar.account);
        let now = Timestamp::now();
        self.0
            .site_store
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
            .0
            .site_store
            .transact(move |tx| tx.delete_where(AuthToken::HASH.eq(key)))
            .await?;
        self.0.tokens.forget_hash(&hash);
        Ok(n > 0)
    }

    /// An account's live tokens, newest first.
    pub async fn tokens(&self, account: Id<Account>) -> Result<Vec<TokenInfo>> {
        let now = Timestamp::now();
        Ok(self
            .0
            .site_store
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
            .0
            .site_store
            .transact(move |tx| {
                tx.delete_where(mantle_store::Filter::ids([id]).and(AuthToken::ACCOUNT.eq(account)))
            })
            .await?
            > 0;
        self.0.tokens.forget_token(id);
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
