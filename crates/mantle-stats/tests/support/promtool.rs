//! `promtool check metrics`, Prometheus's own parser of its text format,
//! for the tests of `mantle-stats` and of the `mantle` binary (which
//! includes this file by path, so there is one copy).

use std::io::Write as _;
use std::process::{Command, Stdio};

/// `promtool check metrics < text`: the exit code and combined output, or
/// `None` when promtool is not installed — a failure when
/// MANTLE_REQUIRE_PROMTOOL is set, as `scripts/test` does after installing
/// it.
pub fn promtool_check(text: &str) -> Option<(i32, String)> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.flush().unwrap();
    let output = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::from(file.reopen().unwrap()))
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("MANTLE_REQUIRE_PROMTOOL").is_none(),
                "promtool is required (MANTLE_REQUIRE_PROMTOOL is set) but not on PATH"
            );
            eprintln!(
                "note: promtool not found on PATH; skipping the Prometheus parser check \
                 (scripts/test installs it)"
            );
            return None;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    let mut said = String::from_utf8_lossy(&output.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&output.stderr));
    let code = output.status.code().unwrap_or(-1);
    eprintln!("promtool check metrics: exit {code}\n{said}");
    Some((code, said))
}
