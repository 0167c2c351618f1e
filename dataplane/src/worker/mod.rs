//! Per-core poll loops.
//!
//! Each worker lcore owns one RX/TX queue pair on every port and polls them in turn, in bursts,
//! until told to stop. The loop reads the stop flag once per pass over its ports, never blocks,
//! never allocates and never logs; everything it has to say goes into its [`CoreCounters`].
//!
//! [`run_io`] is testpmd's `io` mode: packets received on a port leave unchanged on
//! its peer port (ports paired 0↔1, 2↔3, ...; an odd last port sends back out of itself). It is
//! kept as a diagnostic mode: it shows what the ports and the loop cost without the pipeline.

pub mod pipeline;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::eal::rdtsc;
use crate::error::Result;
use crate::lcore::{self, JoinError, LcoreId};
use crate::mbuf::{Burst, MAX_BURST};
use crate::port::{PortId, RxQueue, TxQueue};
use conduit_packet::stats::CoreCounters;
use pipeline::{PipelineCounters, PipelineWorker};

/// The running worker lcores, their stop flag and their counters. Dropping it stops and joins
/// them, so that no way out of the main loop (an error, a panic) leaves workers polling.
#[derive(Debug)]
pub struct Workers {
    stop: Arc<AtomicBool>,
    counters: Arc<Vec<PipelineCounters>>,
    handles: Vec<lcore::JoinHandle<()>>,
    panic_first_after: Option<Duration>,
}

impl Workers {
    /// Room for `workers` workers, each with counters for `tunnels` tunnel ids.
    pub fn new(workers: usize, tunnels: usize) -> Self {
        Workers {
            stop: Arc::new(AtomicBool::new(false)),
            counters: Arc::new(
                (0..workers)
                    .map(|_| PipelineCounters::new(tunnels))
                    .collect(),
            ),
            handles: Vec::new(),
            panic_first_after: None,
        }
    }

    /// Test hook: the first worker launched panics `after` its launch, before it polls (so the
    /// poll loop itself carries no check). Lets tests provoke a worker that dies after start.
    #[doc(hidden)]
    pub fn panic_first_worker_after(&mut self, after: Duration) {
        self.panic_first_after = Some(after);
    }

    /// The first worker whose poll loop has ended (returned or panicked) although nobody asked
    /// it to stop; never blocks.
    pub fn finished_early(&self) -> Option<LcoreId> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        self.handles
            .iter()
            .find(|h| h.is_finished())
            .map(|h| h.lcore())
    }

    /// Every worker's counters, in launch order (summed on read).
    pub fn counters(&self) -> &[PipelineCounters] {
        &self.counters
    }

    /// Launches the next worker on `lcore`: `run` polls until the stop flag is set, counting into
    /// the worker's counters.
    pub fn launch<F>(&mut self, lcore: LcoreId, run: F) -> Result<()>
    where
        F: FnOnce(&AtomicBool, &PipelineCounters) + Send + 'static,
    {
        let q = self.handles.len();
        assert!(
            q < self.counters.len(),
            "more workers launched than counted"
        );
        let stop = Arc::clone(&self.stop);
        let counters = Arc::clone(&self.counters);
        let panic_after = self.panic_first_after.filter(|_| q == 0);
        let handle = lcore::launch(lcore, move || {
            if let Some(after) = panic_after {
                std::thread::sleep(after);
                panic!("test-induced panic (CONDUIT_TEST_PANIC_WORKER)");
            }
            run(&stop, &counters[q])
        })?;
        self.handles.push(handle);
        Ok(())
    }

    /// Launches a pipeline worker on `lcore`.
    pub fn launch_pipeline(&mut self, lcore: LcoreId, mut worker: PipelineWorker) -> Result<()> {
        self.launch(lcore, move |stop, counters| worker.run(stop, counters))
    }

    /// Launches an io-forwarding worker (see [`run_io`]) on `lcore`.
    pub fn launch_io(
        &mut self,
        lcore: LcoreId,
        mut paths: Vec<IoPath>,
        burst: usize,
    ) -> Result<()> {
        self.launch(lcore, move |stop, counters| {
            run_io(&mut paths, burst, stop, &counters.core)
        })
    }

    /// Stops every worker and waits for it; returns the workers that panicked.
    pub fn stop(&mut self) -> Vec<JoinError> {
        self.stop.store(true, Ordering::Relaxed);
        self.handles
            .drain(..)
            .filter_map(|h| h.join().err())
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for e in self.stop() {
            log::error!("worker: {e}");
        }
    }
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
