//! State-machine tests on a simulated clock.

use std::collections::VecDeque;
use std::time::Duration;

use conduit_packet::route::Health;
use proptest::prelude::*;

use super::*;
use Health::{Degraded, Down, Healthy};

const RTT: Duration = Duration::from_millis(10);

fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

fn ms(m: u64) -> Timestamp {
    Timestamp::from_millis(m)
}

#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Answered after this long (may be past the deadline: a late reply).
    Reply(Duration),
    Lost,
}

/// A monitor, a simulated clock and a network that answers probes according to a fate.
struct Sim {
    h: TunnelHealth,
    now: Timestamp,
    /// Replies on their way: arrival time and sequence number.
    pending: Vec<(Timestamp, u16)>,
    /// A probe sent after a script ran out; the next script's first character decides it.
    unresolved: Option<ProbeRequest>,
    /// Extra delay of each `poll` after `next_poll_at` (a busy control thread), cycled.
    poll_lag: Vec<Duration>,
    steps: u64,
    sent: Vec<ProbeRequest>,
    replies: Vec<ReplyStatus>,
    log: Vec<Transition>,
}

impl Sim {
    fn new(config: HealthConfig) -> Self {
        Sim::with(TunnelHealth::new(config, Timestamp::ZERO).expect("valid config"))
    }

    fn with(h: TunnelHealth) -> Self {
        Sim {
            h,
            now: Timestamp::ZERO,
            pending: Vec::new(),
            unresolved: None,
            poll_lag: vec![Duration::ZERO],
            steps: 0,
            sent: Vec::new(),
            replies: Vec::new(),
            log: Vec::new(),
        }
    }

    fn state(&self) -> Health {
        self.h.state()
    }

    fn path(&self) -> Vec<(Health, Health)> {
        self.log.iter().map(|t| (t.from, t.to)).collect()
    }

    fn last_transition(&self) -> Transition {
        *self.log.last().expect("a transition")
    }

    fn apply(&mut self, probe: ProbeRequest, fate: Fate) {
        if let Fate::Reply(after) = fate {
            self.pending.push((probe.sent_at + after, probe.seq));
        }
    }

    /// Runs the next event (a reply arriving or a poll) if it is due at or before `limit`.
    /// Returns `None` when there is none, else the probe the poll handed out, if any.
    fn step(&mut self, limit: Timestamp) -> Option<Option<ProbeRequest>> {
        self.steps += 1;
        assert!(self.steps < 5_000_000, "simulation does not progress");
        let lag = self.poll_lag[(self.steps % self.poll_lag.len() as u64) as usize];
        let reply = self
            .pending
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| p.0)
            .map(|(i, p)| (i, p.0));
        let poll = self.h.next_poll_at().map(|t| t.max(self.now) + lag);
        let (at, reply_index) = match (reply, poll) {
            (Some((i, r)), Some(p)) if r <= p => (r, Some(i)),
            (_, Some(p)) => (p, None),
            (Some((i, r)), None) => (r, Some(i)),
            (None, None) => return None,
        };
        if at > limit {
            return None;
        }
        self.now = self.now.max(at);
        let sent = match reply_index {
            Some(i) => {
                let (_, seq) = self.pending.swap_remove(i);
                let status = self.h.on_reply(seq, self.now);
                self.replies.push(status);
                None
            }
            None => {
                let probe = self.h.poll(self.now);
                self.sent.extend(probe);
                probe
            }
        };
        self.log.extend(self.h.take_transitions());
        Some(sent)
    }

    /// Each probe sent takes the next character: `.` answered after [`RTT`], `x` lost, `l`
    /// answered just after its deadline. Returns when the script is used up and nothing is
    /// outstanding, or when a probe is sent after the script ran out.
    fn script(&mut self, script: &str) {
        let timeout = self.h.config().probe_timeout();
        let mut fates: VecDeque<Fate> = script
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| match c {
                '.' => Fate::Reply(RTT),
                'x' => Fate::Lost,
                'l' => Fate::Reply(timeout + Duration::from_millis(1)),
                other => panic!("bad script character {other:?}"),
            })
            .collect();
        if let Some(probe) = self.unresolved.take() {
            let fate = fates.pop_front().expect("a fate for the outstanding probe");
            self.apply(probe, fate);
        }
        loop {
            if fates.is_empty() && self.pending.is_empty() && self.h.probes_in_flight() == 0 {
                return;
            }
            match self.step(Timestamp::from_nanos(u64::MAX)) {
                None => return,
                Some(None) => {}
                Some(Some(probe)) => match fates.pop_front() {
                    Some(fate) => self.apply(probe, fate),
                    None => {
                        self.unresolved = Some(probe);
                        return;
                    }
                },
            }
        }
    }

    /// Runs every event up to `limit`, deciding each probe with `fate`.
    fn run_until(&mut self, limit: Timestamp, mut fate: impl FnMut(&ProbeRequest) -> Fate) {
        if let Some(probe) = self.unresolved.take() {
            let f = fate(&probe);
            self.apply(probe, f);
        }
        while let Some(sent) = self.step(limit) {
            if let Some(probe) = sent {
                let f = fate(&probe);
                self.apply(probe, f);
            }
        }
    }
}

fn answered(_: &ProbeRequest) -> Fate {
    Fate::Reply(RTT)
}

fn rep(script: &str, n: usize) -> String {
    script.repeat(n)
}

fn high_rate() -> HealthConfig {
    HealthConfig {
        rate: ProbeRate::High,
        ..HealthConfig::default()
    }
}

/// Checks the invariants every transition log must satisfy, whatever the probe outcomes.
fn check_transition_log(log: &[Transition], config: &HealthConfig, final_state: Health) {
    let mut state = Healthy;
    let mut bad_since: Option<Timestamp> = None;
    let mut last_at = Timestamp::ZERO;
    for t in log {
        assert_eq!(t.from, state, "transition chain broken at {t}");
        assert_ne!(t.from, t.to, "{t}");
        assert!(t.at >= last_at, "transitions out of order: {t}");
        last_at = t.at;
        match (t.from, t.to) {
            (Healthy, Down) | (Degraded, Down) => {
                assert!(
                    matches!(t.reason, TransitionReason::ConsecutiveFailures { failures } if failures >= config.down_after_failures),
                    "{t}"
                );
                bad_since = Some(t.at);
            }
            (Healthy, Degraded) => {
                assert!(
                    matches!(t.reason, TransitionReason::LossRatio { .. }),
                    "{t}"
                );
                bad_since = Some(t.at);
            }
            (Down, Degraded) => {
                assert!(
                    matches!(t.reason, TransitionReason::Recovering { successes } if successes >= config.successes_to_degraded),
                    "{t}"
                );
                bad_since = Some(t.at);
            }
            (Degraded, Healthy) => {
                let since = bad_since.expect("degraded without an entry");
                assert!(
                    t.at.saturating_duration_since(since) >= config.hold_down,
                    "healthy at {} within the hold-down of the bad-state entry at {since}",
                    t.at
                );
                assert!(
                    matches!(t.reason, TransitionReason::Recovered { successes, .. } if successes >= config.successes_to_healthy),
                    "{t}"
                );
            }
            _ => panic!("forbidden transition {t}"),
        }
        state = t.to;
    }
    assert_eq!(state, final_state, "log does not end in the current state");
}

#[test]
fn health_scripts_table() {
    let d = HealthConfig::default;
    let no_retries = || HealthConfig { retries: 0, ..d() };
    let down_after_5 = || HealthConfig {
        down_after_failures: 5,
        ..d()
    };
    // (name, config, script, final state, transitions)
    type Path = Vec<(Health, Health)>;
    let cases: Vec<(&str, HealthConfig, String, Health, Path)> = vec![
        (
            "successes keep a tunnel healthy",
            d(),
            rep(".", 600),
            Healthy,
            vec![],
        ),
        (
            "a lost probe rescued by its retry stays healthy",
            d(),
            format!("x.{}", rep(".", 10)),
            Healthy,
            vec![],
        ),
        (
            "a probe and both retries lost: down at once",
            d(),
            "xxx".into(),
            Down,
            vec![(Healthy, Down)],
        ),
        (
            "two lost of a chain at the mid rate: degraded",
            d(),
            "xx.".into(),
            Degraded,
            vec![(Healthy, Degraded)],
        ),
        (
            "two rescued losses within 5 minutes: degraded",
            d(),
            format!("x.{}x.", rep(".", 100)),
            Degraded,
            vec![(Healthy, Degraded)],
        ),
        (
            "two rescued losses more than 5 minutes apart: healthy",
            d(),
            format!("x.{}x.{}", rep(".", 320), rep(".", 5)),
            Healthy,
            vec![],
        ),
        (
            "2 of 2504 probes (0.08 %) at the high rate: healthy",
            high_rate(),
            format!("x.{}x.", rep(".", 2500)),
            Healthy,
            vec![],
        ),
        (
            "3 of 2406 probes (0.12 %) at the high rate: degraded",
            high_rate(),
            format!("x.{}x.{}x.", rep(".", 1200), rep(".", 1200)),
            Degraded,
            vec![(Healthy, Degraded)],
        ),
        (
            "down, 2 successes: still down",
            d(),
            "xxx..".into(),
            Down,
            vec![(Healthy, Down)],
        ),
        (
            "down, 3 successes: degraded",
            d(),
            "xxx...".into(),
            Degraded,
            vec![(Healthy, Down), (Down, Degraded)],
        ),
        (
            "down, a failure resets the streak",
            d(),
            "xxx..x..".into(),
            Down,
            vec![(Healthy, Down)],
        ),
        (
            "down, 3 successes after the reset: degraded",
            d(),
            "xxx..x...".into(),
            Degraded,
            vec![(Healthy, Down), (Down, Degraded)],
        ),
        (
            "degraded, 3 failures: down again",
            d(),
            "xxx...xxx".into(),
            Down,
            vec![(Healthy, Down), (Down, Degraded), (Degraded, Down)],
        ),
        (
            "degraded, 2 failures: stays degraded",
            d(),
            "xxx...xx.".into(),
            Degraded,
            vec![(Healthy, Down), (Down, Degraded)],
        ),
        (
            "no retries: 2 failures degrade, the 3rd is down",
            no_retries(),
            "xxx".into(),
            Down,
            vec![(Healthy, Degraded), (Degraded, Down)],
        ),
        (
            "down window of 5: a failed chain of 3 only degrades",
            down_after_5(),
            "xxx".into(),
            Degraded,
            vec![(Healthy, Degraded)],
        ),
        (
            "down window of 5: 5 failures are down",
            down_after_5(),
            "xxxxx".into(),
            Down,
            vec![(Healthy, Degraded), (Degraded, Down)],
        ),
        (
            "late replies are failures",
            d(),
            "lll".into(),
            Down,
            vec![(Healthy, Down)],
        ),
    ];
    for (name, config, script, state, path) in cases {
        let mut sim = Sim::new(config.clone());
        sim.script(&script);
        assert_eq!(sim.state(), state, "{name}");
        assert_eq!(sim.path(), path, "{name}");
        check_transition_log(&sim.log, &config, state);
        let c = sim.h.counters();
        assert_eq!(
            c.replies + c.timeouts + sim.h.probes_in_flight() as u64,
            c.probes_sent,
            "{name}"
        );
    }
}

#[test]
fn health_failed_probe_of_healthy_tunnel_is_retried_immediately() {
    // Low rate: probes every 10 s, timeout 1 s, so a retry at 1 s cannot be the next interval.
    let mut sim = Sim::new(HealthConfig {
        rate: ProbeRate::Low,
        ..HealthConfig::default()
    });
    sim.script("x.");
    sim.script(".");
    let sent: Vec<(Timestamp, bool)> = sim.sent.iter().map(|p| (p.sent_at, p.is_retry)).collect();
    assert_eq!(
        sent,
        vec![(secs(0), false), (secs(1), true), (secs(10), false)]
    );
    assert_eq!(sim.state(), Healthy);
    assert_eq!(sim.h.counters().retries_sent, 1);

    // A dead tunnel: the probe at 20 s and retries at 21 s and 22 s fail; down at 23 s, and the
    // regular schedule resumes on its grid (30 s) with no more retries.
    sim.script("xxx");
    sim.script("x");
    let sent: Vec<(Timestamp, bool)> = sim.sent[3..]
        .iter()
        .map(|p| (p.sent_at, p.is_retry))
        .collect();
    assert_eq!(
        sent,
        vec![
            (secs(20), false),
            (secs(21), true),
            (secs(22), true),
            (secs(30), false)
        ]
    );
    let down = sim.last_transition();
    assert_eq!((down.from, down.to, down.at), (Healthy, Down, secs(23)));
    assert_eq!(
        down.reason,
        TransitionReason::ConsecutiveFailures { failures: 3 }
    );
    sim.script("x");
    assert_eq!(
        sim.sent.last().map(|p| (p.sent_at, p.is_retry)),
        Some((secs(40), false))
    );
}

#[test]
fn health_regular_slot_during_retry_is_skipped() {
    // Mid rate: timeout = interval = 1 s. The retry at 1 s replaces the slot at 1 s.
    let mut sim = Sim::new(HealthConfig::default());
    sim.script("x..");
    let sent: Vec<(Timestamp, bool)> = sim.sent.iter().map(|p| (p.sent_at, p.is_retry)).collect();
    assert_eq!(
        sent,
        vec![(secs(0), false), (secs(1), true), (secs(2), false)]
    );
    assert_eq!(
        sim.h.loss(secs(3)),
        LossCount {
            probes: 3,
            failed: 1
        }
    );
}

#[test]
fn health_degraded_waits_for_hold_down_after_30_successes() {
    let config = HealthConfig::default();
    let mut sim = Sim::new(config.clone());
    sim.script("xxx...");
    let entry = sim.last_transition();
    assert_eq!((entry.to, entry.at), (Degraded, ms(5010)));
    // Far more than 30 successes, but the hold-down is not over.
    sim.run_until(entry.at + Duration::from_secs(299), answered);
    assert_eq!(sim.state(), Degraded);
    assert!(sim.h.consecutive_successes() > 250);
    sim.run_until(entry.at + Duration::from_secs(310), answered);
    assert_eq!(sim.state(), Healthy);
    let healthy = sim.last_transition();
    assert_eq!(
        healthy.at,
        entry.at + config.hold_down,
        "first success once the hold-down is over"
    );
    assert!(
        matches!(healthy.reason, TransitionReason::Recovered { held, .. } if held == config.hold_down)
    );
    check_transition_log(&sim.log, &config, Healthy);
}

#[test]
fn health_failure_after_hold_down_resets_success_count() {
    let config = HealthConfig::default();
    let mut sim = Sim::new(config.clone());
    sim.script("xxx...");
    assert_eq!(sim.last_transition().at, ms(5010));
    // Probes at 6..=295 s succeed, the one at 296 s is lost (no retry while degraded).
    sim.script(&format!("{}x", rep(".", 290)));
    assert_eq!(sim.state(), Degraded);
    assert_eq!(
        sim.h.counters().retries_sent,
        2,
        "only the healthy tunnel's chain was retried"
    );
    // 29 successes: hold-down long over (now 326 s), but the streak is one short.
    sim.script(&rep(".", 29));
    assert!(sim.now > ms(5010) + config.hold_down);
    assert_eq!((sim.state(), sim.h.consecutive_successes()), (Degraded, 29));
    sim.script(".");
    assert_eq!((sim.state(), sim.h.consecutive_successes()), (Healthy, 30));
    assert_eq!(sim.last_transition().at, ms(326_010));
}

#[test]
fn health_degraded_needs_a_clean_loss_window_to_recover() {
    // Hold-down (60 s) shorter than the loss window (300 s): the 3 failures that took the tunnel
    // down keep it degraded until they leave the window.
    let config = HealthConfig {
        hold_down: Duration::from_secs(60),
        ..HealthConfig::default()
    };
    let mut sim = Sim::new(config.clone());
    sim.script("xxx...");
    sim.run_until(secs(299), answered);
    assert_eq!(sim.state(), Degraded);
    sim.run_until(secs(310), answered);
    assert_eq!(sim.state(), Healthy);
    let at = sim.last_transition().at;
    assert!(at >= secs(300) && at < secs(302), "recovered at {at}");
    check_transition_log(&sim.log, &config, Healthy);
}

#[test]
fn health_flapping_tunnel_recovers_at_most_once_per_hold_down() {
    let config = HealthConfig::default();
    let hour = secs(3600);
    let max_recoveries = (3600 / config.hold_down.as_secs()) as usize;
    // (burst period, length of each burst of losses, expected recoveries if exact)
    let cases: [(u64, u64, Option<usize>); 6] = [
        (37, 3, Some(0)),
        (120, 3, Some(0)),
        (299, 5, Some(0)),
        (310, 3, None),
        (400, 3, Some(9)),
        (45, 1, None),
    ];
    for (period, burst, exact) in cases {
        let mut sim = Sim::new(config.clone());
        sim.run_until(hour, |p| {
            if p.sent_at.as_nanos() / 1_000_000_000 % period < burst {
                Fate::Lost
            } else {
                Fate::Reply(RTT)
            }
        });
        let recoveries = sim.log.iter().filter(|t| t.to == Healthy).count();
        assert!(
            recoveries <= max_recoveries,
            "period {period}: {recoveries} recoveries"
        );
        if let Some(n) = exact {
            assert_eq!(recoveries, n, "period {period}");
        }
        assert!(sim.log.len() <= 3 * (max_recoveries + 1) + 2 * (3600 / period as usize + 1));
        check_transition_log(&sim.log, &config, sim.state());
    }

    // Pseudo-random 20 % loss: bad all hour, never healthy again.
    let mut sim = Sim::new(config.clone());
    let mut x: u32 = 12345;
    sim.run_until(hour, |_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        if (x >> 16) % 5 == 0 {
            Fate::Lost
        } else {
            Fate::Reply(RTT)
        }
    });
    assert!(!sim.log.is_empty());
    assert_ne!(sim.state(), Healthy);
    assert_eq!(sim.log.iter().filter(|t| t.to == Healthy).count(), 0);
    check_transition_log(&sim.log, &config, sim.state());
}

#[test]
fn health_disabled_is_always_healthy() {
    let mut h = TunnelHealth::new(HealthConfig::disabled(), Timestamp::ZERO).unwrap();
    assert_eq!(h.next_poll_at(), None);
    for s in 0..1000 {
        assert_eq!(h.poll(secs(s)), None);
    }
    assert_eq!(h.on_reply(0, secs(1000)), ReplyStatus::Unknown);
    assert_eq!(h.state(), Healthy);
    assert_eq!(h.take_transitions().count(), 0);
    assert_eq!(h.counters().probes_sent, 0);

    let mut sim = Sim::new(HealthConfig::disabled());
    sim.run_until(secs(3600), |_| Fate::Lost);
    assert!(sim.sent.is_empty());
    assert_eq!(sim.state(), Healthy);
}

#[test]
fn health_sequence_numbers_wrap() {
    let h = TunnelHealth::new(HealthConfig::default(), Timestamp::ZERO)
        .unwrap()
        .with_first_seq(65534);
    let mut sim = Sim::with(h);
    sim.script(".....x.");
    let seqs: Vec<u16> = sim.sent.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![65534, 65535, 0, 1, 2, 3, 4]);
    assert!(sim
        .replies
        .iter()
        .all(|r| *r == ReplyStatus::Accepted { rtt: RTT }));
    assert_eq!(sim.replies.len(), 6);
    assert_eq!(sim.state(), Healthy);
    // A reply for the probe before the wrap is now a duplicate, not a match.
    assert_eq!(sim.h.on_reply(65535, sim.now), ReplyStatus::Duplicate);
}

#[test]
fn health_late_duplicate_and_unknown_replies_are_ignored() {
    let mut h = TunnelHealth::new(HealthConfig::default(), Timestamp::ZERO).unwrap();
    let p0 = h.poll(secs(0)).unwrap();
    assert_eq!(p0.deadline, secs(1));
    // Exactly at the deadline is too late, even before `poll` noticed the timeout.
    assert_eq!(h.on_reply(p0.seq, secs(1)), ReplyStatus::Late);
    let retry = h.poll(secs(1)).unwrap();
    assert!(retry.is_retry);
    assert_eq!(
        h.on_reply(retry.seq, ms(1500)),
        ReplyStatus::Accepted {
            rtt: Duration::from_millis(500)
        }
    );
    assert_eq!(h.on_reply(retry.seq, ms(1600)), ReplyStatus::Duplicate);
    assert_eq!(h.on_reply(p0.seq, ms(1700)), ReplyStatus::Late);
    assert_eq!(h.on_reply(999, ms(1800)), ReplyStatus::Unknown);
    assert_eq!(h.state(), Healthy);
    let c = *h.counters();
    assert_eq!(
        (
            c.late_replies,
            c.duplicate_replies,
            c.unknown_replies,
            c.replies,
            c.timeouts
        ),
        (2, 1, 1, 1, 1)
    );
    assert_eq!(h.consecutive_successes(), 1);
    assert_eq!(
        h.last_outcome(),
        Some(ProbeOutcome::Replied {
            rtt: Duration::from_millis(500)
        })
    );

    // A late reply through the simulation: it fails the probe, the retry rescues the tunnel.
    let mut sim = Sim::new(HealthConfig::default());
    sim.script("l.");
    assert_eq!(
        sim.replies,
        vec![ReplyStatus::Late, ReplyStatus::Accepted { rtt: RTT }]
    );
    assert_eq!(sim.state(), Healthy);
}

#[test]
fn health_rtt_is_reported() {
    let mut h = TunnelHealth::new(HealthConfig::default(), secs(100)).unwrap();
    assert_eq!(h.next_poll_at(), Some(secs(100)));
    assert_eq!(h.poll(secs(99)), None);
    let p = h.poll(secs(100)).unwrap();
    assert_eq!((p.seq, p.is_retry, p.sent_at), (0, false, secs(100)));
    assert_eq!(h.next_poll_at(), Some(secs(101)));
    let at = secs(100) + Duration::from_micros(37_500);
    assert_eq!(
        h.on_reply(p.seq, at),
        ReplyStatus::Accepted {
            rtt: Duration::from_micros(37_500)
        }
    );
    assert_eq!(h.last_rtt(), Some(Duration::from_micros(37_500)));
    assert_eq!(
        h.last_outcome(),
        Some(ProbeOutcome::Replied {
            rtt: Duration::from_micros(37_500)
        })
    );
    // A late poll sends once and skips the missed slots: the next probe is due at the next slot
    // of the grid, 106 s (not 102 s, the first missed slot, nor 106.5 s, an interval later).
    assert!(h.poll(ms(105_500)).is_some());
    assert_eq!(h.poll(ms(105_500)), None);
    assert_eq!(h.next_poll_at(), Some(ms(106_000)), "the next slot");
    assert!(h.poll(ms(106_000)).is_some());
}

#[test]
fn health_many_probes_in_flight() {
    // 100 ms rate with a 1 s timeout over a 300 ms path: three probes in flight at a time.
    let config = HealthConfig {
        timeout: Some(Duration::from_secs(1)),
        ..high_rate()
    };
    let mut sim = Sim::new(config.clone());
    let slow = |_: &ProbeRequest| Fate::Reply(Duration::from_millis(300));
    sim.run_until(secs(10), slow);
    assert_eq!(sim.state(), Healthy);
    assert_eq!(sim.h.last_rtt(), Some(Duration::from_millis(300)));
    // The path dies after 10 s: the probe sent at 10.1 s times out at 11.1 s and the ones behind
    // it (sent before the retry chain paused the schedule) fail at 11.2 s and 11.3 s: down.
    sim.run_until(secs(20), |_| Fate::Lost);
    let down = sim.log.iter().find(|t| t.to == Down).expect("down");
    assert_eq!(down.at, ms(11_300));
    sim.run_until(secs(30), slow);
    assert_eq!(sim.state(), Degraded);
    assert_eq!(sim.h.counters().probes_skipped, 0);
    check_transition_log(&sim.log, &config, Degraded);
}

#[test]
fn health_clock_regression_is_clamped() {
    let mut h = TunnelHealth::new(HealthConfig::default(), Timestamp::ZERO).unwrap();
    let p = h.poll(secs(10)).unwrap();
    assert_eq!(
        h.on_reply(p.seq, secs(5)),
        ReplyStatus::Accepted {
            rtt: Duration::ZERO
        }
    );
    assert_eq!(h.poll(secs(3)), None);
    assert_eq!(h.counters().clock_regressions, 2);
}

#[test]
fn health_transition_queue_is_bounded() {
    let config = HealthConfig {
        retries: 0,
        down_after_failures: 1,
        successes_to_degraded: 1,
        successes_to_healthy: 1,
        hold_down: Duration::ZERO,
        degraded_min_failures: 1_000,
        ..HealthConfig::default()
    };
    let mut h = TunnelHealth::new(config, Timestamp::ZERO).unwrap();
    // Each "lost, answered, answered" cycle is down → degraded → healthy: 3 transitions.
    for cycle in 0..6u64 {
        for (i, answer) in [false, true, true].into_iter().enumerate() {
            let t = secs(cycle * 3 + i as u64);
            let p = h.poll(t).expect("probe due");
            if answer {
                h.on_reply(p.seq, t + RTT);
            }
        }
    }
    h.poll(secs(18));
    assert_eq!(h.counters().transitions, 18);
    assert_eq!(h.counters().transitions_dropped, 2);
    let queued: Vec<Transition> = h.take_transitions().collect();
    assert_eq!(queued.len(), 16);
    assert_eq!(queued.last().map(|t| t.to), Some(Healthy));
    assert_eq!(h.take_transitions().count(), 0);
}

#[test]
fn health_penalties_and_names() {
    let cases = [
        (Healthy, 0, "healthy"),
        (Degraded, 500_000, "degraded"),
        (Down, 1_000_000, "down"),
    ];
    for (state, penalty, name) in cases {
        assert_eq!(state.penalty(), penalty);
        assert_eq!(state.to_string(), name);
    }
    let t = Transition {
        from: Healthy,
        to: Down,
        at: secs(3),
        reason: TransitionReason::ConsecutiveFailures { failures: 3 },
    };
    assert_eq!(
        t.to_string(),
        "healthy -> down at 3.000000000s: 3 consecutive probes failed"
    );
}

#[test]
fn health_invalid_config_is_rejected_by_new() {
    let config = HealthConfig {
        rate: ProbeRate::Every(Duration::ZERO),
        ..HealthConfig::default()
    };
    assert_eq!(
        TunnelHealth::new(config, Timestamp::ZERO).err(),
        Some(HealthConfigError::ZeroInterval)
    );
}

fn arb_config() -> impl Strategy<Value = HealthConfig> {
    (
        (50u64..2_000, 1u64..=300, 0u32..4, 1u32..6),
        (1u64..120, 0u32..20_000, 1u32..5),
        (1u32..6, 1u32..40, 0u64..60),
    )
        .prop_map(
            |(
                (interval_ms, timeout_pct, retries, down),
                (window_s, ppm, min_fail),
                (to_deg, to_ok, hold_s),
            )| {
                HealthConfig {
                    enabled: true,
                    rate: ProbeRate::Every(Duration::from_millis(interval_ms)),
                    timeout: Some(Duration::from_millis(
                        (interval_ms * timeout_pct / 100).max(1),
                    )),
                    retries,
                    down_after_failures: down,
                    loss_window: Duration::from_secs(window_s),
                    degraded_loss_ppm: ppm,
                    degraded_min_failures: min_fail,
                    successes_to_degraded: to_deg,
                    successes_to_healthy: to_ok,
                    hold_down: Duration::from_secs(hold_s),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Whatever the network does (losses, any RTT including past the deadline, bursts), however
    /// late the control thread polls, and whatever junk replies arrive: no panic, a consistent
    /// transition log, never healthy within the hold-down of the last down/degraded entry, and
    /// every probe resolved exactly once.
    #[test]
    fn health_prop_state_machine_invariants(
        config in arb_config(),
        fates in prop::collection::vec((0u8..10, 0u32..3_000), 1..200),
        lags in prop::collection::vec(prop_oneof![4 => Just(0u32), 1 => 0u32..5_000], 1..8),
        junk in prop::collection::vec((any::<u16>(), 0u32..10_000), 0..20),
        first_seq in any::<u16>(),
        minutes in 1u64..20,
    ) {
        let h = TunnelHealth::new(config.clone(), Timestamp::ZERO).unwrap().with_first_seq(first_seq);
        let mut sim = Sim::with(h);
        sim.poll_lag = lags.iter().map(|&l| Duration::from_millis(u64::from(l))).collect();
        let mut i = 0usize;
        let fate = |_: &ProbeRequest| {
            let (kind, rtt_ms) = fates[i % fates.len()];
            i += 1;
            // Bursts of loss come from runs of small `kind`s in the vector.
            if kind < 4 { Fate::Lost } else { Fate::Reply(Duration::from_millis(u64::from(rtt_ms))) }
        };
        let end = Timestamp::from_secs(minutes * 60);
        // Junk replies arrive at fixed times through the run; some time travel backwards.
        let mut junk_times: Vec<(Timestamp, u16)> =
            junk.iter().map(|&(seq, t)| (Timestamp::from_millis(u64::from(t) * minutes * 6), seq)).collect();
        junk_times.sort();
        let mut fate = fate;
        for (t, seq) in junk_times {
            sim.run_until(t, &mut fate);
            let back = Timestamp::from_nanos(t.as_nanos().saturating_sub(2_000_000_000));
            let _ = sim.h.on_reply(seq, back);
            sim.log.extend(sim.h.take_transitions());
        }
        sim.run_until(end, &mut fate);

        check_transition_log(&sim.log, &config, sim.h.state());
        if sim.h.state() == Healthy {
            if let Some(since) = sim.h.bad_since() {
                let healthy_at = sim.log.last().unwrap().at;
                prop_assert!(healthy_at.saturating_duration_since(since) >= config.hold_down);
            }
        }
        let c = *sim.h.counters();
        prop_assert_eq!(c.replies + c.timeouts + sim.h.probes_in_flight() as u64, c.probes_sent);
        prop_assert_eq!(c.probes_skipped, 0);
        prop_assert_eq!(c.transitions, sim.log.len() as u64);
        prop_assert_eq!(c.transitions_dropped, 0);
        prop_assert!(sim.h.probes_in_flight() <= 2 * 3 + 2 + 3);
    }
}
