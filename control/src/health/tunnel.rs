//! One tunnel's health monitor: probe schedule, reply matching and the state machine.

use std::collections::vec_deque::{self, VecDeque};
use std::fmt;
use std::time::Duration;

use conduit_packet::route::Health;

use super::clock::{duration_to_nanos, Timestamp};
use super::config::{HealthConfig, HealthConfigError};
use super::window::{LossCount, LossWindow};

/// Finished probes remembered to tell a late or duplicate reply from an unknown one.
const RECENT_PROBES: usize = 64;
/// Transitions kept until the caller drains them; older ones are dropped (and counted) beyond.
const TRANSITION_QUEUE: usize = 16;

/// A probe the caller must send now, carrying `seq` as its ICMP sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRequest {
    pub seq: u16,
    /// `true` for an immediate retry after a failed probe of a healthy tunnel.
    pub is_retry: bool,
    pub sent_at: Timestamp,
    /// A reply is counted only if it arrives strictly before this instant.
    pub deadline: Timestamp,
}

/// What one probe came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Answered before its deadline, after `rtt`.
    Replied { rtt: Duration },
    /// No reply before its deadline.
    TimedOut,
}

/// How [`TunnelHealth::on_reply`] classified a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    /// Matched a probe in flight: a success with this round-trip time.
    Accepted { rtt: Duration },
    /// For a probe that had already timed out; ignored.
    Late,
    /// For a probe already answered; ignored.
    Duplicate,
    /// Matches no recent probe (or checks are disabled); ignored.
    Unknown,
}

/// Why the state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionReason {
    /// The last `failures` probe outcomes all failed (→ down).
    ConsecutiveFailures { failures: u32 },
    /// The loss window crossed the degraded threshold (healthy → degraded).
    LossRatio { failed: u64, probes: u64 },
    /// `successes` consecutive successes (down → degraded).
    Recovering { successes: u32 },
    /// `successes` consecutive successes and `held` since the last bad-state entry
    /// (degraded → healthy).
    Recovered { successes: u32, held: Duration },
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TransitionReason::ConsecutiveFailures { failures } => {
                write!(f, "{failures} consecutive probes failed")
            }
            TransitionReason::LossRatio { failed, probes } => {
                write!(f, "{failed} of {probes} probes failed in the loss window")
            }
            TransitionReason::Recovering { successes } => {
                write!(f, "{successes} consecutive probes succeeded")
            }
            TransitionReason::Recovered { successes, held } => write!(
                f,
                "{successes} consecutive probes succeeded, {:.3}s since the last failure state",
                held.as_secs_f64()
            ),
        }
    }
}

/// A change of [`Health`]: the caller logs it, counts it and republishes the forwarding table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
    /// When the deciding outcome happened (a reply's arrival or a probe's deadline).
    pub at: Timestamp,
    pub reason: TransitionReason,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} at {}: {}",
            self.from, self.to, self.at, self.reason
        )
    }
}

/// Event counters of one monitor, for stats and telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthCounters {
    /// Probes handed out by `poll`, retries included.
    pub probes_sent: u64,
    pub retries_sent: u64,
    pub replies: u64,
    pub timeouts: u64,
    pub late_replies: u64,
    pub duplicate_replies: u64,
    pub unknown_replies: u64,
    /// Probes not sent because the in-flight table was full (should stay 0).
    pub probes_skipped: u64,
    /// Calls whose `now` was earlier than a previous call's (treated as the previous `now`).
    pub clock_regressions: u64,
    pub transitions: u64,
    /// Transitions evicted from the queue because the caller did not drain it.
    pub transitions_dropped: u64,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u16,
    is_retry: bool,
    sent_at: Timestamp,
    deadline: Timestamp,
}

#[derive(Debug, Clone, Copy)]
struct Finished {
    seq: u16,
    answered: bool,
}

/// Retries after a failed probe of a healthy tunnel.
#[derive(Debug, Clone, Copy)]
struct RetryEpisode {
    /// Retries not yet sent.
    left: u32,
    /// A retry must go out at the next `poll`.
    due: bool,
}

/// The health monitor of one tunnel (see the module documentation for the rules).
///
/// Drive it from the control thread: call [`poll`](Self::poll) at or after
/// [`next_poll_at`](Self::next_poll_at) and send each returned probe, feed every probe reply to
/// [`on_reply`](Self::on_reply), and after each call drain
/// [`take_transitions`](Self::take_transitions).
#[derive(Debug, Clone)]
pub struct TunnelHealth {
    config: HealthConfig,
    interval_nanos: u64,
    timeout: Duration,
    state: Health,
    /// Latest `now` seen; earlier times are clamped to it.
    now: Timestamp,
    /// Regular probes go out at `origin + k·interval`.
    origin: Timestamp,
    next_regular: Timestamp,
    next_seq: u16,
    /// In send order, which is also deadline order (the timeout is fixed and time is monotonic).
    in_flight: VecDeque<InFlight>,
    in_flight_cap: usize,
    recent: VecDeque<Finished>,
    retry: Option<RetryEpisode>,
    consecutive_failures: u32,
    consecutive_successes: u32,
    /// Latest entry into down or degraded.
    bad_since: Option<Timestamp>,
    loss: LossWindow,
    transitions: VecDeque<Transition>,
    counters: HealthCounters,
    last_rtt: Option<Duration>,
    last_outcome: Option<ProbeOutcome>,
}

impl TunnelHealth {
    /// A healthy monitor whose first probe is due at `first_probe_at` (the control plane staggers
    /// tunnels by passing different times). Fails if `config` does not validate.
    pub fn new(config: HealthConfig, first_probe_at: Timestamp) -> Result<Self, HealthConfigError> {
        config.validate()?;
        let interval_nanos = duration_to_nanos(config.probe_interval());
        let timeout = config.probe_timeout();
        // Regular probes are ≥ 1 interval apart and at most one retry chain runs at a time, so
        // ⌈timeout / interval⌉ regular probes plus retries fit; doubled for margin.
        let per_timeout = duration_to_nanos(timeout).div_ceil(interval_nanos) as usize;
        let in_flight_cap = 2 * per_timeout + 2 + config.retries.min(64) as usize;
        Ok(TunnelHealth {
            loss: LossWindow::new(config.loss_window),
            config,
            interval_nanos,
            timeout,
            state: Health::Healthy,
            now: Timestamp::ZERO,
            origin: first_probe_at,
            next_regular: first_probe_at,
            next_seq: 0,
            in_flight: VecDeque::with_capacity(in_flight_cap),
            in_flight_cap,
            recent: VecDeque::with_capacity(RECENT_PROBES),
            retry: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
            bad_since: None,
            transitions: VecDeque::with_capacity(TRANSITION_QUEUE),
            counters: HealthCounters::default(),
            last_rtt: None,
            last_outcome: None,
        })
    }

    /// Starts sequence numbers at `seq` instead of 0 (they wrap after 65535).
    pub fn with_first_seq(mut self, seq: u16) -> Self {
        self.next_seq = seq;
        self
    }

    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Current state; always [`Health::Healthy`] when checks are disabled.
    pub fn state(&self) -> Health {
        self.state
    }

    pub fn counters(&self) -> &HealthCounters {
        &self.counters
    }

    /// Round-trip time of the latest accepted reply.
    pub fn last_rtt(&self) -> Option<Duration> {
        self.last_rtt
    }

    /// What the most recently resolved probe came to.
    pub fn last_outcome(&self) -> Option<ProbeOutcome> {
        self.last_outcome
    }

    pub fn consecutive_successes(&self) -> u32 {
        self.consecutive_successes
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the tunnel last entered down or degraded (the start of the hold-down).
    pub fn bad_since(&self) -> Option<Timestamp> {
        self.bad_since
    }

    pub fn probes_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Probes and failures in the loss window ending at `now`.
    pub fn loss(&self, now: Timestamp) -> LossCount {
        self.loss.count(now)
    }

    /// The earliest time at which [`poll`](Self::poll) has something to do (send a probe or
    /// notice a timeout); `None` when checks are disabled.
    pub fn next_poll_at(&self) -> Option<Timestamp> {
        if !self.config.enabled {
            return None;
        }
        let send_at = match self.retry {
            Some(RetryEpisode { due: true, .. }) => Some(self.now),
            // Regular probes wait while a retry chain runs.
            Some(_) => None,
            None => Some(self.next_regular),
        };
        let timeout_at = self.in_flight.front().map(|p| p.deadline);
        match (send_at, timeout_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances to `now`: probes whose deadline has passed fail, then at most one probe (a due
    /// retry, else a due regular probe) is returned for the caller to send.
    pub fn poll(&mut self, now: Timestamp) -> Option<ProbeRequest> {
        if !self.config.enabled {
            return None;
        }
        let now = self.advance_clock(now);
        self.expire(now);
        match &mut self.retry {
            Some(episode) if episode.due => {
                episode.due = false;
                episode.left = episode.left.saturating_sub(1);
                let request = self.send(now, true);
                if request.is_none() {
                    // Nothing in flight would ever end the chain: give up on it.
                    self.end_retries(now);
                }
                request
            }
            Some(_) => None,
            None if now >= self.next_regular => {
                let request = self.send(now, false);
                // The next slot of the grid strictly after `now`: a poll that comes a little late (the
                // control loop's tick) does not push the schedule back by a whole interval.
                self.next_regular =
                    self.first_slot_at_or_after(now.saturating_add(Duration::from_nanos(1)));
                request
            }
            None => None,
        }
    }

    /// Feeds the reply carrying sequence number `seq`, received at `now`.
    pub fn on_reply(&mut self, seq: u16, now: Timestamp) -> ReplyStatus {
        if !self.config.enabled {
            self.counters.unknown_replies += 1;
            return ReplyStatus::Unknown;
        }
        let now = self.advance_clock(now);
        // A probe whose deadline is `now` or earlier has timed out, even if `poll` has not run.
        self.expire(now);
        if let Some(pos) = self.in_flight.iter().position(|p| p.seq == seq) {
            let Some(probe) = self.in_flight.remove(pos) else {
                return ReplyStatus::Unknown;
            };
            let rtt = now.saturating_duration_since(probe.sent_at);
            self.counters.replies += 1;
            self.last_rtt = Some(rtt);
            self.remember(seq, true);
            self.record(now, ProbeOutcome::Replied { rtt }, probe.is_retry);
            return ReplyStatus::Accepted { rtt };
        }
        match self.recent.iter().rev().find(|f| f.seq == seq) {
            Some(Finished { answered: true, .. }) => {
                self.counters.duplicate_replies += 1;
                ReplyStatus::Duplicate
            }
            Some(Finished {
                answered: false, ..
            }) => {
                self.counters.late_replies += 1;
                ReplyStatus::Late
            }
            None => {
                self.counters.unknown_replies += 1;
                ReplyStatus::Unknown
            }
        }
    }

    /// Transitions since the last call, oldest first.
    pub fn take_transitions(&mut self) -> vec_deque::Drain<'_, Transition> {
        self.transitions.drain(..)
    }

    fn advance_clock(&mut self, now: Timestamp) -> Timestamp {
        if now < self.now {
            self.counters.clock_regressions += 1;
        } else {
            self.now = now;
        }
        self.now
    }

    /// The first regular slot `origin + k·interval` at or after `t`.
    fn first_slot_at_or_after(&self, t: Timestamp) -> Timestamp {
        let since = t.as_nanos().saturating_sub(self.origin.as_nanos());
        let k = since.div_ceil(self.interval_nanos);
        Timestamp::from_nanos(
            self.origin
                .as_nanos()
                .saturating_add(k.saturating_mul(self.interval_nanos)),
        )
    }

    fn send(&mut self, now: Timestamp, is_retry: bool) -> Option<ProbeRequest> {
        if self.in_flight.len() >= self.in_flight_cap {
            self.counters.probes_skipped += 1;
            return None;
        }
        let probe = InFlight {
            seq: self.next_seq,
            is_retry,
            sent_at: now,
            deadline: now + self.timeout,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        self.in_flight.push_back(probe);
        self.counters.probes_sent += 1;
        self.counters.retries_sent += u64::from(is_retry);
        Some(ProbeRequest {
            seq: probe.seq,
            is_retry,
            sent_at: probe.sent_at,
            deadline: probe.deadline,
        })
    }

    /// Fails every probe whose deadline is at or before `now`, in deadline order.
    fn expire(&mut self, now: Timestamp) {
        while let Some(probe) = self.in_flight.front().copied() {
            if probe.deadline > now {
                break;
            }
            self.in_flight.pop_front();
            self.counters.timeouts += 1;
            self.remember(probe.seq, false);
            self.record(probe.deadline, ProbeOutcome::TimedOut, probe.is_retry);
        }
    }

    fn remember(&mut self, seq: u16, answered: bool) {
        if self.recent.len() == RECENT_PROBES {
            self.recent.pop_front();
        }
        self.recent.push_back(Finished { seq, answered });
    }

    /// Applies one probe outcome at `at`: windows, retries, then the state machine.
    fn record(&mut self, at: Timestamp, outcome: ProbeOutcome, was_retry: bool) {
        let success = matches!(outcome, ProbeOutcome::Replied { .. });
        self.last_outcome = Some(outcome);
        self.loss.record(at, !success);
        if success {
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.consecutive_successes = 0;
        }

        match &mut self.retry {
            Some(_) if success => self.end_retries(at),
            Some(episode) if was_retry => {
                if episode.left > 0 {
                    episode.due = true;
                } else {
                    self.end_retries(at);
                }
            }
            // An older regular probe failing during the chain is just one more failure.
            Some(_) => {}
            None if !success && self.state == Health::Healthy && self.config.retries > 0 => {
                // Regular probes wait until the chain ends; `end_retries` resumes them.
                self.retry = Some(RetryEpisode {
                    left: self.config.retries,
                    due: true,
                });
            }
            None => {}
        }

        let c = &self.config;
        match self.state {
            Health::Healthy | Health::Degraded
                if self.consecutive_failures >= c.down_after_failures =>
            {
                let failures = self.consecutive_failures;
                self.transition(
                    Health::Down,
                    at,
                    TransitionReason::ConsecutiveFailures { failures },
                );
            }
            Health::Healthy if self.retry.is_none() => {
                let loss = self.loss.count(at);
                if loss.exceeds(c.degraded_loss_ppm, c.degraded_min_failures) {
                    let reason = TransitionReason::LossRatio {
                        failed: loss.failed,
                        probes: loss.probes,
                    };
                    self.transition(Health::Degraded, at, reason);
                }
            }
            Health::Degraded if self.consecutive_successes >= c.successes_to_healthy => {
                let held = at.saturating_duration_since(self.bad_since.unwrap_or(Timestamp::ZERO));
                // Leaving while the loss window still says "degraded" would bounce straight back.
                let clean = !self
                    .loss
                    .count(at)
                    .exceeds(c.degraded_loss_ppm, c.degraded_min_failures);
                if held >= c.hold_down && clean {
                    let successes = self.consecutive_successes;
                    self.transition(
                        Health::Healthy,
                        at,
                        TransitionReason::Recovered { successes, held },
                    );
                }
            }
            Health::Down if self.consecutive_successes >= c.successes_to_degraded => {
                let successes = self.consecutive_successes;
                self.transition(
                    Health::Degraded,
                    at,
                    TransitionReason::Recovering { successes },
                );
            }
            _ => {}
        }
    }

    /// Ends a retry chain at `at`; regular slots that passed during it are skipped.
    fn end_retries(&mut self, at: Timestamp) {
        if self.retry.take().is_some() {
            self.next_regular = self.next_regular.max(self.first_slot_at_or_after(at));
        }
    }

    fn transition(&mut self, to: Health, at: Timestamp, reason: TransitionReason) {
        let from = self.state;
        self.state = to;
        if to != Health::Healthy {
            self.bad_since = Some(at);
            // Retries are for healthy tunnels only.
            self.end_retries(at);
        }
        self.counters.transitions += 1;
        if self.transitions.len() == TRANSITION_QUEUE {
            self.transitions.pop_front();
            self.counters.transitions_dropped += 1;
        }
        self.transitions.push_back(Transition {
            from,
            to,
            at,
            reason,
        });
    }
}
