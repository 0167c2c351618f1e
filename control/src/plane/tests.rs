//! The control plane on a simulated clock: probes out, replies in, failover by priority,
//! recovery after the hold-down, publication and reload.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use super::*;
use conduit_packet::pipeline::ProbeEcho;

/// The port's and the gateway's MACs in these tests.
const PORT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const GATEWAY_MAC: EthernetAddress = EthernetAddress([2, 0, 0x5e, 0, 0x53, 1]);

const CONFIG: &str = "\
dataplane:
  ports:
    - device: net_ring0
      ipv4: 192.0.2.10/24
  workers: [1]
  mode: pipeline
local_endpoints: [203.0.113.1, 203.0.113.2]
gateway:
  ipv4: 192.0.2.1
  mac: 02:00:5e:00:53:01
  port: net_ring0
tunnels:
  - name: primary-a
    kind: gre
    local: 203.0.113.1
    remote: 198.51.100.10
    interface_address: 10.200.0.0/31
    health_check: &hc
      rate: high
      hold_down_ms: 2000
      loss_window_ms: 2000
  - name: primary-b
    kind: gre
    local: 203.0.113.2
    remote: 198.51.100.11
    interface_address: 10.200.0.2/31
    health_check: *hc
  - name: backup
    kind: gre
    local: 203.0.113.1
    remote: 198.51.100.20
    interface_address: 10.200.0.4/31
    key: 1001
    health_check:
      type: request
      direction: bidirectional
      rate: high
      hold_down_ms: 2000
      loss_window_ms: 2000
routes:
  - { prefix: 172.16.0.0/16, tunnel: primary-a, priority: 100 }
  - { prefix: 172.16.0.0/16, tunnel: primary-b, priority: 100 }
  - { prefix: 172.16.0.0/16, tunnel: backup, priority: 200 }
";

const A: TunnelId = TunnelId(0);
const B: TunnelId = TunnelId(1);
const BACKUP: TunnelId = TunnelId(2);

fn config(text: &str) -> Config {
    Config::parse(text, Path::new("test.yaml")).expect("valid test config")
}

fn plane(text: &str) -> (ControlPlane, Vec<Reader<Context>>) {
    ControlPlane::with_boot_epoch(
        Path::new("test.yaml"),
        config(text),
        vec![PORT_MAC],
        GATEWAY_MAC,
        2,
        16,
        Timestamp::ZERO,
        None,
    )
    .expect("plane starts")
}

/// The tunnels 172.16.0.0/16 spreads over, by flow hash (a sample of hashes).
fn targets(p: &ControlPlane) -> Vec<TunnelId> {
    let mut out: Vec<TunnelId> = (0..64u32)
        .filter_map(|h| {
            p.context()
                .table()
                .select(
                    u32::from(Ipv4Addr::new(172, 16, 1, 1)),
                    h.wrapping_mul(0x9E37_79B9),
                )
                .and_then(|n| n.tunnel())
        })
        .collect();
    out.sort_by_key(|t| t.0);
    out.dedup();
    out
}

/// Probe sequence numbers are 16 bits; a sweep covers every one.
const ALL_SEQS: std::ops::RangeInclusive<u16> = 0..=u16::MAX;
/// The send timestamp the simulated probes carry.
const SENT_TSC: u64 = 1_000;

/// The reply a correct customer side sends to `probe`: MAC'ed under the plane's key, by the
/// path the tunnel's probe style implies.
fn answer(p: &ControlPlane, probe: &ProbeToSend) -> ProbeReply {
    let t = &p.tunnels()[probe.tunnel.0 as usize];
    let ident = p.context().probe_ident();
    ProbeReply {
        tunnel: probe.tunnel,
        echo: ProbeEcho {
            seq: probe.seq,
            ident,
            sent_tsc: SENT_TSC,
            mac: p.probe_key().tag(probe.tunnel, probe.seq, ident, SENT_TSC),
            src: t.reply.src,
            dst: t.reply.dst,
        },
        via: t.reply.through_tunnel.then_some(probe.tunnel),
        rx_tsc: 0,
    }
}

/// No RTT measured by the caller (the monitor's own is used).
fn no_rtt(_: u64) -> Option<Duration> {
    None
}

/// A simulated customer side: answers the probes of the tunnels in `alive` one tick later.
struct Sim {
    now: Timestamp,
    in_flight: Vec<(ProbeToSend, Timestamp)>,
    sent: Vec<ProbeToSend>,
}

impl Sim {
    const TICK: Duration = Duration::from_millis(5);

    fn new() -> Self {
        Sim {
            now: Timestamp::ZERO,
            in_flight: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Runs for `d`; returns the generations published.
    fn run(&mut self, p: &mut ControlPlane, d: Duration, alive: &[TunnelId]) -> Vec<u64> {
        let end = self.now.saturating_add(d);
        let mut published = Vec::new();
        let mut out = Vec::new();
        while self.now < end {
            self.now = self.now.saturating_add(Self::TICK);
            for (probe, _) in std::mem::take(&mut self.in_flight) {
                if alive.contains(&probe.tunnel) {
                    p.on_reply(&answer(p, &probe), self.now, no_rtt);
                }
            }
            out.clear();
            p.poll_probes(self.now, &mut out);
            for probe in &out {
                self.in_flight.push((*probe, self.now));
                self.sent.push(*probe);
            }
            if let Some(g) = p.update(self.now).expect("publication succeeds") {
                published.push(g);
            }
        }
        published
    }
}

#[test]
fn probe_specs_follow_type_and_direction() {
    let c = config(CONFIG);
    let a = probe_spec(&c.tunnels[0]);
    assert_eq!(a.kind, ProbeKind::Reply);
    assert_eq!(a.src, Ipv4Addr::new(10, 200, 0, 1), "customer side");
    assert_eq!(
        a.dst,
        Ipv4Addr::new(203, 0, 113, 1),
        "our endpoint (unidirectional)"
    );
    let backup = probe_spec(&c.tunnels[2]);
    assert_eq!(backup.kind, ProbeKind::Request);
    assert_eq!(
        backup.src,
        Ipv4Addr::new(10, 200, 0, 4),
        "our interface (bidirectional)"
    );
    assert_eq!(
        backup.dst,
        Ipv4Addr::new(198, 51, 100, 20),
        "target: the customer endpoint"
    );

    let reply_bidir = config(&CONFIG.replacen(
        "      rate: high\n      hold_down_ms: 2000\n      loss_window_ms: 2000\n  - name: primary-b",
        "      rate: high\n      direction: bidirectional\n  - name: primary-b",
        1,
    ));
    let s = probe_spec(&reply_bidir.tunnels[0]);
    assert_eq!(
        s.dst,
        Ipv4Addr::new(10, 200, 0, 0),
        "our interface (bidirectional)"
    );
    let request_uni = config(&CONFIG.replace("      direction: bidirectional\n", ""));
    let s = probe_spec(&request_uni.tunnels[2]);
    assert_eq!(
        s.src,
        Ipv4Addr::new(203, 0, 113, 1),
        "our endpoint (unidirectional)"
    );
}

#[test]
fn probes_go_out_at_the_interval_staggered() {
    let (mut p, _readers) = plane(CONFIG);
    let mut sim = Sim::new();
    sim.run(&mut p, Duration::from_secs(1), &[A, B, BACKUP]);
    for t in [A, B, BACKUP] {
        let n = sim.sent.iter().filter(|s| s.tunnel == t).count();
        assert!((9..=11).contains(&n), "{t:?}: {n} probes in 1 s at 100 ms");
    }
    let first: Vec<_> = [A, B, BACKUP]
        .iter()
        .map(|t| sim.sent.iter().position(|s| s.tunnel == *t).unwrap())
        .collect();
    assert_eq!(
        first,
        vec![0, 1, 2],
        "first probes are staggered in tunnel order"
    );
    assert!(p.tunnels().iter().all(|t| t.rtt.len() >= 9));
    // The same replies are in the recent window, and leave it a minute later.
    for t in p.tunnels() {
        assert_eq!(t.recent_rtt.len(sim.now) as u64, t.rtt.len(), "{}", t.name);
        assert!(t.recent_rtt.is_empty(sim.now + Duration::from_secs(61)));
    }
    assert_eq!(p.generation(), 0, "nothing changed, nothing published");
}

#[test]
fn failover_by_priority_and_slow_recovery() {
    let (mut p, _readers) = plane(CONFIG);
    let mut sim = Sim::new();
    sim.run(&mut p, Duration::from_millis(500), &[A, B, BACKUP]);
    assert_eq!(targets(&p), vec![A, B], "ECMP over both primaries");

    // A goes silent: down within three probe intervals (probe + 2 retries, 100 ms timeouts).
    let silenced_at = sim.now;
    let mut waited = Duration::ZERO;
    while targets(&p) != vec![B] {
        sim.run(&mut p, Duration::from_millis(5), &[B, BACKUP]);
        waited += Duration::from_millis(5);
        assert!(
            waited <= Duration::from_millis(400),
            "A not failed over after {waited:?}"
        );
    }
    assert!(
        waited >= Duration::from_millis(200),
        "failed over too early: {waited:?}"
    );
    assert_eq!(p.tunnels()[0].state(), Health::Down);
    let _ = silenced_at;

    // Both primaries silent: everything on the backup.
    sim.run(&mut p, Duration::from_millis(500), &[BACKUP]);
    assert_eq!(targets(&p), vec![BACKUP]);

    // Both answer again: down -> degraded after 3 successes, but degraded (+500k) still loses to
    // the healthy backup until 30 successes *and* the 2 s hold-down.
    sim.run(&mut p, Duration::from_millis(1000), &[A, B, BACKUP]);
    assert_eq!(p.tunnels()[0].state(), Health::Degraded);
    assert_eq!(
        targets(&p),
        vec![BACKUP],
        "recovery waits for the hold-down"
    );
    sim.run(&mut p, Duration::from_millis(2500), &[A, B, BACKUP]);
    assert_eq!(p.tunnels()[0].state(), Health::Healthy);
    assert_eq!(targets(&p), vec![A, B], "back on both primaries");
    assert!(p.counters().publications >= 4);
}

#[test]
fn a_flapping_tunnel_cannot_return_before_the_hold_down() {
    let (mut p, _readers) = plane(CONFIG);
    let mut sim = Sim::new();
    sim.run(&mut p, Duration::from_millis(300), &[A, B, BACKUP]);
    // Alternate 400 ms dead / 400 ms alive for 4 s: each dead phase restarts the hold-down.
    for _ in 0..5 {
        sim.run(&mut p, Duration::from_millis(400), &[B, BACKUP]);
        assert!(!targets(&p).contains(&A));
        sim.run(&mut p, Duration::from_millis(400), &[A, B, BACKUP]);
        assert!(!targets(&p).contains(&A), "A returned during its hold-down");
    }
}

#[test]
fn swap_latency_is_measured_when_every_reader_has_read() {
    let (mut p, mut readers) = plane(CONFIG);
    let at = Timestamp::from_secs(7);
    let changed = CONFIG.replace("priority: 200", "priority: 300");
    let g = p.apply(config(&changed), at).expect("reload publishes");
    assert_eq!(p.track_swap(at), None, "no reader has read it yet");
    let _ = readers[0].read();
    readers[0].quiescent();
    assert_eq!(p.track_swap(at), None, "one reader still on the old one");
    let _ = readers[1].read();
    readers[1].quiescent();
    let later = at.saturating_add(Duration::from_micros(250));
    assert_eq!(p.track_swap(later), Some(Duration::from_micros(250)));
    assert_eq!(p.track_swap(later), None, "measured once");
    assert_eq!(readers[1].seen_generation(), g);
    assert_eq!(p.swap_latency().samples, 1);
    assert_eq!(p.swap_latency().max, Some(Duration::from_micros(250)));
}

#[test]
fn replies_for_unknown_tunnels_or_sequences_change_nothing() {
    let (mut p, _readers) = plane(CONFIG);
    let mut unknown = answer(
        &p,
        &ProbeToSend {
            tunnel: A,
            seq: 0,
            spec: p.tunnels()[0].spec,
        },
    );
    unknown.tunnel = TunnelId(99);
    p.on_reply(&unknown, Timestamp::from_millis(1), no_rtt);
    let never_sent = ProbeToSend {
        tunnel: A,
        seq: 4242,
        spec: p.tunnels()[0].spec,
    };
    p.on_reply(&answer(&p, &never_sent), Timestamp::from_millis(1), no_rtt);
    assert_eq!(p.counters().replies_unknown_tunnel, 1);
    assert_eq!(p.counters().replies_unmatched, 1);
    assert_eq!(p.counters().probe_reply_stale, 1);
    assert!(p.tunnels().iter().all(|t| t.rtt.is_empty()));
}

/// Sends the plane's probes for `d` without answering them; returns those sent.
fn run_silent(p: &mut ControlPlane, now: &mut Timestamp, d: Duration) -> Vec<ProbeToSend> {
    let end = now.saturating_add(d);
    let mut sent = Vec::new();
    while *now < end {
        *now = now.saturating_add(Sim::TICK);
        p.poll_probes(*now, &mut sent);
        p.update(*now).expect("publication succeeds");
    }
    sent
}

#[test]
fn forged_replies_keep_no_tunnel_up() {
    let (mut p, _readers) = plane(CONFIG);
    let mut now = Timestamp::ZERO;
    let mut forged = 0u64;
    // Every sequence number, again and again, with the right identity, addresses and path but
    // no key: the tunnels die as if nobody answered.
    while now < Timestamp::from_millis(1500) {
        run_silent(&mut p, &mut now, Sim::TICK * 20);
        for tunnel in [A, B, BACKUP] {
            for seq in ALL_SEQS.step_by(7) {
                let probe = ProbeToSend {
                    tunnel,
                    seq,
                    spec: p.tunnels()[tunnel.0 as usize].spec,
                };
                let mut reply = answer(&p, &probe);
                reply.echo.mac = u64::from(seq).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                // A huge RTT if the timestamp were believed.
                reply.echo.sent_tsc = 1;
                p.on_reply(&reply, now, |_| Some(Duration::from_secs(60)));
                forged += 1;
            }
        }
    }
    for t in p.tunnels() {
        assert_eq!(t.state(), Health::Down, "{}", t.name);
        assert!(t.rtt.is_empty(), "no RTT from a forged timestamp");
        assert_eq!(t.counters().replies, 0);
    }
    assert_eq!(p.counters().probe_reply_forged, forged);
}

#[test]
fn authentic_replies_by_the_wrong_path_are_ignored() {
    let (mut p, _readers) = plane(CONFIG);
    let mut now = Timestamp::ZERO;
    let mut wrong = 0u64;
    while now < Timestamp::from_millis(1500) {
        for probe in run_silent(&mut p, &mut now, Sim::TICK) {
            let good = answer(&p, &probe);
            let other = TunnelId((probe.tunnel.0 + 1) % 3);
            let mut variants = vec![
                // inside another tunnel's GRE
                ProbeReply {
                    via: Some(other),
                    ..good
                },
                // from the wrong inner source
                ProbeReply {
                    echo: ProbeEcho {
                        src: Ipv4Addr::new(198, 18, 0, 66),
                        ..good.echo
                    },
                    ..good
                },
                // to the wrong one of our addresses
                ProbeReply {
                    echo: ProbeEcho {
                        dst: Ipv4Addr::new(192, 0, 2, 10),
                        ..good.echo
                    },
                    ..good
                },
            ];
            // plain when bidirectional, through the tunnel when unidirectional
            variants.push(ProbeReply {
                via: if good.via.is_some() {
                    None
                } else {
                    Some(probe.tunnel)
                },
                ..good
            });
            for r in variants {
                p.on_reply(&r, now, no_rtt);
                wrong += 1;
            }
        }
    }
    for t in p.tunnels() {
        assert_eq!(t.state(), Health::Down, "{}", t.name);
        assert_eq!(t.counters().replies, 0);
    }
    assert_eq!(p.counters().probe_reply_wrong_path, wrong);
    assert_eq!(p.counters().probe_reply_forged, 0);
}

#[test]
fn replies_replayed_after_their_deadline_are_stale() {
    let (mut p, _readers) = plane(CONFIG);
    let mut sim = Sim::new();
    sim.run(&mut p, Duration::from_millis(300), &[A, B, BACKUP]);
    // What an eavesdropper captured: the replies actually sent (not those still due).
    let due: Vec<ProbeToSend> = sim.in_flight.iter().map(|(pr, _)| *pr).collect();
    let answered: Vec<ProbeToSend> = sim
        .sent
        .iter()
        .filter(|pr| !due.contains(pr))
        .copied()
        .collect();
    assert!(!answered.is_empty());
    // Now A dies; an attacker replays every reply it captured, over and over.
    let mut now = sim.now;
    let mut replays = 0u64;
    while now < sim.now.saturating_add(Duration::from_millis(1500)) {
        run_silent(&mut p, &mut now, Sim::TICK * 4);
        for probe in answered.iter().filter(|pr| pr.tunnel == A) {
            p.on_reply(&answer(&p, probe), now, no_rtt);
            replays += 1;
        }
    }
    assert_eq!(p.tunnels()[A.0 as usize].state(), Health::Down);
    assert_eq!(p.counters().probe_reply_stale, replays);
    assert_eq!(p.counters().probe_reply_forged, 0);
}

#[test]
fn sequence_numbers_start_at_random_values() {
    let firsts = |p: &mut ControlPlane| {
        let mut out = Vec::new();
        p.poll_probes(Timestamp::from_secs(1), &mut out);
        out.iter().map(|pr| pr.seq).collect::<Vec<u16>>()
    };
    let (mut p, _r) = plane(CONFIG);
    let (mut q, _s) = plane(CONFIG);
    let (a, b) = (firsts(&mut p), firsts(&mut q));
    assert_eq!(a.len(), 3);
    // 48 random bits each: equal only by a 2^-48 chance.
    assert_ne!(a, b);
    assert_ne!(a, vec![0, 0, 0]);
    assert_ne!(p.probe_key(), q.probe_key(), "a key per start");
}

#[test]
fn reload_applies_routes_and_keeps_health() {
    let (mut p, _readers) = plane(CONFIG);
    let mut sim = Sim::new();
    sim.run(&mut p, Duration::from_millis(500), &[B, BACKUP]);
    assert_eq!(p.tunnels()[0].state(), Health::Down);
    let changed = CONFIG.replace(
        "  - { prefix: 172.16.0.0/16, tunnel: backup, priority: 200 }\n",
        "  - { prefix: 172.16.0.0/16, tunnel: backup, priority: 200 }\n  - { prefix: 10.9.0.0/16, tunnel: primary-a, priority: 1 }\n",
    );
    let before = p.generation();
    let g = p.apply(config(&changed), sim.now).expect("reload applies");
    assert_eq!(g, before + 1);
    assert_eq!(p.tunnels()[0].state(), Health::Down, "health carried over");
    assert_eq!(targets(&p), vec![B]);
    assert_eq!(
        p.context()
            .table()
            .select(u32::from(Ipv4Addr::new(10, 9, 1, 1)), 1),
        Some(A.into()),
        "the new route is live"
    );
}

#[test]
fn reload_of_restart_only_sections_is_refused_and_changes_nothing() {
    let (mut p, _readers) = plane(CONFIG);
    let g = p.generation();
    let err = p
        .apply(
            config(&CONFIG.replace("workers: [1]", "workers: [2]")),
            Timestamp::ZERO,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "test.yaml: changing dataplane needs a restart; nothing was applied"
    );
    let err = p
        .apply(
            config(&CONFIG.replace("02:00:5e:00:53:01", "02:00:5e:00:53:02")),
            Timestamp::ZERO,
        )
        .unwrap_err();
    assert!(err.to_string().contains("changing gateway"), "{err}");
    assert_eq!(p.generation(), g);
    assert_eq!(p.config(), &config(CONFIG));
}

#[test]
fn reload_beyond_the_tunnel_capacity_is_refused() {
    let (mut p, _readers) = ControlPlane::with_boot_epoch(
        Path::new("test.yaml"),
        config(CONFIG),
        vec![PORT_MAC],
        GATEWAY_MAC,
        1,
        3,
        Timestamp::ZERO,
        None,
    )
    .unwrap();
    let more = CONFIG.replace(
        "routes:\n",
        "  - { name: extra, kind: gre, local: 203.0.113.1, remote: 198.51.100.99, interface_address: 10.200.0.8/31 }\nroutes:\n",
    );
    let err = p.apply(config(&more), Timestamp::ZERO).unwrap_err();
    assert!(err.to_string().contains("4 tunnels exceed the 3"), "{err}");
    assert_eq!(p.tunnels().len(), 3);
}

#[test]
fn reload_from_a_broken_file_keeps_the_running_config() {
    let dir = std::env::temp_dir().join(format!("conduit-plane-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.yaml");
    std::fs::write(&path, CONFIG).unwrap();
    let (mut p, _readers) = ControlPlane::with_boot_epoch(
        &path,
        config(CONFIG),
        vec![PORT_MAC],
        GATEWAY_MAC,
        1,
        16,
        Timestamp::ZERO,
        None,
    )
    .unwrap();
    std::fs::write(&path, CONFIG.replace("tunnel: backup", "tunnel: nowhere")).unwrap();
    let err = p.reload(Timestamp::ZERO).unwrap_err().to_string();
    assert!(err.contains("c.yaml:") && err.contains("nowhere"), "{err}");
    assert_eq!(p.counters().reloads_failed, 1);
    assert_eq!(p.generation(), 0);
    std::fs::write(&path, CONFIG.replace("priority: 200", "priority: 50")).unwrap();
    p.reload(Timestamp::ZERO).expect("valid reload");
    assert_eq!(p.counters().reloads_ok, 1);
    assert_eq!(
        targets(&p),
        vec![BACKUP],
        "the backup now has the best priority"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn admin_down_routes_as_down_sends_no_probes_and_comes_back() {
    let (mut p, _readers) = plane(CONFIG);
    let mut sim = Sim::new();
    sim.run(&mut p, Duration::from_millis(500), &[A, B, BACKUP]);
    assert_eq!(targets(&p), vec![A, B]);
    let g = p.generation();

    let g1 = p.set_admin("primary-a", AdminState::Down, sim.now).unwrap();
    assert_eq!(g1, g + 1, "published at once");
    let a = &p.tunnels()[0];
    assert_eq!(a.admin(), AdminState::Down);
    assert_eq!(a.state(), Health::Healthy, "its checks said nothing bad");
    assert_eq!(a.routing_health(), Health::Down);
    assert_eq!(a.status(), TunnelStatus::AdminDown);
    assert_eq!(a.status().as_str(), "admin-down");
    assert_eq!(targets(&p), vec![B]);
    // Setting the same state again publishes nothing.
    assert_eq!(
        p.set_admin("primary-a", AdminState::Down, sim.now).unwrap(),
        g1
    );

    // No probes while admin-down, and no failure either although none is answered.
    let before = sim.sent.iter().filter(|s| s.tunnel == A).count();
    sim.run(&mut p, Duration::from_secs(1), &[B, BACKUP]);
    assert_eq!(sim.sent.iter().filter(|s| s.tunnel == A).count(), before);
    assert_eq!(p.tunnels()[0].state(), Health::Healthy);
    // Both primaries down by admin: the backup (priority 200) wins over the penalised ones.
    p.set_admin("primary-b", AdminState::Down, sim.now).unwrap();
    assert_eq!(targets(&p), vec![BACKUP]);

    // Back up: routed again at once, probed again.
    p.set_admin("primary-a", AdminState::Up, sim.now).unwrap();
    p.set_admin("primary-b", AdminState::Up, sim.now).unwrap();
    assert_eq!(targets(&p), vec![A, B]);
    assert_eq!(
        p.tunnels()[0].status(),
        TunnelStatus::Checked(Health::Healthy)
    );
    sim.run(&mut p, Duration::from_secs(1), &[A, B, BACKUP]);
    let probed = sim.sent.iter().filter(|s| s.tunnel == A).count() - before;
    assert!((9..=11).contains(&probed), "{probed} probes in 1 s");
    assert_eq!(targets(&p), vec![A, B]);
    assert_eq!(p.tunnels()[0].state_changes, 2, "down and up");

    let err = p.set_admin("nope", AdminState::Down, sim.now).unwrap_err();
    assert_eq!(err.to_string(), "no tunnel is called \"nope\"");
}

#[test]
fn reload_sets_the_file_admin_state_unless_set_at_run_time() {
    let (mut p, _readers) = plane(CONFIG);
    let mut sim = Sim::new();
    sim.run(&mut p, Duration::from_millis(300), &[A, B, BACKUP]);
    let down = CONFIG.replacen(
        "    remote: 198.51.100.10\n",
        "    remote: 198.51.100.10\n    admin: down\n",
        1,
    );
    p.apply(config(&down), sim.now).unwrap();
    assert_eq!(p.tunnels()[0].status(), TunnelStatus::AdminDown);
    assert_eq!(targets(&p), vec![B]);
    // A tunnel admin-down from start-up is not probed either.
    let (mut q, _r) = plane(&down);
    let mut qsim = Sim::new();
    qsim.run(&mut q, Duration::from_millis(500), &[A, B, BACKUP]);
    assert!(qsim.sent.iter().all(|s| s.tunnel != A));
    assert_eq!(targets(&q), vec![B]);
    // A state set at run time survives reloads until it is set again; the others follow the
    // file.
    p.set_admin("primary-b", AdminState::Down, sim.now).unwrap();
    assert_eq!(targets(&p), vec![BACKUP]);
    let change = p.tunnels()[1].last_change().expect("a change").clone();
    assert_eq!(change.reason, "admin down");
    assert_eq!(change.at, sim.now);
    p.apply(config(CONFIG), sim.now).unwrap();
    assert_eq!(
        targets(&p),
        vec![A],
        "primary-a follows the file, primary-b stays down"
    );
    assert_eq!(p.tunnels()[1].admin(), AdminState::Down);
    assert_eq!(p.admin_overrides().len(), 1);
    p.set_admin("primary-b", AdminState::Up, sim.now).unwrap();
    p.apply(config(&down), sim.now).unwrap();
    assert_eq!(
        targets(&p),
        vec![B],
        "up at run time wins over the file's up too"
    );
    p.apply(config(CONFIG), sim.now).unwrap();
    assert_eq!(targets(&p), vec![A, B]);
    assert!(p.tunnels().iter().all(|t| t.admin() == AdminState::Up));
}

#[test]
fn operator_lookup_and_routes_follow_the_published_table() {
    use crate::operator::{lookup, routes, Flow};
    let (mut p, _readers) = plane(CONFIG);
    let flow = |i: u16| Flow {
        src: Ipv4Addr::new(192, 0, 2, 7),
        dst: Ipv4Addr::new(172, 16, 3, 4),
        protocol: 17,
        src_port: 1000 + i,
        dst_port: 53,
    };
    let l = lookup(&p, flow(0));
    assert_eq!(l.prefix, Some((Ipv4Addr::new(172, 16, 0, 0), 16)));
    assert!(l.ports_hashed);
    let names: Vec<(&str, u64, bool)> = l
        .candidates
        .iter()
        .map(|c| (c.next_hop.as_str(), c.effective_priority, c.active))
        .collect();
    assert_eq!(
        names,
        vec![
            ("primary-a", 100, true),
            ("primary-b", 100, true),
            ("backup", 200, false)
        ]
    );
    // Flows spread over both primaries, each as the table selects it.
    let chosen: Vec<String> = (0..64)
        .map(|i| lookup(&p, flow(i)).chosen.unwrap())
        .collect();
    for name in ["primary-a", "primary-b"] {
        assert!(chosen.iter().any(|c| c == name), "{chosen:?}");
    }
    let table = p.context().table();
    for (i, c) in chosen.iter().enumerate() {
        let f = flow(i as u16);
        let hash = conduit_packet::route::flow_hash(
            u32::from(f.src),
            u32::from(f.dst),
            f.protocol,
            false,
            f.src_port,
            f.dst_port,
        );
        let id = match table.select(u32::from(f.dst), hash) {
            Some(conduit_packet::route::NextHop::Tunnel(id)) => id,
            other => panic!("{other:?}"),
        };
        assert_eq!(c, &p.tunnels()[id.0 as usize].name);
    }

    // Both primaries admin-down: the backup takes every flow and is the active route.
    p.set_admin("primary-a", AdminState::Down, Timestamp::ZERO)
        .unwrap();
    p.set_admin("primary-b", AdminState::Down, Timestamp::ZERO)
        .unwrap();
    assert!((0..64).all(|i| lookup(&p, flow(i)).chosen.as_deref() == Some("backup")));
    let r = routes(&p, None);
    assert_eq!(r[0].penalty, 1_000_000);
    assert_eq!(r[0].effective_priority, 1_000_100);
    assert!(!r[0].active && !r[1].active && r[2].active);
    // Inside another prefix: none; no route for an address outside every prefix.
    assert!(routes(&p, Some((Ipv4Addr::new(10, 0, 0, 0), 8))).is_empty());
    let none = lookup(
        &p,
        Flow {
            dst: Ipv4Addr::new(8, 8, 8, 8),
            ..flow(0)
        },
    );
    assert_eq!((none.prefix, none.chosen), (None, None));
}

const KEY_OUT: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff01020304";
const KEY_IN: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223";
const KEY_NEXT: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100a0b0c0d0";

/// CONFIG with an IPsec tunnel (id 3) whose inbound SAs are `inbound`.
fn with_ipsec(inbound: &str) -> String {
    CONFIG.replace(
        "routes:\n",
        &format!(
            "  - name: site-c\n    kind: ipsec\n    local: 203.0.113.2\n    remote: 198.51.100.30\n    \
             interface_address: 10.200.0.8/31\n    health_check: {{ enabled: false }}\n    ipsec:\n      \
             outbound: {{ spi: 0x2000, key: {KEY_OUT} }}\n      inbound: [{inbound}]\n\
             routes:\n"
        ),
    ) + "ipsec:\n  instance_id: 3\n"
}

#[test]
fn ipsec_sas_are_published_and_survive_reloads() {
    let one = format!("{{ spi: 0x1000, key: {KEY_IN} }}");
    let (mut p, _readers) = ControlPlane::with_boot_epoch(
        Path::new("test.yaml"),
        config(&with_ipsec(&one)),
        vec![PORT_MAC],
        GATEWAY_MAC,
        2,
        16,
        Timestamp::ZERO,
        Some(12),
    )
    .expect("plane starts");
    assert_eq!((p.boot_epoch(), p.sa_writer()), (Some(12), 2));
    let prefix = p.ipsec().iv_prefix;
    assert_eq!((prefix.instance_id, prefix.epoch), (3, 12));
    let (id, sas) = p.ipsec().tunnels[0].clone();
    assert_eq!(id, TunnelId(3));
    let out = sas.outbound.unwrap().shared;
    assert_eq!(out.seq().take(), Some(1));

    // Rekey, step 1: a second inbound SA. The unchanged SAs are the same objects.
    let two = format!("{one}, {{ spi: 0x1001, key: {KEY_NEXT} }}");
    p.apply(config(&with_ipsec(&two)), Timestamp::ZERO).unwrap();
    let now = &p.ipsec().tunnels[0].1;
    assert!(Arc::ptr_eq(&now.outbound.as_ref().unwrap().shared, &out));
    assert!(Arc::ptr_eq(&now.inbound[0].shared, &sas.inbound[0].shared));
    assert_eq!(now.inbound.len(), 2);
    assert_eq!(out.seq().take(), Some(2));

    // A refused reload changes nothing, also in the SAs.
    let err = p
        .apply(
            config(&with_ipsec(&two).replace("instance_id: 3", "instance_id: 4")),
            Timestamp::ZERO,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "test.yaml: changing ipsec needs a restart; nothing was applied"
    );
    assert_eq!(p.ipsec().iv_prefix.instance_id, 3);
    assert_eq!(p.ipsec().tunnels[0].1.inbound.len(), 2);

    // Without a boot epoch the IPsec tunnel is there, without SAs.
    let (p, _readers) = plane(&with_ipsec(&one));
    assert_eq!(p.ipsec().tunnels.len(), 1);
    assert!(p.ipsec().tunnels[0].1.outbound.is_none());
    assert!(p.ipsec().tunnels[0].1.inbound.is_empty());
}
