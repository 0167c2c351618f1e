//! Logical cores: launching a closure on an EAL worker lcore and joining it.
//!
//! [`launch`] boxes the closure, hands it to `rte_eal_remote_launch` through an `extern "C"`
//! trampoline, and catches any panic there (a panic unwinding out of an `extern "C"` function
//! would abort the process). The [`JoinHandle`] waits for the lcore and returns the closure's
//! value or the panic message; [`JoinHandle::is_finished`] tells without waiting whether the
//! closure has returned (or panicked), so that a caller can notice a worker that died.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{DpdkError, Result};

/// An EAL logical core id.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

impl std::fmt::Debug for LcoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

impl std::fmt::Display for LcoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The lcore id of the calling thread, `None` for threads EAL did not create or register.
pub fn current() -> Option<LcoreId> {
    // SAFETY: reads a thread-local; valid on any thread.
    let id = unsafe { dpdk_sys::rte_lcore_id() };
    (id < dpdk_sys::RTE_MAX_LCORE).then_some(LcoreId(id))
}

/// Why a joined lcore produced no value.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("{lcore:?} panicked: {message}")]
    Panicked { lcore: LcoreId, message: String },
}

impl JoinError {
    /// The lcore that failed.
    pub fn lcore(&self) -> LcoreId {
        match self {
            JoinError::Panicked { lcore, .. } => *lcore,
        }
    }
}

type Slot<T> = Arc<Mutex<Option<std::result::Result<T, String>>>>;

/// Waits for a launched lcore.
#[must_use = "an lcore that is never joined cannot be launched again"]
pub struct JoinHandle<T> {
    lcore: LcoreId,
    slot: Slot<T>,
    finished: Arc<AtomicBool>,
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinHandle({:?})", self.lcore)
    }
}

impl<T> JoinHandle<T> {
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }

    /// Whether the lcore's function has returned or panicked; never blocks. Once true,
    /// [`join`](Self::join) returns at once.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Blocks until the lcore's function returned.
    pub fn join(self) -> std::result::Result<T, JoinError> {
        // SAFETY: waits for the lcore we launched; EAL is initialised (launch succeeded).
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore.0) };
        let result = self
            .slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| Err("lcore finished without a result".to_string()));
        result.map_err(|message| JoinError::Panicked {
            lcore: self.lcore,
            message,
        })
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Box<Job> leaked by launch() for exactly this call; it is reclaimed
    // once, here.
    let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
    // The job itself records success or the panic message in its slot; a panic must not unwind
    // across this extern "C" boundary.
    match catch_unwind(AssertUnwindSafe(*job)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Runs `f` on worker lcore `lcore` (which must be enabled and idle).
pub fn launch<F, T>(lcore: LcoreId, f: F) -> Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot: Slot<T> = Arc::new(Mutex::new(None));
    let out = Arc::clone(&slot);
    let finished = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&finished);
    let job: Job = Box::new(move || {
        let r = catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p));
        *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        // Set after the result is stored: whoever sees it can join and find the result.
        done.store(true, Ordering::Release);
    });
    let arg = Box::into_raw(Box::new(job)) as *mut c_void;
    // SAFETY: trampoline has the lcore_function_t signature; arg stays valid until the
    // trampoline reclaims it, or until we reclaim it below if the launch was refused.
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore.0) };
    if ret != 0 {
        // SAFETY: the launch failed, so the trampoline will never run and the box is ours.
        drop(unsafe { Box::from_raw(arg as *mut Job) });
        return Err(DpdkError::from_ret("rte_eal_remote_launch", ret));
    }
    Ok(JoinHandle {
        lcore,
        slot,
        finished,
    })
}
