//! Site configuration: `mantle.toml` in the site directory, with
//! environment overrides.
//!
//! Every setting has a default, so an empty file is a valid configuration.
//! Environment variables override the file:
//!
//! | variable | setting |
//! |---|---|
//! | `MANTLE_DOMAIN` | `domain` |
//! | `MANTLE_HTTP_LISTEN` | `http.listen` |
//! | `MANTLE_HTTP_BEHIND_TLS` | `http.behind_tls` (`true` / `false`) |
//! | `MANTLE_HTTP_STATS_FROM_LOOPBACK` | `http.stats_from_loopback` (`true` / `false`) |
//! | `MANTLE_HTTP_TLS_CERT` | `http.tls_cert` (a path, or empty for none) |
//! | `MANTLE_HTTP_TLS_KEY` | `http.tls_key` (a path, or empty for none) |
//! | `MANTLE_HTTP_REDIRECT_LISTEN` | `http.redirect_listen` (an address, or empty for none) |
//! | `MANTLE_LIVE_AMP` | `live.amp` (an address, or empty for none) |
//! | `MANTLE_LIVE_TLS` | `live.tls` (`true` / `false`) |
//! | `MANTLE_SIGNUP_POLICY` | `signup.policy` (`open`, `invite`, `admin`) |
//! | `MANTLE_TOKEN_TTL_HOURS` | `auth.token_ttl_hours` |
//! | `MANTLE_LOGIN_ATTEMPTS_PER_MINUTE` | `auth.login_attempts_per_minute` |
//! | `MANTLE_STORE_CACHE` | `stores.cache_capacity` |
//! | `MANTLE_DURABILITY` | `stores.durability` (`full`, `process`) |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Result, SiteError};

/// Who may create accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignupPolicy {
    /// Anyone may sign up.
    Open,
    /// Signing up needs an invite code.
    Invite,
    /// Only an administrator creates accounts (`mantle user add`).
    #[default]
    Admin,
}

impl SignupPolicy {
    /// The policy's name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            SignupPolicy::Open => "open",
            SignupPolicy::Invite => "invite",
            SignupPolicy::Admin => "admin",
        }
    }
}

impl std::str::FromStr for SignupPolicy {
    type Err = SiteError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "open" => Ok(SignupPolicy::Open),
            "invite" => Ok(SignupPolicy::Invite),
            "admin" => Ok(SignupPolicy::Admin),
            other => Err(SiteError::Config(format!(
                "signup policy '{other}' is not one of open, invite, admin"
            ))),
        }
    }
}

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

/// Signup settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignupConfig {
    /// Who may create accounts.
    pub policy: SignupPolicy,
    /// Signups (under `open` or `invite`) accepted per hour in all, from
    /// every address together: each makes a user store file, so strangers
    /// may not make them without end. Past it, 429 with `Retry-After`.
    pub max_per_hour: u32,
}

impl Default for SignupConfig {
    fn default() -> Self {
        Self {
            policy: SignupPolicy::default(),
            max_per_hour: 600,
        }
    }
}

/// Authentication settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// How long a login token lives, in hours.
    pub token_ttl_hours: u64,
    /// Login attempts allowed per client address per minute (then 429).
    pub login_attempts_per_minute: u32,
    /// How often expired tokens are swept, in seconds.
    pub sweep_interval_secs: u64,
    /// Failed logins for one login name (from any address, within 15
    /// minutes) before each further attempt must wait, doubling from 1 s.
    pub failures_before_backoff: u32,
    /// The longest wait the back-off imposes, in seconds.
    pub max_backoff_secs: u64,
    /// Threads checking passwords (each holds argon2's 19 MiB); 0: one per
    /// core, at most 4.
    pub password_workers: usize,
    /// Password checks that may wait per lane; past it, attempts are
    /// refused at once (503 with `Retry-After`).
    pub password_queue: usize,
    /// The share of one core that connections from suspect addresses
    /// (`failures_before_backoff` failed or refused logins, the last
    /// within a minute) use between them, served one at a time; past it,
    /// they wait their turn (0.01 to 1).
    pub suspect_cpu_share: f64,
}

impl AuthConfig {
    /// The number of password worker threads in force.
    pub fn workers(&self) -> usize {
        match self.password_workers {
            0 => std::thread::available_parallelism()
                .map_or(2, std::num::NonZeroUsize::get)
                .min(4),
            n => n,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_ttl_hours: 24 * 30,
            login_attempts_per_minute: 10,
            sweep_interval_secs: 600,
            failures_before_backoff: 5,
            max_backoff_secs: 300,
            password_workers: 0,
            password_queue: 16,
            suspect_cpu_share: 0.1,
        }
    }
}

/// Store settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoresConfig {
    /// User and app stores kept open at once.
    pub cache_capacity: usize,
    /// `full` (survives power loss) or `process` (survives a crash).
    pub durability: String,
}

impl Default for StoresConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 1000,
            durability: "full".into(),
        }
    }
}

/// The whole configuration of a site.
///
/// ```
/// let config: mantle_site::SiteConfig = toml::from_str(r#"
///     domain = "example.com"
///     [signup]
///     policy = "open"
/// "#).unwrap();
/// assert_eq!(config.signup.policy, mantle_site::SignupPolicy::Open);
/// assert_eq!(config.http.listen.port(), 8080);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// The site's mail domain: `mantle user add DIR alice` means
    /// `alice@DOMAIN`.
    pub domain: String,
    /// The HTTP front.
    pub http: HttpConfig,
    /// Signup.
    pub signup: SignupConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Stores.
    pub stores: StoresConfig,
    /// Live objects (AMP and WebSocket).
    pub live: LiveConfig,
}

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

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            domain: "localhost".into(),
            http: HttpConfig::default(),
            signup: SignupConfig::default(),
            auth: AuthConfig::default(),
            stores: StoresConfig::default(),
            live: LiveConfig::default(),
        }
    }
}

/// The configuration file's name in a site directory.
pub const CONFIG_FILE: &str = "mantle.toml";

impl SiteConfig {
    /// Reads `DIR/mantle.toml` (defaults if missing), then applies
    /// environment overrides.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| SiteError::Config(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SiteConfig::default(),
            Err(e) => return Err(SiteError::io(path, e)),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Writes the configuration as `DIR/mantle.toml`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(CONFIG_FILE);
        let text = toml::to_string_pretty(self)
            .map_err(|e| SiteError::Config(format!("cannot encode: {e}")))?;
        // Private like the stores: it may name keys and secrets.
        let mut file = mantle_store::private_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| SiteError::io(&path, e))?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| SiteError::io(path, e))
    }

    /// Applies overrides from an environment (a lookup function, so tests
    /// need not touch the process environment).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn parse<T: std::str::FromStr>(name: &str, v: &str) -> Result<T>
        where
            T::Err: std::fmt::Display,
        {
            v.parse()
                .map_err(|e| SiteError::Config(format!("{name}={v}: {e}")))
        }
        if let Some(v) = var("MANTLE_DOMAIN") {
            self.domain = v;
        }
        if let Some(v) = var("MANTLE_HTTP_LISTEN") {
            self.http.listen = parse("MANTLE_HTTP_LISTEN", &v)?;
        }
        if let Some(v) = var("MANTLE_HTTP_BEHIND_TLS") {
            self.http.behind_tls = parse("MANTLE_HTTP_BEHIND_TLS", &v)?;
        }
        if let Some(v) = var("MANTLE_HTTP_STATS_FROM_LOOPBACK") {
            self.http.stats_from_loopback = parse("MANTLE_HTTP_STATS_FROM_LOOPBACK", &v)?;
        }
        if let Some(v) = var("MANTLE_HTTP_TLS_CERT") {
            self.http.tls_cert = (!v.trim().is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = var("MANTLE_HTTP_TLS_KEY") {
            self.http.tls_key = (!v.trim().is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = var("MANTLE_HTTP_REDIRECT_LISTEN") {
            self.http.redirect_listen = match v.trim() {
                "" => None,
                addr => Some(parse("MANTLE_HTTP_REDIRECT_LISTEN", addr)?),
            };
        }
        if let Some(v) = var("MANTLE_LIVE_TLS") {
            self.live.tls = parse("MANTLE_LIVE_TLS", &v)?;
        }
        if let Some(v) = var("MANTLE_LIVE_AMP") {
            self.live.amp = match v.trim() {
                "" => None,
                addr => Some(parse("MANTLE_LIVE_AMP", addr)?),
            };
        }
        if let Some(v) = var("MANTLE_SIGNUP_POLICY") {
            self.signup.policy = v.parse()?;
        }
        if let Some(v) = var("MANTLE_TOKEN_TTL_HOURS") {
            self.auth.token_ttl_hours = parse("MANTLE_TOKEN_TTL_HOURS", &v)?;
        }
        if let Some(v) = var("MANTLE_LOGIN_ATTEMPTS_PER_MINUTE") {
            self.auth.login_attempts_per_minute = parse("MANTLE_LOGIN_ATTEMPTS_PER_MINUTE", &v)?;
        }
        if let Some(v) = var("MANTLE_STORE_CACHE") {
            self.stores.cache_capacity = parse("MANTLE_STORE_CACHE", &v)?;
        }
        if let Some(v) = var("MANTLE_DURABILITY") {
            self.stores.durability = v;
        }
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        if crate::address::valid_domain(&self.domain).is_none() {
            return Err(SiteError::Config(format!(
                "domain '{}' is not a valid domain",
                self.domain
            )));
        }
        if self.stores.cache_capacity == 0 {
            return Err(SiteError::Config(
                "stores.cache_capacity must be at least 1".into(),
            ));
        }
        if self.auth.login_attempts_per_minute == 0 {
            return Err(SiteError::Config(
                "auth.login_attempts_per_minute must be at least 1".into(),
            ));
        }
        if self.http.max_connections == 0
            || self.http.max_connections_per_address == 0
            || self.live.max_connections == 0
            || self.live.max_connections_per_address == 0
        {
            return Err(SiteError::Config(
                "http.max_connections, http.max_connections_per_address, live.max_connections and live.max_connections_per_address must be at least 1".into(),
            ));
        }
        if self.signup.max_per_hour == 0 {
            return Err(SiteError::Config(
                "signup.max_per_hour must be at least 1 (use policy = \"admin\" to close signup)"
                    .into(),
            ));
        }
        if !(0.01..=1.0).contains(&self.auth.suspect_cpu_share) {
            return Err(SiteError::Config(format!(
                "auth.suspect_cpu_share must be between 0.01 and 1 (is {})",
                self.auth.suspect_cpu_share
            )));
        }
        if self.auth.password_queue == 0 {
            return Err(SiteError::Config(
                "auth.password_queue must be at least 1".into(),
            ));
        }
        if self.live.max_in_flight == 0 || self.live.max_box_bytes < 1024 {
            return Err(SiteError::Config(
                "live.max_in_flight must be at least 1, live.max_box_bytes at least 1024".into(),
            ));
        }
        self.validate_tls()?;
        self.durability()?;
        Ok(())
    }

    /// The TLS settings name both files or neither, and what needs TLS
    /// has it. (The files themselves are read when the site starts.)
    fn validate_tls(&self) -> Result<()> {
        let http = &self.http;
        match (&http.tls_cert, &http.tls_key) {
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
        if let Some(addr) = http.redirect_listen
            && !http.tls()
        {
            return Err(SiteError::Config(format!(
                "http.redirect_listen = {addr} redirects to HTTPS, which needs http.tls_cert and http.tls_key"
            )));
        }
        if self.live.tls && !http.tls() {
            return Err(SiteError::Config(
                "live.tls serves AMP with the HTTP certificate, which needs http.tls_cert and http.tls_key".into(),
            ));
        }
        Ok(())
    }

    /// The store durability setting.
    pub fn durability(&self) -> Result<mantle_store::Durability> {
        match self.stores.durability.as_str() {
            "full" => Ok(mantle_store::Durability::Full),
            "process" => Ok(mantle_store::Durability::Process),
            other => Err(SiteError::Config(format!(
                "stores.durability '{other}' is not one of full, process"
            ))),
        }
    }

    /// The lifetime of a login token.
    pub fn token_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.auth.token_ttl_hours.saturating_mul(3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_the_file() {
        let mut c: SiteConfig = toml::from_str("domain = \"a.example\"").unwrap();
        c.apply_env(|k| match k {
            "MANTLE_HTTP_LISTEN" => Some("127.0.0.1:9999".into()),
            "MANTLE_SIGNUP_POLICY" => Some("open".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.domain, "a.example");
        assert_eq!(c.http.listen.port(), 9999);
        assert_eq!(c.signup.policy, SignupPolicy::Open);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let mut c = SiteConfig::default();
        let e = c
            .apply_env(|k| (k == "MANTLE_HTTP_LISTEN").then(|| "nowhere".into()))
            .unwrap_err();
        assert!(e.to_string().contains("MANTLE_HTTP_LISTEN=nowhere"), "{e}");
        assert!(toml::from_str::<SiteConfig>("bogus = 1").is_err());
        c = SiteConfig::default();
        c.stores.durability = "sometimes".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn tls_settings_come_in_pairs_and_from_the_environment() {
        let mut c = SiteConfig::default();
        c.apply_env(|k| match k {
            "MANTLE_HTTP_TLS_CERT" => Some("tls/cert.pem".into()),
            "MANTLE_HTTP_REDIRECT_LISTEN" => Some("127.0.0.1:8081".into()),
            "MANTLE_LIVE_TLS" => Some("true".into()),
            _ => None,
        })
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("http.tls_key is not"), "{e}");
        c.apply_env(|k| (k == "MANTLE_HTTP_TLS_KEY").then(|| "/etc/key.pem".into()))
            .unwrap();
        c.validate().unwrap();
        assert!(c.http.tls() && c.http.over_tls() && c.live.tls);
        assert_eq!(
            c.http.tls_files(Path::new("/srv/site")),
            Some(("/srv/site/tls/cert.pem".into(), "/etc/key.pem".into()))
        );
        assert_eq!(c.http.redirect_listen, Some(([127, 0, 0, 1], 8081).into()));

        // Empty values unset; what needs TLS then says so.
        c.apply_env(|k| k.starts_with("MANTLE_HTTP_TLS_").then(String::new))
            .unwrap();
        assert!(!c.http.tls());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("http.redirect_listen = 127.0.0.1:8081"), "{e}");
        c.http.redirect_listen = None;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("live.tls"), "{e}");
        c.live.tls = false;
        c.validate().unwrap();

        let text = toml::to_string_pretty(&SiteConfig::default()).unwrap();
        assert!(
            !text.contains("tls_cert"),
            "unset paths are left out:\n{text}"
        );
    }
}
