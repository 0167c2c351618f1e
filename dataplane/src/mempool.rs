//! Packet-buffer pools (`rte_pktmbuf_pool_create`).
//!
//! A [`Mempool`] is shared by reference between the threads that allocate from it (DPDK pools
//! are multi-producer/multi-consumer). Freeing a pool while mbufs from it are still out would
//! leave them dangling, so `Drop` frees the pool only when every mbuf has come back, and
//! otherwise leaves it allocated and logs how many are missing: a leak is reported, never
//! turned into a use-after-free.

use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::{DpdkError, Result};
use crate::mbuf::{Burst, Mbuf};

/// A pool of packet buffers.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    capacity: u32,
    data_room: u16,
}

// SAFETY: DPDK mempools are thread-safe (lock-free ring plus per-lcore caches); the pointer is
// only used through DPDK's API.
unsafe impl Send for Mempool {}
// SAFETY: as above; all operations through &Mempool are DPDK's thread-safe calls.
unsafe impl Sync for Mempool {}

/// Room for the packet data of one mbuf: a 1500-byte frame plus the largest encapsulation
/// Conduit adds, rounded to DPDK's default (2048) so every PMD accepts it.
pub const DEFAULT_DATA_ROOM: u16 = 2048;

impl Mempool {
    /// Creates a pool of `size` mbufs with a per-lcore cache of `cache` and `data_room` bytes
    /// of data per mbuf after the standard headroom, on NUMA `socket` (-1 for any).
    pub fn new(name: &str, size: u32, cache: u32, data_room: u16, socket: i32) -> Result<Self> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::InvalidArgument(format!("pool name {name:?} has a NUL")))?;
        let room = data_room as u32 + dpdk_sys::RTE_PKTMBUF_HEADROOM;
        if room > u16::MAX as u32 {
            return Err(DpdkError::InvalidArgument(format!(
                "data room {data_room} plus headroom exceeds 65535"
            )));
        }
        // SAFETY: cname is a valid C string for the duration of the call; DPDK copies it.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), size, cache, 0, room as u16, socket)
        };
        let raw = NonNull::new(raw)
            .ok_or_else(|| DpdkError::from_rte_errno("rte_pktmbuf_pool_create"))?;
        Ok(Mempool {
            raw,
            capacity: size,
            data_room,
        })
    }

    /// Number of mbufs the pool was created with.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Bytes of packet data one mbuf holds after the headroom: the longest packet that fits in
    /// one segment.
    pub fn data_room(&self) -> u16 {
        self.data_room
    }

    /// Mbufs currently free (in the ring or in lcore caches).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is valid for self's lifetime.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently allocated.
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: the pool is valid for self's lifetime.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Allocates one mbuf (reset: empty data, standard headroom).
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; a non-null result is a fresh mbuf we now own.
        let m = unsafe { dpdk_sys::rte_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(|m| unsafe {
            // SAFETY: m is a freshly allocated mbuf owned by nobody else.
            Mbuf::from_raw(m.as_ptr())
        })
    }

    /// Appends `count` mbufs to `burst` in one bulk allocation (all or nothing). Returns
    /// whether it succeeded: false when the pool has fewer free or the burst less room.
    pub fn alloc_bulk(&self, burst: &mut Burst, count: usize) -> bool {
        let (dst, spare) = burst.spare_ptr();
        if count > spare {
            return false;
        }
        // SAFETY: dst has room for `count` pointers (checked above); the pool is valid.
        let ret = unsafe { dpdk_sys::rte_pktmbuf_alloc_bulk(self.raw.as_ptr(), dst, count as u32) };
        if ret != 0 {
            return false;
        }
        // SAFETY: on success DPDK wrote `count` freshly allocated mbufs we now own.
        unsafe { burst.grow(count) };
        true
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let in_use = self.in_use_count();
        if in_use != 0 {
            log::error!(
                "mempool dropped with {in_use} mbufs still allocated; not freeing it (leak)"
            );
            return;
        }
        // SAFETY: no mbuf of this pool is outstanding, and no other reference to it exists
        // (Mempool is not Clone).
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
