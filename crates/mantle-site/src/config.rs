//! Site configuration: `mantle.toml` in the site directory, with
//! environment overrides.
//!
//! Every setting has a default, so an empty file is a valid configuration.
//! The site owns the top-level `domain` and the `[signup]`, `[auth]` and
//! `[stores]` sections; every other section belongs to a layer above (the
//! web front's `[http]`, the live objects' `[live]`, an offering's own),
//! which parses and checks it itself (see [`ConfigSection`]).
//! Environment variables override the file; the site's are:
//!
//! | variable | setting |
//! |---|---|
//! | `MANTLE_DOMAIN` | `domain` |
//! | `MANTLE_SIGNUP_POLICY` | `signup.policy` (`open`, `invite`, `admin`) |
//! | `MANTLE_SIGNUP_PRODUCT` | `signup.product` (empty: none) |
//! | `MANTLE_TOKEN_TTL_HOURS` | `auth.token_ttl_hours` |
//! | `MANTLE_LOGIN_ATTEMPTS_PER_MINUTE` | `auth.login_attempts_per_minute` |
//! | `MANTLE_STORE_CACHE` | `stores.cache_capacity` |
//! | `MANTLE_DURABILITY` | `stores.durability` (`full`, `process`) |
//! | `MANTLE_BACKUP_TARGET` | `backup.target` (empty: no backup) |
//! | `MANTLE_BACKUP_POINT_OF_LOSS` | `backup.point_of_loss` (`1s`, `sync`) |
//! | `MANTLE_BACKUP_ENDPOINT` | `backup.endpoint` |
//! | `MANTLE_BACKUP_KEY_FILE` | `backup.key_file` |

use std::path::Path;

use serde::de::DeserializeOwned;
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
    /// The product every new account is granted (none when absent): its
    /// offerings are given to the user as the account is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

impl Default for SignupConfig {
    fn default() -> Self {
        Self {
            policy: SignupPolicy::default(),
            max_per_hour: 600,
            product: None,
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
///     [http]
///     listen = "127.0.0.1:9090"
/// "#).unwrap();
/// assert_eq!(config.signup.policy, mantle_site::SignupPolicy::Open);
/// // Sections of upper layers are kept as written, for them to parse.
/// assert!(config.sections.contains_key("http"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SiteConfig {
    /// The site's mail domain: `mantle user add DIR alice` means
    /// `alice@DOMAIN`.
    pub domain: String,
    /// Signup.
    pub signup: SignupConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Stores.
    pub stores: StoresConfig,
    /// Continuous backup (`[backup]`; off while `target` is empty).
    #[serde(skip_serializing_if = "backup_is_default")]
    pub backup: mantle_backup::BackupConfig,
    /// The sections of upper layers (`[http]`, `[live]`, an offering's),
    /// as written; each layer parses its own with
    /// [`section`](SiteConfig::section).
    #[serde(flatten)]
    pub sections: toml::Table,
}

fn backup_is_default(c: &mantle_backup::BackupConfig) -> bool {
    *c == mantle_backup::BackupConfig::default()
}

/// The configuration sections a site parsed and checked when it opened
/// (the layers' and offerings' own, see [`ConfigSection`]), for code that
/// has no [`Site`](crate::Site) at hand: offerings' hooks get it in
/// [`Installing`](crate::Installing) and [`Giving`](crate::Giving).
#[derive(Clone, Default)]
pub struct Settings(
    std::sync::Arc<
        std::collections::HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>,
    >,
);

impl Settings {
    pub(crate) fn new(
        sections: std::collections::HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>,
    ) -> Self {
        Self(std::sync::Arc::new(sections))
    }

    /// The section `T` in force, if the program declared it.
    pub fn get<T: ConfigSection>(&self) -> Option<&T> {
        self.0
            .get(&std::any::TypeId::of::<T>())
            .and_then(|s| s.downcast_ref())
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("sections", &self.0.len())
            .finish()
    }
}

/// The table holding offerings' sections: `[offerings.NAME]`.
pub const OFFERINGS_SECTION: &str = "offerings";

/// Parses the table at `path` (absent: the default).
fn parse_table<T: ConfigSection>(value: Option<&toml::Value>, path: &str) -> Result<T> {
    match value {
        None => Ok(T::default()),
        Some(toml::Value::Table(table)) => {
            // Through text, so that an error shows the key's line.
            let text = toml::to_string(table)
                .map_err(|e| SiteError::Config(format!("[{path}] cannot be read: {e}")))?;
            toml::from_str(&text)
                .map_err(|e| SiteError::Config(format!("[{path}] {}", e.to_string().trim_end())))
        }
        Some(_) => Err(SiteError::Config(format!(
            "{path} must be a section ([{path}]), not a value"
        ))),
    }
}

/// A section of `mantle.toml` owned by a layer above the site: the web
/// front's `[http]`, the live objects' `[live]`, an offering's own. The
/// layer defines its settings, defaults, environment overrides and
/// checks; a program declares the sections it reads with
/// [`SiteBuilder::section`](crate::SiteBuilder::section), so that they are
/// checked when the site opens (and a section nobody reads is an error,
/// as a misspelt one would be).
///
/// ```
/// use mantle_site::{ConfigSection, SiteConfig};
/// #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
/// #[serde(default, deny_unknown_fields)]
/// struct Mail { relay: String }
/// impl ConfigSection for Mail {
///     const NAME: &'static str = "mail";
/// }
/// let config: SiteConfig = toml::from_str("[mail]\nrelay = \"smtp.example.com\"").unwrap();
/// assert_eq!(config.section::<Mail>().unwrap().relay, "smtp.example.com");
/// ```
pub trait ConfigSection:
    Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static
{
    /// The section's name: `[NAME]` in `mantle.toml`.
    const NAME: &'static str;

    /// Applies environment overrides, looked up with `var` (a function,
    /// so that tests need not touch the process environment).
    fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        let _ = var;
        Ok(())
    }

    /// Checks values that parse but make no sense; `site` is the whole
    /// configuration, for checks across sections. The error names the
    /// key.
    fn validate(&self, site: &SiteConfig) -> Result<()> {
        let _ = site;
        Ok(())
    }
}

/// Parses `VALUE` of the environment variable `name`, or says which
/// variable and value could not be used.
pub fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| SiteError::Config(format!("{name}={value}: {e}")))
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            domain: "localhost".into(),
            signup: SignupConfig::default(),
            auth: AuthConfig::default(),
            stores: StoresConfig::default(),
            backup: mantle_backup::BackupConfig::default(),
            sections: toml::Table::new(),
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
        if let Some(v) = var("MANTLE_DOMAIN") {
            self.domain = v;
        }
        if let Some(v) = var("MANTLE_SIGNUP_POLICY") {
            self.signup.policy = v.parse()?;
        }
        if let Some(v) = var("MANTLE_SIGNUP_PRODUCT") {
            self.signup.product = Some(v).filter(|p| !p.is_empty());
        }
        if let Some(v) = var("MANTLE_TOKEN_TTL_HOURS") {
            self.auth.token_ttl_hours = parse_env("MANTLE_TOKEN_TTL_HOURS", &v)?;
        }
        if let Some(v) = var("MANTLE_LOGIN_ATTEMPTS_PER_MINUTE") {
            self.auth.login_attempts_per_minute =
                parse_env("MANTLE_LOGIN_ATTEMPTS_PER_MINUTE", &v)?;
        }
        if let Some(v) = var("MANTLE_STORE_CACHE") {
            self.stores.cache_capacity = parse_env("MANTLE_STORE_CACHE", &v)?;
        }
        if let Some(v) = var("MANTLE_DURABILITY") {
            self.stores.durability = v;
        }
        if let Some(v) = var("MANTLE_BACKUP_TARGET") {
            self.backup.target = v;
        }
        if let Some(v) = var("MANTLE_BACKUP_POINT_OF_LOSS") {
            self.backup.point_of_loss = v;
        }
        if let Some(v) = var("MANTLE_BACKUP_ENDPOINT") {
            self.backup.endpoint = v;
        }
        if let Some(v) = var("MANTLE_BACKUP_KEY_FILE") {
            self.backup.key_file = v;
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
        self.durability()?;
        self.backup
            .validate()
            .map_err(|e| SiteError::Config(e.to_string()))?;
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

    /// The section `T` of an upper layer: as written (its defaults when
    /// absent), with its environment overrides, checked. An error names
    /// the section and the key.
    pub fn section<T: ConfigSection>(&self) -> Result<T> {
        self.section_with_env(&|k| std::env::var(k).ok())
    }

    /// [`section`](Self::section) with environment overrides looked up
    /// with `var`.
    pub fn section_with_env<T: ConfigSection>(
        &self,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<T> {
        let mut value = self.section_as_written::<T>()?;
        value.apply_env(var)?;
        value.validate(self)?;
        Ok(value)
    }

    /// The section `T` as written, without overrides or checks.
    fn section_as_written<T: ConfigSection>(&self) -> Result<T> {
        parse_table(self.sections.get(T::NAME), T::NAME)
    }

    /// An offering's section `T`, `[offerings.NAME]` (`T::NAME` is the
    /// offering's name), with environment overrides looked up with `var`,
    /// and checked.
    pub fn offering_section_with_env<T: ConfigSection>(
        &self,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<T> {
        let offerings = match self.sections.get(OFFERINGS_SECTION) {
            None => None,
            Some(toml::Value::Table(t)) => t.get(T::NAME),
            Some(_) => {
                return Err(SiteError::Config(format!(
                    "{OFFERINGS_SECTION} must hold sections ([{OFFERINGS_SECTION}.NAME]), not a value"
                )));
            }
        };
        let mut value: T = parse_table(offerings, &format!("{OFFERINGS_SECTION}.{}", T::NAME))?;
        value.apply_env(var)?;
        value.validate(self)?;
        Ok(value)
    }

    /// Replaces the section `T` with `value`.
    pub fn set_section<T: ConfigSection>(&mut self, value: &T) -> Result<()> {
        let table = toml::Table::try_from(value)
            .map_err(|e| SiteError::Config(format!("[{}] cannot be written: {e}", T::NAME)))?;
        self.sections
            .insert(T::NAME.to_string(), toml::Value::Table(table));
        Ok(())
    }

    /// Changes the section `T` as written (say, in `mantle init` or a
    /// test), keeping what `change` leaves alone.
    pub fn edit_section<T: ConfigSection>(&mut self, change: impl FnOnce(&mut T)) -> Result<()> {
        let mut value = self.section_as_written::<T>()?;
        change(&mut value);
        self.set_section(&value)
    }

    /// The lifetime of a login token.
    pub fn token_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.auth.token_ttl_hours.saturating_mul(3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Mail {
        relay: String,
        port: u16,
    }

    impl ConfigSection for Mail {
        const NAME: &'static str = "mail";
        fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<()> {
            if let Some(v) = var("MANTLE_MAIL_PORT") {
                self.port = parse_env("MANTLE_MAIL_PORT", &v)?;
            }
            Ok(())
        }
        fn validate(&self, _: &SiteConfig) -> Result<()> {
            if self.port == 1 {
                return Err(SiteError::Config("mail.port must not be 1".into()));
            }
            Ok(())
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut c: SiteConfig = toml::from_str("domain = \"a.example\"").unwrap();
        c.apply_env(|k| match k {
            "MANTLE_SIGNUP_POLICY" => Some("open".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.domain, "a.example");
        assert_eq!(c.signup.policy, SignupPolicy::Open);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let mut c = SiteConfig::default();
        let e = c
            .apply_env(|k| (k == "MANTLE_STORE_CACHE").then(|| "many".into()))
            .unwrap_err();
        assert!(e.to_string().contains("MANTLE_STORE_CACHE=many"), "{e}");
        assert!(toml::from_str::<SiteConfig>("[auth]\nbogus = 1").is_err());
        c = SiteConfig::default();
        c.stores.durability = "sometimes".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn sections_are_parsed_overridden_and_checked_by_their_owner() {
        let c: SiteConfig = toml::from_str("[mail]\nrelay = \"smtp.example\"\nport = 25").unwrap();
        let mail = c.section_with_env::<Mail>(&|_| None).unwrap();
        assert_eq!((mail.relay.as_str(), mail.port), ("smtp.example", 25));
        let env = |k: &str| (k == "MANTLE_MAIL_PORT").then(|| "587".to_string());
        assert_eq!(c.section_with_env::<Mail>(&env).unwrap().port, 587);
        // Absent: its defaults.
        let none = SiteConfig::default().section_with_env::<Mail>(&|_| None);
        assert_eq!(none.unwrap(), Mail::default());

        // A misspelt key, a wrong type, a failed check: each names it.
        for (text, says) in [
            ("[mail]\nrealy = \"x\"", "realy"),
            ("[mail]\nport = \"twenty-five\"", "port"),
            ("[mail]\nport = 1", "mail.port"),
            ("mail = 3", "[mail]"),
        ] {
            let c: SiteConfig = toml::from_str(text).unwrap();
            let e = c
                .section_with_env::<Mail>(&|_| None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn sections_are_edited_and_written_back() {
        let mut c = SiteConfig::default();
        c.edit_section::<Mail>(|m| m.port = 2525).unwrap();
        let text = toml::to_string_pretty(&c).unwrap();
        let back: SiteConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.section_with_env::<Mail>(&|_| None).unwrap().port, 2525);
        assert_eq!(back, c);
    }
}
