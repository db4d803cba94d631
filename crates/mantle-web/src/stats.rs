//! Statistics: the "HTTP" namespace, recorded by a middleware layer, and
//! the reports of the site's whole registry.
//!
//! | route | answer |
//! |---|---|
//! | `GET /stats` | an HTML page: one table per namespace, one more per collection, and a button per namespace to pause or resume it |
//! | `GET /stats.json` | the snapshot as JSON ([`mantle_stats::Snapshot`]) |
//! | `GET /metrics` | the Prometheus text format (version 0.0.4) |
//! | `POST /stats/enabled` | sets a namespace's `Enabled` switch: a form from the page (CSRF-checked, then 303 back to `/stats`) or JSON `{"namespace", "enabled"}` (answered with the same) |
//!
//! Who may see them: a request from a loopback address (unless
//! `[http] stats_from_loopback = false`, and never one relayed by a proxy:
//! with `Forwarded`, `X-Forwarded-For` or `X-Real-IP`), or one whose token
//! belongs to an admin. Anyone else gets 404, as for a page that does not
//! exist.
//!
//! What the "HTTP" namespace holds is listed at [`HTTP_NAMESPACE`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::Form;
use axum::body::HttpBody;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use mantle_stats::{Collection, Counter, Gauge, HtmlReport, Record, StatsRegistry, TimestampValue};
use serde::{Deserialize, Serialize};

use crate::api::JsonBody;
use crate::auth::presented_token;
use crate::csrf::{csrf_ok, csrf_token};
use crate::error::ApiError;
use crate::pages::forbidden_form;
use crate::state::AppState;

/// The name of the HTTP front's statistics namespace, "HTTP", and what it
/// holds (recorded by a layer that [`router`](crate::router) adds):
///
/// | statistic | kind | what |
/// |---|---|---|
/// | `Start Time` | timestamp | when the HTTP front started |
/// | `Requests` | counter | requests answered |
/// | `Responses 1xx` … `Responses 5xx` | counters | requests answered, by status class |
/// | `Bytes Out` | counter | response body bytes, where the length is known up front |
/// | `In Flight` | gauge | requests being handled now |
/// | `Requests/Second` | function | `Requests` over the seconds since `Start Time` |
/// | `Slowest Requests` | collection | the slowest requests of the current ten-minute window: `method`, `path` (without the query), `status`, `ms` |
pub const HTTP_NAMESPACE: &str = "HTTP";

/// Slow requests kept.
const SLOWEST_KEPT: usize = 20;
/// How long the slowest requests are collected before starting over.
const SLOW_WINDOW: Duration = Duration::from_secs(600);
/// The field slow requests are ranked by.
const MS: &str = "ms";

/// The "HTTP" namespace's handles, shared by every request.
pub(crate) struct HttpStats {
    requests: Counter,
    by_class: [Counter; 5],
    bytes_out: Counter,
    in_flight: Gauge,
    /// Requests in flight, kept whatever the `Enabled` switch so the gauge
    /// is set to the truth at the next change after a pause.
    in_flight_now: AtomicI64,
    slowest: Collection,
    /// When the slowest requests were last cleared, in seconds since `epoch`.
    window_start: AtomicU64,
    epoch: Instant,
}

impl HttpStats {
    pub(crate) fn new(registry: &StatsRegistry) -> Self {
        let ns = registry.namespace(HTTP_NAMESPACE);
        let start: TimestampValue = ns.timestamp("Start Time", "When the HTTP front started.");
        if start.get().is_none() {
            start.set_now();
        }
        let class = |c: u8| {
            ns.counter(
                &format!("Responses {c}xx"),
                &format!("Requests answered with a {c}xx status."),
            )
        };
        let stats = Self {
            requests: ns.counter("Requests", "Requests answered."),
            by_class: [class(1), class(2), class(3), class(4), class(5)],
            bytes_out: ns.counter(
                "Bytes Out",
                "Response body bytes sent, where the length was known up front.",
            ),
            in_flight: ns.gauge("In Flight", "Requests being handled now."),
            in_flight_now: AtomicI64::new(0),
            slowest: ns.collection(
                "Slowest Requests",
                "The slowest requests of the current ten-minute window.",
                SLOWEST_KEPT,
            ),
            window_start: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        ns.function(
            "Requests/Second",
            "Requests answered per second since the HTTP front started.",
            |view| {
                let elapsed = view.now() - view.get_f64("Start Time")?;
                Some(view.get_f64("Requests")? / elapsed.max(1e-3))
            },
        );
        stats
    }

    fn enter(&self) {
        let n = self.in_flight_now.fetch_add(1, Relaxed) + 1;
        self.in_flight.set(n);
    }

    fn leave(&self) {
        let n = self.in_flight_now.fetch_sub(1, Relaxed) - 1;
        self.in_flight.set(n);
    }

    fn finish(&self, method: &Method, uri: &Uri, response: &Response, took: Duration) {
        if !self.requests.is_enabled() {
            return;
        }
        let status = response.status();
        self.requests.inc();
        if let Some(c) = self
            .by_class
            .get(usize::from(status.as_u16() / 100).wrapping_sub(1))
        {
            c.inc();
        }
        let length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .or_else(|| response.body().size_hint().exact());
        if let Some(n) = length.filter(|n| *n > 0) {
            self.bytes_out.add(n);
        }
        self.new_window_maybe();
        let ms = took.as_secs_f64() * 1e3;
        if self.slowest.would_keep(MS, ms) {
            self.slowest.keep_largest(
                Record::new()
                    .with("method", method.as_str())
                    .with("path", uri.path())
                    .with("status", status.as_u16())
                    .with(MS, ms),
                MS,
            );
        }
    }

    /// Starts the slowest requests afresh once the window has passed.
    fn new_window_maybe(&self) {
        let now = self.epoch.elapsed().as_secs();
        let start = self.window_start.load(Relaxed);
        if now.saturating_sub(start) >= SLOW_WINDOW.as_secs()
            && self
                .window_start
                .compare_exchange(start, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.slowest.clear();
        }
    }
}

/// Takes a request off the in-flight count even if its future is dropped
/// (the client went away).
struct InFlight<'a>(&'a HttpStats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// The middleware recording every request in the "HTTP" namespace.
pub(crate) async fn track(
    State(stats): State<Arc<HttpStats>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let started = Instant::now();
    stats.enter();
    let guard = InFlight(&stats);
    let response = next.run(req).await;
    drop(guard);
    stats.finish(&method, &uri, &response, started.elapsed());
    response
}

/// Whether a request may see the statistics; `Err` is the 404 to answer.
async fn check_access(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let relayed = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    if state
        .site
        .section::<crate::HttpConfig>()
        .stats_from_loopback
        && peer.ip().to_canonical().is_loopback()
        && !relayed
    {
        return Ok(());
    }
    if let Some(token) = presented_token(headers)
        && let Ok(me) = state.site.auth().authenticate(token).await
        && me.admin
    {
        return Ok(());
    }
    Err(not_found())
}

/// The same answer as for a route that does not exist.
fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn snapshot(state: &AppState) -> Result<mantle_stats::Snapshot, Response> {
    state
        .site
        .stats_snapshot()
        .await
        .map_err(|e| ApiError::from(e).into_response())
}

/// `GET /stats`: the HTML report, with a pause/resume button per namespace.
pub async fn page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_access(&state, peer, &headers).await {
        return r;
    }
    let snap = match snapshot(&state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (csrf, set) = csrf_token(&headers, &state);
    let html = HtmlReport::new()
        .title(format!("Statistics of {}", state.site.config().domain))
        .toggle_url("/stats/enabled")
        .csrf("csrf", csrf)
        .render(&snap);
    let mut r = Html(html).into_response();
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    no_store(r)
}

/// `GET /stats.json`: the snapshot as JSON.
pub async fn json(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_access(&state, peer, &headers).await {
        return r;
    }
    match snapshot(&state).await {
        Ok(s) => {
            no_store(([(header::CONTENT_TYPE, "application/json")], s.to_json()).into_response())
        }
        Err(r) => r,
    }
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_access(&state, peer, &headers).await {
        return r;
    }
    match snapshot(&state).await {
        Ok(s) => no_store(
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                s.to_prometheus(),
            )
                .into_response(),
        ),
        Err(r) => r,
    }
}

/// A toggle sent by a program: `{"namespace": "HTTP", "enabled": false}`;
/// also the answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    /// The namespace's name.
    pub namespace: String,
    /// The state wanted.
    pub enabled: bool,
}

/// A toggle sent by the page's form.
#[derive(Deserialize)]
pub struct ToggleForm {
    #[serde(default)]
    csrf: String,
    namespace: String,
    enabled: String,
}

/// `POST /stats/enabled`: pauses or resumes a namespace, from the page's
/// form (CSRF-checked; 303 back to `/stats`) or as JSON.
pub async fn set_enabled(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    if let Err(r) = check_access(&state, peer, &headers).await {
        return r;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let Ok(Form(form)) = Form::<ToggleForm>::from_request(req, &state).await else {
            return (StatusCode::BAD_REQUEST, "malformed form").into_response();
        };
        if !csrf_ok(&headers, &form.csrf) {
            return forbidden_form();
        }
        let enabled = match form.enabled.as_str() {
            "true" => true,
            "false" => false,
            _ => return (StatusCode::BAD_REQUEST, "enabled must be true or false").into_response(),
        };
        if !state.site.stats().set_enabled(&form.namespace, enabled) {
            return (StatusCode::BAD_REQUEST, "no such statistics namespace").into_response();
        }
        tracing::info!(namespace = %form.namespace, enabled, "statistics switched");
        return Redirect::to("/stats").into_response();
    }
    let toggle = match JsonBody::<Toggle>::from_request(req, &state).await {
        Ok(JsonBody(t)) => t,
        Err(e) => return e.into_response(),
    };
    if !state
        .site
        .stats()
        .set_enabled(&toggle.namespace, toggle.enabled)
    {
        return ApiError::not_found(format!("no statistics namespace '{}'", toggle.namespace))
            .into_response();
    }
    tracing::info!(namespace = %toggle.namespace, enabled = toggle.enabled, "statistics switched");
    axum::Json(toggle).into_response()
}
