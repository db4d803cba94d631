//! An in-process harness for testing the HTTP front (and an offering's
//! routes) without a server: requests go through the real
//! [`router`](crate::router) with [`tower::ServiceExt::oneshot`], against
//! a real [`Site`] in a temporary directory. Available with the `harness`
//! feature:
//!
//! ```toml
//! [dev-dependencies]
//! mantle-web = { workspace = true, features = ["harness"] }
//! ```
//!
//! Each request carries the client address the handlers see as
//! `ConnectInfo<SocketAddr>`: [`REMOTE`] unless the harness or the request
//! says otherwise ([`Harness::peer`], [`Call::peer`]).
//!
//! ```
//! use axum::http::StatusCode;
//! use mantle_web::harness::{Harness, PASSWORD};
//! use serde_json::json;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let h = Harness::new().await;
//! h.site().accounts().create("alice", PASSWORD, false).await.unwrap();
//!
//! let login = h
//!     .post("/api/login")
//!     .json(&json!({ "username": "alice", "password": PASSWORD }))
//!     .await;
//! assert_eq!(login.status, StatusCode::OK);
//! let token = login.json()["token"].as_str().unwrap().to_string();
//!
//! let me = h.get("/api/me").bearer(&token).await;
//! assert_eq!(me.status, StatusCode::OK);
//! assert_eq!(me.json()["primary"], "alice@example.com");
//!
//! // The login cookie works too; unsafe methods then need the CSRF token.
//! let out = h.post("/api/logout").login_cookie(&token).csrf().await;
//! assert_eq!(out.status, StatusCode::NO_CONTENT);
//! # });
//! ```
//!
//! An offering tests its own routes by building the site with its
//! registrations ([`Harness::build`]).

use std::future::{Future, IntoFuture};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::pin::Pin;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use mantle_site::{Site, SiteBuilder, SiteConfig};
use tower::ServiceExt;

use crate::HttpConfig;
use crate::auth::TOKEN_COOKIE;
use crate::csrf::{CSRF_COOKIE, CSRF_HEADER};

/// The password [`Harness::user`] and [`Harness::admin`] give accounts.
pub const PASSWORD: &str = "correct horse battery staple";

/// A client on the same machine (loopback: sees the statistics pages).
pub const LOOPBACK: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 49152));

/// A client elsewhere on the network (an address reserved for
/// documentation, RFC 5737): the harness's default.
pub const REMOTE: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 49152));

/// The CSRF token [`Call::csrf`] presents: 43 characters, like the ones
/// pages hand out.
pub const CSRF_TOKEN: &str = "harness-csrf-token-harness-csrf-token-00000";
const _: () = assert!(CSRF_TOKEN.len() == crate::csrf::TOKEN_LEN);

/// A site in a temporary directory and its router.
pub struct Harness {
    site: Site,
    router: Router,
    peer: SocketAddr,
    /// Removed when the harness is dropped (declared last: dropped last).
    dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// The configuration [`Harness::new`] uses: the defaults, with the
    /// domain `example.com` (signup policy `admin`).
    pub fn config() -> SiteConfig {
        SiteConfig {
            domain: "example.com".into(),
            ..SiteConfig::default()
        }
    }

    /// A new site with [`Harness::config`].
    pub async fn new() -> Self {
        Self::configured(|_| {}).await
    }

    /// A new site with [`Harness::config`] as `edit` changes it:
    /// `Harness::configured(|c| c.signup.policy = SignupPolicy::Open)`.
    pub async fn configured(edit: impl FnOnce(&mut SiteConfig)) -> Self {
        let mut config = Self::config();
        edit(&mut config);
        Self::build(config, |b| b).await
    }

    /// A new site with [`Harness::config`] whose `[http]` section `edit`
    /// changes: `Harness::with_http(|h| h.behind_tls = true)`.
    pub async fn with_http(edit: impl FnOnce(&mut HttpConfig)) -> Self {
        Self::configured(|c| c.edit_section(edit).expect("an [http] section")).await
    }

    /// A new site with `config`, its builder first passed through
    /// `prepare` (an offering's `install`, say). The web front is
    /// installed already ([`install`](crate::install)).
    pub async fn build(
        config: SiteConfig,
        prepare: impl FnOnce(SiteBuilder) -> SiteBuilder,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the site");
        let builder = prepare(crate::install(Site::builder(dir.path())));
        let site = builder.init(config).await.expect("a new site");
        let mut h = Self::for_site(site);
        h.dir = Some(dir);
        h
    }

    /// A harness for a site made elsewhere (whose directory the caller
    /// keeps).
    pub fn for_site(site: Site) -> Self {
        Self {
            router: crate::router(site.clone()),
            site,
            peer: REMOTE,
            dir: None,
        }
    }

    /// Sends every request from `peer` unless the request names another.
    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }

    /// The site served.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The site's directory.
    pub fn dir(&self) -> &Path {
        self.site.dir()
    }

    /// Makes an account `login` with [`PASSWORD`] and returns a bearer
    /// token for it.
    pub async fn user(&self, login: &str) -> String {
        self.account(login, false).await
    }

    /// As [`Harness::user`], for an administrator.
    pub async fn admin(&self, login: &str) -> String {
        self.account(login, true).await
    }

    /// Gives `login` the offering `offering`, as an operator would:
    /// installs it (unless it is), makes a product of the same name holding
    /// it (unless one exists) and grants that product to the account. The
    /// offering's pages answer the user from then on; what its `on_given`
    /// hook does reaches the user's store by a message, just after.
    pub async fn give(&self, login: &str, offering: &str) {
        let site = &self.site;
        site.offerings()
            .install(offering)
            .await
            .unwrap_or_else(|e| panic!("install {offering}: {e}"));
        match site.products().create(offering, &[offering]).await {
            Ok(_) | Err(mantle_site::SiteError::ProductExists(_)) => {}
            Err(e) => panic!("product {offering}: {e}"),
        }
        let account = site
            .accounts()
            .get(login)
            .await
            .unwrap_or_else(|e| panic!("account {login}: {e}"));
        site.products()
            .grant(offering, account.id)
            .await
            .unwrap_or_else(|e| panic!("grant {offering} to {login}: {e}"));
    }

    async fn account(&self, login: &str, admin: bool) -> String {
        self.site
            .accounts()
            .create(login, PASSWORD, admin)
            .await
            .unwrap_or_else(|e| panic!("create account {login}: {e}"));
        self.site
            .auth()
            .login(login, PASSWORD, "harness")
            .await
            .unwrap_or_else(|e| panic!("log in {login}: {e}"))
            .token
    }

    /// A `GET` of `path` (with its query, if any).
    pub fn get(&self, path: &str) -> Call<'_> {
        self.request(Method::GET, path)
    }

    /// A `HEAD` of `path`.
    pub fn head(&self, path: &str) -> Call<'_> {
        self.request(Method::HEAD, path)
    }

    /// A `POST` to `path`.
    pub fn post(&self, path: &str) -> Call<'_> {
        self.request(Method::POST, path)
    }

    /// A `PUT` to `path`.
    pub fn put(&self, path: &str) -> Call<'_> {
        self.request(Method::PUT, path)
    }

    /// A `DELETE` of `path`.
    pub fn delete(&self, path: &str) -> Call<'_> {
        self.request(Method::DELETE, path)
    }

    /// A request with any method; send it with `.await` (or
    /// [`Call::send`]).
    pub fn request(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            harness: self,
            method,
            path: path.to_string(),
            peer: self.peer,
            headers: HeaderMap::new(),
            cookies: Vec::new(),
            body: Payload::Empty,
            csrf: false,
        }
    }
}

/// What a request carries.
enum Payload {
    Empty,
    Form(Vec<(String, String)>),
    Raw(Bytes),
}

/// A request being written; `.await` sends it and gives the [`Answer`].
#[must_use = "a call does nothing until awaited"]
pub struct Call<'h> {
    harness: &'h Harness,
    method: Method,
    path: String,
    peer: SocketAddr,
    headers: HeaderMap,
    cookies: Vec<(String, String)>,
    body: Payload,
    csrf: bool,
}

impl Call<'_> {
    /// Adds a header (panics on an invalid name or value: a test's typo).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::try_from(name).expect("a valid header name");
        let value = HeaderValue::try_from(value).expect("a valid header value");
        self.headers.append(name, value);
        self
    }

    /// Authenticates with `Authorization: Bearer TOKEN`.
    pub fn bearer(self, token: &str) -> Self {
        self.header(header::AUTHORIZATION.as_str(), &format!("Bearer {token}"))
    }

    /// Sends cookie `name`.
    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        self.cookies.push((name.to_string(), value.to_string()));
        self
    }

    /// Authenticates with the login cookie, as a browser does. Unsafe
    /// methods then need [`Call::csrf`] too.
    pub fn login_cookie(self, token: &str) -> Self {
        self.cookie(TOKEN_COOKIE, token)
    }

    /// Presents the CSRF token as this site's pages and scripts do: the
    /// cookie, the `X-CSRF-Token` header, and for a form the `csrf` field.
    pub fn csrf(mut self) -> Self {
        self.csrf = true;
        self
    }

    /// Sends the request from `peer` (the `ConnectInfo` handlers see).
    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json(self, value: &impl serde::Serialize) -> Self {
        let bytes = serde_json::to_vec(value).expect("a value that serializes");
        self.body("application/json", bytes)
    }

    /// A form body (`application/x-www-form-urlencoded`), as a page posts.
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        self.body = Payload::Form(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        self.header(
            header::CONTENT_TYPE.as_str(),
            "application/x-www-form-urlencoded",
        )
    }

    /// Any body, with its content type.
    pub fn body(mut self, content_type: &str, bytes: impl Into<Bytes>) -> Self {
        self.body = Payload::Raw(bytes.into());
        self.header(header::CONTENT_TYPE.as_str(), content_type)
    }

    /// Sends the request through the router.
    pub async fn send(mut self) -> Answer {
        let mut cookies = std::mem::take(&mut self.cookies);
        if self.csrf {
            cookies.push((CSRF_COOKIE.to_string(), CSRF_TOKEN.to_string()));
            self.headers
                .insert(CSRF_HEADER, HeaderValue::from_static(CSRF_TOKEN));
            if let Payload::Form(fields) = &mut self.body {
                fields.push(("csrf".to_string(), CSRF_TOKEN.to_string()));
            }
        }
        if !cookies.is_empty() {
            let line: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let value = HeaderValue::try_from(line.join("; ")).expect("a valid cookie header");
            self.headers.insert(header::COOKIE, value);
        }
        let body = match self.body {
            Payload::Empty => Body::empty(),
            Payload::Raw(bytes) => Body::from(bytes),
            Payload::Form(fields) => {
                Body::from(serde_urlencoded::to_string(&fields).expect("form fields encode"))
            }
        };
        let mut request = Request::builder()
            .method(self.method)
            .uri(&self.path)
            .body(body)
            .expect("a valid request line");
        *request.headers_mut() = self.headers;
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let response = self
            .harness
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router never fails");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("the answer's body reads");
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

impl<'h> IntoFuture for Call<'h> {
    type Output = Answer;
    type IntoFuture = Pin<Box<dyn Future<Output = Answer> + Send + 'h>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as text (panics if it is not UTF-8).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body)
            .unwrap_or_else(|_| panic!("{} answered a body that is not UTF-8", self.status))
    }

    /// The body as JSON (panics, showing the body, if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered a body that is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status is `status` (showing the body if not); returns
    /// the answer for further looks.
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status,
            status,
            "answered with body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// Asserts an error answer as the API gives them: `status`, and a JSON
    /// body `{"error": …}` whose message contains `says`.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, says: &str) -> &Self {
        self.assert_status(status);
        let json = self.json();
        let error = json["error"].as_str().unwrap_or_else(|| {
            panic!("{status}: no \"error\" text in {json}");
        });
        assert!(error.contains(says), "{status}: {error:?} lacks {says:?}");
        self
    }

    /// The value `Set-Cookie` gives cookie `name`, if the answer sets it.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next()?.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim())
    }
}
