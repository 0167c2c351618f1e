//! Fuzzes `pipeline::process` over a fixed context (the one of the pipeline's unit tests, so the
//! golden frames in `corpus/pipeline` reach every path), then the worker-side follow-ups: outer
//! fragments into a `Reassembler` (and the reassembled datagram back into `process`), and
//! oversized packets through `FragmentPlan` / `write_fragment` / `encapsulate`.
//!
//! Input: one control byte, then frames, each as a big-endian `u16` length and that many bytes
//! (the last one takes what is left). Control bits: 0-1 rx port (2 and 3 are not configured),
//! 2 repair the outer IPv4 header checksum, 3 repair the GRE and inner IPv4 checksums (so
//! mutations get past the checksums), 4 use the context that sends ICMP time exceeded, 5-7
//! headroom (0, 8, ..., 56 bytes, or 128 for 7).
//!
//! After every call it asserts what must hold for any input: buffer accounting, and that whatever
//! is to be transmitted parses with valid checksums, to the gateway MAC, in the right tunnel.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use conduit_packet::pipeline::{
    encapsulate, process, write_fragment, Context, ContextConfig, Control, FragmentPlan, Outcome,
    PacketBuf, PortConfig, Reassembler, ReassemblerConfig, Reassembly, TokenBucket, Tunnel, VecBuf,
    Verdict, WorkerState,
};
use conduit_packet::route::{ForwardingTable, Health, Route, TunnelId};
use conduit_packet::wire::{
    checksum, EtherType, EthernetAddress, EthernetFrame, GrePacket, IpProtocol, Ipv4Packet,
};

const P0: EthernetAddress = EthernetAddress([0x02, 0xc0, 0xd0, 0x00, 0x00, 0x01]);
const P1: EthernetAddress = EthernetAddress([0x02, 0xc0, 0xd0, 0x00, 0x00, 0x02]);
const GW: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]);

fn a(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn config(ttl_exceeded: bool) -> ContextConfig {
    let (e1, e2) = (a("203.0.113.1"), a("203.0.113.2"));
    let tunnels = vec![
        (
            TunnelId(0),
            Tunnel::gre(e1, a("198.51.100.10"), a("10.200.0.0"), a("10.200.0.1")),
        ),
        (
            TunnelId(1),
            Tunnel::gre(e2, a("198.51.100.11"), a("10.200.0.2"), a("10.200.0.3")),
        ),
        (
            TunnelId(2),
            Tunnel::gre(e1, a("198.51.100.20"), a("10.200.0.4"), a("10.200.0.5"))
                .with_key(1001)
                .with_mss(1400),
        ),
        (
            TunnelId(3),
            Tunnel::ipsec(e2, a("198.51.100.30"), a("10.200.0.9"), a("10.200.0.10")),
        ),
        (
            TunnelId(4),
            Tunnel::gre(e1, a("198.51.100.40"), a("10.200.0.12"), a("10.200.0.13"))
                .with_mtu(1400)
                .with_clear_df(true),
        ),
        (
            TunnelId(5),
            Tunnel::gre(e1, a("198.51.100.10"), a("10.200.0.14"), a("10.200.0.15")).with_key(77),
        ),
    ];
    ContextConfig {
        ports: vec![
            PortConfig {
                mac: P0,
                addresses: vec![a("192.0.2.10")],
            },
            PortConfig {
                mac: P1,
                addresses: vec![a("198.18.0.10")],
            },
        ],
        gateway_port: 0,
        gateway_mac: GW,
        local_endpoints: vec![e1, e2],
        tunnels,
        icmp_ttl_exceeded: ttl_exceeded,
        ..ContextConfig::default()
    }
}

fn table() -> Arc<ForwardingTable> {
    let route = |p: &str, len, t| Route::new(u32::from(a(p)), len, TunnelId(t), 100);
    Arc::new(
        ForwardingTable::builder()
            .tunnels((0..6).map(|i| (TunnelId(i), Health::Healthy)))
            .route(route("172.16.0.0", 16, 0))
            .route(route("172.17.0.0", 16, 0))
            .route(route("172.17.0.0", 16, 1))
            .route(route("172.20.0.0", 16, 2))
            .route(route("10.50.0.0", 16, 3))
            .route(route("172.30.0.0", 16, 4))
            .build()
            .unwrap(),
    )
}

fn contexts() -> &'static [Context; 2] {
    static CTX: OnceLock<[Context; 2]> = OnceLock::new();
    CTX.get_or_init(|| {
        let t = table();
        [
            Context::new(&config(false), t.clone()).unwrap(),
            Context::new(&config(true), t).unwrap(),
        ]
    })
}

/// Recomputes the IPv4 header checksum of the packet at the start of `ip`, if it has a header.
fn fix_ipv4(ip: &mut [u8]) {
    let ihl = usize::from(ip.first().copied().unwrap_or(0) & 0x0f) * 4;
    if ihl >= 20 && ip.len() >= ihl {
        ip[10..12].fill(0);
        let ck = checksum::checksum(&ip[..ihl]);
        ip[10..12].copy_from_slice(&ck.to_be_bytes());
    }
}

fn repair(frame: &mut [u8], outer: bool, inner: bool) {
    if frame.len() < 34 {
        return;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    if inner && frame[23] == 47 && ihl >= 20 && frame.len() >= 14 + ihl + 4 {
        let gre_off = 14 + ihl;
        let flags = u16::from_be_bytes([frame[gre_off], frame[gre_off + 1]]);
        let len = 4 + 4 * ((flags >> 15) + ((flags >> 13) & 1) + ((flags >> 12) & 1)) as usize;
        if frame.len() >= gre_off + len {
            fix_ipv4(&mut frame[gre_off + len..]);
            if flags & 0x8000 != 0 {
                frame[gre_off + 4..gre_off + 6].fill(0);
                let ck = checksum::checksum(&frame[gre_off..]);
                frame[gre_off + 4..gre_off + 6].copy_from_slice(&ck.to_be_bytes());
            }
        }
    }
    if outer {
        fix_ipv4(&mut frame[14..]);
    }
}

/// Checks what an outgoing GRE frame must look like; returns its inner packet length.
fn check_gre_frame(frame: &[u8], t: &Tunnel) -> usize {
    let eth = EthernetFrame::new_checked(frame).expect("ethernet");
    assert_eq!(
        (eth.dst_addr(), eth.src_addr(), eth.ethertype()),
        (GW, P0, EtherType::Ipv4)
    );
    let outer = Ipv4Packet::new_checked(eth.payload()).expect("outer");
    assert!(outer.verify_checksum());
    assert_eq!(outer.packet().len(), eth.payload().len());
    assert_eq!(
        (outer.src_addr(), outer.dst_addr(), outer.protocol()),
        (t.local, t.remote, IpProtocol::Gre)
    );
    assert_eq!(outer.ttl(), t.ttl);
    let gre = GrePacket::new_checked(outer.payload()).expect("gre");
    assert_eq!(gre.key(), t.key);
    let inner = Ipv4Packet::new_checked(gre.payload()).expect("inner");
    assert!(inner.verify_checksum());
    assert_eq!(inner.packet().len(), gre.payload().len());
    assert_eq!(outer.dont_frag(), inner.dont_frag() && !t.clear_df);
    assert!(inner.packet().len() <= usize::from(t.mtu));
    inner.packet().len()
}

fn check(ctx: &Context, rx_port: u16, capacity: usize, o: &Outcome, buf: &VecBuf) {
    assert_eq!(buf.headroom() + buf.len() + buf.tailroom(), capacity);
    match o.verdict {
        Verdict::Forward { port, tunnel }
        | Verdict::IcmpError { port, tunnel, .. }
        | Verdict::Reply {
            port,
            tunnel: tunnel @ Some(_),
        } => {
            assert_eq!(port, ctx.gateway_port());
            if let Some(t) = tunnel {
                check_gre_frame(buf.data(), ctx.tunnel(t).expect("tunnel"));
            } else {
                let eth = EthernetFrame::new_checked(buf.data()).expect("ethernet");
                assert_eq!((eth.dst_addr(), eth.src_addr()), (GW, P0));
                let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
                assert!(ip.verify_checksum());
                assert_eq!(ip.packet().len(), eth.payload().len());
                assert!(ip.ttl() >= 1);
            }
        }
        Verdict::Reply { port, tunnel: None } => {
            assert_eq!(port, rx_port);
            let eth = EthernetFrame::new_checked(buf.data()).expect("ethernet");
            assert_eq!(eth.src_addr(), if rx_port == 0 { P0 } else { P1 });
        }
        Verdict::NeedsFragmentation { mtu, tunnel, .. } => {
            let ip = Ipv4Packet::new_checked(buf.data()).expect("ipv4");
            assert!(ip.verify_checksum());
            assert!(buf.len() > usize::from(mtu));
            assert_eq!(ctx.tunnel(tunnel).expect("tunnel").mtu, mtu);
        }
        Verdict::ToControl(Control::Probe(t)) => {
            assert!(ctx.tunnel(t).is_some());
            assert!(Ipv4Packet::new_checked(buf.data()).is_ok());
        }
        Verdict::ToControl(Control::Arp) | Verdict::Reassemble | Verdict::Drop(_) => {}
    }
}

/// What the worker does after `process`.
fn follow_up(
    ctx: &Context,
    rx_port: u16,
    o: &Outcome,
    buf: &VecBuf,
    state: &mut WorkerState,
    reassembler: &mut Reassembler,
    now: u64,
    depth: u32,
) {
    match o.verdict {
        Verdict::NeedsFragmentation { tunnel, mtu, .. } => {
            let t = ctx.tunnel(tunnel).expect("tunnel");
            let plan = FragmentPlan::new(buf.data(), mtu).expect("plannable");
            let mut covered = 0;
            for f in plan {
                let mut frag = VecBuf::with_tailroom(64, &[], 2048);
                let room = frag.append(2048).expect("room");
                let n = write_fragment(buf.data(), &f, room).expect("fragment");
                assert!(n <= usize::from(mtu));
                assert!(frag.trim((2048 - n) as u16));
                encapsulate(ctx, tunnel, &mut frag, state).expect("encapsulate");
                check_gre_frame(frag.data(), t);
                covered += f.len;
            }
            let ip = Ipv4Packet::new_checked(buf.data()).expect("ipv4");
            assert_eq!(covered, ip.payload().len());
        }
        Verdict::Reassemble => {
            let mut out = vec![0u8; 14 + 2048 + 60];
            let fragment = buf.data().get(14..).unwrap_or(&[]);
            if let Ok(Reassembly::Complete(n)) = reassembler.insert(fragment, now, &mut out[14..]) {
                out[..14].copy_from_slice(&buf.data()[..14]);
                let datagram = Ipv4Packet::new_checked(&out[14..14 + n]).expect("reassembled");
                assert!(datagram.verify_checksum() && !datagram.is_fragment());
                if depth == 0 {
                    run_one(
                        ctx,
                        rx_port,
                        &out[..14 + n],
                        128,
                        state,
                        reassembler,
                        now,
                        depth + 1,
                    );
                }
            }
            assert!(reassembler.in_progress() <= reassembler.capacity());
        }
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    ctx: &Context,
    rx_port: u16,
    frame: &[u8],
    headroom: usize,
    state: &mut WorkerState,
    reassembler: &mut Reassembler,
    now: u64,
    depth: u32,
) {
    let mut buf = VecBuf::new(headroom, frame);
    let o = process(ctx, rx_port, &mut buf, state, now);
    check(ctx, rx_port, headroom + frame.len(), &o, &buf);
    follow_up(ctx, rx_port, &o, &buf, state, reassembler, now, depth);
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let ctx = &contexts()[usize::from(control >> 4 & 1)];
    let rx_port = u16::from(control & 3);
    let headroom = match control >> 5 {
        7 => 128,
        h => usize::from(h) * 8,
    };
    let mut state = WorkerState::new(TokenBucket::new(10, 2, 1000, 0), 0x0100);
    let mut reassembler = Reassembler::new(ReassemblerConfig {
        max_sets: 8,
        timeout: 100,
        max_datagram: 2048,
        seed: 7,
    });
    let mut now = 0;
    while !rest.is_empty() {
        let len = match rest {
            [hi, lo, tail @ ..] => {
                rest = tail;
                usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len())
            }
            _ => rest.len(),
        };
        let (frame, tail) = rest.split_at(len);
        rest = tail;
        let mut frame = frame.to_vec();
        repair(&mut frame, control & 4 != 0, control & 8 != 0);
        run_one(
            ctx,
            rx_port,
            &frame,
            headroom,
            &mut state,
            &mut reassembler,
            now,
            0,
        );
        now += 30;
    }
});
