//! `conduit`: the appliance.
//!
//! `conduit [EAL args] -- --config FILE [options]`, the DPDK convention: everything before `--`
//! goes to the EAL (`-l`, `--vdev`, `-a`, `--no-huge`, ...), everything after to Conduit. With
//! no `--` at all, every argument is Conduit's (so `conduit --help` and
//! `conduit check-config FILE` need no EAL).
//!
//! Start-up order is chosen so that mistakes surface before anything is touched: the config is
//! read and checked first, then EAL starts, then every configured port must exist (a vdev that
//! failed to probe is an error, not zero ports), then ports start and one poll loop per worker
//! lcore is launched. SIGINT/SIGTERM (or `--exit-when-idle`) stop the workers, the ports are
//! stopped (flushing pcap output) and final per-port and per-core statistics are printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use conduit::control_loop::{self, ControlLoop, ProbeTx};
use conduit_packet::pipeline::{
    DropReason, Reassembler, ReassemblerConfig, TokenBucket, WorkerState,
};
use conduit_packet::stats::CoreSnapshot;
use conduit_packet::wire::EthernetAddress;
use control::config::{Config, ForwardMode};
use control::plane::ControlPlane;
use dataplane::eal::Eal;
use dataplane::lcore::{self, LcoreId};
use dataplane::mempool::{Mempool, DEFAULT_DATA_ROOM};
use dataplane::neighbor;
use dataplane::port::{self, Port, PortConfig, PortStats};
use dataplane::port::{RxQueue, TxQueue};
use dataplane::worker::pipeline::{
    ContextSlot, ControlTxQueue, PipelineCounters, PipelineWorker, ProbeQueue,
};
use dataplane::worker::{self, IoPath};

#[derive(Parser, Debug)]
#[command(
    name = "conduit",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CONDUIT_GIT_REVISION"), ")"),
    about = "DPDK dataplane terminating and steering anycast GRE and IPsec tunnels",
    override_usage = "conduit [EAL args] -- --config FILE [OPTIONS]\n       conduit check-config FILE"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The YAML configuration.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Stop once no packet has been received for this many milliseconds (pcap replay).
    #[arg(long, value_name = "MS")]
    exit_when_idle: Option<u64>,
    /// Override the config's console statistics interval (0 turns periodic output off).
    #[arg(long, value_name = "MS")]
    stats_interval: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a configuration file without starting the dataplane.
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let argv: Vec<String> = std::env::args().collect();
    let (eal_args, app_args) = dataplane::eal::split_args(&argv, "conduit");
    let cli = match Cli::try_parse_from(&app_args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli, eal_args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("conduit: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli, eal_args: Vec<String>) -> Result<ExitCode> {
    if let Some(Command::CheckConfig { file }) = &cli.command {
        let cfg = Config::load(file).map_err(anyhow::Error::msg)?;
        println!(
            "{}: ok ({} ports, {} workers, mode {:?})",
            file.display(),
            cfg.dataplane.ports.len(),
            cfg.dataplane.workers.len(),
            cfg.dataplane.mode
        );
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = cli.config.as_deref() else {
        bail!("no configuration given: conduit [EAL args] -- --config FILE");
    };
    let cfg = Config::load(path).map_err(anyhow::Error::msg)?;
    let stats_interval = cli.stats_interval.unwrap_or(cfg.stats.interval_ms);

    let eal =
        Eal::init(&eal_args).context("EAL initialisation failed (see EAL's messages above)")?;
    log::info!(
        "{} (conduit {}), {} hugepages, TSC {:.2} GHz",
        Eal::version(),
        env!("CARGO_PKG_VERSION"),
        if eal.has_hugepages() {
            "with"
        } else {
            "without"
        },
        eal.tsc_hz() as f64 / 1e9
    );
    let result = run_dataplane(&eal, path, &cfg, cli.exit_when_idle, stats_interval);
    drop(eal);
    result
}

/// A started port with its configured name.
struct ActivePort {
    port: Port,
}

/// How health probes leave the control thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbePath {
    /// No health checks (io mode, replay, or no tunnel has them).
    Off,
    /// Through a TX queue of the gateway port that only the control thread uses.
    OwnedQueue,
    /// Through a lock-free queue to the first worker, which sends them on its gateway queue.
    ViaWorker,
}

/// Tunnel ids the workers' per-tunnel counters cover: room for reloads that add tunnels.
const TUNNEL_COUNTER_CAPACITY: usize = 1024;
/// Probe replies a worker can queue for the control thread between two control-loop turns.
const PROBE_QUEUE_CAPACITY: usize = 1024;

fn run_dataplane(
    eal: &Eal,
    path: &std::path::Path,
    cfg: &Config,
    exit_when_idle: Option<u64>,
    stats_interval: u64,
) -> Result<ExitCode> {
    let dp = &cfg.dataplane;
    let main_lcore = eal.main_lcore();
    let workers: Vec<LcoreId> = dp.workers.iter().map(|&w| LcoreId(w)).collect();
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

    let ids = dp
        .ports
        .iter()
        .map(|p| port::find_port(&p.device))
        .collect::<Result<Vec<_>, _>>()?;

    let pool = Mempool::new(
        "conduit_pkts",
        cfg.pool_size(),
        dp.mbuf_cache,
        DEFAULT_DATA_ROOM,
        -1,
    )
    .context("creating the packet pool")?;

    let nq = workers.len() as u16;
    // Health checks run in pipeline mode, except in replay (`--exit-when-idle`): a capture has no
    // customer router to answer probes, and a replay must be deterministic.
    let probing = dp.mode == ForwardMode::Pipeline
        && exit_when_idle.is_none()
        && cfg.tunnels.iter().any(|t| t.health_check.enabled);
    let gw_index = cfg.gateway_port().map(|(i, _)| i);
    let mut probe_path = ProbePath::Off;
    let mut ports = Vec::new();
    for (i, (pc, &id)) in dp.ports.iter().zip(&ids).enumerate() {
        // The control thread owns one more TX queue on the gateway port, for the probes.
        let control_txq = probing && gw_index == Some(i);
        let conf = PortConfig {
            rx_queues: nq,
            tx_queues: nq + u16::from(control_txq),
            rx_desc: dp.rx_desc,
            tx_desc: dp.tx_desc,
            rss: pc.rss,
            mtu: pc.mtu,
            // io mode forwards whatever arrives, like testpmd; the pipeline lets the NIC filter
            // unicast to its own MAC.
            promiscuous: dp.mode == ForwardMode::Io,
        };
        let mut port = match Port::configure(id, &pc.device, &conf, &pool) {
            Ok(port) => {
                if control_txq {
                    probe_path = ProbePath::OwnedQueue;
                }
                port
            }
            Err(e) if control_txq => {
                // net_tap and net_af_packet need as many RX as TX queues, and an extra RX queue
                // nobody polls would lose packets: hand the probes to worker 0 instead.
                log::info!(
                    "{}: no TX queue for the control thread ({e}); probes go out through the first worker's queue",
                    pc.device
                );
                probe_path = ProbePath::ViaWorker;
                let conf = PortConfig {
                    tx_queues: nq,
                    ..conf
                };
                Port::configure(id, &pc.device, &conf, &pool)
                    .with_context(|| format!("configuring port {}", pc.device))?
            }
            Err(e) => {
                return Err(e).with_context(|| format!("configuring port {}", pc.device));
            }
        };
        port.start()
            .with_context(|| format!("starting port {}", pc.device))?;
        let link = port.link()?;
        log::info!(
            "{:?} {} ({}): {} queue pairs, link {} {} Mbps, mac {}",
            id,
            pc.device,
            port.info().driver,
            nq,
            if link.up { "up" } else { "down" },
            link.speed_mbps,
            port.mac().unwrap_or_default()
        );
        ports.push(ActivePort { port });
    }

    let stop = Arc::new(AtomicBool::new(false));
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&signalled))
            .context("installing signal handlers")?;
    }
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))
        .context("installing signal handlers")?;
    let counters: Arc<Vec<PipelineCounters>> = Arc::new(
        (0..workers.len())
            .map(|_| PipelineCounters::new(cfg.tunnels.len().max(TUNNEL_COUNTER_CAPACITY)))
            .collect(),
    );
    let pool = Arc::new(pool);
    let (handles, mut control) = match dp.mode {
        ForwardMode::Io => (
            launch_io(&workers, &mut ports, dp.burst, &stop, &counters)?,
            None,
        ),
        ForwardMode::Pipeline => {
            let (h, c) = launch_pipeline(
                eal, path, cfg, probe_path, &workers, &mut ports, &pool, &stop, &counters,
            )?;
            (h, Some(c))
        }
    };

    let mut ops = conduit::ops::Ops::start(cfg, path)?;
    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut last_snap = sum(&counters);
    let mut last_port_stats: Vec<PortStats> = ports
        .iter()
        .map(|p| p.port.stats().unwrap_or_default())
        .collect();
    let mut last_rx_total = 0u64;
    let mut last_rx_change = Instant::now();
    // The control loop turns every millisecond: probe timing and swap-to-effect latency are
    // measured at that resolution.
    let tick = Duration::from_millis(if control.is_some() { 1 } else { 5 });
    let reason = loop {
        std::thread::sleep(tick);
        if signalled.load(Ordering::Relaxed) {
            break "signal";
        }
        let now = Instant::now();
        if let Some(c) = control.as_mut() {
            let t = control_loop::fresh_now();
            if hangup.swap(false, Ordering::Relaxed) {
                log::info!("SIGHUP: reloading {}", path.display());
                c.request_reload();
            }
            c.turn(t);
        } else if hangup.swap(false, Ordering::Relaxed) {
            log::warn!("SIGHUP ignored: io mode has no table to reload");
        }
        {
            let port_refs: Vec<&Port> = ports.iter().map(|p| &p.port).collect();
            ops.maybe_refresh(now, &port_refs, &counters, &workers, control.as_ref());
        }
        if let Some(ms) = exit_when_idle {
            let rx = sum(&counters).rx_packets;
            if rx != last_rx_total {
                last_rx_total = rx;
                last_rx_change = now;
            } else if now.duration_since(last_rx_change) >= Duration::from_millis(ms) {
                break "idle";
            }
        }
        if stats_interval > 0
            && now.duration_since(last_print) >= Duration::from_millis(stats_interval)
        {
            let dt = now.duration_since(last_print).as_secs_f64();
            let snap = sum(&counters);
            let d = snap.since(&last_snap);
            for (i, p) in ports.iter().enumerate() {
                let s = p.port.stats().unwrap_or_default();
                let l = &last_port_stats[i];
                println!(
                    "port {} {:<12} rx-pps {:>12.0}  tx-pps {:>12.0}  rx-bps {:>14.0}  tx-bps {:>14.0}  missed {} errors {}/{}",
                    p.port.id(),
                    p.port.name(),
                    (s.ipackets - l.ipackets) as f64 / dt,
                    (s.opackets - l.opackets) as f64 / dt,
                    (s.ibytes - l.ibytes) as f64 * 8.0 / dt,
                    (s.obytes - l.obytes) as f64 * 8.0 / dt,
                    s.imissed,
                    s.ierrors,
                    s.oerrors
                );
                last_port_stats[i] = s;
            }
            println!(
                "workers rx-pps {:>12.0}  tx-pps {:>12.0}  tx-dropped {}  cycles/pkt {}",
                d.rx_packets as f64 / dt,
                d.tx_packets as f64 / dt,
                d.tx_dropped,
                d.cycles_per_packet()
                    .map(|c| format!("{c:.1}"))
                    .unwrap_or_else(|| "-".into())
            );
            last_snap = snap;
            last_print = now;
        }
    };
    let elapsed = started.elapsed();
    log::info!("stopping ({reason}) after {:.3} s", elapsed.as_secs_f64());
    ops.stop();
    stop.store(true, Ordering::Relaxed);
    let mut failed = false;
    for h in handles {
        let l = h.lcore();
        if let Err(e) = h.join() {
            log::error!("worker {l:?}: {e}");
            failed = true;
        }
    }
    for p in ports.iter_mut() {
        if let Err(e) = p.port.stop() {
            log::warn!("{}: {e}", p.port.name());
        }
    }
    let tunnel_names: Vec<String> = match &control {
        None => Vec::new(),
        Some(c) => c.plane.tunnels().iter().map(|t| t.name.clone()).collect(),
    };
    print_final(&ports, &counters, &workers, &tunnel_names, elapsed);
    if let Some(c) = &control {
        print_control(c);
    }
    // The control loop's TX queue and mbufs go before the leak check.
    drop(control);
    // Closing the ports returns the mbufs parked in their descriptor rings; anything still out
    // after that is a leak.
    drop(ports);
    let in_use = pool.in_use_count();
    println!(
        "mbufs in use after shutdown: {in_use} of {}",
        pool.capacity()
    );
    if in_use != 0 {
        log::error!("{in_use} mbufs leaked");
        failed = true;
    }
    drop(pool);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn sum(counters: &[PipelineCounters]) -> CoreSnapshot {
    counters.iter().fold(CoreSnapshot::default(), |acc, c| {
        acc.plus(&c.core.snapshot())
    })
}

type Handles = Vec<lcore::JoinHandle<()>>;

/// io mode: worker q forwards queue q of each port to queue q of its paired port.
fn launch_io(
    workers: &[LcoreId],
    ports: &mut [ActivePort],
    burst: u16,
    stop: &Arc<AtomicBool>,
    counters: &Arc<Vec<PipelineCounters>>,
) -> Result<Handles> {
    let n = ports.len();
    let mut handles = Vec::new();
    for (q, &lcore_id) in workers.iter().enumerate() {
        let mut paths = Vec::new();
        for i in 0..n {
            let peer = worker::paired_port(i, n);
            let rx = ports[i]
                .port
                .take_rx_queue(q as u16)
                .expect("each queue taken once");
            let tx = ports[peer]
                .port
                .take_tx_queue(q as u16)
                .expect("each queue taken once");
            paths.push(IoPath { rx, tx });
        }
        log::info!(
            "{lcore_id:?}: io forwarding {:?}",
            worker::describe_paths(&paths)
        );
        let stop = Arc::clone(stop);
        let counters = Arc::clone(counters);
        let burst = burst as usize;
        handles.push(
            lcore::launch(lcore_id, move || {
                worker::run_io(&mut paths, burst, &stop, &counters[q].core);
            })
            .with_context(|| format!("launching the worker on {lcore_id:?}"))?,
        );
    }
    Ok(handles)
}

/// pipeline mode: build the forwarding table and context, resolve the gateway, launch the
/// workers; returns them and the control loop (which owns the publication and the probe TX
/// queue on the gateway port).
#[allow(clippy::too_many_arguments)]
fn launch_pipeline(
    eal: &Eal,
    path: &std::path::Path,
    cfg: &Config,
    probe_path: ProbePath,
    workers: &[LcoreId],
    ports: &mut [ActivePort],
    pool: &Arc<Mempool>,
    stop: &Arc<AtomicBool>,
    counters: &Arc<Vec<PipelineCounters>>,
) -> Result<(Handles, ControlLoop)> {
    let dp = &cfg.dataplane;
    let macs: Vec<EthernetAddress> = ports
        .iter()
        .map(|p| p.port.mac())
        .collect::<Result<_, _>>()?;
    let (gw_index, _) = cfg
        .gateway_port()
        .context("pipeline mode needs a gateway (checked by the config)")?;
    // Every worker's queues, taken now; worker 0's gateway queues resolve ARP first.
    let mut queues: Vec<(Vec<RxQueue>, Vec<TxQueue>)> = (0..workers.len())
        .map(|q| {
            let rx = ports
                .iter_mut()
                .map(|p| p.port.take_rx_queue(q as u16).expect("once"))
                .collect();
            let tx = ports
                .iter_mut()
                .map(|p| p.port.take_tx_queue(q as u16).expect("once"))
                .collect();
            (rx, tx)
        })
        .collect();
    let gateway_mac = match control::tables::static_gateway_mac(cfg) {
        Some(mac) => mac,
        None => {
            let (gw_ip, our_ip) = control::tables::gateway_arp_addresses(cfg)
                .context("without gateway.mac the gateway port needs an ipv4 address")?;
            let (rx, tx) = &mut queues[0];
            let res = neighbor::resolve(
                &mut rx[gw_index],
                &mut tx[gw_index],
                pool,
                neighbor::ArpQuery {
                    our_mac: macs[gw_index],
                    our_ip,
                    target: gw_ip,
                    interval: Duration::from_millis(200),
                    timeout: Duration::from_secs(5),
                },
            );
            match res.mac {
                Some(mac) => {
                    log::info!("gateway {gw_ip} is at {mac} (ARP)");
                    mac
                }
                None => bail!(
                    "gateway {gw_ip} did not answer {} ARP requests from {our_ip} within 5 s; set gateway.mac to configure it statically",
                    res.requests_sent
                ),
            }
        }
    };
    let (plane, readers) = ControlPlane::new(
        path,
        cfg.clone(),
        macs.clone(),
        gateway_mac,
        workers.len(),
        TUNNEL_COUNTER_CAPACITY.max(cfg.tunnels.len()),
        control_loop::fresh_now(),
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
    let tsc_hz = eal.tsc_hz();
    // A reassembled outer datagram must fit one mbuf with its Ethernet header.
    let max_datagram = DEFAULT_DATA_ROOM as usize - 14 - 60;
    let worker_probe_tx = (probe_path == ProbePath::ViaWorker)
        .then(|| Arc::new(ControlTxQueue::new(PROBE_QUEUE_CAPACITY)));
    let mut handles = Vec::new();
    let mut probe_queues = Vec::new();
    let mut readers = readers.into_iter();
    for (q, ((rx, tx), &lcore_id)) in queues.into_iter().zip(workers).enumerate() {
        let state = WorkerState::new(
            TokenBucket::new(
                cfg.icmp.rate_per_sec,
                cfg.icmp.burst,
                tsc_hz,
                dataplane::eal::rdtsc(),
            ),
            (q as u16).wrapping_mul(0x1000),
        );
        let reassembler = Reassembler::new(ReassemblerConfig {
            max_sets: cfg.reassembly.max_sets as usize,
            timeout: tsc_hz / 1000 * cfg.reassembly.timeout_ms,
            max_datagram,
            seed: q as u64,
        });
        let w = PipelineWorker::new(
            rx,
            tx,
            ContextSlot::published(readers.next().context("one reader per worker")?),
            state,
            reassembler,
            max_datagram,
            Arc::clone(pool),
            dp.burst as usize,
            tsc_hz,
        );
        let probes = Arc::new(ProbeQueue::new(PROBE_QUEUE_CAPACITY));
        probe_queues.push(Arc::clone(&probes));
        let mut w = w.with_probe_queue(probes);
        if q == 0 {
            if let Some(tx) = &worker_probe_tx {
                w = w.with_control_tx(Arc::clone(tx), gw_index as u16);
            }
        }
        let stop = Arc::clone(stop);
        let counters = Arc::clone(counters);
        log::info!("{lcore_id:?}: pipeline over {} ports", ports.len());
        handles.push(
            lcore::launch(lcore_id, move || w.run(&stop, &counters[q]))
                .with_context(|| format!("launching the worker on {lcore_id:?}"))?,
        );
    }
    let control_tx = match probe_path {
        ProbePath::OwnedQueue => Some(ProbeTx::Owned(
            ports[gw_index]
                .port
                .take_tx_queue(workers.len() as u16)
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
    let control_state = WorkerState::new(
        TokenBucket::new(0, 0, tsc_hz, dataplane::eal::rdtsc()),
        0xF000,
    );
    let control = ControlLoop::new(
        plane,
        probe_queues,
        control_tx,
        Arc::clone(pool),
        control_state,
        tsc_hz,
    );
    Ok((handles, control))
}

/// Health and publication summary at exit.
fn print_control(c: &ControlLoop) {
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
    for t in p.tunnels().iter().filter(|t| t.checked()) {
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
            t.state().as_str(),
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

fn print_final(
    ports: &[ActivePort],
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
        let s = p.port.stats().unwrap_or_default();
        println!(
            "port {} {:<12} rx-packets {:<12} rx-bytes {:<14} rx-missed {:<8} rx-errors {:<6} rx-nombuf {}",
            p.port.id(),
            p.port.name(),
            s.ipackets,
            s.ibytes,
            s.imissed,
            s.ierrors,
            s.rx_nombuf
        );
        println!(
            "port {} {:<12} tx-packets {:<12} tx-bytes {:<14} tx-errors {}",
            p.port.id(),
            p.port.name(),
            s.opackets,
            s.obytes,
            s.oerrors
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
            s.cycles_per_packet()
                .map(|c| format!("{c:.1}"))
                .unwrap_or_else(|| "-".into())
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
