//! Peak resident memory of one phase of a bench, in this process or in
//! another one (a server the bench started).
//!
//! On Linux, writing `5` to `/proc/PID/clear_refs` resets the kernel's
//! high-water mark (`VmHWM` in `/proc/PID/status`) to the current RSS, so
//! reading `VmHWM` after the phase gives that phase's exact peak. Where the
//! reset is refused (or there is no `/proc`), a thread samples `VmRSS` every
//! 5 ms instead, which can miss short spikes. For another process the
//! thread samples as well, so both figures are reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A phase being measured; [`finish`](PeakRss::finish) ends it.
pub(crate) struct PeakRss {
    /// `/proc/self` or `/proc/PID`.
    proc_dir: String,
    baseline_kib: Option<u64>,
    high_water_mark: bool,
    sampler: Option<Sampler>,
}

/// A thread sampling `VmRSS` every 5 ms.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Option<u64>>,
}

impl Sampler {
    fn start(proc_dir: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = status_kib(&proc_dir, "VmRSS");
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                peak = peak.max(status_kib(&proc_dir, "VmRSS"));
            }
            peak.max(status_kib(&proc_dir, "VmRSS"))
        });
        Self { stop, thread }
    }

    fn finish(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// A phase's peak memory.
pub(crate) struct Peak {
    /// Peak RSS, MiB.
    pub mb: Option<f64>,
    /// RSS when the phase started, MiB.
    pub baseline_mb: Option<f64>,
    /// "VmHWM" or "VmRSS sampling".
    pub method: &'static str,
    /// Peak RSS as sampled every 5 ms, MiB, when a sampler ran beside
    /// the high-water mark (another process's phases).
    pub sampled_mb: Option<f64>,
}

impl PeakRss {
    /// Starts measuring this process: gives freed heap back to the system
    /// first, so the phase is not credited with an earlier phase's
    /// leftovers.
    pub(crate) fn start() -> Self {
        trim_heap();
        let mut phase = Self::begin("/proc/self".into());
        if !phase.high_water_mark {
            phase.sampler = Some(Sampler::start(phase.proc_dir.clone()));
        }
        phase
    }

    /// Starts measuring process `pid`: its high-water mark where it can be
    /// reset, and `VmRSS` sampled every 5 ms in any case.
    pub(crate) fn start_for(pid: u32) -> Self {
        let mut phase = Self::begin(format!("/proc/{pid}"));
        phase.sampler = Some(Sampler::start(phase.proc_dir.clone()));
        phase
    }

    fn begin(proc_dir: String) -> Self {
        let baseline_kib = status_kib(&proc_dir, "VmRSS");
        let high_water_mark = std::fs::write(format!("{proc_dir}/clear_refs"), "5").is_ok()
            && status_kib(&proc_dir, "VmHWM").is_some();
        Self {
            proc_dir,
            baseline_kib,
            high_water_mark,
            sampler: None,
        }
    }

    /// Ends the phase and returns its peak.
    pub(crate) fn finish(self) -> Peak {
        let sampled = self.sampler.and_then(Sampler::finish);
        let (kib, method) = if self.high_water_mark {
            (status_kib(&self.proc_dir, "VmHWM"), "VmHWM")
        } else {
            (sampled, "VmRSS sampling")
        };
        Peak {
            mb: kib.map(to_mb),
            baseline_mb: self.baseline_kib.map(to_mb),
            method,
            sampled_mb: sampled.filter(|_| self.high_water_mark).map(to_mb),
        }
    }
}

fn to_mb(kib: u64) -> f64 {
    crate::report::round(kib as f64 / 1024.0, 1)
}

/// A `kB` field of `PROC_DIR/status` (`VmRSS`, `VmHWM`).
fn status_kib(proc_dir: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("{proc_dir}/status")).ok()?;
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
        if status_kib("/proc/self", "VmRSS").is_none() {
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
