//! etcd members on loopback ports, for tests (the `harness` feature).
//!
//! The etcd binary is Debian's `etcd-server` (`/usr/bin/etcd`), or the
//! one `MANTLE_TEST_ETCD` names; `scripts/test` installs it and sets
//! `MANTLE_REQUIRE_ETCD=1`. Without the binary a test is skipped with a
//! note, unless `MANTLE_REQUIRE_ETCD` is set: then it fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary to run; `None` (after a printed note) to skip the
/// test, and a panic when `MANTLE_REQUIRE_ETCD` asks for the etcd tests.
pub fn etcd_binary() -> Option<PathBuf> {
    let named = std::env::var_os("MANTLE_TEST_ETCD").map(PathBuf::from);
    let found = named.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("etcd"))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        let required =
            std::env::var("MANTLE_REQUIRE_ETCD").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "the etcd tests are required (MANTLE_REQUIRE_ETCD is set) but no etcd binary was found \
             (install Debian's etcd-server, or set MANTLE_TEST_ETCD)"
        );
        eprintln!("note: no etcd binary (Debian's etcd-server); skipping this cluster test");
    }
    found
}

/// A free loopback port (free when asked; etcd binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// An etcd cluster of a few members on loopback ports, each in its own
/// data directory; killed when dropped.
pub struct EtcdCluster {
    binary: PathBuf,
    dir: tempfile::TempDir,
    members: Vec<Member>,
}

impl std::fmt::Debug for EtcdCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCluster")
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

impl EtcdCluster {
    /// Starts `n` members and waits until each answers healthy; `None`
    /// when there is no etcd binary (see [`etcd_binary`]). A start that
    /// fails (a port taken between choosing and binding it by another
    /// process) is tried again on other ports, up to three times.
    pub fn start(n: usize) -> Option<Self> {
        let binary = etcd_binary()?;
        let mut tails = String::new();
        for attempt in 1..=3 {
            let members = (0..n)
                .map(|i| Member {
                    name: format!("e{i}"),
                    client: free_port(),
                    peer: free_port(),
                    child: None,
                })
                .collect();
            let mut cluster = Self {
                binary: binary.clone(),
                dir: tempfile::tempdir().expect("a temporary directory"),
                members,
            };
            for i in 0..n {
                cluster.spawn(i, "new");
            }
            if (0..n).all(|i| cluster.becomes_healthy(i)) {
                return Some(cluster);
            }
            tails = (0..n)
                .map(|i| cluster.log_tail(i))
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("note: etcd members did not all come up (attempt {attempt}): trying again");
        }
        panic!("etcd members did not come up in three attempts; their logs end:\n{tails}");
    }

    /// The members' client URLs.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// The directory member `i` keeps its data and log in.
    pub fn member_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].name)
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect();
        let m = &self.members[i];
        let dir = self.dir.path().join(&m.name);
        std::fs::create_dir_all(&dir).expect("a member directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("etcd.log"))
            .expect("a log file");
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new(&self.binary)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-token", "mantle-test"])
            .args(["--initial-cluster-state", state])
            // Quick elections: a killed leader is replaced in well under
            // a second on loopback.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--log-level", "warn", "--logger", "zap"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        self.members[i].child = Some(child);
    }

    /// Waits (up to 30 s) until member `i` says it is healthy (it has a
    /// leader and answers reads).
    pub fn wait_healthy(&mut self, i: usize) {
        if !self.becomes_healthy(i) {
            panic!(
                "etcd member {i} did not become healthy in 30 s; {}",
                self.log_tail(i)
            );
        }
    }

    /// Whether member `i` answers healthy within 30 s (false at once if
    /// its process ended).
    fn becomes_healthy(&mut self, i: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = self.members[i].client;
        while Instant::now() < deadline {
            if health(port) {
                return true;
            }
            let ended = self.members[i]
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().is_ok_and(|s| s.is_some()));
            if ended {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The end of member `i`'s log.
    fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.member_dir(i).join("etcd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        format!(
            "member {i}'s log ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Kills member `i` (SIGKILL) and waits for it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data directory (after [`kill`](Self::kill)).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i, "existing");
    }

    /// The process id of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// The temporary directory holding the members.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// Whether the member listening on `port` answers `/health` with true.
fn health(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}
