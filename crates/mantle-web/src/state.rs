//! What every handler shares.

use std::sync::Arc;

use mantle_site::Site;

use crate::templates::Templates;

/// The state behind the router.
#[derive(Clone)]
pub struct AppState {
    /// The site served.
    pub site: Site,
    /// Page templates.
    pub templates: Arc<Templates>,
}

impl AppState {
    /// State for serving `site`.
    pub fn new(site: Site) -> Self {
        let offered = site
            .extension::<crate::WebTemplates>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        let templates = Arc::new(Templates::new(site.dir().join("templates"), offered));
        Self { site, templates }
    }

    /// Whether cookies must be `Secure`: served over TLS, here or by a
    /// proxy in front.
    pub fn secure_cookies(&self) -> bool {
        self.site.section::<crate::HttpConfig>().over_tls()
    }
}
