//! The anti-replay window of an inbound SA (RFC 4303 §3.4.3), as a bitmap of the last `size`
//! sequence numbers below the highest one authenticated.
//!
//! Checking and updating are separate on purpose: [`ReplayWindow::check`] runs before the ICV is
//! verified and changes nothing, [`ReplayWindow::accept`] runs only after the ICV verified, so a
//! forged packet can never move the window (and so never make genuine packets look replayed).
//! Size 0 turns the check off, the default for anycast SAs that several appliances share.

/// The largest window, in sequence numbers.
pub const MAX_WINDOW: u32 = 4096;
/// The smallest enabled window (RFC 4303's recommended default).
pub const MIN_WINDOW: u32 = 64;
const WORDS: usize = (MAX_WINDOW / 64) as usize;

/// Why a sequence number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Already seen inside the window.
    Duplicate,
    /// Older than the window.
    TooOld,
    /// Sequence number 0 is never sent (the first is 1).
    Zero,
}

/// One inbound SA's window. Plain data, no allocation: 512 bytes of bitmap.
#[derive(Clone)]
pub struct ReplayWindow {
    size: u32,
    /// The highest sequence number accepted so far (0: none yet).
    top: u32,
    /// Bit `s % MAX_WINDOW` is set when sequence number `s` (within the window) was accepted.
    bits: [u64; WORDS],
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("size", &self.size)
            .field("top", &self.top)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// A window of `size` sequence numbers: 0 (off) or [`MIN_WINDOW`]..=[`MAX_WINDOW`]
    /// (validated by the config; other values are clamped into that range).
    pub fn new(size: u32) -> Self {
        let size = if size == 0 {
            0
        } else {
            size.clamp(MIN_WINDOW, MAX_WINDOW)
        };
        ReplayWindow {
            size,
            top: 0,
            bits: [0; WORDS],
        }
    }

    /// Whether the check is on.
    pub fn enabled(&self) -> bool {
        self.size != 0
    }

    /// The highest sequence number accepted.
    pub fn top(&self) -> u32 {
        self.top
    }

    /// Whether `seq` may be authenticated: new, or inside the window and not yet seen.
    pub fn check(&self, seq: u32) -> Result<(), Replay> {
        if !self.enabled() {
            return Ok(());
        }
        if seq == 0 {
            return Err(Replay::Zero);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(Replay::TooOld);
        }
        if self.bit(seq) {
            return Err(Replay::Duplicate);
        }
        Ok(())
    }

    /// Records `seq` as seen; call only after its ICV verified and [`check`](Self::check)
    /// passed.
    pub fn accept(&mut self, seq: u32) {
        if !self.enabled() {
            self.top = self.top.max(seq);
            return;
        }
        if seq > self.top {
            let advance = seq - self.top;
            if advance >= self.size {
                self.bits = [0; WORDS];
            } else {
                // Clear the bits of the numbers the window slides past, one by one: at most
                // `size` steps, and usually one.
                for s in self.top + 1..seq {
                    self.clear(s);
                }
            }
            self.top = seq;
        }
        self.set(seq);
    }

    fn index(seq: u32) -> (usize, u64) {
        let i = seq % MAX_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn bit(&self, seq: u32) -> bool {
        let (w, m) = Self::index(seq);
        self.bits[w] & m != 0
    }

    fn set(&mut self, seq: u32) {
        let (w, m) = Self::index(seq);
        self.bits[w] |= m;
    }

    fn clear(&mut self, seq: u32) {
        let (w, m) = Self::index(seq);
        self.bits[w] &= !m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn in_order_then_duplicates_and_old() {
        let mut w = ReplayWindow::new(64);
        for s in 1..=100 {
            assert_eq!(w.check(s), Ok(()));
            w.accept(s);
        }
        assert_eq!(w.check(100), Err(Replay::Duplicate));
        assert_eq!(w.check(37), Err(Replay::Duplicate));
        assert_eq!(w.check(36), Err(Replay::TooOld));
        assert_eq!(w.check(0), Err(Replay::Zero));
        assert_eq!(w.check(101), Ok(()));
    }

    #[test]
    fn a_checked_but_not_accepted_packet_leaves_the_window_alone() {
        let mut w = ReplayWindow::new(64);
        w.accept(10);
        // A forged packet with a far-ahead sequence number passes the check, fails its ICV and
        // is never accepted: genuine packets behind it are still welcome.
        assert_eq!(w.check(1_000_000), Ok(()));
        assert_eq!(w.check(9), Ok(()));
        assert_eq!(w.top(), 10);
    }

    #[test]
    fn off_accepts_everything() {
        let mut w = ReplayWindow::new(0);
        for s in [5, 5, 1, 0, u32::MAX, 5] {
            assert_eq!(w.check(s), Ok(()));
            w.accept(s);
        }
    }

    #[test]
    fn sizes_are_clamped() {
        assert_eq!(ReplayWindow::new(1).size, MIN_WINDOW);
        assert_eq!(ReplayWindow::new(100_000).size, MAX_WINDOW);
    }

    proptest! {
        /// Against a model that remembers every accepted number: a number is accepted iff it is
        /// new and within `size` of the highest accepted one (or above it).
        #[test]
        fn matches_a_model(size in prop_oneof![Just(64u32), Just(1024), Just(4096), 64u32..4096],
                           seqs in prop::collection::vec(1u32..20_000, 1..600)) {
            let mut w = ReplayWindow::new(size);
            let size = w.size;
            let mut seen = BTreeSet::new();
            let mut top = 0u32;
            for s in seqs {
                let model = if s > top {
                    Ok(())
                } else if top - s >= size {
                    Err(Replay::TooOld)
                } else if seen.contains(&s) {
                    Err(Replay::Duplicate)
                } else {
                    Ok(())
                };
                prop_assert_eq!(w.check(s), model, "seq {} top {} size {}", s, top, size);
                if model.is_ok() {
                    w.accept(s);
                    seen.insert(s);
                    top = top.max(s);
                }
            }
        }
    }
}
