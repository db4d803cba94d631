//! The configuration: `[offerings.bookmarks]` in `mantle.toml`.

use std::time::Duration;

use mantle_site::{ConfigSection, SiteConfig, SiteError};
use serde::{Deserialize, Serialize};

use crate::NAME;

/// The longest sweep period, in minutes (a year).
pub const MAX_SWEEP_MINUTES: u32 = 525_600;

/// `[offerings.bookmarks]` in `mantle.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How the page greets its user (`MANTLE_BOOKMARKS_GREETING` overrides it).
    pub greeting: String,
    /// The most bookmarks a user keeps: the sweep deletes the oldest
    /// beyond it (`MANTLE_BOOKMARKS_MAX_PER_USER`).
    pub max_per_user: u32,
    /// How often each user's list is swept, in minutes
    /// (`MANTLE_BOOKMARKS_SWEEP_MINUTES`).
    pub sweep_minutes: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            greeting: "Hello".into(),
            max_per_user: 1000,
            sweep_minutes: 60,
        }
    }
}

impl Config {
    /// The sweep's period.
    pub fn sweep_every(&self) -> Duration {
        Duration::from_secs(u64::from(self.sweep_minutes) * 60)
    }
}

impl ConfigSection for Config {
    const NAME: &'static str = NAME;

    fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> mantle_site::Result<()> {
        if let Some(v) = var("MANTLE_BOOKMARKS_GREETING") {
            self.greeting = v;
        }
        if let Some(v) = var("MANTLE_BOOKMARKS_MAX_PER_USER") {
            self.max_per_user = mantle_site::parse_env("MANTLE_BOOKMARKS_MAX_PER_USER", &v)?;
        }
        if let Some(v) = var("MANTLE_BOOKMARKS_SWEEP_MINUTES") {
            self.sweep_minutes = mantle_site::parse_env("MANTLE_BOOKMARKS_SWEEP_MINUTES", &v)?;
        }
        Ok(())
    }

    fn validate(&self, _: &SiteConfig) -> mantle_site::Result<()> {
        let bad = |text: String| Err(SiteError::Config(format!("offerings.{NAME}.{text}")));
        if self.greeting.trim().is_empty() {
            return bad("greeting must not be empty".into());
        }
        if self.max_per_user == 0 {
            return bad("max_per_user must be at least 1 (got 0)".into());
        }
        if self.sweep_minutes == 0 || self.sweep_minutes > MAX_SWEEP_MINUTES {
            return bad(format!(
                "sweep_minutes must be between 1 and {MAX_SWEEP_MINUTES} (got {})",
                self.sweep_minutes
            ));
        }
        Ok(())
    }
}
