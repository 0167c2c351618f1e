//! `conduit-perf [EAL args] -- [OPTIONS]`: what Conduit's pipeline does on this machine.
//!
//! Topology: one ring port (`perf_ring0`, the ring PMD over in-process rings) with one RX/TX
//! queue pair per worker lcore. EAL's main lcore runs the generator and the sink: the generator
//! copies pre-built template frames into freshly bulk-allocated mbufs, stamps the TSC into each
//! frame's trailer and enqueues them into the worker's RX ring; the worker, the appliance's own
//! `PipelineWorker` poll loop built by the appliance's own code (`conduit::workers`, reading its
//! context through a QSBR reader as under the control plane), receives them through `rte_eth_rx_burst`, processes and transmits
//! them through `rte_eth_tx_burst` into its TX ring; the sink dequeues, counts, spot-checks and
//! samples latency, then frees. Generation never runs on a worker lcore, so a worker's busy
//! cycles per packet are its own: ring PMD I/O plus the pipeline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use hdrhistogram::Histogram;

use conduit_packet::pipeline::{Context, DropReason};
use conduit_packet::publish::Publisher;
use conduit_packet::stats::{CoreCounters, CoreSnapshot};
use conduit_packet::wire::EthernetAddress;
use control::config::Config;
use dataplane::crypto::{DpdkCipherFactory, EspCipherFactories};
use dataplane::eal::{rdtsc, Eal};
use dataplane::lcore::LcoreId;
use dataplane::mbuf::{Burst, MAX_BURST};
use dataplane::mempool::Mempool;
use dataplane::port::{Port, PortConfig, PortStats, RxQueue, TxQueue};
use dataplane::ring::{self, Ring, RingConsumer, RingPortRings, RingProducer};
use dataplane::worker::pipeline::{PipelineCounters, WorkerQueues};
use dataplane::worker::{IoPath, Workers};

use perf::profile::{self, Ecmp, ProfileKind, ProfileSpec, Proto, GATEWAY_MAC};
use perf::report::{self, Latency, Report, TrafficReport, WorkerReport};
use perf::{capture, ovs};

const PORT_NAME: &str = "perf_ring0";
/// The sink samples the latency of one packet in this many, and checks one in CHECK_EVERY
/// (both prime, so that neither locks onto the IMIX size pattern).
const LATENCY_EVERY: u64 = 7;
const CHECK_EVERY: u64 = 13;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WorkerMode {
    Pipeline,
    Io,
    Macswap,
}

#[derive(Parser, Debug)]
#[command(
    name = "conduit-perf",
    about = "Measures Conduit's pipeline: a generator and a sink on EAL's main lcore, the worker on its own lcore, joined by ring ports",
    override_usage = "conduit-perf [EAL args] -- [OPTIONS]   (e.g. conduit-perf -l 0,1 --in-memory --no-pci -- --profile encap)"
)]
struct Cli {
    /// Traffic profile.
    #[arg(long, value_enum, default_value_t = ProfileKind::Encap)]
    profile: ProfileKind,
    /// Customer packets' transport protocol.
    #[arg(long, value_enum, default_value_t = Proto::Udp)]
    proto: Proto,
    /// Distinct flows (5-tuples).
    #[arg(long, default_value_t = 10_000)]
    flows: u32,
    /// Customer frame sizes in bytes, comma-separated and used in turn by flow, or `imix`
    /// (7×64, 4×594, 1×1486).
    #[arg(long, default_value = "64")]
    size: String,
    /// GRE tunnels.
    #[arg(long, default_value_t = 16)]
    tunnels: u32,
    /// Customer /24 prefixes in the route table (up to 1048576).
    #[arg(long, default_value_t = 1000)]
    routes: u32,
    /// Equal-cost tunnels per prefix.
    #[arg(long, default_value_t = 1)]
    paths: u32,
    /// ECMP rule.
    #[arg(long, value_enum, default_value_t = Ecmp::Modulo)]
    ecmp: Ecmp,
    /// GRE key on every tunnel.
    #[arg(long)]
    gre_key: Option<u32>,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of traffic before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Offered load in packets per second over all workers; 0 offers as much as the rings take
    /// (the worker is saturated, latency is then mostly RX-ring queueing).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Worker receive burst.
    #[arg(long, default_value_t = 32)]
    burst: u16,
    /// Size of each RX and TX ring (a power of two), like a NIC's descriptor ring.
    #[arg(long, default_value_t = 1024)]
    ring_size: u32,
    /// Periodic statistics interval in milliseconds (0: only the final summary).
    #[arg(long, default_value_t = 1000)]
    stats_interval: u64,
    /// What the worker lcore runs: Conduit's pipeline, or testpmd-style io / macswap
    /// forwarding over the same ring port and generator (the baseline that isolates the
    /// pipeline's own cost from the cross-core I/O).
    #[arg(long, value_enum, default_value_t = WorkerMode::Pipeline)]
    worker: WorkerMode,
    /// Print the final report as JSON on stdout (periodic statistics go to stderr).
    #[arg(long)]
    json: bool,
    /// Instead of measuring: write the profile's frames, one per flow in flow order, as a pcap
    /// file addressed to `--pcap-mac`, for same-core replay with DPDK's net_pcap
    /// (`rx_pcap=FILE,infinite_rx=1`). Needs no EAL, except for `esp-decap`, whose frames are
    /// sealed on the `crypto_aesni_gcm` cryptodev (EAL's arguments come before `--`).
    #[arg(long, value_name = "FILE")]
    write_pcap: Option<PathBuf>,
    /// Instead of measuring: write the profile's appliance configuration (the one the worker
    /// runs here, routes included) for `conduit` on one net_pcap0 port facing the gateway,
    /// with mbufs enough to hold the capture. Needs no EAL; combines with `--write-pcap`.
    #[arg(long, value_name = "FILE")]
    write_config: Option<PathBuf>,
    /// Instead of measuring: write the profile's job as OpenFlow 1.3 rules for an OVS-DPDK
    /// bridge with ports dpdk0 and gre0 (`ovs-ofctl -O OpenFlow13 add-flows`), and its select
    /// groups beside it (extension .groups) when it has equal-cost paths. Needs no EAL.
    #[arg(long, value_name = "FILE")]
    write_ovs_flows: Option<PathBuf>,
    /// Destination MAC of the frames in `--write-pcap` (default: net_pcap's port MAC).
    #[arg(long, value_name = "MAC", default_value = "02:70:63:61:70:00")]
    pcap_mac: EthernetAddress,
    /// Worker lcore in `--write-config`.
    #[arg(long, value_name = "LCORE", default_value_t = 1)]
    replay_lcore: u32,
}

fn main() -> ExitCode {
    conduit::cli::main("conduit-perf", "warn", run)
}

fn run(cli: Cli, eal_args: Vec<String>) -> Result<ExitCode> {
    let spec = ProfileSpec {
        kind: cli.profile,
        proto: cli.proto,
        flows: cli.flows,
        sizes: profile::parse_sizes(&cli.size)?,
        tunnels: cli.tunnels,
        routes: cli.routes,
        paths: cli.paths,
        ecmp: cli.ecmp,
        gre_key: cli.gre_key,
    };
    spec.validate()?;
    if cli.write_pcap.is_some() || cli.write_config.is_some() || cli.write_ovs_flows.is_some() {
        write_replay(&cli, &spec, &eal_args)?;
        return Ok(ExitCode::SUCCESS);
    }
    if spec.kind.is_esp() {
        bail!(
            "the ESP profiles are measured on the worker's own core: --write-pcap and --write-config \
             for the appliance (perf/scripts/esp-vs-crypto-perf.sh)"
        );
    }
    if !cli.ring_size.is_power_of_two() || cli.ring_size < 64 {
        bail!("--ring-size must be a power of two >= 64");
    }
    if cli.burst == 0 || cli.burst as usize > MAX_BURST {
        bail!("--burst must be 1..={MAX_BURST}");
    }
    let eal = Eal::init(&eal_args).context("EAL initialisation failed (see EAL's messages)")?;
    let result = run_with_eal(&cli, &spec, &eal);
    drop(eal);
    result
}

/// Writes the capture and/or the appliance configuration of the profile (`--write-pcap`,
/// `--write-config`). The `esp-decap` capture is sealed on the cryptodev of the profile's
/// config, which needs EAL (`eal_args`); nothing else does.
fn write_replay(cli: &Cli, spec: &ProfileSpec, eal_args: &[String]) -> Result<()> {
    if cli.burst == 0 || cli.burst as usize > MAX_BURST {
        bail!("--burst must be 1..={MAX_BURST}");
    }
    if let Some(path) = &cli.write_pcap {
        let frames: Vec<Vec<u8>> = if spec.kind == ProfileKind::EspDecap {
            sealed_frames(spec, cli.pcap_mac.0, eal_args)?
        } else {
            (0..spec.flows)
                .map(|f| spec.frame(f, cli.pcap_mac.0))
                .collect()
        };
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        capture::write_pcap(std::io::BufWriter::new(file), frames)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &cli.write_config {
        let workers = [cli.replay_lcore];
        let cfg = spec.config(capture::NET_PCAP_DEVICE, &workers, cli.burst)?;
        let mbufs = capture::replay_mbufs(&cfg, spec.flows);
        let yaml = spec.config_yaml(capture::NET_PCAP_DEVICE, &workers, cli.burst, Some(mbufs))?;
        let head = format!(
            "# conduit-perf profile {:?}: {} flows, sizes {:?}, {} tunnels, {} routes x{} paths.\n\
             # Replays the capture of the same profile on one port facing the gateway:\n\
             #   conduit -l 0,{} --in-memory --no-pci --vdev {},rx_pcap=CAPTURE,infinite_rx=1 -- --config THIS\n",
            spec.kind,
            spec.flows,
            spec.sizes,
            spec.tunnels,
            spec.routes,
            spec.paths,
            cli.replay_lcore,
            capture::NET_PCAP_DEVICE,
        );
        std::fs::write(path, head + &yaml)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &cli.write_ovs_flows {
        if spec.kind.is_esp() {
            bail!("--write-ovs-flows has no ESP rules");
        }
        std::fs::write(path, ovs::flows(spec)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let groups = ovs::groups(spec)?;
        if !groups.is_empty() {
            let g = path.with_extension("groups");
            std::fs::write(&g, groups).with_context(|| format!("cannot write {}", g.display()))?;
        }
    }
    Ok(())
}

/// `esp-decap`'s frames, sealed by the peer of each tunnel through a cipher on the cryptodev
/// the appliance uses ([`profile::esp::CRYPTO_DEVICE`], opened as the appliance opens it).
fn sealed_frames(
    spec: &ProfileSpec,
    port_mac: [u8; 6],
    eal_args: &[String],
) -> Result<Vec<Vec<u8>>> {
    let eal = Eal::init(eal_args).context("EAL initialisation failed (see EAL's messages)")?;
    let mut factories = EspCipherFactories::open(
        &eal,
        profile::esp::CRYPTO_DEVICE,
        1,
        conduit::workers::MIN_SA_CAPACITY.max(2 * spec.tunnels as usize),
    )
    .with_context(|| format!("opening {}", profile::esp::CRYPTO_DEVICE))?;
    let factory = factories
        .workers
        .pop()
        .context("no worker cipher factory")?;
    eprintln!(
        "conduit-perf: sealing {} frames on {} ({:?})",
        spec.flows,
        factories.device.name(),
        factory.path()
    );
    // The sealer (and its cipher sessions) goes before the device and EAL.
    let frames = {
        let mut sealer = profile::esp::Sealer::new(spec, port_mac, Box::new(factory))?;
        (0..spec.flows)
            .map(|f| sealer.frame(f))
            .collect::<Result<Vec<_>, _>>()?
    };
    drop(factories);
    drop(eal);
    Ok(frames)
}

/// Sums snapshots of all workers.
fn sum(counters: &[PipelineCounters]) -> CoreSnapshot {
    counters
        .iter()
        .fold(CoreSnapshot::default(), |a, c| a.plus(&c.core.snapshot()))
}

fn run_with_eal(cli: &Cli, spec: &ProfileSpec, eal: &Eal) -> Result<ExitCode> {
    let tsc_hz = eal.tsc_hz();
    let lcores = eal.worker_lcores();
    if lcores.is_empty() {
        bail!("no worker lcore: give EAL at least two (-l 0,1); the main lcore generates");
    }
    let worker_ids: Vec<u32> = lcores.iter().map(|l| l.0).collect();
    let t_config = Instant::now();
    let cfg = spec.config(PORT_NAME, &worker_ids, cli.burst)?;
    let config_time = t_config.elapsed();
    let pool = Arc::new(conduit::workers::packet_pool(
        "perf_pkts",
        pool_size(lcores.len(), cli.ring_size),
        &cfg,
    )?);
    let mut rig = RingPort::open(lcores.len(), cli.ring_size, &pool)?;
    let (publisher, templates) = build_context(spec, &cfg, &rig, tsc_hz, config_time)?;
    let signalled = stop_on_signals()?;
    // The workers' cipher factories, as the appliance makes them (none without IPsec).
    let crypto = conduit::workers::esp_factories(eal, &cfg)?;
    let (crypto_device, ciphers) = match crypto {
        Some(f) => (Some(f.device), f.workers),
        None => (None, Vec::new()),
    };
    let mut workers = start_workers(
        cli.worker,
        &cfg,
        &lcores,
        &mut rig.port,
        &publisher,
        &pool,
        tsc_hz,
        ciphers,
    )?;

    let mut gen = Generator::new(
        std::mem::take(&mut rig.gen_rings),
        templates,
        cli.burst as usize,
        cli.rate,
        tsc_hz,
    );
    let mut sink = Sink::new(
        std::mem::take(&mut rig.sink_rings),
        spec.clone(),
        cli.worker == WorkerMode::Pipeline,
    );
    let m = measure(
        cli,
        &workers,
        &mut gen,
        &mut sink,
        &rig.port,
        &pool,
        &signalled,
        &worker_ids,
        tsc_hz,
    );
    let latency = Latency::from_histogram(&sink.latency, tsc_hz);

    // Drain, then stop in order: workers, port, rings; then every mbuf must be back.
    drain(workers.counters(), &gen, &mut sink);
    let mut failed = false;
    for e in workers.stop() {
        eprintln!("conduit-perf: worker {:?}: {e}", e.lcore());
        failed = true;
    }
    sink.step();
    rig.close();
    drop(publisher);
    // Every cipher session went with its worker; the device closes after them.
    drop(crypto_device);
    let alloc_failed = gen.alloc_failed;
    drop(gen);
    drop(sink.rings.drain(..));
    let in_use = pool.in_use_count();
    let rep = report(
        cli,
        spec,
        eal,
        &m,
        latency,
        &worker_ids,
        in_use,
        &pool,
        tsc_hz,
    );
    if !print_outcome(&rep, cli.json, &sink, alloc_failed) {
        failed = true;
    }
    drop(pool);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// SIGINT and SIGTERM end the measured interval early (the report covers what was measured).
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&signalled))?;
    }
    Ok(signalled)
}

/// Prints the report and what went wrong; true when the run is clean (every checked frame as
/// the profile expects, every mbuf back in the pool).
fn print_outcome(rep: &Report, json: bool, sink: &Sink, alloc_failed: u64) -> bool {
    if json {
        println!("{}", rep.to_json());
    } else {
        print!("{}", rep.to_text());
    }
    let mut clean = true;
    if rep.traffic.check_failed > 0 {
        eprintln!(
            "conduit-perf: {} output frames failed the profile's check (first: {:?})",
            rep.traffic.check_failed, sink.first_failure
        );
        clean = false;
    }
    if alloc_failed > 0 {
        eprintln!("conduit-perf: the generator found the pool empty {alloc_failed} times");
    }
    if rep.mbufs_in_use_after != 0 {
        eprintln!("conduit-perf: {} mbufs leaked", rep.mbufs_in_use_after);
        clean = false;
    }
    clean
}

/// Mbufs for `workers` RX and TX rings of `ring` slots each, bursts in flight and the generator's
/// pending bursts, as a power of two minus one (the size DPDK pools are most efficient at).
fn pool_size(workers: usize, ring: u32) -> u32 {
    (workers as u32 * (2 * ring + 4 * MAX_BURST as u32) + 8192)
        .next_power_of_two()
        .saturating_sub(1)
}

/// The ring port and its rings: per worker an RX ring (generator -> worker) and a TX ring
/// (worker -> sink).
struct RingPort {
    port: Port,
    rings: RingPortRings,
    gen_rings: Vec<RingProducer>,
    sink_rings: Vec<RingConsumer>,
}

impl RingPort {
    fn open(workers: usize, ring: u32, pool: &Mempool) -> Result<RingPort> {
        let mut gen_rings = Vec::new();
        let mut sink_rings = Vec::new();
        let mut port_rx = Vec::new();
        let mut port_tx = Vec::new();
        for q in 0..workers {
            let (p, c) = Ring::create(&format!("perf_rx{q}"), ring, -1)?;
            gen_rings.push(p);
            port_rx.push(c);
            let (p, c) = Ring::create(&format!("perf_tx{q}"), ring, -1)?;
            port_tx.push(p);
            sink_rings.push(c);
        }
        let (port_id, rings) = ring::ring_port(PORT_NAME, port_rx, port_tx)?;
        let desc = ring.min(u16::MAX as u32) as u16;
        let mut port = Port::configure(
            port_id,
            PORT_NAME,
            &PortConfig {
                rx_queues: workers as u16,
                tx_queues: workers as u16,
                rx_desc: desc,
                tx_desc: desc,
                rss: false,
                mtu: None,
                promiscuous: false,
            },
            pool,
        )?;
        port.start()?;
        Ok(RingPort {
            port,
            rings,
            gen_rings,
            sink_rings,
        })
    }

    /// Stops and closes the port, then its rings.
    fn close(mut self) {
        if let Err(e) = self.port.stop() {
            log::warn!("{PORT_NAME}: {e}");
        }
        drop(self.port);
        drop(self.rings);
    }
}

/// Builds the forwarding context for `cfg` and publishes it the way the control plane does,
/// and the generator's template frames; prints the run's description line.
fn build_context(
    spec: &ProfileSpec,
    cfg: &Config,
    rig: &RingPort,
    tsc_hz: u64,
    config_time: Duration,
) -> Result<(Publisher<Context>, Templates)> {
    let t_build = Instant::now();
    let mac = rig.port.mac()?;
    let nq = cfg.dataplane.workers.len();
    let table = Arc::new(control::tables::forwarding_table(cfg, &[])?);
    let tstats = table.stats();
    let ctx = control::tables::context(cfg, &[mac], EthernetAddress(GATEWAY_MAC), table)?;
    let publisher = Publisher::with_capacity(ctx, nq, 1);
    let templates = Templates::build(spec, mac.octets(), nq as u32);
    eprintln!(
        "conduit-perf: {} | {} {} | TSC {:.3} GHz | workers {:?} | {:?} {} flows, {} tunnels, {} prefixes ({} routes, {} ECMP groups, {} KiB) built in {:.2} s",
        Eal::version(),
        PORT_NAME,
        rig.port.info().driver,
        tsc_hz as f64 / 1e9,
        cfg.dataplane.workers,
        spec.kind,
        spec.flows,
        spec.tunnels,
        tstats.prefixes,
        cfg.routes.len(),
        tstats.groups,
        tstats.memory_bytes / 1024,
        (config_time + t_build.elapsed()).as_secs_f64()
    );
    Ok((publisher, templates))
}

/// Launches one worker per lcore on its queue pair of the ring port: the appliance's pipeline
/// worker, built by the appliance's own code, or a testpmd-style baseline.
#[allow(clippy::too_many_arguments)]
fn start_workers(
    mode: WorkerMode,
    cfg: &Config,
    lcores: &[LcoreId],
    port: &mut Port,
    publisher: &Publisher<Context>,
    pool: &Arc<Mempool>,
    tsc_hz: u64,
    ciphers: Vec<DpdkCipherFactory>,
) -> Result<Workers> {
    let config = conduit::workers::worker_config(cfg, tsc_hz);
    let mut workers = conduit::workers::workers(cfg);
    let mut ciphers = ciphers.into_iter();
    for (q, &lcore_id) in lcores.iter().enumerate() {
        let cipher = ciphers.next();
        let rx = port.take_rx_queue(q as u16).context("RX queue")?;
        let tx = port.take_tx_queue(q as u16).context("TX queue")?;
        let launched = match mode {
            WorkerMode::Pipeline => {
                let queues = WorkerQueues {
                    rx: vec![rx],
                    tx: vec![tx],
                };
                let reader = publisher.reader()?;
                let w = conduit::workers::pipeline_worker(
                    &config,
                    q,
                    queues,
                    reader,
                    Arc::clone(pool),
                    cipher,
                );
                workers.launch_pipeline(lcore_id, w)
            }
            WorkerMode::Io => workers.launch_io(lcore_id, vec![IoPath { rx, tx }], config.burst),
            WorkerMode::Macswap => {
                let burst = config.burst;
                workers.launch(lcore_id, move |stop, c| {
                    run_macswap(rx, tx, burst, stop, &c.core)
                })
            }
        };
        launched.with_context(|| format!("launching the worker on {lcore_id:?}"))?;
    }
    Ok(workers)
}

/// Counters at the start and the end of the measured interval.
struct Measured {
    base: Baseline,
    end: Baseline,
    interval: Duration,
}

/// Runs the generator and the sink through the warm-up and the measured interval (or until a
/// signal), printing periodic statistics.
#[allow(clippy::too_many_arguments)]
fn measure(
    cli: &Cli,
    workers: &Workers,
    gen: &mut Generator,
    sink: &mut Sink,
    port: &Port,
    pool: &Mempool,
    signalled: &AtomicBool,
    worker_ids: &[u32],
    tsc_hz: u64,
) -> Measured {
    let counters = workers.counters();
    let out = Output { json: cli.json };
    let mut warm = true;
    let start = Instant::now();
    let mut mark = Instant::now();
    let mut base = Baseline::take(counters, gen, sink);
    let mut last = base.clone();
    let mut last_port = port.stats().unwrap_or_default();
    let mut last_print = Instant::now();
    let interval = Duration::from_millis(cli.stats_interval);
    let warmup = Duration::from_secs_f64(cli.warmup.max(0.0));
    let duration = Duration::from_secs_f64(cli.duration.max(0.0));
    // The clock is read once a millisecond (by TSC): clock_gettime is slow on some VMs and
    // would otherwise eat into the generator's time.
    let check_every = (tsc_hz / 1000).max(1);
    let mut next_check = rdtsc();
    let measured = loop {
        gen.step(pool);
        sink.step();
        let t = rdtsc();
        if t < next_check {
            continue;
        }
        next_check = t + check_every;
        let now = Instant::now();
        if warm && now.duration_since(start) >= warmup {
            warm = false;
            mark = now;
            base = Baseline::take(counters, gen, sink);
            sink.reset_latency();
        }
        if !warm && now.duration_since(mark) >= duration {
            break now.duration_since(mark);
        }
        if signalled.load(Ordering::Relaxed) {
            break now.duration_since(mark);
        }
        if cli.stats_interval > 0 && now.duration_since(last_print) >= interval {
            let dt = now.duration_since(last_print).as_secs_f64();
            let cur = Baseline::take(counters, gen, sink);
            let ps = port.stats().unwrap_or_default();
            out.periodic(
                now.duration_since(start).as_secs_f64(),
                dt,
                &last,
                &cur,
                &last_port,
                &ps,
                worker_ids,
                sink,
                tsc_hz,
            );
            last = cur;
            last_port = ps;
            last_print = now;
        }
    };
    Measured {
        end: Baseline::take(counters, gen, sink),
        base,
        interval: measured,
    }
}

/// Stops generating and lets the workers empty their RX rings (up to 2 s), the sink taking what
/// they send.
fn drain(counters: &[PipelineCounters], gen: &Generator, sink: &mut Sink) {
    let drain_until = Instant::now() + Duration::from_secs(2);
    let mut quiet_since = Instant::now();
    let mut last_rx = sum(counters).rx_packets;
    while Instant::now() < drain_until {
        for _ in 0..1000 {
            sink.step();
        }
        let rx = sum(counters).rx_packets;
        if rx != last_rx || gen.backlog() > 0 {
            last_rx = rx;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_millis(20) {
            break;
        }
    }
}

/// The run's report from the measured interval.
#[allow(clippy::too_many_arguments)]
fn report(
    cli: &Cli,
    spec: &ProfileSpec,
    eal: &Eal,
    m: &Measured,
    latency: Latency,
    worker_ids: &[u32],
    in_use: u32,
    pool: &Mempool,
    tsc_hz: u64,
) -> Report {
    let secs = m.interval.as_secs_f64();
    let d = m.end.since(&m.base);
    let workers_report: Vec<WorkerReport> = d
        .workers
        .iter()
        .zip(worker_ids)
        .map(|(w, &l)| WorkerReport::new(l, w, secs, tsc_hz))
        .collect();
    let (total_mpps, cpp) = Report::totals(&workers_report);
    let mut drops = BTreeMap::new();
    for reason in DropReason::all() {
        let n: u64 = d.drops[reason.index()];
        if n > 0 {
            drops.insert(reason.as_str().to_string(), n);
        }
    }
    let tx_full: u64 = d.workers.iter().map(|w| w.tx_dropped).sum();
    if tx_full > 0 {
        drops.insert("tx_full".into(), tx_full);
    }
    Report {
        profile: spec.clone(),
        worker: format!("{:?}", cli.worker).to_lowercase(),
        dpdk: Eal::version(),
        hugepages: eal.has_hugepages(),
        tsc_hz,
        seconds: secs,
        workers: workers_report,
        total_mpps,
        cycles_per_packet: cpp,
        traffic: TrafficReport {
            generated_packets: d.gen_packets,
            generated_bytes: d.gen_bytes,
            received_packets: d.sink_packets,
            received_bytes: d.sink_bytes,
            generated_mpps: report::rate(d.gen_packets, secs) / 1e6,
            received_mpps: report::rate(d.sink_packets, secs) / 1e6,
            generated_gbps: report::bits_per_second(d.gen_bytes, secs) / 1e9,
            received_gbps: report::bits_per_second(d.sink_bytes, secs) / 1e9,
            checked: d.checked,
            check_failed: d.check_failed,
        },
        latency,
        drops,
        mbufs_in_use_after: in_use,
        pool_capacity: pool.capacity(),
    }
}

/// testpmd's macswap: swap the Ethernet addresses and send back; the io loop's accounting.
fn run_macswap(
    mut rx: RxQueue,
    mut tx: TxQueue,
    burst_size: usize,
    stop: &AtomicBool,
    c: &CoreCounters,
) {
    let mut burst = Burst::new();
    let mut t_start = rdtsc();
    while !stop.load(Ordering::Relaxed) {
        let n = rx.rx_burst(&mut burst, burst_size);
        c.polls.add(1);
        let t_end = if n > 0 {
            for m in burst.as_mut_slice() {
                if let Some(h) = m.data_mut().get_mut(..12) {
                    let mut a = [0u8; 12];
                    a[..6].copy_from_slice(&h[6..12]);
                    a[6..].copy_from_slice(&h[..6]);
                    h.copy_from_slice(&a);
                }
            }
            let sent = tx.tx_burst(&mut burst);
            c.tx_packets.add(sent as u64);
            if !burst.is_empty() {
                c.tx_dropped.add(burst.len() as u64);
                burst.clear();
            }
            let t = rdtsc();
            c.rx_packets.add(n as u64);
            c.busy_polls.add(1);
            c.busy_cycles.add(t.wrapping_sub(t_start));
            t
        } else {
            rdtsc()
        };
        t_start = t_end;
    }
}

/// Every flow's frame, grouped by the worker queue it goes to, in one byte arena.
struct Templates {
    data: Vec<u8>,
    /// Per queue: (offset, length) of each frame.
    spans: Vec<Vec<(usize, usize)>>,
}

impl Templates {
    fn build(spec: &ProfileSpec, mac: [u8; 6], queues: u32) -> Templates {
        let mut data = Vec::new();
        let mut spans = vec![Vec::new(); queues as usize];
        for f in 0..spec.flows {
            let frame = spec.frame(f, mac);
            spans[spec.flow_queue(f, queues) as usize].push((data.len(), frame.len()));
            data.extend_from_slice(&frame);
        }
        Templates { data, spans }
    }
}

/// Fills the workers' RX rings from the templates.
struct Generator {
    rings: Vec<RingProducer>,
    templates: Templates,
    /// Per queue: the next template and mbufs built but not yet accepted by the ring.
    next: Vec<usize>,
    pending: Vec<Burst>,
    burst: usize,
    packets: u64,
    bytes: u64,
    alloc_failed: u64,
    /// Packets per TSC tick (0: unpaced) and the pacing origin.
    rate_per_tick: f64,
    t0: u64,
}

impl Generator {
    fn new(
        rings: Vec<RingProducer>,
        templates: Templates,
        burst: usize,
        rate: u64,
        tsc_hz: u64,
    ) -> Self {
        let n = rings.len();
        Generator {
            rings,
            templates,
            next: vec![0; n],
            pending: (0..n).map(|_| Burst::new()).collect(),
            burst,
            packets: 0,
            bytes: 0,
            alloc_failed: 0,
            rate_per_tick: rate as f64 / tsc_hz.max(1) as f64,
            t0: rdtsc(),
        }
    }

    /// Mbufs built but still waiting for ring space.
    fn backlog(&self) -> usize {
        self.pending.iter().map(Burst::len).sum()
    }

    #[inline]
    fn step(&mut self, pool: &Mempool) {
        let now = rdtsc();
        let mut budget = usize::MAX;
        if self.rate_per_tick > 0.0 {
            let allowed = (now.wrapping_sub(self.t0) as f64 * self.rate_per_tick) as u64;
            budget = allowed.saturating_sub(self.packets) as usize;
        }
        for q in 0..self.rings.len() {
            let pending = &mut self.pending[q];
            let spans = &self.templates.spans[q];
            if pending.is_empty() && budget > 0 && !spans.is_empty() {
                let want = self.burst.min(budget);
                if !pool.alloc_bulk(pending, want) {
                    self.alloc_failed += 1;
                    continue;
                }
                let mut i = self.next[q];
                for m in pending.as_mut_slice() {
                    let (off, len) = spans[i];
                    i += 1;
                    if i == spans.len() {
                        i = 0;
                    }
                    if let Some(buf) = m.append(len as u16) {
                        buf.copy_from_slice(&self.templates.data[off..off + len]);
                        profile::stamp(buf, now);
                        self.bytes += len as u64;
                    }
                }
                self.next[q] = i;
                budget -= want;
            }
            let before = pending.len();
            self.rings[q].enqueue(pending);
            self.packets += (before - pending.len()) as u64;
        }
    }
}

/// Drains the workers' TX rings: counts, checks, samples latency, frees.
struct Sink {
    rings: Vec<RingConsumer>,
    spec: ProfileSpec,
    /// Check frames against the profile (pipeline); otherwise only their trailer.
    check_profile: bool,
    burst: Burst,
    packets: u64,
    bytes: u64,
    checked: u64,
    check_failed: u64,
    first_failure: Option<profile::CheckError>,
    latency: Histogram<u64>,
}

impl Sink {
    fn new(rings: Vec<RingConsumer>, spec: ProfileSpec, check_profile: bool) -> Self {
        Sink {
            rings,
            spec,
            check_profile,
            burst: Burst::new(),
            packets: 0,
            bytes: 0,
            checked: 0,
            check_failed: 0,
            first_failure: None,
            latency: report::latency_histogram(),
        }
    }

    fn reset_latency(&mut self) {
        self.latency.reset();
    }

    #[inline]
    fn step(&mut self) {
        // Up to a whole ring per call: the sink must never be why the worker's TX ring is full.
        for q in 0..self.rings.len() {
            for _ in 0..8 {
                if !self.drain_once(q) {
                    break;
                }
            }
        }
    }

    /// One burst from ring `q`; false when the ring was empty.
    #[inline]
    fn drain_once(&mut self, q: usize) -> bool {
        {
            let n = self.rings[q].dequeue(&mut self.burst, MAX_BURST);
            if n == 0 {
                return false;
            }
            let now = rdtsc() as u32;
            for m in self.burst.as_slice() {
                let data = m.data();
                self.packets += 1;
                self.bytes += data.len() as u64;
                if self.packets % LATENCY_EVERY == 0 {
                    if let Some(t) = profile::read_stamp(data) {
                        let _ = self.latency.record(u64::from(now.wrapping_sub(t)).max(1));
                    }
                }
                if self.packets % CHECK_EVERY == 0 {
                    self.checked += 1;
                    let r = if self.check_profile {
                        profile::check_output(&self.spec, data)
                    } else {
                        profile::read_stamp(data)
                            .map(|_| ())
                            .ok_or(profile::CheckError::Trailer)
                    };
                    if let Err(e) = r {
                        self.check_failed += 1;
                        self.first_failure.get_or_insert(e);
                    }
                }
            }
            self.burst.clear();
        }
        true
    }
}

/// Counter values at one instant, for differences.
#[derive(Clone)]
struct Baseline {
    workers: Vec<CoreSnapshot>,
    drops: Vec<u64>,
    gen_packets: u64,
    gen_bytes: u64,
    sink_packets: u64,
    sink_bytes: u64,
    checked: u64,
    check_failed: u64,
}

impl Baseline {
    fn take(counters: &[PipelineCounters], gen: &Generator, sink: &Sink) -> Baseline {
        Baseline {
            workers: counters.iter().map(|c| c.core.snapshot()).collect(),
            drops: (0..DropReason::COUNT)
                .map(|i| counters.iter().map(|c| c.drops.get(i)).sum())
                .collect(),
            gen_packets: gen.packets,
            gen_bytes: gen.bytes,
            sink_packets: sink.packets,
            sink_bytes: sink.bytes,
            checked: sink.checked,
            check_failed: sink.check_failed,
        }
    }

    fn since(&self, e: &Baseline) -> Baseline {
        Baseline {
            workers: self
                .workers
                .iter()
                .zip(&e.workers)
                .map(|(a, b)| a.since(b))
                .collect(),
            drops: self
                .drops
                .iter()
                .zip(&e.drops)
                .map(|(a, b)| a.wrapping_sub(*b))
                .collect(),
            gen_packets: self.gen_packets - e.gen_packets,
            gen_bytes: self.gen_bytes - e.gen_bytes,
            sink_packets: self.sink_packets - e.sink_packets,
            sink_bytes: self.sink_bytes - e.sink_bytes,
            checked: self.checked - e.checked,
            check_failed: self.check_failed - e.check_failed,
        }
    }
}

/// Periodic statistics, testpmd style, on stdout (stderr with `--json`).
struct Output {
    json: bool,
}

impl Output {
    fn line(&self, s: &str) {
        if self.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn periodic(
        &self,
        at: f64,
        dt: f64,
        last: &Baseline,
        cur: &Baseline,
        lp: &PortStats,
        ps: &PortStats,
        lcores: &[u32],
        sink: &Sink,
        tsc_hz: u64,
    ) {
        let d = cur.since(last);
        self.line(&format!(
            "[{at:7.1} s] port 0 {PORT_NAME}  rx-pps {:>11.0}  tx-pps {:>11.0}  rx-bps {:>13.0}  tx-bps {:>13.0}  missed {}  errors {}/{}",
            report::rate(ps.ipackets - lp.ipackets, dt),
            report::rate(ps.opackets - lp.opackets, dt),
            report::bits_per_second(ps.ibytes - lp.ibytes, dt),
            report::bits_per_second(ps.obytes - lp.obytes, dt),
            ps.imissed,
            ps.ierrors,
            ps.oerrors
        ));
        for (w, l) in d.workers.iter().zip(lcores) {
            self.line(&format!(
                "            lcore {l:<3}  rx-pps {:>11.0}  tx-pps {:>11.0}  tx-dropped {:<8}  cycles/pkt {}  busy {:5.1}%  pkts/busy-poll {:.1}",
                report::rate(w.rx_packets, dt),
                report::rate(w.tx_packets, dt),
                w.tx_dropped,
                report::cycles_per_packet(w.busy_cycles, w.rx_packets)
                    .map(|c| format!("{c:6.1}"))
                    .unwrap_or_else(|| "     -".into()),
                (w.busy_cycles as f64 / (dt * tsc_hz as f64) * 100.0).min(100.0),
                w.rx_packets as f64 / w.busy_polls.max(1) as f64
            ));
        }
        let drops: u64 = d.drops.iter().sum();
        self.line(&format!(
            "            gen-pps {:>11.0}  sink-pps {:>11.0}  sink-bps {:>13.0}  drops {}  latency p50 {:.0} ns p99 {:.0} ns",
            report::rate(d.gen_packets, dt),
            report::rate(d.sink_packets, dt),
            report::bits_per_second(d.sink_bytes, dt),
            drops,
            report::cycles_to_ns(sink.latency.value_at_quantile(0.5), tsc_hz),
            report::cycles_to_ns(sink.latency.value_at_quantile(0.99), tsc_hz),
        ));
    }
}
