//! Python with Twisted for the interoperability tests, and the scripts in
//! `tests/interop/`.
//!
//! The Python is `MANTLE_TEST_PYTHON`, else `target/twisted-venv/bin/python`
//! (which `scripts/test` creates); the first that can import Twisted's AMP.
//! Without one the tests that need it fail, saying so; they never skip.

use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

/// How long a Python process gets to start, or to run its checks.
pub const PROCESS_WAIT: Duration = Duration::from_secs(120);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// The Python to run the scripts with: `MANTLE_TEST_PYTHON`, else the
/// workspace's `target/twisted-venv`; the first that can import Twisted's
/// AMP. Fails the test when neither can.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(find_python)
}

/// [`python()`], which must also have Twisted's TLS (pyOpenSSL and
/// service_identity: `pip install 'twisted[tls]'`, as `scripts/test` does).
pub fn python_with_tls() -> &'static Path {
    let python = python();
    let probe = Process::new(python)
        .args([
            "-c",
            "import OpenSSL, service_identity, twisted.internet.ssl",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    assert!(
        probe.status.success(),
        "{} has Twisted but not its TLS support (pyOpenSSL, service_identity): run \
         scripts/test (it installs 'twisted[tls]' in target/twisted-venv), or \
         `pip install 'twisted[tls]'`. Python said: {}",
        python.display(),
        String::from_utf8_lossy(&probe.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    python
}

fn find_python() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("MANTLE_TEST_PYTHON") {
        candidates.push((PathBuf::from(p), "MANTLE_TEST_PYTHON"));
    }
    candidates.push((
        workspace_root().join("target/twisted-venv/bin/python"),
        "the workspace's venv",
    ));
    let mut tried = Vec::new();
    for (python, source) in candidates {
        let probe = Process::new(&python)
            .args([
                "-c",
                "import twisted, twisted.protocols.amp; print(twisted.__version__)",
            ])
            .stdin(Stdio::null())
            .output();
        match probe {
            Ok(o) if o.status.success() => {
                eprintln!(
                    "using {} (Twisted {})",
                    python.display(),
                    String::from_utf8_lossy(&o.stdout).trim()
                );
                return python;
            }
            Ok(o) => tried.push(format!(
                "{} ({source}): cannot import twisted: {}",
                python.display(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )),
            Err(e) => tried.push(format!("{} ({source}): {e}", python.display())),
        }
    }
    panic!(
        "the Twisted interoperability tests need Python with Twisted. Run scripts/test \
         (it creates target/twisted-venv with Twisted), or set MANTLE_TEST_PYTHON to a \
         python that can `import twisted`. Tried:\n  {}",
        tried.join("\n  ")
    );
}

/// Runs `cmd` to completion, killing it (and failing) after `limit`.
pub fn run_with_timeout(cmd: &mut Process, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start process");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for process"),
        Err(_) => {
            // Our own child, not yet reaped (the waiting thread holds it).
            let _ = Process::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let partial = rx
                .recv_timeout(Duration::from_secs(10))
                .ok()
                .and_then(Result::ok)
                .map(|o| {
                    format!(
                        "stdout:\n{}\nstderr:\n{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .unwrap_or_default();
            panic!("{cmd:?} did not finish within {limit:?}; {partial}");
        }
    }
}

/// Runs the check script `name` (see `interop/amp_checks.py`) with `args`
/// against `server`; asserts that it passed, printing a line that starts
/// with each of `expected` and none that starts with `FAIL`.
pub fn run_checks(
    python: &Path,
    name: &str,
    args: &[&str],
    expected: &[&str],
    server: &super::Server,
) {
    let out = run_with_timeout(
        Process::new(python)
            .args(["-B", "-u"])
            .arg(script(name))
            .args(args),
        PROCESS_WAIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed ({:?});\nstdout:\n{stdout}\nstderr:\n{}\nmantle stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.stderr().join("\n")
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for want in expected {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "no line starting {want:?} in:\n{stdout}"
        );
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("FAIL")),
        "failed checks:\n{stdout}"
    );
}
