//! The SA metrics as the appliance takes them: from a control plane's running IPsec
//! configuration (the objects the workers count in), named by the plane's tunnels, through a
//! reload that rekeys, into the exposition.

use std::path::Path;
use std::sync::Arc;

use conduit_packet::esp::sa::{SaCounter, SaDirection};
use conduit_packet::wire::EthernetAddress;
use control::config::Config;
use control::health::Timestamp;
use control::metrics::{render_prometheus, SaMetrics, Snapshot};
use control::plane::ControlPlane;

const KEY_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff01020304";
const KEY_B: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223";
const KEY_C: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100a0b0c0d0";

/// A GRE tunnel (id 0) and two IPsec tunnels (ids 1, 2); `east_inbound` lists east's inbound
/// SAs.
fn config(east_inbound: &str) -> Config {
    let text = format!(
        "\
dataplane:
  ports:
    - device: net_ring0
      ipv4: 192.0.2.10/24
  workers: [1]
  mode: pipeline
local_endpoints: [203.0.113.1]
gateway:
  ipv4: 192.0.2.1
  mac: 02:00:5e:00:53:01
  port: net_ring0
ipsec:
  instance_id: 7
tunnels:
  - name: gre-a
    kind: gre
    local: 203.0.113.1
    remote: 198.51.100.10
    interface_address: 10.200.0.0/31
    health_check: {{ enabled: false }}
  - name: east
    kind: ipsec
    local: 203.0.113.1
    remote: 198.51.100.20
    interface_address: 10.200.0.2/31
    health_check: {{ enabled: false }}
    ipsec:
      outbound: {{ spi: 0x2000, key: 0x{KEY_A} }}
      inbound: [{east_inbound}]
  - name: west
    kind: ipsec
    local: 203.0.113.1
    remote: 198.51.100.30
    interface_address: 10.200.0.4/31
    health_check: {{ enabled: false }}
    ipsec:
      inbound: [{{ spi: 0x3000, key: 0x{KEY_C} }}]
routes:
  - {{ prefix: 172.16.0.0/16, tunnel: east, priority: 100 }}
"
    );
    Config::parse(&text, Path::new("test.yaml")).expect("valid test config")
}

/// What the snapshot refresh does (src/ops.rs).
fn sas(p: &ControlPlane) -> Vec<SaMetrics> {
    SaMetrics::all(p.ipsec(), |id| {
        p.tunnels().get(id.0 as usize).map(|t| t.name.as_str())
    })
}

fn row(s: &SaMetrics) -> (&str, SaDirection, u32, u64, u64, u64) {
    (
        s.tunnel.as_str(),
        s.direction,
        s.spi,
        s.packets,
        s.auth_failures,
        s.last_seq,
    )
}

#[test]
fn sa_metrics_follow_the_plane_across_a_rekey() {
    let old = format!("{{ spi: 0x1000, key: 0x{KEY_B} }}");
    let (mut p, _readers) = ControlPlane::with_boot_epoch(
        Path::new("test.yaml"),
        config(&old),
        vec![EthernetAddress([2, 0, 0, 0, 0, 1])],
        EthernetAddress([2, 0, 0x5e, 0, 0x53, 1]),
        2,
        16,
        Timestamp::ZERO,
        Some(1),
    )
    .expect("plane starts");
    // Workers 0 and 1 and the control thread (writer 2) count.
    let east = p.ipsec().tunnels[0].1.clone();
    let out = Arc::clone(&east.outbound.as_ref().unwrap().shared);
    let inb = Arc::clone(&east.inbound[0].shared);
    out.add(0, SaCounter::Packets, 3);
    out.add(p.sa_writer(), SaCounter::Packets, 1);
    out.see_seq(0, 3);
    out.see_seq(p.sa_writer(), 4);
    inb.add(1, SaCounter::Packets, 9);
    inb.add(0, SaCounter::AuthFailures, 2);
    inb.see_seq(1, 12);
    use SaDirection::{Inbound, Outbound};
    assert_eq!(
        sas(&p).iter().map(row).collect::<Vec<_>>(),
        [
            ("east", Outbound, 0x2000, 4, 0, 4),
            ("east", Inbound, 0x1000, 9, 2, 12),
            ("west", Inbound, 0x3000, 0, 0, 0),
        ]
    );

    // Make before break: the new inbound SA appears beside the old one, which keeps counting.
    let both = format!("{old}, {{ spi: 0x1001, key: 0x{KEY_C} }}");
    p.apply(config(&both), Timestamp::ZERO).unwrap();
    let now = sas(&p);
    assert_eq!(
        now.iter().map(row).collect::<Vec<_>>(),
        [
            ("east", Outbound, 0x2000, 4, 0, 4),
            ("east", Inbound, 0x1000, 9, 2, 12),
            ("east", Inbound, 0x1001, 0, 0, 0),
            ("west", Inbound, 0x3000, 0, 0, 0),
        ]
    );
    // ... and the old one goes once removed.
    let new = format!("{{ spi: 0x1001, key: 0x{KEY_C} }}");
    p.apply(config(&new), Timestamp::ZERO).unwrap();
    let spis: Vec<u32> = sas(&p).iter().map(|s| s.spi).collect();
    assert_eq!(spis, [0x2000, 0x1001, 0x3000]);

    // In the exposition: the SAs' series, and no key material.
    let text = render_prometheus(&Snapshot {
        sas: now,
        ..Snapshot::default()
    });
    assert!(
        text.contains(
            "conduit_sa_auth_failures_total{tunnel=\"east\",direction=\"inbound\",spi=\"0x00001000\"} 2\n"
        ),
        "{text}"
    );
    for key in [KEY_A, KEY_B, KEY_C] {
        assert!(!text.to_lowercase().contains(&key[..16]), "{text}");
    }
}
