//! Port MACs, gateway routes and admin state over a real EAL (docs/behaviour.md §2, §3, §8):
//! - net_pcap replay with a configured MAC (net_pcap's own is fixed): the ARP reply and every
//!   forwarded frame carry the configured MAC; a `0.0.0.0/0` gateway route forwards plain
//!   traffic with TTL − 1 and a correct checksum; an admin-down tunnel gets none of its
//!   prefix's traffic and is reported `admin-down` on the console, in telemetry and Prometheus;
//! - net_tap takes the MAC as its default and net_ring as an extra address.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use conduit_test_support::frames;
use conduit_test_support::telemetry::query;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const PORT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const GW_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

fn config(prometheus: u16) -> String {
    format!(
        "\
dataplane:
  ports:
    - device: net_pcap0
      ipv4: 192.0.2.10/24
      mac: 02:00:00:00:00:0a
  workers: [1]
  mode: pipeline
local_endpoints: [203.0.113.1]
gateway: {{ipv4: 192.0.2.1, mac: \"02:00:00:00:00:fe\", port: net_pcap0}}
tunnels:
  - {{name: t1, kind: gre, local: 203.0.113.1, remote: 198.51.100.1, interface_address: 10.255.0.0/31, health_check: {{enabled: false}}}}
  - {{name: t2, kind: gre, local: 203.0.113.1, remote: 198.51.100.2, interface_address: 10.255.0.2/31, health_check: {{enabled: false}}, admin: down}}
routes:
  - {{prefix: 172.16.0.0/16, tunnel: t1, priority: 100}}
  - {{prefix: 172.16.0.0/16, tunnel: t2, priority: 100}}
  - {{prefix: 0.0.0.0/0, next_hop: gateway, priority: 100}}
stats:
  interval_ms: 100
  prometheus_listen: 127.0.0.1:{prometheus}
"
    )
}

/// An ARP request from the gateway for the port's address.
fn arp_request() -> Vec<u8> {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&GW_MAC);
    arp.extend_from_slice(&GW_IP.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&PORT_IP.octets());
    frames::ethernet([0xff; 6], GW_MAC, frames::ETHERTYPE_ARP, &arp)
}

/// UDP from HOST to `dst`, sent by the gateway to the port's (device) MAC.
fn udp_to(dst: Ipv4Addr, sport: u16, ttl: u8) -> Vec<u8> {
    let seg = frames::udp(HOST, dst, sport, 53, b"payload");
    let ip = frames::Ipv4::new(HOST, dst, frames::UDP)
        .ttl(ttl)
        .packet(&seg);
    frames::ethernet(MAC, GW_MAC, frames::ETHERTYPE_IPV4, &ip)
}

/// GETs /metrics until it lists the tunnels (the appliance is starting) or `deadline` passes.
fn scrape(port: u16, deadline: Instant) -> Option<String> {
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut body = String::new();
            if s.read_to_string(&mut body).is_ok() && body.contains("conduit_tunnel_state{tunnel=")
            {
                return Some(body);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn net_pcap_replay_sends_from_the_configured_mac_and_routes_to_the_gateway() {
    let dir = scratch("cfg-features");
    let (input, output, cfg) = (
        dir.join("in.pcap"),
        dir.join("out.pcap"),
        dir.join("c.yaml"),
    );
    let prometheus = 20_000 + (std::process::id() % 20_000) as u16;
    std::fs::write(&cfg, config(prometheus)).unwrap();
    let mut packets = vec![arp_request()];
    // 64 flows to the customer prefix: t2 is admin-down, so t1 carries every one.
    packets.extend((0..64u16).map(|i| udp_to(Ipv4Addr::new(172, 16, 1, i as u8), 1000 + i, 20)));
    // 16 flows to the internet through the default route, and one whose TTL expires.
    let internet: Vec<Vec<u8>> = (0..16u16)
        .map(|i| {
            udp_to(
                Ipv4Addr::new(8, 8, (i >> 8) as u8, i as u8 + 1),
                2000 + i,
                20,
            )
        })
        .collect();
    packets.extend(internet.iter().cloned());
    packets.push(udp_to(Ipv4Addr::new(8, 8, 8, 8), 9, 1));
    write_pcap(&input, &packets);

    let mut args = eal_args("cfg-features");
    args.extend([
        "--vdev".to_string(),
        format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            input.display(),
            output.display()
        ),
        "--".to_string(),
        "--config".to_string(),
        cfg.display().to_string(),
        "--exit-when-idle".to_string(),
        "3000".to_string(),
    ]);
    let child = Command::new(CONDUIT)
        .args(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = scrape(prometheus, Instant::now() + Duration::from_secs(30));
    // The telemetry socket, while the appliance idles before it exits.
    let telemetry = metrics.is_some().then(|| {
        query(
            &conduit_test_support::eal::file_prefix("cfg-features"),
            &["/conduit/tunnels", "/conduit/tunnel,t2"],
        )
    });
    let out = child.wait_with_output().unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("mbufs in use after shutdown: 0 of"), "{log}");
    assert!(
        log.contains("net_pcap0: the device keeps its own mac"),
        "net_pcap cannot take the MAC: a warning says so\n{log}"
    );
    let dropped = |reason: &str| {
        log.lines()
            .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                ["drop", r, n] if r == reason => n.parse::<u64>().ok(),
                _ => None,
            })
            .unwrap_or(0)
    };
    assert_eq!(dropped("ttl_exceeded"), 1, "{log}");
    assert_eq!(dropped("no_route"), 0, "{log}");
    // Reported as admin-down, distinct from a failed check: console and Prometheus.
    assert!(
        log.contains("health    t2               admin-down"),
        "{log}"
    );
    let metrics = metrics.unwrap_or_else(|| panic!("no /metrics answer\n{log}"));
    assert!(
        metrics.contains("conduit_tunnel_state{tunnel=\"t2\",state=\"admin-down\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("conduit_tunnel_state{tunnel=\"t2\",state=\"down\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("conduit_tunnel_penalty{tunnel=\"t2\"} 1000000"),
        "{metrics}"
    );
    let telemetry = telemetry.unwrap();
    let tunnels = &telemetry[0]["/conduit/tunnels"];
    assert_eq!(
        tunnels["names"],
        serde_json::json!(["t1", "t2"]),
        "{telemetry:?}"
    );
    assert_eq!(
        tunnels["states"],
        serde_json::json!(["disabled", "admin-down"]),
        "{telemetry:?}"
    );
    assert_eq!(
        telemetry[1]["/conduit/tunnel"]["state"],
        serde_json::json!("admin-down"),
        "{telemetry:?}"
    );

    let got = read_pcap(&output);
    assert_eq!(
        got.len(),
        1 + 64 + 16,
        "ARP reply, GRE and plain frames\n{log}"
    );
    for (i, f) in got.iter().enumerate() {
        assert_eq!(&f[6..12], &MAC, "frame {i} leaves from the configured MAC");
    }
    // The ARP reply names the configured MAC as ours.
    let arp = &got[0];
    assert_eq!(&arp[12..14], &[0x08, 0x06]);
    assert_eq!(&arp[..6], &GW_MAC);
    assert_eq!(&arp[14 + 6..14 + 8], &[0, 2], "an ARP reply");
    assert_eq!(&arp[14 + 8..14 + 14], &MAC, "sender hardware address");
    // Every customer flow went into t1 (outer destination 198.51.100.1).
    for f in &got[1..65] {
        assert_eq!(f[14 + 9], frames::GRE);
        assert_eq!(&f[14 + 16..14 + 20], &[198, 51, 100, 1], "t2 is admin-down");
    }
    // Internet traffic: plain, to the gateway, TTL − 1, valid checksum, else unchanged.
    for (sent, f) in internet.iter().zip(&got[65..]) {
        assert_eq!(&f[..6], &GW_MAC);
        assert_eq!(f.len(), sent.len());
        assert_eq!(f[14 + 8], sent[14 + 8] - 1, "TTL - 1");
        assert_eq!(frames::checksum(&f[14..34]), 0, "IPv4 header checksum");
        let mut expect = sent[14..].to_vec();
        expect[8] -= 1;
        expect[10..12].copy_from_slice(&f[24..26]);
        assert_eq!(&f[14..], &expect[..], "only TTL and checksum change");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn net_tap_and_net_ring_take_the_configured_mac() {
    let dir = scratch("cfg-mac");
    let cfg = dir.join("io.yaml");
    std::fs::write(
        &cfg,
        "dataplane:\n  ports:\n    - device: net_ring0\n      mac: 02:00:00:00:aa:01\n    - device: net_tap0\n      mac: 02:00:00:00:aa:02\n  workers: [1]\nstats:\n  interval_ms: 0\n",
    )
    .unwrap();
    let iface = format!("cfgmac{}", std::process::id() % 100_000);
    let mut args = eal_args("cfg-mac");
    args.extend([
        "--vdev".to_string(),
        "net_ring0".to_string(),
        "--vdev".to_string(),
        format!("net_tap0,iface={iface}"),
        "--".to_string(),
        "--config".to_string(),
        cfg.display().to_string(),
        "--exit-when-idle".to_string(),
        "300".to_string(),
    ]);
    let out = run(&args);
    let log = text(&out);
    if log.contains("net_tap0") && log.contains("not found") {
        // No /dev/net/tun or no permission: net_tap did not probe. Nothing to check here.
        eprintln!("net_tap unavailable, skipped\n{log}");
        return;
    }
    assert!(out.status.success(), "{log}");
    // net_tap: the configured MAC became the device's own (no "(device ...)" in the port line).
    assert!(
        log.contains("net_tap0: mac set to 02:00:00:00:aa:02"),
        "{log}"
    );
    assert!(log.contains("Mbps, mac 02:00:00:00:aa:02\n"), "{log}");
    // net_ring keeps its default and receives for the configured one as well.
    assert!(
        log.contains("net_ring0: mac 02:00:00:00:aa:01 added beside the device's own"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
