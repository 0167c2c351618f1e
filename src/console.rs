//! What the appliance prints on stdout: periodic rates while it runs and the final statistics
//! at exit. Tests and scripts parse these lines: their format is part of the interface.

use std::time::{Duration, Instant};

use conduit_packet::pipeline::DropReason;
use conduit_packet::route::AdminState;
use conduit_packet::stats::CoreSnapshot;
use dataplane::lcore::LcoreId;
use dataplane::port::{Port, PortStats};
use dataplane::worker::pipeline::PipelineCounters;

use crate::control_loop::ControlLoop;

/// The sum of every worker's core counters.
pub fn sum(counters: &[PipelineCounters]) -> CoreSnapshot {
    counters.iter().fold(CoreSnapshot::default(), |acc, c| {
        acc.plus(&c.core.snapshot())
    })
}

fn cycles_per_packet(s: &CoreSnapshot) -> String {
    s.cycles_per_packet()
        .map(|c| format!("{c:.1}"))
        .unwrap_or_else(|| "-".into())
}

/// `port 0 name        `: the start of every per-port line.
fn port_label(p: &Port) -> String {
    format!("port {} {:<12}", p.id(), p.name())
}

/// Periodic per-port and per-worker rates, every `interval` (none when it is zero).
pub struct Periodic {
    interval: Duration,
    last_print: Instant,
    last_snap: CoreSnapshot,
    last_port_stats: Vec<PortStats>,
}

impl Periodic {
    pub fn new(interval_ms: u64, ports: &[Port], counters: &[PipelineCounters]) -> Self {
        Periodic {
            interval: Duration::from_millis(interval_ms),
            last_print: Instant::now(),
            last_snap: sum(counters),
            last_port_stats: ports
                .iter()
                .map(|p| p.stats().unwrap_or_default())
                .collect(),
        }
    }

    /// Prints the rates since the last print if the interval has passed.
    pub fn maybe_print(&mut self, now: Instant, ports: &[Port], counters: &[PipelineCounters]) {
        if self.interval.is_zero() || now.duration_since(self.last_print) < self.interval {
            return;
        }
        let dt = now.duration_since(self.last_print).as_secs_f64();
        let snap = sum(counters);
        let d = snap.since(&self.last_snap);
        for (p, l) in ports.iter().zip(self.last_port_stats.iter_mut()) {
            let s = p.stats().unwrap_or_default();
            println!(
                "{} rx-pps {:>12.0}  tx-pps {:>12.0}  rx-bps {:>14.0}  tx-bps {:>14.0}  missed {} errors {}/{}",
                port_label(p),
                (s.ipackets - l.ipackets) as f64 / dt,
                (s.opackets - l.opackets) as f64 / dt,
                (s.ibytes - l.ibytes) as f64 * 8.0 / dt,
                (s.obytes - l.obytes) as f64 * 8.0 / dt,
                s.imissed,
                s.ierrors,
                s.oerrors
            );
            *l = s;
        }
        println!(
            "workers rx-pps {:>12.0}  tx-pps {:>12.0}  tx-dropped {}  cycles/pkt {}",
            d.rx_packets as f64 / dt,
            d.tx_packets as f64 / dt,
            d.tx_dropped,
            cycles_per_packet(&d)
        );
        self.last_snap = snap;
        self.last_print = now;
    }
}

/// Health and publication summary at exit.
pub fn print_control(c: &ControlLoop) {
    let p = &c.plane;
    let sl = p.swap_latency();
    println!(
        "control   generation {}  publications {}  reloads {} ok / {} failed  swap-to-effect last {} max {} ({} samples)",
        p.generation(),
        p.counters().publications,
        p.counters().reloads_ok,
        p.counters().reloads_failed,
        sl.last.map_or("-".into(), |d| format!("{} us", d.as_micros())),
        sl.max.map_or("-".into(), |d| format!("{} us", d.as_micros())),
        sl.samples,
    );
    println!(
        "probes    sent {}  unbuildable {}  tx-dropped {}  replies {}  unmatched {}",
        c.counters.probes_sent.get(),
        c.counters.probes_unbuildable.get(),
        c.counters.probes_tx_dropped.get(),
        c.counters.replies.get(),
        p.counters().replies_unmatched + p.counters().replies_unknown_tunnel,
    );
    for t in p
        .tunnels()
        .iter()
        .filter(|t| t.checked() || t.admin() == AdminState::Down)
    {
        let h = t.counters();
        let pct = |q: f64| {
            if t.rtt.is_empty() {
                "-".to_string()
            } else {
                format!("{}", t.rtt.value_at_quantile(q))
            }
        };
        println!(
            "health    {:<16} {:<8} changes {:<3} probes {:<6} replies {:<6} timeouts {:<6} rtt-us p50 {} p99 {} max {}",
            t.name,
            t.status().as_str(),
            t.state_changes,
            h.probes_sent,
            h.replies,
            h.timeouts,
            pct(0.5),
            pct(0.99),
            if t.rtt.is_empty() { "-".into() } else { t.rtt.max().to_string() },
        );
    }
}

/// The final per-port, per-worker, drop and per-tunnel statistics.
pub fn print_final(
    ports: &[Port],
    counters: &[PipelineCounters],
    workers: &[LcoreId],
    tunnel_names: &[String],
    elapsed: Duration,
) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "---------------------- final statistics ({:.3} s) ----------------------",
        secs
    );
    for p in ports {
        let s = p.stats().unwrap_or_default();
        let label = port_label(p);
        println!(
            "{label} rx-packets {:<12} rx-bytes {:<14} rx-missed {:<8} rx-errors {:<6} rx-nombuf {}",
            s.ipackets, s.ibytes, s.imissed, s.ierrors, s.rx_nombuf
        );
        println!(
            "{label} tx-packets {:<12} tx-bytes {:<14} tx-errors {}",
            s.opackets, s.obytes, s.oerrors
        );
    }
    for (c, l) in counters.iter().zip(workers) {
        let s = c.core.snapshot();
        println!(
            "lcore {:<3} rx-packets {:<12} tx-packets {:<12} tx-dropped {:<8} polls {:<12} busy-polls {:<12} cycles/pkt {}",
            l.0,
            s.rx_packets,
            s.tx_packets,
            s.tx_dropped,
            s.polls,
            s.busy_polls,
            cycles_per_packet(&s)
        );
    }
    let t = sum(counters);
    println!(
        "total     rx-packets {:<12} tx-packets {:<12} tx-dropped {:<8} avg rx-pps {:.0}",
        t.rx_packets,
        t.tx_packets,
        t.tx_dropped,
        t.rx_packets as f64 / secs
    );
    print_pipeline(counters, tunnel_names);
}

/// The pipeline's own counters: extras, drops by reason, per-tunnel traffic.
fn print_pipeline(counters: &[PipelineCounters], tunnel_names: &[String]) {
    let total = |f: &dyn Fn(&PipelineCounters) -> u64| counters.iter().map(f).sum::<u64>();
    let extra = [
        ("replies", total(&|c| c.replies.get())),
        ("to-control", total(&|c| c.to_control.get())),
        ("to-control-dropped", total(&|c| c.to_control_dropped.get())),
        ("fragments-out", total(&|c| c.fragments_out.get())),
        ("reassembled", total(&|c| c.reassembled.get())),
        ("alloc-failed", total(&|c| c.alloc_failed.get())),
    ];
    if extra.iter().any(|(_, v)| *v > 0) {
        let parts: Vec<String> = extra.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("pipeline  {}", parts.join("  "));
    }
    let mut dropped = 0u64;
    for reason in DropReason::all() {
        let n = total(&|c| c.drops.get(reason.index()));
        if n > 0 {
            println!("drop      {:<28} {n}", reason.as_str());
            dropped += n;
        }
    }
    if !tunnel_names.is_empty() {
        println!("drops total {dropped}");
    }
    for (i, name) in tunnel_names.iter().enumerate() {
        println!(
            "tunnel    {:<16} rx-packets {:<10} rx-bytes {:<12} tx-packets {:<10} tx-bytes {}",
            name,
            total(&|c| c.tunnel_rx_packets.get(i)),
            total(&|c| c.tunnel_rx_bytes.get(i)),
            total(&|c| c.tunnel_tx_packets.get(i)),
            total(&|c| c.tunnel_tx_bytes.get(i)),
        );
    }
}
