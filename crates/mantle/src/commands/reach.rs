//! How an administrative command reaches a site: it opens the site's files
//! itself, or, when `mantle serve` has them open (the site store is locked
//! for writing), it asks the running server through its admin API, found
//! with the runtime file the server wrote (`DIR/run/admin.json`). Both ways
//! answer with the same values, so the commands print the same thing and
//! exit with the same code either way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mantle_site::{AccountInfo, ItemCount, ParkedMessage, Site, SiteError};
use mantle_web::AdminRuntime;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::http::{self, Failure, reachable};
use crate::Program;
use crate::error::CliError;

/// The site, by its files or by its server.
pub enum Reach {
    /// Opened here (no server had it open).
    Files(Site),
    /// Served by another process: through its admin API.
    Server(Remote),
}

/// Opens the site in `dir`, or finds its server, and runs `work` on it;
/// closes the site afterwards whatever happened.
pub async fn with_site<R>(
    program: &Program,
    dir: &Path,
    work: impl AsyncFnOnce(&Reach) -> Result<R, CliError>,
) -> Result<R, CliError> {
    let reach = match program.site(dir).open().await {
        Ok(site) => Reach::Files(site),
        Err(SiteError::Store(mantle_store::Error::Locked { .. })) => {
            Reach::Server(Remote::find(dir)?)
        }
        Err(e) => return Err(e.into()),
    };
    let result = work(&reach).await;
    if let Reach::Files(site) = reach {
        site.close().await;
    }
    result
}

/// How long a server gets to answer an admin request: listing the parked
/// messages or counting items opens every store of the site.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(600);

/// A running server's admin API.
pub struct Remote {
    client: reqwest::Client,
    base: Url,
    secret: String,
    /// The runtime file it was found with, and what it says, for messages.
    file: PathBuf,
    pid: u32,
}

/// `{"accounts": [...]}`
#[derive(Deserialize)]
struct Accounts {
    accounts: Vec<AccountInfo>,
}

/// `{"messages": [...]}`
#[derive(Deserialize)]
struct Messages {
    messages: Vec<ParkedMessage>,
}

/// `{"store", "purged"}`
#[derive(Deserialize)]
struct Deleted {
    store: PathBuf,
}

/// `{"code"}`
#[derive(Deserialize)]
struct Invite {
    code: String,
}

/// An answer whose content is not needed (or that has none).
#[derive(Deserialize)]
struct Nothing {}

impl Remote {
    /// The server of the site in `dir`, whose site store is locked: from
    /// its runtime file.
    fn find(dir: &Path) -> Result<Remote, CliError> {
        let file = AdminRuntime::path(dir);
        let runtime = AdminRuntime::load(dir)
            .map_err(|e| CliError::Message(e.to_string()))?
            .ok_or_else(|| {
                CliError::Message(format!(
                    "the site in {} is open for writing by another process that is not serving it \
                     (no {}); try again when that process has finished",
                    dir.display(),
                    file.display()
                ))
            })?;
        let addr = reachable(runtime.http).ok_or_else(|| {
            CliError::Message(format!(
                "{}: the server address {} cannot be reached",
                file.display(),
                runtime.http
            ))
        })?;
        let base = Url::parse(&format!("http://{addr}/"))
            .map_err(|e| CliError::Message(format!("{}: {e}", file.display())))?;
        Ok(Remote {
            client: http::client()?,
            base,
            secret: runtime.secret,
            file,
            pid: runtime.pid,
        })
    }

    /// The server's answer to `METHOD /api/admin/SEGMENTS…` (each segment
    /// percent-encoded), decoded; its error in its own words.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, CliError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| CliError::Message(format!("{}: not an HTTP URL", self.base)))?
            .pop_if_empty()
            .extend(["api", "admin"])
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut req = self.client.request(method, url).timeout(ADMIN_TIMEOUT);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let text = http::fetch(req, Some(&self.secret))
            .await
            .map_err(|f| self.failure(f))?;
        let text = if text.is_empty() { "{}" } else { &text };
        serde_json::from_str(text).map_err(|e| {
            CliError::Message(format!(
                "{} answered an unexpected body: {e}",
                self.base.as_str().trim_end_matches('/')
            ))
        })
    }

    fn failure(&self, f: Failure) -> CliError {
        let base = self.base.as_str().trim_end_matches('/');
        let stale = |why: String| {
            CliError::Message(format!(
                "{} is stale: {why}; the site store is open for writing by another process, \
                 try again when it has finished",
                self.file.display()
            ))
        };
        match f {
            Failure::Unreachable(e) if e.is_connect() => stale(format!(
                "nothing answers at {base}, where the server (process {}) listened",
                self.pid
            )),
            Failure::Unreachable(e) => CliError::Message(format!("cannot reach {base}: {e}")),
            Failure::Refused { error: Some(e), .. } => CliError::Message(e),
            Failure::Refused {
                status: StatusCode::NOT_FOUND,
                error: None,
            } => stale(format!(
                "the server at {base} does not take its secret (another server listens there now)"
            )),
            Failure::Refused {
                status,
                error: None,
            } => CliError::Message(format!("{base} answered {status}")),
        }
    }
}

impl Reach {
    /// Creates an account, whatever the signup policy.
    pub async fn create_account(
        &self,
        login: &str,
        password: &str,
        admin: bool,
    ) -> Result<AccountInfo, CliError> {
        match self {
            Reach::Files(site) => Ok(site.accounts().create(login, password, admin).await?),
            Reach::Server(r) => {
                let body = json!({ "login": login, "password": password, "admin": admin });
                r.call(Method::POST, &["accounts"], &[], Some(body)).await
            }
        }
    }

    /// Every account, oldest first.
    pub async fn accounts(&self) -> Result<Vec<AccountInfo>, CliError> {
        match self {
            Reach::Files(site) => Ok(site.accounts().list().await?),
            Reach::Server(r) => {
                let a: Accounts = r.call(Method::GET, &["accounts"], &[], None).await?;
                Ok(a.accounts)
            }
        }
    }

    /// Disables or enables an account.
    pub async fn set_disabled(&self, login: &str, disabled: bool) -> Result<(), CliError> {
        match self {
            Reach::Files(site) => Ok(site.accounts().set_disabled(login, disabled).await?),
            Reach::Server(r) => {
                let action = if disabled { "disable" } else { "enable" };
                let _: Nothing = r
                    .call(Method::POST, &["accounts", login, action], &[], None)
                    .await?;
                Ok(())
            }
        }
    }

    /// Sets an account's password (its tokens are revoked).
    pub async fn set_password(&self, login: &str, password: &str) -> Result<(), CliError> {
        match self {
            Reach::Files(site) => Ok(site.accounts().set_password(login, password).await?),
            Reach::Server(r) => {
                let body = json!({ "password": password });
                let _: Nothing = r
                    .call(
                        Method::PUT,
                        &["accounts", login, "password"],
                        &[],
                        Some(body),
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Deletes an account (and its user store if `purge_store`); the user
    /// store's file.
    pub async fn delete_account(
        &self,
        login: &str,
        purge_store: bool,
    ) -> Result<PathBuf, CliError> {
        match self {
            Reach::Files(site) => Ok(site.accounts().delete(login, purge_store).await?),
            Reach::Server(r) => {
                let purge = if purge_store { "true" } else { "false" };
                let d: Deleted = r
                    .call(
                        Method::DELETE,
                        &["accounts", login],
                        &[("purge_store", purge)],
                        None,
                    )
                    .await?;
                Ok(d.store)
            }
        }
    }

    /// A new invite code.
    pub async fn create_invite(&self) -> Result<String, CliError> {
        match self {
            Reach::Files(site) => Ok(site.accounts().create_invite().await?),
            Reach::Server(r) => {
                let i: Invite = r.call(Method::POST, &["invites"], &[], None).await?;
                Ok(i.code)
            }
        }
    }

    /// Every parked message.
    pub async fn parked_messages(&self) -> Result<Vec<ParkedMessage>, CliError> {
        match self {
            Reach::Files(site) => Ok(site.messaging().parked().await?),
            Reach::Server(r) => {
                let m: Messages = r.call(Method::GET, &["messages"], &[], None).await?;
                Ok(m.messages)
            }
        }
    }

    /// Retries (`retry`) or drops (`!retry`) a parked message.
    pub async fn handle_parked(&self, id: &str, retry: bool) -> Result<(), CliError> {
        match self {
            Reach::Files(site) if retry => Ok(site.messaging().retry(id).await?),
            Reach::Files(site) => Ok(site.messaging().discard(id).await?),
            Reach::Server(r) => {
                let action = if retry { "retry" } else { "drop" };
                let _: Nothing = r
                    .call(
                        Method::POST,
                        &["messages", action],
                        &[],
                        Some(json!({ "id": id })),
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Counts a type's items in every user store (`progress(done, total)`
    /// is called as stores finish, when the count is done here).
    pub async fn count_items(
        &self,
        type_name: &str,
        parallel: usize,
        progress: impl Fn(usize, usize),
    ) -> Result<ItemCount, CliError> {
        match self {
            Reach::Files(site) => Ok(site
                .accounts()
                .count_items(type_name, parallel, progress)
                .await?),
            Reach::Server(r) => {
                let parallel = parallel.to_string();
                r.call(
                    Method::GET,
                    &["fanout", "count", type_name],
                    &[("parallel", &parallel)],
                    None,
                )
                .await
            }
        }
    }
}
