//! [`Program`]: what a `mantle` program serves.

use std::path::Path;
use std::sync::Arc;

use mantle_site::{Site, SiteBuilder};
use mantle_store::Registry;

/// What a `mantle` program serves: the layers every program has (the web
/// front and live objects) and the offerings its `main` adds.
///
/// ```
/// let program = mantle::Program::new(|site| site.offering(mantle_site::Offering::new("hello", 1)));
/// assert_eq!(program.installable(), ["hello"]);
/// ```
#[derive(Clone)]
pub struct Program(Arc<dyn Fn(SiteBuilder) -> SiteBuilder + Send + Sync>);

impl Program {
    /// A program whose sites are assembled by `assemble` (after the
    /// layers): `|site| site.offering(my_offering())`.
    pub fn new(assemble: impl Fn(SiteBuilder) -> SiteBuilder + Send + Sync + 'static) -> Self {
        Self(Arc::new(assemble))
    }

    /// A builder for the site in `dir`, with every layer and offering.
    pub fn site(&self, dir: &Path) -> SiteBuilder {
        (self.0)(
            Site::builder(dir)
                .section::<mantle_cluster::ClusterConfig>()
                .offering(mantle_web::offering())
                .offering(mantle_live_server::offering()),
        )
    }

    /// Every item type a site of this program can hold (what the store
    /// tools read stores with).
    pub fn registry(&self) -> Registry {
        self.site(Path::new(".")).registry()
    }

    /// The offerings a site of this program can install (not the layers).
    pub fn installable(&self) -> Vec<String> {
        self.site(Path::new(".")).installable()
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Program").field(&self.installable()).finish()
    }
}
