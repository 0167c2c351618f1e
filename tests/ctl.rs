//! `conduit ctl` against a live appliance over net_pcap, with a private file prefix:
//! - every `show` command, errors for unknown tunnels and a missing appliance;
//! - `lookup` agrees, flow by flow, with the tunnel (or gateway) each flow's packets took;
//! - `tunnel NAME admin down|up` moves traffic, and `show tunnels` shows the state and why;
//! - `trace N` records the next packets with the verdicts lookup predicts.
//!
//! EAL initialises once per process; cargo-nextest runs each test in its own process.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use conduit::ctl::client::Client;
use conduit_test_support::frames;
use serde_json::Value;

/// net_pcap0's own (fixed) MAC, which the frames are sent to.
const MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

/// Three equal tunnels and a backup for 172.16/16, the backup alone for 172.16.9/24, the
/// gateway for the rest.
const CONFIG: &str = "\
dataplane:
  ports:
    - device: net_pcap0
      ipv4: 192.0.2.10/24
  workers: [1]
  mode: pipeline
local_endpoints: [203.0.113.1]
gateway: {ipv4: 192.0.2.1, mac: \"02:00:00:00:00:fe\", port: net_pcap0}
tunnels:
  - {name: cust-a1, kind: gre, local: 203.0.113.1, remote: 198.51.100.1, interface_address: 10.255.0.0/31, health_check: {enabled: false}}
  - {name: cust-a2, kind: gre, local: 203.0.113.1, remote: 198.51.100.2, interface_address: 10.255.0.2/31, health_check: {enabled: false}}
  - {name: cust-a3, kind: gre, local: 203.0.113.1, remote: 198.51.100.3, interface_address: 10.255.0.4/31, health_check: {enabled: false}}
  - {name: cust-b, kind: gre, local: 203.0.113.1, remote: 198.51.100.9, interface_address: 10.255.0.8/31, health_check: {enabled: false}}
routes:
  - {prefix: 172.16.0.0/16, tunnel: cust-a1, priority: 100}
  - {prefix: 172.16.0.0/16, tunnel: cust-a2, priority: 100}
  - {prefix: 172.16.0.0/16, tunnel: cust-a3, priority: 100}
  - {prefix: 172.16.0.0/16, tunnel: cust-b, priority: 200}
  - {prefix: 172.16.9.0/24, tunnel: cust-b, priority: 100}
  - {prefix: 0.0.0.0/0, next_hop: gateway, priority: 100}
";

/// Tunnel name by remote endpoint.
fn tunnel_of(remote: [u8; 4]) -> &'static str {
    match remote {
        [198, 51, 100, 1] => "cust-a1",
        [198, 51, 100, 2] => "cust-a2",
        [198, 51, 100, 3] => "cust-a3",
        [198, 51, 100, 9] => "cust-b",
        other => panic!("no tunnel has remote {other:?}"),
    }
}

/// A flow: source, destination, protocol, ports (zero for ICMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Flow {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    sport: u16,
    dport: u16,
}

impl Flow {
    fn frame(&self) -> Vec<u8> {
        let l4 = match self.protocol {
            frames::UDP => frames::udp(self.src, self.dst, self.sport, self.dport, b"ctl"),
            frames::TCP => frames::tcp(
                self.src, self.dst, self.sport, self.dport, 0x10, None, false, b"ctl",
            ),
            _ => frames::icmp(8, 1, 1, b"ctl"),
        };
        let ip = frames::Ipv4::new(self.src, self.dst, self.protocol).packet(&l4);
        frames::ethernet(MAC, GW_MAC, frames::ETHERTYPE_IPV4, &ip)
    }

    /// The flow of an IPv4 packet (header at `ip`).
    fn of(ip: &[u8]) -> Flow {
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let protocol = ip[9];
        let port = |at: usize| u16::from_be_bytes([ip[ihl + at], ip[ihl + at + 1]]);
        let (sport, dport) = match protocol {
            frames::UDP | frames::TCP => (port(0), port(2)),
            _ => (0, 0),
        };
        Flow {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            protocol,
            sport,
            dport,
        }
    }

    fn lookup_command(&self) -> String {
        if self.protocol == frames::ICMP {
            format!("/conduit/lookup,{},{}", self.src, self.dst)
        } else {
            format!(
                "/conduit/lookup,{},{},{},{},{}",
                self.src, self.dst, self.protocol, self.sport, self.dport
            )
        }
    }
}

/// `n` distinct flows: mostly UDP and TCP to 172.16/16 (the /24 included), some ICMP, some to
/// the internet.
fn flows(n: usize) -> Vec<Flow> {
    let mut rng = Rng(0x5eed_c7c7_0001);
    let mut seen = std::collections::HashSet::new();
    (0..)
        .map(|i| {
            let r = rng.next();
            let dst = if i % 10 == 9 {
                Ipv4Addr::new(8, 8, (r >> 8) as u8, (r >> 16) as u8 | 1)
            } else {
                Ipv4Addr::new(172, 16, (r >> 8) as u8 % 12, (r >> 16) as u8 | 1)
            };
            let protocol = [frames::UDP, frames::TCP, frames::UDP, frames::ICMP][i % 4];
            Flow {
                src: Ipv4Addr::new(192, 0, 2, 20 + (r >> 24) as u8 % 200),
                dst,
                protocol,
                sport: if protocol == frames::ICMP {
                    0
                } else {
                    1024 + (i as u16)
                },
                dport: if protocol == frames::ICMP {
                    0
                } else {
                    (r >> 32) as u16 | 1
                },
            }
        })
        .filter(|f| seen.insert(*f))
        .take(n)
        .collect()
}

/// Starts the appliance on `vdev` with CONFIG and instance name `name`.
fn start(name: &str, vdev: String, extra: &[&str]) -> Child {
    let dir = scratch(name);
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut args = eal_args(name);
    args.extend(["--vdev".to_string(), vdev, "--".to_string()]);
    args.extend(["--config".to_string(), cfg.display().to_string()]);
    args.extend(["--stats-interval".to_string(), "0".to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Command::new(CONDUIT)
        .args(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `conduit ctl --file-prefix PREFIX ARGS`.
fn ctl(prefix: &str, args: &str) -> Output {
    Command::new(CONDUIT)
        .args(["ctl", "--file-prefix", prefix])
        .args(args.split_whitespace())
        .output()
        .unwrap()
}

/// `ctl` that must succeed; its stdout.
fn ctl_ok(prefix: &str, args: &str) -> String {
    let out = ctl(prefix, args);
    assert!(out.status.success(), "ctl {args}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A client, once the appliance has a snapshot to answer from (it is starting).
fn connect(prefix: &str, child: &mut Child) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = Client::connect_prefix(prefix) {
            if c.call("/conduit/tunnels")
                .is_ok_and(|r| r["total"].as_u64() == Some(4))
            {
                return c;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the appliance exited during start-up: {status}");
        }
        assert!(Instant::now() < deadline, "the appliance did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the appliance as an operator would (SIGINT) and checks that it stopped cleanly.
fn stop(child: Child) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("mbufs in use after shutdown: 0 of"), "{log}");
    log
}

/// The row of `name` in `show tunnels`, as columns.
fn tunnel_row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()))
        .map(|c| c.map(String::from).collect::<Vec<_>>())
        .find(|c| c.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
}

#[test]
fn show_commands_and_lookup_agree_with_the_packets() {
    const FLOWS: usize = 3000;
    let name = "ctl-lookup";
    let prefix = conduit_test_support::eal::file_prefix(name);
    let dir = scratch("ctl-lookup-io");
    let (input, output) = (dir.join("in.pcap"), dir.join("out.pcap"));
    let flows = flows(FLOWS);
    write_pcap(&input, &flows.iter().map(Flow::frame).collect::<Vec<_>>());
    let vdev = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        output.display()
    );
    let mut child = start(name, vdev, &[]);
    let mut c = connect(&prefix, &mut child);
    // The replay is done once the port has sent every packet (the snapshot lags by 500 ms).
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.call("/conduit/ports").unwrap()["0"]["tx_packets"].as_u64() != Some(FLOWS as u64) {
        assert!(Instant::now() < deadline, "the replay did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Each flow's lookup, through the appliance's own table.
    let started = Instant::now();
    let chosen: Vec<String> = flows
        .iter()
        .map(|f| {
            let r = c.call(&f.lookup_command()).unwrap();
            r["chosen"].as_str().unwrap().to_string()
        })
        .collect();
    let lookup_time = started.elapsed();

    // The CLI over the same appliance.
    let tunnels = ctl_ok(&prefix, "show tunnels");
    let tunnels_json = ctl_ok(&prefix, "--json show tunnels");
    let detail = ctl_ok(&prefix, "show tunnel cust-b");
    let unknown = ctl(&prefix, "show tunnel nope");
    let routes = ctl_ok(&prefix, "show routes");
    let routes_24 = ctl_ok(&prefix, "show routes 172.16.9.0/24");
    let ports = ctl_ok(&prefix, "show ports");
    let cores = ctl_ok(&prefix, "show cores");
    let drops = ctl_ok(&prefix, "show drops");
    let drops_port = ctl_ok(&prefix, "show drops --port");
    let drops_core = ctl(&prefix, "show drops --core");
    let sas = ctl_ok(&prefix, "show sas");
    let sas_json = ctl_ok(&prefix, "--json show sas");
    let lookup = ctl_ok(&prefix, "lookup 192.0.2.99 172.16.9.7 udp 5 53");
    let json = ctl_ok(&prefix, "--json show ports");
    let bad_admin = ctl(&prefix, "tunnel nope admin down");
    let log = stop(child);
    // A GRE-only appliance has no SA, and says so.
    assert_eq!(sas, "no IPsec SA\n");
    let sas_json: Value = serde_json::from_str(sas_json.trim()).unwrap();
    assert_eq!(sas_json["/conduit/sas"]["total"], 0, "{sas_json}");
    assert_eq!(sas_json["/conduit/sas"]["spis"], serde_json::json!([]));

    // Which way each flow actually went, from the output capture.
    let mut took: HashMap<Flow, String> = HashMap::new();
    for f in read_pcap(&output) {
        let ip = &f[14..];
        let (flow, via) = if ip[9] == frames::GRE {
            assert_eq!(&f[..6], &GW_MAC, "GRE goes to the gateway's MAC");
            let gre_flags = u16::from_be_bytes([ip[20], ip[21]]);
            let gre_len = if gre_flags & frames::GRE_KEY != 0 {
                8
            } else {
                4
            };
            let remote = [ip[16], ip[17], ip[18], ip[19]];
            (Flow::of(&ip[20 + gre_len..]), tunnel_of(remote).to_string())
        } else {
            (Flow::of(ip), "gateway".to_string())
        };
        assert!(took.insert(flow, via).is_none(), "{flow:?} twice");
    }
    assert_eq!(took.len(), FLOWS, "every flow left once\n{log}");
    let mut per_hop: HashMap<&str, usize> = HashMap::new();
    for (f, chosen) in flows.iter().zip(&chosen) {
        assert_eq!(
            took.get(f).map(String::as_str),
            Some(chosen.as_str()),
            "{f:?}: lookup and packet disagree"
        );
        *per_hop.entry(chosen).or_default() += 1;
    }
    // Every ECMP member, the /24's tunnel and the gateway carried flows; the backup of the
    // /16 carried only the /24.
    for hop in ["cust-a1", "cust-a2", "cust-a3", "cust-b", "gateway"] {
        assert!(per_hop.get(hop).copied().unwrap_or(0) > 0, "{per_hop:?}");
    }
    eprintln!(
        "{FLOWS} lookups in {:?} ({:?} each): {per_hop:?}",
        lookup_time,
        lookup_time / FLOWS as u32
    );

    let sent_by = |t: &str| per_hop.get(t).copied().unwrap_or(0).to_string();
    for t in ["cust-a1", "cust-a2", "cust-a3", "cust-b"] {
        let row = tunnel_row(&tunnels, t);
        assert_eq!(row[1..4], ["gre", "disabled", "0"], "{tunnels}");
        assert_eq!(row[11], sent_by(t), "TX_PKTS of {t}\n{tunnels}");
    }
    assert!(
        tunnels.starts_with("NAME     KIND  STATE     PENALTY  RTT_P50"),
        "{tunnels}"
    );
    assert!(
        tunnels.ends_with(
            "(RTT_P50, RTT_P99: probe replies of the last 60 s; RX_PPS, TX_PPS: packets per \
             second over the last 1 s)\n"
        ),
        "{tunnels}"
    );
    let answers = json_tunnels(&tunnels_json);
    assert_eq!(answers.len(), 4, "{tunnels_json}");
    for (name, t) in &answers {
        assert_eq!(t["tx_packets"], Value::from(per_hop[name.as_str()]), "{t}");
        assert_eq!(t["rtt_window_s"], 60, "{t}");
        // Health checks are off: no reply, so no RTT in the window.
        assert!(t.get("rtt_p50_us").is_none(), "{t}");
        // Rates are measured once the appliance has run a second; whole packets per second.
        for k in ["rx_pps", "tx_pps"] {
            assert!(t.get(k).is_none_or(Value::is_u64), "{k}: {t}");
        }
    }
    assert!(detail.contains("name:                cust-b\n"), "{detail}");
    assert!(detail.contains("rtt_window_s:        60\n"), "{detail}");
    assert!(
        detail.contains(&format!("tx_packets:          {}\n", sent_by("cust-b"))),
        "{detail}"
    );
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no tunnel \"nope\""),
        "{}",
        text(&unknown)
    );
    assert_eq!(
        routes.lines().count(),
        7,
        "a header and six routes\n{routes}"
    );
    assert!(
        routes.contains("172.16.0.0/16  cust-b    200       1       0        200\n"),
        "the backup is not active\n{routes}"
    );
    assert!(
        routes.contains("172.16.0.0/16  cust-a1   100       1       0        100        *\n"),
        "{routes}"
    );
    assert_eq!(
        routes_24,
        "PREFIX         NEXT_HOP  PRIORITY  WEIGHT  PENALTY  EFFECTIVE  ACTIVE\n\
         172.16.9.0/24  cust-b    100       1       0        100        *\n"
    );
    let port = tunnel_row(&ports, "0");
    assert_eq!(port[1], "net_pcap0", "{ports}");
    assert_eq!(port[2], FLOWS.to_string(), "RX_PKTS\n{ports}");
    let core = tunnel_row(&cores, "1");
    assert_eq!(core[1], FLOWS.to_string(), "{cores}");
    assert_eq!(drops, "no packet dropped\n");
    assert!(
        drops_port.contains("net_pcap0  0          0          0"),
        "{drops_port}"
    );
    assert_eq!(drops_core.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&drops_core.stderr).contains("not available"),
        "{}",
        text(&drops_core)
    );
    assert!(lookup.contains("prefix      172.16.9.0/24"), "{lookup}");
    assert!(lookup.contains("next hop    cust-b"), "{lookup}");
    let json: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        json["/conduit/ports"]["0"]["rx_packets"],
        Value::from(FLOWS as u64)
    );
    assert_eq!(bad_admin.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad_admin.stderr).contains("no tunnel is called \"nope\""),
        "{}",
        text(&bad_admin)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `/conduit/tunnel` answers of `ctl --json show tunnels`, by tunnel name: one line for the
/// page of names, then one per tunnel.
fn json_tunnels(out: &str) -> HashMap<String, Value> {
    let mut lines = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let page = lines.next().unwrap();
    assert_eq!(page["/conduit/tunnels"]["total"], 4, "{out}");
    lines
        .map(|l| {
            let t = l["/conduit/tunnel"].clone();
            (t["name"].as_str().unwrap().to_string(), t)
        })
        .collect()
}

/// TX packets of each tunnel, from the per-tunnel answers.
fn tx(c: &mut Client) -> [u64; 4] {
    ["cust-a1", "cust-a2", "cust-a3", "cust-b"].map(|t| {
        c.call(&format!("/conduit/tunnel,{t}")).unwrap()["tx_packets"]
            .as_u64()
            .unwrap()
    })
}

/// Which tunnels carried traffic over `window` (the snapshot refreshes every 500 ms).
fn carrying(c: &mut Client, window: Duration) -> [bool; 4] {
    let before = tx(c);
    std::thread::sleep(window);
    let after = tx(c);
    [0, 1, 2, 3].map(|i| after[i] > before[i])
}

#[test]
fn admin_down_and_up_move_traffic() {
    let name = "ctl-admin";
    let prefix = conduit_test_support::eal::file_prefix(name);
    let dir = scratch("ctl-admin-io");
    let input = dir.join("in.pcap");
    // Flows to the /16 only: the three equal tunnels share them, the backup carries none.
    let flows: Vec<Flow> = flows(400)
        .into_iter()
        .filter(|f| f.dst.octets()[..2] == [172, 16] && f.dst.octets()[2] != 9)
        .collect();
    write_pcap(&input, &flows.iter().map(Flow::frame).collect::<Vec<_>>());
    // infinite_rx replays the capture endlessly; with no tx_pcap the PMD drops what is sent.
    let vdev = format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display());
    let mut child = start(name, vdev, &[]);
    let mut c = connect(&prefix, &mut child);
    let window = Duration::from_millis(1200);
    assert_eq!(carrying(&mut c, window), [true, true, true, false]);
    // Packets per second: the tunnels that carry traffic send at a rate, the backup does not,
    // and nothing comes back out of a tunnel (the capture holds no GRE). A rate needs a
    // second of snapshots, which a loaded machine may take longer to refresh.
    let deadline = Instant::now() + Duration::from_secs(5);
    let rates = loop {
        let rates = json_tunnels(&ctl_ok(&prefix, "--json show tunnels"));
        if rates.values().all(|t| t.get("tx_pps").is_some()) {
            break rates;
        }
        assert!(Instant::now() < deadline, "no rate measured: {rates:?}");
        std::thread::sleep(Duration::from_millis(250));
    };
    for (name, t) in &rates {
        let tx_pps = t["tx_pps"].as_u64().unwrap_or_else(|| panic!("{t}"));
        if name == "cust-b" {
            assert_eq!(tx_pps, 0, "{t}");
        } else {
            assert!(tx_pps > 0, "{t}");
        }
        assert_eq!(t["rx_pps"], 0, "{t}");
        assert_eq!(t["rtt_window_s"], 60, "{t}");
    }

    // The trace: the next 40 packets, each with the tunnel lookup gives its flow.
    let trace = ctl_ok(&prefix, "trace 40");
    let rows: Vec<Vec<&str>> = trace
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 40, "{trace}");
    for row in &rows {
        // CORE IN_PORT SRC DST PROTO SPORT DPORT tunnel NAME out port 0
        assert_eq!(row[..2], ["1", "0"], "{trace}");
        assert_eq!(row[7..], ["tunnel", row[8], "out", "port", "0"], "{trace}");
        let flow = Flow {
            src: row[2].parse().unwrap(),
            dst: row[3].parse().unwrap(),
            protocol: row[4].parse().unwrap(),
            sport: row[5].parse().unwrap(),
            dport: row[6].parse().unwrap(),
        };
        assert!(flows.contains(&flow), "{flow:?} was not sent");
        let r = c.call(&flow.lookup_command()).unwrap();
        assert_eq!(r["chosen"], row[8], "{flow:?}\n{trace}");
    }
    // Filtered by host: only that flow's packets (the capture loops, so it comes again).
    let host = flows[0].dst;
    let only = ctl_ok(&prefix, &format!("trace 3 --host {host}"));
    assert_eq!(only.lines().count(), 1 + 3, "{only}");
    for l in only.lines().skip(1) {
        assert_eq!(
            l.split_whitespace().nth(3),
            Some(host.to_string().as_str()),
            "{only}"
        );
    }
    let too_many = ctl_ok(&prefix, "trace 1000");
    assert_eq!(too_many.lines().count(), 1 + 64, "bounded at 64 per worker");

    let down = ctl_ok(&prefix, "tunnel cust-a2 admin down");
    assert!(
        down.starts_with("tunnel cust-a2: admin down, state admin-down, table generation "),
        "{down}"
    );
    // Let the snapshot catch up with the swap, then watch a whole window.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(carrying(&mut c, window), [true, false, true, false]);
    let shown = ctl_ok(&prefix, "show tunnels");
    let row = tunnel_row(&shown, "cust-a2");
    assert_eq!(row[2..4], ["admin-down", "1000000"], "{shown}");
    assert!(row[6].ends_with("s ago"), "{shown}");
    assert_eq!(row[7], "admin down", "{shown}");
    // Its rate falls to zero once a whole measured second follows the swap (the rate covers
    // about the last second, of a snapshot up to 0.5 s old); the others' does not.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut shown = shown;
    while tunnel_row(&shown, "cust-a2")[13] != "0" {
        assert!(Instant::now() < deadline, "TX_PPS stays above 0\n{shown}");
        std::thread::sleep(Duration::from_millis(250));
        shown = ctl_ok(&prefix, "show tunnels");
    }
    let a1 = tunnel_row(&shown, "cust-a1");
    assert!(a1[13].parse::<u64>().unwrap() > 0, "TX_PPS\n{shown}");
    let detail = ctl_ok(&prefix, "show tunnel cust-a1");
    assert!(detail.contains("\ntx_pps:   "), "{detail}");
    let routes = ctl_ok(&prefix, "show routes 172.16.0.0/16");
    assert!(
        routes.contains("172.16.0.0/16  cust-a2   100       1       1000000  1000100\n"),
        "{routes}"
    );
    // Lookups follow: no flow is looked up into cust-a2 now.
    for f in &flows {
        let r = c.call(&f.lookup_command()).unwrap();
        assert_ne!(r["chosen"], "cust-a2", "{f:?}");
    }

    let up = ctl_ok(&prefix, "tunnel cust-a2 admin up");
    assert!(
        up.starts_with("tunnel cust-a2: admin up, state disabled"),
        "{up}"
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(carrying(&mut c, window), [true, true, true, false]);
    let shown = ctl_ok(&prefix, "show tunnels");
    let row = tunnel_row(&shown, "cust-a2");
    assert_eq!(row[2..4], ["disabled", "0"], "{shown}");
    assert_eq!(row[7], "admin up", "{shown}");
    let log = stop(child);
    assert!(log.contains("tunnel cust-a2: admin down"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_appliance_names_its_prefix_and_socket() {
    let out = ctl("no-such-instance", "show tunnels");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("file prefix \"no-such-instance\"")
            && err.contains("/no-such-instance/dpdk_telemetry.v2"),
        "{err}"
    );
    let usage = ctl("x", "show nothing");
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage));
}
