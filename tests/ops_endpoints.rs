//! The operator endpoints end to end, read by clients Conduit did not write:
//! - the `/conduit/...` telemetry commands over a real EAL, through DPDK's `dpdk-telemetry.py`;
//! - the Prometheus endpoint over TCP, fetched with Python's `urllib` and parsed by the official
//!   Python client's parser (`prometheus_client`, Debian package `python3-prometheus-client`).
//!
//! EAL initialises once per process; cargo-nextest runs each test in its own process.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use conduit_packet::esp::sa::SaDirection;
use conduit_packet::route::Health;
use conduit_test_support::eal;
use conduit_test_support::telemetry::query;
use control::config::TunnelKind;
use control::metrics::{
    ApplianceMetrics, CoreMetrics, DropCount, Format, MetricsHub, PoolMetrics, PortMetrics,
    ProcessMetrics, RttHistogram, RttSummary, SaMetrics, Snapshot, TunnelMetrics, TunnelStatus,
};
use serde_json::{json, Value as Json};

fn snapshot() -> Snapshot {
    let mut a = TunnelMetrics::new(
        "gre-a",
        TunnelKind::Gre,
        TunnelStatus::Checked(Health::Degraded),
    );
    a.penalty = 500_000;
    a.probes_sent = 40;
    a.probe_replies = 37;
    a.probes_lost = 3;
    a.probe_late_replies = 2;
    a.state_changes = 1;
    a.rx_packets = 1000;
    a.rx_bytes = 64_000;
    a.tx_packets = 2000;
    a.tx_bytes = 128_000;
    a.rx_pps = Some(10);
    a.tx_pps = Some(20);
    a.rtt = Some(RttSummary {
        samples: 37,
        p50_us: 800,
        p90_us: 1200,
        p99_us: 4000,
        max_us: 5000,
    });
    // 37 replies: 20 within 1 ms, 35 within 2.5 ms, all within 5 ms.
    a.rtt_histogram = Some(RttHistogram {
        count: 37,
        sum_seconds: 0.0425,
        le_counts: [0, 0, 0, 20, 35, 37, 37, 37, 37, 37, 37, 37, 37, 37],
    });
    a.last_state_change = Some(Duration::from_secs(1_763_999_000));
    let b = TunnelMetrics::new("ipsec.b", TunnelKind::Ipsec, TunnelStatus::Disabled);
    let drops = conduit_packet::pipeline::DropReason::all()
        .enumerate()
        .map(|(i, r)| DropCount {
            reason: r.as_str().to_string(),
            count: i as u64 * 3,
        })
        .collect();
    Snapshot {
        appliance: ApplianceMetrics {
            version: "0.1.0".into(),
            dpdk_version: "DPDK 22.11.11".into(),
            config_path: "/etc/conduit/a \"quoted\" path.yaml".into(),
            uptime: Duration::from_secs(90),
            table_generation: 12,
            reloads_ok: 2,
            reloads_failed: 1,
            control_loop_iterations: 90_000,
            control_loop_last_iteration: Duration::from_millis(1_764_000_000_250),
            control_loop_stalls: 1,
            control_loop_longest_gap: Duration::from_micros(250_500),
            probe_reply_forged: 4,
            probe_reply_wrong_path: 3,
            probe_reply_stale: 2,
            last_reload_success: Duration::from_secs(1_763_998_000),
        },
        tunnels: vec![a, b],
        ports: vec![
            PortMetrics {
                name: "net_null0".into(),
                rx_packets: 10,
                rx_bytes: 640,
                tx_packets: 20,
                tx_bytes: 1280,
                rx_missed: 1,
                rx_errors: 2,
                tx_dropped: 3,
                rx_nombuf: 4,
                link_up: Some(true),
            },
            PortMetrics {
                name: "0000:01:00.0".into(),
                tx_dropped: 5,
                ..Default::default()
            },
        ],
        cores: vec![CoreMetrics {
            core: 1,
            rx_packets: 10,
            tx_packets: 20,
            busy_cycles: 12_345,
            polls: 99,
        }],
        drops,
        pools: vec![PoolMetrics {
            name: "conduit_pkts".into(),
            in_use: 100,
            capacity: 4095,
        }],
        sas: vec![
            SaMetrics {
                tunnel: "ipsec.b".into(),
                direction: SaDirection::Outbound,
                spi: 0x2000,
                packets: 30,
                bytes: 3000,
                auth_failures: 0,
                replays: 0,
                last_seq: 30,
            },
            SaMetrics {
                tunnel: "ipsec.b".into(),
                direction: SaDirection::Inbound,
                spi: 0x1000,
                packets: 25,
                bytes: 2500,
                auth_failures: 2,
                replays: 1,
                last_seq: 27,
            },
        ],
        process: ProcessMetrics::read(),
    }
}

#[test]
fn telemetry_commands_over_a_real_eal() {
    let _eal = eal::init_eal("conduit-ctl-test", &[]);
    let prefix = eal::file_prefix("conduit-ctl-test");
    let hub = Arc::new(MetricsHub::new());
    hub.publish(snapshot());
    conduit::telemetry::register(hub.clone()).unwrap();

    let a = query(
        &prefix,
        &[
            "/conduit/info",
            "/conduit/tunnels",
            "/conduit/tunnel,gre-a",
            "/conduit/tunnel,ipsec.b",
            "/conduit/tunnel,nope",
            "/conduit/ports",
            "/conduit/cores",
            "/conduit/drops",
            "/conduit/sas",
        ],
    );
    assert_eq!(
        a[0],
        json!({"/conduit/info": {
            "version": "0.1.0", "dpdk_version": "DPDK 22.11.11",
            "config_path": "/etc/conduit/a \"quoted\" path.yaml",
            "uptime_ms": 90_000, "table_generation": 12, "reloads_ok": 2, "reloads_failed": 1,
            "control_loop_iterations": 90_000, "control_loop_last_iteration_ms": 1_764_000_000_250_u64,
            "control_loop_stalls": 1, "control_loop_longest_gap_us": 250_500,
            "probe_reply_forged": 4, "probe_reply_wrong_path": 3, "probe_reply_stale": 2,
            "tunnels": 2, "ports": 2, "workers": 1,
        }})
    );
    assert_eq!(
        a[1],
        json!({"/conduit/tunnels": {
            "total": 2, "offset": 0,
            "names": ["gre-a", "ipsec.b"], "kinds": ["gre", "ipsec"],
            "states": ["degraded", "disabled"], "penalties": [500_000, 0],
        }})
    );
    assert_eq!(
        a[2],
        json!({"/conduit/tunnel": {
            "name": "gre-a", "kind": "gre", "state": "degraded", "penalty": 500_000,
            "state_changes": 1, "probes_sent": 40, "probe_replies": 37, "probes_lost": 3,
            "probe_late_replies": 2, "rtt_window_s": 60, "rtt_window_samples": 37,
            "rtt_p50_us": 800, "rtt_p90_us": 1200, "rtt_p99_us": 4000, "rtt_max_us": 5000,
            "rx_packets": 1000, "rx_bytes": 64_000, "rx_pps": 10,
            "tx_packets": 2000, "tx_bytes": 128_000, "tx_pps": 20,
        }})
    );
    assert_eq!(a[3]["/conduit/tunnel"]["state"], "disabled");
    assert!(a[3]["/conduit/tunnel"].get("rtt_p50_us").is_none());
    assert!(a[3]["/conduit/tunnel"].get("rx_pps").is_none());
    assert_eq!(a[3]["/conduit/tunnel"]["rtt_window_s"], 60);
    assert_eq!(a[4], json!({"/conduit/tunnel": null}));
    assert_eq!(
        a[5],
        json!({"/conduit/ports": {
            "0": {"name": "net_null0", "rx_packets": 10, "rx_bytes": 640, "tx_packets": 20,
                  "tx_bytes": 1280, "rx_missed": 1, "rx_errors": 2, "tx_dropped": 3},
            "1": {"name": "0000:01:00.0", "rx_packets": 0, "rx_bytes": 0, "tx_packets": 0,
                  "tx_bytes": 0, "rx_missed": 0, "rx_errors": 0, "tx_dropped": 5},
        }})
    );
    assert_eq!(
        a[6],
        json!({"/conduit/cores": {"1": {"rx_packets": 10, "tx_packets": 20,
                                        "busy_cycles": 12_345, "polls": 99}}})
    );
    let drops = a[7]["/conduit/drops"].as_object().unwrap();
    assert_eq!(drops.len(), conduit_packet::pipeline::DropReason::COUNT);
    for (i, r) in conduit_packet::pipeline::DropReason::all().enumerate() {
        assert_eq!(drops[r.as_str()], json!(i as u64 * 3), "{}", r.as_str());
    }
    assert_eq!(
        a[8],
        json!({"/conduit/sas": {
            "total": 2, "offset": 0, "tunnels": ["ipsec.b", "ipsec.b"],
            "directions": ["outbound", "inbound"], "spis": [0x2000, 0x1000],
            "packets": [30, 25], "bytes": [3000, 2500], "auth_failures": [0, 2],
            "replays": [0, 1], "last_seqs": [30, 27],
        }})
    );
    // The IPsec tunnel lists its SAs; the GRE tunnel has none.
    let b = &a[3]["/conduit/tunnel"];
    assert_eq!(b["sa_spis"], json!([0x2000, 0x1000]));
    assert_eq!(b["sa_directions"], json!(["outbound", "inbound"]));
    assert_eq!(b["sa_auth_failures"], json!([0, 2]));
    assert_eq!(b["sa_last_seqs"], json!([30, 27]));

    // Answers follow the hub: publish a change and read it back.
    let mut s = snapshot();
    s.tunnels[0].status = TunnelStatus::Checked(Health::Down);
    s.appliance.table_generation = 13;
    hub.publish(s);
    let a = query(&prefix, &["/conduit/tunnels", "/conduit/info"]);
    assert_eq!(
        a[0]["/conduit/tunnels"]["states"],
        json!(["down", "disabled"])
    );
    assert_eq!(a[1]["/conduit/info"]["table_generation"], json!(13));
}

/// Python program: fetch the URL (asking for OpenMetrics when argv[2] is `openmetrics`), parse
/// with prometheus_client's parser for that format, print the families as JSON.
const PARSE_PY: &str = r#"
import json, sys, urllib.request
if sys.argv[2] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
else:
    from prometheus_client.parser import text_string_to_metric_families
    accept = "text/plain;version=0.0.4"
req = urllib.request.Request(sys.argv[1], headers={"Accept": accept})
with urllib.request.urlopen(req, timeout=10) as r:
    ctype = r.headers.get("Content-Type")
    text = r.read().decode()
families = []
for f in text_string_to_metric_families(text):
    families.append({"name": f.name, "type": f.type, "help": f.documentation,
                     "samples": [[s.name, s.labels, s.value] for s in f.samples]})
print(json.dumps({"content_type": ctype, "families": families}))
"#;

/// Every sample of a parse, as `(name, labels, value)`, sorted.
type Samples = Vec<(String, String, String)>;

/// Scrapes `url` in `format` and checks the parse by the official parser of that format.
fn scrape_and_check(url: &str, format: Format) -> Samples {
    let which = match format {
        Format::Text => "text",
        Format::OpenMetrics => "openmetrics",
    };
    let out = Command::new("python3")
        .args(["-c", PARSE_PY, url, which])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 with prometheus_client (Debian: python3-prometheus-client) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["content_type"], json!(format.content_type()));
    let families = v["families"].as_array().unwrap();
    let family = |name: &str| -> &Json {
        families
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no family {name}"))
    };
    // The parser strips `_total` from counter family names, keeping it on the samples.
    assert_eq!(family("conduit_drops")["type"], "counter");
    assert_eq!(family("conduit_tunnel_state")["type"], "gauge");
    let sample = |name: &str, labels: Json| -> f64 {
        let found: Vec<f64> = families
            .iter()
            .flat_map(|f| f["samples"].as_array().unwrap())
            .filter(|s| s[0] == name && s[1] == labels)
            .map(|s| s[2].as_f64().unwrap())
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels}: {found:?}");
        found[0]
    };
    assert_eq!(
        sample(
            "conduit_tunnel_state",
            json!({"tunnel": "gre-a", "state": "degraded"})
        ),
        1.0
    );
    assert_eq!(
        sample(
            "conduit_tunnel_state",
            json!({"tunnel": "gre-a", "state": "healthy"})
        ),
        0.0
    );
    assert_eq!(
        sample(
            "conduit_tunnel_probes_lost_total",
            json!({"tunnel": "gre-a"})
        ),
        3.0
    );
    // The RTT histogram: cumulative buckets, `+Inf` equal to the count.
    for (le, n) in [
        ("0.001", 20.0),
        ("0.0025", 35.0),
        ("0.005", 37.0),
        ("+Inf", 37.0),
    ] {
        assert_eq!(
            sample(
                "conduit_tunnel_rtt_seconds_bucket",
                json!({"tunnel": "gre-a", "le": le})
            ),
            n,
            "{le}"
        );
    }
    assert_eq!(
        sample(
            "conduit_tunnel_rtt_seconds_count",
            json!({"tunnel": "gre-a"})
        ),
        37.0
    );
    assert_eq!(
        family("conduit_tunnel_rtt_seconds")["type"],
        json!("histogram")
    );
    assert_eq!(
        sample(
            "conduit_tunnel_last_state_change_timestamp_seconds",
            json!({"tunnel": "gre-a"})
        ),
        1_763_999_000.0
    );
    assert_eq!(
        sample("conduit_mempool_in_use", json!({"pool": "conduit_pkts"})),
        100.0
    );
    assert_eq!(
        sample("conduit_port_link_up", json!({"port": "net_null0"})),
        1.0
    );
    assert!(sample("process_resident_memory_bytes", json!({})) > 0.0);
    assert_eq!(
        sample(
            "conduit_port_tx_dropped_total",
            json!({"port": "0000:01:00.0"})
        ),
        5.0
    );
    assert_eq!(
        sample("conduit_core_polls_total", json!({"core": "1"})),
        99.0
    );
    assert_eq!(
        sample("conduit_reloads_total", json!({"result": "failed"})),
        1.0
    );
    assert_eq!(sample("conduit_uptime_seconds", json!({})), 90.0);
    let sa_in = json!({"tunnel": "ipsec.b", "direction": "inbound", "spi": "0x00001000"});
    assert_eq!(sample("conduit_sa_packets_total", sa_in.clone()), 25.0);
    assert_eq!(sample("conduit_sa_auth_failures_total", sa_in.clone()), 2.0);
    assert_eq!(sample("conduit_sa_replays_total", sa_in.clone()), 1.0);
    assert_eq!(sample("conduit_sa_last_sequence", sa_in), 27.0);
    let sa_out = json!({"tunnel": "ipsec.b", "direction": "outbound", "spi": "0x00002000"});
    assert_eq!(sample("conduit_sa_bytes_total", sa_out.clone()), 3000.0);
    assert_eq!(sample("conduit_sa_last_sequence", sa_out), 30.0);
    assert_eq!(family("conduit_sa_last_sequence")["type"], "gauge");
    // The escaped quotes in the config path come back intact.
    assert_eq!(
        sample(
            "conduit_build_info",
            json!({"version": "0.1.0", "dpdk_version": "DPDK 22.11.11",
                   "config_path": "/etc/conduit/a \"quoted\" path.yaml"})
        ),
        1.0
    );
    let reasons = conduit_packet::pipeline::DropReason::all();
    for (i, r) in reasons.enumerate() {
        assert_eq!(
            sample("conduit_drops_total", json!({"reason": r.as_str()})),
            i as f64 * 3.0
        );
    }
    let mut all: Samples = families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .map(|s| (s[0].to_string(), s[1].to_string(), s[2].to_string()))
        .collect();
    all.sort();
    all
}

/// The endpoint in both formats, each parsed by the official Python client's parser for it;
/// both parses give the same samples.
#[test]
fn prometheus_endpoint_parsed_by_prometheus_client() {
    let hub = Arc::new(MetricsHub::new());
    hub.publish(snapshot());
    let srv = control::prometheus::serve("127.0.0.1:0".parse().unwrap(), hub).unwrap();
    let url = format!("http://{}/metrics", srv.local_addr());
    let text = scrape_and_check(&url, Format::Text);
    let om = scrape_and_check(&url, Format::OpenMetrics);
    assert!(text.len() > 100, "{}", text.len());
    assert_eq!(text, om);
    srv.stop();
}
