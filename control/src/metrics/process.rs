//! The process's own resources, read from Linux's `/proc` (what the official clients'
//! process collectors export as `process_*`; `prometheus-client` has none, so Conduit reads the
//! same files). Read by the control thread when it refreshes the snapshot, never by a worker.

use std::time::Duration;

/// Values of the standard `process_*` metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessMetrics {
    /// User plus system CPU time (`process_cpu_seconds_total`); busy-polling worker cores make
    /// it grow by about one second per second per worker.
    pub cpu_seconds: f64,
    /// Resident set size (`process_resident_memory_bytes`).
    pub resident_memory_bytes: u64,
    /// Virtual memory size (`process_virtual_memory_bytes`); includes the hugepage mappings.
    pub virtual_memory_bytes: u64,
    /// Start time since the Unix epoch (`process_start_time_seconds`).
    pub start_time: Duration,
    /// Open file descriptors (`process_open_fds`).
    pub open_fds: u64,
    /// The soft limit on file descriptors (`process_max_fds`).
    pub max_fds: u64,
}

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, 100 in Linux's ABI on
/// every architecture (asking `sysconf` would need `unsafe`).
const USER_HZ: u64 = 100;

impl ProcessMetrics {
    /// Reads `/proc/self`; `None` where `/proc` is missing or unreadable.
    pub fn read() -> Option<ProcessMetrics> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let mut m = parse(&stat, &status, &boot, &limits)?;
        // read_dir's own descriptor is open while it counts.
        m.open_fds = open_fds.saturating_sub(1);
        Some(m)
    }
}

/// Parses the files' contents (separate from the reading, to test on fixed text).
fn parse(stat: &str, status: &str, boot: &str, limits: &str) -> Option<ProcessMetrics> {
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // `fields[0]` is field 3 (state): field N is `fields[N - 3]`.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let (utime, stime, start_ticks) = (field(14)?, field(15)?, field(22)?);
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        Some(
            line[key.len()..]
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()?
                * 1024,
        )
    };
    let btime: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let max_fds = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(0);
    Some(ProcessMetrics {
        cpu_seconds: (utime + stime) as f64 / USER_HZ as f64,
        resident_memory_bytes: kib("VmRSS:")?,
        virtual_memory_bytes: kib("VmSize:")?,
        start_time: Duration::from_secs(btime)
            + Duration::from_millis(start_ticks * 1000 / USER_HZ),
        open_fds: 0,
        max_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (conduit (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 5 0 12345 1000000 300 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
    const STATUS: &str = "Name:\tconduit\nVmSize:\t  2048 kB\nVmRSS:\t   512 kB\nThreads:\t5\n";
    const BOOT: &str = "cpu  1 2 3\nbtime 1764000000\nprocesses 9\n";
    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";

    #[test]
    fn parses_proc_files() {
        let m = parse(STAT, STATUS, BOOT, LIMITS).unwrap();
        assert_eq!(m.cpu_seconds, 3.25);
        assert_eq!(m.resident_memory_bytes, 512 * 1024);
        assert_eq!(m.virtual_memory_bytes, 2048 * 1024);
        assert_eq!(m.start_time, Duration::from_millis(1_764_000_123_450));
        assert_eq!(m.max_fds, 1024);
        assert_eq!(parse("garbage", STATUS, BOOT, LIMITS), None);
        assert_eq!(parse(STAT, "Name: x\n", BOOT, LIMITS), None);
    }

    #[test]
    fn reads_this_process() {
        let m = ProcessMetrics::read().expect("/proc on Linux");
        assert!(m.resident_memory_bytes > 0 && m.virtual_memory_bytes >= m.resident_memory_bytes);
        assert!(m.open_fds >= 3 && m.open_fds <= m.max_fds, "{m:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert!(m.start_time <= now + Duration::from_secs(1));
        assert!(m.start_time + Duration::from_secs(3600) > now, "{m:?}");
    }
}
