//! The cache of recently authenticated tokens.

use mantle_store::{Id, Timestamp};

use super::Avatar;
use crate::items::{Account, AuthToken};

/// Tokens recently authenticated, so a request need not read the site
/// store to know who it is. Entries are dropped whenever the store changes
/// what they say: logout, revoke, disable, password change, account
/// deletion (all go through the site, the only writer of the site store
/// while it is open); expiry is checked on every use.
pub(super) struct TokenCache {
    entries: parking_lot::Mutex<Entries>,
    /// Bumped after every forgetting, so live connections re-check their
    /// login (see [`Auth::revocations`](super::Auth::revocations)).
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
    pub(super) fn get(&self, hash: &[u8], now: Timestamp) -> Result<(Avatar, Timestamp), u64> {
        let entries = self.entries.lock();
        match entries.map.get(hash) {
            Some(e) if e.expires > now => Ok((e.avatar.clone(), e.last_used)),
            _ => Err(entries.generation),
        }
    }

    pub(super) fn put(
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

    pub(super) fn touch(&self, hash: &[u8], now: Timestamp) {
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

    /// A receiver marked changed after every forgetting.
    pub(super) fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revoked.subscribe()
    }

    pub(super) fn forget_hash(&self, hash: &[u8]) {
        self.forget(|h, _| h != hash);
    }

    pub(super) fn forget_token(&self, id: Id<AuthToken>) {
        self.forget(|_, e| e.avatar.token != id);
    }

    /// Drops every token of an account.
    pub(super) fn forget_account(&self, account: Id<Account>) {
        self.forget(|_, e| e.avatar.account != account);
    }
}
