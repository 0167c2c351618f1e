//! The traffic generator: UDP flows through a raw IPv4 socket, paced per class, run by the lab
//! inside the gateway namespace (`conduit-lab gen`). It stands in for the customers' peers on
//! the internet; every flow is one 5-tuple, flow `i` has UDP source port
//! `FLOW_PORT_BASE + i`, so the sites' LANs can count each flow.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::net::{FLOW_DST_PORT, FLOW_PORT_BASE};
use crate::spec::Lab;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GenFlow {
    pub class: String,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub size: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GenClass {
    /// Indices into `flows`.
    pub flows: Vec<usize>,
    pub rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GenSpec {
    pub src: Ipv4Addr,
    pub duration_s: f64,
    pub flows: Vec<GenFlow>,
    pub classes: Vec<GenClass>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct GenResult {
    pub sent: Vec<u64>,
    pub errors: u64,
    pub elapsed_s: f64,
}

/// The flows of a lab: class by class, each flow at the next address of the class's prefix.
pub fn plan(lab: &Lab) -> GenSpec {
    let mut flows = Vec::new();
    let mut classes = Vec::new();
    for c in &lab.spec.traffic.flows {
        // UDP is the one protocol so far; the match makes a new one a compile error here.
        match c.protocol {
            crate::spec::Protocol::Udp => {}
        }
        let base = u32::from(c.dst.network());
        let hosts = if c.dst.prefix_len() >= 31 {
            1
        } else {
            (1u32 << (32 - c.dst.prefix_len())) - 2
        };
        let first = if c.dst.prefix_len() >= 31 { 0 } else { 1 };
        let mut idx = Vec::new();
        // Flows spread evenly over the prefix, so that a prefix that covers several sites'
        // LANs reaches every one of them.
        let stride = (hosts / c.count).max(1);
        for k in 0..c.count {
            idx.push(flows.len());
            flows.push(GenFlow {
                class: c.class.clone(),
                dst: Ipv4Addr::from(base + first + (k * stride) % hosts),
                sport: FLOW_PORT_BASE + flows.len() as u16,
                size: c.size,
            });
        }
        classes.push(GenClass {
            flows: idx,
            rate: c.rate,
        });
    }
    let src = lab
        .appliance
        .gateway
        .as_ref()
        .map(|g| g.ipv4)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    GenSpec {
        src,
        duration_s: lab.spec.duration.0,
        flows,
        classes,
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP packet of flow `f` (UDP checksum 0: optional in IPv4).
pub fn packet(src: Ipv4Addr, f: &GenFlow, id: u16) -> Vec<u8> {
    let udp_len = 8 + f.size as usize;
    let total = 20 + udp_len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&f.dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&f.sport.to_be_bytes());
    p[22..24].copy_from_slice(&FLOW_DST_PORT.to_be_bytes());
    p[24..26].copy_from_slice(&(udp_len as u16).to_be_bytes());
    p
}

/// Sends until the duration is over or `stop` is set; returns what was sent per flow.
pub fn run(spec: &GenSpec, stop: Arc<AtomicBool>) -> Result<GenResult> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
        .context("raw socket (needs root)")?;
    let packets: Vec<Vec<u8>> = spec.flows.iter().map(|f| packet(spec.src, f, 0)).collect();
    let addrs: Vec<SockAddr> = spec
        .flows
        .iter()
        .map(|f| SockAddr::from(SocketAddrV4::new(f.dst, 0)))
        .collect();
    let mut res = GenResult {
        sent: vec![0; spec.flows.len()],
        ..Default::default()
    };
    let start = Instant::now();
    // Per class: the next send time (s since start) and the next flow, round robin.
    let mut next: Vec<(f64, usize)> = spec.classes.iter().map(|_| (0.0, 0)).collect();
    let mut id: u16 = 0;
    loop {
        let now = start.elapsed().as_secs_f64();
        if now >= spec.duration_s || stop.load(Ordering::Relaxed) {
            break;
        }
        let mut earliest = f64::MAX;
        for (c, class) in spec.classes.iter().enumerate() {
            if class.flows.is_empty() {
                continue;
            }
            let gap = 1.0 / class.rate;
            // Catch up after a stall, but at most one second's worth at once.
            if next[c].0 < now - 1.0 {
                next[c].0 = now - 1.0;
            }
            while next[c].0 <= now {
                let f = class.flows[next[c].1 % class.flows.len()];
                next[c].1 += 1;
                next[c].0 += gap;
                id = id.wrapping_add(1);
                let p = &mut packets[f].clone();
                p[4..6].copy_from_slice(&id.to_be_bytes());
                p[10..12].fill(0);
                let cs = checksum(&p[..20]);
                p[10..12].copy_from_slice(&cs.to_be_bytes());
                match sock.send_to(p, &addrs[f]) {
                    Ok(_) => res.sent[f] += 1,
                    Err(_) => res.errors += 1,
                }
            }
            earliest = earliest.min(next[c].0);
        }
        let wait = (earliest - start.elapsed().as_secs_f64()).clamp(0.0, 0.05);
        std::thread::sleep(Duration::from_secs_f64(wait.max(0.0005)));
    }
    res.elapsed_s = start.elapsed().as_secs_f64();
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_has_valid_ip_checksum_and_flow_ports() {
        let f = GenFlow {
            class: "x".into(),
            dst: Ipv4Addr::new(172, 16, 0, 5),
            sport: 20007,
            size: 64,
        };
        let p = packet(Ipv4Addr::new(192, 0, 2, 1), &f, 3);
        assert_eq!(p.len(), 20 + 8 + 64);
        assert_eq!(checksum(&p[..20]), 0);
        assert_eq!(u16::from_be_bytes([p[20], p[21]]), 20007);
        assert_eq!(u16::from_be_bytes([p[22], p[23]]), FLOW_DST_PORT);
        assert_eq!(&p[16..20], &[172, 16, 0, 5]);
    }
}

/// A trafgen (netsniff-ng) packet configuration for the flows `flows` of `spec`: one Ethernet
/// frame per flow, from the gateway's MAC to the appliance's, written byte by byte (trafgen's
/// `ipv4()` helper misbehaves when a config uses it more than once) with trafgen computing the
/// IPv4 header checksum. trafgen sends the frames in turn, so every flow gets the same share.
pub fn trafgen_config(spec: &GenSpec, flows: &[usize], src_mac: &str, dst_mac: &str) -> String {
    let mac = |m: &str| {
        m.split(':')
            .map(|b| format!("0x{b}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let ip = |a: Ipv4Addr| {
        a.octets()
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut o = String::new();
    for &i in flows {
        let f = &spec.flows[i];
        let udp_len = 8 + u32::from(f.size);
        o.push_str(&format!(
            "{{ {}, {}, 0x08,0x00,\n  0x45,0x00, const16({}), const16(0), const16(0), 64, 17, csumip(14, 33),\n  {}, {},\n  const16({}), const16({FLOW_DST_PORT}), const16({udp_len}), const16(0),\n  fill(0x00, {}) }}\n",
            mac(dst_mac),
            mac(src_mac),
            20 + udp_len,
            ip(spec.src),
            ip(f.dst),
            f.sport,
            f.size
        ));
    }
    o
}

/// Packets trafgen sends for a class: its rate times the duration, rounded up to whole rounds
/// over the class's flows.
pub fn trafgen_count(rate: f64, duration_s: f64, flows: usize) -> u64 {
    let n = (rate * duration_s).ceil() as u64;
    let k = flows.max(1) as u64;
    n.div_ceil(k) * k
}

/// Per flow of a class, what trafgen sent, from its final `N packets outgoing` line: whole
/// rounds over the flows, and the flows of a last partial round one more.
pub fn trafgen_sent(output: &str, flows: usize) -> Option<Vec<u64>> {
    let total: u64 = output
        .lines()
        .find(|l| l.contains("packets outgoing"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(shares(total, flows))
}

/// `total` packets sent in turn over `flows` flows: whole rounds, and the flows of a last
/// partial round one more.
fn shares(total: u64, flows: usize) -> Vec<u64> {
    let k = flows.max(1) as u64;
    (0..k)
        .map(|i| total / k + u64::from(i < total % k))
        .collect()
}

/// The Ethernet frame trafgen sends for flow `f` (IPv4 identification 0, like trafgen's
/// config), so that the sites' LANs count a tcpreplay flow exactly like a trafgen one.
pub fn frame(spec: &GenSpec, f: &GenFlow, src_mac: &str, dst_mac: &str) -> Vec<u8> {
    let mac = |m: &str| -> Vec<u8> {
        m.split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap_or(0))
            .collect()
    };
    let mut o = mac(dst_mac);
    o.extend(mac(src_mac));
    o.extend([0x08, 0x00]);
    o.extend(packet(spec.src, f, 0));
    o
}

/// Link type of a pcap file of Ethernet frames.
pub const PCAP_ETHERNET: u32 = 1;

/// A classic pcap file (microsecond timestamps, host byte order as the format allows) of
/// `frames`, `gap_s` seconds apart. tcpreplay's `--pps` ignores the timestamps; they only make
/// the file read sensibly in other tools. Written by hand: the format is 24 + 16 bytes per
/// record and needs no dependency.
pub fn pcap(frames: &[Vec<u8>], gap_s: f64) -> Vec<u8> {
    let mut o = Vec::new();
    o.extend(0xa1b2_c3d4u32.to_ne_bytes());
    o.extend(2u16.to_ne_bytes());
    o.extend(4u16.to_ne_bytes());
    o.extend(0i32.to_ne_bytes()); // thiszone
    o.extend(0u32.to_ne_bytes()); // sigfigs
    o.extend(65_535u32.to_ne_bytes()); // snaplen
    o.extend(PCAP_ETHERNET.to_ne_bytes());
    for (i, f) in frames.iter().enumerate() {
        let us = (i as f64 * gap_s * 1e6).round() as u64;
        o.extend(((us / 1_000_000) as u32).to_ne_bytes());
        o.extend(((us % 1_000_000) as u32).to_ne_bytes());
        o.extend((f.len() as u32).to_ne_bytes()); // incl_len
        o.extend((f.len() as u32).to_ne_bytes()); // orig_len
        o.extend(f);
    }
    o
}

/// The pcap tcpreplay plays for the flows `flows` of `spec`: one frame per flow, in turn.
pub fn tcpreplay_pcap(
    spec: &GenSpec,
    flows: &[usize],
    rate: f64,
    src_mac: &str,
    dst_mac: &str,
) -> Vec<u8> {
    let frames: Vec<Vec<u8>> = flows
        .iter()
        .map(|&i| frame(spec, &spec.flows[i], src_mac, dst_mac))
        .collect();
    pcap(&frames, 1.0 / rate)
}

/// Per flow of a class, what tcpreplay sent: its `Successful packets:` statistic (or, failing
/// that, its `Actual: N packets` line), shared out over the flows like trafgen's.
pub fn tcpreplay_sent(output: &str, flows: usize) -> Option<Vec<u64>> {
    let after = |key: &str| -> Option<u64> {
        let l = output.lines().find(|l| l.contains(key))?;
        let rest = &l[l.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    let total = after("Successful packets:").or_else(|| after("Actual:"))?;
    Some(shares(total, flows))
}

#[cfg(test)]
mod trafgen_tests {
    use super::*;

    #[test]
    fn counts_and_shares() {
        assert_eq!(trafgen_count(300.0, 26.0, 32), 7808);
        assert_eq!(trafgen_count(100.0, 1.0, 8), 104);
        let out = "\n        10 packets outgoing\n      1060 bytes outgoing\n";
        assert_eq!(trafgen_sent(out, 4), Some(vec![3, 3, 2, 2]));
        assert_eq!(trafgen_sent("nothing", 4), None);
    }

    #[test]
    fn config_has_one_frame_per_flow() {
        let spec = GenSpec {
            src: Ipv4Addr::new(192, 0, 2, 1),
            duration_s: 1.0,
            flows: vec![GenFlow {
                class: "c".into(),
                dst: Ipv4Addr::new(172, 16, 0, 1),
                sport: 20000,
                size: 64,
            }],
            classes: vec![],
        };
        let c = trafgen_config(&spec, &[0], "02:00:00:00:00:01", "02:00:00:00:c0:01");
        assert_eq!(c.matches('{').count(), 1);
        assert!(c.starts_with("{ 0x02,0x00,0x00,0x00,0xc0,0x01, 0x02,0x00,0x00,0x00,0x00,0x01,"));
        assert!(c.contains("const16(92)") && c.contains("192,0,2,1, 172,16,0,1"));
        assert!(
            c.contains("const16(20000), const16(9), const16(72)") && c.contains("fill(0x00, 64)")
        );
    }

    /// A parsed record of a pcap file: (ts_sec, ts_usec, incl_len, orig_len, data).
    type Record<'a> = (u32, u32, u32, u32, &'a [u8]);

    /// Reads a pcap file back (the reader is independent of the writer: it picks the byte
    /// order from the magic, as readers do).
    fn read_pcap(b: &[u8]) -> (u32, Vec<Record<'_>>) {
        let le = match &b[..4] {
            [0xd4, 0xc3, 0xb2, 0xa1] => true,
            [0xa1, 0xb2, 0xc3, 0xd4] => false,
            m => panic!("bad magic {m:?}"),
        };
        let u32_at = |o: usize| {
            let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
            if le {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        };
        let u16_at = |o: usize| {
            let a = [b[o], b[o + 1]];
            if le {
                u16::from_le_bytes(a)
            } else {
                u16::from_be_bytes(a)
            }
        };
        assert_eq!((u16_at(4), u16_at(6)), (2, 4), "version");
        assert_eq!(u32_at(16), 65_535, "snaplen");
        let mut recs = Vec::new();
        let mut o = 24;
        while o < b.len() {
            let incl = u32_at(o + 8) as usize;
            let data = &b[o + 16..o + 16 + incl];
            recs.push((u32_at(o), u32_at(o + 4), incl as u32, u32_at(o + 12), data));
            o += 16 + incl;
        }
        assert_eq!(o, b.len(), "records end with the file");
        (u32_at(20), recs)
    }

    fn two_flows() -> GenSpec {
        let flow = |d: u8, sport: u16, size: u16| GenFlow {
            class: "c".into(),
            dst: Ipv4Addr::new(172, 16, 0, d),
            sport,
            size,
        };
        GenSpec {
            src: Ipv4Addr::new(192, 0, 2, 1),
            duration_s: 1.0,
            flows: vec![flow(1, 20000, 64), flow(9, 20001, 100)],
            classes: vec![],
        }
    }

    #[test]
    fn pcap_parses_back() {
        let frames = vec![vec![1u8; 60], vec![2u8; 142], vec![]];
        let file = pcap(&frames, 0.4);
        let (link, recs) = read_pcap(&file);
        assert_eq!(link, PCAP_ETHERNET);
        assert_eq!(recs.len(), 3);
        for (r, f) in recs.iter().zip(&frames) {
            assert_eq!((r.2, r.3), (f.len() as u32, f.len() as u32));
            assert_eq!(r.4, &f[..]);
        }
        assert_eq!((recs[1].0, recs[1].1), (0, 400_000));
        assert_eq!((recs[2].0, recs[2].1), (0, 800_000));
        assert_eq!(read_pcap(&pcap(&[], 1.0)).1.len(), 0);
    }

    #[test]
    fn tcpreplay_pcap_holds_the_frames_trafgen_sends() {
        let spec = two_flows();
        let b = tcpreplay_pcap(
            &spec,
            &[1, 0],
            100.0,
            "02:00:00:00:00:01",
            "02:00:00:00:c0:01",
        );
        let (_, recs) = read_pcap(&b);
        assert_eq!(recs.len(), 2);
        // In the class's order: flow 1 first.
        let f = recs[0].4;
        assert_eq!(f.len(), 14 + 20 + 8 + 100);
        assert_eq!(&f[..6], &[2, 0, 0, 0, 0xc0, 1]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[12..14], &[8, 0]);
        let ip = &f[14..];
        assert_eq!(checksum(&ip[..20]), 0);
        assert_eq!(&ip[4..6], &[0, 0], "identification 0, like trafgen");
        assert_eq!(&ip[12..20], &[192, 0, 2, 1, 172, 16, 0, 9]);
        assert_eq!(u16::from_be_bytes([ip[20], ip[21]]), 20001);
        assert_eq!(u16::from_be_bytes([ip[22], ip[23]]), FLOW_DST_PORT);
        assert_eq!(u16::from_be_bytes([ip[24], ip[25]]), 108);
        assert_eq!(recs[1].4.len(), 14 + 20 + 8 + 64);
        assert_eq!((recs[1].0, recs[1].1), (0, 10_000));
    }

    #[test]
    fn tcpreplay_output() {
        let out = "Actual: 13600 packets (1360000 bytes) sent in 34.00 seconds\n\
                   Rated: 40000.0 Bps, 0.320 Mbps, 400.00 pps\n\
                   Statistics for network device: wecmp-tap\n\
                   \tSuccessful packets:        13598\n\
                   \tFailed packets:            2\n";
        assert_eq!(tcpreplay_sent(out, 4), Some(vec![3400, 3400, 3399, 3399]));
        let out = "Actual: 10 packets (1060 bytes) sent in 0.10 seconds\n";
        assert_eq!(tcpreplay_sent(out, 4), Some(vec![3, 3, 2, 2]));
        assert_eq!(tcpreplay_sent("tcpreplay: command not found", 4), None);
    }
}
