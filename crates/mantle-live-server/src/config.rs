//! The live objects' settings: the `[live]` section of `mantle.toml`,
//! with its environment overrides:
//!
//! | variable | setting |
//! |---|---|
//! | `MANTLE_LIVE_AMP` | `live.amp` (an address, or empty for none) |
//! | `MANTLE_LIVE_TLS` | `live.tls` (`true` / `false`) |

use std::net::SocketAddr;

use mantle_site::{ConfigSection, Result, SiteConfig, SiteError, parse_env};
use mantle_web::HttpConfig;
use serde::{Deserialize, Serialize};

/// Live objects: the AMP listener and per-connection limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Where the AMP listener listens; none when absent.
    pub amp: Option<SocketAddr>,
    /// Serve AMP over TLS, with the HTTP front's certificate
    /// (`http.tls_cert`, `http.tls_key`).
    pub tls: bool,
    /// Calls one connection may have running at once; more wait (the
    /// connection is read no further until one ends).
    pub max_in_flight: usize,
    /// Largest AMP box accepted, in bytes (a larger one closes the
    /// connection: AMP has no way to answer a box it could not read).
    /// Before a connection logs in, boxes are held to 16 KiB.
    pub max_box_bytes: usize,
    /// AMP connections served at once; when full, a new one takes the
    /// place of the one quiet longest.
    pub max_connections: usize,
    /// AMP connections served at once from one client address.
    pub max_connections_per_address: usize,
    /// Seconds an AMP connection has to log in (`Login` or
    /// `Authenticate`) before it is closed, however much it sends.
    pub login_timeout_secs: u64,
    /// Seconds a logged-in AMP connection may go without sending a byte.
    pub idle_timeout_secs: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            amp: None,
            tls: false,
            max_in_flight: 256,
            max_box_bytes: 1 << 20,
            max_connections: 10_000,
            max_connections_per_address: 256,
            login_timeout_secs: 10,
            idle_timeout_secs: 900,
        }
    }
}

impl ConfigSection for LiveConfig {
    const NAME: &'static str = "live";

    fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = var("MANTLE_LIVE_TLS") {
            self.tls = parse_env("MANTLE_LIVE_TLS", &v)?;
        }
        if let Some(v) = var("MANTLE_LIVE_AMP") {
            self.amp = match v.trim() {
                "" => None,
                addr => Some(parse_env("MANTLE_LIVE_AMP", addr)?),
            };
        }
        Ok(())
    }

    /// The caps are at least 1, a box at least 1 KiB; AMP over TLS needs
    /// the HTTP front's certificate.
    fn validate(&self, site: &SiteConfig) -> Result<()> {
        if self.max_connections == 0 || self.max_connections_per_address == 0 {
            return Err(SiteError::Config(
                "live.max_connections and live.max_connections_per_address must be at least 1"
                    .into(),
            ));
        }
        if self.max_in_flight == 0 || self.max_box_bytes < 1024 {
            return Err(SiteError::Config(
                "live.max_in_flight must be at least 1, live.max_box_bytes at least 1024".into(),
            ));
        }
        if self.tls && !site.section::<HttpConfig>()?.tls() {
            return Err(SiteError::Config(
                "live.tls serves AMP with the HTTP certificate, which needs http.tls_cert and http.tls_key".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amp_over_tls_needs_the_http_certificate() {
        let site: SiteConfig = toml::from_str("[live]\ntls = true").unwrap();
        let e = site.section_with_env::<LiveConfig>(&|_| None).unwrap_err();
        assert!(e.to_string().contains("live.tls"), "{e}");
        let site: SiteConfig =
            toml::from_str("[live]\ntls = true\n[http]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"")
                .unwrap();
        let env = |k: &str| (k == "MANTLE_LIVE_AMP").then(|| "127.0.0.1:7878".to_string());
        let live = site.section_with_env::<LiveConfig>(&env).unwrap();
        assert!(live.tls);
        assert_eq!(live.amp, Some(([127, 0, 0, 1], 7878).into()));
        let site: SiteConfig = toml::from_str("[live]\nmax_box_bytes = 10").unwrap();
        let e = site.section_with_env::<LiveConfig>(&|_| None).unwrap_err();
        assert!(e.to_string().contains("live.max_box_bytes"), "{e}");
    }
}
