//! The loss window of the degraded rule: probe outcomes of the last `loss_window`, counted in a
//! fixed ring of time buckets so memory does not depend on the probe rate.

use std::time::Duration;

use super::clock::{duration_to_nanos, Timestamp};

/// Number of buckets the window is cut into: the window's old edge is exact to 1 % of its length
/// (3 s for the documented 5 minutes).
pub(crate) const LOSS_WINDOW_BUCKETS: usize = 100;

/// Probes and failures counted over the loss window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossCount {
    /// Probe outcomes (successes and failures, retries included).
    pub probes: u64,
    /// Failed probes among them.
    pub failed: u64,
}

impl LossCount {
    /// `true` when at least `min_failures` probes failed and they are at least `ppm` parts per
    /// million of all probes.
    pub fn exceeds(&self, ppm: u32, min_failures: u32) -> bool {
        self.failed >= u64::from(min_failures)
            && u128::from(self.failed) * 1_000_000 >= u128::from(ppm) * u128::from(self.probes)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// `at / bucket_nanos` of the outcomes counted here; `u64::MAX` for a never-used bucket.
    index: u64,
    probes: u32,
    failed: u32,
}

const EMPTY: Bucket = Bucket {
    index: u64::MAX,
    probes: 0,
    failed: 0,
};

/// Outcomes bucketed by time. Bucket `k` holds outcomes at `[k·w, (k+1)·w)` with
/// `w = window / LOSS_WINDOW_BUCKETS`; a query at `now` sums the `LOSS_WINDOW_BUCKETS` buckets up
/// to and including the one of `now`. So an outcome older than the window never counts and one
/// younger than `window − w` always does.
#[derive(Debug, Clone)]
pub(crate) struct LossWindow {
    bucket_nanos: u64,
    buckets: [Bucket; LOSS_WINDOW_BUCKETS],
}

impl LossWindow {
    pub(crate) fn new(window: Duration) -> Self {
        let bucket_nanos = (duration_to_nanos(window) / LOSS_WINDOW_BUCKETS as u64).max(1);
        LossWindow {
            bucket_nanos,
            buckets: [EMPTY; LOSS_WINDOW_BUCKETS],
        }
    }

    /// Counts one outcome at `at`. Times must not go backwards by more than the window (the
    /// caller feeds a monotonic clock); an older outcome is dropped rather than miscounted.
    pub(crate) fn record(&mut self, at: Timestamp, failed: bool) {
        let index = at.as_nanos() / self.bucket_nanos;
        let bucket = &mut self.buckets[(index % LOSS_WINDOW_BUCKETS as u64) as usize];
        if bucket.index != index {
            if bucket.index != u64::MAX && bucket.index > index {
                return;
            }
            *bucket = Bucket {
                index,
                probes: 0,
                failed: 0,
            };
        }
        bucket.probes = bucket.probes.saturating_add(1);
        bucket.failed = bucket.failed.saturating_add(u32::from(failed));
    }

    /// Probes and failures in the window that ends at `now`.
    pub(crate) fn count(&self, now: Timestamp) -> LossCount {
        let current = now.as_nanos() / self.bucket_nanos;
        let oldest = current.saturating_sub(LOSS_WINDOW_BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .filter(|b| b.index != u64::MAX && (oldest..=current).contains(&b.index))
            .fold(LossCount::default(), |acc, b| LossCount {
                probes: acc.probes + u64::from(b.probes),
                failed: acc.failed + u64::from(b.failed),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_loss_window_ages_out_old_outcomes() {
        // 100 s window → 1 s buckets.
        let mut w = LossWindow::new(Duration::from_secs(100));
        w.record(Timestamp::from_millis(500), true);
        w.record(Timestamp::from_millis(1500), false);
        w.record(Timestamp::from_millis(50_000), true);
        let cases = [
            (
                Timestamp::from_secs(60),
                LossCount {
                    probes: 3,
                    failed: 2,
                },
            ),
            // Bucket 0 leaves the window once `now` reaches bucket 100.
            (
                Timestamp::from_millis(99_999),
                LossCount {
                    probes: 3,
                    failed: 2,
                },
            ),
            (
                Timestamp::from_secs(100),
                LossCount {
                    probes: 2,
                    failed: 1,
                },
            ),
            (
                Timestamp::from_secs(101),
                LossCount {
                    probes: 1,
                    failed: 1,
                },
            ),
            (
                Timestamp::from_secs(150),
                LossCount {
                    probes: 0,
                    failed: 0,
                },
            ),
        ];
        for (now, expected) in cases {
            assert_eq!(w.count(now), expected, "at {now}");
        }
        // A bucket slot reused after a full turn starts from zero.
        w.record(Timestamp::from_millis(100_700), false);
        assert_eq!(
            w.count(Timestamp::from_millis(100_800)),
            LossCount {
                probes: 3,
                failed: 1
            }
        );
    }

    #[test]
    fn health_loss_ratio_threshold() {
        let cases = [
            (
                LossCount {
                    probes: 300,
                    failed: 1,
                },
                false,
            ), // too few failures
            (
                LossCount {
                    probes: 300,
                    failed: 2,
                },
                true,
            ),
            (
                LossCount {
                    probes: 2000,
                    failed: 2,
                },
                true,
            ), // exactly 0.1 %
            (
                LossCount {
                    probes: 2001,
                    failed: 2,
                },
                false,
            ),
            (
                LossCount {
                    probes: 3000,
                    failed: 3,
                },
                true,
            ),
            (
                LossCount {
                    probes: 0,
                    failed: 0,
                },
                false,
            ),
        ];
        for (count, expected) in cases {
            assert_eq!(count.exceeds(1000, 2), expected, "{count:?}");
        }
    }
}
