//! Operations: what the appliance exposes while it runs. The control loop fills a
//! [`Snapshot`] every [`REFRESH`] from the workers' counters, the ports and the control plane,
//! and publishes it in the [`MetricsHub`] that the DPDK telemetry commands (`/conduit/...`, read
//! with `dpdk-telemetry.py`) and the Prometheus endpoint (`stats.prometheus_listen`) serve.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use conduit_packet::pipeline::DropReason;
use control::config::{Config, TunnelKind};
use control::health::Timestamp;
use control::metrics::{
    ApplianceMetrics, CoreMetrics, DropCount, MetricsHub, PoolMetrics, PortMetrics, ProcessMetrics,
    RateMeter, RttHistogram, SaMetrics, Snapshot, TunnelMetrics,
};
use control::prometheus::MetricsServer;
use dataplane::eal::Eal;
use dataplane::lcore::LcoreId;
use dataplane::mempool::Mempool;
use dataplane::port::Port;
use dataplane::worker::pipeline::PipelineCounters;

use crate::control_loop::ControlLoop;

/// How often the snapshot is refreshed.
pub const REFRESH: Duration = Duration::from_millis(500);

/// The hub, the HTTP endpoint (if configured) and when the snapshot was last refreshed.
pub struct Ops {
    pub hub: Arc<MetricsHub>,
    server: Option<MetricsServer>,
    last: Option<Instant>,
    started: Instant,
    /// Wall-clock time of the start (the first configuration load), since the Unix epoch.
    started_wall: Duration,
    config_path: String,
    /// Packet rates of each tunnel, by position (the workers count per position); a
    /// position whose name changed in a reload starts over.
    rates: Vec<TunnelRates>,
}

/// The meters of one tunnel's packets received and sent.
struct TunnelRates {
    name: String,
    rx: RateMeter,
    tx: RateMeter,
}

/// The current wall-clock time, since the Unix epoch.
fn wall_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The wall-clock time of a control-loop instant: the loop's clock is monotonic, while the
/// metrics carry Unix times, as Prometheus' `time()`.
fn wall_time(at: Timestamp) -> Duration {
    let age = crate::control_loop::fresh_now().saturating_duration_since(at);
    wall_now().saturating_sub(age)
}

impl Ops {
    /// Registers the telemetry commands (EAL is up) and starts the Prometheus endpoint when the
    /// config asks for one.
    pub fn start(cfg: &Config, path: &Path) -> Result<Ops> {
        let hub = Arc::new(MetricsHub::new());
        // Telemetry is a convenience: an EAL started with --no-telemetry still forwards.
        if let Err(e) = crate::telemetry::register(Arc::clone(&hub)) {
            log::warn!("telemetry commands not registered: {e}");
        }
        let server = match cfg.stats.prometheus_listen {
            Some(addr) => {
                let s = control::prometheus::serve(addr, Arc::clone(&hub))
                    .with_context(|| format!("serving Prometheus metrics on {addr}"))?;
                log::info!("Prometheus metrics on http://{}/metrics", s.local_addr());
                Some(s)
            }
            None => None,
        };
        Ok(Ops {
            hub,
            server,
            last: None,
            started: Instant::now(),
            started_wall: wall_now(),
            config_path: path.display().to_string(),
            rates: Vec::new(),
        })
    }

    /// Refreshes the snapshot if [`REFRESH`] has passed.
    #[allow(clippy::too_many_arguments)]
    pub fn maybe_refresh(
        &mut self,
        now: Instant,
        ports: &[Port],
        pool: (&str, &Mempool),
        counters: &[PipelineCounters],
        workers: &[LcoreId],
        control: Option<&ControlLoop>,
    ) {
        if self.last.is_some_and(|t| now.duration_since(t) < REFRESH) {
            return;
        }
        self.last = Some(now);
        let snapshot = self.snapshot(ports, pool, counters, workers, control);
        self.hub.publish(snapshot);
    }

    fn snapshot(
        &mut self,
        ports: &[Port],
        (pool_name, pool): (&str, &Mempool),
        counters: &[PipelineCounters],
        workers: &[LcoreId],
        control: Option<&ControlLoop>,
    ) -> Snapshot {
        let total = |f: &dyn Fn(&PipelineCounters) -> u64| counters.iter().map(f).sum::<u64>();
        let mut appliance = ApplianceMetrics {
            version: env!("CARGO_PKG_VERSION").to_string(),
            dpdk_version: Eal::version(),
            config_path: self.config_path.clone(),
            uptime: self.started.elapsed(),
            last_reload_success: self.started_wall,
            ..ApplianceMetrics::default()
        };
        let mut tunnels = Vec::new();
        let mut sas = Vec::new();
        if let Some(c) = control {
            let plane = &c.plane;
            appliance.table_generation = plane.generation();
            appliance.reloads_ok = plane.counters().reloads_ok;
            appliance.reloads_failed = plane.counters().reloads_failed;
            let pc = plane.counters();
            appliance.probe_reply_forged = pc.probe_reply_forged;
            appliance.probe_reply_wrong_path = pc.probe_reply_wrong_path;
            appliance.probe_reply_stale = pc.probe_reply_stale;
            if let Some(at) = pc.last_reload_ok {
                appliance.last_reload_success = wall_time(at);
            }
            let beat = &c.heartbeat;
            appliance.control_loop_iterations = beat.iterations;
            appliance.control_loop_stalls = beat.stalls;
            appliance.control_loop_longest_gap = beat.longest_gap;
            if let Some(last) = beat.last {
                appliance.control_loop_last_iteration = wall_time(last);
            }
            // One reading of the control loop's clock for the whole snapshot: the RTT
            // windows end, and the rates are measured, at the same instant.
            let now = crate::control_loop::fresh_now();
            for (i, (rt, tc)) in plane
                .tunnels()
                .iter()
                .zip(&plane.config().tunnels)
                .enumerate()
            {
                let kind: TunnelKind = tc.kind;
                let mut t = TunnelMetrics::new(&rt.name, kind, rt.status());
                t.penalty = rt.routing_health().penalty();
                t.set_health_counters(&rt.counters());
                t.state_changes = rt.state_changes;
                t.last_state_change = rt.last_change().map(|c| wall_time(c.at));
                if let Some(change) = rt.last_change() {
                    t.last_change_ago = Some(now.saturating_duration_since(change.at));
                    t.last_change_reason = change.reason.clone();
                }
                // Operators' percentiles are over the recent replies; Prometheus gets every
                // reply and computes its own windows with rate().
                t.rtt = rt.recent_rtt.summary(now);
                t.rtt_window = rt.recent_rtt.window();
                if !rt.rtt.is_empty() {
                    t.rtt_histogram = Some(RttHistogram::from_micros(&rt.rtt));
                }
                t.rx_packets = total(&|c| c.tunnel_rx_packets.get(i));
                t.rx_bytes = total(&|c| c.tunnel_rx_bytes.get(i));
                t.tx_packets = total(&|c| c.tunnel_tx_packets.get(i));
                t.tx_bytes = total(&|c| c.tunnel_tx_bytes.get(i));
                let fresh = || TunnelRates {
                    name: rt.name.clone(),
                    rx: RateMeter::new(),
                    tx: RateMeter::new(),
                };
                match self.rates.get_mut(i) {
                    Some(r) if r.name == rt.name => {}
                    Some(r) => *r = fresh(),
                    None => self.rates.push(fresh()),
                }
                let r = &mut self.rates[i];
                t.rx_pps = r.rx.update(now, t.rx_packets);
                t.tx_pps = r.tx.update(now, t.tx_packets);
                tunnels.push(t);
            }
            self.rates.truncate(tunnels.len());
            // The plane's SAs are the objects the workers count in, so this reads the live
            // counters.
            sas = SaMetrics::all(plane.ipsec(), |id| {
                plane.tunnels().get(id.0 as usize).map(|t| t.name.as_str())
            });
        }
        let ports = ports
            .iter()
            .map(|p| {
                let s = p.stats().unwrap_or_default();
                PortMetrics {
                    name: p.name().to_string(),
                    rx_packets: s.ipackets,
                    rx_bytes: s.ibytes,
                    tx_packets: s.opackets,
                    tx_bytes: s.obytes,
                    rx_missed: s.imissed,
                    rx_errors: s.ierrors,
                    tx_dropped: s.oerrors,
                    rx_nombuf: s.rx_nombuf,
                    link_up: p.link().ok().map(|l| l.up),
                }
            })
            .collect();
        let cores = counters
            .iter()
            .zip(workers)
            .map(|(c, l)| {
                let s = c.core.snapshot();
                CoreMetrics {
                    core: l.0,
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    busy_cycles: s.busy_cycles,
                    polls: s.polls,
                }
            })
            .collect();
        let drops = DropReason::all()
            .map(|r| DropCount {
                reason: r.as_str().to_string(),
                count: total(&|c| c.drops.get(r.index())),
            })
            .collect();
        let pools = vec![PoolMetrics {
            name: pool_name.to_string(),
            in_use: u64::from(pool.in_use_count()),
            capacity: u64::from(pool.capacity()),
        }];
        Snapshot {
            appliance,
            tunnels,
            ports,
            cores,
            drops,
            pools,
            sas,
            process: ProcessMetrics::read(),
        }
    }

    /// Stops the HTTP endpoint.
    pub fn stop(self) {
        if let Some(s) = self.server {
            s.stop();
        }
    }
}
