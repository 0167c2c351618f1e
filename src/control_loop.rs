//! The control thread's I/O in pipeline mode, run on EAL's main lcore: sends the health probes
//! that the [`ControlPlane`] asks for through a TX queue of the gateway port that only this
//! thread uses, drains the probe replies that the workers queue, turns state changes and
//! reloads into published tables, and measures swap-to-effect latency.
//!
//! Nothing here is on the packet path: probes are a few per tunnel and interval, built in pool
//! mbufs and sent in one burst per turn. An IPsec tunnel's probes are sealed as ESP by the same
//! `encapsulate` as the workers' traffic, with the control thread's own cipher factory (a
//! cryptodev queue pair of its own, installed in its `WorkerState` by the appliance).

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conduit_packet::pipeline::{encapsulate, write_probe, WorkerState, PROBE_PACKET_LEN};
use conduit_packet::stats::Counter;
use control::config::{Config, ConfigError};
use control::health::Timestamp;
use control::heartbeat::Heartbeat;
use control::plane::{ControlPlane, ProbeToSend};
use dataplane::eal::rdtsc;
use dataplane::mbuf::Burst;
use dataplane::mempool::Mempool;
use dataplane::port::TxQueue;
use dataplane::worker::pipeline::{ControlTxQueue, ProbeQueue};

use crate::operator::{self, Pending};

/// The control loop's clock: monotonic nanoseconds since the first call.
pub fn fresh_now() -> Timestamp {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    Timestamp::from_duration(start.elapsed())
}

/// `ticks` of a TSC running at `hz`.
fn ticks_to_duration(ticks: u64, hz: u64) -> Duration {
    Duration::from_nanos(
        u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(hz.max(1)))
            .unwrap_or(u64::MAX),
    )
}

/// How long a turn waits on its own publication to take effect before leaving it to later turns.
const SWAP_WATCH: Duration = Duration::from_millis(2);

/// Counters of the control loop's own I/O.
#[derive(Debug, Default)]
pub struct ControlCounters {
    pub probes_sent: Counter,
    /// Probes that could not be built (pool empty, no SA for an IPsec tunnel, ...).
    pub probes_unbuildable: Counter,
    /// Probes the TX queue refused.
    pub probes_tx_dropped: Counter,
    pub replies: Counter,
}

/// Why a reload produced no configuration.
#[derive(Debug)]
pub enum ReloadError {
    /// The file could not be read or is not a valid configuration.
    Config(ConfigError),
    /// The thread reading the file ended without an answer (it panicked).
    ReaderDied,
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Config(e) => e.fmt(f),
            ReloadError::ReaderDied => f.write_str("the reload reader thread died"),
        }
    }
}

impl std::error::Error for ReloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReloadError::Config(e) => e.source(),
            ReloadError::ReaderDied => None,
        }
    }
}

/// How probes leave.
pub enum ProbeTx {
    /// A TX queue of the gateway port that only the control thread uses.
    Owned(TxQueue),
    /// Handed to a worker, which sends them on its gateway TX queue (see [`ControlTxQueue`]).
    ViaWorker(Arc<ControlTxQueue>),
}

pub struct ControlLoop {
    pub plane: ControlPlane,
    queues: Vec<Arc<ProbeQueue>>,
    /// `None`: health checks are off (no probes are sent, every tunnel stays healthy).
    tx: Option<ProbeTx>,
    pool: Arc<Mempool>,
    state: WorkerState,
    tsc_hz: u64,
    probes: Vec<ProbeToSend>,
    burst: Burst,
    pub counters: ControlCounters,
    /// A reload being read on its helper thread.
    reloading: Option<std::sync::mpsc::Receiver<Result<Config, ReloadError>>>,
    reload_again: bool,
    /// Turns, the latest one and stalls (docs/operations.md).
    pub heartbeat: Heartbeat,
    /// Operator requests from the telemetry commands ([`crate::operator`]).
    requests: Option<Receiver<Pending>>,
}

impl ControlLoop {
    pub fn new(
        plane: ControlPlane,
        queues: Vec<Arc<ProbeQueue>>,
        tx: Option<ProbeTx>,
        pool: Arc<Mempool>,
        state: WorkerState,
        tsc_hz: u64,
    ) -> Self {
        ControlLoop {
            plane: plane.with_publish_clock(fresh_now),
            queues,
            tx,
            pool,
            state,
            tsc_hz,
            probes: Vec::new(),
            burst: Burst::new(),
            counters: ControlCounters::default(),
            reloading: None,
            reload_again: false,
            heartbeat: Heartbeat::default(),
            requests: None,
        }
    }

    /// Answers the operator requests that arrive on `requests` at each turn.
    pub fn serve(&mut self, requests: Receiver<Pending>) {
        self.requests = Some(requests);
    }

    /// One turn at `now`: replies in, probes out, state changes published.
    pub fn turn(&mut self, now: Timestamp) {
        if let Some(gap) = self.heartbeat.beat(now) {
            log::warn!(
                "control loop stalled: {} ms since its previous turn; probes, timeouts and failover were late by as much",
                gap.as_millis()
            );
        }
        let tsc_now = rdtsc();
        for q in &self.queues {
            while let Some(reply) = q.pop() {
                self.counters.replies.add(1);
                // Dated when the worker received it, not when this turn drains it: a turn that
                // comes late (a busy core, a reload being applied) does not make replies late.
                let age = ticks_to_duration(tsc_now.saturating_sub(reply.rx_tsc), self.tsc_hz);
                let at = Timestamp::from_nanos(
                    now.as_nanos()
                        .saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX)),
                );
                // The probe carries our send TSC, authenticated by the plane before it asks: a
                // precise RTT when it is plausible (TSCs of two cores may differ slightly).
                let (rx_tsc, hz) = (reply.rx_tsc, self.tsc_hz);
                let rtt = move |sent_tsc: u64| {
                    (sent_tsc != 0 && rx_tsc >= sent_tsc && sent_tsc <= tsc_now)
                        .then(|| ticks_to_duration(rx_tsc - sent_tsc, hz))
                };
                self.plane.on_reply(&reply, at, rtt);
            }
        }
        self.finish_reload(now);
        if self.tx.is_some() {
            self.probes.clear();
            self.plane.poll_probes(now, &mut self.probes);
            if !self.probes.is_empty() {
                self.send_probes();
            }
        }
        if let Some(rx) = &self.requests {
            operator::serve(rx, &mut self.plane, now);
        }
        match self.plane.update(now) {
            Ok(Some(g)) => log::debug!("forwarding context generation {g} published"),
            Ok(None) => {}
            Err(e) => log::error!("{e}"),
        }
        self.watch_swap();
    }

    /// After a publication, spins (on this thread, up to [`SWAP_WATCH`]) until every worker has
    /// read the new table, so that swap-to-effect latency is measured at TSC resolution rather
    /// than at the loop's tick; a longer one is finished by later turns.
    fn watch_swap(&mut self) {
        let start = Instant::now();
        while self.plane.swap_pending() {
            // A fresh reading: the turn's own work (probes, the table build) is not swap latency.
            if let Some(d) = self.plane.track_swap(fresh_now()) {
                log::debug!("swap to effect: {} us", d.as_micros());
                return;
            }
            if start.elapsed() >= SWAP_WATCH {
                return;
            }
            std::hint::spin_loop();
        }
    }

    fn send_probes(&mut self) {
        for i in 0..self.probes.len() {
            let p = self.probes[i];
            let Some(mut m) = self.pool.alloc() else {
                self.counters.probes_unbuildable.add(1);
                continue;
            };
            let ctx = self.plane.context();
            let ident = self.state.next_ident();
            let written = m.append(PROBE_PACKET_LEN as u16).and_then(|buf| {
                write_probe(
                    buf,
                    &p.spec,
                    self.plane.probe_key(),
                    ctx.probe_ident(),
                    ident,
                    p.tunnel,
                    p.seq,
                    rdtsc(),
                )
            });
            let ok =
                written.is_some() && encapsulate(ctx, p.tunnel, &mut m, &mut self.state).is_ok();
            if !ok {
                self.counters.probes_unbuildable.add(1);
                continue; // `m` is freed here
            }
            if let Err(m) = self.burst.push(m) {
                self.counters.probes_tx_dropped.add(1);
                drop(m);
            }
        }
        match self.tx.as_mut() {
            Some(ProbeTx::Owned(tx)) => {
                let sent = tx.tx_burst(&mut self.burst);
                self.counters.probes_sent.add(sent as u64);
            }
            Some(ProbeTx::ViaWorker(q)) => {
                for m in self.burst.drain() {
                    match q.push(m) {
                        Ok(()) => self.counters.probes_sent.add(1),
                        Err(m) => {
                            self.counters.probes_tx_dropped.add(1);
                            drop(m);
                        }
                    }
                }
            }
            None => {}
        }
        if !self.burst.is_empty() {
            self.counters.probes_tx_dropped.add(self.burst.len() as u64);
            self.burst.clear();
        }
    }

    /// Starts reloading the configuration file (SIGHUP): it is read and parsed on a helper
    /// thread, so that a large file does not stall probing; [`turn`](Self::turn) applies it when
    /// it is ready. A SIGHUP while a reload is being read is followed by one more read once the
    /// current one finishes, so the last signal always sees the file's latest content.
    pub fn request_reload(&mut self) {
        if self.reloading.is_some() {
            self.reload_again = true;
            return;
        }
        let path = self.plane.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("conduit-reload".into())
            .spawn(move || {
                let _ = tx.send(Config::load(&path).map_err(ReloadError::Config));
            });
        match spawned {
            Ok(_) => self.reloading = Some(rx),
            Err(e) => log::error!("reload: cannot start the reader thread: {e}"),
        }
    }

    fn finish_reload(&mut self, now: Timestamp) {
        let Some(rx) = &self.reloading else {
            return;
        };
        let loaded = match rx.try_recv() {
            Ok(loaded) => loaded,
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(ReloadError::ReaderDied),
        };
        self.reloading = None;
        // `reload_loaded` logs the outcome either way; it takes the error as its message.
        let _ = self
            .plane
            .reload_loaded(loaded.map_err(|e| e.to_string()), now);
        if std::mem::take(&mut self.reload_again) {
            self.request_reload();
        }
    }
}
