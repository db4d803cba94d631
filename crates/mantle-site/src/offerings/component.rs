//! [`Offerings`]: which of the program's offerings a site has installed,
//! installing and uninstalling them.

use std::collections::HashMap;
use std::sync::Arc;

use mantle_store::Timestamp;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::give::{Change, send_changes};
use super::items::{InstalledOffering, ProductGrant};
use super::{Declared, GivenOffering, Installing, Product, Scope};
use crate::Settings;
use crate::stores::Stores;
use crate::{Result, SiteError};

/// The offerings installed now, by name, with their versions (layers
/// included). Shared with what must answer at once whether an offering is
/// present: message handlers, routes, commands.
#[derive(Clone, Default)]
pub(crate) struct Installed(Arc<RwLock<HashMap<String, u32>>>);

impl Installed {
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0.read().contains_key(name)
    }
}

/// Where an offering stands in a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum OfferingState {
    /// A layer of the program: always present.
    Layer,
    /// Installed, at this version.
    Installed {
        /// The version recorded in the site store.
        installed_version: u32,
    },
    /// In the program, not installed: absent from the site.
    Available,
    /// Installed in the site by a program that had it; this one does not
    /// (its data is kept, untouched).
    NotInProgram {
        /// The version recorded in the site store.
        installed_version: u32,
    },
}

/// An offering as listed to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferingInfo {
    /// Its name.
    pub name: String,
    /// The program's version of it (0 when the program does not have it).
    pub version: u32,
    /// What it is.
    pub description: String,
    /// What it needs.
    pub requires: Vec<String>,
    /// Where it stands.
    #[serde(flatten)]
    pub state: OfferingState,
}

/// The site's offerings (see [`Site::offerings`](crate::Site::offerings)
/// and the [module docs](crate::offerings)).
///
/// ```no_run
/// # async fn f(site: mantle_site::Site) -> mantle_site::Result<()> {
/// site.offerings().install("ledger").await?;
/// assert!(site.offerings().is_installed("ledger"));
/// site.offerings().uninstall("ledger").await?; // its data stays
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Offerings(Arc<Inner>);

struct Inner {
    stores: Stores,
    /// The program's offerings, in the order it declared them.
    declared: Arc<Vec<Declared>>,
    installed: Installed,
    /// The site's configuration sections, for the hooks.
    settings: Settings,
    /// Serialises installs and uninstalls (each checks, then writes).
    changing: tokio::sync::Mutex<()>,
}

impl Offerings {
    /// Reads what the site has installed, upgrades the records of
    /// offerings the program has newer (running their upgrade hooks), and
    /// marks the layers present.
    pub(crate) async fn open(
        stores: Stores,
        declared: Arc<Vec<Declared>>,
        installed: Installed,
        settings: Settings,
    ) -> Result<Self> {
        let (decl, hook_settings) = (declared.clone(), settings.clone());
        let records = stores
            .site_store()
            .transact(move |tx| {
                let mut out = HashMap::new();
                for mut rec in tx.query::<InstalledOffering>().all()? {
                    let recorded = u32::try_from(rec.version).unwrap_or(0);
                    if let Some(d) = decl.iter().find(|d| d.name == rec.name)
                        && d.version > recorded
                    {
                        if let Some(hook) = &d.on_upgrade {
                            hook(
                                tx,
                                &Installing {
                                    offering: d.name.clone(),
                                    version: d.version,
                                    from: Some(recorded),
                                    settings: hook_settings.clone(),
                                },
                            )?;
                        }
                        rec.version = i64::from(d.version);
                        tx.update(&mut rec)?;
                        tracing::info!(offering = %d.name, from = recorded, to = d.version, "offering upgraded");
                    }
                    out.insert(rec.name.clone(), u32::try_from(rec.version).unwrap_or(0));
                }
                Ok::<_, SiteError>(out)
            })
            .await?;
        {
            let mut set = installed.0.write();
            set.clear();
            for d in declared.iter().filter(|d| d.layer) {
                set.insert(d.name.clone(), d.version);
            }
            for (name, version) in records {
                // Recorded but not in the program: data only, not present.
                if declared.iter().any(|d| d.name == name) {
                    set.insert(name, version);
                }
            }
        }
        Ok(Self(Arc::new(Inner {
            stores,
            declared,
            installed,
            settings,
            changing: tokio::sync::Mutex::new(()),
        })))
    }

    /// Whether `name` is present in the site: a layer, or installed (and
    /// in the program). Cheap: no store is read.
    pub fn is_installed(&self, name: &str) -> bool {
        self.0.installed.contains(name)
    }

    /// The program's declaration of `name`, if it has one.
    fn declared(&self, name: &str) -> Result<&Declared> {
        self.0
            .declared
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| SiteError::NoSuchOffering(name.to_string()))
    }

    /// Every offering the program has or the site recorded, program
    /// order first.
    pub async fn list(&self) -> Result<Vec<OfferingInfo>> {
        let records = self
            .0
            .stores
            .site_store()
            .read(|r| r.query::<InstalledOffering>().all())
            .await?;
        let mut out: Vec<OfferingInfo> = self
            .0
            .declared
            .iter()
            .map(|d| {
                let recorded = records.iter().find(|r| r.name == d.name);
                OfferingInfo {
                    name: d.name.clone(),
                    version: d.version,
                    description: d.description.clone(),
                    requires: d.requires.clone(),
                    state: match recorded {
                        _ if d.layer => OfferingState::Layer,
                        Some(r) => OfferingState::Installed {
                            installed_version: u32::try_from(r.version).unwrap_or(0),
                        },
                        None => OfferingState::Available,
                    },
                }
            })
            .collect();
        for r in &records {
            if !self.0.declared.iter().any(|d| d.name == r.name) {
                out.push(OfferingInfo {
                    name: r.name.clone(),
                    version: 0,
                    description: String::new(),
                    requires: Vec::new(),
                    state: OfferingState::NotInProgram {
                        installed_version: u32::try_from(r.version).unwrap_or(0),
                    },
                });
            }
        }
        Ok(out)
    }

    /// One offering, as [`list`](Self::list) shows it.
    pub async fn get(&self, name: &str) -> Result<OfferingInfo> {
        self.list()
            .await?
            .into_iter()
            .find(|o| o.name == name)
            .ok_or_else(|| SiteError::NoSuchOffering(name.to_string()))
    }

    /// Installs `name` in the site: records it, makes its app store, runs
    /// its install hook (all in one site store transaction), and gives it
    /// to the users whose products include it. Installing an installed
    /// offering changes nothing. Refused for an offering the program does
    /// not have, a layer, or one whose requirements are not installed.
    pub async fn install(&self, name: &str) -> Result<OfferingInfo> {
        let _one_at_a_time = self.0.changing.lock().await;
        let d = self.declared(name)?.clone();
        if d.layer {
            return Err(SiteError::OfferingIsLayer(d.name));
        }
        if let Some(missing) = d.requires.iter().find(|r| !self.is_installed(r)) {
            return Err(SiteError::OfferingNeeds {
                offering: d.name.clone(),
                needs: missing.clone(),
            });
        }
        let version = d.version;
        let (decl, settings) = (d.clone(), self.0.settings.clone());
        let installed_now = self
            .0
            .stores
            .site_store()
            .transact(move |tx| {
                if tx
                    .query::<InstalledOffering>()
                    .filter(InstalledOffering::NAME.eq(decl.name.as_str()))
                    .exists()?
                {
                    return Ok(false);
                }
                tx.insert(&InstalledOffering {
                    name: decl.name.clone(),
                    version: i64::from(decl.version),
                    installed: Timestamp::now(),
                })?;
                if decl.app_store {
                    crate::stores::ensure_app_substore(tx, &decl.name)?;
                }
                if let Some(hook) = &decl.on_install {
                    hook(
                        tx,
                        &Installing {
                            offering: decl.name.clone(),
                            version: decl.version,
                            from: None,
                            settings: settings.clone(),
                        },
                    )?;
                }
                // Users whose products include it get it now.
                let products: Vec<String> = tx
                    .query::<Product>()
                    .all()?
                    .into_iter()
                    .filter(|p| p.offering_names().contains(&decl.name))
                    .map(|p| p.into_inner().name)
                    .collect();
                for product in products {
                    let holders: Vec<_> = tx
                        .query::<ProductGrant>()
                        .filter(ProductGrant::PRODUCT.eq(product.as_str()))
                        .all()?
                        .into_iter()
                        .map(|g| g.account)
                        .collect();
                    for account in holders {
                        send_changes(tx, account, std::slice::from_ref(&decl.name), Change::Give)?;
                    }
                }
                Ok::<_, SiteError>(true)
            })
            .await?;
        if installed_now {
            self.0.installed.0.write().insert(d.name.clone(), version);
            tracing::info!(offering = %d.name, version, "offering installed");
        }
        self.get(name).await
    }

    /// Uninstalls `name`: it is absent from the site from now on; its
    /// data (items, app store, what users were given) is kept, and a later
    /// install finds it. Refused while an installed offering needs it.
    pub async fn uninstall(&self, name: &str) -> Result<()> {
        let _one_at_a_time = self.0.changing.lock().await;
        if self.declared(name).is_ok_and(|d| d.layer) {
            return Err(SiteError::OfferingIsLayer(name.to_string()));
        }
        if let Some(dependent) = self.0.declared.iter().find(|d| {
            !d.layer && self.is_installed(&d.name) && d.requires.iter().any(|r| r == name)
        }) {
            return Err(SiteError::OfferingNeeds {
                offering: dependent.name.clone(),
                needs: name.to_string(),
            });
        }
        let key = name.to_string();
        let removed = self
            .0
            .stores
            .site_store()
            .transact(move |tx| tx.delete_where(InstalledOffering::NAME.eq(key.as_str())))
            .await?;
        if removed == 0 {
            return Err(SiteError::OfferingNotInstalled(name.to_string()));
        }
        self.0.installed.0.write().remove(name);
        tracing::info!(offering = name, "offering uninstalled (data kept)");
        Ok(())
    }

    /// Uninstalls `name`, and with `purge` deletes its data too (an
    /// offering already uninstalled is then only purged); returns the
    /// items deleted (0 without `purge`). What `mantle offering uninstall`
    /// and the admin API do.
    pub async fn remove(&self, name: &str, purge: bool) -> Result<u64> {
        if !purge || self.is_installed(name) {
            self.uninstall(name).await?;
        }
        if purge { self.purge(name).await } else { Ok(0) }
    }

    /// Deletes what an uninstalled offering left: its items in the site
    /// store and in every user store (and the users' records of being
    /// given it), and its app store. Refused while it is installed
    /// ([`SiteError::OfferingInstalled`]): uninstall it first. Returns how
    /// many items were deleted (the app store's not counted). Grants of
    /// products naming it stay: installing it again gives it afresh.
    pub async fn purge(&self, name: &str) -> Result<u64> {
        let _one_at_a_time = self.0.changing.lock().await;
        let d = self.declared(name)?.clone();
        if d.layer {
            return Err(SiteError::OfferingIsLayer(d.name));
        }
        if self.is_installed(name) {
            return Err(SiteError::OfferingInstalled(d.name));
        }
        let of = |scope: Scope| -> Vec<String> {
            d.types
                .iter()
                .filter(|(s, _)| *s == scope)
                .map(|(_, t)| t.clone())
                .collect()
        };
        let site_types = of(Scope::Site);
        let mut deleted = self
            .0
            .stores
            .site_store()
            .transact(move |tx| delete_types(tx, &site_types))
            .await?;
        let user_types = of(Scope::User);
        for address in self.0.stores.user_addresses().await? {
            let store = self.0.stores.at_address(&address).await?;
            let (types, given) = (user_types.clone(), d.name.clone());
            deleted += store
                .transact(move |tx| {
                    tx.delete_where(GivenOffering::NAME.eq(given.as_str()))?;
                    delete_types(tx, &types)
                })
                .await?;
        }
        if d.app_store {
            self.0.stores.remove_app_store(&d.name).await?;
        }
        tracing::info!(offering = name, deleted, "offering purged");
        Ok(deleted)
    }
}

/// Deletes every item of the types named.
fn delete_types(tx: &mut mantle_store::Tx<'_>, types: &[String]) -> Result<u64> {
    let mut n = 0;
    for t in types {
        n += tx.delete_all_of_type(t)?;
    }
    Ok(n)
}
