//! In-process `rte_ring`s of mbufs, and ethdev ports built over them (the ring PMD's
//! `rte_eth_from_rings`).
//!
//! A [`Ring`] is created single-producer/single-consumer and split into one [`RingProducer`] and
//! one [`RingConsumer`] handle (neither is `Clone`), so the SP/SC fast path can never be used by
//! two threads at once. A ring port takes the consumer side of its RX rings and the producer side
//! of its TX rings: the worker polling the port sees an ordinary ethdev, while a generator on
//! another lcore produces into the RX rings and a sink consumes the TX rings. This is how
//! `conduit-perf` keeps packet generation off the worker's lcore and out of its figures.
//!
//! Mbufs still in a ring when its last handle goes are freed, so nothing leaks from the pool.

use std::ffi::CString;
use std::sync::Arc;

use dpdk_sys as sys;

use crate::error::{DpdkError, Result};
use crate::mbuf::Burst;
use crate::port::PortId;

/// The ring itself, shared by its two handles (and a ring port); the last one frees it.
#[derive(Debug)]
struct RingInner {
    ptr: *mut sys::rte_ring,
    name: String,
}

// SAFETY: an rte_ring lives in shared DPDK memory and is usable from any thread; the SP/SC
// discipline is enforced by the handles (one producer, one consumer), not by this pointer.
unsafe impl Send for RingInner {}
// SAFETY: through &RingInner only rte_ring_count (a read of two indexes) is called.
unsafe impl Sync for RingInner {}

impl RingInner {
    fn count(&self) -> u32 {
        // SAFETY: the ring is valid while self lives; counting only reads its indexes.
        unsafe { sys::rte_ring_count(self.ptr) }
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Every handle is gone, so nobody else touches the ring: take back what is left.
        let mut b = Burst::new();
        loop {
            let (dst, spare) = b.spare_ptr();
            // SAFETY: the ring is valid; dst has room for `spare` pointers; we are its only user.
            let n = unsafe {
                sys::rte_ring_dequeue_burst(
                    self.ptr,
                    dst.cast(),
                    spare as u32,
                    std::ptr::null_mut(),
                )
            } as usize;
            if n == 0 {
                break;
            }
            // SAFETY: the ring held owned mbufs (only Burst contents are ever enqueued).
            unsafe { b.grow(n) };
            b.clear();
        }
        // SAFETY: the ring is empty and no handle or port refers to it any more.
        unsafe { sys::rte_ring_free(self.ptr) };
        log::debug!("ring {} freed", self.name);
    }
}

/// A single-producer, single-consumer ring of mbufs.
#[derive(Debug)]
pub struct Ring;

impl Ring {
    /// Creates a ring named `name` (unique in the process) holding up to `size - 1` mbufs
    /// (`size` a power of two), on `socket` (-1: any).
    pub fn create(name: &str, size: u32, socket: i32) -> Result<(RingProducer, RingConsumer)> {
        if !size.is_power_of_two() || size < 2 {
            return Err(DpdkError::InvalidArgument(format!(
                "ring {name}: size {size} is not a power of two >= 2"
            )));
        }
        let cname = CString::new(name)
            .map_err(|_| DpdkError::InvalidArgument(format!("ring name {name:?} has a NUL")))?;
        let flags = sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ;
        // SAFETY: cname is a valid C string for the call (DPDK copies it).
        let ptr = unsafe { sys::rte_ring_create(cname.as_ptr(), size, socket, flags) };
        if ptr.is_null() {
            return Err(DpdkError::from_rte_errno("rte_ring_create"));
        }
        let inner = Arc::new(RingInner {
            ptr,
            name: name.to_string(),
        });
        Ok((
            RingProducer {
                inner: Arc::clone(&inner),
            },
            RingConsumer { inner },
        ))
    }
}

/// The right to enqueue into one ring.
#[derive(Debug)]
pub struct RingProducer {
    inner: Arc<RingInner>,
}

/// The right to dequeue from one ring.
#[derive(Debug)]
pub struct RingConsumer {
    inner: Arc<RingInner>,
}

impl RingProducer {
    /// Enqueues as much of the burst as fits. The accepted prefix leaves the burst; the rest
    /// moves to the front for a later retry. Returns how many were enqueued.
    #[inline]
    pub fn enqueue(&mut self, burst: &mut Burst) -> usize {
        let len = burst.len() as u32;
        if len == 0 {
            return 0;
        }
        // SAFETY: the first len pointers are owned valid mbufs; the ring takes exactly the first
        // n it reports; this handle is the ring's only producer.
        let n = unsafe {
            sys::rte_ring_enqueue_burst(
                self.inner.ptr,
                burst.as_mut_ptr().cast(),
                len,
                std::ptr::null_mut(),
            )
        } as usize;
        burst.release_front(n);
        n
    }

    /// Mbufs in the ring now.
    pub fn count(&self) -> u32 {
        self.inner.count()
    }
}

impl RingConsumer {
    /// Dequeues up to `max` mbufs (bounded by the burst's free space) to the end of `burst`.
    #[inline]
    pub fn dequeue(&mut self, burst: &mut Burst, max: usize) -> usize {
        let (dst, spare) = burst.spare_ptr();
        let want = max.min(spare) as u32;
        // SAFETY: dst has room for `want` pointers; this handle is the ring's only consumer.
        let n = unsafe {
            sys::rte_ring_dequeue_burst(self.inner.ptr, dst.cast(), want, std::ptr::null_mut())
        } as usize;
        // SAFETY: the ring only ever holds owned mbufs; the n dequeued are ours now.
        unsafe { burst.grow(n) };
        n
    }

    /// Mbufs in the ring now.
    pub fn count(&self) -> u32 {
        self.inner.count()
    }
}

/// The rings a ring port uses; they must outlive the port, so drop this after the `Port`.
#[derive(Debug)]
pub struct RingPortRings {
    _rings: Vec<Arc<RingInner>>,
}

/// Creates an ethdev named `name` whose RX queue i reads `rx[i]` and TX queue i writes `tx[i]`.
/// The port is then found, configured and started like any other (`port::find_port` by name).
pub fn ring_port(
    name: &str,
    rx: Vec<RingConsumer>,
    tx: Vec<RingProducer>,
) -> Result<(PortId, RingPortRings)> {
    if rx.is_empty() || tx.is_empty() {
        return Err(DpdkError::InvalidArgument(format!(
            "ring port {name}: needs at least one RX and one TX ring"
        )));
    }
    let cname = CString::new(name)
        .map_err(|_| DpdkError::InvalidArgument(format!("port name {name:?} has a NUL")))?;
    let rx_ptrs: Vec<*mut sys::rte_ring> = rx.iter().map(|c| c.inner.ptr).collect();
    let tx_ptrs: Vec<*mut sys::rte_ring> = tx.iter().map(|p| p.inner.ptr).collect();
    // SAFETY: both arrays hold valid rings and live across the call (the PMD copies the
    // pointers); the rings are kept alive by the returned RingPortRings for the port's life.
    let ret = unsafe {
        sys::rte_eth_from_rings(
            cname.as_ptr(),
            rx_ptrs.as_ptr(),
            rx_ptrs.len() as u32,
            tx_ptrs.as_ptr(),
            tx_ptrs.len() as u32,
            // Socket 0: rte_eth_from_rings takes an unsigned node, so no "any" value.
            0,
        )
    };
    if ret < 0 {
        return Err(DpdkError::from_rte_errno("rte_eth_from_rings"));
    }
    let rings = rx
        .into_iter()
        .map(|c| c.inner)
        .chain(tx.into_iter().map(|p| p.inner))
        .collect();
    Ok((PortId(ret as u16), RingPortRings { _rings: rings }))
}
