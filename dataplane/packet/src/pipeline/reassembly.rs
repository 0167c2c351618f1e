//! Reassembly of outer IPv4 fragments of tunnel packets (docs/behaviour.md §2): a bounded,
//! preallocated, per-worker table, so that a flood of fragments costs a fixed amount of memory and
//! never allocates on the packet path.
//!
//! Sets are keyed by (source, destination, identification, protocol) and live in a
//! set-associative table: a key hashes (with a per-table seed, so a remote cannot aim at one
//! bucket of every appliance alike) to a bucket of [`WAYS`] slots. A new set takes a free slot of
//! its bucket, else one whose set has timed out, else evicts the bucket's oldest set: incomplete
//! sets are discarded whole, on timeout (measured from their first fragment) or on eviction, and
//! counted in [`ReassemblyStats`]. Each slot owns `max_datagram` bytes of payload buffer and a
//! bitmap of the 8-byte blocks received.
//!
//! Overlaps: a fragment whose blocks were all received already is a duplicate and ignored
//! (first copy wins); one that partly overlaps received data, or that contradicts the end of the
//! datagram, drops the whole set (as Linux does for IPv4 since 2018 and RFC 5722 requires for
//! IPv6), since overlapping fragments are a classic way to smuggle different bytes past a check.

use crate::wire::ipv4::{FLAG_DF, FLAG_RESERVED};
use crate::wire::{checksum, ipv4, Error, Ipv4Header, Ipv4Packet};

use super::verdict::DropReason;

/// Slots per bucket.
pub const WAYS: usize = 8;

/// Size and timing of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblerConfig {
    /// Sets in progress at once (the table holds this rounded up to whole buckets).
    pub max_sets: usize,
    /// Ticks (same clock as `now`) after its first fragment that an incomplete set is dropped.
    pub timeout: u64,
    /// Largest reassembled payload (bytes after the IPv4 header); must fit the output buffer.
    pub max_datagram: usize,
    /// Hash seed (any value; per worker).
    pub seed: u64,
}

/// Counters of a [`Reassembler`] (monotonic; the worker adds their deltas to its stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Fragments accepted for reassembly.
    pub fragments: u64,
    /// Datagrams completed.
    pub completed: u64,
    /// Fragments ignored as exact duplicates of received data.
    pub duplicates: u64,
    /// Incomplete sets dropped on timeout.
    pub timed_out: u64,
    /// Incomplete sets evicted to make room.
    pub evicted: u64,
    /// Sets dropped for an overlap, a contradiction or size.
    pub dropped: u64,
}

/// What [`Reassembler::insert`] did with a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reassembly {
    /// Stored; the datagram is not complete yet.
    Pending,
    /// The datagram is complete and written to the output buffer: this many bytes.
    Complete(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Key {
    src: u32,
    dst: u32,
    ident: u16,
    protocol: u8,
}

/// "End not known yet".
const NO_TOTAL: usize = usize::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    used: bool,
    key: Key,
    first_seen: u64,
    /// Payload length, once the last fragment arrived.
    total: usize,
    /// Highest end of any fragment so far.
    max_end: usize,
    /// 8-byte blocks received.
    blocks: usize,
    /// Header of the first fragment (offset 0), once it arrived.
    header: [u8; ipv4::MAX_HEADER_LEN],
    header_len: usize,
}

impl Slot {
    const EMPTY: Slot = Slot {
        used: false,
        key: Key {
            src: 0,
            dst: 0,
            ident: 0,
            protocol: 0,
        },
        first_seen: 0,
        total: NO_TOTAL,
        max_end: 0,
        blocks: 0,
        header: [0; ipv4::MAX_HEADER_LEN],
        header_len: 0,
    };
}

/// A bounded IPv4 reassembly table (see the module docs).
pub struct Reassembler {
    config: ReassemblerConfig,
    buckets: usize,
    slots: Box<[Slot]>,
    /// `words` bitmap words per slot.
    bitmap: Box<[u64]>,
    words: usize,
    /// `max_datagram` payload bytes per slot.
    data: Box<[u8]>,
    in_use: usize,
    stats: ReassemblyStats,
}

impl core::fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reassembler")
            .field("config", &self.config)
            .field("capacity", &self.slots.len())
            .field("in_use", &self.in_use)
            .field("stats", &self.stats)
            .finish()
    }
}

/// MurmurHash3's 64-bit finaliser.
#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

impl Reassembler {
    /// Allocates the whole table: `max_sets` (at least 1, rounded up to a multiple of
    /// [`WAYS`]) slots of `max_datagram` bytes each.
    pub fn new(config: ReassemblerConfig) -> Self {
        let buckets = config.max_sets.max(1).div_ceil(WAYS);
        let capacity = buckets * WAYS;
        let words = config.max_datagram.div_ceil(8).div_ceil(64);
        Reassembler {
            config,
            buckets,
            slots: vec![Slot::EMPTY; capacity].into_boxed_slice(),
            bitmap: vec![0; capacity * words].into_boxed_slice(),
            words,
            data: vec![0; capacity * config.max_datagram].into_boxed_slice(),
            in_use: 0,
            stats: ReassemblyStats::default(),
        }
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Sets in progress.
    pub fn in_progress(&self) -> usize {
        self.in_use
    }

    /// Counters.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    fn bucket(&self, key: &Key) -> usize {
        let h = fmix64(
            self.config.seed
                ^ (u64::from(key.src) << 32 | u64::from(key.dst))
                ^ fmix64(u64::from(key.ident) << 8 | u64::from(key.protocol)),
        );
        (h % self.buckets as u64) as usize
    }

    fn expired(&self, slot: &Slot, now: u64) -> bool {
        now.saturating_sub(slot.first_seen) >= self.config.timeout
    }

    fn free(&mut self, i: usize) {
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.used {
                slot.used = false;
                self.in_use -= 1;
            }
        }
    }

    /// Drops every set that has timed out at `now`; returns how many. Call it now and then
    /// (e.g. once per stats interval) so stale sets do not wait for a colliding fragment.
    pub fn expire(&mut self, now: u64) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            if self.slots[i].used && self.expired(&self.slots[i], now) {
                self.free(i);
                n += 1;
            }
        }
        self.stats.timed_out += n as u64;
        n
    }

    /// The slot of `key`'s set, claiming one (free, timed out, or the oldest evicted) if there
    /// is none.
    fn slot_for(&mut self, key: Key, now: u64) -> usize {
        let base = self.bucket(&key) * WAYS;
        let mut free = None;
        let mut oldest = base;
        for i in base..base + WAYS {
            let slot = self.slots[i];
            if !slot.used {
                free = free.or(Some(i));
                continue;
            }
            if self.expired(&slot, now) {
                self.free(i);
                self.stats.timed_out += 1;
                free = free.or(Some(i));
                continue;
            }
            if slot.key == key {
                return i;
            }
            if slot.first_seen < self.slots[oldest].first_seen || !self.slots[oldest].used {
                oldest = i;
            }
        }
        let i = free.unwrap_or_else(|| {
            self.free(oldest);
            self.stats.evicted += 1;
            oldest
        });
        self.slots[i] = Slot {
            used: true,
            key,
            first_seen: now,
            ..Slot::EMPTY
        };
        self.bitmap[i * self.words..(i + 1) * self.words].fill(0);
        self.in_use += 1;
        i
    }

    /// Drops slot `i`'s set for `reason`.
    fn reject(&mut self, i: usize, reason: DropReason) -> Result<Reassembly, DropReason> {
        self.free(i);
        self.stats.dropped += 1;
        Err(reason)
    }

    /// Adds `fragment` (an IPv4 fragment from its header on; trailing bytes ignored) received at
    /// `now`. When it completes its datagram, writes the datagram (first fragment's header with
    /// MF and offset cleared, new length and checksum; then the payload) into `out` and returns
    /// `Complete(len)`. Errors: the fragment's own wire error or `ReassemblyBadFragment` (set
    /// untouched), or `ReassemblyOverlap` / `ReassemblyTooBig` / `ReassemblyBadFragment` /
    /// `BufferTooSmall` when the whole set is dropped.
    pub fn insert(
        &mut self,
        fragment: &[u8],
        now: u64,
        out: &mut [u8],
    ) -> Result<Reassembly, DropReason> {
        let ip = Ipv4Packet::new_checked(fragment)?;
        ip.check_checksum()?;
        let payload = ip.payload();
        let offset = usize::from(ip.frag_offset());
        let end = offset + payload.len();
        let last = !ip.more_frags();
        if !ip.is_fragment() || (!last && (payload.is_empty() || payload.len() % 8 != 0)) {
            return Err(DropReason::ReassemblyBadFragment);
        }
        self.stats.fragments += 1;
        let key = Key {
            src: u32::from(ip.src_addr()),
            dst: u32::from(ip.dst_addr()),
            ident: ip.ident(),
            protocol: ip.protocol().into(),
        };
        let i = self.slot_for(key, now);
        if end > self.config.max_datagram {
            return self.reject(i, DropReason::ReassemblyTooBig);
        }
        let slot = self.slots[i];
        if last {
            if (slot.total != NO_TOTAL && slot.total != end) || slot.max_end > end {
                return self.reject(i, DropReason::ReassemblyBadFragment);
            }
            self.slots[i].total = end;
        } else if slot.total != NO_TOTAL && end > slot.total {
            return self.reject(i, DropReason::ReassemblyBadFragment);
        }

        let (first_block, end_block) = (offset / 8, end.div_ceil(8));
        let bitmap = &mut self.bitmap[i * self.words..(i + 1) * self.words];
        let seen = (first_block..end_block)
            .filter(|&b| bitmap[b / 64] & (1 << (b % 64)) != 0)
            .count();
        let blocks = end_block - first_block;
        if seen == blocks && blocks > 0 {
            self.stats.duplicates += 1;
        } else if seen > 0 {
            return self.reject(i, DropReason::ReassemblyOverlap);
        } else {
            for b in first_block..end_block {
                bitmap[b / 64] |= 1 << (b % 64);
            }
            let base = i * self.config.max_datagram;
            self.data[base + offset..base + end].copy_from_slice(payload);
            let slot = &mut self.slots[i];
            slot.blocks += blocks;
            slot.max_end = slot.max_end.max(end);
            if offset == 0 {
                let header = ip.header();
                slot.header[..header.len()].copy_from_slice(header);
                slot.header_len = header.len();
            }
        }

        let slot = self.slots[i];
        if slot.header_len == 0 || slot.total == NO_TOTAL || slot.blocks != slot.total.div_ceil(8) {
            return Ok(Reassembly::Pending);
        }
        let len = slot.header_len + slot.total;
        if len > usize::from(u16::MAX) {
            return self.reject(i, DropReason::ReassemblyTooBig);
        }
        let Some(out) = out.get_mut(..len) else {
            return self.reject(i, Error::BufferTooSmall.into());
        };
        let (header, body) = out.split_at_mut(slot.header_len);
        header.copy_from_slice(&slot.header[..slot.header_len]);
        let Some(mut h) = Ipv4Header::from_prefix_mut(header) else {
            return self.reject(i, Error::BufferTooSmall.into());
        };
        h.set_total_len(len as u16);
        // Keep DF (and the reserved bit) only: MF and the offset go.
        h.set_flags_offset(h.flags_offset() & (FLAG_RESERVED | FLAG_DF));
        h.set_checksum(0);
        let ck = checksum::checksum(header);
        if let Some(mut h) = Ipv4Header::from_prefix_mut(header) {
            h.set_checksum(ck);
        }
        let base = i * self.config.max_datagram;
        body.copy_from_slice(&self.data[base..base + slot.total]);
        self.free(i);
        self.stats.completed += 1;
        Ok(Reassembly::Complete(len))
    }
}
