//! Per-core poll loops.
//!
//! Each worker lcore owns one RX/TX queue pair on every port and polls them in turn, in bursts,
//! until told to stop. The loop reads the stop flag once per pass over its ports, never blocks,
//! never allocates and never logs; everything it has to say goes into its [`CoreCounters`].
//!
//! [`ForwardMode::Io`] is testpmd's `io` mode: packets received on a port leave unchanged on
//! its peer port (ports paired 0↔1, 2↔3, ...; an odd last port sends back out of itself). It is
//! kept as a diagnostic mode: it shows what the ports and the loop cost without the pipeline.

pub mod pipeline;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::eal::rdtsc;
use crate::mbuf::{Burst, MAX_BURST};
use crate::port::{PortId, RxQueue, TxQueue};
use conduit_packet::stats::CoreCounters;

/// What a worker does with received packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    /// Forward unchanged to the peer port.
    Io,
}

/// The peer of port index `i` among `n` ports in testpmd's paired topology.
pub fn paired_port(i: usize, n: usize) -> usize {
    if i % 2 == 0 {
        if i + 1 < n {
            i + 1
        } else {
            i
        }
    } else {
        i - 1
    }
}

/// One forwarding path of a worker: where it receives and where it sends what it received.
#[derive(Debug)]
pub struct IoPath {
    pub rx: RxQueue,
    pub tx: TxQueue,
}

/// Runs testpmd-style `io` forwarding over `paths` until `stop` is set.
pub fn run_io(paths: &mut [IoPath], burst_size: usize, stop: &AtomicBool, counters: &CoreCounters) {
    let burst_size = burst_size.clamp(1, MAX_BURST);
    let mut burst = Burst::new();
    // One timestamp per pass over the ports, reused as the next pass's start: a pass that
    // moved packets adds its whole duration to busy cycles (testpmd's --record-core-cycles
    // accounting) for one rdtsc per pass instead of two per poll.
    let mut t_start = rdtsc();
    while !stop.load(Ordering::Relaxed) {
        let mut rx_total = 0usize;
        let mut busy_polls = 0u64;
        for path in paths.iter_mut() {
            let n = path.rx.rx_burst(&mut burst, burst_size);
            if n == 0 {
                continue;
            }
            let sent = path.tx.tx_burst(&mut burst);
            if !burst.is_empty() {
                counters.tx_dropped.add(burst.len() as u64);
                burst.clear();
            }
            rx_total += n;
            busy_polls += 1;
            counters.tx_packets.add(sent as u64);
        }
        counters.polls.add(paths.len() as u64);
        let t_end = rdtsc();
        if rx_total > 0 {
            counters.rx_packets.add(rx_total as u64);
            counters.busy_polls.add(busy_polls);
            counters.busy_cycles.add(t_end.wrapping_sub(t_start));
        }
        t_start = t_end;
    }
}

/// Which ports a worker's paths connect, for display.
pub fn describe_paths(paths: &[IoPath]) -> Vec<(PortId, PortId)> {
    paths.iter().map(|p| (p.rx.port(), p.tx.port())).collect()
}

#[cfg(test)]
mod tests {
    use super::paired_port;

    #[test]
    fn pairing_matches_testpmd() {
        assert_eq!(paired_port(0, 1), 0);
        assert_eq!(paired_port(0, 2), 1);
        assert_eq!(paired_port(1, 2), 0);
        assert_eq!(paired_port(2, 3), 2);
        assert_eq!(paired_port(2, 4), 3);
        assert_eq!(paired_port(3, 4), 2);
    }
}
