//! What an operator reads while the appliance runs: one [`Snapshot`] of every tunnel, port,
//! worker core and drop counter, published by the control thread through a [`MetricsHub`] and
//! served as Prometheus metrics ([`encode`], served by [`crate::prometheus`]) and as
//! DPDK telemetry commands (registered by the `conduit` binary, which owns DPDK).
//!
//! The snapshot is plain data filled by the control thread every stats interval; nothing here
//! reads a counter, a clock or DPDK (only [`ProcessMetrics::read`] reads the process's own
//! `/proc` files), and nothing is on the packet path. Readers (the HTTP
//! thread, DPDK's telemetry thread) take an `Arc` of the latest snapshot under a short lock and
//! format it without holding the lock.
//!
//! # Wiring (control thread)
//!
//! ```text
//! let hub = Arc::new(MetricsHub::new());
//! conduit::telemetry::register(hub.clone())?;                  // after Eal::init
//! let server = match cfg.stats.prometheus_listen {             // keep until shutdown
//!     Some(addr) => Some(control::prometheus::serve(addr, hub.clone())?),
//!     None => None,
//! };
//! // every stats interval:
//! let mut t = TunnelMetrics::new(&tc.name, tc.kind, TunnelStatus::from_health(h.state(), enabled));
//! t.penalty = h.state().penalty();
//! t.set_health_counters(h.counters());
//! t.rtt = recent.summary(now);           // the tunnel's RttWindow: the last 60 s of replies
//! t.rtt_histogram = Some(RttHistogram::from_micros(&rtt)); // every reply since start
//! t.rx_pps = rx_meter.update(now, t.rx_packets);          // RateMeter, one per counter
//! let sas = SaMetrics::all(plane.ipsec(), |id| plane.tunnels().get(id.0 as usize).map(|t| t.name.as_str()));
//! hub.publish(Snapshot { appliance, tunnels, ports, cores, drops, pools, sas, process });
//! // shutdown: server.stop() (or drop it)
//! ```
//!
//! # Prometheus exposition
//!
//! [`encode`] writes a snapshot in the Prometheus text format 0.0.4 or OpenMetrics through the
//! `prometheus-client` crate; the conventions (one-hot tunnel state, RTT histogram, info
//! families, units) are in the `exposition` module's docs and docs/operations.md.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use conduit_packet::esp::sa::{IpsecConfig, SaCounter, SaDirection, SaShared};
use conduit_packet::pipeline::TunnelKind;
use conduit_packet::route::{AdminState, Health, TunnelId};

use crate::health::HealthCounters;

/// Everything an operator reads, at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub appliance: ApplianceMetrics,
    /// In configuration order.
    pub tunnels: Vec<TunnelMetrics>,
    /// In configuration order.
    pub ports: Vec<PortMetrics>,
    /// One per worker lcore.
    pub cores: Vec<CoreMetrics>,
    /// Packets dropped, by reason name (`DropReason::as_str`), summed over the workers. Every
    /// reason should be listed, zeros included, so that series exist before the first drop.
    pub drops: Vec<DropCount>,
    /// Packet mempools (DPDK), by name.
    pub pools: Vec<PoolMetrics>,
    /// The IPsec SAs of the running configuration: by tunnel in configuration order, each
    /// tunnel's outbound SA first, then its inbound ones in configuration order.
    pub sas: Vec<SaMetrics>,
    /// The process's own resources, read from `/proc` by the control thread; `None` where
    /// that failed (not Linux).
    pub process: Option<ProcessMetrics>,
}

/// Process-wide facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplianceMetrics {
    /// Conduit's version (`CARGO_PKG_VERSION` of the binary).
    pub version: String,
    /// DPDK's version string.
    pub dpdk_version: String,
    pub config_path: String,
    pub uptime: Duration,
    /// Generation of the forwarding table in use (increments at each publication).
    pub table_generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The control loop's heartbeat: turns since start.
    pub control_loop_iterations: u64,
    /// Wall-clock time of the snapshot's latest control-loop turn, since the Unix epoch.
    pub control_loop_last_iteration: Duration,
    /// Turns that started at least `heartbeat::STALL_AFTER` after the previous one.
    pub control_loop_stalls: u64,
    /// The longest gap between two turns.
    pub control_loop_longest_gap: Duration,
    /// Probe replies ignored because their MAC did not verify.
    pub probe_reply_forged: u64,
    /// Authentic probe replies ignored because they came another way than their probe style
    /// implies.
    pub probe_reply_wrong_path: u64,
    /// Authentic probe replies ignored because their probe was no longer outstanding (late,
    /// replayed, duplicated).
    pub probe_reply_stale: u64,
    /// Wall-clock time of the latest successful configuration load (the start counts), since
    /// the Unix epoch.
    pub last_reload_success: Duration,
}

/// A tunnel's health as operators see it: the health monitor's [`Health`] while checks run,
/// or `Disabled` when the tunnel's health checks are turned off (it then counts as healthy for
/// forwarding). The health states are not repeated here: `Checked` carries the routing enum,
/// and "checks are off" is the one piece of control-only information beside it.
///
/// An administratively down tunnel is `AdminDown` whatever its checks say: it is routed as down
/// and not probed (docs/behaviour.md §2), and operators must tell it from a failed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelStatus {
    Checked(Health),
    Disabled,
    AdminDown,
}

impl Default for TunnelStatus {
    fn default() -> Self {
        TunnelStatus::Checked(Health::Healthy)
    }
}

impl TunnelStatus {
    /// Every status, in the order of the one-hot series.
    pub const ALL: [TunnelStatus; 5] = [
        TunnelStatus::Checked(Health::ALL[0]),
        TunnelStatus::Checked(Health::ALL[1]),
        TunnelStatus::Checked(Health::ALL[2]),
        TunnelStatus::Disabled,
        TunnelStatus::AdminDown,
    ];

    /// From the admin state, the monitor's state and whether checks are enabled.
    pub fn new(admin: AdminState, state: Health, checks_enabled: bool) -> Self {
        match admin {
            AdminState::Down => TunnelStatus::AdminDown,
            AdminState::Up => Self::from_health(state, checks_enabled),
        }
    }

    /// From the monitor's state and whether checks are enabled for the tunnel.
    pub fn from_health(state: Health, checks_enabled: bool) -> Self {
        if checks_enabled {
            TunnelStatus::Checked(state)
        } else {
            TunnelStatus::Disabled
        }
    }

    /// `healthy`, `degraded`, `down` ([`Health::as_str`]), `disabled` or `admin-down`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TunnelStatus::Checked(h) => h.as_str(),
            TunnelStatus::Disabled => "disabled",
            TunnelStatus::AdminDown => "admin-down",
        }
    }
}

/// Round-trip-time percentiles of a tunnel's recent probe replies (those of an
/// [`RttWindow`]), in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RttSummary {
    /// Replies the percentiles were computed over (those of the window).
    pub samples: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Upper bounds (seconds) of the RTT histogram's buckets, `+Inf` implied: from 100 µs (a
/// probe over a local link) to 2.5 s (beyond any sensible probe timeout).
pub const RTT_BUCKETS_SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A tunnel's probe round-trip times as a Prometheus histogram: cumulative counts at
/// [`RTT_BUCKETS_SECONDS`], since the tunnel was configured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RttHistogram {
    /// Replies measured (the `+Inf` bucket).
    pub count: u64,
    /// Sum of the measured RTTs, in seconds.
    pub sum_seconds: f64,
    /// `le_counts[i]`: replies with an RTT at most `RTT_BUCKETS_SECONDS[i]`.
    pub le_counts: [u64; RTT_BUCKETS_SECONDS.len()],
}

impl RttHistogram {
    /// From an HDR histogram of microseconds. Counts and sum carry the HDR histogram's
    /// precision (3 significant digits), far finer than the buckets.
    pub fn from_micros(h: &hdrhistogram::Histogram<u64>) -> Self {
        let mut le_counts = [0; RTT_BUCKETS_SECONDS.len()];
        for (c, le) in le_counts.iter_mut().zip(RTT_BUCKETS_SECONDS) {
            *c = h.count_between(0, (le * 1e6).round() as u64);
        }
        let sum_us: f64 = h
            .iter_recorded()
            .map(|v| h.median_equivalent(v.value_iterated_to()) as f64 * v.count_at_value() as f64)
            .sum();
        RttHistogram {
            count: h.len(),
            sum_seconds: sum_us / 1e6,
            le_counts,
        }
    }
}

/// One tunnel.
#[derive(Debug, Clone, PartialEq)]
pub struct TunnelMetrics {
    pub name: String,
    pub kind: TunnelKind,
    pub status: TunnelStatus,
    /// Added to the priority of every route through this tunnel in the published table.
    pub penalty: u32,
    /// Probes sent, retries included.
    pub probes_sent: u64,
    /// Replies that arrived in time.
    pub probe_replies: u64,
    /// Probes whose timeout passed without a reply.
    pub probes_lost: u64,
    /// Replies that arrived after their probe's timeout.
    pub probe_late_replies: u64,
    /// Percentiles of the replies of the last `rtt_window`; `None` when none arrived in it.
    pub rtt: Option<RttSummary>,
    /// How far back `rtt` looks ([`RTT_WINDOW`]).
    pub rtt_window: Duration,
    /// Every reply since the tunnel was configured, as a histogram; `None` while no reply has
    /// been measured.
    pub rtt_histogram: Option<RttHistogram>,
    pub state_changes: u64,
    /// Wall-clock time of the latest state change, since the Unix epoch; `None` before the
    /// first.
    pub last_state_change: Option<Duration>,
    /// Packets and bytes received from the tunnel (decapsulated).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Packets and bytes sent into the tunnel (encapsulated).
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets per second received from and sent into the tunnel over about the last second
    /// ([`RateMeter`]); `None` until measured.
    pub rx_pps: Option<u64>,
    pub tx_pps: Option<u64>,
    /// How long ago the latest state change (health or admin) was, and why; `None` and empty
    /// when none happened since start (or since the tunnel appeared in a reload).
    pub last_change_ago: Option<Duration>,
    pub last_change_reason: String,
}

impl TunnelMetrics {
    /// A tunnel with zero counters, for callers that fill in what they have.
    pub fn new(name: impl Into<String>, kind: TunnelKind, status: TunnelStatus) -> Self {
        TunnelMetrics {
            name: name.into(),
            kind,
            status,
            penalty: 0,
            probes_sent: 0,
            probe_replies: 0,
            probes_lost: 0,
            probe_late_replies: 0,
            rtt: None,
            rtt_window: RTT_WINDOW,
            rtt_histogram: None,
            state_changes: 0,
            last_state_change: None,
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            rx_pps: None,
            tx_pps: None,
            last_change_ago: None,
            last_change_reason: String::new(),
        }
    }
}

impl TunnelMetrics {
    /// Copies the probe counters of a health monitor: sent (retries included), replies in
    /// time, timeouts as lost, late replies, and state changes.
    pub fn set_health_counters(&mut self, c: &HealthCounters) {
        self.probes_sent = c.probes_sent;
        self.probe_replies = c.replies;
        self.probes_lost = c.timeouts;
        self.probe_late_replies = c.late_replies;
        self.state_changes = c.transitions;
    }
}

/// One DPDK port (from `rte_eth_stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortMetrics {
    /// The configured device name (`net_null0`, `0000:01:00.0`, ...).
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// `imissed`: dropped by the NIC because the RX queues were full.
    pub rx_missed: u64,
    /// `ierrors`.
    pub rx_errors: u64,
    /// Packets the worker could not hand to the TX queue (freed by Conduit).
    pub tx_dropped: u64,
    /// `rx_nombuf`: received packets dropped because the mempool had no mbuf.
    pub rx_nombuf: u64,
    /// Link up (`None` when the driver could not tell).
    pub link_up: Option<bool>,
}

/// One packet mempool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolMetrics {
    pub name: String,
    /// Mbufs allocated (in queues, in flight, in per-core caches).
    pub in_use: u64,
    /// Mbufs the pool was created with.
    pub capacity: u64,
}

/// One worker lcore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreMetrics {
    /// The lcore id.
    pub core: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// TSC cycles spent in polls that received packets.
    pub busy_cycles: u64,
    /// RX polls (bursts attempted).
    pub polls: u64,
}

/// One IPsec SA's counters, summed over the workers (and the control thread's probes). The
/// key is not part of it: telemetry and metrics must never carry one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaMetrics {
    /// The tunnel the SA belongs to.
    pub tunnel: String,
    pub direction: SaDirection,
    pub spi: u32,
    /// Packets encrypted (outbound) or authenticated and decrypted (inbound).
    pub packets: u64,
    /// Their ESP payload bytes (the inner packets).
    pub bytes: u64,
    /// Inbound packets whose ICV did not verify.
    pub auth_failures: u64,
    /// Inbound packets refused by the anti-replay window.
    pub replays: u64,
    /// The last sequence number sent (outbound) or the highest authenticated (inbound); 0
    /// before the first.
    pub last_seq: u64,
}

impl SaMetrics {
    /// The SA's counters as they are now.
    pub fn read(tunnel: &str, direction: SaDirection, spi: u32, shared: &SaShared) -> Self {
        SaMetrics {
            tunnel: tunnel.to_string(),
            direction,
            spi,
            packets: shared.total(SaCounter::Packets),
            bytes: shared.total(SaCounter::Bytes),
            auth_failures: shared.total(SaCounter::AuthFailures),
            replays: shared.total(SaCounter::Replays),
            last_seq: shared.total(SaCounter::LastSeq),
        }
    }

    /// Every SA of `ipsec`, in the order of [`Snapshot::sas`]; `tunnel_name` names a tunnel id
    /// (an id it does not know is shown as `#<id>`).
    pub fn all<'a>(
        ipsec: &IpsecConfig,
        tunnel_name: impl Fn(TunnelId) -> Option<&'a str>,
    ) -> Vec<SaMetrics> {
        let mut out = Vec::new();
        for (id, sas) in &ipsec.tunnels {
            let fallback;
            let name = match tunnel_name(*id) {
                Some(n) => n,
                None => {
                    fallback = format!("#{}", id.0);
                    &fallback
                }
            };
            if let Some(o) = &sas.outbound {
                out.push(SaMetrics::read(
                    name,
                    SaDirection::Outbound,
                    o.spi,
                    &o.shared,
                ));
            }
            for i in &sas.inbound {
                out.push(SaMetrics::read(
                    name,
                    SaDirection::Inbound,
                    i.spi,
                    &i.shared,
                ));
            }
        }
        out
    }

    /// The SPI as operators and `ip xfrm` write it: `0x` and eight hex digits.
    pub fn spi_hex(&self) -> String {
        format!("{:#010x}", self.spi)
    }
}

/// Drops of one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCount {
    pub reason: String,
    pub count: u64,
}

/// The latest snapshot, shared between the control thread (writer, once per stats interval)
/// and the metrics servers (readers, once per request). A mutex around an `Arc` is enough at
/// this rate: the lock is held only to swap or clone the pointer.
#[derive(Debug, Default)]
pub struct MetricsHub {
    current: Mutex<Arc<Snapshot>>,
}

impl MetricsHub {
    /// A hub holding an empty snapshot until the first `publish`.
    pub fn new() -> Self {
        MetricsHub::default()
    }

    /// Replaces the current snapshot.
    pub fn publish(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    /// The latest snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

mod exposition;
pub mod process;
mod rate;
mod rtt_window;

pub use exposition::{
    encode, render_openmetrics, render_prometheus, Format, OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_CONTENT_TYPE,
};
pub use process::ProcessMetrics;
pub use rate::{RateMeter, RATE_SPAN};
pub use rtt_window::{RttWindow, RTT_WINDOW, RTT_WINDOW_SAMPLES};

#[cfg(test)]
mod tests;
