//! Outbound sequence numbers of one SA, shared by every worker that sends on it.
//!
//! They start at 1 and never repeat within a boot (RFC 4303 §3.3.3 without extended sequence
//! numbers): the IV is built from them ([`super::iv`]), so a repeat would reuse a GCM nonce.
//! Workers take them with one atomic add per packet; the count is 64-bit, so it cannot wrap
//! past 2³² and hand out an old number again: once 2³² − 1 numbers are used, the SA refuses to
//! send until it is rekeyed. Numbers leave slightly out of order between workers, which the
//! receiver's window (when enabled) absorbs. What the shared add costs when several workers
//! send on one SA is measured by `examples/seq_contention.rs` (figures in perf/README.md).

use std::sync::atomic::{AtomicU64, Ordering};

/// The highest sequence number an SA may use.
pub const LAST: u32 = u32::MAX;

/// The next sequence number to hand out.
#[derive(Debug)]
pub struct OutboundSeq {
    next: AtomicU64,
}

impl Default for OutboundSeq {
    fn default() -> Self {
        Self::new()
    }
}

impl OutboundSeq {
    /// Starts at 1.
    pub const fn new() -> Self {
        OutboundSeq {
            next: AtomicU64::new(1),
        }
    }

    /// The next number, or `None` when the SA's 2³² − 1 numbers are used up.
    #[inline]
    pub fn take(&self) -> Option<u32> {
        // Relaxed: uniqueness needs only the atomicity of the add, not ordering with other
        // memory.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        u32::try_from(n).ok()
    }

    /// Makes `next` the next number handed out: the tests' way to the end of the space.
    #[cfg(test)]
    pub(crate) fn skip_to(&self, next: u32) {
        self.next.store(u64::from(next), Ordering::Relaxed);
    }

    /// The last number handed out (0: none yet).
    pub fn last(&self) -> u32 {
        let n = self.next.load(Ordering::Relaxed).saturating_sub(1);
        u32::try_from(n).unwrap_or(LAST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn starts_at_one_and_stops_at_the_end() {
        let s = OutboundSeq::new();
        assert_eq!(s.last(), 0);
        assert_eq!(s.take(), Some(1));
        assert_eq!(s.take(), Some(2));
        assert_eq!(s.last(), 2);
        s.next.store(u64::from(LAST), Ordering::Relaxed);
        assert_eq!(s.take(), Some(LAST));
        assert_eq!(s.take(), None);
        assert_eq!(s.take(), None);
        assert_eq!(s.last(), LAST);
    }

    #[test]
    fn four_threads_never_share_a_number() {
        let s = Arc::new(OutboundSeq::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    (0..50_000).map(|_| s.take().unwrap()).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for n in h.join().unwrap() {
                assert!(all.insert(n), "{n} handed out twice");
            }
        }
        assert_eq!(all.len(), 200_000);
        assert_eq!((1..=200_000).filter(|n| all.contains(n)).count(), 200_000);
    }
}
