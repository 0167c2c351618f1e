//! Tests of parsing and validation; `control/tests/bad_configs.rs` adds the corpus of broken
//! files and checks that every file of `configs/` parses.

use std::time::Duration;

use super::*;
use crate::health::{HealthConfig, ProbeRate};
use conduit_packet::route::{AdminState, Health, NextHop, TunnelId};

/// The smallest valid config (io mode); other tests append to it.
pub(super) const GOOD: &str = "\
dataplane:
  ports:
    - device: net_ring0
    - device: net_ring1
      mtu: 1500
  workers: [1]
stats:
  interval_ms: 0
";

/// A pipeline config exercising every section; the semantic tests break one line of it.
const FULL: &str = "\
dataplane:
  ports:
    - device: net_ring0
      ipv4: 192.0.2.10/24
    - device: net_ring1
  workers: [1]
  mode: pipeline
local_endpoints:
  - 203.0.113.1
  - 203.0.113.2
gateway:
  ipv4: 192.0.2.1
  port: net_ring0
tunnels:
  - name: gre-a
    kind: gre
    local: 203.0.113.1
    remote: 198.51.100.1
    interface_address: 10.100.0.0/31
    health_check:
      rate: high
      hold_down_ms: 2000
  - name: gre-b
    kind: gre
    local: 203.0.113.1
    remote: 198.51.100.1
    interface_address: 10.100.0.2/31
    key: 7
  - name: ipsec-c
    kind: ipsec
    local: 203.0.113.2
    remote: 198.51.100.9
    interface_address: 10.100.0.5/30
    ipsec:
      outbound: { spi: 0x2000, key: 0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff01020304 }
      inbound:
        - { spi: 0x1000, key: 0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223 }
      nat_t: false
routes:
  - prefix: 172.16.0.0/16
    tunnel: gre-a
    priority: 100
  - prefix: 172.16.0.0/16
    tunnel: gre-b
    priority: 100
    weight: 3
  - prefix: 172.17.0.0/24
    tunnel: ipsec-c
    priority: 200
ecmp:
  mode: resilient
  buckets: 1024
icmp:
  rate_per_sec: 200
  burst: 20
  ttl_exceeded: true
reassembly:
  max_sets: 256
  timeout_ms: 500
stats:
  interval_ms: 0
  prometheus_listen: 127.0.0.1:9100
ipsec:
  instance_id: 7
";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.yaml"))
}

/// The error's first line (`file:line[:column]: field: message`); the source line shown
/// under it is checked by the bad-config corpus and the tests of diagnostic.rs.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string().lines().next().unwrap_or_default().to_string(),
    }
}

#[test]
fn the_tables_use_the_configured_bucket_count() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.ecmp.buckets, 1024);
    let table = crate::tables::forwarding_table(&c, &[]).unwrap();
    assert_eq!(table.bucket_count(), 1024);
    let c = parse(&FULL.replacen("buckets: 1024", "buckets: 65536", 1)).unwrap();
    let table = crate::tables::forwarding_table(&c, &[]).unwrap();
    assert_eq!(table.bucket_count(), 65536);
}

/// Replaces the exactly-once occurring `from` in FULL and returns the error message.
fn full_with(from: &str, to: &str) -> String {
    assert_eq!(FULL.matches(from).count(), 1, "{from:?} must occur once");
    error(&FULL.replacen(from, to, 1))
}

#[test]
fn parses_defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.dataplane.ports.len(), 2);
    assert_eq!(c.dataplane.ports[1].mtu, Some(1500));
    assert!(c.dataplane.ports[0].rss);
    assert_eq!(c.dataplane.ports[0].ipv4, None);
    assert_eq!(c.dataplane.burst, 32);
    assert_eq!(c.dataplane.mode, ForwardMode::Io);
    assert_eq!(c.stats.interval_ms, 0);
    assert_eq!(c.stats.prometheus_listen, None);
    assert!(c.local_endpoints.is_empty());
    assert!(c.gateway.is_none());
    assert!(c.tunnels.is_empty());
    assert!(c.routes.is_empty());
    assert_eq!(c.ecmp.mode, EcmpMode::Modulo);
    assert_eq!(c.ecmp.buckets, 4096);
    assert_eq!(c.icmp.rate_per_sec, 100);
    assert_eq!(c.icmp.burst, 50);
    assert!(!c.icmp.ttl_exceeded);
    assert_eq!(c.reassembly.max_sets, 1024);
    assert_eq!(c.reassembly.timeout_ms, 1000);
    assert_eq!(c.uplink_mtu(), 1500);
    let size = c.pool_size();
    assert!(size >= c.min_mbufs());
    assert!((size + 1).is_power_of_two());
}

#[test]
fn parses_every_section() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.dataplane.mode, ForwardMode::Pipeline);
    assert_eq!(
        c.dataplane.ports[0].ipv4,
        Some("192.0.2.10/24".parse().unwrap())
    );
    assert_eq!(c.local_endpoints.len(), 2);
    let gw = c.gateway.as_ref().unwrap();
    assert_eq!(gw.ipv4, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(gw.mac, None);
    assert_eq!(c.gateway_port().unwrap().0, 0);
    assert_eq!(c.tunnels.len(), 3);
    let (i, b) = c.tunnel("gre-b").unwrap();
    assert_eq!(i, 1);
    assert_eq!(b.key, Some(7));
    assert_eq!(b.mtu(), 1472);
    assert_eq!(b.customer_address(), Ipv4Addr::new(10, 100, 0, 3));
    let a = &c.tunnels[0];
    assert_eq!(a.mtu(), 1476);
    assert_eq!(
        a.health(),
        HealthConfig {
            rate: ProbeRate::High,
            hold_down: Duration::from_secs(2),
            ..HealthConfig::default()
        }
    );
    let ipsec = &c.tunnels[2];
    assert_eq!(ipsec.kind, TunnelKind::Ipsec);
    assert_eq!(ipsec.mtu(), 1400);
    assert_eq!(ipsec.mss(), 1360);
    assert_eq!(ipsec.customer_address(), Ipv4Addr::new(10, 100, 0, 6));
    assert_eq!(ipsec.health_direction(), ProbeDirection::Bidirectional);
    let sa = ipsec.ipsec.as_ref().unwrap();
    assert_eq!(sa.outbound.as_ref().unwrap().spi, 0x2000);
    assert_eq!(sa.inbound[0].spi, 0x1000);
    assert_eq!(
        c.sa_key(&sa.inbound[0]).unwrap().salt,
        [0x20, 0x21, 0x22, 0x23]
    );
    assert_eq!((sa.replay_window, sa.nat_t), (0, false));
    let section = c.ipsec.as_ref().unwrap();
    assert_eq!(section.instance_id, Some(7));
    assert_eq!(section.crypto_device, "crypto_aesni_gcm");
    assert_eq!(section.state_dir, Path::new("/var/lib/conduit"));
    assert!(section.keys_file.is_none() && c.keys.is_empty());
    assert!(c.has_ipsec_tunnels());
    assert_eq!(c.routes[1].weight(), 3);
    assert_eq!(c.routes[0].weight(), 1);
    assert_eq!(c.ecmp.mode, EcmpMode::Resilient);
    assert!(c.icmp.ttl_exceeded);
    assert_eq!(
        c.stats.prometheus_listen,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    assert!(c.tunnel("nope").is_none());
}

#[test]
fn unknown_field_has_line_and_path() {
    let text = GOOD.replace("      mtu: 1500", "      mtu: 1500\n      speed: 10");
    assert_eq!(
        error(&text),
        "test.yaml:6:7: dataplane.ports[1].speed: unknown field `speed`, expected one of `device`, `mtu`, `rss`, `ipv4`, `mac`"
    );
}

#[test]
fn wrong_type_has_line_and_path() {
    let text = GOOD.replace("mtu: 1500", "mtu: big");
    let e = error(&text);
    assert!(
        e.starts_with("test.yaml:5:12: dataplane.ports[1].mtu: invalid type"),
        "{e}"
    );
}

#[test]
fn address_errors_come_from_serde_with_position() {
    assert_eq!(
        full_with(
            "interface_address: 10.100.0.2/31",
            "interface_address: 10.100.0.2/33"
        ),
        "test.yaml:27:24: tunnels[1].interface_address: 10.100.0.2/33: prefix length above 32"
    );
    assert_eq!(
        full_with("  ipv4: 192.0.2.1\n", "  ipv4: 192.0.2.300\n"),
        "test.yaml:12:9: gateway.ipv4: invalid IPv4 address syntax"
    );
    assert_eq!(
        full_with("  port: net_ring0", "  mac: 02:00:00\n  port: net_ring0"),
        "test.yaml:13:8: gateway.mac: 02:00:00: expected a MAC address such as 02:00:5e:00:53:01"
    );
}

#[test]
fn semantic_errors_have_line_and_path() {
    let text = GOOD.replace("mtu: 1500", "mtu: 20");
    assert_eq!(
        error(&text),
        "test.yaml:5: dataplane.ports[1].mtu: MTU 20 is outside 68..=9000"
    );
    let text = GOOD.replace("mtu: 1500", "mtu: 9001");
    assert_eq!(
        error(&text),
        "test.yaml:5: dataplane.ports[1].mtu: MTU 9001 is outside 68..=9000"
    );
    let text = GOOD.replace("net_ring1", "net_ring0");
    assert_eq!(
        error(&text),
        "test.yaml:4: dataplane.ports[1].device: port \"net_ring0\" is listed twice"
    );
    let text = GOOD.replace("workers: [1]", "workers: []");
    assert_eq!(
        error(&text),
        "test.yaml:6: dataplane.workers: at least one worker lcore is needed"
    );
    let text = GOOD.replace("workers: [1]", "workers: [1]\n  burst: 300");
    assert_eq!(
        error(&text),
        "test.yaml:7: dataplane.burst: burst 300 is outside 1..=256"
    );
}

#[test]
fn port_addresses() {
    assert_eq!(
        full_with("ipv4: 192.0.2.10/24", "ipv4: 192.0.2.0/24"),
        "test.yaml:4: dataplane.ports[0].ipv4: 192.0.2.0/24 is the network address of its subnet, not a host address"
    );
    assert_eq!(
        full_with("ipv4: 192.0.2.10/24", "ipv4: 192.0.2.255/24"),
        "test.yaml:4: dataplane.ports[0].ipv4: 192.0.2.255/24 is the broadcast address of its subnet, not a host address"
    );
    assert_eq!(
        full_with("ipv4: 192.0.2.10/24", "ipv4: 127.0.0.1/8"),
        "test.yaml:4: dataplane.ports[0].ipv4: 127.0.0.1 is not a unicast address"
    );
}

#[test]
fn local_endpoints_rules() {
    assert_eq!(
        full_with("  - 203.0.113.2\n", "  - 203.0.113.1\n"),
        "test.yaml:10: local_endpoints[1]: 203.0.113.1 is listed twice"
    );
    assert_eq!(
        full_with("  - 203.0.113.2\n", "  - 224.0.0.5\n"),
        "test.yaml:10: local_endpoints[1]: 224.0.0.5 is not a unicast address"
    );
}

#[test]
fn gateway_rules() {
    assert_eq!(
        full_with("  port: net_ring0", "  port: net_ring9"),
        "test.yaml:13: gateway.port: port \"net_ring9\" is not one of dataplane.ports"
    );
    assert_eq!(
        full_with("  ipv4: 192.0.2.1\n", "  ipv4: 192.0.3.1\n"),
        "test.yaml:12: gateway.ipv4: 192.0.3.1 is outside the subnet 192.0.2.10/24 of port \"net_ring0\""
    );
    assert_eq!(
        full_with("  ipv4: 192.0.2.1\n", "  ipv4: 192.0.2.10\n"),
        "test.yaml:12: gateway.ipv4: 192.0.2.10 is the address of port \"net_ring0\" itself"
    );
    assert_eq!(
        full_with("  ipv4: 192.0.2.1\n", "  ipv4: 203.0.113.2\n"),
        "test.yaml:12: gateway.ipv4: 203.0.113.2 is one of our local_endpoints"
    );
    assert_eq!(
        full_with(
            "  port: net_ring0",
            "  mac: 01:00:5e:00:00:01\n  port: net_ring0"
        ),
        "test.yaml:13: gateway.mac: 01:00:5e:00:00:01 is not a unicast MAC address"
    );
    assert_eq!(
        full_with("      ipv4: 192.0.2.10/24\n", ""),
        "test.yaml:10: gateway.mac: not set, and port \"net_ring0\" has no ipv4 address to send ARP requests from: give one of them"
    );
    // A static MAC needs no port address.
    let text = FULL.replace("      ipv4: 192.0.2.10/24\n", "").replace(
        "  port: net_ring0",
        "  mac: 02:00:5e:00:53:01\n  port: net_ring0",
    );
    assert!(parse(&text).is_ok());
}

#[test]
fn tunnel_identity_rules() {
    assert_eq!(
        full_with("name: gre-b", "name: gre-a"),
        "test.yaml:23: tunnels[1].name: tunnel \"gre-a\" is listed twice"
    );
    assert_eq!(
        full_with("name: gre-b", "name: \"gre b\""),
        "test.yaml:23: tunnels[1].name: \"gre b\": tunnel names are 1..=64 letters, digits, '-', '_' or '.'"
    );
    assert_eq!(
        full_with("    key: 7\n", ""),
        "test.yaml:26: tunnels[1].remote: tunnel \"gre-a\" has the same local and remote and no key either: give them different keys"
    );
    // Same key on both: rejected at the key.
    let text = FULL.replace(
        "    interface_address: 10.100.0.0/31\n",
        "    interface_address: 10.100.0.0/31\n    key: 7\n",
    );
    assert_eq!(
        error(&text),
        "test.yaml:29: tunnels[1].key: tunnel \"gre-a\" has the same local, remote and key 7: GRE packets could not be told apart"
    );
    assert_eq!(
        full_with("    local: 203.0.113.2\n", "    local: 203.0.113.3\n"),
        "test.yaml:31: tunnels[2].local: 203.0.113.3 is not one of local_endpoints"
    );
    assert_eq!(
        full_with("    remote: 198.51.100.9\n", "    remote: 203.0.113.1\n"),
        "test.yaml:32: tunnels[2].remote: 203.0.113.1 is one of our local_endpoints"
    );
    assert_eq!(
        full_with("    remote: 198.51.100.9\n", "    remote: 0.0.0.0\n"),
        "test.yaml:32: tunnels[2].remote: 0.0.0.0 is not a unicast address"
    );
}

#[test]
fn tunnel_kind_rules() {
    assert_eq!(
        full_with("    kind: ipsec\n", "    kind: ipsec\n    key: 5\n"),
        "test.yaml:31: tunnels[2].key: only GRE tunnels have a key (IPsec keys go in the ipsec block)"
    );
    assert_eq!(
        full_with("    kind: ipsec\n", "    kind: gre\n"),
        "test.yaml:34: tunnels[2].ipsec: only IPsec tunnels have an ipsec block (this one is GRE)"
    );
    let text = FULL.replace(
        "    kind: gre\n    local: 203.0.113.1\n    remote: 198.51.100.1\n    interface_address: 10.100.0.2/31",
        "    kind: ipsec\n    local: 203.0.113.1\n    remote: 198.51.100.1\n    interface_address: 10.100.0.2/31",
    );
    assert_eq!(
        error(&text),
        "test.yaml:28: tunnels[1].key: only GRE tunnels have a key (IPsec keys go in the ipsec block)"
    );
    let text = text.replace("    key: 7\n", "");
    assert_eq!(
        error(&text),
        "test.yaml:23: tunnels[1].ipsec: an IPsec tunnel needs an ipsec block with its SAs (outbound, inbound)"
    );
    assert_eq!(
        full_with("    key: 7\n", "    key: 7\n    ttl: 0\n"),
        "test.yaml:29: tunnels[1].ttl: TTL 0 is outside 1..=255"
    );
}

#[test]
fn interface_address_rules() {
    assert_eq!(
        full_with("10.100.0.2/31", "10.100.0.2/29"),
        "test.yaml:27: tunnels[1].interface_address: 10.100.0.2/29: a tunnel interface address must be a /30 or /31"
    );
    assert_eq!(
        full_with("10.100.0.5/30", "10.100.0.4/30"),
        "test.yaml:33: tunnels[2].interface_address: 10.100.0.4/30 is not a usable host of the /30 (use 10.100.0.5/30 or 10.100.0.6/30)"
    );
    assert_eq!(
        full_with("10.100.0.5/30", "10.100.0.7/30"),
        "test.yaml:33: tunnels[2].interface_address: 10.100.0.7/30 is not a usable host of the /30 (use 10.100.0.5/30 or 10.100.0.6/30)"
    );
    assert_eq!(
        full_with("10.100.0.5/30", "10.100.0.1/30"),
        "test.yaml:33: tunnels[2].interface_address: 10.100.0.1/30 overlaps 10.100.0.0/31 of tunnel \"gre-a\""
    );
    assert_eq!(
        full_with("10.100.0.2/31", "10.100.0.1/31"),
        "test.yaml:27: tunnels[1].interface_address: 10.100.0.1/31 overlaps 10.100.0.0/31 of tunnel \"gre-a\""
    );
}

#[test]
fn mtu_and_mss_rules() {
    assert_eq!(
        full_with("    key: 7\n", "    key: 7\n    mtu: 1476\n"),
        "test.yaml:29: tunnels[1].mtu: MTU 1476 does not fit the 1500-byte MTU of port \"net_ring0\" after GRE encapsulation: at most 1472"
    );
    assert_eq!(
        full_with("    key: 7\n", "    key: 7\n    mtu: 575\n"),
        "test.yaml:29: tunnels[1].mtu: MTU 575 is below the minimum 576"
    );
    assert_eq!(
        full_with("    kind: ipsec\n", "    kind: ipsec\n    mtu: 1447\n"),
        "test.yaml:31: tunnels[2].mtu: MTU 1447 does not fit the 1500-byte MTU of port \"net_ring0\" after IPsec encapsulation: at most 1446"
    );
    assert!(parse(&FULL.replace("    kind: ipsec\n", "    kind: ipsec\n    mtu: 1446\n")).is_ok());
    // A smaller uplink makes the defaults too big; a jumbo one allows big tunnel MTUs.
    assert_eq!(
        full_with("      ipv4: 192.0.2.10/24\n", "      ipv4: 192.0.2.10/24\n      mtu: 1400\n"),
        "test.yaml:16: tunnels[0].mtu: MTU 1476 (the default) does not fit the 1400-byte MTU of port \"net_ring0\" after GRE encapsulation: at most 1376"
    );
    let jumbo = FULL
        .replace(
            "      ipv4: 192.0.2.10/24\n",
            "      ipv4: 192.0.2.10/24\n      mtu: 9000\n",
        )
        .replace("    key: 7\n", "    key: 7\n    mtu: 8972\n");
    let c = parse(&jumbo).unwrap();
    assert_eq!(c.tunnels[1].mss(), 8932);
    assert_eq!(c.largest_port_mtu(), 9000);
    assert_eq!(parse(FULL).unwrap().largest_port_mtu(), 1500);
    assert_eq!(
        full_with("    key: 7\n", "    key: 7\n    mss: 1433\n"),
        "test.yaml:29: tunnels[1].mss: MSS 1433 exceeds MTU 1472 - 40 = 1432"
    );
    assert_eq!(
        full_with("    key: 7\n", "    key: 7\n    mss: 500\n"),
        "test.yaml:29: tunnels[1].mss: MSS 500 is below the minimum 536"
    );
    assert!(parse(&FULL.replace("    key: 7\n", "    key: 7\n    mss: 1432\n")).is_ok());
}

const KEY_IN: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223";
const KEY_OUT: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff01020304";

#[test]
fn ipsec_rules() {
    assert_eq!(
        full_with("spi: 0x1000", "spi: 0"),
        "test.yaml:37: tunnels[2].ipsec.inbound[0].spi: SPI 0 is reserved (0..=255, RFC 4303); use 256 or above"
    );
    assert_eq!(
        full_with("spi: 0x2000", "spi: 255"),
        "test.yaml:35: tunnels[2].ipsec.outbound.spi: SPI 255 is reserved (0..=255, RFC 4303); use 256 or above"
    );
    assert!(parse(&FULL.replace("spi: 0x2000", "spi: 256")).is_ok());
    assert_eq!(
        full_with("key: 0x0011", "key: 0x0x11"),
        "test.yaml:35:37: tunnels[2].ipsec.outbound.key: key has a character that is not a hex digit at position 4"
    );
    assert_eq!(
        full_with("ccddeeff01020304 }", "ccddeeff }"),
        "test.yaml:35:37: tunnels[2].ipsec.outbound.key: key has 64 hex digits; AES-256-GCM needs 72 (a 32-byte key, then a 4-byte salt, RFC 4106)"
    );
    assert_eq!(
        full_with(KEY_OUT, KEY_IN),
        "test.yaml:35: tunnels[2].ipsec.outbound: the key is also an inbound key of tunnel \"ipsec-c\": the two directions would repeat AES-GCM nonces under one key; give each SA its own key"
    );
    assert_eq!(
        full_with("      nat_t: false\n", "      replay_window: 63\n"),
        "test.yaml:38: tunnels[2].ipsec.replay_window: replay window 63 must be 0 (off) or 64..=4096"
    );
    assert_eq!(
        full_with("      nat_t: false\n", "      replay_window: 4097\n"),
        "test.yaml:38: tunnels[2].ipsec.replay_window: replay window 4097 must be 0 (off) or 64..=4096"
    );
    for w in [0, 64, 100, 4096] {
        let c = parse(&FULL.replace(
            "      nat_t: false\n",
            &format!("      replay_window: {w}\n"),
        ))
        .unwrap();
        assert_eq!(c.tunnels[2].ipsec.as_ref().unwrap().replay_window, w);
    }
    // Inbound SAs: 1..=4, distinct SPIs, each with exactly one key source.
    assert_eq!(
        full_with(&format!("        - {{ spi: 0x1000, key: 0x{KEY_IN} }}\n"), ""),
        "test.yaml:36: tunnels[2].ipsec.inbound: 0 inbound SAs: give 1..=4 (more than one during a rekey)"
    );
    let inbound = |spis: &[u32]| {
        spis.iter()
            .enumerate()
            .map(|(n, spi)| {
                format!(
                    "        - {{ spi: {spi}, key: {}{n:02x} }}\n",
                    &KEY_IN[..70]
                )
            })
            .collect::<String>()
    };
    let with_inbound = |spis: &[u32]| {
        FULL.replace(
            &format!("        - {{ spi: 0x1000, key: 0x{KEY_IN} }}\n"),
            &inbound(spis),
        )
    };
    assert!(parse(&with_inbound(&[300, 301, 302, 303])).is_ok());
    assert_eq!(
        error(&with_inbound(&[300, 301, 302, 303, 304])),
        "test.yaml:36: tunnels[2].ipsec.inbound: 5 inbound SAs: give 1..=4 (more than one during a rekey)"
    );
    assert_eq!(
        error(&with_inbound(&[300, 301, 300])),
        "test.yaml:39: tunnels[2].ipsec.inbound[2].spi: SPI 300 (0x12c) is listed twice"
    );
    assert_eq!(
        full_with(&format!("spi: 0x1000, key: 0x{KEY_IN}"), "spi: 0x1000"),
        "test.yaml:37: tunnels[2].ipsec.inbound[0]: the SA has no key: add `key: 0x<72 hex digits>` or `key_ref: NAME` (an entry of ipsec.keys_file)"
    );
    assert_eq!(
        full_with("spi: 0x1000,", "spi: 0x1000, key_ref: next,"),
        "test.yaml:37: tunnels[2].ipsec.inbound[0].key_ref: give either key or key_ref, not both"
    );
    assert_eq!(
        full_with(&format!("spi: 0x1000, key: 0x{KEY_IN}"), "spi: 0x1000, key_ref: next"),
        "test.yaml:37: tunnels[2].ipsec.inbound[0].key_ref: key_ref \"next\" needs ipsec.keys_file, which is not set"
    );
    // The outbound SA is optional (a tunnel that only receives).
    let c = parse(&FULL.replace(
        &format!("      outbound: {{ spi: 0x2000, key: 0x{KEY_OUT} }}\n"),
        "",
    ))
    .unwrap();
    assert!(c.tunnels[2].ipsec.as_ref().unwrap().outbound.is_none());
    // A second IPsec tunnel: its inbound SPI may repeat one of another remote, not of the same.
    let second = |remote: &str, key_out: &str| {
        format!(
            "  - name: ipsec-d\n    kind: ipsec\n    local: 203.0.113.2\n    remote: {remote}\n    \
             interface_address: 10.100.0.8/31\n    ipsec:\n      outbound: {{ spi: 0x2000, key: {key_out} }}\n      \
             inbound: [{{ spi: 0x1000, key: {}ee }}]\nroutes:\n", &KEY_IN[..70]
        )
    };
    let other_out = format!("{}ff", &KEY_OUT[..70]);
    assert!(parse(&FULL.replace("routes:\n", &second("198.51.100.10", &other_out))).is_ok());
    assert_eq!(
        full_with("routes:\n", &second("198.51.100.9", &other_out)),
        "test.yaml:46: tunnels[3].ipsec.inbound[0].spi: inbound SPI 4096 (0x1000) is already used by tunnel \"ipsec-c\" with the same remote 198.51.100.9: ESP from it could not be told apart"
    );
    assert_eq!(
        full_with("routes:\n", &second("198.51.100.10", KEY_OUT)),
        "test.yaml:45: tunnels[3].ipsec.outbound: the outbound key of tunnel \"ipsec-c\" again: two SAs numbering packets under one key would repeat AES-GCM nonces; give each outbound SA its own key"
    );
    // The kinds and the appliance-wide section.
    assert_eq!(
        full_with("ipsec:\n  instance_id: 7\n", ""),
        "test.yaml:30: tunnels[2].kind: IPsec tunnels need the appliance-wide ipsec section (with instance_id)"
    );
    assert_eq!(
        full_with("  instance_id: 7\n", "  state_dir: /tmp\n"),
        "test.yaml:63: ipsec: instance_id is missing: IPsec tunnels need it, unique among the appliances of a fleet (it makes their IVs differ)"
    );
    assert_eq!(
        full_with("  instance_id: 7\n", "  instance_id: 65536\n"),
        "test.yaml:64:16: ipsec.instance_id: invalid value: integer `65536`, expected an integer 0..=65535"
    );
    assert_eq!(
        full_with(
            "  instance_id: 7\n",
            "  instance_id: 7\n  crypto_device: \"\"\n"
        ),
        "test.yaml:65: ipsec.crypto_device: empty device name"
    );
    // Without IPsec tunnels the section may be there, without an instance id.
    let gre_only = FULL.replace("    kind: ipsec\n", "    kind: gre\n");
    let gre_only = gre_only
        .replace(
            &gre_only[gre_only.find("    ipsec:\n").unwrap()..gre_only.find("routes:").unwrap()],
            "",
        )
        .replace("  instance_id: 7\n", "  state_dir: /tmp\n");
    assert!(parse(&gre_only).is_ok(), "{:?}", parse(&gre_only));
}

/// A keys file in a fresh directory, and a config next to it naming it.
fn with_keys_file(keys: &str, mode: u32, name: &str) -> (PathBuf, Result<Config, ConfigError>) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("conduit-keys-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keys_path = dir.join("keys.yaml");
    std::fs::write(&keys_path, keys).unwrap();
    std::fs::set_permissions(&keys_path, std::fs::Permissions::from_mode(mode)).unwrap();
    let text = FULL
        .replace(
            "  instance_id: 7\n",
            "  instance_id: 7\n  keys_file: keys.yaml\n",
        )
        .replace(
            &format!("spi: 0x1000, key: 0x{KEY_IN}"),
            "spi: 0x1000, key_ref: site-c-now",
        );
    let cfg_path = dir.join("conduit.yaml");
    std::fs::write(&cfg_path, &text).unwrap();
    let r = Config::load(&cfg_path);
    (dir, r)
}

#[test]
fn keys_file_resolves_key_refs() {
    let (dir, r) = with_keys_file(
        &format!("site-c-now: 0x{KEY_IN}\nsite-c-next: {KEY_OUT}\n"),
        0o600,
        "ok",
    );
    let c = r.unwrap();
    let sa = &c.tunnels[2].ipsec.as_ref().unwrap().inbound[0];
    assert_eq!(c.sa_key(sa).unwrap().salt, [0x20, 0x21, 0x22, 0x23]);
    assert_eq!(c.keys.len(), 2);
    assert_eq!(
        c.keys_file_path(&dir.join("conduit.yaml")),
        Some(dir.join("keys.yaml"))
    );
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("0102030405") && !shown.contains("ccddeeff"),
        "{shown}"
    );

    let (dir, r) = with_keys_file(&format!("site-c-next: {KEY_OUT}\n"), 0o600, "missing");
    let e = r.unwrap_err().to_string();
    assert_eq!(
        e.lines().next().unwrap(),
        format!(
            "{}:37: tunnels[2].ipsec.inbound[0].key_ref: no key \"site-c-now\" in ipsec.keys_file",
            dir.join("conduit.yaml").display()
        )
    );

    let (dir, r) = with_keys_file(&format!("site-c-now: 0x{KEY_IN}\n"), 0o640, "mode");
    let e = r.unwrap_err().to_string();
    let keys = dir.join("keys.yaml");
    assert_eq!(e.lines().next().unwrap(), format!("{}:65: ipsec.keys_file: {} has mode 0640, readable by group or others; keys must be private to the appliance's user: chmod 600 {}", dir.join("conduit.yaml").display(), keys.display(), keys.display()));
    let (_, r) = with_keys_file(&format!("site-c-now: 0x{KEY_IN}\n"), 0o604, "other");
    assert!(r.unwrap_err().to_string().contains("has mode 0604"));
    let (_, r) = with_keys_file(&format!("site-c-now: 0x{KEY_IN}\n"), 0o400, "readonly");
    assert!(r.is_ok());

    // A broken entry is placed in the keys file, its value masked.
    let (dir, r) = with_keys_file(
        &format!(
            "site-c-now: 0x{KEY_IN}\nsite-c-next: 0x{}zz\n",
            &KEY_OUT[..70]
        ),
        0o600,
        "broken",
    );
    let e = r.unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:2:", dir.join("keys.yaml").display())),
        "{e}"
    );
    assert!(e.contains("site-c-next: "), "{e}");
    assert!(
        !e.contains(&KEY_OUT[10..30]) && !e.contains(&KEY_IN[10..30]),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_never_show_a_key() {
    // A bad key is neither quoted by the message nor shown on the source line.
    let bad = format!("{}zz", &KEY_OUT[..70]);
    for text in [
        FULL.replace(KEY_OUT, &bad),
        FULL.replace(KEY_OUT, &KEY_OUT[..64]),
        FULL.replace(&format!("key: 0x{KEY_OUT}"), &format!("key: [{KEY_OUT}]")),
        FULL.replace("spi: 0x2000", "spi: 1"),
        FULL.replace(KEY_OUT, KEY_IN),
    ] {
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("tunnels[2].ipsec"), "{e}");
        for k in [KEY_OUT, KEY_IN] {
            assert!(!e.contains(&k[8..24]) && !e.contains(&k[40..56]), "{e}");
        }
        assert!(e.contains("****"), "{e}");
    }
}

#[test]
fn health_rules() {
    assert_eq!(
        full_with("      rate: high\n", "      rate: high\n      interval_ms: 100\n"),
        "test.yaml:22: tunnels[0].health_check.interval_ms: give either rate or interval_ms, not both"
    );
    assert_eq!(
        full_with("      rate: high\n", "      interval_ms: 0\n"),
        "test.yaml:21: tunnels[0].health_check.interval_ms: health check interval must be greater than zero"
    );
    assert_eq!(
        full_with("      rate: high\n", "      rate: high\n      timeout_ms: 6401\n"),
        "test.yaml:22: tunnels[0].health_check.timeout_ms: health check timeout 6.401s exceeds 6.4s (64 probe intervals)"
    );
    assert_eq!(
        full_with("      rate: high\n", "      rate: high\n      timeout_ms: 0\n"),
        "test.yaml:22: tunnels[0].health_check.timeout_ms: health check timeout must be greater than zero"
    );
    assert_eq!(
        full_with("      rate: high\n", "      rate: high\n      loss_window_ms: 0\n"),
        "test.yaml:22: tunnels[0].health_check.loss_window_ms: health check setting `loss_window` must be greater than zero"
    );
    assert_eq!(
        full_with("      rate: high\n", "      rate: high\n      successes_to_healthy: 0\n"),
        "test.yaml:22: tunnels[0].health_check.successes_to_healthy: health check setting `successes_to_healthy` must be greater than zero"
    );
    assert_eq!(
        full_with("      rate: high\n", "      rate: high\n      degraded_loss_ppm: 1000001\n"),
        "test.yaml:22: tunnels[0].health_check.degraded_loss_ppm: degraded loss ratio 1000001 ppm exceeds 1000000 ppm (100 %)"
    );
    // Disabled checks are validated too.
    assert_eq!(
        full_with("      rate: high\n", "      enabled: false\n      down_after_failures: 0\n"),
        "test.yaml:22: tunnels[0].health_check.down_after_failures: health check setting `down_after_failures` must be greater than zero"
    );
    assert_eq!(
        full_with("      rate: high\n", "      rate: high\n      target: 10.1.1.1\n"),
        "test.yaml:22: tunnels[0].health_check.target: a target applies only to probes of type: request"
    );
    assert_eq!(
        full_with(
            "      rate: high\n",
            "      type: request\n      target: 255.255.255.255\n"
        ),
        "test.yaml:22: tunnels[0].health_check.target: 255.255.255.255 is not a unicast address"
    );
    assert_eq!(
        full_with("      rate: high\n", "      rate: fast\n"),
        "test.yaml:21:13: tunnels[0].health_check.rate: unknown variant `fast`, expected one of `low`, `mid`, `high`"
    );
    let c = parse(&FULL.replace(
        "      rate: high\n",
        "      type: request\n      target: 10.1.1.1\n",
    ))
    .unwrap();
    assert_eq!(c.tunnels[0].health_target(), Ipv4Addr::new(10, 1, 1, 1));
}

#[test]
fn route_rules() {
    assert_eq!(
        full_with("172.17.0.0/24", "172.17.0.1/24"),
        "test.yaml:47: routes[2].prefix: 172.17.0.1/24: host bits are set (the network is 172.17.0.0/24)"
    );
    assert_eq!(
        full_with("    tunnel: ipsec-c\n", "    tunnel: ipsec-x\n"),
        "test.yaml:48: routes[2].tunnel: unknown tunnel \"ipsec-x\""
    );
    assert_eq!(
        full_with("weight: 3", "weight: 257"),
        "test.yaml:46: routes[1].weight: weight 257 is outside 1..=256"
    );
    assert_eq!(
        full_with("weight: 3", "weight: 0"),
        "test.yaml:46: routes[1].weight: weight 0 is outside 1..=256"
    );
    assert_eq!(
        full_with("    tunnel: gre-b\n", "    tunnel: gre-a\n"),
        "test.yaml:43: routes[1].prefix: route 172.16.0.0/16 via tunnel \"gre-a\" is listed twice"
    );
    assert_eq!(
        full_with("    priority: 200\n", ""),
        "test.yaml:47:5: routes[2]: missing field `priority`"
    );
}

#[test]
fn ecmp_rules() {
    assert_eq!(
        full_with("buckets: 1024", "buckets: 1000"),
        "test.yaml:52: ecmp.buckets: 1000 buckets is not a power of two"
    );
    assert_eq!(
        full_with("buckets: 1024", "buckets: 32"),
        "test.yaml:52: ecmp.buckets: 32 buckets is outside 64..=65536"
    );
    assert_eq!(
        full_with("  mode: resilient\n", "  mode: random\n"),
        "test.yaml:51:9: ecmp.mode: unknown variant `random`, expected one of `modulo`, `weighted`, `resilient`"
    );
    // More routes for one prefix than buckets, in a bucket mode only.
    let mut text = FULL.replace("buckets: 1024", "buckets: 64");
    let mut tunnels = String::new();
    let mut routes = String::new();
    for n in 0..65 {
        tunnels.push_str(&format!(
            "  - name: t{n}\n    kind: gre\n    local: 203.0.113.1\n    remote: 198.51.100.1\n    \
             key: {}\n    interface_address: 10.200.{}.{}/31\n",
            1000 + n,
            n / 64,
            (n % 64) * 2
        ));
        routes.push_str(&format!(
            "  - prefix: 10.50.0.0/16\n    tunnel: t{n}\n    priority: 1\n"
        ));
    }
    text = text.replace("routes:\n", &format!("{tunnels}routes:\n{routes}"));
    let e = error(&text);
    assert!(
        e.ends_with("routes[64].prefix: 10.50.0.0/16 has more routes than the 64 ECMP buckets"),
        "{e}"
    );
    assert!(parse(&text.replace("mode: resilient", "mode: modulo")).is_ok());
}

#[test]
fn limits_and_stats_rules() {
    assert_eq!(
        full_with("burst: 20", "burst: 0"),
        "test.yaml:55: icmp.burst: burst 0 lets no ICMP error through; use at least 1 (rate_per_sec: 0 turns ICMP errors off)"
    );
    assert!(parse(
        &FULL
            .replace("burst: 20", "burst: 0")
            .replace("rate_per_sec: 200", "rate_per_sec: 0")
    )
    .is_ok());
    assert_eq!(
        full_with("max_sets: 256", "max_sets: 0"),
        "test.yaml:58: reassembly.max_sets: 0 sets is outside 1..=65536"
    );
    assert_eq!(
        full_with("timeout_ms: 500", "timeout_ms: 60000"),
        "test.yaml:59: reassembly.timeout_ms: 60000 ms is outside 1..=30000"
    );
    assert_eq!(
        full_with("127.0.0.1:9100", "127.0.0.1:0"),
        "test.yaml:62: stats.prometheus_listen: 127.0.0.1:0: port 0 cannot be scraped; give a fixed port such as 9100"
    );
    assert_eq!(
        full_with("127.0.0.1:9100", "localhost:9100"),
        "test.yaml:62:22: stats.prometheus_listen: invalid socket address syntax"
    );
}

#[test]
fn pipeline_mode_requirements() {
    let bare = "dataplane:\n  ports:\n    - device: net_ring0\n  workers: [1]\n  mode: pipeline\n";
    assert_eq!(
        error(bare),
        "test.yaml:5: dataplane.mode: pipeline mode needs at least one address in local_endpoints"
    );
    let with_ep = format!("{bare}local_endpoints: [203.0.113.1]\n");
    assert_eq!(
        error(&with_ep),
        "test.yaml:5: dataplane.mode: pipeline mode needs a gateway section"
    );
    let with_gw = format!(
        "{with_ep}gateway:\n  ipv4: 192.0.2.1\n  mac: 02:00:5e:00:53:01\n  port: net_ring0\n"
    );
    assert_eq!(
        error(&with_gw),
        "test.yaml:5: dataplane.mode: pipeline mode needs at least one tunnel"
    );
    let ok = format!(
        "{with_gw}tunnels:\n- name: t\n  kind: gre\n  local: 203.0.113.1\n  remote: 198.51.100.1\n  interface_address: 10.0.0.0/31\n"
    );
    let c = parse(&ok).unwrap();
    assert!(c.routes.is_empty());
    // io mode accepts the same sections (they are checked, not used).
    assert!(parse(&ok.replace("mode: pipeline", "mode: io")).is_ok());
}

#[test]
fn missing_section_is_reported() {
    assert_eq!(
        error("stats:\n  interval_ms: 5\n"),
        "test.yaml:1:1: missing field `dataplane`"
    );
}

#[test]
fn unreadable_file_is_reported() {
    let e = Config::load(Path::new("/nonexistent/conduit.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/nonexistent/conduit.yaml: cannot read config:"),
        "{e}"
    );
}

#[test]
fn port_mac_gateway_routes_and_admin_state() {
    // Defaults: the device's MAC, admin up, every route via a tunnel.
    let c = parse(FULL).unwrap();
    assert_eq!(c.dataplane.ports[0].mac, None);
    assert!(c.tunnels.iter().all(|t| t.admin == AdminState::Up));
    assert!(c.routes.iter().all(|r| r.next_hop.is_none()));
    let text = FULL
        .replacen(
            "      ipv4: 192.0.2.10/24\n",
            "      ipv4: 192.0.2.10/24\n      mac: 02:00:5e:00:53:0a\n",
            1,
        )
        .replacen("    key: 7\n", "    key: 7\n    admin: down\n", 1)
        .replacen(
            "ecmp:\n",
            "  - { prefix: 0.0.0.0/0, next_hop: gateway, priority: 1000 }\necmp:\n",
            1,
        );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.dataplane.ports[0].mac,
        Some("02:00:5e:00:53:0a".parse().unwrap())
    );
    assert_eq!(c.tunnel("gre-b").unwrap().1.admin, AdminState::Down);
    assert_eq!(c.tunnel("gre-a").unwrap().1.admin, AdminState::Up);
    let r = c.routes.last().unwrap();
    assert_eq!(
        (r.tunnel.as_deref(), r.next_hop),
        (None, Some(NextHopConfig::Gateway))
    );
    assert_eq!((r.via(), c.routes[0].via()), ("gateway", "gre-a"));
    // The forwarding table: the default route goes to the gateway, a customer /16 still to its
    // tunnels, and the admin-down tunnel carries the down penalty once the plane applies it.
    let health: Vec<_> = c
        .tunnels
        .iter()
        .map(|t| t.admin.routing_health(Health::Healthy))
        .collect();
    let table = crate::tables::forwarding_table(&c, &health).unwrap();
    assert_eq!(
        table.select(u32::from(Ipv4Addr::new(8, 8, 8, 8)), 1),
        Some(NextHop::Gateway)
    );
    let u = table
        .describe(u32::from(Ipv4Addr::new(172, 16, 0, 0)), 16)
        .unwrap();
    assert_eq!(
        u.tunnels,
        &[NextHop::Tunnel(TunnelId(0))],
        "gre-b is admin-down"
    );
    // Validation: both next hops, neither, and a duplicate gateway route.
    let route = "  - prefix: 172.17.0.0/24\n    tunnel: ipsec-c\n    priority: 200\n";
    assert_eq!(
        full_with(route, &format!("{route}    next_hop: gateway\n")),
        "test.yaml:50: routes[2].next_hop: give either `tunnel` or `next_hop`, not both"
    );
    assert_eq!(
        full_with(route, "  - prefix: 172.17.0.0/24\n    priority: 200\n"),
        "test.yaml:47: routes[2].prefix: the route has no next hop: add `tunnel: NAME` or `next_hop: gateway`"
    );
    assert_eq!(
        full_with(
            "ecmp:\n",
            "  - { prefix: 0.0.0.0/0, next_hop: gateway, priority: 1 }\n  - { prefix: 0.0.0.0/0, next_hop: gateway, priority: 2 }\necmp:\n"
        ),
        "test.yaml:51: routes[4].prefix: route 0.0.0.0/0 via the gateway is listed twice"
    );
}

#[test]
fn ipv4_options_policy() {
    assert_eq!(parse(GOOD).unwrap().ipv4_options, Ipv4OptionsPolicy::Drop);
    for (value, policy) in [
        ("drop", Ipv4OptionsPolicy::Drop),
        ("forward", Ipv4OptionsPolicy::Forward),
    ] {
        let c = parse(&format!("{GOOD}ipv4_options: {value}\n")).unwrap();
        assert_eq!(c.ipv4_options, policy, "{value}");
    }
    assert_eq!(
        error(&format!("{GOOD}ipv4_options: allow\n")),
        "test.yaml:9:15: ipv4_options: unknown variant `allow`, expected `drop` or `forward`"
    );
    assert!(error(&format!("{GOOD}ipv4_options:\n  policy: drop\n"))
        .starts_with("test.yaml:10:3: ipv4_options: invalid type: mapping"));
}
