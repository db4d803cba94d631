//! The site's stores as operators see them: file size, format, item types
//! and versions, and whether they wait for an upgrade.

use std::collections::HashMap;
use std::path::Path;

use mantle_site::{Site, SiteError};
use mantle_store::{Registry, StoreReport, SubStore, Unregistered};
use serde::{Deserialize, Serialize};

/// One store of the site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// The file, relative to the site directory.
    pub path: String,
    /// Its message address: `site`, `account:ID`, `app:NAME`.
    pub address: String,
    /// For a user store, its account's primary login.
    pub owner: Option<String>,
    /// Bytes on disk: the file and its write-ahead log.
    pub bytes: u64,
    /// The store format version (0 if unreadable).
    pub format_version: i64,
    /// Item types held, with their versions.
    pub types: Vec<TypeState>,
    /// Effects (messages among them) waiting to be dispatched.
    pub outbox_pending: i64,
    /// Effects parked after failing.
    pub outbox_parked: i64,
    /// Whether its items are at the versions this program knows.
    pub upgrade: UpgradeState,
}

/// One item type in a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeState {
    /// The type's name.
    pub type_name: String,
    /// The version its items are stored at.
    pub version: u32,
    /// The version this program knows it at (`None`: not registered; the
    /// store opens all the same and leaves these items alone).
    pub current: Option<u32>,
    /// Items stored at `version`.
    pub items: i64,
}

impl std::fmt::Display for TypeState {
    /// "note v3: 7"; for a type this program does not register, holding
    /// items, the store's own warning: "2 item(s) of type todo v1, not
    /// registered by this program".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.current.is_none() && self.items > 0 {
            return Unregistered {
                type_name: self.type_name.clone(),
                version: self.version,
                items: self.items,
            }
            .fmt(f);
        }
        write!(f, "{} v{}: {}", self.type_name, self.version, self.items)
    }
}

/// Whether a store's items are at the versions this program knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UpgradeState {
    /// Every item is at its current version.
    Current,
    /// Items at older versions: they are upgraded the next time the store
    /// opens (or by `mantle store upgrade` while the site is not served).
    Pending {
        /// Items at older versions.
        items: i64,
    },
    /// The store cannot be opened by this program: items at versions newer
    /// than it knows. (Items of types it does not register block nothing:
    /// they are left alone.)
    Blocked {
        /// What stands in the way.
        reason: String,
    },
    /// The file could not be read.
    Unreadable {
        /// Why.
        error: String,
    },
}

impl std::fmt::Display for UpgradeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpgradeState::Current => f.write_str("current"),
            UpgradeState::Pending { items } => {
                write!(f, "{items} items to upgrade at next open")
            }
            UpgradeState::Blocked { reason } => write!(f, "blocked: {reason}"),
            UpgradeState::Unreadable { error } => write!(f, "unreadable: {error}"),
        }
    }
}

/// Describes one store file from its report.
fn describe(
    dir: &Path,
    path: String,
    address: String,
    owner: Option<String>,
    registry: &Registry,
) -> StoreInfo {
    let file = dir.join(&path);
    let report = mantle_store::inspect(&file);
    let wal = {
        let mut p = file.clone().into_os_string();
        p.push("-wal");
        std::fs::metadata(p).map_or(0, |m| m.len())
    };
    let unreadable = |error: String| StoreInfo {
        path: path.clone(),
        address: address.clone(),
        owner: owner.clone(),
        bytes: std::fs::metadata(&file).map_or(0, |m| m.len()) + wal,
        format_version: 0,
        types: Vec::new(),
        outbox_pending: 0,
        outbox_parked: 0,
        upgrade: UpgradeState::Unreadable { error },
    };
    let r: StoreReport = match report {
        Ok(r) => r,
        Err(e) => return unreadable(e.to_string()),
    };
    let types: Vec<TypeState> = r
        .types
        .iter()
        .map(|t| TypeState {
            type_name: t.type_name.clone(),
            version: t.version,
            current: registry.current_version(&t.type_name),
            items: t.items,
        })
        .collect();
    StoreInfo {
        upgrade: upgrade_state(&types),
        path,
        address,
        owner,
        bytes: r.file_bytes + wal,
        format_version: r.format_version,
        types,
        outbox_pending: r.outbox_pending,
        outbox_parked: r.outbox_parked,
    }
}

fn upgrade_state(types: &[TypeState]) -> UpgradeState {
    let mut blocked = Vec::new();
    let mut pending = 0;
    for t in types.iter().filter(|t| t.items > 0) {
        match t.current {
            // Stores outlive code: left alone, not waited for.
            None => {}
            Some(c) if t.version > c => blocked.push(format!(
                "{} v{} is newer than this program's v{c}",
                t.type_name, t.version
            )),
            Some(c) if t.version < c => pending += t.items,
            Some(_) => {}
        }
    }
    if !blocked.is_empty() {
        UpgradeState::Blocked {
            reason: blocked.join("; "),
        }
    } else if pending > 0 {
        UpgradeState::Pending { items: pending }
    } else {
        UpgradeState::Current
    }
}

/// A page of the site's stores: the site store first, then the user and
/// app stores in the order they were made. Returns the total count too.
pub(crate) async fn list(
    site: &Site,
    offset: usize,
    limit: usize,
) -> Result<(usize, Vec<StoreInfo>), SiteError> {
    let subs = site
        .stores()
        .site_store()
        .read(|r| r.query::<SubStore>().all())
        .await?;
    let owners: HashMap<String, String> = site
        .accounts()
        .list()
        .await?
        .into_iter()
        .map(|a| (a.store, a.primary))
        .collect();
    let mut all: Vec<(String, String, Option<String>)> = vec![(
        mantle_site::SITE_STORE.to_string(),
        "site".to_string(),
        None,
    )];
    all.extend(subs.into_iter().map(|s| {
        let s = s.into_inner();
        let owner = owners.get(&s.path).cloned();
        (s.path, s.name, owner)
    }));
    let total = all.len();
    let page: Vec<_> = all.into_iter().skip(offset).take(limit).collect();
    let dir = site.dir().to_path_buf();
    let config = site.stores().site_store().config().clone();
    // Reading the files is blocking work.
    let infos = tokio::task::spawn_blocking(move || {
        page.into_iter()
            .map(|(path, address, owner)| describe(&dir, path, address, owner, config.registry()))
            .collect()
    })
    .await
    .map_err(|e| SiteError::TaskFailed {
        what: "reading the store files",
        reason: e.to_string(),
    })?;
    Ok((total, infos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(version: u32, current: Option<u32>, items: i64) -> TypeState {
        TypeState {
            type_name: "note".into(),
            version,
            current,
            items,
        }
    }

    #[test]
    fn upgrade_states() {
        assert_eq!(upgrade_state(&[t(2, Some(2), 5)]), UpgradeState::Current);
        assert_eq!(
            upgrade_state(&[t(1, Some(3), 4), t(2, Some(3), 1), t(3, Some(3), 9)]),
            UpgradeState::Pending { items: 5 }
        );
        assert_eq!(
            upgrade_state(&[t(1, Some(3), 0)]),
            UpgradeState::Current,
            "an empty old table waits for nothing"
        );
        let UpgradeState::Blocked { reason } = upgrade_state(&[t(4, Some(3), 1), t(1, None, 2)])
        else {
            panic!("not blocked")
        };
        assert_eq!(reason, "note v4 is newer than this program's v3");
        assert_eq!(
            upgrade_state(&[t(1, None, 2), t(2, Some(3), 1)]),
            UpgradeState::Pending { items: 1 },
            "a type this program does not register blocks nothing"
        );
        assert_eq!(upgrade_state(&[t(1, None, 2)]), UpgradeState::Current);
    }

    #[test]
    fn types_this_program_does_not_register_are_told_as_the_store_tells_them() {
        assert_eq!(t(3, Some(3), 7).to_string(), "note v3: 7");
        assert_eq!(
            t(1, None, 2).to_string(),
            "2 item(s) of type note v1, not registered by this program"
        );
        assert_eq!(t(1, None, 0).to_string(), "note v1: 0");
    }
}
