//! TLS end to end, with the real binary on loopback: a site made with
//! `mantle init --tls self-signed`, served over HTTPS and checked with
//! curl (HTTP/2 by ALPN, HTTP/1.1, HSTS, the `Secure` login cookie, plain
//! HTTP and silent clients refused, the redirect listener), and AMP over
//! TLS called by `mantle amp call --tls --cacert` and by a real Twisted
//! client (`tests/interop/twisted_tls_client.py`).
//!
//! These need curl (`scripts/test` installs Debian's) and, for the
//! Twisted client, a Python with `twisted[tls]` (see `support::python`).
//! Without them they fail, saying so; they never skip.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mantle_live_server::LiveConfig;
use mantle_web::HttpConfig;
use support::python::{python_with_tls, run_checks};
use support::*;

const PW: &str = "correct horse battery";

/// `curl -sS --max-time 30 ARGS`.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run curl ({e}): the TLS tests need it (scripts/test installs Debian's curl)"
            )
        })
}

/// curl's standard output, asserting it succeeded.
#[track_caller]
fn curl_ok(args: &[&str]) -> String {
    let o = curl(args);
    assert!(
        o.status.success(),
        "curl {args:?} failed ({:?}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// curl's `--write-out` (`-w`) for a request whose body is dropped.
#[track_caller]
fn curl_w(write_out: &str, args: &[&str]) -> String {
    let mut all = vec!["-o", "/dev/null", "-w", write_out];
    all.extend_from_slice(args);
    curl_ok(&all)
}

/// A site made with `--tls self-signed`, and its certificate's path.
fn tls_site() -> (TestSite, String) {
    let site = TestSite::init_with("admin", &["--tls", "self-signed"]);
    let cert = site.dir.join("tls/cert.pem");
    assert!(
        cert.exists(),
        "mantle init --tls self-signed made no tls/cert.pem"
    );
    let cert = s(&cert).to_string();
    (site, cert)
}

/// `HOST:PORT` of a URL such as `https://127.0.0.1:PORT`.
fn host_port(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// Connects to `addr`, sends `first` (maybe nothing) and then nothing
/// more; returns how long the server took to close the connection.
fn closed_after(addr: &str, first: &[u8]) -> Duration {
    let start = Instant::now();
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    conn.write_all(first).expect("write");
    let mut buf = [0u8; 256];
    loop {
        match conn.read(&mut buf) {
            // A TLS alert may come first; then the end.
            Ok(n) if n > 0 => continue,
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close a silent connection to {addr}: {e}"),
        }
    }
    start.elapsed()
}

/// The first bytes of a TLS ClientHello: a handshake record header
/// announcing 512 bytes, and a few of them.
const HALF_A_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

#[track_caller]
fn assert_closed_by_deadline(took: Duration, deadline: Duration, what: &str) {
    assert!(
        took >= deadline - Duration::from_millis(500) && took < deadline + Duration::from_secs(10),
        "{what}: closed after {took:?}, the deadline is {deadline:?}"
    );
}

#[test]
fn https_speaks_http2_and_http11_with_hsts_and_secure_cookies() {
    let (site, cert) = tls_site();
    site.add_user("alice", PW);
    let server = site.serve(&[]);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "not served over TLS: {}",
        server.base
    );
    let health = server.url("/health");
    let version = |extra: &[&str]| {
        let mut args = vec!["--cacert", &cert];
        args.extend_from_slice(extra);
        args.push(&health);
        curl_w("%{http_version}", &args)
    };
    assert_eq!(version(&[]), "2", "HTTP/2 chosen by ALPN");
    assert_eq!(version(&["--http1.1"]), "1.1", "HTTP/1.1 chosen by ALPN");
    // The certificate is for localhost by name too.
    let port = host_port(&server.base).rsplit_once(':').unwrap().1;
    let by_name = format!("https://localhost:{port}/health");
    assert!(
        curl_ok(&[
            "--cacert",
            &cert,
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            &by_name
        ])
        .contains("ok")
    );

    let headers = curl_ok(&["--cacert", &cert, "-D", "-", "-o", "/dev/null", &health]);
    assert!(headers.starts_with("HTTP/2 200"), "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000; includesubdomains"),
        "no HSTS: {headers}"
    );

    let login = curl_ok(&[
        "--cacert",
        &cert,
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        "content-type: application/json",
        "--data",
        &format!(r#"{{"username":"alice","password":"{PW}"}}"#),
        &server.url("/api/login"),
    ]);
    assert!(login.starts_with("HTTP/2 200"), "{login}");
    let cookie = login
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: mantle_token=")
        })
        .unwrap_or_else(|| panic!("no login cookie: {login}"));
    assert!(
        cookie.contains("; Secure") && cookie.contains("; HttpOnly"),
        "{cookie}"
    );

    // `mantle stats` speaks plain HTTP only, and says so.
    let o = mantle(&["stats", site.path()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("serves HTTPS"), "{}", stderr(&o));

    // Not trusted without the certificate (curl's 60: peer certificate
    // cannot be authenticated).
    let o = curl(&[&health]);
    assert_eq!(
        o.status.code(),
        Some(60),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Plain HTTP to the TLS port fails, and the server keeps serving.
    let plain = health.replacen("https://", "http://", 1);
    let o = curl(&[&plain]);
    assert!(!o.status.success(), "plain HTTP answered on the TLS port");
    assert_eq!(version(&[]), "2");

    server.stop_cleanly();
}

#[test]
fn the_deadline_covers_the_handshake_and_the_redirect_listener_sends_clients_to_https() {
    let (site, cert) = tls_site();
    site.add_user("alice", PW);
    let redirect_port = free_port();
    site.edit_config(|c| {
        c.edit_section::<HttpConfig>(|s| s.header_timeout_secs = 2)
            .unwrap();
        c.edit_section::<HttpConfig>(|s| {
            s.redirect_listen = Some(([127, 0, 0, 1], redirect_port).into())
        })
        .unwrap();
    });
    let server = site.serve(&[]);
    let addr = host_port(&server.base).to_string();
    let deadline = Duration::from_secs(2);

    let took = closed_after(&addr, b"");
    assert_closed_by_deadline(took, deadline, "a client that never sends a ClientHello");
    let took = closed_after(&addr, HALF_A_HELLO);
    assert_closed_by_deadline(took, deadline, "a client that stops within its ClientHello");
    assert!(curl_ok(&["--cacert", &cert, &server.url("/health")]).contains("ok"));

    // Once a request has come, the deadline no longer holds: a body sent
    // slowly for longer than the deadline is read, over HTTP/2 and 1.1.
    let login = curl_ok(&[
        "--cacert",
        &cert,
        "-H",
        "content-type: application/json",
        "--data",
        &format!(r#"{{"username":"alice","password":"{PW}"}}"#),
        &server.url("/api/login"),
    ]);
    let login: serde_json::Value = serde_json::from_str(&login).expect("login JSON");
    let bearer = format!("Authorization: Bearer {}", login["token"].as_str().unwrap());
    let body = site.dir.join("../slow.json");
    std::fs::write(&body, format!(r#"{{"pad":"{}"}}"#, "x".repeat(3000))).unwrap();
    for (slate, version) in [("slow2", "--http2"), ("slow1", "--http1.1")] {
        let started = Instant::now();
        let status = curl_w(
            "%{http_code}",
            &[
                "--cacert",
                &cert,
                version,
                "--limit-rate",
                "1000",
                "-X",
                "PUT",
                "-H",
                &bearer,
                "-H",
                "content-type: application/json",
                "--data-binary",
                &format!("@{}", s(&body)),
                &server.url(&format!("/api/slates/{slate}")),
            ],
        );
        assert_eq!(status, "201", "{version}");
        assert!(started.elapsed() > deadline, "the upload was not slow");
    }

    let plain = format!("http://127.0.0.1:{redirect_port}");
    let to = curl_w(
        "%{http_code} %{redirect_url}",
        &[&format!("{plain}/home?x=1&y=2")],
    );
    assert_eq!(to, format!("308 {}/home?x=1&y=2", server.base));
    // A POST keeps its method and body through a 308.
    let followed = curl_w(
        "%{http_code} %{url_effective}",
        &[
            "-L",
            "--cacert",
            &cert,
            "-H",
            "content-type: application/json",
            "--data",
            r#"{"username":"nobody","password":"wrong password"}"#,
            &format!("{plain}/api/login"),
        ],
    );
    assert_eq!(followed, format!("401 {}/api/login", server.base));
    // Without a Host there is nowhere to send the client.
    let o = curl_w("%{http_code}", &["-0", "-H", "Host:", &format!("{plain}/")]);
    assert_eq!(o, "400");
    // The redirect listener is held to the same deadline.
    let took = closed_after(&format!("127.0.0.1:{redirect_port}"), b"");
    assert_closed_by_deadline(took, deadline, "a silent client of the redirect listener");

    server.stop_cleanly();
}

#[test]
fn amp_over_tls_serves_mantle_amp_call_and_a_twisted_client() {
    let python = python_with_tls();
    let (site, cert) = tls_site();
    site.add_user("alice", PW);
    site.edit_config(|c| {
        c.edit_section::<LiveConfig>(|s| s.tls = true).unwrap();
        c.edit_section::<LiveConfig>(|s| s.login_timeout_secs = 2)
            .unwrap();
    });
    let (server, addr) = site.serve_with_amp();
    assert!(
        server
            .stderr()
            .iter()
            .any(|l| l.starts_with("mantle: amp listening on amps://")),
        "AMP not announced as TLS: {:#?}",
        server.stderr()
    );
    let login = format!("alice:{PW}");
    let call = |to: &str, extra: &[&str]| {
        let mut args = vec!["amp", "call", to, "Whoami", "--login", &login];
        args.extend_from_slice(extra);
        mantle(&args)
    };
    let me = "username=alice@localhost\n";
    assert_eq!(ok(call(&addr, &["--tls", "--cacert", &cert])), me);
    assert_eq!(
        ok(call(&format!("amps://{addr}"), &["--cacert", &cert])),
        me
    );

    // Another site's certificate does not vouch for this one.
    let (_other, other_cert) = tls_site();
    let o = call(&addr, &["--cacert", &other_cert]);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));
    // Plain AMP to the TLS listener gets nowhere.
    let o = call(&addr, &[]);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    // A client that never says hello is closed by the login deadline.
    let took = closed_after(&addr, b"");
    assert_closed_by_deadline(took, Duration::from_secs(2), "a silent AMP client");

    let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
    run_checks(
        python,
        "twisted_tls_client.py",
        &[host, port, &cert, "alice", PW],
        &[
            "PASS connect: ",
            "PASS login: ",
            "PASS whoami: username=alice@localhost",
            "PASS tls-peer-certificate: ",
            "PASS wrong-name-refused: ",
            "ALL PASSED",
        ],
        &server,
    );
    server.stop_cleanly();
}

#[test]
fn the_admin_commands_reach_a_site_served_over_tls() {
    let (site, _cert) = tls_site();
    site.add_user("alice", "correct horse battery");
    let server = site.serve(&[]);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    // The site store is the server's: the command goes through the admin
    // API, on the service's loopback port for local commands.
    let out = ok(mantle(&["user", "disable", site.path(), "alice"]));
    assert!(out.contains("alice"), "{out}");
    let listed = ok(mantle(&["user", "list", site.path()]));
    assert!(listed.contains("disabled"), "{listed}");
    drop(server);
}
