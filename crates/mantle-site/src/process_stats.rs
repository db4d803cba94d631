//! The "Process" statistics namespace: when the site started, and what the
//! process uses now (read from `/proc/self/status` at report time). What it
//! holds is listed at [`PROCESS_NAMESPACE`].
//!
//! The functions run when a report is made, so they are current even while
//! the namespace is paused; where `/proc` is missing they report nothing.

use mantle_stats::StatsRegistry;

/// The name of the process statistics namespace, "Process", and what it
/// holds (the functions run when a report is made, so they are current
/// even while the namespace is paused):
///
/// | statistic | kind | what |
/// |---|---|---|
/// | `Start Time` | timestamp | when the site was opened (for `mantle serve`, the process start) |
/// | `Uptime Seconds` | function | seconds since `Start Time` |
/// | `Resident Memory Bytes` | function | `VmRSS` of `/proc/self/status` |
/// | `Threads` | function | `Threads` of `/proc/self/status` |
/// | `Process ID` | gauge | the process id |
///
/// Where `/proc` is missing, the memory and thread functions report nothing.
pub const PROCESS_NAMESPACE: &str = "Process";

/// Creates the "Process" namespace in `registry` and sets its start time.
pub(crate) fn install(registry: &StatsRegistry) {
    let ns = registry.namespace(PROCESS_NAMESPACE);
    let start = ns.timestamp("Start Time", "When the site was opened.");
    if start.get().is_none() {
        start.set_now();
    }
    ns.gauge("Process ID", "The operating system's id of this process.")
        .set(i64::from(std::process::id()));
    ns.function(
        "Uptime Seconds",
        "Seconds since the site was opened.",
        |view| Some((view.now() - view.get_f64("Start Time")?).max(0.0)),
    );
    ns.function(
        "Resident Memory Bytes",
        "Memory the process holds in RAM (VmRSS).",
        |_| status_field("VmRSS:").map(|kib| kib.saturating_mul(1024)),
    );
    ns.function("Threads", "Threads the process runs.", |_| {
        status_field("Threads:")
    });
}

/// The number after `field` in `/proc/self/status` (kB for sizes).
fn status_field(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_field(&status, field)
}

fn parse_status_field(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let status = "Name:\tmantle\nVmRSS:\t   12345 kB\nThreads:\t7\n";
        assert_eq!(parse_status_field(status, "VmRSS:"), Some(12345));
        assert_eq!(parse_status_field(status, "Threads:"), Some(7));
        assert_eq!(parse_status_field(status, "VmSwap:"), None);
    }

    #[test]
    fn reports_this_process() {
        let registry = StatsRegistry::new();
        install(&registry);
        let snap = registry.snapshot();
        let ns = snap.namespace(PROCESS_NAMESPACE).unwrap();
        let num = |n: &str| ns.value(n).and_then(mantle_stats::Value::as_f64);
        assert!(num("Start Time").unwrap() > 1.0e9);
        assert!(num("Uptime Seconds").unwrap() >= 0.0);
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(num("Resident Memory Bytes").unwrap() > 0.0);
            assert!(num("Threads").unwrap() >= 1.0);
        }
        assert_eq!(num("Process ID"), Some(f64::from(std::process::id())));
    }
}
