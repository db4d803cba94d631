//! The server against a hostile network, on loopback with the real binary:
//! idle and slow connections past the caps on every listener, password
//! guessing from many addresses, oversized and unfinished frames. Each
//! test sends the attack, then checks that a legitimate client is still
//! served and that what the server holds stays bounded. Every loop here
//! is bounded in count and time.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mantle_live_server::LiveConfig;
use mantle_web::HttpConfig;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, COOKIE, RETRY_AFTER};
use serde_json::json;
use support::*;

const PASSWORD: &str = "correct horse battery";
/// How long a test waits for the server to close a connection it should
/// close (a bound for the test, far above the configured time-outs).
const CLOSE_WAIT: Duration = Duration::from_secs(20);

/// The server's resident memory, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb / 1024
}

/// The number of descriptors the server holds.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

/// Whether the server closes `s` (EOF or reset) within [`CLOSE_WAIT`],
/// reading and dropping whatever it sends meanwhile.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + CLOSE_WAIT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_start_matches("amp://")
        .trim_end_matches('/')
        .parse()
        .expect("socket address")
}

/// An HTTP client whose connections come from `ip` (any 127.x.y.z).
fn client_from(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn loopback(n: u32) -> IpAddr {
    // 127.0.1.0 upwards: never 127.0.0.1, the legitimate client's.
    IpAddr::V4(Ipv4Addr::from(0x7f00_0100 + n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http_connections_past_the_cap_cannot_lock_a_client_out() {
    let site = TestSite::init("admin");
    site.add_user("alice", PASSWORD);
    site.edit_config(|c| {
        c.edit_section::<HttpConfig>(|s| s.max_connections = 64)
            .unwrap();
        c.edit_section::<HttpConfig>(|s| s.max_connections_per_address = 10_000)
            .unwrap();
    });
    let server = site.serve(&[]);
    let addr = addr_of(&server.base);
    let baseline = open_fds(server.pid());
    // Five times the cap of connections that never send a byte.
    let idle: Vec<TcpStream> = (0..320)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(idle.len() > 64, "opened {}", idle.len());
    // Once they have been quiet a while, a newcomer takes the place of one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c = client();
    for _ in 0..5 {
        let r = c.get(server.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let t = token(&c, &server, "alice", PASSWORD).await;
    assert_eq!(get_auth(&c, &server, "/api/me", &t).await.status(), 200);
    // The server holds at most its cap of them (and its own files).
    let held = open_fds(server.pid());
    assert!(
        held <= baseline + 64 + 16,
        "{held} descriptors held (baseline {baseline})"
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_http_connections_are_closed() {
    let site = TestSite::init("admin");
    site.edit_config(|c| {
        c.edit_section::<HttpConfig>(|s| s.header_timeout_secs = 1)
            .unwrap();
        c.edit_section::<HttpConfig>(|s| s.idle_timeout_secs = 2)
            .unwrap();
    });
    let server = site.serve(&[]);
    let addr = addr_of(&server.base);

    // Never a byte.
    let mut silent = TcpStream::connect(addr).unwrap();
    // Slowloris: a header byte every 300 ms, never finishing.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let dripper = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < CLOSE_WAIT {
            if slow.write_all(b"X").is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        false
    });
    // HTTP/2 (cleartext, prior knowledge): the preface and settings, then
    // silence.
    let mut h2 = TcpStream::connect(addr).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    // HTTP/1.1 keep-alive after one request, then silence.
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();

    assert!(closed_by_server(&mut silent), "a silent connection stays");
    assert!(closed_by_server(&mut h2), "an idle HTTP/2 connection stays");
    assert!(closed_by_server(&mut kept), "an idle keep-alive stays");
    assert!(dripper.join().unwrap(), "a slowloris connection stays open");
    // And the server still serves.
    let r = client().get(server.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// One AMP box: `_command`, `_ask` and the given keys.
fn amp_box(command: &str, pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = mantle_amp::AmpBox::new()
        .with("_command", command)
        .with("_ask", "1");
    for (k, v) in pairs {
        b.insert(*k, v.to_vec());
    }
    mantle_amp::encode(&b).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amp_connections_are_capped_held_to_a_login_deadline_and_small_boxes() {
    let site = TestSite::init("admin");
    site.add_user("alice", PASSWORD);
    site.edit_config(|c| {
        c.edit_section::<LiveConfig>(|s| s.max_connections = 64)
            .unwrap();
        c.edit_section::<LiveConfig>(|s| s.max_connections_per_address = 10_000)
            .unwrap();
        c.edit_section::<LiveConfig>(|s| s.login_timeout_secs = 2)
            .unwrap();
    });
    let (_server, amp) = site.serve_with_amp();
    let amp: SocketAddr = amp.parse().unwrap();

    // Past the cap of idle connections, a client still logs in and calls.
    let idle: Vec<TcpStream> = (0..320)
        .filter_map(|_| TcpStream::connect(amp).ok())
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = mantle(&[
        "amp",
        "call",
        &amp.to_string(),
        "Whoami",
        "--login",
        &format!("alice@localhost:{PASSWORD}"),
    ]);
    assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
    drop(idle);

    // Not logged in within the deadline: closed, however much it sends.
    let mut trickle = TcpStream::connect(amp).unwrap();
    let dripper = std::thread::spawn(move || {
        let started = Instant::now();
        // A box's first bytes, one at a time, never finished.
        for b in b"\x00\x08_command\x00\x05Login\x00\x08username"
            .iter()
            .cycle()
        {
            if started.elapsed() > CLOSE_WAIT {
                return false;
            }
            if trickle.write_all(&[*b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    });
    assert!(dripper.join().unwrap(), "an unfinished login box holds on");

    // Before login, a box over 16 KiB closes the connection.
    let mut big = TcpStream::connect(amp).unwrap();
    let huge = vec![b'x'; 20 * 1024];
    let _ = big.write_all(&amp_box(
        "Login",
        &[("username", b"a"), ("password", &huge)],
    ));
    assert!(closed_by_server(&mut big), "a 20 KiB pre-login box is read");

    // A logged-in connection may send larger boxes (up to live.max_box_bytes).
    let mut s = TcpStream::connect(amp).unwrap();
    s.write_all(&amp_box(
        "Login",
        &[
            ("username", b"alice@localhost"),
            ("password", PASSWORD.as_bytes()),
        ],
    ))
    .unwrap();
    let mut answer = [0u8; 256];
    s.set_read_timeout(Some(CLOSE_WAIT)).unwrap();
    let n = s.read(&mut answer).unwrap();
    assert!(
        answer[..n].windows(7).any(|w| w == b"_answer"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    s.write_all(&amp_box("Whoami", &[("padding", &huge)]))
        .unwrap();
    let n = s.read(&mut answer).unwrap();
    assert!(n > 0, "the logged-in connection is answered");
    assert!(
        String::from_utf8_lossy(&answer[..n]).contains("alice@localhost"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_from_many_addresses_keeps_memory_bounded_and_logins_working() {
    let site = TestSite::init("admin");
    site.add_user("alice", PASSWORD);
    site.add_user("victim", PASSWORD);
    site.edit_config(|c| {
        c.auth.password_workers = 2;
        c.auth.password_queue = 8;
    });
    let server = site.serve(&[]);
    let pid = server.pid();
    let before = rss_mib(pid);
    let url = server.url("/api/login");

    // 48 guessers at once from 200 addresses, 480 guesses in all, at
    // unknown logins and at an account (whose back-off then kicks in).
    let guessers: Vec<_> = (0..48u32)
        .map(|g| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..10u32 {
                    let n = g * 10 + i;
                    let c = client_from(loopback(n % 200));
                    let username = if n % 2 == 0 {
                        format!("nobody{n}")
                    } else {
                        "victim".to_string()
                    };
                    let r = c
                        .post(&url)
                        .json(&json!({"username": username, "password": format!("guess {n}")}))
                        .send()
                        .await
                        .unwrap();
                    if matches!(r.status().as_u16(), 429 | 503) {
                        assert!(r.headers().contains_key(RETRY_AFTER), "{:?}", r.headers());
                    }
                    statuses.push(r.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    // Meanwhile, the real user logs in, several times.
    let c = client();
    let mut peak = before;
    for _ in 0..5 {
        let t = token(&c, &server, "alice", PASSWORD).await;
        assert_eq!(get_auth(&c, &server, "/api/me", &t).await.status(), 200);
        peak = peak.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut statuses = Vec::new();
    for g in guessers {
        statuses.extend(g.await.unwrap());
        peak = peak.max(rss_mib(pid));
    }
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&401), "some guesses were checked");
    assert!(statuses.contains(&429), "the victim's back-off held");
    // Two workers each hold one 19 MiB block, reused: memory does not
    // grow with the number of guesses.
    assert!(peak < before + 160, "RSS went from {before} to {peak} MiB");
    // Guessing at one account, whatever the address, is slowed down: from
    // fresh addresses, a guess is refused before any password work (each
    // guess let through doubles the wait, so a refusal comes quickly).
    let mut refused = None;
    for n in 0..8 {
        let r = client_from(loopback(250 + n))
            .post(&url)
            .json(&json!({"username": "victim", "password": "one more"}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = refused.expect("the victim's login backs off");
    assert!(r.headers().contains_key(RETRY_AFTER));
    // The real user is still served.
    let t = token(&c, &server, "alice", PASSWORD).await;
    assert_eq!(get_auth(&c, &server, "/api/me", &t).await.status(), 200);
}

/// A number from the server's "Auth" statistics.
async fn auth_stat(c: &reqwest::Client, server: &Server, name: &str) -> i64 {
    let r = c.get(server.url("/stats.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stats: serde_json::Value = r.json().await.unwrap();
    stats["namespaces"]["Auth"]["values"][name]["value"]
        .as_i64()
        .unwrap_or_else(|| panic!("no Auth/{name} in {stats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_guessers_are_served_in_turn_and_everyone_else_freely() {
    let site = TestSite::init("admin");
    site.add_user("alice", PASSWORD);
    site.edit_config(|c| c.auth.login_attempts_per_minute = 1000);
    let server = site.serve(&[]);
    let url = server.url("/api/login");
    let c = client();
    assert_eq!(auth_stat(&c, &server, "Suspect Turns").await, 0);

    // Eight addresses, each guessing 20 times on one kept-alive
    // connection: each becomes suspect after its fifth failure or refusal.
    let guessers: Vec<_> = (0..8u32)
        .map(|a| {
            let url = url.clone();
            tokio::spawn(async move {
                let c = client_from(loopback(a));
                let mut statuses = Vec::new();
                for n in 0..20 {
                    let r = c
                        .post(&url)
                        .json(&json!({"username": format!("nobody{a}-{n}"), "password": "guess"}))
                        .send()
                        .await
                        .unwrap();
                    statuses.push(r.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    for g in guessers {
        let statuses = g.await.unwrap();
        // Served in turn, never shut out: every guess has its answer.
        assert!(
            statuses.iter().all(|s| [401, 503].contains(s)),
            "{statuses:?}"
        );
    }
    assert_eq!(auth_stat(&c, &server, "Suspect Addresses").await, 8);
    let turns = auth_stat(&c, &server, "Suspect Turns").await;
    assert!(turns > 0, "suspects' connections went through the gate");
    // One wrong password (a typo) does not make an address suspect, and
    // the clean client is never held at the gate: its requests add no
    // turns.
    let typo = c
        .post(&url)
        .json(&json!({"username": "alice", "password": "typo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(typo.status(), StatusCode::UNAUTHORIZED);
    let t = token(&c, &server, "alice", PASSWORD).await;
    for _ in 0..20 {
        assert_eq!(get_auth(&c, &server, "/api/me", &t).await.status(), 200);
    }
    assert_eq!(auth_stat(&c, &server, "Suspect Addresses").await, 8);
    assert_eq!(auth_stat(&c, &server, "Suspect Turns").await, turns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_valid_login_gets_a_working_store() {
    let site = TestSite::init("open");
    let server = site.serve(&[]);
    let c = client();
    // A 253-character domain (four labels of at most 63).
    let domain = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(domain.len(), 253);
    let login = format!("x@{domain}");
    let r = c
        .post(server.url("/api/signup"))
        .json(&json!({"username": login, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let t = token(&c, &server, &login, PASSWORD).await;
    let r = c
        .put(server.url("/api/slates/x"))
        .bearer_auth(&t)
        .body("{\"ok\":true}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = get_auth(&c, &server, "/api/slates/x", &t).await;
    assert_eq!(r.status(), StatusCode::OK);
    server.stop();
    for entry in std::fs::read_dir(site.dir.join("users")).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(name.len() <= 100, "{name:?}");
    }
    // The site-wide tools still work.
    let out = ok(mantle(&["messages", "list", site.path()]));
    assert!(!out.contains("error"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_security_headers_and_cookie_requests_need_the_csrf_token() {
    let site = TestSite::init("admin");
    site.add_user("alice", PASSWORD);
    let server = site.serve(&[]);
    let c = client();
    for path in ["/", "/login", "/signup", "/api/me", "/robots.txt"] {
        let r = c.get(server.url(path)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
    }
    let t = token(&c, &server, "alice", PASSWORD).await;
    let r = c
        .get(server.url("/home"))
        .header(COOKIE, format!("mantle_token={t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");

    // A cookie-only logout (what another site's form could send) is refused.
    let r = c
        .post(server.url("/api/logout"))
        .header(COOKIE, format!("mantle_token={t}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(get_auth(&c, &server, "/api/me", &t).await.status(), 200);
    // With the page's CSRF token repeated in the header, it works.
    let page = c.get(server.url("/login")).send().await.unwrap();
    let (csrf, _) = set_cookie(&page, "mantle_csrf").expect("a CSRF cookie");
    let r = c
        .post(server.url("/api/logout"))
        .header(COOKIE, format!("mantle_token={t}; mantle_csrf={csrf}"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(get_auth(&c, &server, "/api/me", &t).await.status(), 401);
}

#[test]
fn site_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let site = TestSite::init("admin");
    site.add_user("alice", PASSWORD);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&site.dir.join("site.store")), 0o600);
    assert_eq!(mode(&site.dir.join("mantle.toml")), 0o600);
    assert_eq!(mode(&site.dir.join("users")), 0o700);
    let mut stores = 0;
    for entry in std::fs::read_dir(site.dir.join("users")).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        stores += 1;
    }
    assert!(stores >= 1);
    for entry in std::fs::read_dir(&site.dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
        }
    }
}

/// Whether `text` holds something shaped like an e-mail address (what a
/// harvester's pattern matches: `local@host.tld`).
fn has_address(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        let word = |c: &u8| c.is_ascii_alphanumeric() || b"._%+-".contains(c);
        b == b'@'
            && i > 0
            && word(&bytes[i - 1])
            && bytes[i + 1..]
                .iter()
                .take_while(|c| word(c))
                .any(|c| *c == b'.')
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawlers_revalidate_public_pages_and_find_no_addresses() {
    let site = TestSite::init("open");
    site.add_user("alice", PASSWORD);
    let server = site.serve(&[]);
    let c = client();
    for path in ["/", "/login", "/signup", "/robots.txt", "/live.js"] {
        // Two visits without cookies get the same tag, although each page
        // carries its own CSRF token.
        let first = c.get(server.url(path)).send().await.unwrap();
        assert_eq!(first.status(), 200, "{path}");
        let etag = first.headers()["etag"].clone();
        let modified = first.headers()["last-modified"].clone();
        let body = first.text().await.unwrap();
        assert!(!has_address(&body), "{path} shows an address:\n{body}");
        let again = c.get(server.url(path)).send().await.unwrap();
        assert_eq!(again.headers()["etag"], etag, "{path}");
        // Revalidation by tag, and by date, answers 304 with no body.
        let r = c
            .get(server.url(path))
            .header("if-none-match", etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(r.text().await.unwrap().is_empty());
        let r = c
            .get(server.url(path))
            .header("if-modified-since", modified)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{path}");
        let r = c
            .get(server.url(path))
            .header("if-none-match", "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        // HEAD answers the headers alone.
        let r = c.head(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["etag"], etag, "{path}");
        assert!(r.text().await.unwrap().is_empty());
    }
    let robots = c
        .get(server.url("/robots.txt"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for disallowed in ["/api/", "/home", "/admin", "/live", "/stats"] {
        assert!(
            robots.contains(&format!("Disallow: {disallowed}\n")),
            "{robots}"
        );
    }
    // Answers to a logged-in request are never cached or tagged.
    let t = token(&c, &server, "alice", PASSWORD).await;
    let r = get_auth(&c, &server, "/api/me", &t).await;
    assert!(r.headers().get("etag").is_none());
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
}

#[test]
fn the_address_pattern_finds_addresses() {
    assert!(has_address("write to alice@example.com today"));
    assert!(!has_address("alice (at) example (dot) com"));
    assert!(!has_address("name@ followed by a domain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_make_accounts_without_end() {
    let site = TestSite::init("open");
    site.edit_config(|c| c.signup.max_per_hour = 3);
    let server = site.serve(&[]);
    let mut statuses = Vec::new();
    // From different addresses: the cap is site-wide.
    for n in 0..5u32 {
        let r = client_from(loopback(n))
            .post(server.url("/api/signup"))
            .json(&json!({"username": format!("user{n}"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key(RETRY_AFTER));
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429]);
    server.stop();
    let stores = std::fs::read_dir(site.dir.join("users"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "store"))
        })
        .count();
    assert_eq!(stores, 3, "a refused signup leaves no store file");
}
