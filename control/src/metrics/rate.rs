//! Packets per second from a cumulative counter, measured by the control thread when it
//! refreshes the snapshot: the workers only count, and nothing is added to the packet path.

use std::time::Duration;

use crate::health::Timestamp;

/// The span a rate is measured over: the counter's increase over at least this long, divided
/// by the time it took. With the snapshot refreshed every 0.5 s, a rate covers about 1 s and
/// changes every second.
pub const RATE_SPAN: Duration = Duration::from_secs(1);

/// The rate of one counter, from the samples the control thread feeds it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateMeter {
    /// The sample the next rate is measured from.
    base: Option<(Timestamp, u64)>,
    /// The latest measured rate, per second.
    rate: Option<u64>,
}

impl RateMeter {
    /// A meter with no sample yet.
    pub fn new() -> Self {
        RateMeter::default()
    }

    /// Feeds the counter's value `count` read at `at`, and returns the latest rate (rounded to
    /// a whole number per second): `None` until [`RATE_SPAN`] has passed since the first
    /// sample, or since the counter went backwards (it was restarted).
    pub fn update(&mut self, at: Timestamp, count: u64) -> Option<u64> {
        match self.base {
            Some((since, base)) if count >= base => {
                let span = at.saturating_duration_since(since);
                if span >= RATE_SPAN {
                    let per_sec = (count - base) as f64 / span.as_secs_f64();
                    self.rate = Some(per_sec.round() as u64);
                    self.base = Some((at, count));
                }
            }
            _ => {
                self.base = Some((at, count));
                self.rate = None;
            }
        }
        self.rate
    }

    /// The latest measured rate.
    pub fn rate(&self) -> Option<u64> {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn rate_is_the_increase_over_at_least_a_second() {
        let mut r = RateMeter::new();
        assert_eq!(r.update(ms(0), 1_000), None, "one sample is no rate");
        assert_eq!(r.update(ms(500), 1_500), None, "half a second is too short");
        // 3000 packets over 1 s.
        assert_eq!(r.update(ms(1_000), 4_000), Some(3_000));
        // The rate stays until the next whole span: then 1500 packets over 1.5 s.
        assert_eq!(r.update(ms(1_500), 4_500), Some(3_000));
        assert_eq!(r.update(ms(2_500), 5_500), Some(1_000));
        assert_eq!(r.rate(), Some(1_000));
        // Traffic stops: the rate falls to zero, it does not vanish.
        assert_eq!(r.update(ms(3_500), 5_500), Some(0));
        // Slow traffic rounds to the nearest whole packet per second.
        assert_eq!(r.update(ms(5_500), 5_503), Some(2));
    }

    #[test]
    fn a_counter_that_goes_back_restarts_the_meter() {
        let mut r = RateMeter::new();
        r.update(ms(0), 0);
        assert_eq!(r.update(ms(1_000), 100), Some(100));
        assert_eq!(r.update(ms(2_000), 10), None);
        assert_eq!(r.update(ms(3_000), 210), Some(200));
    }
}
