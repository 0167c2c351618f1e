//! What an operator reads while the appliance runs: one [`Snapshot`] of every tunnel, port,
//! worker core and drop counter, published by the control thread through a [`MetricsHub`] and
//! served as Prometheus text ([`render_prometheus`], served by [`crate::prometheus`]) and as
//! DPDK telemetry commands (registered by the `conduit` binary, which owns DPDK).
//!
//! The snapshot is plain data filled by the control thread every stats interval; nothing here
//! reads a counter, a clock or DPDK, and nothing is on the packet path. Readers (the HTTP
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
//! t.rtt = Some(RttSummary { .. });       // from the tunnel's RTT hdrhistogram (src/ops.rs)
//! hub.publish(Snapshot { appliance, tunnels, ports, cores, drops });
//! // shutdown: server.stop() (or drop it)
//! ```
//!
//! # Prometheus exposition (text format 0.0.4)
//!
//! Every family has `# HELP` and `# TYPE` lines before its samples, all samples of a family are
//! contiguous, and families appear even when they have no samples (so a scrape of an appliance
//! without tunnels still documents the names). Names start with `conduit_`; monotonic counts are
//! `counter`s named `..._total`; label values escape `\`, `"` and newline as the format
//! requires.
//!
//! - **Tunnel state** is one-hot: `conduit_tunnel_state{tunnel, state}` is 1 for the current
//!   state and 0 for the others (`healthy`, `degraded`, `down`, `disabled`, `admin-down`), the usual
//!   Prometheus encoding of an enum: `conduit_tunnel_state{state="down"} == 1` selects down
//!   tunnels, and `sum by (state)` counts them, with no table of numeric codes to remember.
//!   `disabled` means health checks are off for the tunnel; it then forwards as healthy.
//!   `admin-down` means an operator took the tunnel down; it then forwards as down.
//! - **Penalty**: `conduit_tunnel_penalty` is what the published table adds to the priority of
//!   every route through the tunnel (0 when healthy or disabled).
//! - **RTT** percentiles are gauges in seconds (Prometheus' base unit), one series per quantile
//!   label `0.5`, `0.9`, `0.99` and `1` (the maximum), over whatever window the control thread
//!   measures. A tunnel without samples has no RTT series at all rather than a made-up 0.
//! - **Tunnel kind** is a label of `conduit_tunnel_info` (value 1), not of every series, so a
//!   query joins on it only when needed; `conduit_build_info` does the same for versions and
//!   the config path.
//! - **Reloads** are one counter with `result="ok"|"failed"`.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conduit_packet::pipeline::TunnelKind;
use conduit_packet::route::{AdminState, Health};

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

/// Round-trip-time percentiles of a tunnel's probe replies, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RttSummary {
    /// Replies the percentiles were computed over.
    pub samples: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
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
    /// `None` while no reply has been measured.
    pub rtt: Option<RttSummary>,
    pub state_changes: u64,
    /// Packets and bytes received from the tunnel (decapsulated).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Packets and bytes sent into the tunnel (encapsulated).
    pub tx_packets: u64,
    pub tx_bytes: u64,
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
            state_changes: 0,
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
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

/// The `Content-Type` of [`render_prometheus`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: `\` → `\\`, `"` → `\"`, newline → `\n`.
fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A sample's value: integers exactly, floats in Rust's shortest round-trip form.
enum Num {
    U(u64),
    F(f64),
}

struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // HELP text escapes `\` and newline (our help strings have neither, but stay safe).
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: Num) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label(val, &mut self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = match v {
            Num::U(x) => writeln!(self.out, " {x}"),
            Num::F(x) => writeln!(self.out, " {x}"),
        };
    }

    /// A family `(name, type, help)` with one sample per item of `items`, labelled
    /// `label=<key(item)>`.
    fn per<T>(
        &mut self,
        (name, kind, help): (&str, &str, &str),
        label: &str,
        items: &[T],
        key: impl Fn(&T) -> String,
        value: impl Fn(&T) -> u64,
    ) {
        self.family(name, kind, help);
        for it in items {
            let k = key(it);
            self.sample(name, &[(label, &k)], Num::U(value(it)));
        }
    }
}

/// Renders `s` in the Prometheus text exposition format 0.0.4 (see the module docs).
pub fn render_prometheus(s: &Snapshot) -> String {
    let mut w = Writer {
        out: String::with_capacity(4096 + 2048 * s.tunnels.len()),
    };
    render_appliance(&mut w, &s.appliance);
    render_tunnel_health(&mut w, &s.tunnels);
    render_tunnel_probes(&mut w, &s.tunnels);
    render_tunnel_rtt(&mut w, &s.tunnels);
    render_tunnel_traffic(&mut w, &s.tunnels);
    render_ports(&mut w, &s.ports);
    render_cores(&mut w, &s.cores);
    render_drops(&mut w, &s.drops);
    w.out
}

/// The tunnel label of a per-tunnel sample.
fn tunnel_name(x: &TunnelMetrics) -> String {
    x.name.clone()
}

/// Build info, uptime, table generation and reloads.
fn render_appliance(w: &mut Writer, a: &ApplianceMetrics) {
    w.family(
        "conduit_build_info",
        "gauge",
        "Versions and configuration file of the running appliance (value 1).",
    );
    w.sample(
        "conduit_build_info",
        &[
            ("version", &a.version),
            ("dpdk_version", &a.dpdk_version),
            ("config_path", &a.config_path),
        ],
        Num::U(1),
    );
    w.family(
        "conduit_uptime_seconds",
        "gauge",
        "Seconds since the appliance started.",
    );
    w.sample(
        "conduit_uptime_seconds",
        &[],
        Num::F(a.uptime.as_secs_f64()),
    );
    w.family(
        "conduit_table_generation",
        "gauge",
        "Generation of the forwarding table in use.",
    );
    w.sample("conduit_table_generation", &[], Num::U(a.table_generation));
    w.family(
        "conduit_reloads_total",
        "counter",
        "Configuration reloads, by result.",
    );
    w.sample(
        "conduit_reloads_total",
        &[("result", "ok")],
        Num::U(a.reloads_ok),
    );
    w.sample(
        "conduit_reloads_total",
        &[("result", "failed")],
        Num::U(a.reloads_failed),
    );
    render_control_loop(w, a);
    w.family(
        "conduit_probe_replies_rejected_total",
        "counter",
        "Probe replies ignored, by reason: forged (bad MAC), wrong_path, stale (not outstanding).",
    );
    for (reason, n) in [
        ("forged", a.probe_reply_forged),
        ("wrong_path", a.probe_reply_wrong_path),
        ("stale", a.probe_reply_stale),
    ] {
        w.sample(
            "conduit_probe_replies_rejected_total",
            &[("reason", reason)],
            Num::U(n),
        );
    }
}

/// The control loop's heartbeat: a counter that stops moving and a timestamp that ages when
/// the thread that runs health checks stops turning.
fn render_control_loop(w: &mut Writer, a: &ApplianceMetrics) {
    w.family(
        "conduit_control_loop_iterations_total",
        "counter",
        "Turns of the control loop (probes, timeouts, failover, metrics) since start.",
    );
    w.sample(
        "conduit_control_loop_iterations_total",
        &[],
        Num::U(a.control_loop_iterations),
    );
    w.family(
        "conduit_control_loop_last_iteration_timestamp_seconds",
        "gauge",
        "Unix time of the latest control-loop turn.",
    );
    w.sample(
        "conduit_control_loop_last_iteration_timestamp_seconds",
        &[],
        Num::F(a.control_loop_last_iteration.as_secs_f64()),
    );
    w.family(
        "conduit_control_loop_stalls_total",
        "counter",
        "Control-loop turns that started far later than the loop's period (stalls).",
    );
    w.sample(
        "conduit_control_loop_stalls_total",
        &[],
        Num::U(a.control_loop_stalls),
    );
    w.family(
        "conduit_control_loop_longest_gap_seconds",
        "gauge",
        "The longest gap between two control-loop turns since start.",
    );
    w.sample(
        "conduit_control_loop_longest_gap_seconds",
        &[],
        Num::F(a.control_loop_longest_gap.as_secs_f64()),
    );
}

/// Kind (info), one-hot state and penalty of every tunnel.
fn render_tunnel_health(w: &mut Writer, t: &[TunnelMetrics]) {
    w.family(
        "conduit_tunnel_info",
        "gauge",
        "One series per configured tunnel with its kind (value 1).",
    );
    for x in t {
        w.sample(
            "conduit_tunnel_info",
            &[("tunnel", &x.name), ("kind", x.kind.as_str())],
            Num::U(1),
        );
    }
    w.family(
        "conduit_tunnel_state",
        "gauge",
        "Tunnel health, one-hot: 1 for the current state (healthy, degraded, down, disabled, admin-down), 0 for the others.",
    );
    for x in t {
        for st in TunnelStatus::ALL {
            w.sample(
                "conduit_tunnel_state",
                &[("tunnel", &x.name), ("state", st.as_str())],
                Num::U(u64::from(x.status == st)),
            );
        }
    }
    w.per(
        (
            "conduit_tunnel_penalty",
            "gauge",
            "Added to the priority of every route through the tunnel by its health.",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| u64::from(x.penalty),
    );
}

/// Health-probe counters: state changes, probes sent, replies, losses, late replies.
fn render_tunnel_probes(w: &mut Writer, t: &[TunnelMetrics]) {
    w.per(
        (
            "conduit_tunnel_state_changes_total",
            "counter",
            "Health state changes of the tunnel.",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| x.state_changes,
    );
    w.per(
        (
            "conduit_tunnel_probes_sent_total",
            "counter",
            "Health probes sent through the tunnel, retries included.",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| x.probes_sent,
    );
    w.per(
        (
            "conduit_tunnel_probe_replies_total",
            "counter",
            "Health probe replies received in time.",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| x.probe_replies,
    );
    w.per(
        (
            "conduit_tunnel_probes_lost_total",
            "counter",
            "Health probes whose timeout passed without a reply.",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| x.probes_lost,
    );
    w.per(
        (
            "conduit_tunnel_probe_late_replies_total",
            "counter",
            "Health probe replies that arrived after the probe timed out.",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| x.probe_late_replies,
    );
}

/// RTT quantiles and their sample count, for tunnels with samples only.
fn render_tunnel_rtt(w: &mut Writer, t: &[TunnelMetrics]) {
    w.family(
        "conduit_tunnel_rtt_seconds",
        "gauge",
        "Round-trip time of health probes by quantile (1 is the maximum); absent without samples.",
    );
    for x in t {
        if let Some(r) = &x.rtt {
            for (q, us) in [
                ("0.5", r.p50_us),
                ("0.9", r.p90_us),
                ("0.99", r.p99_us),
                ("1", r.max_us),
            ] {
                w.sample(
                    "conduit_tunnel_rtt_seconds",
                    &[("tunnel", &x.name), ("quantile", q)],
                    Num::F(us as f64 / 1e6),
                );
            }
        }
    }
    w.family(
        "conduit_tunnel_rtt_samples",
        "gauge",
        "Probe replies the RTT quantiles were computed over.",
    );
    for x in t {
        if let Some(r) = &x.rtt {
            w.sample(
                "conduit_tunnel_rtt_samples",
                &[("tunnel", &x.name)],
                Num::U(r.samples),
            );
        }
    }
}

/// Packets and bytes through each tunnel, both directions.
fn render_tunnel_traffic(w: &mut Writer, t: &[TunnelMetrics]) {
    w.per(
        (
            "conduit_tunnel_rx_packets_total",
            "counter",
            "Packets received from the tunnel and decapsulated.",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| x.rx_packets,
    );
    w.per(
        (
            "conduit_tunnel_rx_bytes_total",
            "counter",
            "Bytes received from the tunnel (outer packets).",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| x.rx_bytes,
    );
    w.per(
        (
            "conduit_tunnel_tx_packets_total",
            "counter",
            "Packets encapsulated into the tunnel.",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| x.tx_packets,
    );
    w.per(
        (
            "conduit_tunnel_tx_bytes_total",
            "counter",
            "Bytes sent into the tunnel (outer packets).",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| x.tx_bytes,
    );
}

/// Port counters (`rte_eth_stats`).
fn render_ports(w: &mut Writer, p: &[PortMetrics]) {
    let pname = |x: &PortMetrics| x.name.clone();
    for (metric, help, f) in [
        (
            "conduit_port_rx_packets_total",
            "Packets received by the port.",
            (|x: &PortMetrics| x.rx_packets) as fn(&PortMetrics) -> u64,
        ),
        (
            "conduit_port_rx_bytes_total",
            "Bytes received by the port.",
            |x| x.rx_bytes,
        ),
        (
            "conduit_port_tx_packets_total",
            "Packets sent by the port.",
            |x| x.tx_packets,
        ),
        (
            "conduit_port_tx_bytes_total",
            "Bytes sent by the port.",
            |x| x.tx_bytes,
        ),
        (
            "conduit_port_rx_missed_total",
            "Packets the NIC dropped because the RX queues were full (imissed).",
            |x| x.rx_missed,
        ),
        (
            "conduit_port_rx_errors_total",
            "Erroneous received packets (ierrors).",
            |x| x.rx_errors,
        ),
        (
            "conduit_port_tx_dropped_total",
            "Packets the TX queue did not accept, freed by Conduit.",
            |x| x.tx_dropped,
        ),
    ] {
        w.per((metric, "counter", help), "port", p, pname, f);
    }
}

/// Worker-core counters.
fn render_cores(w: &mut Writer, c: &[CoreMetrics]) {
    let cname = |x: &CoreMetrics| x.core.to_string();
    for (metric, help, f) in [
        (
            "conduit_core_rx_packets_total",
            "Packets received by the worker core.",
            (|x: &CoreMetrics| x.rx_packets) as fn(&CoreMetrics) -> u64,
        ),
        (
            "conduit_core_tx_packets_total",
            "Packets sent by the worker core.",
            |x| x.tx_packets,
        ),
        (
            "conduit_core_busy_cycles_total",
            "TSC cycles the worker core spent on polls that received packets.",
            |x| x.busy_cycles,
        ),
        (
            "conduit_core_polls_total",
            "RX polls of the worker core.",
            |x| x.polls,
        ),
    ] {
        w.per((metric, "counter", help), "core", c, cname, f);
    }
}

/// Pipeline drops by reason.
fn render_drops(w: &mut Writer, drops: &[DropCount]) {
    w.per(
        (
            "conduit_drops_total",
            "counter",
            "Packets dropped by the pipeline, by reason.",
        ),
        "reason",
        drops,
        |x| x.reason.clone(),
        |x| x.count,
    );
}

#[cfg(test)]
mod tests;
