//! The site bench: the HTTP front serving a slate to an authenticated
//! user, against a plain handler returning the same bytes.
//!
//! One process serves both: the site's router (`mantle_web::router`) with
//! one extra route added as an offering's route (`WebRoutes`), so behind
//! the same layers: `/bench/plain`, answering with exactly the body,
//! `Content-Type` and `ETag` that `GET /api/slates/{name}` gives (fetched
//! first, and checked). `GET /api/slates/{name}` does the real work: the
//! bearer token's lookup in the site store (hash, expiry, account, primary
//! login) and a read of the user's store. Load comes from `wrk` (a
//! separate process, on the same cores) over loopback, with the same
//! request (bearer header included) for both URLs.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mantle_site::{Expect, Site, SiteConfig};
use mantle_web::{AppState, WebRoutes};

use crate::BenchError;
use crate::report::{BenchRecord, round};
use crate::store::{BenchDir, check};

/// The benches [`run_site`] runs, in order; each emits one record of its
/// name.
pub const SITE_BENCHES: &[&str] = &["site_slate_get"];

/// Options of the site benches (see [`BenchOptions`](crate::BenchOptions)).
pub type SiteBenchOptions = crate::BenchOptions;

/// wrk's connections (the load's concurrency).
pub const CONNECTIONS: u32 = 64;
/// wrk's threads.
const WRK_THREADS: u32 = 2;
/// Seconds of load per side at scale 1.0 (in two rounds).
const SECONDS: f64 = 10.0;
const SLATE: &str = "profile";
const PLAIN: &str = "/bench/plain";
const TARGET: &str = "ratio >= 0.5";

/// Runs the site bench, calling `emit` with its record.
///
/// | bench | work (scale 1.0) | one op |
/// |---|---|---|
/// | `site_slate_get` | `wrk -t2 -c64 --latency` for 10 s against `GET /api/slates/profile` (bearer token) and 10 s against a plain handler with the same bytes | request |
///
/// Each side gets two rounds of half the time, in the order ours, plain,
/// plain, ours (so a drift in background load falls on both), after a
/// one-second warm-up of each.
///
/// Errors: [`BenchError::UnknownBench`] for an unknown `only`;
/// [`BenchError::MissingTool`] if `wrk` is not installed; site and HTTP
/// errors; [`BenchError::Check`] if the responses differ or wrk saw
/// errors.
pub async fn run_site(
    opts: &SiteBenchOptions,
    emit: &mut dyn FnMut(BenchRecord),
) -> Result<(), BenchError> {
    opts.check_only(SITE_BENCHES)?;
    wrk_available().await?;
    let workspace = opts.workspace()?;
    let base = workspace.path();
    emit(slate_get(opts.scale, base).await?);
    Ok(())
}

/// Whether `wrk` can be run.
async fn wrk_available() -> Result<(), BenchError> {
    match tokio::process::Command::new("wrk")
        .arg("--version")
        .output()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BenchError::MissingTool {
            tool: "wrk",
            hint: "install wrk: apt-get install wrk",
        }),
        Err(e) => Err(e.into()),
    }
}

fn http_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Http(e.to_string())
}

/// One response as the bench compares it.
struct Fetched {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    etag: Option<HeaderValue>,
    body: Bytes,
}

async fn fetch(client: &reqwest::Client, url: &str, token: &str) -> Result<Fetched, BenchError> {
    let r = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(http_err)?;
    let status = r.status();
    let content_type = r.headers().get(header::CONTENT_TYPE).cloned();
    let etag = r.headers().get(header::ETAG).cloned();
    let body = r.bytes().await.map_err(http_err)?;
    Ok(Fetched {
        status,
        content_type,
        etag,
        body,
    })
}

/// What the plain route answers: the slate route's response, once known.
#[derive(Default)]
struct Canned(OnceLock<Fetched>);

fn plain_routes() -> Router<AppState> {
    Router::new().route(PLAIN, get(plain))
}

/// The plain handler: the slate's bytes, no token, no store.
async fn plain(State(state): State<AppState>) -> Response {
    let Some(c) = state.site.extension::<Canned>().and_then(|c| c.0.get()) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let mut r = Response::new(Body::from(c.body.clone()));
    if let Some(ct) = &c.content_type {
        r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    if let Some(etag) = &c.etag {
        r.headers_mut().insert(header::ETAG, etag.clone());
    }
    r
}

async fn slate_get(scale: f64, base: &Path) -> Result<BenchRecord, BenchError> {
    const NAME: &str = "site_slate_get";
    let dir = BenchDir::new(base, NAME)?;

    // The plain route is one of the site's routes, so it passes through
    // the same layers (statistics, limits) as the slate route.
    let site = mantle_web::install(Site::builder(dir.join("site")))
        .extension::<WebRoutes>(|r| {
            r.add(plain_routes);
        })
        .extension::<Canned>(|_| {})
        .init(SiteConfig {
            domain: "bench.test".into(),
            ..SiteConfig::default()
        })
        .await?;
    let account = site
        .accounts()
        .create("bench", "bench password, not secret", false)
        .await?;
    let token = site.auth().issue_token(account.id, "bench").await?.token;
    let doc = serde_json::json!({
        "theme": "dark",
        "language": "en",
        "recent": ["inbox", "drafts", "archive"],
        "counters": { "visits": 42, "edits": 7 },
    });
    site.slates()
        .put(account.id, SLATE, doc, Expect::Unspecified, None)
        .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let ours_url = format!("http://{addr}/api/slates/{SLATE}");
    let plain_url = format!("http://{addr}{PLAIN}");

    let router = mantle_web::router(site.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mantle_web::serve(
        listener,
        router,
        mantle_web::connection_limits(site.section::<mantle_web::HttpConfig>()),
        async {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();

    let measured = async {
        let wanted = fetch(&client, &ours_url, &token).await?;
        check(NAME, wanted.status == StatusCode::OK, || {
            format!("GET {ours_url} answered {}", wanted.status)
        })?;
        let canned = site
            .extension::<Canned>()
            .ok_or_else(|| BenchError::Task("the canned response is not attached".into()))?;
        let wanted = canned.0.get_or_init(|| wanted);
        let got = fetch(&client, &plain_url, &token).await?;
        check(
            NAME,
            got.status == StatusCode::OK
                && got.body == wanted.body
                && got.content_type == wanted.content_type
                && got.etag == wanted.etag,
            || "the plain handler's response differs from the slate's".into(),
        )?;
        let again = fetch(&client, &ours_url, &token).await?;
        check(NAME, again.body == wanted.body, || {
            "the slate's response changed".into()
        })?;

        let round = Duration::from_secs(round_secs(scale));
        let warm = Duration::from_secs(1);
        wrk(&ours_url, &token, warm).await?;
        wrk(&plain_url, &token, warm).await?;
        let mut ours = Vec::new();
        let mut reference = Vec::new();
        ours.push(wrk(&ours_url, &token, round).await?);
        reference.push(wrk(&plain_url, &token, round).await?);
        reference.push(wrk(&plain_url, &token, round).await?);
        ours.push(wrk(&ours_url, &token, round).await?);
        Ok::<_, BenchError>((ours, reference, wanted.body.len()))
    }
    .await;
    let _ = stop.send(());
    let _ = server.await;
    site.close().await;
    let (ours, reference, body_len) = measured?;

    for run in ours.iter().chain(&reference) {
        check(NAME, run.bad_responses == 0 && run.requests > 0, || {
            format!(
                "wrk against {} saw {} non-2xx/3xx responses in {} requests",
                run.url, run.bad_responses, run.requests
            )
        })?;
    }
    let (o, r) = (Summary::of(&ours), Summary::of(&reference));
    let mut rec = BenchRecord::from_rates(
        NAME,
        "request",
        o.requests,
        scale,
        (o.rate(), o.took),
        (r.rate(), r.took),
    );
    rec.p50_ms = Some(round(o.p50_ms, 4));
    rec.reference_p50_ms = Some(round(r.p50_ms, 4));
    rec.p99_ms = Some(round(o.p99_ms, 4));
    rec.reference_p99_ms = Some(round(r.p99_ms, 4));
    rec.p99_of =
        Some("one request as wrk sees it (the higher of the two rounds' percentiles)".into());
    rec.concurrency = Some(u64::from(CONNECTIONS));
    rec.items = Some(r.requests);
    rec.target = Some(TARGET.into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let errors: u64 = ours.iter().chain(&reference).map(|w| w.socket_errors).sum();
    rec.note = Some(format!(
        "ours: GET /api/slates/{SLATE} with a bearer token (token lookup in the site store + \
         user store read), {} response bytes; reference: a plain handler in the same server \
         returning the same bytes, content-type and ETag, no token, no store, behind the same \
         layers (items = its requests); \
         load: wrk -t{WRK_THREADS} -c{CONNECTIONS} --latency on loopback, 2 rounds of {} s \
         per side (ours, plain, plain, ours) after 1 s warm-up each; wrk shares the machine's \
         {cores} cores with the server; wrk socket errors: {errors}",
        body_len,
        round_secs(scale),
    ));
    Ok(rec)
}

fn round_secs(scale: f64) -> u64 {
    (SECONDS * scale / 2.0).max(1.0).round() as u64
}

/// What one wrk run reported.
#[derive(Debug)]
struct WrkRun {
    url: String,
    requests: u64,
    took: Duration,
    p50_ms: f64,
    p99_ms: f64,
    bad_responses: u64,
    socket_errors: u64,
}

/// Several runs of one side, added up.
struct Summary {
    requests: u64,
    took: Duration,
    p50_ms: f64,
    p99_ms: f64,
}

impl Summary {
    fn of(runs: &[WrkRun]) -> Self {
        Self {
            requests: runs.iter().map(|r| r.requests).sum(),
            took: runs.iter().map(|r| r.took).sum(),
            p50_ms: runs.iter().map(|r| r.p50_ms).fold(0.0, f64::max),
            p99_ms: runs.iter().map(|r| r.p99_ms).fold(0.0, f64::max),
        }
    }
    fn rate(&self) -> f64 {
        self.requests as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

/// Runs wrk against `url` for `duration` and parses its report.
async fn wrk(url: &str, token: &str, duration: Duration) -> Result<WrkRun, BenchError> {
    let out = tokio::process::Command::new("wrk")
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(BenchError::Check {
            bench: "site_slate_get",
            reason: format!(
                "wrk failed ({}): {}{}",
                out.status,
                text,
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    parse_wrk(url, &text).ok_or_else(|| BenchError::Check {
        bench: "site_slate_get",
        reason: format!("cannot read wrk's report:\n{text}"),
    })
}

/// Parses wrk's `--latency` report.
fn parse_wrk(url: &str, text: &str) -> Option<WrkRun> {
    let mut requests = None;
    let mut took = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut bad = 0;
    let mut socket_errors = 0;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            // "123456 requests in 10.00s, 12.34MB read"
            [n, "requests", "in", t, ..] => {
                requests = n.parse().ok();
                took = duration_of(t.trim_end_matches(','));
            }
            ["50%", t] => p50 = duration_of(t),
            ["99%", t] => p99 = duration_of(t),
            ["Non-2xx", "or", "3xx", "responses:", n] => bad = n.parse().ok()?,
            // "Socket errors: connect 0, read 0, write 0, timeout 0"
            ["Socket", "errors:", rest @ ..] => {
                socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Some(WrkRun {
        url: url.to_string(),
        requests: requests?,
        took: took?,
        p50_ms: ms(p50?),
        p99_ms: ms(p99?),
        bad_responses: bad,
        socket_errors,
    })
}

/// wrk's durations: `812.00us`, `1.23ms`, `10.00s`, `1.50m`.
fn duration_of(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ http://127.0.0.1:41234/api/slates/profile
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.20ms  40.00ms   80.00%
    Req/Sec    10.50k     1.00k   12.00k    70.00%
  Latency Distribution
     50%    2.90ms
     75%    3.50ms
     90%    4.20ms
     99%  812.00us
  209000 requests in 10.00s, 60.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  20900.00
Transfer/sec:      6.00MB
";

    #[test]
    fn parses_wrk_reports() {
        let r = parse_wrk("u", REPORT).unwrap();
        assert_eq!(r.requests, 209_000);
        assert_eq!(r.took, Duration::from_secs(10));
        assert!((r.p50_ms - 2.9).abs() < 1e-9, "{r:?}");
        assert!((r.p99_ms - 0.812).abs() < 1e-9, "{r:?}");
        assert_eq!(r.bad_responses, 5);
        assert_eq!(r.socket_errors, 3);
        assert!(parse_wrk("u", "nothing useful").is_none());
        assert_eq!(duration_of("1.50m"), Some(Duration::from_secs(90)));
    }
}
