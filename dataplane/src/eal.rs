//! The Environment Abstraction Layer: process-wide DPDK initialisation.
//!
//! `rte_eal_init` may run once per process and keeps pointers into the argv it was given, so
//! [`Eal::init`] copies the arguments into C strings that live for the rest of the process
//! (a one-time, bounded leak) and refuses a second call. Dropping the [`Eal`] calls
//! `rte_eal_cleanup`; everything that holds DPDK resources (ports, pools, lcore handles) must
//! be dropped or joined before it.

use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{DpdkError, Result};
use crate::lcore::LcoreId;

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that the EAL is initialised in this process.
#[derive(Debug)]
pub struct Eal {
    consumed: usize,
    /// `rte_pdump_init` succeeded: `rte_pdump_uninit` runs before cleanup.
    capture: bool,
}

impl Eal {
    /// Initialises DPDK with `args` (the first is the program name, as in C's argv).
    ///
    /// Returns how many arguments EAL consumed through [`Eal::consumed_args`]. Bad arguments,
    /// a missing hugepage mount and similar problems come back as an error carrying DPDK's
    /// message (EAL also prints its own diagnostics on stderr).
    pub fn init<I, S>(args: I) -> Result<Eal>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut owned = Vec::new();
        for a in args {
            let a = a.as_ref();
            owned.push(CString::new(a).map_err(|_| {
                DpdkError::InvalidArgument(format!("EAL argument {a:?} contains a NUL byte"))
            })?);
        }
        if owned.is_empty() {
            owned.push(CString::new("conduit").expect("no NUL"));
        }
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::AlreadyInitialised);
        }
        // EAL keeps pointers into argv (e.g. for --vdev strings and the program name), so both
        // the strings and the pointer array live for the rest of the process.
        let strings: &'static mut [CString] = Vec::leak(owned);
        let argv: &'static mut [*mut c_char] = Vec::leak(
            strings
                .iter()
                .map(|s| s.as_ptr() as *mut c_char)
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect(),
        );
        let argc = (argv.len() - 1) as c_int;
        // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all with
        // 'static lifetime; this is the only rte_eal_init call in the process (INITIALISED).
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        Ok(Eal {
            consumed: ret as usize,
            capture: false,
        })
    }

    /// Blocks every real-time signal in the calling thread (and the threads it starts later),
    /// so that a thread which must keep its timing, the control loop, is not the one the
    /// kernel interrupts for them. net_tap asks the kernel for a real-time signal to the
    /// process for every packet that reaches its file descriptor (DPDK 22.11,
    /// drivers/net/tap: `F_SETSIG` + `O_ASYNC`, `F_SETOWN` = the process); a process-directed
    /// signal goes to the main thread first while it does not block it. Under a flood of
    /// 100k+ packets a second the main thread then spent seconds inside one 1 ms sleep.
    /// EAL's own threads, started by [`Eal::init`] before this call, keep the signals
    /// unblocked and take them instead, so net_tap's receive trigger still works.
    pub fn block_realtime_signals_on_this_thread(&self) -> Result<()> {
        // SAFETY: a shim calling sigemptyset/sigaddset/pthread_sigmask on a local set; it
        // only changes the calling thread's signal mask.
        let err = unsafe { dpdk_sys::conduit_block_realtime_signals() };
        if err != 0 {
            return Err(DpdkError::Call {
                call: "pthread_sigmask",
                errno: err,
                message: crate::error::strerror(err),
            });
        }
        Ok(())
    }

    /// Number of arguments EAL consumed (not counting the program name).
    pub fn consumed_args(&self) -> usize {
        self.consumed
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL is initialised.
        LcoreId(unsafe { dpdk_sys::rte_get_main_lcore() })
    }

    /// Every enabled lcore except the main one, in ascending order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        let mut i: u32 = u32::MAX; // -1: start from the beginning
        loop {
            // SAFETY: EAL is initialised; skip_main=1, wrap=0 iterates enabled workers once.
            i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
            if i >= dpdk_sys::RTE_MAX_LCORE {
                break;
            }
            out.push(LcoreId(i));
        }
        out
    }

    /// Whether `lcore` is enabled in this EAL instance (given with -l/-c).
    pub fn lcore_enabled(&self, lcore: LcoreId) -> bool {
        if lcore.0 >= dpdk_sys::RTE_MAX_LCORE {
            return false;
        }
        // SAFETY: EAL is initialised; the id is below RTE_MAX_LCORE.
        unsafe { dpdk_sys::rte_lcore_is_enabled(lcore.0) != 0 }
    }

    /// Timestamp-counter frequency in Hz.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: EAL is initialised (it calibrates the TSC during init).
        unsafe { dpdk_sys::rte_get_tsc_hz() }
    }

    /// Whether EAL runs on hugepages (false with `--no-huge`).
    pub fn has_hugepages(&self) -> bool {
        // SAFETY: EAL is initialised.
        unsafe { dpdk_sys::rte_eal_has_hugepages() != 0 }
    }

    /// Lets `dpdk-dumpcap` (a DPDK secondary process started with the same `--file-prefix`)
    /// capture from this process's ports: registers the pdump server. While nobody captures,
    /// the ports carry no RX/TX callback, so the packet path is unchanged.
    ///
    /// Fails (ENOTSUP) when the instance has no shared configuration (`--in-memory`,
    /// `--no-shconf`), which multi-process needs.
    pub fn enable_capture(&mut self) -> Result<()> {
        if self.capture {
            return Ok(());
        }
        // SAFETY: EAL is initialised; called from the main thread before the ports start.
        if unsafe { dpdk_sys::rte_pdump_init() } < 0 {
            return Err(DpdkError::from_rte_errno("rte_pdump_init"));
        }
        self.capture = true;
        Ok(())
    }

    /// DPDK's version string, e.g. "DPDK 22.11.11".
    pub fn version() -> String {
        // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_version()) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        if self.capture {
            // SAFETY: rte_pdump_init succeeded in this process; the ports are stopped.
            unsafe { dpdk_sys::rte_pdump_uninit() };
        }
        // SAFETY: called once, from the thread that owns the Eal, after the caller has released
        // the DPDK resources (documented contract of this type).
        let ret = unsafe { dpdk_sys::rte_eal_cleanup() };
        if ret < 0 {
            log::warn!("rte_eal_cleanup: {}", crate::error::strerror(-ret));
        }
    }
}

/// Reads the CPU's timestamp counter (no EAL needed).
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Splits a command line at the first `--` (the DPDK convention for applications): the EAL
/// arguments before it (with the program name first) and the application's after it (also
/// starting with the program name, for an argument parser). Without `--`, EAL gets only the
/// program name and the application everything. `default_prog` names an empty command line.
pub fn split_args(argv: &[String], default_prog: &str) -> (Vec<String>, Vec<String>) {
    let prog = argv
        .first()
        .cloned()
        .unwrap_or_else(|| default_prog.to_string());
    match argv.iter().position(|a| a == "--") {
        Some(i) => {
            let mut app = vec![prog];
            app.extend_from_slice(&argv[i + 1..]);
            (argv[..i].to_vec(), app)
        }
        None => (vec![prog], argv.to_vec()),
    }
}

#[cfg(test)]
mod split_args_tests {
    use super::split_args;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_at_the_first_double_dash() {
        let (e, a) = split_args(
            &v(&["conduit", "-l", "0,1", "--", "--config", "x.yaml"]),
            "c",
        );
        assert_eq!(e, v(&["conduit", "-l", "0,1"]));
        assert_eq!(a, v(&["conduit", "--config", "x.yaml"]));
        let (e, a) = split_args(&v(&["p", "--", "--x", "--", "y"]), "c");
        assert_eq!(e, v(&["p"]));
        assert_eq!(a, v(&["p", "--x", "--", "y"]));
    }

    #[test]
    fn without_double_dash_everything_is_the_application_s() {
        let (e, a) = split_args(&v(&["conduit", "check-config", "x.yaml"]), "c");
        assert_eq!(e, v(&["conduit"]));
        assert_eq!(a, v(&["conduit", "check-config", "x.yaml"]));
        let (e, a) = split_args(&[], "conduit-perf");
        assert_eq!(e, v(&["conduit-perf"]));
        assert!(a.is_empty());
    }
}
