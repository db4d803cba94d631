//! Helpers for end-to-end tests against the real `mantle` binary: running
//! commands, serving a site on a loopback port (always reaped, even when a
//! test fails), and talking HTTP to it.

#![allow(dead_code)]

pub mod cluster;
pub mod python;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

/// How long a server gets to start or stop.
const PROCESS_WAIT: Duration = Duration::from_secs(60);

/// The `mantle` binary under test.
pub fn mantle_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mantle")
}

/// Runs `mantle ARGS` with an empty standard input.
pub fn mantle(args: &[&str]) -> Output {
    mantle_with_stdin(args, "")
}

/// Runs `mantle ARGS` with `input` on standard input (a pipe, so password
/// prompts read one line from it).
pub fn mantle_with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(mantle_bin())
        .args(args)
        .env_remove("MANTLE_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mantle");
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        // The command may exit before reading (e.g. a bad argument).
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("wait for mantle")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a command succeeded; returns its standard output.
#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "mantle failed ({:?}): stdout: {} stderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// A path as `&str` (temporary directories are UTF-8 here).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A new site in a temporary directory, made with `mantle init`.
pub struct TestSite {
    _temp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl TestSite {
    /// `mantle init DIR --http 127.0.0.1:0 --signup POLICY --offerings all`:
    /// every example installed, and given to every account made after.
    pub fn init(signup: &str) -> Self {
        Self::init_with(signup, &[])
    }

    /// `mantle init DIR --http 127.0.0.1:0 --signup POLICY --offerings all EXTRA...`.
    pub fn init_with(signup: &str, extra: &[&str]) -> Self {
        Self::init_bare(signup, &[&["--offerings", "all"], extra].concat())
    }

    /// `mantle init DIR --http 127.0.0.1:0 --signup POLICY EXTRA...`: no
    /// offering installed.
    pub fn init_bare(signup: &str, extra: &[&str]) -> Self {
        let temp = tempfile::tempdir().expect("temporary directory");
        let dir = temp.path().join("site");
        let mut args = vec!["init", s(&dir), "--http", "127.0.0.1:0", "--signup", signup];
        args.extend_from_slice(extra);
        ok(mantle(&args));
        Self { _temp: temp, dir }
    }

    pub fn path(&self) -> &str {
        s(&self.dir)
    }

    /// `mantle user add DIR LOGIN` with the password on standard input.
    pub fn add_user(&self, login: &str, password: &str) -> String {
        ok(mantle_with_stdin(
            &["user", "add", self.path(), login],
            &format!("{password}\n"),
        ))
    }

    /// Edits `mantle.toml` (read and written with the site's own types).
    pub fn edit_config(&self, edit: impl FnOnce(&mut mantle_site::SiteConfig)) {
        let path = self.dir.join(mantle_site::CONFIG_FILE);
        let mut config = mantle_site::SiteConfig::load(&self.dir).expect("load mantle.toml");
        edit(&mut config);
        config.save(&self.dir).expect("save mantle.toml");
        assert!(path.exists());
    }

    /// `mantle serve DIR --http 127.0.0.1:0` with extra environment.
    pub fn serve(&self, env: &[(&str, &str)]) -> Server {
        Server::spawn(&["serve", self.path(), "--http", "127.0.0.1:0"], env)
    }

    /// Item counts by type name, from `mantle store inspect --json`.
    pub fn item_count(&self, store: &str, type_name: &str) -> i64 {
        let file = self.dir.join(store);
        let out = ok(mantle(&["store", "inspect", "--json", s(&file)]));
        let report: Value = serde_json::from_str(&out).expect("inspect JSON");
        report["types"]
            .as_array()
            .expect("types")
            .iter()
            .find(|t| t["type_name"] == type_name)
            .map_or(0, |t| t["items"].as_i64().expect("items"))
    }
}

/// Lines a child process wrote, collected by a reader thread.
type Lines = Arc<Mutex<Vec<String>>>;

fn collect_lines(
    stream: impl std::io::Read + Send + 'static,
    lines: Lines,
    tx: mpsc::Sender<String>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    })
}

/// A running `mantle serve` (or `mantle demo`). Dropping it kills and
/// reaps the process, so a failing test leaves nothing behind.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` (`https://` over TLS), from the "http
    /// listening on" line.
    pub base: String,
    stdout: Lines,
    stderr: Lines,
    stdout_rx: mpsc::Receiver<String>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts `mantle ARGS` (logging at info, without colours) and waits
    /// for its "mantle: http listening on http://ADDR" line.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(mantle_bin());
        cmd.args(args)
            .env("MANTLE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start mantle");
        let (out, err): (Lines, Lines) = Default::default();
        let (out_tx, stdout_rx) = mpsc::channel();
        let (err_tx, err_rx) = mpsc::channel();
        let readers = vec![
            collect_lines(child.stdout.take().unwrap(), out.clone(), out_tx),
            collect_lines(child.stderr.take().unwrap(), err.clone(), err_tx),
        ];
        let mut server = Server {
            child: Some(child),
            base: String::new(),
            stdout: out,
            stderr: err,
            stdout_rx,
            readers,
        };
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match err_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("mantle: http listening on ") {
                        server.base = url.trim().to_string();
                        break;
                    }
                }
                Err(_) => {
                    // Ended or timed out: say what it printed.
                    let mut child = server.child.take().expect("running");
                    let status = child.try_wait().ok().flatten();
                    reap(child);
                    for r in server.readers.drain(..) {
                        let _ = r.join();
                    }
                    panic!(
                        "mantle {args:?} did not start listening (status {status:?}); stderr:\n{}",
                        server.stderr.lock().unwrap().join("\n")
                    );
                }
            }
        }
        assert!(
            !server.base.ends_with(":0"),
            "listening on port 0: {}",
            server.base
        );
        server
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What it has written to stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a stdout line satisfying `pred` (demo prints its
    /// credentials there); returns it.
    pub fn wait_stdout(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PROCESS_WAIT;
        if let Some(l) = self.stdout.lock().unwrap().iter().find(|l| pred(l)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_rx.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "expected line not printed; stdout:\n{}",
                    self.stdout.lock().unwrap().join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM and waits for a graceful exit; returns the exit
    /// status and everything written to stderr.
    pub fn stop(mut self) -> (ExitStatus, Vec<String>) {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + PROCESS_WAIT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                reap(child);
                panic!("mantle did not stop within {PROCESS_WAIT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (status, self.stderr.lock().unwrap().clone())
    }
}

impl Server {
    /// [`Server::stop`], asserting a clean exit with no error logged.
    pub fn stop_cleanly(self) {
        let (status, log) = self.stop();
        assert!(status.success(), "mantle exited {status:?}");
        let errors = error_lines(&log);
        assert!(errors.is_empty(), "mantle logged errors: {errors:#?}");
    }
}

/// Kills and waits for a child.
fn reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            reap(child);
        }
    }
}

/// Lines at ERROR level (colour codes removed first, should there be any).
pub fn error_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| strip_ansi(l))
        .filter(|l| l.contains(" ERROR "))
        .collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An HTTP client that does not follow redirects or keep cookies (tests
/// send cookies themselves, to see exactly what is set).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

/// `POST /api/login`.
pub async fn login(
    c: &reqwest::Client,
    server: &Server,
    username: &str,
    password: &str,
) -> reqwest::Response {
    c.post(server.url("/api/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("POST /api/login")
}

/// Logs in and returns the token (asserting 200).
pub async fn token(c: &reqwest::Client, server: &Server, username: &str, password: &str) -> String {
    let r = login(c, server, username, password).await;
    let status = r.status();
    let body: Value = r.json().await.expect("login JSON");
    assert_eq!(status, StatusCode::OK, "login {username}: {body}");
    body["token"].as_str().expect("token").to_string()
}

/// `GET path` with a bearer token.
pub async fn get_auth(
    c: &reqwest::Client,
    server: &Server,
    path: &str,
    token: &str,
) -> reqwest::Response {
    c.get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
}

/// The value of cookie `name` in a response's `Set-Cookie` headers, with
/// the whole header.
pub fn set_cookie(r: &reqwest::Response, name: &str) -> Option<(String, String)> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| {
            let first = h.split(';').next()?.trim();
            let (k, v) = first.split_once('=')?;
            (k == name).then(|| (v.to_string(), h.to_string()))
        })
}

/// A loopback port that was free a moment ago (bound, read, released), so
/// a server restarted on it keeps its address.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

impl TestSite {
    /// `mantle user add DIR LOGIN --admin` with the password on standard input.
    pub fn add_admin(&self, login: &str, password: &str) -> String {
        ok(mantle_with_stdin(
            &["user", "add", self.path(), login, "--admin"],
            &format!("{password}\n"),
        ))
    }

    /// `mantle serve DIR --http 127.0.0.1:0 --amp 127.0.0.1:0`, and the
    /// AMP listener's `HOST:PORT`.
    pub fn serve_with_amp(&self) -> (Server, String) {
        let server = Server::spawn(
            &[
                "serve",
                self.path(),
                "--http",
                "127.0.0.1:0",
                "--amp",
                "127.0.0.1:0",
            ],
            &[],
        );
        let amp = amp_address(&server);
        (server, amp)
    }

    /// `mantle serve DIR --http 127.0.0.1:PORT` with extra environment.
    pub fn serve_on(&self, port: u16, env: &[(&str, &str)]) -> Server {
        let http = format!("127.0.0.1:{port}");
        Server::spawn(&["serve", self.path(), "--http", &http], env)
    }
}

impl Server {
    /// Kills the process with SIGKILL (no chance to clean up) and reaps
    /// it; returns everything it wrote to stderr.
    pub fn kill(mut self) -> Vec<String> {
        if let Some(child) = self.child.take() {
            reap(child);
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.stderr.lock().unwrap().clone()
    }
}

/// The `HOST:PORT` of `mantle serve`'s AMP listener, from its
/// "mantle: amp listening on amp://HOST:PORT" line (`amps://` over TLS).
pub fn amp_address(server: &Server) -> String {
    let deadline = Instant::now() + PROCESS_WAIT;
    loop {
        let lines = server.stderr();
        if let Some(addr) = lines
            .iter()
            .find_map(|l| l.strip_prefix("mantle: amp listening on "))
        {
            let addr = addr.trim();
            return addr
                .strip_prefix("amp://")
                .or_else(|| addr.strip_prefix("amps://"))
                .unwrap_or(addr)
                .to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no amp listening line; stderr:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A site builder with what the `mantle` binary includes, so that a test
/// can prepare a site through the library (faster than many commands) and
/// the binary open it.
pub fn library_site(dir: &Path) -> mantle_site::SiteBuilder {
    mantle::Program::new(mantle::with_examples).site(dir)
}

/// Gives `login` 100 ledger units and has it send 30 of them to
/// `ghost@localhost`, a login no account has: the credit is refused, the
/// refusal refunds the sender, and the message stays parked. Returns the
/// sender's account.
pub async fn credit_a_ghost(
    lib: &mantle_site::Site,
    login: &str,
) -> mantle_store::Id<mantle_site::Account> {
    let from = lib.accounts().get(login).await.expect("the sender").id;
    mantle_example_ledger::grant(lib, login, 100)
        .await
        .expect("grant");
    mantle_example_ledger::transfer(lib, from, "ghost@localhost", 30)
        .await
        .expect("transfer");
    from
}

/// Waits (at most 30 s) until `check` answers `true` with what it saw;
/// panics with `what` and what it last saw.
pub async fn eventually<T: std::fmt::Debug>(what: &str, mut check: impl AsyncFnMut() -> (bool, T)) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (done, seen) = check().await;
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "not {what} after 30 s: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SplitMix64: small, seedable, good enough to pick transfers.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from `BACKUP_SEED`, else the clock; prints the seed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("BACKUP_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("after 1970")
                    .as_micros() as u64
            });
        eprintln!("{test}: seed {seed} (set BACKUP_SEED to repeat the choices)");
        Rng(seed)
    }

    /// A number in `from..=to`.
    pub fn between(&mut self, from: u64, to: u64) -> u64 {
        from + self.next() % (to - from + 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}
