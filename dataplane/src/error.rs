//! Errors of the safe DPDK layer. DPDK reports failures as negative errno values (or -1 with
//! `rte_errno` set); they are turned into [`DpdkError`] at the boundary with DPDK's own message.

use std::ffi::CStr;

/// An error from a DPDK call, or a precondition the safe layer refused.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// A DPDK call failed with an errno.
    #[error("{call} failed: {message} (errno {errno})")]
    Call {
        call: &'static str,
        errno: i32,
        message: String,
    },
    /// `rte_eal_init` was already called in this process (DPDK allows it once).
    #[error("the DPDK EAL is already initialised in this process")]
    AlreadyInitialised,
    /// A configured device is not among the ports EAL probed.
    #[error("port {name:?} not found: the device failed to probe or was not given to EAL (--vdev/-a); available ports: {available}")]
    PortNotFound { name: String, available: String },
    /// An argument the safe layer checked before calling DPDK.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// DPDK's text for an errno (`rte_strerror` knows DPDK's own codes as well as libc's).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string
    // that stays valid until the next call on this thread; it is copied out immediately.
    unsafe {
        let p = dpdk_sys::rte_strerror(errno);
        if p.is_null() {
            return format!("errno {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

impl DpdkError {
    /// From a DPDK return code that is a negative errno (`-EINVAL`, ...).
    pub fn from_ret(call: &'static str, ret: i32) -> Self {
        let errno = ret.abs();
        DpdkError::Call {
            call,
            errno,
            message: strerror(errno),
        }
    }

    /// From a call that returned -1/NULL and set `rte_errno`.
    pub fn from_rte_errno(call: &'static str) -> Self {
        Self::from_ret(call, dpdk_sys::rte_errno())
    }
}

/// Maps a DPDK return code (negative errno on failure) to a `Result`.
pub(crate) fn check(call: &'static str, ret: i32) -> Result<i32, DpdkError> {
    if ret < 0 {
        Err(DpdkError::from_ret(call, ret))
    } else {
        Ok(ret)
    }
}

pub type Result<T, E = DpdkError> = std::result::Result<T, E>;
