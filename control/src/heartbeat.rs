//! The control loop's heartbeat: how many turns it has made, when the latest one started, and
//! the stalls, turns that started far later than the loop's period allows (docs/operations.md).
//!
//! Everything the control thread does (probes, timeouts, failover, table publication, the
//! metrics snapshot) happens in its turns, so a loop that stops turning silently freezes health
//! checking while the workers keep forwarding. The heartbeat makes that visible: the iteration
//! counter stops moving, the last-turn timestamp ages, and each stall is counted and reported
//! once by [`Heartbeat::beat`]. Pure bookkeeping on an injected clock: no I/O, no clock read.

use std::time::Duration;

use crate::health::Timestamp;

/// A gap between two turns at least this long is a stall. The loop turns every millisecond;
/// a tenth of a second late means probes, timeouts and failover were all that late.
pub const STALL_AFTER: Duration = Duration::from_millis(100);

/// Counters of the control loop's progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// Turns since start.
    pub iterations: u64,
    /// Start of the latest turn (`None` before the first).
    pub last: Option<Timestamp>,
    /// Gaps of at least [`STALL_AFTER`] between two turns.
    pub stalls: u64,
    /// The longest gap between two turns.
    pub longest_gap: Duration,
}

impl Heartbeat {
    /// Records a turn starting at `now`; returns the gap since the previous turn when it was a
    /// stall, for the caller to log.
    pub fn beat(&mut self, now: Timestamp) -> Option<Duration> {
        self.iterations += 1;
        let gap = self.last.map(|last| now.saturating_duration_since(last));
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
        let gap = gap?;
        self.longest_gap = self.longest_gap.max(gap);
        if gap >= STALL_AFTER {
            self.stalls += 1;
            return Some(gap);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_counted_and_late_ones_are_stalls() {
        let mut h = Heartbeat::default();
        assert_eq!(
            h.beat(Timestamp::from_millis(10)),
            None,
            "the first turn has no gap"
        );
        assert_eq!(h.beat(Timestamp::from_millis(11)), None);
        assert_eq!(
            h.beat(Timestamp::from_millis(110)),
            None,
            "99 ms is not a stall"
        );
        assert_eq!(
            h.beat(Timestamp::from_millis(3110)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(h.iterations, 4);
        assert_eq!(h.stalls, 1);
        assert_eq!(h.longest_gap, Duration::from_secs(3));
        assert_eq!(h.last, Some(Timestamp::from_millis(3110)));
        // A clock that goes back is no gap and does not move `last` back.
        assert_eq!(h.beat(Timestamp::from_millis(3000)), None);
        assert_eq!(h.last, Some(Timestamp::from_millis(3110)));
        assert_eq!(h.iterations, 5);
    }
}
