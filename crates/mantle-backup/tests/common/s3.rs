//! A real S3-compatible server for the tests: `s3s-fs`, which keeps each
//! bucket as a directory under its root and each object as a plain file
//! in it (`ROOT/BUCKET/KEY`), so a test can damage an object on disk.
//!
//! `scripts/test` installs it under `target/tools` and exports
//! `MANTLE_TEST_S3S_FS` (its path) and `MANTLE_REQUIRE_S3=1`. Without the
//! binary a test is skipped with a note, unless `MANTLE_REQUIRE_S3` is set:
//! then it fails.
//!
//! crates/mantle/tests/backup.rs includes this file too (`#[path]`): it
//! must stand alone (nothing of `common`), using only what both crates'
//! tests have (mantle_backup, object_store with aws, parking_lot, tempfile,
//! tokio).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mantle_backup::BackupConfig;
use object_store::ObjectStore;
use parking_lot::Mutex;

/// The bucket every test's server holds.
pub const BUCKET: &str = "mantle-backups";
const ACCESS_KEY: &str = "mantle-test-key";
const SECRET_KEY: &str = "mantle-test-secret";
/// How long the server may take to start listening and answer.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// The s3s-fs binary to run; `None` (after a printed note) to skip the
/// test, and a failure when `MANTLE_REQUIRE_S3` asks for the S3 tests.
pub fn s3s_fs_binary() -> Option<PathBuf> {
    match std::env::var_os("MANTLE_TEST_S3S_FS").filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "MANTLE_TEST_S3S_FS={} is not a file (scripts/test installs s3s-fs under target/tools)",
                path.display()
            );
            Some(path)
        }
        None => {
            let required =
                std::env::var("MANTLE_REQUIRE_S3").is_ok_and(|v| !v.is_empty() && v != "0");
            assert!(
                !required,
                "the S3 tests are required (MANTLE_REQUIRE_S3 is set) but MANTLE_TEST_S3S_FS, \
                 the path of the s3s-fs binary, is not set: run scripts/test, which installs it"
            );
            eprintln!(
                "note: MANTLE_TEST_S3S_FS is not set; skipping this S3 test \
                 (scripts/test installs s3s-fs and sets it)"
            );
            None
        }
    }
}

/// A running s3s-fs on a loopback port with a temporary root, holding
/// [`BUCKET`]; killed when dropped.
pub struct S3Server {
    binary: PathBuf,
    root: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// What the server printed (the latest lines), for failure messages.
    log: Arc<Mutex<Vec<String>>>,
}

impl S3Server {
    /// Starts a server on a free port, or `None` to skip the test (see
    /// [`s3s_fs_binary`]).
    pub async fn start() -> Option<S3Server> {
        let binary = s3s_fs_binary()?;
        let root = tempfile::tempdir().unwrap();
        // s3s-fs's buckets are its root's directories: making the
        // directory creates the bucket (as CreateBucket itself does).
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let mut server = S3Server {
            binary,
            root,
            port: 0,
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
        };
        // Port 0: the system picks a free port, which the server reports;
        // restarts then reuse it.
        server.spawn().await;
        Some(server)
    }

    /// Runs the server on `self.port` (0: any), waits until it answers S3
    /// requests for the bucket, and records the port.
    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let mut child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            // It says where it listens at the info level.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        let (tx, rx) = mpsc::channel::<u16>();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        collect(stdout, self.log.clone(), Some(tx));
        collect(stderr, self.log.clone(), None);
        let deadline = Instant::now() + START_PATIENCE;
        let port = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(port) => break port,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!(
                        "s3s-fs ended without listening ({status:?}):\n{}",
                        self.log_text()
                    );
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "s3s-fs ended without listening ({status}):\n{}",
                    self.log_text()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "s3s-fs did not listen within {START_PATIENCE:?}:\n{}",
                    self.log_text()
                );
            }
        };
        assert!(
            self.port == 0 || self.port == port,
            "restarted on port {port}, not {}",
            self.port
        );
        self.port = port;
        self.child = Some(child);
        // Listening is not answering: wait for a real, signed request on
        // the bucket to succeed.
        let client = self.client();
        loop {
            match client.list_with_delimiter(None).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => panic!(
                    "s3s-fs on port {port} does not answer for bucket {BUCKET}: {e}\n{}",
                    self.log_text()
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Kills the server: the target then refuses every request (the port
    /// is closed) until [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("killing s3s-fs");
            child.wait().expect("waiting for s3s-fs");
        }
    }

    /// Starts the server again on the same port and root, and waits until
    /// it answers.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// The server's address.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its root directory: `ROOT/BUCKET/KEY` is object KEY's file.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The directory the target `s3://BUCKET/prefix` keeps its objects
    /// in: object NAME of that target is the file `DIR/NAME`.
    pub fn objects_dir(&self, prefix: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(prefix)
    }

    /// A backup configuration for this server, under `prefix` in the bucket.
    pub fn config(&self, prefix: &str, point_of_loss: &str) -> BackupConfig {
        BackupConfig {
            target: format!("s3://{BUCKET}/{prefix}"),
            endpoint: self.endpoint(),
            region: "us-east-1".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
            point_of_loss: point_of_loss.into(),
            ..BackupConfig::default()
        }
    }

    /// A client of the bucket that gives up at once (no retries).
    fn client(&self) -> impl ObjectStore {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_virtual_hosted_style_request(false)
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig::default(),
                max_retries: 0,
                retry_timeout: Duration::from_secs(5),
            })
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_allow_http(true)
                    .with_timeout(Duration::from_secs(5)),
            )
            .build()
            .unwrap()
    }

    fn log_text(&self) -> String {
        self.log.lock().join("\n")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads a pipe of the server's to its end, keeping its last lines in
/// `log`, and sends the port once it says where it listens.
fn collect(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    port: Option<mpsc::Sender<u16>>,
) {
    std::thread::spawn(move || {
        let mut port = port;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            // "server is running at http://127.0.0.1:PORT"
            if let Some(p) = line
                .split_once("server is running at http://")
                .and_then(|(_, addr)| addr.trim().rsplit_once(':'))
                .and_then(|(_, p)| p.parse::<u16>().ok())
                && let Some(tx) = port.take()
            {
                let _ = tx.send(p);
            }
            let mut log = log.lock();
            log.push(line);
            if log.len() > 200 {
                log.remove(0);
            }
        }
    });
}
