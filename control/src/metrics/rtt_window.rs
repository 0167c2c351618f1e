//! A tunnel's recent probe round-trip times, for operators: the replies of the last
//! [`RTT_WINDOW`], at most the latest [`RTT_WINDOW_SAMPLES`], in a ring allocated once.
//!
//! The cumulative histogram (the Prometheus series) holds every reply since the tunnel was
//! configured, so its percentiles move less and less as it grows: after a day, an hour of bad
//! latency hardly shows. Percentiles over a sliding window follow the path as it is now, and
//! say nothing (rather than something stale) once no reply has come for a whole window.

use std::collections::VecDeque;
use std::time::Duration;

use crate::health::Timestamp;

use super::RttSummary;

/// How far back the windowed percentiles look.
pub const RTT_WINDOW: Duration = Duration::from_secs(60);

/// Replies kept per tunnel: a probe every 100 ms (`probe_rate: high`) with its retries fits in
/// 60 s; faster probing keeps the latest 1024 replies, a shorter span than the window.
pub const RTT_WINDOW_SAMPLES: usize = 1024;

/// One reply: when it arrived and its round-trip time in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    at: Timestamp,
    rtt_us: u64,
}

/// The round-trip times of the replies of the last `window`, at most `capacity` of them.
///
/// Recording never allocates (the ring is allocated by [`RttWindow::new`]); the oldest reply
/// makes room for a new one. Times are the control loop's monotonic clock.
#[derive(Debug, Clone)]
pub struct RttWindow {
    window: Duration,
    capacity: usize,
    /// Oldest first.
    samples: VecDeque<Sample>,
}

impl RttWindow {
    /// An empty window of `window` holding at most `capacity` replies (none when zero: a
    /// tunnel without health checks gets no replies).
    pub fn new(window: Duration, capacity: usize) -> Self {
        RttWindow {
            window,
            capacity,
            samples: VecDeque::with_capacity(capacity),
        }
    }

    /// How far back [`summary`](Self::summary) looks.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Records a reply that arrived at `at` after `rtt_us` microseconds. Replies come in
    /// arrival order, so those older than the window are at the front.
    pub fn record(&mut self, at: Timestamp, rtt_us: u64) {
        if self.capacity == 0 {
            return;
        }
        while self
            .samples
            .front()
            .is_some_and(|s| !self.in_window(s.at, at))
        {
            self.samples.pop_front();
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample { at, rtt_us });
    }

    /// Replies of the window ending at `now`.
    pub fn len(&self, now: Timestamp) -> usize {
        self.recent(now).count()
    }

    /// `true` when no reply arrived in the window ending at `now`.
    pub fn is_empty(&self, now: Timestamp) -> bool {
        self.len(now) == 0
    }

    /// Percentiles of the replies of the window ending at `now` (nearest rank: the p-th
    /// percentile is the smallest RTT with at least p % of the replies at or below it), or
    /// `None` when no reply arrived in it. Sorts a copy of at most `capacity` values.
    pub fn summary(&self, now: Timestamp) -> Option<RttSummary> {
        let mut rtts: Vec<u64> = self.recent(now).map(|s| s.rtt_us).collect();
        if rtts.is_empty() {
            return None;
        }
        rtts.sort_unstable();
        let rank = |q: f64| {
            let n = rtts.len();
            let r = (q * n as f64).ceil() as usize;
            rtts[r.clamp(1, n) - 1]
        };
        Some(RttSummary {
            samples: rtts.len() as u64,
            p50_us: rank(0.50),
            p90_us: rank(0.90),
            p99_us: rank(0.99),
            max_us: rtts[rtts.len() - 1],
        })
    }

    /// A reply at `at` is in the window ending at `now` when it is younger than the window
    /// (one from the future, which a monotonic clock never gives, counts).
    fn in_window(&self, at: Timestamp, now: Timestamp) -> bool {
        now.saturating_duration_since(at) < self.window
    }

    fn recent(&self, now: Timestamp) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(move |s| self.in_window(s.at, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn percentiles_of_a_known_sequence() {
        let mut w = RttWindow::new(Duration::from_secs(1000), 1024);
        assert_eq!(w.summary(at(0)), None);
        // 1..=100 µs, shuffled: nearest rank gives the p-th value.
        for i in 0..100u64 {
            w.record(at(1), (i * 37) % 100 + 1);
        }
        assert_eq!(
            w.summary(at(1)),
            Some(RttSummary {
                samples: 100,
                p50_us: 50,
                p90_us: 90,
                p99_us: 99,
                max_us: 100,
            })
        );
        // One reply: every percentile is that reply.
        let mut one = RttWindow::new(Duration::from_secs(10), 8);
        one.record(at(5), 1234);
        let s = one.summary(at(5)).unwrap();
        assert_eq!(
            (s.samples, s.p50_us, s.p99_us, s.max_us),
            (1, 1234, 1234, 1234)
        );
        // Three replies: p50 is the second, p90 and p99 the third.
        let mut three = RttWindow::new(Duration::from_secs(10), 8);
        for us in [300, 100, 200] {
            three.record(at(1), us);
        }
        let s = three.summary(at(1)).unwrap();
        assert_eq!((s.p50_us, s.p90_us, s.p99_us), (200, 300, 300));
    }

    #[test]
    fn old_replies_leave_the_window() {
        let mut w = RttWindow::new(Duration::from_secs(60), 1024);
        // A slow minute, then a fast one: the percentiles follow.
        for s in 0..60 {
            w.record(at(s), 50_000);
        }
        assert_eq!(w.summary(at(59)).unwrap().p50_us, 50_000);
        for s in 60..120 {
            w.record(at(s), 1_000);
        }
        let now = w.summary(at(119)).unwrap();
        assert_eq!((now.samples, now.p99_us, now.max_us), (60, 1_000, 1_000));
        // The edge: a reply exactly one window old is out, one a nanosecond younger is in.
        let mut edge = RttWindow::new(Duration::from_secs(60), 8);
        edge.record(at(10), 7);
        assert_eq!(edge.len(at(10) + Duration::from_nanos(59_999_999_999)), 1);
        assert_eq!(edge.len(at(70)), 0);
        // Without replies for a whole window, nothing is shown (not the last known values).
        assert_eq!(w.summary(at(179)), None);
        assert!(w.is_empty(at(179)));
        assert_eq!(w.summary(at(178)).unwrap().samples, 1);
    }

    #[test]
    fn the_ring_keeps_the_latest_replies_without_growing() {
        let mut w = RttWindow::new(Duration::from_secs(60), 4);
        let cap = w.samples.capacity();
        for i in 1..=10u64 {
            w.record(Timestamp::from_millis(i), i);
        }
        assert_eq!(w.samples.capacity(), cap, "no allocation after new");
        let s = w.summary(Timestamp::from_millis(10)).unwrap();
        assert_eq!((s.samples, s.p50_us, s.max_us), (4, 8, 10));
        // A zero-capacity window (no health checks) records nothing.
        let mut none = RttWindow::new(RTT_WINDOW, 0);
        none.record(at(1), 5);
        assert_eq!(none.summary(at(1)), None);
    }
}
