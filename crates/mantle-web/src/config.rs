//! The web front's settings: the `[http]` section of `mantle.toml`, with
//! its environment overrides:
//!
//! | variable | setting |
//! |---|---|
//! | `MANTLE_HTTP_LISTEN` | `http.listen` |
//! | `MANTLE_HTTP_BEHIND_TLS` | `http.behind_tls` (`true` / `false`) |
//! | `MANTLE_HTTP_STATS_FROM_LOOPBACK` | `http.stats_from_loopback` (`true` / `false`) |
//! | `MANTLE_HTTP_TLS_CERT` | `http.tls_cert` (a path, or empty for none) |
//! | `MANTLE_HTTP_TLS_KEY` | `http.tls_key` (a path, or empty for none) |
//! | `MANTLE_HTTP_REDIRECT_LISTEN` | `http.redirect_listen` (an address, or empty for none) |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mantle_site::{ConfigSection, Result, SiteConfig, SiteError, parse_env};
use serde::{Deserialize, Serialize};

/// The HTTP front's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Set when a TLS proxy sits in front: cookies get `Secure` and
    /// answers `Strict-Transport-Security` (as when serving TLS itself).
    pub behind_tls: bool,
    /// The certificate chain (PEM, the server's certificate first) to
    /// serve HTTPS with; a relative path is relative to the site
    /// directory. Needs `tls_key`; without both, plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// A plain-HTTP listener answering every request with 308 to the
    /// `https://` URL of the same host and path (needs `tls_cert`).
    pub redirect_listen: Option<SocketAddr>,
    /// Largest request body accepted, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Time allowed to receive a request's headers, in seconds; also the
    /// time a new connection has to send its first byte.
    pub header_timeout_secs: u64,
    /// Connections served at once; when full, a new one takes the place
    /// of the one quiet longest (see `docs/operations.md`).
    pub max_connections: usize,
    /// Connections served at once from one client address.
    pub max_connections_per_address: usize,
    /// Seconds a connection may go without sending a byte before it is
    /// closed (between keep-alive requests, on HTTP/2, on a WebSocket,
    /// whose clients answer the server's pings).
    pub idle_timeout_secs: u64,
    /// Time allowed to receive a request's body, in seconds.
    pub body_timeout_secs: u64,
    /// Whether the statistics (`/stats`, `/stats.json`, `/metrics`) are
    /// answered to any request from a loopback address (and not only to
    /// admins). Requests relayed by a proxy (with `Forwarded`,
    /// `X-Forwarded-For` or `X-Real-IP`) never count as loopback; set this
    /// to `false` when a proxy on the same machine relays without them.
    pub stats_from_loopback: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            behind_tls: false,
            tls_cert: None,
            tls_key: None,
            redirect_listen: None,
            max_body_bytes: 1 << 20,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_connections: 10_000,
            max_connections_per_address: 256,
            idle_timeout_secs: 60,
            stats_from_loopback: true,
        }
    }
}

impl HttpConfig {
    /// Whether the HTTP front serves TLS itself (`tls_cert` is set).
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// Whether answers reach clients over TLS, served here or by a proxy
    /// in front: cookies get `Secure`, answers `Strict-Transport-Security`.
    pub fn over_tls(&self) -> bool {
        self.tls() || self.behind_tls
    }

    /// The certificate and key files, relative paths taken from `dir`
    /// (the site directory); `None` for plain HTTP.
    pub fn tls_files(&self, dir: &Path) -> Option<(PathBuf, PathBuf)> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((dir.join(cert), dir.join(key))),
            _ => None,
        }
    }
}

impl ConfigSection for HttpConfig {
    const NAME: &'static str = "http";

    fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = var("MANTLE_HTTP_LISTEN") {
            self.listen = parse_env("MANTLE_HTTP_LISTEN", &v)?;
        }
        if let Some(v) = var("MANTLE_HTTP_BEHIND_TLS") {
            self.behind_tls = parse_env("MANTLE_HTTP_BEHIND_TLS", &v)?;
        }
        if let Some(v) = var("MANTLE_HTTP_STATS_FROM_LOOPBACK") {
            self.stats_from_loopback = parse_env("MANTLE_HTTP_STATS_FROM_LOOPBACK", &v)?;
        }
        if let Some(v) = var("MANTLE_HTTP_TLS_CERT") {
            self.tls_cert = (!v.trim().is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = var("MANTLE_HTTP_TLS_KEY") {
            self.tls_key = (!v.trim().is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = var("MANTLE_HTTP_REDIRECT_LISTEN") {
            self.redirect_listen = match v.trim() {
                "" => None,
                addr => Some(parse_env("MANTLE_HTTP_REDIRECT_LISTEN", addr)?),
            };
        }
        Ok(())
    }

    /// The caps are at least 1; the TLS settings name both files or
    /// neither, and what needs TLS has it. (The files themselves are read
    /// when the service starts.)
    fn validate(&self, _site: &SiteConfig) -> Result<()> {
        if self.max_connections == 0 || self.max_connections_per_address == 0 {
            return Err(SiteError::Config(
                "http.max_connections and http.max_connections_per_address must be at least 1"
                    .into(),
            ));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(SiteError::Config(
                    "http.tls_cert is set but http.tls_key is not: TLS needs both".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(SiteError::Config(
                    "http.tls_key is set but http.tls_cert is not: TLS needs both".into(),
                ));
            }
            _ => {}
        }
        if let Some(addr) = self.redirect_listen
            && !self.tls()
        {
            return Err(SiteError::Config(format!(
                "http.redirect_listen = {addr} redirects to HTTPS, which needs http.tls_cert and http.tls_key"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<HttpConfig> {
        let site: SiteConfig = toml::from_str(text).unwrap();
        site.section_with_env::<HttpConfig>(env)
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = |k: &str| (k == "MANTLE_HTTP_LISTEN").then(|| "127.0.0.1:9999".to_string());
        let c = http("[http]\nlisten = \"127.0.0.1:1234\"", &env).unwrap();
        assert_eq!(c.listen.port(), 9999);
        let e = http("", &|k| {
            (k == "MANTLE_HTTP_LISTEN").then(|| "nowhere".into())
        })
        .unwrap_err();
        assert!(e.to_string().contains("MANTLE_HTTP_LISTEN=nowhere"), "{e}");
        let e = http("[http]\nmax_connections = 0", &|_| None).unwrap_err();
        assert!(e.to_string().contains("http.max_connections"), "{e}");
    }

    #[test]
    fn tls_settings_come_in_pairs_and_from_the_environment() {
        let env = |k: &str| match k {
            "MANTLE_HTTP_TLS_CERT" => Some("tls/cert.pem".to_string()),
            "MANTLE_HTTP_REDIRECT_LISTEN" => Some("127.0.0.1:8081".to_string()),
            _ => None,
        };
        let e = http("", &env).unwrap_err().to_string();
        assert!(e.contains("http.tls_key is not"), "{e}");
        let both = |k: &str| match k {
            "MANTLE_HTTP_TLS_KEY" => Some("/etc/key.pem".to_string()),
            k => env(k),
        };
        let c = http("", &both).unwrap();
        assert!(c.tls() && c.over_tls());
        assert_eq!(
            c.tls_files(Path::new("/srv/site")),
            Some(("/srv/site/tls/cert.pem".into(), "/etc/key.pem".into()))
        );
        assert_eq!(c.redirect_listen, Some(([127, 0, 0, 1], 8081).into()));

        // Empty values unset; what needs TLS then says so.
        let unset = |k: &str| match k {
            "MANTLE_HTTP_TLS_CERT" | "MANTLE_HTTP_TLS_KEY" => Some(String::new()),
            k => both(k),
        };
        let e = http("", &unset).unwrap_err().to_string();
        assert!(e.contains("http.redirect_listen = 127.0.0.1:8081"), "{e}");

        let mut site = SiteConfig::default();
        site.set_section(&HttpConfig::default()).unwrap();
        let text = toml::to_string_pretty(&site).unwrap();
        assert!(
            !text.contains("tls_cert"),
            "unset paths are left out:\n{text}"
        );
    }
}
