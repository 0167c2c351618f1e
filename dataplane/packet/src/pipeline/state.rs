//! Per-worker mutable state of the packet path: the outer IPv4 identification counter, the
//! token bucket that rate-limits the ICMP errors the worker generates (docs/behaviour.md §6) and
//! the worker's ESP sessions and replay windows ([`EspRuntime`]). Time
//! is the caller's: a monotonic tick count (TSC cycles in the worker, anything in tests) passed to
//! every call, so behaviour is deterministic.

use crate::esp::runtime::EspRuntime;

/// A token bucket: starts full with `burst` tokens and refills `rate` tokens per second of
/// ticks. Integer-only: one token is `ticks_per_sec` units and each tick adds `rate` units.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// `rate` units per tick.
    rate: u64,
    /// One token, in units.
    token: u64,
    /// Capacity, in units.
    cap: u64,
    level: u64,
    last: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate_per_sec`, on a clock of
    /// `ticks_per_sec` (at least 1) whose current value is `now`.
    pub fn new(rate_per_sec: u32, burst: u32, ticks_per_sec: u64, now: u64) -> Self {
        let token = ticks_per_sec.max(1);
        let cap = token.saturating_mul(u64::from(burst));
        TokenBucket {
            rate: u64::from(rate_per_sec),
            token,
            cap,
            level: cap,
            last: now,
        }
    }

    /// Takes one token if there is one at time `now` (a `now` before the last one counts as
    /// the last one).
    #[inline]
    pub fn try_take(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.level = self
            .level
            .saturating_add(elapsed.saturating_mul(self.rate))
            .min(self.cap);
        if self.level >= self.token {
            self.level -= self.token;
            true
        } else {
            false
        }
    }

    /// Whole tokens available (without refilling).
    pub fn tokens(&self) -> u64 {
        self.level / self.token
    }
}

/// What one worker core mutates while processing packets.
#[derive(Debug)]
pub struct WorkerState {
    ident: u16,
    /// Rate limit of generated ICMP errors (fragmentation needed, time exceeded).
    pub icmp: TokenBucket,
    /// ESP sessions and replay windows; [`EspRuntime::sync`] it with the context once per
    /// burst (`process` and `encapsulate` also check it). Without [`Self::set_esp`], ESP
    /// packets drop `esp_no_session`.
    pub esp: EspRuntime,
}

impl WorkerState {
    /// `first_ident`: the first outer IPv4 identification (give each core a different start).
    pub fn new(icmp: TokenBucket, first_ident: u16) -> Self {
        WorkerState {
            ident: first_ident,
            icmp,
            esp: EspRuntime::default(),
        }
    }

    /// Installs the worker's ESP runtime (its cipher factory and counter writer index).
    pub fn set_esp(&mut self, esp: EspRuntime) {
        self.esp = esp;
    }

    /// The next outer IPv4 identification.
    #[inline]
    pub fn next_ident(&mut self) -> u16 {
        let id = self.ident;
        self.ident = id.wrapping_add(1);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bursts_then_refills_at_rate() {
        // 10 per second, burst 3, on a 1000-tick-per-second clock.
        let mut b = TokenBucket::new(10, 3, 1000, 5);
        assert!((0..3).all(|_| b.try_take(5)));
        assert!(!b.try_take(5));
        assert!(!b.try_take(104), "one token needs 100 ticks");
        assert!(b.try_take(105));
        assert!(!b.try_take(105));
        // A long pause refills to the burst, not beyond.
        assert!((0..3).all(|_| b.try_take(1_000_000)));
        assert!(!b.try_take(1_000_000));
        // Time going backwards neither refills nor panics.
        assert!(!b.try_take(0));
        assert_eq!(b.tokens(), 0);
    }

    #[test]
    fn zero_rate_or_burst() {
        let mut b = TokenBucket::new(0, 2, 1000, 0);
        assert!(b.try_take(0) && b.try_take(10_000) && !b.try_take(u64::MAX));
        let mut b = TokenBucket::new(100, 0, 1000, 0);
        assert!(!b.try_take(u64::MAX));
    }

    #[test]
    fn ident_wraps() {
        let mut s = WorkerState::new(TokenBucket::new(1, 1, 1, 0), u16::MAX);
        assert_eq!(s.next_ident(), u16::MAX);
        assert_eq!(s.next_ident(), 0);
    }
}
