//! Per-core counters, written by one worker and read by the control side.
//!
//! Each worker owns a cache-line-aligned block of [`Counter`]s; only that worker writes them,
//! with a plain load + store (no atomic read-modify-write, no lock prefix), and readers sum the
//! blocks. Relaxed atomics make the concurrent read well-defined; a reader may see a value a
//! few bursts old, never a torn one.

use std::sync::atomic::{AtomicU64, Ordering};

/// A single-writer counter.
#[derive(Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Must only be called by the counter's owning thread.
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// A fixed-size array of single-writer counters in whole 128-byte blocks, so that two
/// workers' arrays never share a cache line. Allocated once; indexing out of range is ignored.
pub struct CounterArray {
    blocks: Box<[CounterBlock]>,
    len: usize,
}

#[derive(Default)]
#[repr(align(128))]
struct CounterBlock([Counter; 16]);

impl CounterArray {
    pub fn new(len: usize) -> Self {
        CounterArray {
            blocks: (0..len.div_ceil(16))
                .map(|_| CounterBlock::default())
                .collect(),
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `n` to counter `i` (owning thread only). One bounds check, on the block: an index
    /// past `len` but inside the last block lands in its padding, which nothing reads.
    #[inline(always)]
    pub fn add(&self, i: usize, n: u64) {
        if let Some(b) = self.blocks.get(i / 16) {
            b.0[i % 16].add(n);
        }
    }

    pub fn get(&self, i: usize) -> u64 {
        if i >= self.len {
            return 0;
        }
        self.blocks.get(i / 16).map_or(0, |b| b.0[i % 16].get())
    }

    /// All values, for readers.
    pub fn values(&self) -> Vec<u64> {
        (0..self.len).map(|i| self.get(i)).collect()
    }
}

impl std::fmt::Debug for CounterArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values()).finish()
    }
}

/// The counters of one worker lcore. Aligned to two cache lines so that neighbouring
/// workers' blocks never share a line (adjacent-line prefetch included).
#[derive(Default, Debug)]
#[repr(align(128))]
pub struct CoreCounters {
    pub rx_packets: Counter,
    pub tx_packets: Counter,
    /// Packets the TX queue refused (freed, not retried).
    pub tx_dropped: Counter,
    /// Polls that returned at least one packet, and all polls.
    pub busy_polls: Counter,
    pub polls: Counter,
    /// TSC cycles spent in polls that returned packets (receive, process, transmit).
    pub busy_cycles: Counter,
}

/// A point-in-time copy of a [`CoreCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreSnapshot {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
    pub busy_polls: u64,
    pub polls: u64,
    pub busy_cycles: u64,
}

impl CoreCounters {
    pub fn snapshot(&self) -> CoreSnapshot {
        CoreSnapshot {
            rx_packets: self.rx_packets.get(),
            tx_packets: self.tx_packets.get(),
            tx_dropped: self.tx_dropped.get(),
            busy_polls: self.busy_polls.get(),
            polls: self.polls.get(),
            busy_cycles: self.busy_cycles.get(),
        }
    }
}

impl CoreSnapshot {
    /// Busy cycles per received packet, `None` before the first packet.
    pub fn cycles_per_packet(&self) -> Option<f64> {
        (self.rx_packets > 0).then(|| self.busy_cycles as f64 / self.rx_packets as f64)
    }

    /// Field-wise difference to an earlier snapshot (counters wrap).
    pub fn since(&self, earlier: &CoreSnapshot) -> CoreSnapshot {
        CoreSnapshot {
            rx_packets: self.rx_packets.wrapping_sub(earlier.rx_packets),
            tx_packets: self.tx_packets.wrapping_sub(earlier.tx_packets),
            tx_dropped: self.tx_dropped.wrapping_sub(earlier.tx_dropped),
            busy_polls: self.busy_polls.wrapping_sub(earlier.busy_polls),
            polls: self.polls.wrapping_sub(earlier.polls),
            busy_cycles: self.busy_cycles.wrapping_sub(earlier.busy_cycles),
        }
    }

    /// Field-wise sum.
    pub fn plus(&self, o: &CoreSnapshot) -> CoreSnapshot {
        CoreSnapshot {
            rx_packets: self.rx_packets.wrapping_add(o.rx_packets),
            tx_packets: self.tx_packets.wrapping_add(o.tx_packets),
            tx_dropped: self.tx_dropped.wrapping_add(o.tx_dropped),
            busy_polls: self.busy_polls.wrapping_add(o.busy_polls),
            polls: self.polls.wrapping_add(o.polls),
            busy_cycles: self.busy_cycles.wrapping_add(o.busy_cycles),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_cache_line_isolated() {
        assert!(std::mem::align_of::<CoreCounters>() >= 128);
        let v: Vec<CoreCounters> = (0..2).map(|_| CoreCounters::default()).collect();
        let a = &v[0] as *const _ as usize;
        let b = &v[1] as *const _ as usize;
        assert!(b - a >= 128);
    }

    #[test]
    fn counter_array_blocks_and_bounds() {
        let a = CounterArray::new(40);
        assert_eq!(a.len(), 40);
        assert_eq!(a.blocks.len(), 3);
        a.add(0, 2);
        a.add(39, 5);
        a.add(40, 7); // out of range (padding of the last block): never read
        a.add(48, 9); // past the last block: ignored
        assert_eq!(a.get(0), 2);
        assert_eq!(a.get(39), 5);
        assert_eq!(a.get(40), 0);
        assert_eq!(a.values().iter().sum::<u64>(), 7);
        assert_eq!(std::mem::align_of::<CounterBlock>(), 128);
    }

    #[test]
    fn snapshot_arithmetic() {
        let c = CoreCounters::default();
        c.rx_packets.add(100);
        c.busy_cycles.add(2500);
        let s1 = c.snapshot();
        assert_eq!(s1.cycles_per_packet(), Some(25.0));
        c.rx_packets.add(50);
        let d = c.snapshot().since(&s1);
        assert_eq!(d.rx_packets, 50);
        assert_eq!(d.busy_cycles, 0);
        assert_eq!(d.plus(&s1).rx_packets, 150);
        assert_eq!(CoreSnapshot::default().cycles_per_packet(), None);
        let wrap = CoreSnapshot {
            rx_packets: 3,
            ..Default::default()
        };
        let before = CoreSnapshot {
            rx_packets: u64::MAX,
            ..Default::default()
        };
        assert_eq!(wrap.since(&before).rx_packets, 4);
    }
}
