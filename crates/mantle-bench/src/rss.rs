//! Peak resident memory of one phase of a bench.
//!
//! On Linux, writing `5` to `/proc/self/clear_refs` resets the kernel's
//! high-water mark (`VmHWM` in `/proc/self/status`) to the current RSS, so
//! reading `VmHWM` after the phase gives that phase's exact peak. Where the
//! reset is refused (or there is no `/proc`), a thread samples `VmRSS` every
//! 5 ms instead, which can miss short spikes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A phase being measured; [`finish`](PeakRss::finish) ends it.
pub(crate) struct PeakRss {
    baseline_kib: Option<u64>,
    how: How,
}

enum How {
    HighWaterMark,
    Sampling {
        stop: Arc<AtomicBool>,
        thread: JoinHandle<Option<u64>>,
    },
}

/// A phase's peak memory.
pub(crate) struct Peak {
    /// Peak RSS, MiB.
    pub mb: Option<f64>,
    /// RSS when the phase started, MiB.
    pub baseline_mb: Option<f64>,
    /// "VmHWM" or "VmRSS sampling".
    pub method: &'static str,
}

impl PeakRss {
    /// Starts measuring: gives freed heap back to the system first, so the
    /// phase is not credited with an earlier phase's leftovers.
    pub(crate) fn start() -> Self {
        trim_heap();
        let baseline_kib = status_kib("VmRSS");
        let how = if std::fs::write("/proc/self/clear_refs", "5").is_ok()
            && status_kib("VmHWM").is_some()
        {
            How::HighWaterMark
        } else {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let thread = std::thread::spawn(move || {
                let mut peak = status_kib("VmRSS");
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    peak = peak.max(status_kib("VmRSS"));
                }
                peak.max(status_kib("VmRSS"))
            });
            How::Sampling { stop, thread }
        };
        Self { baseline_kib, how }
    }

    /// Ends the phase and returns its peak.
    pub(crate) fn finish(self) -> Peak {
        let (kib, method) = match self.how {
            How::HighWaterMark => (status_kib("VmHWM"), "VmHWM"),
            How::Sampling { stop, thread } => {
                stop.store(true, Ordering::Relaxed);
                (thread.join().ok().flatten(), "VmRSS sampling")
            }
        };
        Peak {
            mb: kib.map(to_mb),
            baseline_mb: self.baseline_kib.map(to_mb),
            method,
        }
    }
}

fn to_mb(kib: u64) -> f64 {
    crate::report::round(kib as f64 / 1024.0, 1)
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Returns free heap memory to the system (glibc keeps it otherwise).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory held by the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_that_allocates_peaks_above_its_baseline() {
        if status_kib("VmRSS").is_none() {
            return; // no /proc here
        }
        let phase = PeakRss::start();
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        // Long enough for the sampling fallback to see it too.
        std::thread::sleep(Duration::from_millis(30));
        drop(big);
        let peak = phase.finish();
        let (mb, base) = (peak.mb.unwrap(), peak.baseline_mb.unwrap());
        assert!(mb >= base + 60.0, "peak {mb} MB, baseline {base} MB");
    }
}
