//! The appliance's run, in the order it happens:
//!
//! 0. Before EAL starts, [`Signals::install`]: from there on SIGINT/SIGTERM only set a flag, which
//!    every stage below looks at, so that a stop requested at any point is clean (exit 0).
//! 1. [`check_workers`]: every configured worker lcore is enabled in EAL and is not the main one;
//!    with an `ipsec` section, the boot epoch is advanced and persisted (or the start refused).
//! 2. [`open_ports`]: every configured port must exist (a vdev that failed to probe is an error,
//!    not zero ports); each is configured and started.
//! 3. [`Ops::start`] (telemetry commands, the Prometheus listener).
//! 4. [`start_io`] or [`start_pipeline`]: everything the workers need is built (in pipeline mode:
//!    the IPsec cryptodev opened, the gateway resolved, the forwarding table published, the
//!    workers with their cipher factories, the control loop with its own), then the worker
//!    lcores are launched, last, so that every step that can fail has run before any worker
//!    polls. From there a [`Workers`] guard stops and joins them on every way out. A signal
//!    while the gateway is being resolved stops the start-up cleanly.
//! 5. [`Running::run_until_stopped`]: the control loop, operations refresh and console
//!    statistics on EAL's main lcore until SIGINT/SIGTERM (or `--exit-when-idle`), or until a
//!    worker's poll loop ends on its own (a panic): the appliance does not run on with a dead
//!    worker.
//! 6. [`Running::stop_and_report`]: workers stopped, ports stopped (flushing pcap output), final
//!    statistics printed, every cipher session freed before the cryptodev closes, and every mbuf
//!    back in the pool; a worker that panicked is an
//!    error (`worker lcore N panicked: ...`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use conduit_packet::esp::runtime::EspRuntime;
use conduit_packet::wire::EthernetAddress;
use control::config::{Config, ForwardMode};
use control::plane::ControlPlane;
use dataplane::crypto::{CryptoDev, CryptoPath};
use dataplane::eal::Eal;
use dataplane::lcore::{JoinError, LcoreId};
use dataplane::mempool::Mempool;
use dataplane::neighbor;
use dataplane::port::{self, MacProgrammed, Port, PortConfig, PortId, RxQueue};
use dataplane::worker::pipeline::{
    ControlTxQueue, PipelineWorker, ProbeQueue, WorkerQueues, PROBE_QUEUE_CAPACITY,
};
use dataplane::worker::{self, IoPath, Workers};

use crate::console::{self, Periodic};
use crate::control_loop::{self, ControlLoop, ProbeTx};
use crate::ops::Ops;
use crate::workers;

/// What the command line adds to the config.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Stop once no packet has been received for this many milliseconds (pcap replay).
    pub exit_when_idle: Option<u64>,
    /// Console statistics interval in milliseconds (0: only the final statistics).
    pub stats_interval: u64,
    /// Test hook (`CONDUIT_TEST_PANIC_WORKER=MS`): the first worker panics this long after its
    /// launch.
    #[doc(hidden)]
    pub panic_worker_after: Option<Duration>,
}

/// How long the gateway's ARP resolution retries, and how often it asks.
const ARP_INTERVAL: Duration = Duration::from_millis(200);
const ARP_TIMEOUT: Duration = Duration::from_secs(5);
/// Name of the packet mempool (DPDK object name, and the `pool` label of its metrics).
const PACKET_POOL: &str = "conduit_pkts";

/// Runs the dataplane `cfg` (read from `path`) until stopped (`signals`, installed before EAL
/// started); the exit code says whether it stopped cleanly (no worker panicked, no mbuf leaked).
pub fn run(
    eal: &Eal,
    path: &Path,
    cfg: &Config,
    opts: &Options,
    signals: &Signals,
) -> Result<ExitCode> {
    let stopped_early = || {
        log::info!("stopping (signal) during start-up, before any worker was launched");
        Ok(ExitCode::SUCCESS)
    };
    if signals.stop_requested() {
        return stopped_early();
    }
    let lcores = check_workers(eal, cfg)?;
    let boot_epoch = boot_epoch(cfg)?;
    let ids = cfg
        .dataplane
        .ports
        .iter()
        .map(|p| port::find_port(&p.device))
        .collect::<Result<Vec<_>, _>>()?;
    let pool = Arc::new(workers::packet_pool(PACKET_POOL, cfg.pool_size(), cfg)?);
    let (mut ports, probe_path) =
        open_ports(cfg, &ids, lcores.len() as u16, probing(cfg, opts), &pool)?;
    if signals.stop_requested() {
        return stopped_early();
    }
    let ops = Ops::start(cfg, path)?;
    let mut workers = workers::workers(cfg);
    if let Some(after) = opts.panic_worker_after {
        workers.panic_first_worker_after(after);
    }
    let (workers, control, crypto) = match cfg.dataplane.mode {
        ForwardMode::Io => (start_io(cfg, &lcores, &mut ports, workers)?, None, None),
        ForwardMode::Pipeline => {
            let started = start_pipeline(
                eal, path, cfg, boot_epoch, probe_path, &lcores, &mut ports, &pool, signals,
                workers,
            )?;
            let Some(p) = started else {
                return stopped_early();
            };
            (p.workers, Some(p.control), p.crypto)
        }
    };
    let (to_control, requests) = crate::operator::channel();
    if let Err(e) = crate::operator::register(to_control) {
        log::warn!("operator telemetry commands unavailable: {e}");
    }
    let mut control = control;
    match control.as_mut() {
        Some(c) => c.serve(requests),
        // No control loop: the commands answer at once that there is none.
        None => drop(requests),
    }
    let mut running = Running {
        workers,
        control,
        ops,
        ports,
        lcores,
        crypto,
        pool,
    };
    let started = Instant::now();
    let reason = running.run_until_stopped(signals, path, opts);
    let elapsed = started.elapsed();
    log::info!("stopping ({reason}) after {:.3} s", elapsed.as_secs_f64());
    running.stop_and_report(elapsed)
}

/// Why the main loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Signal,
    Idle,
    /// This worker's poll loop ended although nobody asked it to (it panicked).
    WorkerEnded(LcoreId),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Signal => f.write_str("signal"),
            StopReason::Idle => f.write_str("idle"),
            StopReason::WorkerEnded(l) => write!(f, "worker lcore {l} ended"),
        }
    }
}

/// The configured worker lcores, each enabled in EAL and not its main lcore (which runs the
/// control loop).
pub fn check_workers(eal: &Eal, cfg: &Config) -> Result<Vec<LcoreId>> {
    let main_lcore = eal.main_lcore();
    let workers: Vec<LcoreId> = cfg.dataplane.workers.iter().map(|&w| LcoreId(w)).collect();
    for &w in &workers {
        if w == main_lcore {
            bail!("worker {w:?} is EAL's main lcore; the main lcore runs the control loop (give EAL another core with -l)");
        }
        if !eal.lcore_enabled(w) {
            bail!(
                "worker {w:?} is not enabled in EAL (enabled workers: {:?}); add it to -l",
                eal.worker_lcores()
            );
        }
    }
    Ok(workers)
}

/// This start's IPsec boot epoch (`ipsec.state_dir/boot-epoch`, advanced and persisted here,
/// before anything is sent); `None` without an `ipsec` section. An epoch that cannot be
/// persisted stops the start: IVs of this start could repeat those of an earlier one.
fn boot_epoch(cfg: &Config) -> Result<Option<u16>> {
    let Some(ipsec) = &cfg.ipsec else {
        return Ok(None);
    };
    // A missing directory is made (as systemd's StateDirectory would); one that cannot be is
    // reported by the epoch's write below.
    if let Err(e) = std::fs::create_dir_all(&ipsec.state_dir) {
        log::debug!("{}: {e}", ipsec.state_dir.display());
    }
    let epoch = control::ipsec::next_boot_epoch(&ipsec.state_dir)
        .context("IPsec: refusing to start without a persisted boot epoch (ipsec.state_dir must be a writable directory)")?;
    log::info!(
        "IPsec: boot epoch {epoch} ({})",
        ipsec
            .state_dir
            .join(control::ipsec::BOOT_EPOCH_FILE)
            .display()
    );
    Ok(Some(epoch))
}

/// Whether health probes are sent: in pipeline mode when a tunnel has them, except in replay
/// (`--exit-when-idle`): a capture has no customer router to answer probes, and a replay must be
/// deterministic.
fn probing(cfg: &Config, opts: &Options) -> bool {
    cfg.dataplane.mode == ForwardMode::Pipeline
        && opts.exit_when_idle.is_none()
        && cfg.tunnels.iter().any(|t| t.health_check.enabled)
}

/// How health probes leave the control thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbePath {
    /// No health checks (io mode, replay, or no tunnel has them).
    Off,
    /// Through a TX queue of the gateway port that only the control thread uses.
    OwnedQueue,
    /// Through a lock-free queue to the first worker, which sends them on its gateway queue.
    ViaWorker,
}

/// Configures and starts the ports `ids` (in config order) with one queue pair per worker; when
/// `probing`, the gateway port gets one more TX queue for the control thread if the device
/// allows it.
pub fn open_ports(
    cfg: &Config,
    ids: &[PortId],
    nq: u16,
    probing: bool,
    pool: &Mempool,
) -> Result<(Vec<Port>, ProbePath)> {
    let dp = &cfg.dataplane;
    let gw_index = cfg.gateway_port().map(|(i, _)| i);
    let mut probe_path = ProbePath::Off;
    let mut ports = Vec::new();
    for (i, (pc, &id)) in dp.ports.iter().zip(ids).enumerate() {
        let conf = PortConfig {
            rx_queues: nq,
            tx_queues: nq,
            rx_desc: dp.rx_desc,
            tx_desc: dp.tx_desc,
            rss: pc.rss,
            mtu: pc.mtu,
            // io mode forwards whatever arrives, like testpmd; the pipeline lets the NIC filter
            // unicast to its own MAC.
            promiscuous: dp.mode == ForwardMode::Io,
        };
        let mut port = if probing && gw_index == Some(i) {
            let (port, path) = configure_gateway_port(id, &pc.device, conf, pool)?;
            probe_path = path;
            port
        } else {
            Port::configure(id, &pc.device, &conf, pool)
                .with_context(|| format!("configuring port {}", pc.device))?
        };
        if let Some(mac) = pc.mac {
            program_mac(&mut port, &pc.device, mac);
        }
        port.start()
            .with_context(|| format!("starting port {}", pc.device))?;
        let link = port.link()?;
        let device_mac = port.mac().unwrap_or_default();
        let mac = pc.mac.unwrap_or(device_mac);
        log::info!(
            "{:?} {} ({}): {} queue pairs, link {} {} Mbps, mac {mac}{}",
            id,
            pc.device,
            port.info().driver,
            nq,
            if link.up { "up" } else { "down" },
            link.speed_mbps,
            if mac == device_mac {
                String::new()
            } else {
                format!(" (device {device_mac})")
            }
        );
        ports.push(port);
    }
    Ok((ports, probe_path))
}

/// Puts a port's configured MAC into its device (docs/behaviour.md §8). The pipeline sends from
/// the configured MAC whatever the device says; a device that cannot take it (net_pcap's MAC is
/// fixed) is made promiscuous, so that frames to the configured MAC still arrive.
fn program_mac(port: &mut Port, device: &str, mac: EthernetAddress) {
    match port.set_mac(mac) {
        MacProgrammed::Default => log::info!("{device}: mac set to {mac}"),
        MacProgrammed::Added => {
            log::info!(
                "{device}: mac {mac} added beside the device's own (the default cannot change)"
            )
        }
        MacProgrammed::Refused(e) => {
            port.set_promiscuous();
            log::warn!(
                "{device}: the device keeps its own mac ({e}); frames are sent from {mac} all the same, and the port is promiscuous to receive for it"
            );
        }
    }
}

/// The MAC every port sends from: the configured one, else the device's (config order).
fn port_macs(cfg: &Config, ports: &[Port]) -> Result<Vec<EthernetAddress>> {
    ports
        .iter()
        .zip(&cfg.dataplane.ports)
        .map(|(p, pc)| Ok(pc.mac.map_or_else(|| p.mac(), Ok)?))
        .collect()
}

/// Configures the gateway port with one more TX queue, which only the control thread uses for
/// the probes; on a device that refuses it, with the workers' queues only.
fn configure_gateway_port(
    id: PortId,
    device: &str,
    conf: PortConfig,
    pool: &Mempool,
) -> Result<(Port, ProbePath)> {
    let with_control = PortConfig {
        tx_queues: conf.tx_queues + 1,
        ..conf
    };
    match Port::configure(id, device, &with_control, pool) {
        Ok(port) => Ok((port, ProbePath::OwnedQueue)),
        Err(e) => {
            // net_tap and net_af_packet need as many RX as TX queues, and an extra RX queue
            // nobody polls would lose packets: hand the probes to worker 0 instead.
            log::info!(
                "{device}: no TX queue for the control thread ({e}); probes go out through the first worker's queue"
            );
            let port = Port::configure(id, device, &conf, pool)
                .with_context(|| format!("configuring port {device}"))?;
            Ok((port, ProbePath::ViaWorker))
        }
    }
}

/// SIGINT/SIGTERM (stop) and SIGHUP (reload), as flags the main loop polls.
pub struct Signals {
    stop: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
}

impl Signals {
    pub fn install() -> Result<Signals> {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))
                .context("installing signal handlers")?;
        }
        let hangup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))
            .context("installing signal handlers")?;
        Ok(Signals { stop, hangup })
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether SIGHUP came since the last call.
    fn take_hangup(&self) -> bool {
        self.hangup.swap(false, Ordering::Relaxed)
    }
}

/// io mode: worker q forwards queue q of each port to queue q of its paired port; launched
/// into `workers`.
pub fn start_io(
    cfg: &Config,
    lcores: &[LcoreId],
    ports: &mut [Port],
    mut workers: Workers,
) -> Result<Workers> {
    let n = ports.len();
    let paths: Vec<Vec<IoPath>> = (0..lcores.len() as u16)
        .map(|q| {
            (0..n)
                .map(|i| IoPath {
                    rx: ports[i].take_rx_queue(q).expect("each queue taken once"),
                    tx: ports[worker::paired_port(i, n)]
                        .take_tx_queue(q)
                        .expect("each queue taken once"),
                })
                .collect()
        })
        .collect();
    for (&lcore_id, paths) in lcores.iter().zip(paths) {
        log::info!(
            "{lcore_id:?}: io forwarding {:?}",
            worker::describe_paths(&paths)
        );
        workers
            .launch_io(lcore_id, paths, cfg.dataplane.burst as usize)
            .with_context(|| format!("launching the worker on {lcore_id:?}"))?;
    }
    Ok(workers)
}

/// Every worker's queues: worker q gets queue q of every port.
fn take_queues(ports: &mut [Port], workers: usize) -> Vec<WorkerQueues> {
    (0..workers as u16)
        .map(|q| WorkerQueues {
            rx: ports
                .iter_mut()
                .map(|p| p.take_rx_queue(q).expect("once"))
                .collect(),
            tx: ports
                .iter_mut()
                .map(|p| p.take_tx_queue(q).expect("once"))
                .collect(),
        })
        .collect()
}

/// The gateway's MAC: configured, or asked by ARP on the gateway port (before any worker polls
/// it; the request goes out on the first worker's queue, the answer is looked for on every
/// worker's); `None` when SIGINT/SIGTERM came while waiting for the answer.
fn resolve_gateway(
    cfg: &Config,
    queues: &mut [WorkerQueues],
    gw_index: usize,
    our_mac: EthernetAddress,
    pool: &Mempool,
    signals: &Signals,
) -> Result<Option<EthernetAddress>> {
    if let Some(mac) = control::tables::static_gateway_mac(cfg) {
        return Ok(Some(mac));
    }
    let (gw_ip, our_ip) = control::tables::gateway_arp_addresses(cfg)
        .context("without gateway.mac the gateway port needs an ipv4 address")?;
    log::info!(
        "resolving gateway {gw_ip} by ARP from {our_ip} (up to {} s)",
        ARP_TIMEOUT.as_secs()
    );
    // One request per round, each round as long as the interval between requests: the stop
    // flag is looked at between rounds, so a signal is obeyed within one interval.
    let start = Instant::now();
    let mut requests_sent = 0;
    while start.elapsed() < ARP_TIMEOUT {
        if signals.stop_requested() {
            return Ok(None);
        }
        let (first, rest) = queues
            .split_first_mut()
            .context("the appliance has at least one worker")?;
        let mut rx: Vec<&mut RxQueue> = std::iter::once(&mut first.rx[gw_index])
            .chain(rest.iter_mut().map(|q| &mut q.rx[gw_index]))
            .collect();
        let res = neighbor::resolve(
            &mut rx,
            &mut first.tx[gw_index],
            pool,
            neighbor::ArpQuery {
                our_mac,
                our_ip,
                target: gw_ip,
                interval: ARP_INTERVAL,
                timeout: ARP_INTERVAL.min(ARP_TIMEOUT.saturating_sub(start.elapsed())),
            },
        );
        requests_sent += res.requests_sent;
        if let Some(mac) = res.mac {
            log::info!("gateway {gw_ip} is at {mac} (ARP)");
            return Ok(Some(mac));
        }
    }
    if signals.stop_requested() {
        return Ok(None);
    }
    bail!(
        "gateway {gw_ip} did not answer {requests_sent} ARP requests from {our_ip} within {} s; set gateway.mac to configure it statically",
        ARP_TIMEOUT.as_secs()
    )
}

/// pipeline mode: resolves the gateway, builds and publishes the forwarding table, builds the
/// workers and the control loop (which owns the publication and the probe TX path), then
/// launches the workers into `workers`. `None` when a signal stopped the gateway's resolution.
#[allow(clippy::too_many_arguments)]
pub fn start_pipeline(
    eal: &Eal,
    path: &Path,
    cfg: &Config,
    boot_epoch: Option<u16>,
    probe_path: ProbePath,
    lcores: &[LcoreId],
    ports: &mut [Port],
    pool: &Arc<Mempool>,
    signals: &Signals,
    mut workers: Workers,
) -> Result<Option<StartedPipeline>> {
    let macs = port_macs(cfg, ports)?;
    let crypto = workers::esp_factories(eal, cfg)?;
    if let (Some(f), Some(ipsec)) = (&crypto, &cfg.ipsec) {
        log::info!(
            "IPsec: ESP sealed and opened by cryptodev {} ({}: {}), one queue pair per worker and one for the control thread; instance id {}, boot epoch {}",
            f.device.name(),
            f.control.path().as_str(),
            match f.control.path() {
                CryptoPath::CpuCrypto => "CPU crypto, synchronous on each worker's core",
                CryptoPath::Lookaside => "lookaside, one op at a time on each worker's queue pair",
            },
            ipsec.instance_id.map_or("unset".to_string(), |i| i.to_string()),
            boot_epoch.map_or("none".to_string(), |e| e.to_string()),
        );
    }
    let (gw_index, _) = cfg
        .gateway_port()
        .context("pipeline mode needs a gateway (checked by the config)")?;
    let mut queues = take_queues(ports, lcores.len());
    let Some(gateway_mac) =
        resolve_gateway(cfg, &mut queues, gw_index, macs[gw_index], pool, signals)?
    else {
        return Ok(None);
    };
    let (plane, readers) = ControlPlane::with_boot_epoch(
        path,
        cfg.clone(),
        macs,
        gateway_mac,
        lcores.len(),
        workers::tunnel_capacity(cfg),
        control_loop::fresh_now(),
        boot_epoch,
    )?;
    let stats = plane.context().table().stats();
    log::info!(
        "forwarding table: {} tunnels ({} health-checked), {} prefixes, {} ECMP groups, {} KiB; gateway {} via port {}",
        cfg.tunnels.len(),
        plane.tunnels().iter().filter(|t| t.checked()).count(),
        stats.prefixes,
        stats.groups,
        stats.memory_bytes / 1024,
        gateway_mac,
        gw_index
    );
    let config = workers::worker_config(cfg, eal.tsc_hz());
    let worker_probe_tx = (probe_path == ProbePath::ViaWorker)
        .then(|| Arc::new(ControlTxQueue::new(PROBE_QUEUE_CAPACITY)));
    let (device, mut worker_ciphers, control_cipher) = match crypto {
        Some(f) => (
            Some(f.device),
            f.workers.into_iter().map(Some).collect(),
            Some(f.control),
        ),
        None => (None, Vec::new(), None),
    };
    worker_ciphers.resize_with(lcores.len(), || None);
    let mut built = Vec::new();
    let mut probe_queues = Vec::new();
    for (q, ((queues, reader), cipher)) in queues
        .into_iter()
        .zip(readers)
        .zip(worker_ciphers)
        .enumerate()
    {
        let probes = Arc::new(ProbeQueue::new(PROBE_QUEUE_CAPACITY));
        probe_queues.push(Arc::clone(&probes));
        let mut w = workers::pipeline_worker(&config, q, queues, reader, Arc::clone(pool), cipher)
            .with_probe_queue(probes);
        if q == 0 {
            if let Some(tx) = &worker_probe_tx {
                w = w.with_control_tx(Arc::clone(tx), gw_index as u16);
            }
        }
        built.push(w);
    }
    if built.len() != lcores.len() {
        bail!("one reader per worker");
    }
    let traces = built.iter().map(PipelineWorker::trace).collect();
    if let Err(e) = crate::trace::register(traces, lcores.to_vec()) {
        log::warn!("packet trace telemetry commands unavailable: {e}");
    }
    let control_tx = match probe_path {
        ProbePath::OwnedQueue => Some(ProbeTx::Owned(
            ports[gw_index]
                .take_tx_queue(lcores.len() as u16)
                .context("the control thread's TX queue")?,
        )),
        ProbePath::ViaWorker => worker_probe_tx.map(ProbeTx::ViaWorker),
        ProbePath::Off => {
            log::info!(
                "health checks off (replay, or no tunnel has them): every tunnel counts as healthy"
            );
            None
        }
    };
    // The control thread seals the IPsec tunnels' probes on its own queue pair, counting as
    // the writer after the workers.
    let mut control_state = config.control_state();
    if let Some(f) = control_cipher {
        control_state.set_esp(EspRuntime::new(plane.sa_writer(), Box::new(f)));
    }
    let control = ControlLoop::new(
        plane,
        probe_queues,
        control_tx,
        Arc::clone(pool),
        control_state,
        config.tsc_hz,
    );
    for (w, &lcore_id) in built.into_iter().zip(lcores) {
        log::info!("{lcore_id:?}: pipeline over {} ports", ports.len());
        workers
            .launch_pipeline(lcore_id, w)
            .with_context(|| format!("launching the worker on {lcore_id:?}"))?;
    }
    Ok(Some(StartedPipeline {
        workers,
        control,
        crypto: device,
    }))
}

/// What [`start_pipeline`] started.
pub struct StartedPipeline {
    pub workers: Workers,
    pub control: ControlLoop,
    /// The IPsec cryptodev, with an `ipsec` section: closed after the workers and the control
    /// loop freed their sessions.
    pub crypto: Option<Arc<CryptoDev>>,
}

/// A running dataplane. Fields drop in order: on an early way out the workers stop first
/// (freeing their cipher sessions), the cryptodev closes after the control loop's sessions, and
/// the pool goes last, after everything holding its mbufs.
pub struct Running {
    pub workers: Workers,
    pub control: Option<ControlLoop>,
    pub ops: Ops,
    pub ports: Vec<Port>,
    pub lcores: Vec<LcoreId>,
    /// The IPsec cryptodev (pipeline mode with an `ipsec` section).
    pub crypto: Option<Arc<CryptoDev>>,
    pub pool: Arc<Mempool>,
}

impl Running {
    /// Runs the control loop, operations refresh and console statistics until a signal (or,
    /// with `exit_when_idle`, until no packet has arrived for that long, or until a worker's
    /// poll loop ends on its own); returns why it stopped.
    pub fn run_until_stopped(
        &mut self,
        signals: &Signals,
        path: &Path,
        opts: &Options,
    ) -> StopReason {
        let mut periodic = Periodic::new(opts.stats_interval, &self.ports, self.workers.counters());
        let mut idle = opts
            .exit_when_idle
            .map(|ms| IdleWatch::new(Duration::from_millis(ms)));
        // The control loop turns every millisecond: probe timing and swap-to-effect latency are
        // measured at that resolution.
        let tick = Duration::from_millis(if self.control.is_some() { 1 } else { 5 });
        loop {
            std::thread::sleep(tick);
            if signals.stop_requested() {
                return StopReason::Signal;
            }
            if let Some(lcore) = self.workers.finished_early() {
                return StopReason::WorkerEnded(lcore);
            }
            let now = Instant::now();
            self.turn_control(signals.take_hangup(), path);
            let counters = self.workers.counters();
            self.ops.maybe_refresh(
                now,
                &self.ports,
                (PACKET_POOL, &self.pool),
                counters,
                &self.lcores,
                self.control.as_ref(),
            );
            if let Some(idle) = idle.as_mut() {
                if idle.is_idle(now, console::sum(counters).rx_packets) {
                    return StopReason::Idle;
                }
            }
            periodic.maybe_print(now, &self.ports, counters);
        }
    }

    /// One control-loop turn (pipeline mode), starting a reload first after SIGHUP.
    fn turn_control(&mut self, hangup: bool, path: &Path) {
        match self.control.as_mut() {
            Some(c) => {
                let t = control_loop::fresh_now();
                if hangup {
                    log::info!("SIGHUP: reloading {}", path.display());
                    c.request_reload();
                }
                c.turn(t);
            }
            None if hangup => log::warn!("SIGHUP ignored: io mode has no table to reload"),
            None => {}
        }
    }

    /// Stops the workers and the ports, prints the final statistics and checks that every mbuf
    /// came back; an error if a worker panicked (or ended on its own), failure if mbufs leaked.
    pub fn stop_and_report(self, elapsed: Duration) -> Result<ExitCode> {
        let Running {
            mut workers,
            control,
            ops,
            mut ports,
            lcores,
            crypto,
            pool,
        } = self;
        ops.stop();
        let mut failed = false;
        let ended_early = workers.finished_early();
        let mut worker_errors: Vec<String> = workers
            .stop()
            .into_iter()
            .map(|e| match e {
                JoinError::Panicked { lcore, message } => {
                    format!("worker lcore {lcore} panicked: {message}")
                }
            })
            .collect();
        if let (Some(lcore), true) = (ended_early, worker_errors.is_empty()) {
            worker_errors.push(format!("worker lcore {lcore} stopped on its own"));
        }
        for p in ports.iter_mut() {
            if let Err(e) = p.stop() {
                log::warn!("{}: {e}", p.name());
            }
        }
        let tunnel_names: Vec<String> = match &control {
            None => Vec::new(),
            Some(c) => c.plane.tunnels().iter().map(|t| t.name.clone()).collect(),
        };
        console::print_final(&ports, workers.counters(), &lcores, &tunnel_names, elapsed);
        if let Some(c) = &control {
            console::print_control(c);
        }
        // The control loop's TX queue and mbufs go before the leak check.
        drop(control);
        // The workers (joined) and the control loop freed their sessions: the device closes
        // now, before EAL's cleanup.
        if let Some(dev) = crypto {
            if !all_sessions_freed(&dev) {
                failed = true;
            }
            drop(dev);
        }
        // Closing the ports returns the mbufs parked in their descriptor rings; anything still
        // out after that is a leak.
        drop(ports);
        if !all_mbufs_back(&pool) {
            failed = true;
        }
        drop(pool);
        if !worker_errors.is_empty() {
            bail!("{}", worker_errors.join("; "));
        }
        Ok(if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// Prints how many cipher sessions are still allocated on `dev`; true when none is.
fn all_sessions_freed(dev: &CryptoDev) -> bool {
    let in_use = dev.sessions_in_use();
    println!("crypto sessions in use after shutdown: {in_use}");
    if in_use != 0 {
        log::error!("{in_use} crypto sessions of {} leaked", dev.name());
    }
    in_use == 0
}

/// Prints how many mbufs are still out; true when none is.
fn all_mbufs_back(pool: &Mempool) -> bool {
    let in_use = pool.in_use_count();
    println!(
        "mbufs in use after shutdown: {in_use} of {}",
        pool.capacity()
    );
    if in_use != 0 {
        log::error!("{in_use} mbufs leaked");
    }
    in_use == 0
}

/// `--exit-when-idle`: notices when the received-packet count has not moved for a while.
struct IdleWatch {
    after: Duration,
    last_rx: u64,
    last_change: Instant,
}

impl IdleWatch {
    fn new(after: Duration) -> Self {
        IdleWatch {
            after,
            last_rx: 0,
            last_change: Instant::now(),
        }
    }

    fn is_idle(&mut self, now: Instant, rx_packets: u64) -> bool {
        if rx_packets != self.last_rx {
            self.last_rx = rx_packets;
            self.last_change = now;
            false
        } else {
            now.duration_since(self.last_change) >= self.after
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IdleWatch;
    use std::time::{Duration, Instant};

    #[test]
    fn idle_once_the_count_stops_moving_for_long_enough() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut w = IdleWatch::new(Duration::from_millis(100));
        assert!(!w.is_idle(ms(10), 5));
        assert!(!w.is_idle(ms(100), 5));
        assert!(!w.is_idle(ms(105), 6), "it moved");
        assert!(!w.is_idle(ms(200), 6));
        assert!(w.is_idle(ms(205), 6));
    }
}
