use super::*;
use conduit_packet::esp::sa::{InboundSa, OutboundSa, SaKey, TunnelSas};
use std::collections::{BTreeMap, HashSet};

/// A snapshot with awkward names: quotes, backslashes and newlines in labels.
pub(crate) fn sample_snapshot() -> Snapshot {
    let mut a = TunnelMetrics::new(
        "gre-a",
        TunnelKind::Gre,
        TunnelStatus::Checked(Health::Healthy),
    );
    a.probes_sent = 100;
    a.probe_replies = 97;
    a.probes_lost = 3;
    a.probe_late_replies = 1;
    a.state_changes = 2;
    a.rx_packets = 11;
    a.rx_bytes = 1100;
    a.tx_packets = 22;
    a.tx_bytes = 2200;
    a.rtt = Some(RttSummary {
        samples: 97,
        p50_us: 1500,
        p90_us: 2500,
        p99_us: 9000,
        max_us: 12_345,
    });
    a.rtt_histogram = Some(RttHistogram::from_micros(&rtt_micros()));
    a.last_state_change = Some(Duration::from_millis(1_763_999_990_500));
    let mut b = TunnelMetrics::new(
        "ipsec.b",
        TunnelKind::Ipsec,
        TunnelStatus::Checked(Health::Down),
    );
    b.penalty = 1_000_000;
    b.probes_sent = 7;
    b.probes_lost = 7;
    let c = TunnelMetrics::new("we\"ird\\na\nme", TunnelKind::Gre, TunnelStatus::Disabled);
    Snapshot {
        appliance: ApplianceMetrics {
            version: "0.1.0".into(),
            dpdk_version: "DPDK 22.11.11".into(),
            config_path: "/etc/conduit/conduit.yaml".into(),
            uptime: Duration::from_millis(12_500),
            table_generation: 4,
            reloads_ok: 3,
            reloads_failed: 1,
            control_loop_iterations: 41_000,
            control_loop_last_iteration: Duration::from_millis(1_764_000_000_250),
            control_loop_stalls: 2,
            control_loop_longest_gap: Duration::from_millis(1_500),
            probe_reply_forged: 7,
            probe_reply_wrong_path: 5,
            probe_reply_stale: 3,
            last_reload_success: Duration::from_secs(1_763_999_000),
        },
        tunnels: vec![a, b, c],
        ports: vec![
            PortMetrics {
                name: "net_null0".into(),
                rx_packets: 5,
                rx_bytes: 500,
                tx_packets: 6,
                tx_bytes: 600,
                rx_missed: 7,
                rx_errors: 8,
                tx_dropped: 9,
                rx_nombuf: 10,
                link_up: Some(true),
            },
            PortMetrics {
                name: "0000:01:00.0".into(),
                rx_packets: 50,
                link_up: Some(false),
                ..Default::default()
            },
        ],
        cores: vec![
            CoreMetrics {
                core: 1,
                rx_packets: 31,
                tx_packets: 32,
                busy_cycles: 33,
                polls: 34,
            },
            CoreMetrics {
                core: 3,
                polls: 1,
                ..Default::default()
            },
        ],
        drops: vec![
            DropCount {
                reason: "no_route".into(),
                count: 42,
            },
            DropCount {
                reason: "gre_key_mismatch".into(),
                count: 0,
            },
        ],
        pools: vec![PoolMetrics {
            name: "conduit_pkts".into(),
            in_use: 1536,
            capacity: 8191,
        }],
        sas: SaMetrics::all(&sample_ipsec(), |id| {
            ["gre-a", "ipsec.b"].get(id.0 as usize).copied()
        }),
        process: Some(ProcessMetrics {
            cpu_seconds: 81.25,
            resident_memory_bytes: 52_428_800,
            virtual_memory_bytes: 4_294_967_296,
            start_time: Duration::from_millis(1_763_999_987_750),
            open_fds: 23,
            max_fds: 1024,
        }),
    }
}

/// The key of every sample SA: bytes that would stand out in any output.
const SAMPLE_KEY: SaKey = SaKey {
    key: [0xA5; conduit_packet::esp::sa::KEY_LEN],
    salt: [0x5A; conduit_packet::esp::sa::SALT_LEN],
};

/// Tunnel 1 (`ipsec.b`) with an outbound SA (SPI 0x2000) and two inbound ones (0x1000 with
/// traffic, failures and replays; 0x1001 unused yet), counted by two workers and the control
/// thread (writer 2).
fn sample_ipsec() -> IpsecConfig {
    let out = SaShared::new(3);
    out.add(0, SaCounter::Packets, 10);
    out.add(2, SaCounter::Packets, 5);
    out.add(0, SaCounter::Bytes, 1000);
    out.add(2, SaCounter::Bytes, 420);
    out.see_seq(0, 9);
    out.see_seq(2, 15);
    let in_old = SaShared::new(3);
    in_old.add(0, SaCounter::Packets, 6);
    in_old.add(1, SaCounter::Packets, 1);
    in_old.add(1, SaCounter::Bytes, 700);
    in_old.add(0, SaCounter::AuthFailures, 2);
    in_old.add(1, SaCounter::Replays, 1);
    in_old.see_seq(1, 40);
    in_old.see_seq(0, 39);
    IpsecConfig {
        iv_prefix: Default::default(),
        tunnels: vec![(
            TunnelId(1),
            TunnelSas {
                outbound: Some(OutboundSa {
                    spi: 0x2000,
                    key: SAMPLE_KEY,
                    shared: out,
                }),
                inbound: vec![
                    InboundSa {
                        spi: 0x1000,
                        key: SAMPLE_KEY,
                        replay_window: 64,
                        shared: in_old,
                    },
                    InboundSa {
                        spi: 0x1001,
                        key: SAMPLE_KEY,
                        replay_window: 64,
                        shared: SaShared::new(3),
                    },
                ],
                nat_t: false,
            },
        )],
    }
}

/// 97 replies: 50 at 1.5 ms, 40 at 2.5 ms, 6 at 9 ms, one at 12.345 ms.
fn rtt_micros() -> hdrhistogram::Histogram<u64> {
    let mut h = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
    for (us, n) in [(1500, 50), (2500, 40), (9000, 6), (12_345, 1)] {
        h.record_n(us, n).unwrap();
    }
    h
}

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Parses a sample line strictly by the 0.0.4 grammar (no timestamps: we never emit one).
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value: {line:?}"))?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        loop {
            // label name
            let start = chars.peek().map(|&(i, _)| i).ok_or("unterminated labels")?;
            if r[start..].starts_with('}') {
                chars.next();
                break;
            }
            let eq = r[start..].find('=').ok_or("label without =")? + start;
            let lname = &r[start..eq];
            if !is_label_name(lname) {
                return Err(format!("bad label name {lname:?}"));
            }
            while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut val = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '"' => break,
                    '\\' => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => val.push('\\'),
                        '"' => val.push('"'),
                        'n' => val.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    '\n' => return Err("raw newline in label value".into()),
                    c => val.push(c),
                }
            }
            if labels.insert(lname.to_string(), val).is_some() {
                return Err(format!("duplicate label {lname}"));
            }
            match chars.next().map(|(_, c)| c) {
                Some(',') => continue,
                Some('}') => break,
                other => return Err(format!("expected , or }} after label, got {other:?}")),
            }
        }
        let consumed = chars.peek().map_or(r.len(), |&(i, _)| i);
        rest = &r[consumed..];
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| format!("no space before value: {line:?}"))?;
    if value.contains(' ') {
        return Err(format!("trailing fields: {line:?}"));
    }
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Checks the whole exposition and returns its samples, with each family's type.
fn parse_exposition(text: &str) -> Result<(Vec<Sample>, BTreeMap<String, String>), String> {
    if !text.ends_with('\n') {
        return Err("exposition must end with a newline".into());
    }
    let mut types = BTreeMap::new();
    let mut helped = HashSet::new();
    let mut finished = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    let mut series = HashSet::new();
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("# HELP ") {
            let name = r.split(' ').next().unwrap_or("");
            if !is_metric_name(name) || !helped.insert(name.to_string()) {
                return Err(format!("bad or repeated HELP: {line:?}"));
            }
            if types.contains_key(name) {
                return Err(format!("HELP after TYPE for {name}"));
            }
            if let Some(prev) = current.replace(name.to_string()) {
                finished.insert(prev);
            }
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            let mut it = r.split(' ');
            let (name, ty) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            if it.next().is_some()
                || !matches!(
                    ty,
                    "counter" | "gauge" | "summary" | "histogram" | "untyped"
                )
            {
                return Err(format!("bad TYPE line {line:?}"));
            }
            if current.as_deref() != Some(name) || types.insert(name.into(), ty.into()).is_some() {
                return Err(format!("TYPE not right after its HELP: {line:?}"));
            }
        } else if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line {line:?}"));
        } else {
            let s = parse_sample(line)?;
            let family = current.as_deref().ok_or("sample before any HELP")?;
            let kind = types.get(family).map(String::as_str);
            // A histogram's samples are its name with `_bucket` (with `le`), `_sum`, `_count`.
            let own = match kind {
                Some("histogram") => {
                    s.name
                        .strip_prefix(family)
                        .is_some_and(|suffix| match suffix {
                            "_bucket" => s.labels.contains_key("le"),
                            "_sum" | "_count" => !s.labels.contains_key("le"),
                            _ => false,
                        })
                }
                Some(_) => s.name == family,
                None => false,
            };
            if !own || finished.contains(family) {
                return Err(format!(
                    "sample {} outside its family block (in {family})",
                    s.name
                ));
            }
            if kind == Some("counter") && !s.name.ends_with("_total") {
                return Err(format!("counter {} without _total", s.name));
            }
            if !(s.name.starts_with("conduit_") || s.name.starts_with("process_")) {
                return Err(format!(
                    "{} lacks the conduit_ (or process_) prefix",
                    s.name
                ));
            }
            if !series.insert((s.name.clone(), format!("{:?}", s.labels))) {
                return Err(format!("duplicate series {line:?}"));
            }
            samples.push(s);
        }
    }
    Ok((samples, types))
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<_> = samples
        .iter()
        .filter(|s| s.name == name && s.labels == want)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} twice");
    found.first().map(|s| s.value)
}

#[test]
fn exposition_is_well_formed() {
    let text = render_prometheus(&sample_snapshot());
    let (samples, types) = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(samples.len() > 50);
    assert_eq!(types["conduit_drops_total"], "counter");
    assert_eq!(types["conduit_tunnel_state"], "gauge");
    // An empty snapshot is also valid, and still documents the families.
    let empty = render_prometheus(&Snapshot::default());
    let (_, empty_types) = parse_exposition(&empty).unwrap_or_else(|e| panic!("{e}\n{empty}"));
    assert_eq!(empty_types, types);
}

#[test]
fn the_checker_rejects_broken_expositions() {
    // The checker itself must be able to fail, or the test above proves nothing.
    let bad = [
        "conduit_x 1\n",                                                   // no HELP/TYPE
        "# HELP conduit_x h\n# TYPE conduit_x gauge\nconduit_x{a=\"b} 1\n", // unterminated
        "# HELP conduit_x h\n# TYPE conduit_x gauge\nconduit_x{a=\"\\q\"} 1\n", // bad escape
        "# HELP conduit_x h\n# TYPE conduit_x counter\nconduit_x 1\n",     // counter w/o _total
        "# HELP conduit_x h\n# TYPE conduit_x gauge\nconduit_x one\n",     // value
        "# HELP conduit_x h\n# TYPE conduit_x gauge\nconduit_y 1\n",       // wrong family
        "# HELP conduit_x h\n# TYPE conduit_x gauge\nconduit_x 1\nconduit_x 2\n", // duplicate
        "# HELP conduit_x h\n# TYPE conduit_x gauge\n# HELP conduit_y h\n# TYPE conduit_y gauge\nconduit_x 1\n",
        "# HELP conduit_x h\n# TYPE conduit_x gauge\nconduit_x 1", // no final newline
        "# HELP conduit_x h\n# TYPE conduit_x histogram\nconduit_x_bucket 1\n", // no le
        "# HELP conduit_x h\n# TYPE conduit_x histogram\nconduit_x_total 1\n", // suffix
        "# HELP other_x h\n# TYPE other_x gauge\nother_x 1\n",         // prefix
    ];
    for b in bad {
        assert!(parse_exposition(b).is_err(), "accepted {b:?}");
    }
}

#[test]
fn values_land_in_their_series() {
    let snap = sample_snapshot();
    let text = render_prometheus(&snap);
    let (s, _) = parse_exposition(&text).unwrap();
    let v = |n: &str, l: &[(&str, &str)]| value(&s, n, l);

    assert_eq!(v("conduit_uptime_seconds", &[]), Some(12.5));
    assert_eq!(v("conduit_table_generation", &[]), Some(4.0));
    assert_eq!(
        v("conduit_control_loop_iterations_total", &[]),
        Some(41_000.0)
    );
    assert_eq!(
        v("conduit_control_loop_last_iteration_timestamp_seconds", &[]),
        Some(1_764_000_000.25)
    );
    assert_eq!(v("conduit_control_loop_stalls_total", &[]), Some(2.0));
    for (reason, n) in [("forged", 7.0), ("wrong_path", 5.0), ("stale", 3.0)] {
        assert_eq!(
            v(
                "conduit_probe_replies_rejected_total",
                &[("reason", reason)]
            ),
            Some(n)
        );
    }
    assert_eq!(
        v("conduit_control_loop_longest_gap_seconds", &[]),
        Some(1.5)
    );
    assert_eq!(v("conduit_reloads_total", &[("result", "ok")]), Some(3.0));
    assert_eq!(
        v("conduit_reloads_total", &[("result", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        v(
            "conduit_build_info",
            &[
                ("version", "0.1.0"),
                ("dpdk_version", "DPDK 22.11.11"),
                ("config_path", "/etc/conduit/conduit.yaml")
            ]
        ),
        Some(1.0)
    );

    let gre = [("tunnel", "gre-a")];
    assert_eq!(v("conduit_tunnel_probes_sent_total", &gre), Some(100.0));
    assert_eq!(v("conduit_tunnel_probe_replies_total", &gre), Some(97.0));
    assert_eq!(v("conduit_tunnel_probes_lost_total", &gre), Some(3.0));
    assert_eq!(
        v("conduit_tunnel_probe_late_replies_total", &gre),
        Some(1.0)
    );
    assert_eq!(v("conduit_tunnel_state_changes_total", &gre), Some(2.0));
    assert_eq!(v("conduit_tunnel_rx_packets_total", &gre), Some(11.0));
    assert_eq!(v("conduit_tunnel_rx_bytes_total", &gre), Some(1100.0));
    assert_eq!(v("conduit_tunnel_tx_packets_total", &gre), Some(22.0));
    assert_eq!(v("conduit_tunnel_tx_bytes_total", &gre), Some(2200.0));
    assert_eq!(v("conduit_tunnel_penalty", &gre), Some(0.0));
    assert_eq!(
        v("conduit_tunnel_penalty", &[("tunnel", "ipsec.b")]),
        Some(1e6)
    );
    // The histogram: cumulative buckets in seconds, `+Inf` equal to the count.
    assert_eq!(v("conduit_tunnel_rtt_seconds_count", &gre), Some(97.0));
    let sum = v("conduit_tunnel_rtt_seconds_sum", &gre).unwrap();
    let exact = (50.0 * 1500.0 + 40.0 * 2500.0 + 6.0 * 9000.0 + 12_345.0) / 1e6;
    assert!((sum - exact).abs() < exact * 1e-3, "{sum} vs {exact}");
    let bucket = |le: &str| {
        v(
            "conduit_tunnel_rtt_seconds_bucket",
            &[("tunnel", "gre-a"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.001"), Some(0.0));
    assert_eq!(bucket("0.0025"), Some(90.0));
    assert_eq!(bucket("0.005"), Some(90.0));
    assert_eq!(bucket("0.01"), Some(96.0));
    assert_eq!(bucket("0.025"), Some(97.0));
    assert_eq!(bucket("+Inf"), Some(97.0));
    let le_series = s
        .iter()
        .filter(|x| x.name == "conduit_tunnel_rtt_seconds_bucket" && x.labels["tunnel"] == "gre-a")
        .count();
    assert_eq!(le_series, RTT_BUCKETS_SECONDS.len() + 1);
    assert_eq!(
        v("conduit_tunnel_last_state_change_timestamp_seconds", &gre),
        Some(1_763_999_990.5)
    );
    assert_eq!(
        v(
            "conduit_tunnel_last_state_change_timestamp_seconds",
            &[("tunnel", "ipsec.b")]
        ),
        None
    );
    assert_eq!(
        v("conduit_last_reload_success_timestamp_seconds", &[]),
        Some(1_763_999_000.0)
    );
    // No RTT series for a tunnel without samples.
    assert!(!s.iter().any(|x| x.name.starts_with("conduit_tunnel_rtt")
        && x.labels.get("tunnel").map(String::as_str) == Some("ipsec.b")));

    // One-hot state: exactly one 1 per tunnel, on the right state.
    for t in &snap.tunnels {
        for st in TunnelStatus::ALL {
            let got = v(
                "conduit_tunnel_state",
                &[("tunnel", &t.name), ("state", st.as_str())],
            );
            assert_eq!(
                got,
                Some(if st == t.status { 1.0 } else { 0.0 }),
                "{}",
                t.name
            );
        }
    }
    assert_eq!(
        v(
            "conduit_tunnel_info",
            &[("tunnel", "ipsec.b"), ("kind", "ipsec")]
        ),
        Some(1.0)
    );

    let p0 = [("port", "net_null0")];
    for (n, want) in [
        ("conduit_port_rx_packets_total", 5.0),
        ("conduit_port_rx_bytes_total", 500.0),
        ("conduit_port_tx_packets_total", 6.0),
        ("conduit_port_tx_bytes_total", 600.0),
        ("conduit_port_rx_missed_total", 7.0),
        ("conduit_port_rx_errors_total", 8.0),
        ("conduit_port_tx_dropped_total", 9.0),
        ("conduit_port_rx_nombuf_total", 10.0),
        ("conduit_port_link_up", 1.0),
    ] {
        assert_eq!(v(n, &p0), Some(want), "{n}");
    }
    assert_eq!(
        v("conduit_port_rx_packets_total", &[("port", "0000:01:00.0")]),
        Some(50.0)
    );

    assert_eq!(
        v("conduit_port_link_up", &[("port", "0000:01:00.0")]),
        Some(0.0)
    );
    let pool = [("pool", "conduit_pkts")];
    assert_eq!(v("conduit_mempool_in_use", &pool), Some(1536.0));
    assert_eq!(v("conduit_mempool_capacity", &pool), Some(8191.0));
    for (n, want) in [
        ("process_cpu_seconds_total", 81.25),
        ("process_resident_memory_bytes", 52_428_800.0),
        ("process_virtual_memory_bytes", 4_294_967_296.0),
        ("process_start_time_seconds", 1_763_999_987.75),
        ("process_open_fds", 23.0),
        ("process_max_fds", 1024.0),
    ] {
        assert_eq!(v(n, &[]), Some(want), "{n}");
    }

    let c1 = [("core", "1")];
    assert_eq!(v("conduit_core_rx_packets_total", &c1), Some(31.0));
    assert_eq!(v("conduit_core_tx_packets_total", &c1), Some(32.0));
    assert_eq!(v("conduit_core_busy_cycles_total", &c1), Some(33.0));
    assert_eq!(v("conduit_core_polls_total", &c1), Some(34.0));
    assert_eq!(v("conduit_core_polls_total", &[("core", "3")]), Some(1.0));

    assert_eq!(
        v("conduit_drops_total", &[("reason", "no_route")]),
        Some(42.0)
    );

    let sa = |dir: &'static str, spi: &'static str| {
        [("tunnel", "ipsec.b"), ("direction", dir), ("spi", spi)]
    };
    let out = sa("outbound", "0x00002000");
    assert_eq!(v("conduit_sa_packets_total", &out), Some(15.0));
    assert_eq!(v("conduit_sa_bytes_total", &out), Some(1420.0));
    assert_eq!(v("conduit_sa_auth_failures_total", &out), Some(0.0));
    assert_eq!(v("conduit_sa_replays_total", &out), Some(0.0));
    assert_eq!(v("conduit_sa_last_sequence", &out), Some(15.0));
    let old = sa("inbound", "0x00001000");
    assert_eq!(v("conduit_sa_packets_total", &old), Some(7.0));
    assert_eq!(v("conduit_sa_bytes_total", &old), Some(700.0));
    assert_eq!(v("conduit_sa_auth_failures_total", &old), Some(2.0));
    assert_eq!(v("conduit_sa_replays_total", &old), Some(1.0));
    assert_eq!(v("conduit_sa_last_sequence", &old), Some(40.0));
    let new = sa("inbound", "0x00001001");
    assert_eq!(v("conduit_sa_packets_total", &new), Some(0.0));
    assert_eq!(v("conduit_sa_last_sequence", &new), Some(0.0));
    // Only the three SAs, and only for the IPsec tunnel.
    let sa_series: Vec<_> = s
        .iter()
        .filter(|x| x.name.starts_with("conduit_sa_"))
        .collect();
    assert_eq!(sa_series.len(), 5 * 3);
    assert!(sa_series
        .iter()
        .all(|x| x.labels["tunnel"] == "ipsec.b" && x.labels.len() == 3));
    assert_eq!(
        v("conduit_drops_total", &[("reason", "gre_key_mismatch")]),
        Some(0.0)
    );
}

#[test]
fn sa_metrics_sum_the_writers_in_configuration_order() {
    let mut ipsec = sample_ipsec();
    // A tunnel the namer does not know, with only an inbound SA.
    ipsec.tunnels.push((
        TunnelId(7),
        TunnelSas {
            inbound: vec![InboundSa {
                spi: 0xdead_beef,
                key: SAMPLE_KEY,
                replay_window: 0,
                shared: SaShared::new(1),
            }],
            ..Default::default()
        },
    ));
    let sas = SaMetrics::all(&ipsec, |id| (id.0 == 1).then_some("ipsec.b"));
    let got: Vec<_> = sas
        .iter()
        .map(|s| {
            (
                s.tunnel.as_str(),
                s.direction,
                s.spi_hex(),
                [s.packets, s.bytes, s.auth_failures, s.replays, s.last_seq],
            )
        })
        .collect();
    use SaDirection::{Inbound, Outbound};
    assert_eq!(
        got,
        [
            (
                "ipsec.b",
                Outbound,
                "0x00002000".into(),
                [15, 1420, 0, 0, 15]
            ),
            ("ipsec.b", Inbound, "0x00001000".into(), [7, 700, 2, 1, 40]),
            ("ipsec.b", Inbound, "0x00001001".into(), [0, 0, 0, 0, 0]),
            ("#7", Inbound, "0xdeadbeef".into(), [0, 0, 0, 0, 0]),
        ]
    );
    // Counters are read when the snapshot is taken, not frozen at configuration.
    let o = ipsec.tunnels[0].1.outbound.as_ref().unwrap();
    o.shared.add(1, SaCounter::Packets, 1);
    o.shared.see_seq(1, 16);
    let again = SaMetrics::all(&ipsec, |_| Some("x"));
    assert_eq!((again[0].packets, again[0].last_seq), (16, 16));
}

#[test]
fn sa_keys_appear_nowhere() {
    let snap = sample_snapshot();
    // The check means something only with SAs in the snapshot.
    assert_eq!(snap.sas.len(), 3);
    let key_hex = [
        "a5a5a5a5", "A5A5A5A5", "5a5a5a5a", "5A5A5A5A", "165, 165", "[165",
    ];
    for text in [
        render_prometheus(&snap),
        render_openmetrics(&snap),
        format!("{snap:?}"),
        format!("{:?}", sample_ipsec()),
    ] {
        for k in key_hex {
            assert!(!text.contains(k), "{k} in {text}");
        }
    }
}

#[test]
fn label_values_are_escaped() {
    let text = render_prometheus(&sample_snapshot());
    // The raw form on the wire...
    assert!(
        text.contains(r#"conduit_tunnel_penalty{tunnel="we\"ird\\na\nme"} 0"#),
        "{text}"
    );
    // ...and the parsed form gives the original name back.
    let (s, _) = parse_exposition(&text).unwrap();
    assert_eq!(
        value(
            &s,
            "conduit_tunnel_state",
            &[("tunnel", "we\"ird\\na\nme"), ("state", "disabled")]
        ),
        Some(1.0)
    );
}

#[test]
fn every_drop_reason_name_is_a_plain_label_value() {
    // Names come from the dataplane; they must need no escaping and be unique.
    let names: Vec<&str> = conduit_packet::pipeline::DropReason::all()
        .map(|r| r.as_str())
        .collect();
    let unique: HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
    for n in names {
        assert!(is_label_name(n), "{n}");
    }
}

#[test]
fn status_from_health() {
    use conduit_packet::route::Health as H;
    assert_eq!(
        TunnelStatus::from_health(H::Down, true),
        TunnelStatus::Checked(Health::Down)
    );
    assert_eq!(
        TunnelStatus::from_health(H::Degraded, true),
        TunnelStatus::Checked(Health::Degraded)
    );
    assert_eq!(
        TunnelStatus::from_health(H::Healthy, false),
        TunnelStatus::Disabled
    );
    // Admin-down wins over whatever the checks say, and is its own state for operators.
    use conduit_packet::route::AdminState;
    for (h, checked) in [(H::Healthy, true), (H::Down, true), (H::Healthy, false)] {
        assert_eq!(
            TunnelStatus::new(AdminState::Down, h, checked),
            TunnelStatus::AdminDown
        );
        assert_eq!(
            TunnelStatus::new(AdminState::Up, h, checked),
            TunnelStatus::from_health(h, checked)
        );
    }
    assert_eq!(TunnelStatus::AdminDown.as_str(), "admin-down");
}

#[test]
fn hub_hands_out_the_latest_snapshot() {
    let hub = MetricsHub::new();
    assert_eq!(*hub.current(), Snapshot::default());
    let old = hub.current();
    hub.publish(sample_snapshot());
    assert_eq!(*hub.current(), sample_snapshot());
    // A reader's Arc stays valid and unchanged across a publish.
    assert_eq!(*old, Snapshot::default());
    let reader = std::sync::Arc::new(hub);
    let r2 = reader.clone();
    std::thread::spawn(move || {
        let mut s = sample_snapshot();
        s.appliance.table_generation = 99;
        r2.publish(s);
    })
    .join()
    .unwrap();
    assert_eq!(reader.current().appliance.table_generation, 99);
}

#[test]
fn health_counters_map_to_their_fields() {
    let c = crate::health::HealthCounters {
        probes_sent: 10,
        retries_sent: 2,
        replies: 6,
        timeouts: 3,
        late_replies: 1,
        transitions: 4,
        ..Default::default()
    };
    let mut t = TunnelMetrics::new("t", TunnelKind::Gre, TunnelStatus::Checked(Health::Healthy));
    t.set_health_counters(&c);
    assert_eq!(
        (
            t.probes_sent,
            t.probe_replies,
            t.probes_lost,
            t.probe_late_replies,
            t.state_changes
        ),
        (10, 6, 3, 1, 4)
    );
}

/// The expositions of [`sample_snapshot`], byte for byte: families, order, help texts, label
/// escaping and number formats are what scrapers and dashboards depend on. To record them
/// again after a deliberate change: `CONDUIT_RECORD=1 cargo nextest run -p control -E
/// 'test(matches_the_recorded)'`, then review the diff.
#[test]
fn exposition_matches_the_recorded_one() {
    for (format, file, expected) in [
        (
            Format::Text,
            "sample_snapshot.prom",
            include_str!("sample_snapshot.prom"),
        ),
        (
            Format::OpenMetrics,
            "sample_snapshot.om",
            include_str!("sample_snapshot.om"),
        ),
    ] {
        let got = encode(std::sync::Arc::new(sample_snapshot()), format);
        if std::env::var_os("CONDUIT_RECORD").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/metrics/");
            std::fs::write(format!("{path}{file}"), &got).unwrap();
        }
        assert_eq!(got, expected, "{file}");
    }
}

/// Both formats carry the same samples; they differ only in family naming and the end marker.
#[test]
fn openmetrics_has_the_same_samples() {
    let om = render_openmetrics(&sample_snapshot());
    assert!(om.ends_with("# EOF\n"));
    let text = render_prometheus(&sample_snapshot());
    let samples = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(samples(&om), samples(&text));
    assert!(om.contains("# TYPE conduit_drops counter\n"));
    assert!(text.contains("# TYPE conduit_drops_total counter\n"));
    assert!(om.contains("# TYPE conduit_build info\n"));
    assert!(text.contains("# TYPE conduit_build_info gauge\n"));
}

#[test]
fn format_negotiation() {
    let n = |a: &str| Format::negotiate(Some(a));
    assert_eq!(Format::negotiate(None), Format::Text);
    assert_eq!(n("*/*"), Format::Text);
    assert_eq!(n("text/plain;version=0.0.4"), Format::Text);
    assert_eq!(n("application/openmetrics-text"), Format::OpenMetrics);
    // What Prometheus sends by default.
    assert_eq!(
        n("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
        Format::OpenMetrics
    );
    assert_eq!(
        n("text/plain;version=0.0.4;q=0.9, application/openmetrics-text;q=0.5"),
        Format::Text
    );
    assert_eq!(
        n("application/openmetrics-text; version=0.0.1"),
        Format::Text
    );
    assert_eq!(n("application/openmetrics-text;q=0"), Format::Text);
    assert_eq!(n("Application/OpenMetrics-Text; q=1"), Format::OpenMetrics);
}

#[test]
fn rtt_histogram_from_hdr() {
    let h = RttHistogram::from_micros(&rtt_micros());
    assert_eq!(h.count, 97);
    // 1.5 ms and 2.5 ms fall in the 2.5 ms bucket; the 9 ms ones by 10 ms; the last by 25 ms.
    let at = |le: f64| h.le_counts[RTT_BUCKETS_SECONDS.iter().position(|&b| b == le).unwrap()];
    assert_eq!(
        (at(0.001), at(0.0025), at(0.01), at(0.025)),
        (0, 90, 96, 97)
    );
    let empty = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1000, 3).unwrap();
    assert_eq!(RttHistogram::from_micros(&empty), RttHistogram::default());
}

#[test]
fn help_texts_need_no_escaping() {
    // Help texts are written as given: they must hold nothing a format would escape.
    let text = render_openmetrics(&sample_snapshot());
    for l in text.lines().filter(|l| l.starts_with("# HELP ")) {
        assert!(!l.contains('\\') && !l.contains('"'), "{l}");
    }
}
