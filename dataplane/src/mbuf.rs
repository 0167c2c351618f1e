//! Owned packet buffers and bursts of them.
//!
//! [`Mbuf`] owns one `rte_mbuf` (its `Drop` frees it back to the pool). [`Burst`] is a
//! fixed-capacity, allocation-free array of owned mbufs: the unit that poll loops receive,
//! process and transmit. Both hand ownership to DPDK only where DPDK takes it: after a transmit
//! only the accepted prefix leaves the burst; the rest stays owned until retried or freed.
//!
//! Only the first segment's data is exposed (`data`, `data_mut`). Conduit sizes its pools so that
//! a frame of the largest port MTU fits one segment, but a PMD may still deliver a chain (net_pcap
//! chains a frame longer than one buffer, some NICs split at their own buffer size): the workers
//! make such a packet one segment with [`Mbuf::linearize`] before anything reads it. Freeing
//! uses `rte_pktmbuf_free`/`_bulk`, which honour reference counts and chained segments.

use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;

use conduit_packet::pipeline::PacketBuf;

use crate::mempool::Mempool;

/// The largest burst a [`Burst`] holds.
pub const MAX_BURST: usize = 256;

/// Why a chained packet could not be made one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearizeError {
    /// The packet is longer than one mbuf of the pool holds.
    TooLong,
    /// The pool had no free mbuf to copy the packet into.
    NoMbuf,
}

/// One owned packet buffer.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<rte_mbuf>,
}

// SAFETY: an Mbuf is uniquely owned; moving it to another thread moves that ownership. The
// pool it returns to on drop is thread-safe.
unsafe impl Send for Mbuf {}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mbuf({:p}, len {})", self.raw, self.pkt_len())
    }
}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else will free or use while this `Mbuf` lives.
    #[inline]
    pub unsafe fn from_raw(raw: *mut rte_mbuf) -> Mbuf {
        Mbuf {
            // SAFETY: the caller guarantees a valid (hence non-null) mbuf.
            raw: unsafe { NonNull::new_unchecked(raw) },
        }
    }

    /// Gives up ownership without freeing.
    #[inline]
    pub fn into_raw(self) -> *mut rte_mbuf {
        let p = self.raw.as_ptr();
        std::mem::forget(self);
        p
    }

    #[inline]
    fn m(&self) -> &rte_mbuf {
        // SAFETY: self owns a valid mbuf for its whole lifetime.
        unsafe { self.raw.as_ref() }
    }

    #[inline]
    fn m_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: as above, and &mut self makes the access unique.
        unsafe { self.raw.as_mut() }
    }

    /// Length of the whole packet (all segments).
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.m().pkt_len
    }

    /// Length of the data in the first segment.
    #[inline]
    pub fn data_len(&self) -> u16 {
        self.m().data_len
    }

    /// Number of segments.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.m().nb_segs
    }

    /// Whether the packet spans more than one segment.
    #[inline(always)]
    pub fn is_chained(&self) -> bool {
        self.m().nb_segs > 1
    }

    /// Makes a chained packet one segment, so that [`data`](Self::data) is the whole packet.
    /// When the first segment's tailroom holds the later segments they are copied there (no
    /// allocation); otherwise the packet is copied into one fresh mbuf of `pool` (its only
    /// allocation) and the chain is freed. A packet longer than one mbuf of `pool` holds, or one
    /// that finds the pool empty, comes back unchanged with the reason. A one-segment packet is
    /// returned as it is.
    #[cold]
    #[inline(never)]
    pub fn linearize(mut self, pool: &Mempool) -> Result<Mbuf, (Mbuf, LinearizeError)> {
        if !self.is_chained() {
            return Ok(self);
        }
        let rest = self.later_segments_len();
        let first = self.m();
        let first_room = first.buf_len as usize - first.data_off as usize - first.data_len as usize;
        // A buffer shared with a clone must not be written to: copy instead.
        if rest <= first_room && self.refcnt() == 1 {
            self.pull_up(rest);
            return Ok(self);
        }
        let total = usize::from(self.data_len()) + rest;
        if total > usize::from(pool.data_room()) {
            return Err((self, LinearizeError::TooLong));
        }
        // The copy below reads pkt_len bytes: make it what the segments hold.
        self.m_mut().pkt_len = total as u32;
        // SAFETY: self is a valid chain; DPDK allocates from the valid pool and copies the whole
        // packet (offset 0, every byte) plus its metadata into a new mbuf we then own. It fits
        // one segment: pkt_len <= the pool's data room, which is a fresh mbuf's tailroom, and
        // pkt_len is what the segments hold, so the copy never walks past the last one.
        let copy =
            unsafe { dpdk_sys::rte_pktmbuf_copy(self.raw.as_ptr(), pool.as_ptr(), 0, u32::MAX) };
        match NonNull::new(copy) {
            // SAFETY: a fresh mbuf that nothing else references.
            Some(c) => Ok(unsafe { Mbuf::from_raw(c.as_ptr()) }),
            None => Err((self, LinearizeError::NoMbuf)),
        }
        // The chain (self), when copied, is freed here.
    }

    /// Bytes in the segments after the first, summed from the segments themselves (not from
    /// `pkt_len`, so that a copy sized by it cannot run past what they hold).
    fn later_segments_len(&self) -> usize {
        let mut len = 0;
        let mut seg = self.m().next;
        while !seg.is_null() {
            // SAFETY: every `next` of a valid chain is a valid segment or null.
            let s = unsafe { &*seg };
            len += s.data_len as usize;
            seg = s.next;
        }
        len
    }

    /// Copies the later segments' `rest` bytes into the first segment's tailroom (the caller
    /// checked that it holds them) and frees them.
    fn pull_up(&mut self, rest: usize) {
        let head = self.m_mut();
        let tail = std::mem::replace(&mut head.next, std::ptr::null_mut());
        let end = head.data_off as usize + head.data_len as usize;
        // SAFETY: the first segment's buffer has `rest` free bytes after its data (checked by
        // the caller); the segments are valid, distinct buffers, so source and destination do
        // not overlap; refcnt is 1 (Conduit never clones), so nobody else sees the bytes.
        unsafe {
            let mut dst = (head.buf_addr as *mut u8).add(end);
            let mut seg = tail;
            while !seg.is_null() {
                let s = &*seg;
                let src = (s.buf_addr as *const u8).add(s.data_off as usize);
                std::ptr::copy_nonoverlapping(src, dst, s.data_len as usize);
                dst = dst.add(s.data_len as usize);
                seg = s.next;
            }
        }
        head.data_len += rest as u16;
        head.pkt_len = u32::from(head.data_len);
        head.nb_segs = 1;
        // SAFETY: the detached segments are owned by this mbuf alone and no longer linked from
        // it; rte_pktmbuf_free walks and frees them all.
        unsafe { dpdk_sys::rte_pktmbuf_free(tail) };
    }

    /// Appends `tail`'s segments to this packet (`rte_pktmbuf_chain`), for tests and generators
    /// that need a chained packet. Gives `tail` back when the segment count would overflow.
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), Mbuf> {
        let segs = u32::from(self.nb_segs()) + u32::from(tail.nb_segs());
        if segs > u32::from(u16::MAX) {
            return Err(tail);
        }
        let add = tail.pkt_len();
        let tail = tail.into_raw();
        let mut last = self.raw.as_ptr();
        // SAFETY: every `next` of a valid chain is a valid segment or null; the last one's
        // `next` now takes ownership of `tail` (into_raw gave it up).
        unsafe {
            while !(*last).next.is_null() {
                last = (*last).next;
            }
            (*last).next = tail;
        }
        let head = self.m_mut();
        head.nb_segs = segs as u16;
        head.pkt_len += add;
        Ok(())
    }

    /// The port the mbuf was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.m().port
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.m().ol_flags
    }

    /// Sets offload flags for transmit.
    #[inline]
    pub fn set_ol_flags(&mut self, flags: u64) {
        self.m_mut().ol_flags = flags;
    }

    /// The RSS hash the NIC computed, when `RTE_MBUF_F_RX_RSS_HASH` is set.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        if self.ol_flags() & dpdk_sys::CONDUIT_MBUF_F_RX_RSS_HASH != 0 {
            // SAFETY: the hash union is plain data; the rss member is valid when the flag is set.
            Some(unsafe { self.m().__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }

    /// Sets the L2/L3 header lengths the NIC needs for checksum offload.
    #[inline]
    pub fn set_tx_offload_lengths(&mut self, l2_len: u8, l3_len: u16) {
        // The tx_offload word packs l2_len (7 bits) at bit 0 and l3_len (9 bits) at bit 7.
        let v = (l2_len as u64 & 0x7f) | ((l3_len as u64 & 0x1ff) << 7);
        self.m_mut().__bindgen_anon_3.tx_offload = v;
    }

    /// Free space before the data.
    #[inline]
    pub fn headroom(&self) -> u16 {
        self.m().data_off
    }

    /// Free space after the data in the last segment (first segment for single-segment mbufs).
    #[inline]
    pub fn tailroom(&self) -> u16 {
        // SAFETY: valid mbuf owned by self.
        unsafe { dpdk_sys::rte_pktmbuf_tailroom(self.raw.as_ptr()) }
    }

    /// The first segment's data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer (mbuf
        // invariant maintained by DPDK and by every mutator below); &self keeps it alive.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.m();
        let (p, len) = (m.buf_addr as *mut u8, m.data_len as usize);
        let off = m.data_off as usize;
        // SAFETY: as in data(); &mut self makes the access unique (the mbuf is not shared:
        // Conduit never clones mbufs, so refcnt is 1 while we own it).
        unsafe { std::slice::from_raw_parts_mut(p.add(off), len) }
    }

    /// Grows the packet at the front by `len` bytes taken from the headroom and returns the new
    /// front bytes (uninitialised content), or `None` when the headroom is too small.
    ///
    /// `rte_pktmbuf_prepend`'s steps over the mbuf's fields: written here so that they inline
    /// into the packet path (DPDK's is a static inline, reached through a generated wrapper
    /// that cannot be).
    #[inline]
    pub fn prepend(&mut self, len: u16) -> Option<&mut [u8]> {
        let m = self.m_mut();
        if len > m.data_off {
            return None;
        }
        m.data_off -= len;
        m.data_len += len;
        m.pkt_len += u32::from(len);
        let p = m.buf_addr as *mut u8;
        // SAFETY: the `len` bytes now at the front were headroom inside the buffer
        // (len <= data_off); &mut self makes the access unique.
        Some(unsafe {
            std::slice::from_raw_parts_mut(p.add(usize::from(m.data_off)), usize::from(len))
        })
    }

    /// Removes `len` bytes from the front. `false` (and no change) when the first segment is
    /// shorter than that. `rte_pktmbuf_adj`'s steps, inlined like [`Self::prepend`].
    #[inline]
    pub fn adj(&mut self, len: u16) -> bool {
        let m = self.m_mut();
        if len > m.data_len {
            return false;
        }
        m.data_len -= len;
        m.data_off += len;
        m.pkt_len -= u32::from(len);
        true
    }

    /// Grows the packet at the end by `len` bytes of tailroom and returns them, or `None` when
    /// the tailroom is too small.
    #[inline]
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: valid owned mbuf; DPDK checks the tailroom and returns NULL when short.
        let p = unsafe { dpdk_sys::rte_pktmbuf_append(self.raw.as_ptr(), len) };
        if p.is_null() {
            return None;
        }
        // SAFETY: DPDK returned a pointer to `len` bytes at the old end, inside the buffer.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len as usize) })
    }

    /// Removes `len` bytes from the end. `false` (and no change) when the last segment is
    /// shorter than that.
    #[inline]
    pub fn trim(&mut self, len: u16) -> bool {
        // SAFETY: valid owned mbuf; DPDK checks the length.
        unsafe { dpdk_sys::rte_pktmbuf_trim(self.raw.as_ptr(), len) == 0 }
    }

    /// The reference count (1 for an mbuf nobody else holds).
    pub fn refcnt(&self) -> u16 {
        // SAFETY: valid owned mbuf.
        unsafe { dpdk_sys::rte_mbuf_refcnt_read(self.raw.as_ptr()) }
    }

    /// Copies `bytes` in as the whole packet (for generators and tests). `false` when they do
    /// not fit in one segment.
    pub fn set_data(&mut self, bytes: &[u8]) -> bool {
        let cur = self.data_len();
        if !self.trim(cur) {
            return false;
        }
        match u16::try_from(bytes.len()).ok().and_then(|n| self.append(n)) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    /// Hints the CPU to load the mbuf header's first cache line (data pointer, lengths, flags).
    #[inline(always)]
    pub fn prefetch_header(&self) {
        // SAFETY: prefetch never faults, whatever the address.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                self.raw.as_ptr() as *const i8,
            )
        }
    }

    /// Hints the CPU to load the mbuf's first data cache line.
    #[inline(always)]
    pub fn prefetch_data(&self) {
        let m = self.m();
        // SAFETY: prefetch never faults, whatever the address.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                (m.buf_addr as *const i8).add(m.data_off as usize),
            )
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; after this it is gone (self is being dropped).
        unsafe { dpdk_sys::rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

/// A fixed-capacity burst of owned mbufs. Never allocates; dropping it frees what it holds.
pub struct Burst {
    len: usize,
    pkts: [*mut rte_mbuf; MAX_BURST],
}

// SAFETY: a Burst owns its mbufs exactly like a Vec<Mbuf> would.
unsafe impl Send for Burst {}

impl Default for Burst {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Burst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Burst(len {})", self.len)
    }
}

impl Burst {
    pub const fn new() -> Self {
        Burst {
            len: 0,
            pkts: [std::ptr::null_mut(); MAX_BURST],
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free slots.
    #[inline]
    pub fn spare(&self) -> usize {
        MAX_BURST - self.len
    }

    /// The owned mbufs.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: pkts[..len] are valid owned mbuf pointers (Burst invariant) and Mbuf is a
        // repr(transparent) wrapper around a non-null pointer, so the layouts are identical.
        unsafe { std::slice::from_raw_parts(self.pkts.as_ptr() as *const Mbuf, self.len) }
    }

    /// The owned mbufs, writable (their contents; the burst keeps ownership).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice; &mut self makes the access unique. Callers cannot move an
        // Mbuf out of a &mut slice without putting another valid one back (std::mem::swap /
        // replace), which keeps the invariant.
        unsafe { std::slice::from_raw_parts_mut(self.pkts.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// Adds an mbuf; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == MAX_BURST {
            return Err(m);
        }
        self.pkts[self.len] = m.into_raw();
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: pkts[len] was an owned valid mbuf; it is no longer counted by the burst.
        Some(unsafe { Mbuf::from_raw(self.pkts[self.len]) })
    }

    /// Takes the mbufs out in order, leaving the burst empty (even if the iterator is dropped
    /// early: the rest are then freed).
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        Drain {
            burst: self,
            next: 0,
        }
    }

    /// Frees every mbuf in the burst (one bulk call).
    #[inline]
    pub fn clear(&mut self) {
        if self.len > 0 {
            // SAFETY: pkts[..len] are owned valid mbufs; after the call none is counted.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.pkts.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// Forgets the first `n` mbufs (ownership went elsewhere, e.g. to a NIC) and moves the
    /// rest to the front.
    #[inline]
    pub(crate) fn release_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let n = n.min(self.len);
        if n == self.len {
            self.len = 0;
        } else if n > 0 {
            self.pkts.copy_within(n..self.len, 0);
            self.len -= n;
        }
    }

    /// Pointer to the first free slot and how many are free, for a PMD to fill.
    #[inline]
    pub(crate) fn spare_ptr(&mut self) -> (*mut *mut rte_mbuf, usize) {
        // SAFETY: len <= MAX_BURST, so the pointer is within or one past the array.
        (
            unsafe { self.pkts.as_mut_ptr().add(self.len) },
            MAX_BURST - self.len,
        )
    }

    /// Counts `n` more mbufs that a PMD or allocator wrote after the current end.
    ///
    /// # Safety
    /// The `n` slots after the current end must now hold valid, owned mbufs.
    #[inline]
    pub(crate) unsafe fn grow(&mut self, n: usize) {
        debug_assert!(self.len + n <= MAX_BURST);
        self.len += n;
    }

    /// Pointer to the first mbuf pointer, for handing the burst to a PMD.
    #[inline]
    pub(crate) fn as_mut_ptr(&mut self) -> *mut *mut rte_mbuf {
        self.pkts.as_mut_ptr()
    }

    /// Hints the CPU to load every packet's mbuf header and then its first data line. Two
    /// passes: the headers' addresses are known at once, so all their misses overlap; the data
    /// addresses need `buf_addr`/`data_off` from the header, whose loads by then are in flight
    /// together instead of one after another.
    #[inline]
    pub fn prefetch_all(&self) {
        for m in self.as_slice() {
            m.prefetch_header();
        }
        for m in self.as_slice() {
            m.prefetch_data();
        }
    }
}

/// In-order iterator over a burst's mbufs, see [`Burst::drain`].
pub struct Drain<'a> {
    burst: &'a mut Burst,
    next: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next >= self.burst.len {
            return None;
        }
        let p = self.burst.pkts[self.next];
        self.next += 1;
        // SAFETY: pkts[next] is an owned valid mbuf that no later step frees: Drop below only
        // frees the slots after `next`.
        Some(unsafe { Mbuf::from_raw(p) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.burst.len - self.next;
        (n, Some(n))
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let (taken, len) = (self.next, self.burst.len);
        if taken < len {
            // SAFETY: pkts[taken..len] are still owned by the burst; free them in one call.
            unsafe {
                dpdk_sys::rte_pktmbuf_free_bulk(
                    self.burst.pkts.as_mut_ptr().add(taken),
                    (len - taken) as u32,
                )
            };
        }
        self.burst.len = 0;
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

// The pipeline rewrites headers through this trait, so the same code runs over mbufs here and
// over heap buffers in the pure crate's tests, benches and fuzzer.
impl PacketBuf for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }

    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }

    #[inline(always)]
    fn prepend(&mut self, len: u16) -> Option<&mut [u8]> {
        Mbuf::prepend(self, len)
    }

    #[inline(always)]
    fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        Mbuf::append(self, len)
    }

    #[inline(always)]
    fn adj(&mut self, len: u16) -> bool {
        Mbuf::adj(self, len)
    }

    #[inline(always)]
    fn trim(&mut self, len: u16) -> bool {
        Mbuf::trim(self, len)
    }
}
