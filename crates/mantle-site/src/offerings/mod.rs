//! Offerings: the applications a site hosts.
//!
//! An [`Offering`] is one value that declares everything an application
//! brings: its name, version and description; its item types; its message
//! handlers; its app store; its configuration section
//! (`[offerings.NAME]`); the offerings it needs; hooks run when it is
//! installed into a site, given to a user, taken back, or upgraded; and
//! whatever upper layers attach to it (HTTP routes, live commands, …,
//! through their own extension traits). A program assembles a site from
//! its offerings with [`SiteBuilder::offering`](crate::SiteBuilder::offering).
//!
//! Being compiled into a program is not being installed in a site:
//! installation is data, an [`InstalledOffering`] in the site store (see
//! [`Offerings`]). An offering compiled in but not installed is absent
//! from the site — its routes answer 404, its commands `UNHANDLED`, and
//! messages to its handlers are refused with
//! [`NO_HANDLER`](crate::NO_HANDLER). Layers (the web front, live objects)
//! are declared the same way with [`Offering::layer`]: part of every site
//! of the program, never installed or uninstalled.

use std::sync::Arc;

use mantle_store::{Registry, Tx};

use crate::config::ConfigSection;
use crate::messaging::MessageHandlers;
use crate::site::SiteBuilder;

mod component;
mod give;
mod items;
mod products;

pub(crate) use component::Installed;
pub use component::{OfferingInfo, OfferingState, Offerings};
pub(crate) use give::register as register_gives;
pub use items::{GivenOffering, InstalledOffering, Product, ProductGrant};
pub(crate) use products::grant_in;
pub use products::{ProductInfo, Products};

/// Registers the items that record offerings, products and grants.
pub(crate) fn register(registry: &mut Registry) {
    registry
        .register::<InstalledOffering>()
        .register::<GivenOffering>()
        .register::<Product>()
        .register::<ProductGrant>();
}

/// A hook run in a store's transaction; an error undoes the whole
/// transaction (the install, the grant, the upgrade).
pub type Hook<A> = Arc<dyn Fn(&mut Tx<'_>, &A) -> Result<(), mantle_store::Error> + Send + Sync>;

/// What a hook on the site store is told.
#[derive(Debug, Clone)]
pub struct Installing {
    /// The offering's name.
    pub offering: String,
    /// The version being installed (the code's).
    pub version: u32,
    /// The version installed before: `None` on a first install, the older
    /// version on an upgrade.
    pub from: Option<u32>,
    /// The site's configuration sections (the offering's own with
    /// `settings.get::<MyConfig>()`).
    pub settings: crate::Settings,
}

/// What a hook on a user's store is told when the user is given an
/// offering, or it is taken back.
#[derive(Debug, Clone)]
pub struct Giving {
    /// The offering's name.
    pub offering: String,
    /// The user's account.
    pub account: mantle_store::Id<crate::Account>,
    /// The site's configuration sections (the offering's own with
    /// `settings.get::<MyConfig>()`).
    pub settings: crate::Settings,
}

/// Where an offering's items live (for the record, and for `--purge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The site store.
    Site,
    /// The offering's own app store (`app:NAME`).
    App,
    /// Every user store it was given to.
    User,
}

/// Adds what an offering brings to a site builder.
type Attach = Box<dyn FnOnce(SiteBuilder) -> SiteBuilder + Send>;

/// An application, declared once (see the [module docs](self)).
///
/// ```
/// use mantle_site::{Offering, Scope};
/// # #[derive(mantle_store::Item, Clone)]
/// # #[item(name = "bookmarks_bookmark", version = 1)]
/// # struct Bookmark { url: String }
/// let bookmarks = Offering::new("bookmarks", 1)
///     .description("Links worth keeping")
///     .items(Scope::User, |r| {
///         r.register::<Bookmark>();
///     })
///     .on_given(|tx, _giving| {
///         tx.insert(&Bookmark { url: "https://example.com/welcome".into() })?;
///         Ok(())
///     });
/// assert_eq!(bookmarks.name(), "bookmarks");
/// ```
pub struct Offering {
    decl: Declared,
    attach: Vec<Attach>,
}

/// What a site keeps of an offering once assembled.
#[derive(Clone)]
pub(crate) struct Declared {
    pub(super) name: String,
    pub(super) version: u32,
    pub(super) description: String,
    pub(super) requires: Vec<String>,
    pub(super) layer: bool,
    pub(super) app_store: bool,
    /// Item type names by scope, learnt from its registrations.
    pub(super) types: Vec<(Scope, String)>,
    pub(super) on_install: Option<Hook<Installing>>,
    pub(super) on_upgrade: Option<Hook<Installing>>,
    pub(super) on_given: Option<Hook<Giving>>,
    pub(super) on_taken: Option<Hook<Giving>>,
}

impl Offering {
    /// An offering named `name` (lower-case letters, digits, `-` and `_`:
    /// it names its app store, its configuration section and its URLs)
    /// at code version `version` (raise it, and
    /// [`on_upgrade`](Self::on_upgrade) runs where an older one is installed).
    pub fn new(name: &str, version: u32) -> Self {
        Self {
            decl: Declared {
                name: name.to_string(),
                version,
                description: String::new(),
                requires: Vec::new(),
                layer: false,
                app_store: false,
                types: Vec::new(),
                on_install: None,
                on_upgrade: None,
                on_given: None,
                on_taken: None,
            },
            attach: Vec::new(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.decl.name
    }

    /// Its code version.
    pub fn version(&self) -> u32 {
        self.decl.version
    }

    /// Whether it is a layer (see [`layer`](Self::layer)).
    pub fn is_layer(&self) -> bool {
        self.decl.layer
    }

    /// One line saying what it is, for listings and users' home pages.
    pub fn description(mut self, text: &str) -> Self {
        self.decl.description = text.to_string();
        self
    }

    /// Declares that it needs the offering (or layer) `name`: a program
    /// that includes this one without `name` is refused when the site
    /// opens, and it cannot be installed before `name` is.
    pub fn requires(mut self, name: &str) -> Self {
        if !self.decl.requires.iter().any(|r| r == name) {
            self.decl.requires.push(name.to_string());
        }
        self
    }

    /// Makes it a layer: part of every site of the program, never
    /// installed, uninstalled or given (the web front, live objects).
    pub fn layer(mut self) -> Self {
        self.decl.layer = true;
        self
    }

    /// Registers item types (and their upgraders, powerups, tasks) kept in
    /// the stores of `scope`.
    pub fn items(
        mut self,
        scope: Scope,
        register: impl Fn(&mut Registry) + Send + Sync + 'static,
    ) -> Self {
        let (built_in, mut scratch) = (Registry::new(), Registry::new());
        register(&mut scratch);
        self.decl.types.extend(
            scratch
                .type_names()
                .into_iter()
                .filter(|t| !built_in.knows(t))
                .map(|t| (scope, t.to_string())),
        );
        self.then(move |b| b.with(register))
    }

    /// Gives it an app store, `app:NAME`, made when it is installed.
    pub fn app_store(mut self) -> Self {
        self.decl.app_store = true;
        let name = self.decl.name.clone();
        self.then(move |b| b.app(&name))
    }

    /// Registers message handlers. While the offering is not installed,
    /// messages to them are refused with [`NO_HANDLER`](crate::NO_HANDLER)
    /// (answers to messages it sent are still handled).
    pub fn messages(
        mut self,
        register: impl Fn(&mut MessageHandlers) + Send + Sync + 'static,
    ) -> Self {
        let name = self.decl.name.clone();
        self.attach.push(Box::new(move |b: SiteBuilder| {
            b.offering_messages(&name, register)
        }));
        self
    }

    /// Declares its configuration, `[offerings.NAME]` in `mantle.toml`:
    /// parsed, overridden from the environment and checked when the site
    /// opens (one clear error naming the key), read with
    /// [`Site::section`](crate::Site::section). `T::NAME` must be the
    /// offering's name.
    pub fn config<T: ConfigSection>(self) -> Self {
        assert_eq!(
            T::NAME,
            self.decl.name,
            "an offering's configuration section is named after it"
        );
        self.then(|b| b.offering_section::<T>())
    }

    /// Runs `hook` in the site store's transaction that upgrades the
    /// record of an installed offering to a newer code version (when a
    /// site is opened by a program whose offering is newer than the one
    /// installed; [`Installing::from`] is the older version).
    pub fn on_upgrade(
        mut self,
        hook: impl Fn(&mut Tx<'_>, &Installing) -> Result<(), mantle_store::Error>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.decl.on_upgrade = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` in the site store's transaction that installs the
    /// offering (the first time: uninstalling and installing again runs
    /// it again; the data it left is still there).
    pub fn on_install(
        mut self,
        hook: impl Fn(&mut Tx<'_>, &Installing) -> Result<(), mantle_store::Error>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.decl.on_install = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` in a user's store's transaction when the user is given
    /// the offering (through a product: at the grant, or when the offering
    /// is installed after the grant). It runs once per user however often
    /// the grant is repeated; what it makes is the user's "installables".
    pub fn on_given(
        mut self,
        hook: impl Fn(&mut Tx<'_>, &Giving) -> Result<(), mantle_store::Error> + Send + Sync + 'static,
    ) -> Self {
        self.decl.on_given = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` in a user's store's transaction when the offering is
    /// taken back from the user: it removes the installables and keeps the
    /// user's data.
    pub fn on_taken(
        mut self,
        hook: impl Fn(&mut Tx<'_>, &Giving) -> Result<(), mantle_store::Error> + Send + Sync + 'static,
    ) -> Self {
        self.decl.on_taken = Some(Arc::new(hook));
        self
    }

    /// Declares that users may share items of type `T` (see
    /// [`sharing`](crate::sharing)): the web front then shows shared `T`s
    /// at `/users/LOGIN/SHARE_ID` and serves them in its Shoji API, as
    /// JSON (hence `Serialize` and `Deserialize`).
    pub fn shareable<T>(self) -> Self
    where
        T: mantle_store::Item + serde::Serialize + serde::de::DeserializeOwned,
    {
        let name = self.name().to_string();
        self.then(move |b| b.extension::<crate::sharing::ShareableTypes>(|t| t.add::<T>(&name)))
    }

    /// Adds anything else to the site builder when the offering is
    /// assembled into a site: what upper layers' extension traits use to
    /// attach routes, live commands or effect handlers to an offering.
    pub fn then(mut self, f: impl FnOnce(SiteBuilder) -> SiteBuilder + Send + 'static) -> Self {
        self.attach.push(Box::new(f));
        self
    }

    /// Splits the declaration from what it adds to a builder.
    pub(crate) fn into_parts(self) -> (Declared, Vec<Attach>) {
        (self.decl, self.attach)
    }
}

impl std::fmt::Debug for Offering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offering")
            .field("name", &self.decl.name)
            .field("version", &self.decl.version)
            .finish()
    }
}

/// Checks the program's offerings: valid names, each once, and every
/// requirement included.
pub(crate) fn check_program(offerings: &[Declared]) -> crate::Result<()> {
    for (i, o) in offerings.iter().enumerate() {
        check_name(&o.name)?;
        if offerings[..i].iter().any(|p| p.name == o.name) {
            return Err(crate::SiteError::DuplicateOffering(o.name.clone()));
        }
        if let Some(missing) = o
            .requires
            .iter()
            .find(|r| !offerings.iter().any(|p| &p.name == *r))
        {
            return Err(crate::SiteError::OfferingMissing {
                offering: o.name.clone(),
                needs: missing.clone(),
            });
        }
    }
    Ok(())
}

/// The names of the offerings that a site can install (not the layers),
/// in the order given.
pub(crate) fn installable(offerings: &[Declared]) -> Vec<String> {
    offerings
        .iter()
        .filter(|o| !o.layer)
        .map(|o| o.name.clone())
        .collect()
}

/// Checks that an offering's name can name a store, a section and a URL.
pub(crate) fn check_name(name: &str) -> crate::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(crate::SiteError::BadOfferingName(name.to_string()))
    }
}
