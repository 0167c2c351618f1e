//! The snapshot as Prometheus metrics, encoded by `prometheus-client` (the official Rust
//! client): a [`Collector`] writes every family of one [`Snapshot`] and the client's OpenMetrics
//! text encoder writes them out. The Prometheus text format 0.0.4 is derived from that text
//! ([`to_text_004`]), so both formats always carry the same families, series and values.
//!
//! # Conventions
//!
//! Every family has `# HELP` and `# TYPE` lines before its samples, all samples of a family are
//! contiguous, and families appear even when they have no samples (so a scrape of an appliance
//! without tunnels still documents the names). Names start with `conduit_` (the standard
//! `process_*` families excepted); counters' samples end in `_total` (in the 0.0.4 format the
//! family name does too); seconds and bytes are the units. Label values are escaped (`\`,
//! `"`, newline) here, as the client writes them as given.
//!
//! - **Tunnel state** is one-hot: `conduit_tunnel_state{tunnel, state}` is 1 for the current
//!   state and 0 for the others (`healthy`, `degraded`, `down`, `disabled`, `admin-down`), the
//!   usual encoding of an enum: `conduit_tunnel_state{state="down"} == 1` selects down tunnels,
//!   and `sum by (state)` counts them.
//! - **RTT** is a histogram in seconds ([`RTT_BUCKETS_SECONDS`]) over every reply since the
//!   tunnel was configured: `histogram_quantile(0.99, rate(conduit_tunnel_rtt_seconds_bucket[5m]))`
//!   gives a windowed percentile. A tunnel without replies has no RTT series.
//! - **Info** families (`conduit_build_info`, `conduit_tunnel_info`) are OpenMetrics `info`
//!   metrics (gauges of value 1 in the 0.0.4 format) carrying versions and tunnel kinds as
//!   labels, joined on only when needed.
//! - **Timestamps** (`..._timestamp_seconds`) are Unix times, as Prometheus' `time()`.
//! - **IPsec SAs** (`conduit_sa_*`) are labelled `tunnel`, `direction` (`outbound`, `inbound`)
//!   and `spi` (`0x` and eight hex digits): a rekey adds an SA's series and removes the old
//!   one's, so `sum by (tunnel, direction)` follows a tunnel across rekeys.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{
    ApplianceMetrics, CoreMetrics, DropCount, PoolMetrics, PortMetrics, ProcessMetrics,
    RttHistogram, SaMetrics, Snapshot, TunnelMetrics, TunnelStatus, RTT_BUCKETS_SECONDS,
};

/// `Content-Type` of the Prometheus text format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of OpenMetrics 1.0.0 text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (what any scraper reads).
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Text => PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics when it lists
    /// `application/openmetrics-text` (without a version or at 1.0.0) with a quality at least
    /// that of the text format (`text/plain`, `text/*`, `*/*`); the text format otherwise,
    /// including without a header.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut om, mut text) = (0.0f64, 0.0f64);
        for range in accept.unwrap_or("").split(',') {
            let mut params = range.split(';').map(str::trim);
            let media = params.next().unwrap_or("").to_ascii_lowercase();
            let (mut q, mut version) = (1.0, None);
            for p in params {
                match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("q", v)) => q = v.parse().unwrap_or(0.0),
                    Some(("version", v)) => version = Some(v.to_string()),
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text"
                    if version.as_deref().is_none_or(|v| v == "1.0.0") =>
                {
                    om = om.max(q)
                }
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// Encodes `snapshot` in `format`.
pub fn encode(snapshot: Arc<Snapshot>, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut om = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut om, &registry) {
        // Writing to a String fails only if a value cannot be encoded; none of ours can.
        log::error!("metrics: encoding failed ({e}); the exposition is truncated");
    }
    match format {
        Format::OpenMetrics => om,
        Format::Text => to_text_004(&om),
    }
}

/// `encode(snapshot, Format::Text)` of a borrowed snapshot (clones it).
pub fn render_prometheus(snapshot: &Snapshot) -> String {
    encode(Arc::new(snapshot.clone()), Format::Text)
}

/// `encode(snapshot, Format::OpenMetrics)` of a borrowed snapshot (clones it).
pub fn render_openmetrics(snapshot: &Snapshot) -> String {
    encode(Arc::new(snapshot.clone()), Format::OpenMetrics)
}

/// OpenMetrics text as the Prometheus text format 0.0.4: counter families are named with their
/// `_total` suffix, `info` families become gauges named with `_info`, `unknown` is `untyped`,
/// and the `# UNIT` and `# EOF` lines go. Samples are the same in both (Conduit writes no
/// exemplars, timestamps or `_created` series).
fn to_text_004(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').map_or("", |(_, text)| text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            if let Some(text) = help.take() {
                let _ = writeln!(out, "# HELP {name}{suffix} {text}");
            }
            let _ = writeln!(out, "# TYPE {name}{suffix} {kind}");
        } else if !(line.starts_with("# UNIT ") || line == "# EOF") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Writes the families of one snapshot at each scrape.
#[derive(Debug)]
struct SnapshotCollector(Arc<Snapshot>);

impl Collector for SnapshotCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &*self.0;
        appliance(&mut e, &s.appliance)?;
        tunnel_health(&mut e, &s.tunnels)?;
        tunnel_probes(&mut e, &s.tunnels)?;
        tunnel_rtt(&mut e, &s.tunnels)?;
        tunnel_traffic(&mut e, &s.tunnels)?;
        sas(&mut e, &s.sas)?;
        ports(&mut e, &s.ports)?;
        cores(&mut e, &s.cores)?;
        drops(&mut e, &s.drops)?;
        pools(&mut e, &s.pools)?;
        process(&mut e, s.process.as_ref())
    }
}

/// A label value, escaped as both text formats require: `\` → `\\`, `"` → `\"`, newline →
/// `\n`.
struct Esc<'a>(&'a str);

impl EncodeLabelValue for Esc<'_> {
    fn encode(&self, e: &mut LabelValueEncoder) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => e.write_str("\\\\")?,
                '"' => e.write_str("\\\"")?,
                '\n' => e.write_str("\\n")?,
                c => e.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A sample's value.
enum Value {
    Count(u64),
    Gauge(i64),
    Seconds(f64),
}

fn secs(d: Duration) -> Value {
    Value::Seconds(d.as_secs_f64())
}

fn gauge(v: u64) -> Value {
    Value::Gauge(i64::try_from(v).unwrap_or(i64::MAX))
}

fn put(m: MetricEncoder, v: Value) -> fmt::Result {
    match v {
        Value::Count(n) => ConstCounter::new(n).encode(m),
        Value::Gauge(n) => {
            let mut m = m;
            m.encode_gauge(&n)
        }
        Value::Seconds(x) => {
            let mut m = m;
            m.encode_gauge(&x)
        }
    }
}

/// A family with one unlabelled sample.
fn single(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    v: Value,
) -> fmt::Result {
    put(e.encode_descriptor(name, help, None, ty)?, v)
}

/// A family with one sample per `(labels, value)`.
fn labelled<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    samples: impl IntoIterator<Item = (Vec<(&'static str, Esc<'a>)>, Value)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in samples {
        put(m.encode_family(&labels)?, v)?;
    }
    Ok(())
}

/// A family with one sample per item, labelled `label=<key(item)>`.
fn per<'a, T>(
    e: &mut DescriptorEncoder,
    (name, ty, help): (&str, MetricType, &str),
    label: &'static str,
    items: &'a [T],
    key: impl Fn(&'a T) -> &'a str,
    value: impl Fn(&T) -> Value,
) -> fmt::Result {
    labelled(
        e,
        name,
        help,
        ty,
        items
            .iter()
            .map(|it| (vec![(label, Esc(key(it)))], value(it))),
    )
}

const COUNTER: MetricType = MetricType::Counter;
const GAUGE: MetricType = MetricType::Gauge;

/// Build info, uptime, table generation, reloads, the control loop, rejected replies.
fn appliance(e: &mut DescriptorEncoder, a: &ApplianceMetrics) -> fmt::Result {
    let mut m = e.encode_descriptor(
        "conduit_build",
        "Versions and configuration file of the running appliance.",
        None,
        MetricType::Info,
    )?;
    m.encode_info(&[
        ("version", Esc(&a.version)),
        ("dpdk_version", Esc(&a.dpdk_version)),
        ("config_path", Esc(&a.config_path)),
    ])?;
    single(
        e,
        "conduit_uptime_seconds",
        "Seconds since the appliance started.",
        GAUGE,
        secs(a.uptime),
    )?;
    single(
        e,
        "conduit_table_generation",
        "Generation of the forwarding table in use.",
        GAUGE,
        gauge(a.table_generation),
    )?;
    labelled(
        e,
        "conduit_reloads",
        "Configuration reloads, by result.",
        COUNTER,
        [
            (vec![("result", Esc("ok"))], Value::Count(a.reloads_ok)),
            (
                vec![("result", Esc("failed"))],
                Value::Count(a.reloads_failed),
            ),
        ],
    )?;
    single(
        e,
        "conduit_last_reload_success_timestamp_seconds",
        "Unix time of the latest successful configuration load (the start counts).",
        GAUGE,
        secs(a.last_reload_success),
    )?;
    control_loop(e, a)?;
    labelled(
        e,
        "conduit_probe_replies_rejected",
        "Probe replies ignored, by reason: forged (bad MAC), wrong_path, stale (not outstanding).",
        COUNTER,
        [
            ("forged", a.probe_reply_forged),
            ("wrong_path", a.probe_reply_wrong_path),
            ("stale", a.probe_reply_stale),
        ]
        .map(|(reason, n)| (vec![("reason", Esc(reason))], Value::Count(n))),
    )
}

/// The control loop's heartbeat: a counter that stops moving and a timestamp that ages when
/// the thread that runs health checks stops turning.
fn control_loop(e: &mut DescriptorEncoder, a: &ApplianceMetrics) -> fmt::Result {
    single(
        e,
        "conduit_control_loop_iterations",
        "Turns of the control loop (probes, timeouts, failover, metrics) since start.",
        COUNTER,
        Value::Count(a.control_loop_iterations),
    )?;
    single(
        e,
        "conduit_control_loop_last_iteration_timestamp_seconds",
        "Unix time of the latest control-loop turn.",
        GAUGE,
        secs(a.control_loop_last_iteration),
    )?;
    single(
        e,
        "conduit_control_loop_stalls",
        "Control-loop turns that started far later than the loop's period (stalls).",
        COUNTER,
        Value::Count(a.control_loop_stalls),
    )?;
    single(
        e,
        "conduit_control_loop_longest_gap_seconds",
        "The longest gap between two control-loop turns since start.",
        GAUGE,
        secs(a.control_loop_longest_gap),
    )
}

fn tunnel_name(t: &TunnelMetrics) -> &str {
    &t.name
}

/// Kind (info), one-hot state, penalty and the time of the latest state change.
fn tunnel_health(e: &mut DescriptorEncoder, t: &[TunnelMetrics]) -> fmt::Result {
    let mut m = e.encode_descriptor(
        "conduit_tunnel",
        "One series per configured tunnel with its kind.",
        None,
        MetricType::Info,
    )?;
    for x in t {
        m.encode_info(&[("tunnel", Esc(&x.name)), ("kind", Esc(x.kind.as_str()))])?;
    }
    labelled(
        e,
        "conduit_tunnel_state",
        "Tunnel health, one-hot: 1 for the current state (healthy, degraded, down, disabled, admin-down), 0 for the others.",
        GAUGE,
        t.iter().flat_map(|x| {
            TunnelStatus::ALL.map(|st| {
                (
                    vec![("tunnel", Esc(&x.name)), ("state", Esc(st.as_str()))],
                    Value::Gauge(i64::from(x.status == st)),
                )
            })
        }),
    )?;
    per(
        e,
        (
            "conduit_tunnel_penalty",
            GAUGE,
            "Added to the priority of every route through the tunnel by its health.",
        ),
        "tunnel",
        t,
        tunnel_name,
        |x| Value::Gauge(i64::from(x.penalty)),
    )?;
    labelled(
        e,
        "conduit_tunnel_last_state_change_timestamp_seconds",
        "Unix time of the tunnel's latest state change; absent before the first.",
        GAUGE,
        t.iter().filter_map(|x| {
            let at = x.last_state_change?;
            Some((vec![("tunnel", Esc(&x.name))], secs(at)))
        }),
    )
}

/// Health-probe counters: state changes, probes sent, replies, losses, late replies.
fn tunnel_probes(e: &mut DescriptorEncoder, t: &[TunnelMetrics]) -> fmt::Result {
    type Field = fn(&TunnelMetrics) -> u64;
    let families: [(&str, &str, Field); 5] = [
        (
            "conduit_tunnel_state_changes",
            "Health state changes of the tunnel.",
            |x| x.state_changes,
        ),
        (
            "conduit_tunnel_probes_sent",
            "Health probes sent through the tunnel, retries included.",
            |x| x.probes_sent,
        ),
        (
            "conduit_tunnel_probe_replies",
            "Health probe replies received in time.",
            |x| x.probe_replies,
        ),
        (
            "conduit_tunnel_probes_lost",
            "Health probes whose timeout passed without a reply.",
            |x| x.probes_lost,
        ),
        (
            "conduit_tunnel_probe_late_replies",
            "Health probe replies that arrived after the probe timed out.",
            |x| x.probe_late_replies,
        ),
    ];
    for (name, help, f) in families {
        per(e, (name, COUNTER, help), "tunnel", t, tunnel_name, |x| {
            Value::Count(f(x))
        })?;
    }
    Ok(())
}

/// The RTT histogram of every tunnel with replies.
fn tunnel_rtt(e: &mut DescriptorEncoder, t: &[TunnelMetrics]) -> fmt::Result {
    let mut m = e.encode_descriptor(
        "conduit_tunnel_rtt_seconds",
        "Round-trip time of health probe replies since the tunnel was configured; absent without replies.",
        None,
        MetricType::Histogram,
    )?;
    for x in t {
        if let Some(h) = &x.rtt_histogram {
            let labels = [("tunnel", Esc(&x.name))];
            m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                h.sum_seconds,
                h.count,
                &buckets(h),
                None,
            )?;
        }
    }
    Ok(())
}

/// The per-bucket (not cumulative) counts the client's encoder expects, `f64::MAX` standing
/// for `+Inf`.
fn buckets(h: &RttHistogram) -> Vec<(f64, u64)> {
    let mut below = 0;
    let mut out: Vec<(f64, u64)> = RTT_BUCKETS_SECONDS
        .iter()
        .zip(h.le_counts)
        .map(|(&le, c)| {
            let n = c.saturating_sub(below);
            below = below.max(c);
            (le, n)
        })
        .collect();
    out.push((f64::MAX, h.count.saturating_sub(below)));
    out
}

/// Packets and bytes through each tunnel, both directions.
fn tunnel_traffic(e: &mut DescriptorEncoder, t: &[TunnelMetrics]) -> fmt::Result {
    type Field = fn(&TunnelMetrics) -> u64;
    let families: [(&str, &str, Field); 4] = [
        (
            "conduit_tunnel_rx_packets",
            "Packets received from the tunnel and decapsulated.",
            |x| x.rx_packets,
        ),
        (
            "conduit_tunnel_rx_bytes",
            "Bytes received from the tunnel (outer packets).",
            |x| x.rx_bytes,
        ),
        (
            "conduit_tunnel_tx_packets",
            "Packets encapsulated into the tunnel.",
            |x| x.tx_packets,
        ),
        (
            "conduit_tunnel_tx_bytes",
            "Bytes sent into the tunnel (outer packets).",
            |x| x.tx_bytes,
        ),
    ];
    for (name, help, f) in families {
        per(e, (name, COUNTER, help), "tunnel", t, tunnel_name, |x| {
            Value::Count(f(x))
        })?;
    }
    Ok(())
}

/// The counters of each IPsec SA, labelled by tunnel, direction (`outbound`, `inbound`) and
/// SPI (`0x` and eight hex digits, as `ip xfrm` shows it).
fn sas(e: &mut DescriptorEncoder, sas: &[SaMetrics]) -> fmt::Result {
    type Field = fn(&SaMetrics) -> u64;
    let families: [(&str, MetricType, &str, Field); 5] = [
        (
            "conduit_sa_packets",
            COUNTER,
            "Packets encrypted (outbound) or authenticated and decrypted (inbound) with the IPsec SA.",
            |x| x.packets,
        ),
        (
            "conduit_sa_bytes",
            COUNTER,
            "ESP payload bytes (inner packets) encrypted or decrypted with the IPsec SA.",
            |x| x.bytes,
        ),
        (
            "conduit_sa_auth_failures",
            COUNTER,
            "Inbound ESP packets whose ICV did not verify with the IPsec SA.",
            |x| x.auth_failures,
        ),
        (
            "conduit_sa_replays",
            COUNTER,
            "Inbound ESP packets the IPsec SA's anti-replay window refused.",
            |x| x.replays,
        ),
        (
            "conduit_sa_last_sequence",
            GAUGE,
            "Last ESP sequence number sent (outbound) or highest authenticated (inbound) on the IPsec SA; 0 before the first.",
            |x| x.last_seq,
        ),
    ];
    let spis: Vec<String> = sas.iter().map(SaMetrics::spi_hex).collect();
    for (name, ty, help, f) in families {
        labelled(
            e,
            name,
            help,
            ty,
            sas.iter().zip(&spis).map(|(x, spi)| {
                let labels = vec![
                    ("tunnel", Esc(&x.tunnel)),
                    ("direction", Esc(x.direction.as_str())),
                    ("spi", Esc(spi)),
                ];
                let v = if matches!(ty, MetricType::Counter) {
                    Value::Count(f(x))
                } else {
                    gauge(f(x))
                };
                (labels, v)
            }),
        )?;
    }
    Ok(())
}

fn port_name(p: &PortMetrics) -> &str {
    &p.name
}

fn pool_name(p: &PoolMetrics) -> &str {
    &p.name
}

/// Port counters (`rte_eth_stats`) and link state.
fn ports(e: &mut DescriptorEncoder, p: &[PortMetrics]) -> fmt::Result {
    type Field = fn(&PortMetrics) -> u64;
    let families: [(&str, &str, Field); 8] = [
        (
            "conduit_port_rx_packets",
            "Packets received by the port.",
            |x| x.rx_packets,
        ),
        (
            "conduit_port_rx_bytes",
            "Bytes received by the port.",
            |x| x.rx_bytes,
        ),
        (
            "conduit_port_tx_packets",
            "Packets sent by the port.",
            |x| x.tx_packets,
        ),
        ("conduit_port_tx_bytes", "Bytes sent by the port.", |x| {
            x.tx_bytes
        }),
        (
            "conduit_port_rx_missed",
            "Packets the NIC dropped because the RX queues were full (imissed).",
            |x| x.rx_missed,
        ),
        (
            "conduit_port_rx_errors",
            "Erroneous received packets (ierrors).",
            |x| x.rx_errors,
        ),
        (
            "conduit_port_tx_dropped",
            "Packets the TX queue did not accept, freed by Conduit.",
            |x| x.tx_dropped,
        ),
        (
            "conduit_port_rx_nombuf",
            "Received packets dropped because the mempool had no free mbuf (rx_nombuf).",
            |x| x.rx_nombuf,
        ),
    ];
    for (metric, help, f) in families {
        per(e, (metric, COUNTER, help), "port", p, port_name, |x| {
            Value::Count(f(x))
        })?;
    }
    labelled(
        e,
        "conduit_port_link_up",
        "1 when the port's link is up, 0 when down; absent when the driver cannot tell.",
        GAUGE,
        p.iter().filter_map(|x| {
            Some((
                vec![("port", Esc(&x.name))],
                Value::Gauge(i64::from(x.link_up?)),
            ))
        }),
    )
}

/// Worker-core counters.
fn cores(e: &mut DescriptorEncoder, c: &[CoreMetrics]) -> fmt::Result {
    type Field = fn(&CoreMetrics) -> u64;
    let families: [(&str, &str, Field); 4] = [
        (
            "conduit_core_rx_packets",
            "Packets received by the worker core.",
            |x| x.rx_packets,
        ),
        (
            "conduit_core_tx_packets",
            "Packets sent by the worker core.",
            |x| x.tx_packets,
        ),
        (
            "conduit_core_busy_cycles",
            "TSC cycles the worker core spent on polls that received packets.",
            |x| x.busy_cycles,
        ),
        ("conduit_core_polls", "RX polls of the worker core.", |x| {
            x.polls
        }),
    ];
    let ids: Vec<String> = c.iter().map(|x| x.core.to_string()).collect();
    for (metric, help, f) in families {
        labelled(
            e,
            metric,
            help,
            COUNTER,
            c.iter()
                .zip(&ids)
                .map(|(x, id)| (vec![("core", Esc(id))], Value::Count(f(x)))),
        )?;
    }
    Ok(())
}

/// Pipeline drops by reason.
fn drops(e: &mut DescriptorEncoder, d: &[DropCount]) -> fmt::Result {
    per(
        e,
        (
            "conduit_drops",
            COUNTER,
            "Packets dropped by the pipeline, by reason.",
        ),
        "reason",
        d,
        |x| &x.reason,
        |x| Value::Count(x.count),
    )
}

/// Packet mempools.
fn pools(e: &mut DescriptorEncoder, p: &[PoolMetrics]) -> fmt::Result {
    per(
        e,
        (
            "conduit_mempool_in_use",
            GAUGE,
            "Mbufs of the pool allocated: in queues, in flight, in per-core caches.",
        ),
        "pool",
        p,
        pool_name,
        |x| gauge(x.in_use),
    )?;
    per(
        e,
        (
            "conduit_mempool_capacity",
            GAUGE,
            "Mbufs the pool was created with.",
        ),
        "pool",
        p,
        pool_name,
        |x| gauge(x.capacity),
    )
}

/// The standard process families (the names of the official clients' process collectors).
fn process(e: &mut DescriptorEncoder, p: Option<&ProcessMetrics>) -> fmt::Result {
    type Field = fn(&ProcessMetrics) -> Value;
    let families: [(&str, MetricType, &str, Field); 6] = [
        (
            "process_cpu_seconds",
            COUNTER,
            "Total user and system CPU time spent in seconds.",
            |p| Value::Seconds(p.cpu_seconds),
        ),
        (
            "process_resident_memory_bytes",
            GAUGE,
            "Resident memory size in bytes.",
            |p| gauge(p.resident_memory_bytes),
        ),
        (
            "process_virtual_memory_bytes",
            GAUGE,
            "Virtual memory size in bytes.",
            |p| gauge(p.virtual_memory_bytes),
        ),
        (
            "process_start_time_seconds",
            GAUGE,
            "Start time of the process since unix epoch in seconds.",
            |p| secs(p.start_time),
        ),
        (
            "process_open_fds",
            GAUGE,
            "Number of open file descriptors.",
            |p| gauge(p.open_fds),
        ),
        (
            "process_max_fds",
            GAUGE,
            "Maximum number of open file descriptors.",
            |p| gauge(p.max_fds),
        ),
    ];
    for (name, ty, help, f) in families {
        let m = e.encode_descriptor(name, help, None, ty)?;
        if let Some(p) = p {
            match (ty, f(p)) {
                // A CPU-seconds counter is a float counter.
                (MetricType::Counter, Value::Seconds(x)) => ConstCounter::new(x).encode(m)?,
                (_, v) => put(m, v)?,
            }
        }
    }
    Ok(())
}
