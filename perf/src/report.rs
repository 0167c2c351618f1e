//! Run results: the arithmetic (rates, cycles per packet, latency percentiles) and the final
//! report, printed as text like testpmd's or as JSON (`--json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use conduit_packet::stats::CoreSnapshot;

use crate::profile::ProfileSpec;

/// Events per second; 0 for an empty interval.
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Bits per second of `bytes` over `seconds` (frame bytes: no preamble, FCS or gap).
pub fn bits_per_second(bytes: u64, seconds: f64) -> f64 {
    rate(bytes, seconds) * 8.0
}

/// Busy TSC cycles per packet; `None` without packets.
pub fn cycles_per_packet(busy_cycles: u64, packets: u64) -> Option<f64> {
    (packets > 0).then(|| busy_cycles as f64 / packets as f64)
}

/// Nanoseconds in `cycles` TSC ticks at `tsc_hz`.
pub fn cycles_to_ns(cycles: u64, tsc_hz: u64) -> f64 {
    if tsc_hz == 0 {
        0.0
    } else {
        cycles as f64 * 1e9 / tsc_hz as f64
    }
}

/// A histogram of generator-to-sink latencies in TSC cycles (1 cycle .. ~4 s at 3 significant
/// digits), the range of the 32-bit stamp.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, u32::MAX as u64, 3).expect("static bounds are valid")
}

/// Latency percentiles in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ns: f64,
    pub p90_ns: f64,
    pub p99_ns: f64,
    pub p999_ns: f64,
    pub max_ns: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>, tsc_hz: u64) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let q = |p: f64| cycles_to_ns(h.value_at_quantile(p), tsc_hz);
        Latency {
            samples: h.len(),
            p50_ns: q(0.5),
            p90_ns: q(0.9),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: cycles_to_ns(h.max(), tsc_hz),
        }
    }
}

/// One worker lcore over the measured interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerReport {
    pub lcore: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
    pub busy_cycles: u64,
    pub mpps: f64,
    /// Busy TSC cycles / packets received, I/O included.
    pub cycles_per_packet: Option<f64>,
    /// Busy cycles / all TSC cycles of the interval.
    pub busy_fraction: f64,
    /// Packets per poll that returned any: the burst size when the worker is saturated.
    pub packets_per_busy_poll: Option<f64>,
}

impl WorkerReport {
    /// From the worker's counter deltas `d` over `seconds` at `tsc_hz`.
    pub fn new(lcore: u32, d: &CoreSnapshot, seconds: f64, tsc_hz: u64) -> Self {
        let CoreSnapshot {
            rx_packets,
            tx_packets,
            tx_dropped,
            busy_cycles,
            busy_polls,
            ..
        } = *d;
        let total = seconds * tsc_hz as f64;
        WorkerReport {
            lcore,
            rx_packets,
            tx_packets,
            tx_dropped,
            busy_cycles,
            mpps: rate(rx_packets, seconds) / 1e6,
            cycles_per_packet: cycles_per_packet(busy_cycles, rx_packets),
            busy_fraction: if total > 0.0 {
                (busy_cycles as f64 / total).min(1.0)
            } else {
                0.0
            },
            packets_per_busy_poll: (busy_polls > 0).then(|| rx_packets as f64 / busy_polls as f64),
        }
    }
}

/// Generator and sink counters over the measured interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrafficReport {
    pub generated_packets: u64,
    pub generated_bytes: u64,
    pub received_packets: u64,
    pub received_bytes: u64,
    pub generated_mpps: f64,
    pub received_mpps: f64,
    pub generated_gbps: f64,
    pub received_gbps: f64,
    /// Output frames checked against the profile, and how many failed.
    pub checked: u64,
    pub check_failed: u64,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub profile: ProfileSpec,
    /// What the worker ran: `pipeline`, or the `io` / `macswap` baseline.
    pub worker: String,
    pub dpdk: String,
    pub hugepages: bool,
    pub tsc_hz: u64,
    pub seconds: f64,
    pub workers: Vec<WorkerReport>,
    /// Sum over workers.
    pub total_mpps: f64,
    /// Busy cycles of all workers / packets of all workers.
    pub cycles_per_packet: Option<f64>,
    pub traffic: TrafficReport,
    pub latency: Latency,
    /// Pipeline drops by reason, plus `tx_full` (the TX ring refused) — only non-zero ones.
    pub drops: BTreeMap<String, u64>,
    pub mbufs_in_use_after: u32,
    pub pool_capacity: u32,
}

impl Report {
    /// Totals over the workers' reports.
    pub fn totals(workers: &[WorkerReport]) -> (f64, Option<f64>) {
        let mpps = workers.iter().map(|w| w.mpps).sum();
        let busy = workers.iter().map(|w| w.busy_cycles).sum();
        let pkts = workers.iter().map(|w| w.rx_packets).sum();
        (mpps, cycles_per_packet(busy, pkts))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// The end-of-run summary, testpmd style.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let p = &self.profile;
        let _ = writeln!(
            s,
            "================ conduit-perf: {:?} profile, {} worker, {:.2} s measured ================",
            p.kind, self.worker, self.seconds
        );
        let _ = writeln!(
            s,
            "flows {}  sizes {:?}  proto {:?}  tunnels {}  routes {} x{} paths  ecmp {:?}  {}  TSC {:.3} GHz  {}",
            p.flows,
            compact_sizes(&p.sizes),
            p.proto,
            p.tunnels,
            p.routes,
            p.paths,
            p.ecmp,
            self.dpdk,
            self.tsc_hz as f64 / 1e9,
            if self.hugepages { "hugepages" } else { "no hugepages" }
        );
        for w in &self.workers {
            let _ = writeln!(
                s,
                "lcore {:<3} rx {:<12} tx {:<12} tx-dropped {:<8} {:>8.3} Mpps  cycles/pkt {}  busy {:.1}%  pkts/busy-poll {}",
                w.lcore,
                w.rx_packets,
                w.tx_packets,
                w.tx_dropped,
                w.mpps,
                fmt_opt(w.cycles_per_packet),
                w.busy_fraction * 100.0,
                fmt_opt(w.packets_per_busy_poll)
            );
        }
        let t = &self.traffic;
        let _ = writeln!(
            s,
            "total     {:.3} Mpps  cycles/pkt {}  in {:.3} Gbps  out {:.3} Gbps",
            self.total_mpps,
            fmt_opt(self.cycles_per_packet),
            t.generated_gbps,
            t.received_gbps
        );
        let _ = writeln!(
            s,
            "generator {} pkts ({:.3} Mpps)  sink {} pkts ({:.3} Mpps)  checked {} failed {}",
            t.generated_packets,
            t.generated_mpps,
            t.received_packets,
            t.received_mpps,
            t.checked,
            t.check_failed
        );
        let l = &self.latency;
        let _ = writeln!(
            s,
            "latency   p50 {:.0} ns  p90 {:.0} ns  p99 {:.0} ns  p99.9 {:.0} ns  max {:.0} ns  ({} samples)",
            l.p50_ns, l.p90_ns, l.p99_ns, l.p999_ns, l.max_ns, l.samples
        );
        if self.drops.is_empty() {
            let _ = writeln!(s, "drops     none");
        }
        for (reason, n) in &self.drops {
            let _ = writeln!(s, "drop      {reason:<28} {n}");
        }
        let _ = writeln!(
            s,
            "mbufs in use after shutdown: {} of {}",
            self.mbufs_in_use_after, self.pool_capacity
        );
        s
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|c| format!("{c:.1}")).unwrap_or_else(|| "-".into())
}

/// `[64, 64, 64, 594]` as `["64x3", "594"]`.
fn compact_sizes(sizes: &[u16]) -> Vec<String> {
    let mut out: Vec<(u16, usize)> = Vec::new();
    for &s in sizes {
        match out.last_mut() {
            Some((v, n)) if *v == s => *n += 1,
            _ => out.push((s, 1)),
        }
    }
    out.into_iter()
        .map(|(v, n)| {
            if n == 1 {
                v.to_string()
            } else {
                format!("{v}x{n}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Ecmp, ProfileKind, Proto};

    #[test]
    fn rates_and_cycles() {
        assert_eq!(rate(1_000_000, 0.5), 2_000_000.0);
        assert_eq!(rate(5, 0.0), 0.0);
        assert_eq!(bits_per_second(125, 1.0), 1000.0);
        assert_eq!(cycles_per_packet(1000, 10), Some(100.0));
        assert_eq!(cycles_per_packet(1000, 0), None);
        assert!((cycles_to_ns(2_250, 2_250_000_000) - 1000.0).abs() < 1e-9);
        assert_eq!(cycles_to_ns(10, 0), 0.0);
    }

    fn snap(rx: u64, tx: u64, dropped: u64, busy: u64, busy_polls: u64) -> CoreSnapshot {
        CoreSnapshot {
            rx_packets: rx,
            tx_packets: tx,
            tx_dropped: dropped,
            busy_polls,
            polls: busy_polls * 2,
            busy_cycles: busy,
        }
    }

    #[test]
    fn worker_report_arithmetic() {
        // 2 s at 1 GHz, 20 M packets with 1e9 busy cycles: 10 Mpps, 50 cycles/pkt, 50% busy.
        let w = WorkerReport::new(
            1,
            &snap(20_000_000, 19_000_000, 1_000_000, 1_000_000_000, 1_000_000),
            2.0,
            1_000_000_000,
        );
        assert_eq!(w.mpps, 10.0);
        assert_eq!(w.cycles_per_packet, Some(50.0));
        assert_eq!(w.busy_fraction, 0.5);
        assert_eq!(w.packets_per_busy_poll, Some(20.0));
        let w2 = WorkerReport::new(
            2,
            &snap(10_000_000, 0, 0, 3_000_000_000, 0),
            2.0,
            1_000_000_000,
        );
        assert_eq!(w2.packets_per_busy_poll, None);
        assert_eq!(w2.busy_fraction, 1.0, "clamped");
        // Totals weight cycles by packets, not by averaging per-worker figures.
        let (mpps, cpp) = Report::totals(&[w, w2]);
        assert_eq!(mpps, 15.0);
        assert_eq!(cpp, Some(4e9 / 30e6));
    }

    #[test]
    fn latency_percentiles() {
        let mut h = latency_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = Latency::from_histogram(&h, 1_000_000_000);
        assert_eq!(l.samples, 1000);
        let close = |a: f64, b: f64| (a - b).abs() / b < 0.002;
        assert!(close(l.p50_ns, 500_000.0), "{}", l.p50_ns);
        assert!(close(l.p99_ns, 990_000.0), "{}", l.p99_ns);
        assert!(close(l.p999_ns, 999_000.0), "{}", l.p999_ns);
        assert!(close(l.max_ns, 1_000_000.0), "{}", l.max_ns);
        assert_eq!(
            Latency::from_histogram(&latency_histogram(), 1),
            Latency::default()
        );
    }

    fn sample() -> Report {
        let w = WorkerReport::new(1, &snap(100, 90, 10, 10_000, 4), 1.0, 1_000_000);
        let (total_mpps, cycles_per_packet) = Report::totals(std::slice::from_ref(&w));
        Report {
            profile: ProfileSpec {
                kind: ProfileKind::Encap,
                proto: Proto::Udp,
                flows: 10,
                sizes: vec![64, 64, 594],
                tunnels: 2,
                routes: 4,
                paths: 1,
                ecmp: Ecmp::Modulo,
                gre_key: None,
            },
            worker: "pipeline".into(),
            dpdk: "DPDK 22.11".into(),
            hugepages: true,
            tsc_hz: 1_000_000,
            seconds: 1.0,
            workers: vec![w],
            total_mpps,
            cycles_per_packet,
            traffic: TrafficReport::default(),
            latency: Latency::default(),
            drops: [("no_route".to_string(), 3u64)].into_iter().collect(),
            mbufs_in_use_after: 0,
            pool_capacity: 100,
        }
    }

    #[test]
    fn json_has_the_fields_users_script_against() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["profile"]["kind"], "encap");
        assert_eq!(v["worker"], "pipeline");
        assert_eq!(v["profile"]["ecmp"], "modulo");
        assert_eq!(v["profile"]["sizes"][2], 594);
        assert_eq!(v["workers"][0]["lcore"], 1);
        assert_eq!(v["workers"][0]["cycles_per_packet"], 100.0);
        assert_eq!(v["cycles_per_packet"], 100.0);
        assert_eq!(v["drops"]["no_route"], 3);
        assert_eq!(v["mbufs_in_use_after"], 0);
        assert!(v["latency"]["p999_ns"].is_number());
        assert!(v["traffic"]["received_gbps"].is_number());
    }

    #[test]
    fn text_summary() {
        let t = sample().to_text();
        assert!(t.contains("cycles/pkt 100.0"), "{t}");
        assert!(t.contains("pkts/busy-poll 25.0"), "{t}");
        assert!(t.contains("drop      no_route"), "{t}");
        assert!(t.contains("[\"64x2\", \"594\"]"), "{t}");
        assert_eq!(compact_sizes(&[]), Vec::<String>::new());
    }
}
