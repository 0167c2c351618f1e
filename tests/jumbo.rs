//! Frames longer than 1500 bytes through the appliance's pipeline over net_pcap
//! (docs/behaviour.md §7): with a 9000-byte port MTU they are decapsulated, encapsulated,
//! fragmented and reassembled whole; a frame longer than one packet buffer, which net_pcap
//! delivers as a chain, is dropped as `frame_too_long`, never under a misleading reason. Every
//! mbuf is back in the pool at the end.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use common::*;
use conduit_test_support::frames::{self, ethernet, gre, udp, Ipv4, ETHERTYPE_IPV4};

/// net_pcap0's MAC (the PMD derives it from the port index) and the gateway's static one.
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// t1: GRE with the default MTU (1476); t2: GRE with a jumbo MTU.
const T1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const T2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const T2_MTU: usize = 8976;

fn config(port_mtu: Option<u16>) -> String {
    let mtu = port_mtu.map_or(String::new(), |m| format!("      mtu: {m}\n"));
    format!(
        "dataplane:
  ports:
    - device: net_pcap0
      ipv4: 192.0.2.10/24
{mtu}  workers: [1]
  mode: pipeline
local_endpoints: [203.0.113.1]
gateway:
  ipv4: 192.0.2.1
  mac: \"02:00:00:00:00:fe\"
  port: net_pcap0
tunnels:
  - name: t1
    kind: gre
    local: 203.0.113.1
    remote: 198.51.100.1
    interface_address: 10.255.0.0/31
    health_check: {{enabled: false}}
{t2}routes:
  - {{prefix: 172.16.0.0/16, tunnel: t1, priority: 100}}
{t2_route}icmp:
  rate_per_sec: 1000
  burst: 100
stats:
  interval_ms: 0
",
        t2 = if port_mtu.is_some() {
            format!(
                "  - name: t2
    kind: gre
    local: 203.0.113.1
    remote: 198.51.100.2
    interface_address: 10.255.0.2/31
    mtu: {T2_MTU}
    health_check: {{enabled: false}}
"
            )
        } else {
            String::new()
        },
        t2_route = if port_mtu.is_some() {
            "  - {prefix: 172.17.0.0/16, tunnel: t2, priority: 100}\n"
        } else {
            ""
        },
    )
}

/// An IPv4/UDP packet of exactly `total` bytes whose data identifies every position.
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, total: usize, df: bool) -> Vec<u8> {
    let data: Vec<u8> = (0..total - 28).map(|i| (i * 7 + i / 251) as u8).collect();
    Ipv4::new(src, dst, frames::UDP)
        .dont_frag(df)
        .packet(&udp(src, dst, sport, 9, &data))
}

/// `inner` in GRE from `remote` to our endpoint (an IPv4 packet).
fn gre_packet(remote: Ipv4Addr, inner: &[u8]) -> Vec<u8> {
    Ipv4::new(remote, LOCAL, frames::GRE)
        .ident(0x4242)
        .packet(&gre(0, 0x0800, None, None, inner))
}

/// The frame the gateway sends us carrying `ip`.
fn from_gateway(ip: &[u8]) -> Vec<u8> {
    ethernet(PORT_MAC, GW_MAC, ETHERTYPE_IPV4, ip)
}

/// `packet` (an IPv4 packet without options) cut into fragments of `chunk` payload bytes (a
/// multiple of 8).
fn fragments(packet: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let payload = &packet[20..];
    payload
        .chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let mut h: [u8; 20] = packet[..20].try_into().unwrap();
            let offset = i * chunk;
            let more = offset + part.len() < payload.len();
            h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
            let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&flags.to_be_bytes());
            h[10..12].copy_from_slice(&[0, 0]);
            let ck = frames::checksum(&h);
            h[10..12].copy_from_slice(&ck.to_be_bytes());
            [&h[..], part].concat()
        })
        .collect()
}

fn dst_of(ip: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])
}

/// The inner packet of a GRE packet without options, key or checksum.
fn gre_inner(ip: &[u8]) -> &[u8] {
    assert_eq!((ip[9], &ip[20..24]), (frames::GRE, &[0u8, 0, 8, 0][..]));
    &ip[24..]
}

/// Runs the appliance over `input` with `config`; returns the log and the frames it sent.
fn replay(name: &str, config: &str, input: &[Vec<u8>]) -> (String, Vec<Vec<u8>>) {
    let dir = scratch(name);
    let (rx, tx, cfg) = (
        dir.join("in.pcap"),
        dir.join("out.pcap"),
        dir.join("c.yaml"),
    );
    write_pcap(&rx, input);
    std::fs::write(&cfg, config).unwrap();
    let mut args = appliance_args(name, &[pcap_vdev(&rx, &tx)], &cfg);
    args.extend(["--exit-when-idle".to_string(), "500".to_string()]);
    let out = run(&args);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("mbufs in use after shutdown: 0 of"),
        "every mbuf back in the pool\n{log}"
    );
    let sent = read_pcap(&tx);
    let _ = std::fs::remove_dir_all(&dir);
    (log, sent)
}

#[test]
fn jumbo_frames_are_decapsulated_encapsulated_fragmented_and_reassembled_whole() {
    let host = Ipv4Addr::new(8, 8, 8, 8);
    let customer = Ipv4Addr::new(172, 16, 0, 10);
    // 1. A 9000-byte GRE packet from t1: its 8976-byte inner packet leaves for the internet.
    let decap = udp_packet(customer, host, 1001, 8976, false);
    // 2. The same size, as outer fragments of 1480 bytes: reassembled, then decapsulated.
    let reasm = udp_packet(customer, host, 1002, 8976, false);
    let outer_fragments = fragments(&gre_packet(T1, &reasm), 1480);
    assert_eq!(outer_fragments.len(), 7);
    // 3. 2500 bytes to t1 (MTU 1476), DF clear: two fragments, each in GRE.
    let big = udp_packet(host, Ipv4Addr::new(172, 16, 1, 1), 1003, 2500, false);
    // 4. The same with DF set: ICMP fragmentation needed (MTU 1476) back to the sender.
    let big_df = udp_packet(host, Ipv4Addr::new(172, 16, 1, 1), 1004, 2500, true);
    // 5. 8976 bytes to t2 (MTU 8976): one 9014-byte frame.
    let whole = udp_packet(host, Ipv4Addr::new(172, 17, 1, 1), 1005, T2_MTU, true);
    // 6. A frame longer than a packet buffer (9216 bytes for MTU 9000): arrives chained.
    let too_long = udp_packet(host, Ipv4Addr::new(172, 17, 1, 1), 1006, 9500, false);

    let mut input = vec![from_gateway(&gre_packet(T1, &decap))];
    input.extend(outer_fragments.iter().map(|f| from_gateway(f)));
    input.extend([&big, &big_df, &whole, &too_long].map(|p| from_gateway(p)));
    assert_eq!(input[0].len(), 9014);

    let (log, sent) = replay("jumbo", &config(Some(9000)), &input);
    assert_eq!(
        drops(&log),
        BTreeMap::from([("frame_too_long".into(), 1), ("mtu_exceeded".into(), 1)]),
        "{log}"
    );
    assert!(log.contains("fragments-out 2  reassembled 1"), "{log}");
    assert_eq!(
        sent.len(),
        6,
        "2 decapsulated + 2 fragments + ICMP + 1 encapsulated\n{log}"
    );

    let mut decapsulated = Vec::new();
    let mut t1_fragments = Vec::new();
    let mut icmp = Vec::new();
    let mut t2_frames = Vec::new();
    for frame in &sent {
        assert_eq!(
            &frame[..12],
            &[GW_MAC, PORT_MAC].concat()[..],
            "to the gateway"
        );
        let ip = ip_of(frame);
        match (ip[9], dst_of(ip)) {
            (frames::GRE, T1) => t1_fragments.push(gre_inner(ip).to_vec()),
            (frames::GRE, T2) => t2_frames.push(frame.clone()),
            (frames::ICMP, _) => icmp.push(ip.to_vec()),
            (frames::UDP, d) if d == host => decapsulated.push(ip.to_vec()),
            other => panic!("unexpected output {other:?}"),
        }
    }

    // Decapsulated whole, directly and after reassembly: 8976 bytes, UDP unchanged.
    assert_eq!(decapsulated.len(), 2);
    for (got, want) in decapsulated.iter().zip([&decap, &reasm]) {
        assert_eq!(got.len(), 8976);
        assert_eq!(&got[20..], &want[20..], "UDP header and data intact");
    }

    // DF clear: fragmented before encapsulation, each fragment within the tunnel MTU, and
    // together exactly the original payload.
    assert_eq!(t1_fragments.len(), 2);
    let mut payload = vec![0u8; big.len() - 20];
    for f in &t1_fragments {
        assert!(f.len() <= 1476, "fragment of {} bytes", f.len());
        assert_eq!(frames::checksum(&f[..20]), 0);
        let word = u16::from_be_bytes([f[6], f[7]]);
        let offset = usize::from(word & 0x1fff) * 8;
        payload[offset..offset + f.len() - 20].copy_from_slice(&f[20..]);
    }
    assert_eq!(payload, big[20..], "fragments reassemble to the original");

    // DF set: ICMP type 3 code 4 with next-hop MTU 1476 to the sender.
    assert_eq!(icmp.len(), 1);
    let icmp = &icmp[0];
    assert_eq!(dst_of(icmp), host);
    assert_eq!(&icmp[20..22], &[3, 4]);
    assert_eq!(u16::from_be_bytes([icmp[26], icmp[27]]), 1476);

    // A tunnel whose MTU allows it: one frame longer than 1500 bytes.
    assert_eq!(t2_frames.len(), 1);
    assert_eq!(t2_frames[0].len(), 14 + 20 + 4 + T2_MTU);
    let inner = gre_inner(ip_of(&t2_frames[0]));
    assert_eq!(&inner[20..], &whole[20..]);
}

#[test]
fn chained_frames_on_a_1500_byte_port_are_dropped_as_too_long() {
    let host = Ipv4Addr::new(8, 8, 8, 8);
    let customer = Ipv4Addr::new(172, 16, 0, 10);
    let frame = |len: usize, sport| {
        from_gateway(&gre_packet(
            T1,
            &udp_packet(customer, host, sport, len - 14 - 24, false),
        ))
    };
    // 2 KiB buffers: net_pcap chains the 2,500- and 9,000-byte frames; the 1,514 one fits.
    let input = vec![frame(2500, 1), frame(9000, 2), frame(1514, 3)];
    let (log, sent) = replay("jumbo-1500", &config(None), &input);
    assert_eq!(
        drops(&log),
        BTreeMap::from([("frame_too_long".into(), 2)]),
        "{log}"
    );
    assert_eq!(sent.len(), 1, "the frame that fits is decapsulated\n{log}");
    assert_eq!(sent[0].len(), 1514 - 24);
}
