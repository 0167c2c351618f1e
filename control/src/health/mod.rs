//! Per-tunnel health checks: when to probe, how to read the outcomes, and the
//! healthy / degraded / down state machine of docs/behaviour.md §4.
//!
//! Each tunnel has one [`TunnelHealth`]. The control thread polls it with its own monotonic clock
//! ([`Timestamp`], nanoseconds since any epoch the caller picks): `poll` says when to send an ICMP
//! probe and with which sequence number, detects probes whose timeout passed, and `on_reply`
//! matches replies and measures the round-trip time. Every outcome feeds two windows, the last
//! few outcomes (for *down*) and a time-bucketed loss window (for *degraded*), and the state
//! machine fails fast (one failed probe of a healthy tunnel is retried twice at once, three
//! failures in a row mean down) and recovers slowly (consecutive successes plus a hold-down).
//! State changes come out as [`Transition`]s that the caller logs, counts and turns into a new
//! forwarding table, where [`Health::penalty`] raises route priorities. The state itself is
//! [`conduit_packet::route::Health`], the forwarding table's type (see there for `disabled`). The
//! module does no I/O, starts no thread, reads no clock and allocates only in `TunnelHealth::new`.
//!
//! # Decisions where the behaviour is not prescribed
//!
//! - **Start**: a new monitor is `Healthy` and sends its first probe at the `first_probe_at`
//!   given to `new` (staggering is the caller's). Routes are never removed, so optimism costs at
//!   most the first few seconds, while pessimism would shift every route of a freshly started or
//!   reloaded appliance.
//! - **Timeout**: `min(interval, 1 s)` unless configured (10 s → 1 s, 1 s → 1 s, 100 ms → 100 ms);
//!   at most 64 intervals. A reply counts only if it arrives strictly before `sent + timeout`; a
//!   timed-out probe's outcome is dated at its deadline, not at the `poll` that noticed it.
//! - **Schedule**: regular probes go out on the grid `first_probe_at + k·interval`. A late `poll`
//!   sends one probe and skips the slots that have passed; the next probe is due at the next slot
//!   of the grid, so a control loop that polls a little late (its tick) keeps the configured rate
//!   on average, and two regular probes are never closer than one interval minus that lateness.
//!   `poll` hands out at most one probe per call.
//! - **Retries**: a probe failing while the tunnel is `Healthy` (and no retry chain is running)
//!   starts a chain of up to `retries` (2) retries. Each retry is sent by the same `poll` that
//!   noticed the failure (no wait for the next interval); the next one goes out when the previous
//!   one fails. Regular probes pause during the chain (their slots are skipped). The chain ends at
//!   the first success of any probe, when the last retry fails, or when the state leaves
//!   `Healthy`. Degraded and down tunnels are not retried: they are probed at the interval.
//!   Retries are probes like any other in both windows.
//! - **Down rule**: the "last probe window" is the last `down_after_failures` (3) outcomes in the
//!   order they became known (reply arrival or deadline): all failed → `Down` at once, from
//!   `Healthy` or `Degraded`. With the defaults a failed probe plus its two failed retries is that
//!   window, so a dead tunnel goes `Healthy → Down` in one step about 3 timeouts after the probe.
//! - **Degraded rule**: over the loss window (5 min, 100 time buckets, so its old edge is exact to
//!   1 % of its length), `failed ≥ degraded_min_failures` (2) and `failed / probes ≥
//!   degraded_loss_ppm` (1000 ppm = 0.1 %), retries included. It is checked after each outcome of
//!   a `Healthy` tunnel, except while a retry chain runs: the chain's result decides first, so a
//!   probe rescued by its retry leaves one failure in the window (which may tip the tunnel into
//!   `Degraded` if there was an earlier one) and a dead tunnel goes straight to `Down`.
//! - **Recovery**: success streaks count across states (the 3 that lift `Down → Degraded` also
//!   count toward the 30). The hold-down runs from the latest entry into `Down` *or* `Degraded`,
//!   so `Down → Degraded` restarts it. `Degraded → Healthy` also needs the loss window to be below
//!   the degraded threshold, otherwise the next outcome would bounce the tunnel straight back;
//!   a failure while degraded resets the streak but not the hold-down.
//! - **Replies**: matched by exact 16-bit sequence number against the probes in flight (a
//!   bounded table of at most `2·⌈timeout/interval⌉ + 2 + retries` entries, so wrap-around
//!   cannot alias two outstanding probes); ICMP id and payload checks are the caller's. A reply
//!   for one of the last 64 finished probes is `Late` (it had timed out) or `Duplicate`; anything
//!   else is `Unknown`. All three are counted and change nothing.
//! - **Clock**: a `now` earlier than a previous one is treated as the previous one (counted).
//! - **Disabled**: always `Healthy`, no probes, `next_poll_at` is `None`, replies are `Unknown`.
//! - **Transitions** queue up inside the monitor (16 at most; older ones are dropped and
//!   counted) until [`TunnelHealth::take_transitions`] drains them; the state is always current.

#[cfg(doc)]
use conduit_packet::route::Health;

mod clock;
mod config;
mod tunnel;
mod window;

#[cfg(test)]
mod tests;

pub use clock::Timestamp;
pub use config::{
    HealthConfig, HealthConfigError, ProbeRate, DEFAULT_TIMEOUT_CAP, MAX_TIMEOUT_INTERVALS,
};
pub use tunnel::{
    HealthCounters, ProbeOutcome, ProbeRequest, ReplyStatus, Transition, TransitionReason,
    TunnelHealth,
};
pub use window::LossCount;
