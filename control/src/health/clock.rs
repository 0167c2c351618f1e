//! Injected monotonic time for the health state machine.
//!
//! The state machine never reads a real clock: every call takes a [`Timestamp`] supplied by the
//! caller, so the control thread passes its monotonic clock and tests pass a simulated one.

use std::fmt;
use std::ops::Add;
use std::time::Duration;

/// A point in time, in nanoseconds since an epoch chosen by the caller.
///
/// Only differences between timestamps of the same epoch mean anything. `u64` nanoseconds cover
/// about 584 years, so arithmetic saturates instead of wrapping and never panics.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// A timestamp `since_epoch` after the epoch (saturating at `u64::MAX` nanoseconds).
    pub fn from_duration(since_epoch: Duration) -> Self {
        Timestamp(duration_to_nanos(since_epoch))
    }

    /// A timestamp `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// A timestamp `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed since the epoch.
    pub const fn since_epoch(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_to_nanos(d)))
    }

    /// `self - earlier`, or zero when `earlier` is later than `self`.
    pub const fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Seconds with nanosecond precision, e.g. `12.000000250s`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_timestamp_arithmetic_saturates() {
        let t = Timestamp::from_secs(3);
        assert_eq!(t + Duration::from_millis(250), Timestamp::from_millis(3250));
        assert_eq!(
            Timestamp::from_millis(3250).saturating_duration_since(t),
            Duration::from_millis(250)
        );
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_secs(5)),
            Duration::ZERO
        );
        assert_eq!(
            Timestamp::from_nanos(u64::MAX - 1) + Duration::from_secs(1),
            Timestamp::from_nanos(u64::MAX)
        );
        assert_eq!(Timestamp::from_duration(Duration::MAX).as_nanos(), u64::MAX);
        assert_eq!(
            format!("{:?}", Timestamp::from_nanos(12_000_000_250)),
            "12.000000250s"
        );
    }
}
