//! Tests of the whole pipeline over `VecBuf`: golden frames for every path (generated with scapy
//! by `golden.py`, checked with tshark), one test per rejection rule, and property tests
//! (encapsulate → parse, decapsulate ∘ encapsulate, any bytes, fragmentation ↔ reassembly,
//! reassembly floods).

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use super::*;
use crate::route::{ecmp, Health, Route};
use crate::wire::{
    self, EtherType, EthernetAddress, EthernetFrame, GrePacket, IcmpPacket, IpProtocol, Ipv4Packet,
    Ipv4Repr, TcpPacket, UdpPacket,
};

mod golden;
use golden::*;

const P0: EthernetAddress = EthernetAddress([0x02, 0xc0, 0xd0, 0x00, 0x00, 0x01]);
const P1: EthernetAddress = EthernetAddress([0x02, 0xc0, 0xd0, 0x00, 0x00, 0x02]);
const GW: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]);
const HEADROOM: usize = 128;

const T0: TunnelId = TunnelId(0);
const T1: TunnelId = TunnelId(1);
const T2: TunnelId = TunnelId(2);
const T3: TunnelId = TunnelId(3);
const T4: TunnelId = TunnelId(4);
const T5: TunnelId = TunnelId(5);

fn a(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn h(s: &str) -> u32 {
    u32::from(a(s))
}

const E1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const E2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const R0: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const R2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

/// T0 and T1: plain GRE; T2: keyed (1001, MSS 1400); T3: IPsec; T4: `clear_df`, MTU 1400;
/// T5: keyed (77) on T0's endpoint pair, with no route.
fn tunnels() -> Vec<(TunnelId, Tunnel)> {
    vec![
        (T0, Tunnel::gre(E1, R0, a("10.200.0.0"), a("10.200.0.1"))),
        (
            T1,
            Tunnel::gre(E2, a("198.51.100.11"), a("10.200.0.2"), a("10.200.0.3")),
        ),
        (
            T2,
            Tunnel::gre(E1, R2, a("10.200.0.4"), a("10.200.0.5"))
                .with_key(1001)
                .with_mss(1400),
        ),
        (
            T3,
            Tunnel::ipsec(E2, a("198.51.100.30"), a("10.200.0.9"), a("10.200.0.10")),
        ),
        (
            T4,
            Tunnel::gre(E1, a("198.51.100.40"), a("10.200.0.12"), a("10.200.0.13"))
                .with_mtu(1400)
                .with_clear_df(true),
        ),
        (
            T5,
            Tunnel::gre(E1, R0, a("10.200.0.14"), a("10.200.0.15")).with_key(77),
        ),
    ]
}

fn table() -> Arc<ForwardingTable> {
    let route = |p: &str, len, t| Route::new(h(p), len, t, 100);
    Arc::new(
        ForwardingTable::builder()
            .tunnels(tunnels().into_iter().map(|(id, _)| (id, Health::Healthy)))
            .route(route("172.16.0.0", 16, T0))
            .route(route("172.17.0.0", 16, T0))
            .route(route("172.17.0.0", 16, T1))
            .route(route("172.20.0.0", 16, T2))
            .route(route("10.50.0.0", 16, T3))
            .route(route("172.30.0.0", 16, T4))
            .build()
            .unwrap(),
    )
}

fn config(ttl_exceeded: bool) -> ContextConfig {
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
        local_endpoints: vec![E1, E2],
        tunnels: tunnels(),
        icmp_ttl_exceeded: ttl_exceeded,
        ..ContextConfig::default()
    }
}

/// The shared test context (ICMP time exceeded off).
fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| Context::new(&config(false), table()).unwrap())
}

/// The same with ICMP time exceeded on.
fn ctx_ttl() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| Context::new(&config(true), table()).unwrap())
}

/// ICMP errors: 10 per second, burst 2, on a 1000-tick clock; outer idents from 0x0100.
fn state() -> WorkerState {
    WorkerState::new(TokenBucket::new(10, 2, 1000, 0), 0x0100)
}

fn run_with(
    ctx: &Context,
    port: u16,
    frame: &[u8],
    state: &mut WorkerState,
    now: u64,
) -> (Outcome, VecBuf) {
    let mut buf = VecBuf::new(HEADROOM, frame);
    let outcome = process(ctx, port, &mut buf, state, now);
    (outcome, buf)
}

fn run(frame: &[u8]) -> (Outcome, VecBuf) {
    run_with(ctx(), 0, frame, &mut state(), 0)
}

fn verdict(frame: &[u8]) -> Verdict {
    run(frame).0.verdict
}

fn forward(tunnel: Option<TunnelId>) -> Verdict {
    Verdict::Forward { port: 0, tunnel }
}

fn drop_(reason: impl Into<DropReason>) -> Verdict {
    Verdict::Drop(reason.into())
}

// ---- packet builders (wire emitters, independent of the pipeline) ----

fn ip_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    ttl: u8,
    tos: u8,
    df: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = vec![0; 20 + payload.len()];
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: payload.len() as u16,
        ttl,
        tos,
        ident: 0x5a5a,
        dont_frag: df,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut v)
    .unwrap();
    v[20..].copy_from_slice(payload);
    v
}

fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0; 8 + data.len()];
    v[0..2].copy_from_slice(&sport.to_be_bytes());
    v[2..4].copy_from_slice(&dport.to_be_bytes());
    let len = v.len() as u16;
    v[4..6].copy_from_slice(&len.to_be_bytes());
    v[8..].copy_from_slice(data);
    UdpPacket::new_checked(&mut v[..])
        .unwrap()
        .fill_checksum(src, dst);
    v
}

/// A TCP segment with `flags`, an optional MSS option (after a NOP when `odd`), valid checksum.
#[allow(clippy::too_many_arguments)]
fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    mss: Option<u16>,
    odd: bool,
    data: &[u8],
) -> Vec<u8> {
    let mut options = Vec::new();
    if let Some(mss) = mss {
        if odd {
            options.push(1);
        }
        options.extend_from_slice(&[2, 4]);
        options.extend_from_slice(&mss.to_be_bytes());
    }
    while options.len() % 4 != 0 {
        options.push(0);
    }
    let hlen = 20 + options.len();
    let mut v = vec![0; hlen + data.len()];
    v[0..2].copy_from_slice(&sport.to_be_bytes());
    v[2..4].copy_from_slice(&dport.to_be_bytes());
    v[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    v[12] = ((hlen / 4) as u8) << 4;
    v[13] = flags;
    v[14..16].copy_from_slice(&8192u16.to_be_bytes());
    v[20..hlen].copy_from_slice(&options);
    v[hlen..].copy_from_slice(data);
    TcpPacket::new_checked(&mut v[..])
        .unwrap()
        .fill_checksum(src, dst);
    v
}

fn icmp_msg(msg_type: u8, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut v = vec![msg_type, 0, 0, 0];
    v.extend_from_slice(&ident.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(data);
    IcmpPacket::new_checked(&mut v[..]).unwrap().fill_checksum();
    v
}

fn frame_to(dst: EthernetAddress, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + payload.len());
    v.extend_from_slice(&dst.0);
    v.extend_from_slice(&GW.0);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn plain(ip: &[u8]) -> Vec<u8> {
    frame_to(P0, 0x0800, ip)
}

/// A GRE header + payload: `flags` is the raw first word; the optional fields follow (the
/// checksum is computed when the C bit is set).
fn gre(flags: u16, protocol: u16, key: Option<u32>, seq: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&protocol.to_be_bytes());
    if flags & 0x8000 != 0 {
        v.extend_from_slice(&[0; 4]);
    }
    if let Some(key) = key {
        v.extend_from_slice(&key.to_be_bytes());
    }
    if let Some(seq) = seq {
        v.extend_from_slice(&seq.to_be_bytes());
    }
    v.extend_from_slice(payload);
    if flags & 0x8000 != 0 {
        let ck = wire::checksum::checksum(&v);
        v[4..6].copy_from_slice(&ck.to_be_bytes());
    }
    v
}

/// GRE from `remote` to `local` in a plain frame.
fn gre_frame(remote: Ipv4Addr, local: Ipv4Addr, gre: &[u8]) -> Vec<u8> {
    plain(&ip_packet(
        remote,
        local,
        IpProtocol::Gre,
        50,
        0,
        false,
        gre,
    ))
}

/// `inner` in keyless GRE from T0's remote.
fn via_t0(inner: &[u8]) -> Vec<u8> {
    gre_frame(R0, E1, &gre(0, 0x0800, None, None, inner))
}

/// Splits an output frame into (Ethernet frame view checks, outer IPv4, GRE, inner) and checks
/// every checksum; returns the inner packet.
fn decode_gre_frame(frame: &[u8], tunnel: &Tunnel) -> Vec<u8> {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(
        (eth.dst_addr(), eth.src_addr(), eth.ethertype()),
        (GW, P0, EtherType::Ipv4)
    );
    let outer = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(outer.verify_checksum());
    assert_eq!(
        outer.packet().len(),
        eth.payload().len(),
        "no trailing bytes"
    );
    assert_eq!(
        (outer.src_addr(), outer.dst_addr(), outer.protocol()),
        (tunnel.local, tunnel.remote, IpProtocol::Gre)
    );
    assert_eq!(outer.ttl(), tunnel.ttl);
    assert!(!outer.is_fragment());
    let gre = GrePacket::new_checked(outer.payload()).unwrap();
    assert_eq!(gre.key(), tunnel.key);
    assert!(!gre.checksum_present() && !gre.sequence_present());
    assert_eq!(gre.protocol_type(), EtherType::Ipv4);
    let inner = Ipv4Packet::new_checked(gre.payload()).unwrap();
    assert!(inner.verify_checksum());
    assert_eq!(inner.packet().len(), gre.payload().len());
    assert_eq!(outer.tos(), inner.tos());
    assert_eq!(outer.dont_frag(), inner.dont_frag() && !tunnel.clear_df);
    assert!(inner.packet().len() <= usize::from(tunnel.mtu));
    inner.packet().to_vec()
}

/// Checks the invariants every outcome must satisfy, whatever the input was.
fn check_outcome(ctx: &Context, rx_port: u16, capacity: usize, outcome: &Outcome, buf: &VecBuf) {
    assert_eq!(buf.headroom() + buf.len() + buf.tailroom(), capacity);
    match outcome.verdict {
        Verdict::Forward { port, tunnel }
        | Verdict::IcmpError { port, tunnel, .. }
        | Verdict::Reply {
            port,
            tunnel: tunnel @ Some(_),
        } => {
            assert_eq!(port, ctx.gateway_port());
            match tunnel {
                Some(t) => {
                    decode_gre_frame(buf.data(), ctx.tunnel(t).unwrap());
                }
                None => {
                    let eth = EthernetFrame::new_checked(buf.data()).unwrap();
                    assert_eq!((eth.dst_addr(), eth.src_addr()), (GW, P0));
                    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                    assert!(ip.verify_checksum());
                    assert_eq!(ip.packet().len(), eth.payload().len());
                    assert!(ip.ttl() >= 1);
                }
            }
        }
        Verdict::Reply { port, tunnel: None } => {
            assert_eq!(port, rx_port);
            let eth = EthernetFrame::new_checked(buf.data()).unwrap();
            assert_eq!(eth.src_addr(), ctx.port_mac(rx_port).unwrap());
        }
        Verdict::NeedsFragmentation { mtu, tunnel, .. } => {
            let ip = Ipv4Packet::new_checked(buf.data()).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.packet().len(), buf.len());
            assert!(buf.len() > usize::from(mtu));
            assert_eq!(ctx.tunnel(tunnel).unwrap().mtu, mtu);
        }
        Verdict::ToControl(Control::Probe(t)) => {
            assert!(ctx.tunnel(t).is_some());
            let ip = Ipv4Packet::new_checked(buf.data()).unwrap();
            assert_eq!(ip.protocol(), IpProtocol::Icmp);
        }
        Verdict::ToControl(Control::Arp) | Verdict::Reassemble | Verdict::Drop(_) => {}
    }
}

// ---- golden frames, one per path ----

#[test]
fn golden_encap_without_key_copies_df() {
    let (o, b) = run(&ENCAP_IN);
    assert_eq!(
        o,
        Outcome {
            verdict: forward(Some(T0)),
            rx_tunnel: None
        }
    );
    assert_eq!(b.data(), &ENCAP_OUT[..]);
}

#[test]
fn golden_encap_with_key_copies_tos_and_clear_df() {
    let (o, b) = run(&ENCAP_KEY_IN);
    assert_eq!(o.verdict, forward(Some(T2)));
    assert_eq!(b.data(), &ENCAP_KEY_OUT[..]);
}

#[test]
fn golden_decap_with_checksum_key_and_sequence_to_internet() {
    let (o, b) = run(&DECAP_IN);
    assert_eq!(
        o,
        Outcome {
            verdict: forward(None),
            rx_tunnel: Some(T2)
        }
    );
    assert_eq!(b.data(), &DECAP_OUT[..]);
}

#[test]
fn golden_transit_reencapsulates() {
    let (o, b) = run(&TRANSIT_IN);
    assert_eq!(
        o,
        Outcome {
            verdict: forward(Some(T2)),
            rx_tunnel: Some(T0)
        }
    );
    assert_eq!(b.data(), &TRANSIT_OUT[..]);
}

#[test]
fn golden_arp_reply_in_place() {
    let (o, b) = run(&ARP_IN);
    assert_eq!(
        o.verdict,
        Verdict::Reply {
            port: 0,
            tunnel: None
        }
    );
    assert_eq!(b.data(), &ARP_OUT[..]);
}

#[test]
fn golden_echo_reply_in_place() {
    let (o, b) = run(&ECHO_IN);
    assert_eq!(
        o.verdict,
        Verdict::Reply {
            port: 0,
            tunnel: None
        }
    );
    assert_eq!(b.data(), &ECHO_OUT[..]);
}

#[test]
fn golden_echo_reply_through_the_tunnel_it_came_from() {
    let (o, b) = run(&TUNNEL_ECHO_IN);
    assert_eq!(
        o,
        Outcome {
            verdict: Verdict::Reply {
                port: 0,
                tunnel: Some(T0)
            },
            rx_tunnel: Some(T0)
        }
    );
    assert_eq!(b.data(), &TUNNEL_ECHO_OUT[..]);
}

fn too_big_in() -> Vec<u8> {
    let mut v = TOO_BIG_IN.to_vec();
    v.resize(1514, b'x');
    v
}

#[test]
fn golden_too_big_df_gets_fragmentation_needed_with_tunnel_mtu() {
    let (o, b) = run(&too_big_in());
    assert_eq!(
        o.verdict,
        Verdict::IcmpError {
            reason: DropReason::MtuExceeded,
            port: 0,
            tunnel: None
        }
    );
    assert_eq!(b.data(), &TOO_BIG_OUT[..]);
}

#[test]
fn too_big_icmp_is_rate_limited_by_the_token_bucket() {
    let mut s = state();
    let frame = too_big_in();
    let sent = |v: Verdict| matches!(v, Verdict::IcmpError { .. });
    // Burst of 2, then nothing until 100 ticks (1/10 s) have passed.
    assert!(sent(run_with(ctx(), 0, &frame, &mut s, 0).0.verdict));
    assert!(sent(run_with(ctx(), 0, &frame, &mut s, 0).0.verdict));
    assert_eq!(
        run_with(ctx(), 0, &frame, &mut s, 99).0.verdict,
        drop_(DropReason::MtuExceeded)
    );
    assert!(sent(run_with(ctx(), 0, &frame, &mut s, 100).0.verdict));
    assert_eq!(
        run_with(ctx(), 0, &frame, &mut s, 100).0.verdict,
        drop_(DropReason::MtuExceeded)
    );
}

#[test]
fn golden_transit_too_big_icmp_goes_back_through_the_customer_tunnel() {
    let mut frame = TRANSIT_TOO_BIG_IN.to_vec();
    frame.resize(14 + 20 + 4 + 1500, b'y');
    let (o, b) = run(&frame);
    assert_eq!(
        o,
        Outcome {
            verdict: Verdict::IcmpError {
                reason: DropReason::MtuExceeded,
                port: 0,
                tunnel: Some(T0)
            },
            rx_tunnel: Some(T0)
        }
    );
    assert_eq!(b.data(), &TRANSIT_TOO_BIG_OUT[..]);
}

#[test]
fn golden_ttl_expiry() {
    assert_eq!(verdict(&TTL_IN), drop_(DropReason::TtlExceeded));
    let (o, b) = run_with(ctx_ttl(), 0, &TTL_IN, &mut state(), 0);
    assert_eq!(
        o.verdict,
        Verdict::IcmpError {
            reason: DropReason::TtlExceeded,
            port: 0,
            tunnel: None
        }
    );
    assert_eq!(b.data(), &TTL_OUT[..]);
}

#[test]
fn golden_mss_clamped_on_syn_into_a_tunnel() {
    let (o, b) = run(&SYN_IN);
    assert_eq!(o.verdict, forward(Some(T0)));
    // scapy recomputed the TCP checksum from scratch: equal bytes mean the incremental update
    // equals a full recomputation.
    assert_eq!(b.data(), &SYN_OUT[..]);
}

#[test]
fn golden_mss_clamped_on_synack_out_of_a_tunnel_at_an_odd_offset() {
    let (o, b) = run(&SYNACK_IN);
    assert_eq!(
        o,
        Outcome {
            verdict: forward(None),
            rx_tunnel: Some(T2)
        }
    );
    assert_eq!(b.data(), &SYNACK_OUT[..]);
}

// ---- other paths ----

#[test]
fn ttl_expiry_on_decap_and_in_transit() {
    let dying = ip_packet(
        a("172.16.1.1"),
        a("8.8.8.8"),
        IpProtocol::Udp,
        1,
        0,
        false,
        &udp(a("172.16.1.1"), a("8.8.8.8"), 1, 2, b"x"),
    );
    let (o, _) = run(&via_t0(&dying));
    assert_eq!(o.verdict, drop_(DropReason::TtlExceeded));
    assert_eq!(o.rx_tunnel, Some(T0));
    // With errors on, the time exceeded (from T0's endpoint to 172.16.1.1) goes back into T0.
    let (o, b) = run_with(ctx_ttl(), 0, &via_t0(&dying), &mut state(), 0);
    assert_eq!(
        o.verdict,
        Verdict::IcmpError {
            reason: DropReason::TtlExceeded,
            port: 0,
            tunnel: Some(T0)
        }
    );
    let inner = decode_gre_frame(b.data(), ctx().tunnel(T0).unwrap());
    let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (E1, a("172.16.1.1")));
    let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmp.msg_type(), wire::IcmpMessage::TimeExceeded);
    assert_eq!(&icmp.data()[..20], &dying[..20]);
}

#[test]
fn mss_clamp_matches_a_full_recompute_in_both_directions() {
    for (odd, flags) in [(false, 0x02), (true, 0x12)] {
        // Into T2 (MSS 1400) from the internet.
        let seg = tcp(HOST, a("172.20.3.3"), 1234, 80, flags, Some(1460), odd, b"");
        let (o, b) = run(&plain(&ip_packet(
            HOST,
            a("172.20.3.3"),
            IpProtocol::Tcp,
            64,
            0,
            true,
            &seg,
        )));
        assert_eq!(o.verdict, forward(Some(T2)));
        let inner = decode_gre_frame(b.data(), ctx().tunnel(T2).unwrap());
        let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
        let mut seg = ip.payload().to_vec();
        let mut t = TcpPacket::new_checked(&mut seg[..]).unwrap();
        assert_eq!(t.mss(), Ok(Some(1400)));
        let incremental = t.checksum();
        t.fill_checksum(HOST, a("172.20.3.3"));
        assert_eq!(incremental, t.checksum());

        // Out of T0 (MSS 1436) to the internet; a smaller MSS is left alone.
        for (mss, expected) in [(1460, 1436), (1200, 1200)] {
            let seg = tcp(a("172.16.3.3"), HOST, 80, 1234, flags, Some(mss), odd, b"");
            let inner = ip_packet(a("172.16.3.3"), HOST, IpProtocol::Tcp, 64, 0, true, &seg);
            let (o, b) = run(&via_t0(&inner));
            assert_eq!(o.verdict, forward(None));
            let ip = Ipv4Packet::new_checked(&b.data()[14..]).unwrap();
            let mut seg = ip.payload().to_vec();
            let mut t = TcpPacket::new_checked(&mut seg[..]).unwrap();
            assert_eq!(t.mss(), Ok(Some(expected)));
            let incremental = t.checksum();
            t.fill_checksum(a("172.16.3.3"), HOST);
            assert_eq!(incremental, t.checksum());
        }
    }
    // Transit clamps to the lower of the two tunnels' MSS (T0 1436 in, T2 1400 out).
    let seg = tcp(
        a("172.16.3.3"),
        a("172.20.3.3"),
        80,
        1234,
        0x02,
        Some(1460),
        false,
        b"",
    );
    let inner = ip_packet(
        a("172.16.3.3"),
        a("172.20.3.3"),
        IpProtocol::Tcp,
        64,
        0,
        true,
        &seg,
    );
    let (o, b) = run(&via_t0(&inner));
    assert_eq!(o.verdict, forward(Some(T2)));
    let inner = decode_gre_frame(b.data(), ctx().tunnel(T2).unwrap());
    let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
    assert_eq!(
        TcpPacket::new_checked(ip.payload()).unwrap().mss(),
        Ok(Some(1400))
    );
    // Non-SYN segments are not touched.
    let seg = tcp(
        HOST,
        a("172.20.3.3"),
        1234,
        80,
        0x10,
        Some(1460),
        false,
        b"",
    );
    let (_, b) = run(&plain(&ip_packet(
        HOST,
        a("172.20.3.3"),
        IpProtocol::Tcp,
        64,
        0,
        true,
        &seg,
    )));
    let inner = decode_gre_frame(b.data(), ctx().tunnel(T2).unwrap());
    let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
    assert_eq!(ip.payload(), &seg[..]);
}

/// (description, frame, expected verdict, expected rx tunnel).
fn gre_rejections() -> Vec<(&'static str, Vec<u8>, Verdict, Option<TunnelId>)> {
    let inner = ip_packet(
        a("172.16.1.1"),
        a("8.8.8.8"),
        IpProtocol::Udp,
        64,
        0,
        false,
        &udp(a("172.16.1.1"), a("8.8.8.8"), 1, 2, b"x"),
    );
    let from_r0 = |g: Vec<u8>| gre_frame(R0, E1, &g);
    let mut bad_cks = gre(0x8000, 0x0800, None, None, &inner);
    bad_cks[5] ^= 1;
    let mut bad_inner = inner.clone();
    bad_inner[10] ^= 1;
    let ipv6 = [0x60u8; 40];
    let w = |e| drop_(DropReason::Wire(e));
    vec![
        (
            "version 1",
            from_r0(gre(0x0001, 0x0800, None, None, &inner)),
            w(wire::Error::GreVersion),
            None,
        ),
        (
            "routing bit",
            from_r0(gre(0x4000, 0x0800, None, None, &inner)),
            w(wire::Error::GreRoutingPresent),
            None,
        ),
        (
            "recursion control",
            from_r0(gre(0x0100, 0x0800, None, None, &inner)),
            w(wire::Error::GreRecursionControl),
            None,
        ),
        (
            "strict source route",
            from_r0(gre(0x0800, 0x0800, None, None, &inner)),
            w(wire::Error::GreReservedBits),
            None,
        ),
        (
            "reserved flag",
            from_r0(gre(0x0008, 0x0800, None, None, &inner)),
            w(wire::Error::GreReservedBits),
            None,
        ),
        (
            "truncated",
            from_r0(vec![0, 0]),
            w(wire::Error::GreTruncated),
            None,
        ),
        (
            "bad checksum",
            from_r0(bad_cks),
            w(wire::Error::GreBadChecksum),
            Some(T0),
        ),
        (
            "unknown protocol",
            from_r0(gre(0, 0x6558, None, None, &inner)),
            drop_(DropReason::GreUnsupportedProtocol),
            Some(T0),
        ),
        (
            "inner IPv6",
            from_r0(gre(0, 0x86dd, None, None, &ipv6)),
            drop_(DropReason::GreInnerIpv6),
            Some(T0),
        ),
        (
            "inner bad checksum",
            from_r0(gre(0, 0x0800, None, None, &bad_inner)),
            w(wire::Error::Ipv4BadChecksum),
            Some(T0),
        ),
        (
            "inner truncated",
            from_r0(gre(0, 0x0800, None, None, &inner[..25])),
            w(wire::Error::Ipv4BadTotalLength),
            Some(T0),
        ),
        (
            "key on a keyless pair",
            from_r0(gre(0x2000, 0x0800, Some(78), None, &inner)),
            drop_(DropReason::GreKeyMismatch),
            None,
        ),
        (
            "wrong key",
            gre_frame(R2, E1, &gre(0x2000, 0x0800, Some(1002), None, &inner)),
            drop_(DropReason::GreKeyMismatch),
            None,
        ),
        (
            "missing key",
            gre_frame(R2, E1, &gre(0, 0x0800, None, None, &inner)),
            drop_(DropReason::GreKeyMissing),
            None,
        ),
        (
            "unknown remote",
            gre_frame(a("198.51.100.99"), E1, &gre(0, 0x0800, None, None, &inner)),
            drop_(DropReason::GreUnknownRemote),
            None,
        ),
        (
            "remote of another endpoint",
            gre_frame(R0, E2, &gre(0, 0x0800, None, None, &inner)),
            drop_(DropReason::GreUnknownRemote),
            None,
        ),
        (
            "to a port address",
            gre_frame(R0, a("192.0.2.10"), &gre(0, 0x0800, None, None, &inner)),
            drop_(DropReason::LocalUnsupported),
            None,
        ),
        (
            "ESP without SA",
            plain(&ip_packet(
                R0,
                E1,
                IpProtocol::Esp,
                50,
                0,
                false,
                &[0, 0, 0x10, 1, 0, 0, 0, 1],
            )),
            drop_(DropReason::EspNoSa),
            None,
        ),
    ]
}

#[test]
fn every_gre_rejection_rule() {
    for (what, frame, expected, rx) in gre_rejections() {
        let (o, _) = run(&frame);
        assert_eq!(o.verdict, expected, "{what}");
        assert_eq!(o.rx_tunnel, rx, "{what}");
    }
}

#[test]
fn gre_acceptance_keys_and_sequence() {
    let inner = ip_packet(
        a("172.16.1.1"),
        a("8.8.8.8"),
        IpProtocol::Udp,
        64,
        0,
        false,
        &udp(a("172.16.1.1"), a("8.8.8.8"), 1, 2, b"x"),
    );
    // Same endpoint pair: keyless → T0, key 77 → T5; sequence numbers and checksums accepted.
    for (g, rx) in [
        (gre(0, 0x0800, None, None, &inner), T0),
        (gre(0x1000, 0x0800, None, Some(9), &inner), T0),
        (gre(0x8000, 0x0800, None, None, &inner), T0),
        (gre(0x2000, 0x0800, Some(77), None, &inner), T5),
        (gre(0xb000, 0x0800, Some(77), Some(1), &inner), T5),
    ] {
        let (o, b) = run(&gre_frame(R0, E1, &g));
        assert_eq!(o.verdict, forward(None));
        assert_eq!(o.rx_tunnel, Some(rx));
        let mut expected = inner.clone();
        Ipv4Packet::new_checked(&mut expected[..])
            .unwrap()
            .decrement_ttl();
        assert_eq!(&b.data()[14..], &expected[..]);
    }
    // Trailing bytes after the inner packet are cut.
    let mut g = gre(0, 0x0800, None, None, &inner);
    g.extend_from_slice(&[0xee; 5]);
    let (_, b) = run(&gre_frame(R0, E1, &g));
    assert_eq!(b.len(), 14 + inner.len());
}

#[test]
fn outer_fragments_of_tunnel_packets_are_reassembled_first() {
    let inner = ip_packet(
        a("172.16.1.1"),
        a("8.8.8.8"),
        IpProtocol::Udp,
        64,
        0,
        false,
        &udp(a("172.16.1.1"), a("8.8.8.8"), 1, 2, &[7; 100]),
    );
    let outer = ip_packet(
        R0,
        E1,
        IpProtocol::Gre,
        50,
        0,
        false,
        &gre(0, 0x0800, None, None, &inner),
    );
    let plan = FragmentPlan::new(&outer, 80).unwrap();
    let mut reassembler = Reassembler::new(ReassemblerConfig {
        max_sets: 8,
        timeout: 1000,
        max_datagram: 2048,
        seed: 1,
    });
    let mut out = vec![0; 2048];
    let mut done = None;
    for f in plan {
        let mut frag = vec![0; 80];
        let n = write_fragment(&outer, &f, &mut frag).unwrap();
        let frame = plain(&frag[..n]);
        assert_eq!(verdict(&frame), Verdict::Reassemble);
        if let Reassembly::Complete(n) = reassembler.insert(&frame[14..], 0, &mut out).unwrap() {
            done = Some(n);
        }
    }
    let n = done.expect("complete");
    assert_eq!(&out[..n], &outer[..]);
    let (o, b) = run(&plain(&out[..n]));
    assert_eq!((o.verdict, o.rx_tunnel), (forward(None), Some(T0)));
    assert_eq!(b.len(), 14 + inner.len());

    // Fragments from an unknown remote are not worth a reassembly slot; ESP ones have no SA.
    let mut frag = vec![0; 80];
    let f = FragmentPlan::new(&outer, 80).unwrap().next().unwrap();
    let n = write_fragment(&outer, &f, &mut frag).unwrap();
    let mut unknown = frag[..n].to_vec();
    unknown[12..16].copy_from_slice(&a("198.51.100.99").octets());
    Ipv4Packet::new_checked(&mut unknown[..])
        .unwrap()
        .fill_checksum();
    assert_eq!(
        verdict(&plain(&unknown)),
        drop_(DropReason::GreUnknownRemote)
    );
    let mut esp = frag[..n].to_vec();
    esp[9] = 50;
    Ipv4Packet::new_checked(&mut esp[..])
        .unwrap()
        .fill_checksum();
    assert_eq!(verdict(&plain(&esp)), drop_(DropReason::EspNoSa));
}

#[test]
fn frames_not_for_us_and_malformed_ones_are_dropped_by_reason() {
    let ok = ENCAP_IN.to_vec();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = ok.clone();
        f(&mut v);
        v
    };
    let w = |e| drop_(DropReason::Wire(e));
    let cases: Vec<(&str, Vec<u8>, u16, Verdict)> = vec![
        (
            // Any unicast destination is accepted (the NIC filters unicast in hardware).
            "other unicast MAC",
            with(&|v| v[5] = 9),
            0,
            forward(Some(TunnelId(0))),
        ),
        (
            "multicast MAC",
            with(&|v| v[..6].copy_from_slice(&[1, 0, 0x5e, 0, 0, 1])),
            0,
            drop_(DropReason::EthernetNotForUs),
        ),
        (
            "unknown port",
            ok.clone(),
            7,
            drop_(DropReason::UnknownPort),
        ),
        (
            "truncated Ethernet",
            ok[..10].to_vec(),
            0,
            w(wire::Error::EthernetTruncated),
        ),
        (
            "VLAN",
            with(&|v| {
                v.splice(12..12, [0x81, 0, 0, 5]);
            }),
            0,
            drop_(DropReason::VlanTagged),
        ),
        (
            "IPv6",
            with(&|v| v[12..14].copy_from_slice(&[0x86, 0xdd])),
            0,
            drop_(DropReason::UnsupportedEtherType),
        ),
        (
            "IPv4 bad checksum",
            with(&|v| v[24] ^= 1),
            0,
            w(wire::Error::Ipv4BadChecksum),
        ),
        (
            "IPv4 bad version",
            with(&|v| v[14] = 0x65),
            0,
            w(wire::Error::Ipv4BadVersion),
        ),
        (
            "IPv4 bad total length",
            with(&|v| v[17] = 0xff),
            0,
            w(wire::Error::Ipv4BadTotalLength),
        ),
        (
            "IPv4 truncated",
            ok[..30].to_vec(),
            0,
            w(wire::Error::Ipv4Truncated),
        ),
        (
            "UDP bad length",
            with(&|v| {
                v[38..40].copy_from_slice(&[0, 99]);
            }),
            0,
            w(wire::Error::UdpBadLength),
        ),
    ];
    for (what, frame, port, expected) in cases {
        let (o, _) = run_with(ctx(), port, &frame, &mut state(), 0);
        assert_eq!(o.verdict, expected, "{what}");
    }
    let udp_to = |dst: &str| {
        plain(&ip_packet(
            HOST,
            a(dst),
            IpProtocol::Udp,
            64,
            0,
            false,
            &udp(HOST, a(dst), 1, 2, b""),
        ))
    };
    assert_eq!(verdict(&udp_to("9.9.9.9")), drop_(DropReason::NoRoute));
    assert_eq!(
        verdict(&udp_to("255.255.255.255")),
        drop_(DropReason::NoRoute)
    );
    assert_eq!(
        verdict(&udp_to("10.50.1.1")),
        drop_(DropReason::EspNoSa),
        "IPsec tunnel"
    );
    assert_eq!(
        verdict(&udp_to("203.0.113.1")),
        drop_(DropReason::LocalUnsupported)
    );
    assert_eq!(
        verdict(&udp_to("10.200.0.0")),
        drop_(DropReason::LocalUnsupported)
    );
    // Internet egress refuses martian destinations and never re-decapsulates.
    for dst in [
        "127.0.0.1",
        "0.1.2.3",
        "224.0.0.5",
        "255.255.255.255",
        "240.0.0.1",
    ] {
        let inner = ip_packet(
            a("172.16.1.1"),
            a(dst),
            IpProtocol::Udp,
            64,
            0,
            false,
            &udp(a("172.16.1.1"), a(dst), 1, 2, b""),
        );
        assert_eq!(
            verdict(&via_t0(&inner)),
            drop_(DropReason::MartianDestination),
            "{dst}"
        );
    }
    let nested = ip_packet(
        R0,
        E1,
        IpProtocol::Gre,
        64,
        0,
        false,
        &gre(0, 0x0800, None, None, &ENCAP_IN[14..]),
    );
    assert_eq!(
        verdict(&via_t0(&nested)),
        drop_(DropReason::LocalUnsupported)
    );
}

#[test]
fn ethernet_padding_is_trimmed_before_encapsulation() {
    let mut padded = ENCAP_IN.to_vec();
    padded.extend_from_slice(&[0; 10]);
    let (o, b) = run(&padded);
    assert_eq!(o.verdict, forward(Some(T0)));
    assert_eq!(b.data(), &ENCAP_OUT[..]);
}

#[test]
fn arp_answers_only_for_our_addresses_on_the_right_port() {
    let arp = |op: u16, spa: &str, tpa: &str| {
        let mut p = vec![0, 1, 8, 0, 6, 4];
        p.extend_from_slice(&op.to_be_bytes());
        p.extend_from_slice(&GW.0);
        p.extend_from_slice(&a(spa).octets());
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&a(tpa).octets());
        frame_to(EthernetAddress::BROADCAST, 0x0806, &p)
    };
    let reply = Verdict::Reply {
        port: 0,
        tunnel: None,
    };
    assert_eq!(verdict(&arp(1, "192.0.2.1", "192.0.2.10")), reply);
    assert_eq!(
        verdict(&arp(1, "192.0.2.1", "203.0.113.2")),
        reply,
        "endpoint"
    );
    assert_eq!(
        verdict(&arp(1, "192.0.2.1", "192.0.2.11")),
        drop_(DropReason::ArpNotForUs)
    );
    assert_eq!(
        verdict(&arp(1, "192.0.2.1", "198.18.0.10")),
        drop_(DropReason::ArpNotForUs),
        "port 1's"
    );
    assert_eq!(
        verdict(&arp(1, "192.0.2.1", "10.200.0.0")),
        drop_(DropReason::ArpNotForUs),
        "tunnel side"
    );
    assert_eq!(
        verdict(&arp(1, "192.0.2.10", "192.0.2.10")),
        drop_(DropReason::ArpNotForUs),
        "announcement"
    );
    assert_eq!(
        verdict(&arp(2, "192.0.2.1", "192.0.2.10")),
        Verdict::ToControl(Control::Arp)
    );
    assert_eq!(
        verdict(&arp(2, "192.0.2.1", "203.0.113.1")),
        drop_(DropReason::ArpNotForUs)
    );
    assert_eq!(
        verdict(&arp(3, "192.0.2.1", "192.0.2.10")),
        drop_(DropReason::ArpNotForUs)
    );
    let (o, b) = run_with(
        ctx(),
        1,
        &arp(1, "198.18.0.1", "198.18.0.10"),
        &mut state(),
        0,
    );
    assert_eq!(
        o.verdict,
        Verdict::Reply {
            port: 1,
            tunnel: None
        }
    );
    assert_eq!(&b.data()[6..12], &P1.0);
    let mut bad = arp(1, "192.0.2.1", "192.0.2.10");
    bad[19] = 5;
    assert_eq!(
        verdict(&bad),
        drop_(DropReason::Wire(wire::Error::ArpUnsupported))
    );
}

#[test]
fn echo_requests_to_every_kind_of_our_address() {
    for dst in ["203.0.113.1", "192.0.2.10", "198.18.0.10", "10.200.0.4"] {
        let req = ip_packet(
            HOST,
            a(dst),
            IpProtocol::Icmp,
            64,
            0,
            false,
            &icmp_msg(8, 1, 1, b"abc"),
        );
        let (o, b) = run(&plain(&req));
        assert_eq!(
            o.verdict,
            Verdict::Reply {
                port: 0,
                tunnel: None
            },
            "{dst}"
        );
        let ip = Ipv4Packet::new_checked(&b.data()[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (a(dst), HOST));
        assert!(IcmpPacket::new_checked(ip.payload())
            .unwrap()
            .verify_checksum());
    }
    let mut bad = icmp_msg(8, 1, 1, b"abc");
    bad[3] ^= 1;
    let req = ip_packet(HOST, E1, IpProtocol::Icmp, 64, 0, false, &bad);
    assert_eq!(
        verdict(&plain(&req)),
        drop_(DropReason::Wire(wire::Error::IcmpBadChecksum))
    );
    let unreachable = ip_packet(
        HOST,
        E1,
        IpProtocol::Icmp,
        64,
        0,
        false,
        &icmp_msg(3, 0, 0, &[0; 28]),
    );
    assert_eq!(
        verdict(&plain(&unreachable)),
        drop_(DropReason::LocalUnsupported)
    );
    let from_broadcast = ip_packet(
        a("255.255.255.255"),
        E1,
        IpProtocol::Icmp,
        64,
        0,
        false,
        &icmp_msg(8, 1, 1, b""),
    );
    assert_eq!(
        verdict(&plain(&from_broadcast)),
        drop_(DropReason::LocalUnsupported)
    );
}

fn probe(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, tunnel: TunnelId) -> Vec<u8> {
    let mut data = probe_payload(tunnel).to_vec();
    data.extend_from_slice(b"seq+timestamp");
    ip_packet(
        src,
        dst,
        IpProtocol::Icmp,
        60,
        0,
        false,
        &icmp_msg(0, ident, 5, &data),
    )
}

#[test]
fn probe_replies_go_to_control_and_nothing_else_does() {
    // Unidirectional: the reply comes back plain to the endpoint.
    let p = probe(a("10.200.0.3"), E2, DEFAULT_PROBE_IDENT, T1);
    let (o, b) = run(&plain(&p));
    assert_eq!(o.verdict, Verdict::ToControl(Control::Probe(T1)));
    assert_eq!(b.data(), &p[..], "handed over from its IPv4 header");
    // Bidirectional: inside the tunnel, to our side.
    let p = probe(a("10.200.0.1"), a("10.200.0.0"), DEFAULT_PROBE_IDENT, T0);
    let (o, b) = run(&via_t0(&p));
    assert_eq!(
        (o.verdict, o.rx_tunnel),
        (Verdict::ToControl(Control::Probe(T0)), Some(T0))
    );
    assert_eq!(b.data(), &p[..]);
    // Wrong identifier, unknown tunnel, wrong magic, wrong address kind, bad checksum.
    let lu = drop_(DropReason::LocalUnsupported);
    assert_eq!(verdict(&plain(&probe(HOST, E1, 0x1234, T0))), lu);
    assert_eq!(
        verdict(&plain(&probe(HOST, E1, DEFAULT_PROBE_IDENT, TunnelId(99)))),
        lu
    );
    assert_eq!(
        verdict(&plain(&probe(
            HOST,
            a("192.0.2.10"),
            DEFAULT_PROBE_IDENT,
            T0
        ))),
        lu
    );
    let mut p = probe(HOST, E1, DEFAULT_PROBE_IDENT, T0);
    p[28] = b'X';
    let mut icmp = p[20..].to_vec();
    IcmpPacket::new_checked(&mut icmp[..])
        .unwrap()
        .fill_checksum();
    p[20..].copy_from_slice(&icmp);
    assert_eq!(verdict(&plain(&p)), lu);
    let mut p = probe(HOST, E1, DEFAULT_PROBE_IDENT, T0);
    p[40] ^= 1;
    assert_eq!(
        verdict(&plain(&p)),
        drop_(DropReason::Wire(wire::Error::IcmpBadChecksum))
    );
}

#[test]
fn outer_ce_mark_is_copied_into_an_ecn_capable_inner_packet() {
    for (inner_ecn, expected) in [(0u8, 0u8), (1, 3), (2, 3), (3, 3)] {
        let inner = ip_packet(
            a("172.16.1.1"),
            a("8.8.8.8"),
            IpProtocol::Udp,
            64,
            0xb8 | inner_ecn,
            false,
            &udp(a("172.16.1.1"), a("8.8.8.8"), 1, 2, b"e"),
        );
        let outer = ip_packet(
            R0,
            E1,
            IpProtocol::Gre,
            50,
            0x03,
            false,
            &gre(0, 0x0800, None, None, &inner),
        );
        let (o, b) = run(&plain(&outer));
        assert_eq!(o.verdict, forward(None));
        let ip = Ipv4Packet::new_checked(&b.data()[14..]).unwrap();
        assert_eq!(ip.tos(), 0xb8 | expected);
        assert!(ip.verify_checksum());
    }
}

#[test]
fn ecmp_follows_the_seed_hash_and_keeps_fragments_together() {
    let mut seen = [0usize; 2];
    for i in 0..200u16 {
        let dst = Ipv4Addr::new(172, 17, (i >> 8) as u8, i as u8);
        let seg = udp(HOST, dst, 1000 + i, 53, b"q");
        let frame = plain(&ip_packet(HOST, dst, IpProtocol::Udp, 64, 0, false, &seg));
        let expected = ctx()
            .table()
            .select(
                u32::from(dst),
                ecmp::flow_hash(u32::from(HOST), u32::from(dst), 17, false, 1000 + i, 53),
            )
            .unwrap();
        let v = verdict(&frame);
        assert_eq!(v, forward(Some(expected)));
        assert_eq!(verdict(&frame), v, "deterministic");
        seen[expected.0 as usize] += 1;
        // Every fragment of one datagram takes the same tunnel (addresses only).
        let big = ip_packet(
            HOST,
            dst,
            IpProtocol::Udp,
            64,
            0,
            false,
            &udp(HOST, dst, 1000 + i, 53, &[1; 64]),
        );
        let plan = FragmentPlan::new(&big, 48).unwrap();
        let tunnels: Vec<Verdict> = plan
            .map(|f| {
                let mut out = [0u8; 64];
                let n = write_fragment(&big, &f, &mut out).unwrap();
                verdict(&plain(&out[..n]))
            })
            .collect();
        let by_ips = ctx()
            .table()
            .select(
                u32::from(dst),
                ecmp::FlowKey::addresses(u32::from(HOST), u32::from(dst)).hash(),
            )
            .unwrap();
        assert!(tunnels.iter().all(|&v| v == forward(Some(by_ips))));
    }
    assert!(seen[0] > 50 && seen[1] > 50, "{seen:?}");
}

#[test]
fn df_clear_or_clear_df_fragments_and_the_fragments_reassemble() {
    for (dst, df, tunnel) in [("172.16.1.1", false, T0), ("172.30.1.1", true, T4)] {
        let payload: Vec<u8> = (0..1600u32).map(|i| i as u8).collect();
        let inner = ip_packet(
            HOST,
            a(dst),
            IpProtocol::Udp,
            64,
            0x10,
            df,
            &udp(HOST, a(dst), 7, 8, &payload),
        );
        let (o, b) = run(&plain(&inner));
        let t = *ctx().tunnel(tunnel).unwrap();
        assert_eq!(
            o.verdict,
            Verdict::NeedsFragmentation {
                port: 0,
                tunnel,
                mtu: t.mtu
            }
        );
        let mut expected = inner.clone();
        Ipv4Packet::new_checked(&mut expected[..])
            .unwrap()
            .decrement_ttl();
        assert_eq!(b.data(), &expected[..], "TTL - 1, no Ethernet header");

        // What the worker's adapter does: fragment, encapsulate, send.
        let mut reassembler = Reassembler::new(ReassemblerConfig {
            max_sets: 4,
            timeout: 10,
            max_datagram: 4096,
            seed: 9,
        });
        let mut out = vec![0; 4096];
        let mut result = None;
        let mut s = state();
        for f in FragmentPlan::new(b.data(), t.mtu).unwrap() {
            let mut frag = VecBuf::with_tailroom(HEADROOM, &[], 2048);
            let room = frag.append(2048).unwrap();
            let n = write_fragment(b.data(), &f, room).unwrap();
            assert!(frag.trim((2048 - n) as u16));
            encapsulate(ctx(), tunnel, &mut frag, &mut s).unwrap();
            let inner = decode_gre_frame(frag.data(), &t);
            let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
            assert!(!ip.dont_frag());
            assert!(inner.len() <= usize::from(t.mtu));
            if let Reassembly::Complete(n) = reassembler.insert(&inner, 0, &mut out).unwrap() {
                result = Some(n);
            }
        }
        let n = result.unwrap();
        let mut expected_no_df = expected.clone();
        expected_no_df[6] &= !0x40;
        Ipv4Packet::new_checked(&mut expected_no_df[..])
            .unwrap()
            .fill_checksum();
        assert_eq!(&out[..n], &expected_no_df[..]);
    }
    // clear_df also keeps DF off the outer header of packets that fit.
    let small = ip_packet(
        HOST,
        a("172.30.1.1"),
        IpProtocol::Udp,
        64,
        0,
        true,
        &udp(HOST, a("172.30.1.1"), 7, 8, b"s"),
    );
    let (o, b) = run(&plain(&small));
    assert_eq!(o.verdict, forward(Some(T4)));
    let outer = Ipv4Packet::new_checked(&b.data()[14..]).unwrap();
    assert!(!outer.dont_frag());
}

#[test]
fn encapsulate_refuses_what_it_cannot_send() {
    let mut s = state();
    let ip = ip_packet(
        HOST,
        a("172.16.1.1"),
        IpProtocol::Udp,
        64,
        0,
        false,
        &[0; 1500],
    );
    let mut b = VecBuf::new(HEADROOM, &ip);
    assert_eq!(
        encapsulate(ctx(), T0, &mut b, &mut s),
        Err(DropReason::MtuExceeded)
    );
    let small = &ip[..0];
    let mut b = VecBuf::new(HEADROOM, small);
    assert_eq!(
        encapsulate(ctx(), T0, &mut b, &mut s),
        Err(DropReason::Wire(wire::Error::Ipv4Truncated))
    );
    assert_eq!(
        encapsulate(ctx(), T3, &mut b, &mut s),
        Err(DropReason::EspNoSa)
    );
    assert_eq!(
        encapsulate(ctx(), TunnelId(42), &mut b, &mut s),
        Err(DropReason::UnknownTunnel)
    );
    // Not enough headroom for the headers.
    let mut b = VecBuf::new(10, &ENCAP_IN);
    assert_eq!(verdict_with_buf(&mut b), drop_(DropReason::Headroom));
    let mut b = VecBuf::new(24, &ENCAP_IN);
    assert_eq!(verdict_with_buf(&mut b), forward(Some(T0)));
    assert_eq!(b.data(), &ENCAP_OUT[..]);
}

fn verdict_with_buf(b: &mut VecBuf) -> Verdict {
    process(ctx(), 0, b, &mut state(), 0).verdict
}

#[test]
fn context_rejects_bad_configurations() {
    let check = |f: &dyn Fn(&mut ContextConfig), expected: ContextError| {
        let mut c = config(false);
        f(&mut c);
        assert_eq!(Context::new(&c, table()).unwrap_err(), expected);
    };
    check(&|c| c.gateway_port = 2, ContextError::GatewayPort(2));
    check(
        &|c| c.local_endpoints.push(a("224.0.0.1")),
        ContextError::InvalidAddress {
            what: "local endpoint",
            addr: a("224.0.0.1"),
        },
    );
    check(
        &|c| c.local_endpoints.push(E1),
        ContextError::DuplicateAddress(E1),
    );
    check(
        &|c| c.ports[1].addresses.push(a("10.200.0.0")),
        ContextError::DuplicateAddress(a("10.200.0.0")),
    );
    check(
        &|c| c.tunnels.push(c.tunnels[0]),
        ContextError::DuplicateTunnel(T0),
    );
    check(
        &|c| c.tunnels[0].0 = TunnelId(1 << 20),
        ContextError::TunnelIdTooLarge(TunnelId(1 << 20)),
    );
    check(
        &|c| c.tunnels[0].1.local = a("203.0.113.7"),
        ContextError::LocalNotEndpoint {
            tunnel: T0,
            local: a("203.0.113.7"),
        },
    );
    check(
        &|c| c.tunnels[0].1.mtu = 500,
        ContextError::InvalidMtu {
            tunnel: T0,
            mtu: 500,
        },
    );
    check(
        &|c| c.tunnels[0].1.mss = 1437,
        ContextError::InvalidMss {
            tunnel: T0,
            mss: 1437,
        },
    );
    check(
        &|c| c.tunnels[0].1.ttl = 0,
        ContextError::InvalidTtl { tunnel: T0 },
    );
    check(
        &|c| c.tunnels[5].1.key = None,
        ContextError::AmbiguousGre {
            tunnel: T0,
            other: T5,
        },
    );
    check(
        &|c| {
            c.tunnels.remove(1);
        },
        ContextError::MissingTunnel(T1),
    );
    assert!(ctx().with_table(table()).is_ok());
    assert_eq!(ctx().tunnel(T2).unwrap().key, Some(1001));
    assert!(format!("{:?}", ctx()).contains("tunnels: 6"));
}

// ---- properties ----

/// Destinations behind GRE tunnels (T0, T0/T1 ECMP, T2 keyed, T4 clear_df).
fn customer_dst() -> impl Strategy<Value = Ipv4Addr> {
    (
        prop::sample::select(vec![[172, 16], [172, 17], [172, 20], [172, 30]]),
        any::<u16>(),
    )
        .prop_map(|(p, x)| Ipv4Addr::new(p[0], p[1], (x >> 8) as u8, x as u8))
}

/// Unicast internet addresses that are none of ours nor a customer's.
fn internet_addr() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..=223, any::<[u8; 3]>())
        .prop_filter("not special", |(f, _)| {
            ![10, 127, 172, 192, 198, 203].contains(f)
        })
        .prop_map(|(f, r)| Ipv4Addr::new(f, r[0], r[1], r[2]))
}

#[derive(Debug, Clone)]
enum L4Kind {
    Udp,
    Tcp {
        flags: u8,
        mss: Option<u16>,
        odd: bool,
    },
    Icmp,
}

fn l4_kind() -> impl Strategy<Value = L4Kind> {
    prop_oneof![
        Just(L4Kind::Udp),
        Just(L4Kind::Icmp),
        (
            prop::sample::select(vec![0x02u8, 0x12, 0x10, 0x18]),
            prop::option::of(500u16..9000),
            any::<bool>()
        )
            .prop_map(|(flags, mss, odd)| L4Kind::Tcp { flags, mss, odd }),
    ]
}

#[allow(clippy::too_many_arguments)]
fn build_ip(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    kind: &L4Kind,
    ttl: u8,
    tos: u8,
    df: bool,
    data: &[u8],
) -> Vec<u8> {
    let (proto, seg) = match *kind {
        L4Kind::Udp => (IpProtocol::Udp, udp(src, dst, 4000, 53, data)),
        L4Kind::Tcp { flags, mss, odd } => (
            IpProtocol::Tcp,
            tcp(src, dst, 4000, 443, flags, mss, odd, data),
        ),
        L4Kind::Icmp => (IpProtocol::Icmp, icmp_msg(8, 3, 4, data)),
    };
    ip_packet(src, dst, proto, ttl, tos, df, &seg)
}

/// `inner` after forwarding: TTL − 1 and, on a SYN, the MSS clamped to `mss` (full checksums).
fn forwarded(inner: &[u8], kind: &L4Kind, mss: u16) -> Vec<u8> {
    let mut v = inner.to_vec();
    let mut ip = Ipv4Packet::new_checked(&mut v[..]).unwrap();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_ttl(ip.ttl() - 1);
    ip.fill_checksum();
    if let L4Kind::Tcp { flags, .. } = kind {
        if flags & 0x02 != 0 {
            let mut t = TcpPacket::new_checked(ip.payload_mut()).unwrap();
            t.clamp_mss(mss).unwrap();
            t.fill_checksum(src, dst);
        }
    }
    v
}

fn effective_mss(kind: &L4Kind, mss: u16) -> u16 {
    match kind {
        L4Kind::Tcp { .. } => mss,
        _ => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encap_then_parse_gives_back_the_inner_packet(
        src in internet_addr(), dst in customer_dst(), kind in l4_kind(),
        ttl in 2u8..=255, tos in any::<u8>(), df in any::<bool>(),
        data in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let inner = build_ip(src, dst, &kind, ttl, tos, df, &data);
        let (o, b) = run(&plain(&inner));
        let Verdict::Forward { port: 0, tunnel: Some(id) } = o.verdict else {
            return Err(TestCaseError::fail(format!("{:?}", o.verdict)));
        };
        let t = ctx().tunnel(id).unwrap();
        let got = decode_gre_frame(b.data(), t);
        prop_assert_eq!(got, forwarded(&inner, &kind, effective_mss(&kind, t.mss)));
        check_outcome(ctx(), 0, HEADROOM + inner.len() + 14, &o, &b);
    }

    #[test]
    fn decap_of_encap_round_trips(
        src in internet_addr(), dst in customer_dst(), kind in l4_kind(),
        ttl in 3u8..=255, tos in 0u8..=0xfc, data in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let inner = build_ip(src, dst, &kind, ttl, tos, false, &data);
        let (o, b) = run(&plain(&inner));
        let Verdict::Forward { tunnel: Some(id), .. } = o.verdict else {
            return Err(TestCaseError::fail(format!("{:?}", o.verdict)));
        };
        // Turn the encapsulated frame around, as if the remote had sent it to us.
        let mut back = b.data().to_vec();
        let (s, d) = (back[26..30].to_vec(), back[30..34].to_vec());
        back[26..30].copy_from_slice(&d);
        back[30..34].copy_from_slice(&s);
        back[..6].copy_from_slice(&P0.0);
        let (o2, b2) = run(&back);
        prop_assert_eq!(o2.rx_tunnel, Some(id));
        // Same 5-tuple, same tunnel (transit).
        prop_assert_eq!(o2.verdict, forward(Some(id)));
        let t = ctx().tunnel(id).unwrap();
        let twice = forwarded(&forwarded(&inner, &kind, t.mss), &kind, t.mss);
        prop_assert_eq!(decode_gre_frame(b2.data(), t), twice);
    }

    #[test]
    fn internet_egress_round_trips(
        dst in internet_addr(), host in any::<u16>(), kind in l4_kind(),
        ttl in 2u8..=255, tunnel in prop::sample::select(vec![T0, T1, T2, T4, T5]),
        csum in any::<bool>(), seq in prop::option::of(any::<u32>()),
        data in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let t = *ctx().tunnel(tunnel).unwrap();
        let src = Ipv4Addr::new(172, 16, (host >> 8) as u8, host as u8);
        let inner = build_ip(src, dst, &kind, ttl, 0, true, &data);
        let flags = (if csum { 0x8000 } else { 0 }) | (if t.key.is_some() { 0x2000 } else { 0 })
            | (if seq.is_some() { 0x1000 } else { 0 });
        let g = gre(flags, 0x0800, t.key, seq, &inner);
        let frame = gre_frame(t.remote, t.local, &g);
        let (o, b) = run(&frame);
        prop_assert_eq!((o.verdict, o.rx_tunnel), (forward(None), Some(tunnel)));
        prop_assert_eq!(&b.data()[..12], &[GW.0, P0.0].concat()[..]);
        prop_assert_eq!(&b.data()[14..], &forwarded(&inner, &kind, effective_mss(&kind, t.mss))[..]);
    }

    #[test]
    fn any_bytes_never_panic_and_keep_buffer_invariants(
        bytes in prop::collection::vec(any::<u8>(), 0..200), port in 0u16..3,
        headroom in 0usize..64, now in any::<u64>(),
    ) {
        for ctx in [ctx(), ctx_ttl()] {
            let mut buf = VecBuf::new(headroom, &bytes);
            let o = process(ctx, port, &mut buf, &mut state(), now);
            check_outcome(ctx, port, headroom + bytes.len(), &o, &buf);
        }
    }

    #[test]
    fn mutated_golden_frames_never_panic(
        which in 0usize..14, flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(), fix in any::<bool>(),
    ) {
        let goldens: [&[u8]; 14] = [&ENCAP_IN, &ENCAP_KEY_IN, &DECAP_IN, &TRANSIT_IN, &ARP_IN, &ECHO_IN,
            &TUNNEL_ECHO_IN, &TTL_IN, &SYN_IN, &SYNACK_IN, &ENCAP_OUT, &DECAP_OUT, &TOO_BIG_OUT, &TRANSIT_TOO_BIG_OUT];
        let mut frame = goldens[which].to_vec();
        for (at, x) in flips {
            let i = at % frame.len();
            frame[i] ^= x;
        }
        frame.truncate(frame.len() - cut % 8);
        if fix && frame.len() >= 34 {
            // Repair the outer header checksum so the mutation reaches deeper layers.
            frame[24..26].fill(0);
            let ihl = usize::from(frame[14] & 0x0f) * 4;
            if frame.len() >= 14 + ihl.max(20) {
                let ck = wire::checksum::checksum(&frame[14..14 + ihl.max(20)]);
                frame[24..26].copy_from_slice(&ck.to_be_bytes());
            }
        }
        for ctx in [ctx(), ctx_ttl()] {
            let mut buf = VecBuf::new(HEADROOM, &frame);
            let o = process(ctx, 0, &mut buf, &mut state(), 0);
            check_outcome(ctx, 0, HEADROOM + frame.len(), &o, &buf);
        }
    }

    #[test]
    fn fragments_reassemble_to_the_original(
        len in 0usize..3000, mtu in 576u16..1500, options in 0usize..3,
        order in Just((0..64).collect::<Vec<usize>>()).prop_shuffle(),
        dups in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let mut ip = ip_packet(HOST, E1, IpProtocol::Gre, 64, 0, false, &payload);
        // Options: none; a copied one (loose source route) + NOP; a non-copied one (record route).
        let opts: &[u8] = match options {
            0 => &[],
            1 => &[0x83, 7, 4, 1, 2, 3, 4, 1],
            _ => &[7, 7, 4, 0, 0, 0, 0, 0],
        };
        ip.splice(20..20, opts.iter().copied());
        ip[0] = 0x40 | ((20 + opts.len()) / 4) as u8;
        let total = ip.len() as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        Ipv4Packet::new_checked(&mut ip[..]).unwrap().fill_checksum();

        let plan = FragmentPlan::new(&ip, mtu).unwrap();
        let count = plan.fragments();
        let frags: Vec<Vec<u8>> = plan.map(|f| {
            let mut out = vec![0; usize::from(mtu)];
            let n = write_fragment(&ip, &f, &mut out).unwrap();
            out.truncate(n);
            out
        }).collect();
        prop_assert_eq!(frags.len(), count);
        for (i, f) in frags.iter().enumerate() {
            let p = Ipv4Packet::new_checked(&f[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert!(f.len() <= usize::from(mtu));
            prop_assert_eq!(p.more_frags(), i + 1 < count);
            prop_assert_eq!(p.header_len(), if i == 0 || options == 1 { ip.len() - payload.len() } else { 20 });
        }
        let mut r = Reassembler::new(ReassemblerConfig { max_sets: 8, timeout: 100, max_datagram: 4096, seed: 3 });
        let mut out = vec![0; 4096];
        let mut feed: Vec<usize> = order.into_iter().filter(|&i| i < count).collect();
        for d in dups {
            feed.insert(d % (feed.len() + 1), d % count);
        }
        let mut complete = None;
        for i in feed {
            if count == 1 {
                // A single "fragment" is the whole packet, not a fragment.
                prop_assert_eq!(r.insert(&frags[i], 0, &mut out), Err(DropReason::ReassemblyBadFragment));
                complete = Some(frags[i].len());
                out[..frags[i].len()].copy_from_slice(&frags[i]);
                continue;
            }
            match r.insert(&frags[i], 0, &mut out).unwrap() {
                Reassembly::Complete(n) => { prop_assert!(complete.is_none()); complete = Some(n); }
                Reassembly::Pending => {}
            }
            if complete.is_some() { break; }
        }
        let n = complete.unwrap();
        prop_assert_eq!(&out[..n], &ip[..]);
        prop_assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn reassembler_stays_bounded_under_fragment_floods(
        frags in prop::collection::vec(
            (0u8..4, 0u16..6, 0u16..70, 1usize..6, any::<bool>(), 0u64..50, any::<u8>()), 1..400),
    ) {
        let mut r = Reassembler::new(ReassemblerConfig { max_sets: 10, timeout: 100, max_datagram: 512, seed: 5 });
        let capacity = r.capacity();
        prop_assert_eq!(capacity, 16);
        let mut out = vec![0u8; 512 + 60];
        let mut now = 0;
        for (src, ident, block, blocks, more, dt, fill) in frags {
            now += dt;
            let payload = vec![fill; blocks * 8 - usize::from(!more && fill % 2 == 1)];
            let mut ip = ip_packet(Ipv4Addr::new(198, 51, 100, src), E1, IpProtocol::Gre, 64, 0, false, &payload);
            let flags = (block & 0x1fff) | if more { 0x2000 } else { 0 };
            ip[4..6].copy_from_slice(&ident.to_be_bytes());
            ip[6..8].copy_from_slice(&flags.to_be_bytes());
            Ipv4Packet::new_checked(&mut ip[..]).unwrap().fill_checksum();
            match r.insert(&ip, now, &mut out) {
                Ok(Reassembly::Complete(n)) => {
                    let p = Ipv4Packet::new_checked(&out[..n]).unwrap();
                    prop_assert!(p.verify_checksum() && !p.is_fragment());
                    prop_assert_eq!(p.packet().len(), n);
                }
                Ok(Reassembly::Pending) | Err(_) => {}
            }
            prop_assert!(r.in_progress() <= capacity);
        }
        r.expire(now + 100);
        prop_assert_eq!(r.in_progress(), 0);
        let s = r.stats();
        prop_assert!(s.completed + s.timed_out + s.evicted + s.dropped <= s.fragments);
    }
}

#[test]
fn reassembler_timeout_eviction_overlap_and_limits() {
    let frag = |ident: u16, offset: u16, more: bool, len: usize, fill: u8| {
        let mut ip = ip_packet(R0, E1, IpProtocol::Gre, 64, 0, false, &vec![fill; len]);
        ip[4..6].copy_from_slice(&ident.to_be_bytes());
        ip[6..8].copy_from_slice(&((offset / 8) | if more { 0x2000 } else { 0 }).to_be_bytes());
        Ipv4Packet::new_checked(&mut ip[..])
            .unwrap()
            .fill_checksum();
        ip
    };
    let config = ReassemblerConfig {
        max_sets: 1,
        timeout: 10,
        max_datagram: 64,
        seed: 0,
    };
    let mut out = [0u8; 200];
    let mut r = Reassembler::new(config);
    assert_eq!(r.capacity(), WAYS_FOR_TEST);
    // Timeout: the first half expires before the second arrives.
    assert_eq!(
        r.insert(&frag(1, 0, true, 16, 1), 0, &mut out),
        Ok(Reassembly::Pending)
    );
    assert_eq!(
        r.insert(&frag(1, 16, false, 4, 1), 10, &mut out),
        Ok(Reassembly::Pending)
    );
    assert_eq!(r.stats().timed_out, 1);
    assert_eq!(r.expire(20), 1);
    assert_eq!(r.in_progress(), 0);
    // Exact duplicate ignored; partial overlap drops the set.
    assert_eq!(
        r.insert(&frag(2, 0, true, 16, 1), 0, &mut out),
        Ok(Reassembly::Pending)
    );
    assert_eq!(
        r.insert(&frag(2, 0, true, 16, 9), 0, &mut out),
        Ok(Reassembly::Pending)
    );
    assert_eq!(r.stats().duplicates, 1);
    assert_eq!(
        r.insert(&frag(2, 8, true, 16, 1), 0, &mut out),
        Err(DropReason::ReassemblyOverlap)
    );
    assert_eq!(r.in_progress(), 0);
    // Contradicting ends, bad lengths, too big, output too small.
    assert_eq!(
        r.insert(&frag(3, 16, false, 8, 1), 0, &mut out),
        Ok(Reassembly::Pending)
    );
    assert_eq!(
        r.insert(&frag(3, 8, false, 8, 1), 0, &mut out),
        Err(DropReason::ReassemblyBadFragment)
    );
    assert_eq!(r.in_progress(), 0);
    assert_eq!(
        r.insert(&frag(4, 0, true, 12, 1), 0, &mut out),
        Err(DropReason::ReassemblyBadFragment)
    );
    assert_eq!(
        r.insert(&frag(4, 0, true, 0, 1), 0, &mut out),
        Err(DropReason::ReassemblyBadFragment)
    );
    assert_eq!(
        r.insert(&frag(5, 64, false, 8, 1), 0, &mut out),
        Err(DropReason::ReassemblyTooBig)
    );
    assert_eq!(
        r.insert(&frag(6, 0, true, 32, 1), 0, &mut out),
        Ok(Reassembly::Pending)
    );
    assert_eq!(
        r.insert(&frag(6, 32, false, 8, 1), 0, &mut out[..50]),
        Err(DropReason::Wire(wire::Error::BufferTooSmall))
    );
    // Eviction: a full bucket gives up its oldest set.
    for ident in 10..10 + WAYS_FOR_TEST as u16 {
        r.insert(&frag(ident, 0, true, 8, 1), 10 + u64::from(ident), &mut out)
            .unwrap();
    }
    assert_eq!(r.in_progress(), WAYS_FOR_TEST);
    r.insert(&frag(99, 0, true, 8, 1), 28, &mut out).unwrap();
    assert_eq!(r.in_progress(), WAYS_FOR_TEST);
    assert_eq!(r.stats().evicted, 1);
    // The evicted set (ident 10, the oldest) starts over; ident 11 completes.
    assert_eq!(
        r.insert(&frag(11, 8, false, 3, 2), 28, &mut out),
        Ok(Reassembly::Complete(20 + 11))
    );
    assert_eq!(&out[20..31], &[1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2]);
    // Not a fragment at all.
    assert_eq!(
        r.insert(&frag(12, 0, false, 8, 1), 28, &mut out),
        Err(DropReason::ReassemblyBadFragment)
    );
}

const WAYS_FOR_TEST: usize = reassembly::WAYS;

#[test]
fn context_select_equals_the_table_in_every_ecmp_mode() {
    use crate::route::{EcmpMode, GroupId};
    let ids: Vec<TunnelId> = (0..20).map(TunnelId).collect();
    let tunnels: Vec<(TunnelId, Tunnel)> = ids
        .iter()
        .map(|&id| {
            let ours = Ipv4Addr::new(10, 201, 0, 2 * id.0 as u8);
            (
                id,
                Tunnel::gre(
                    E1,
                    Ipv4Addr::new(198, 51, 101, id.0 as u8 + 1),
                    ours,
                    a("10.202.0.1"),
                ),
            )
        })
        .collect();
    for mode in [EcmpMode::Modulo, EcmpMode::Weighted, EcmpMode::Resilient] {
        // Prefix i is served by tunnels 0..=i: groups of 1 to 20 members.
        let mut builder = ForwardingTable::builder()
            .mode(mode)
            .tunnels(ids.iter().map(|&id| (id, Health::Healthy)));
        for i in 0..20u32 {
            for t in 0..=i {
                builder = builder.route(Route::new(0x6440_0000 | i << 8, 24, TunnelId(t), 1));
            }
        }
        let table = Arc::new(builder.build().unwrap());
        let config = ContextConfig {
            tunnels: tunnels.clone(),
            ..config(false)
        };
        let ctx = Context::new(&config, table.clone()).unwrap();
        let mut h = 0x1234_5678u32;
        for g in 0..table.stats().groups as u32 {
            for _ in 0..2000 {
                h = h.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                assert_eq!(
                    ctx.select(GroupId(g), || h),
                    table.select_in(GroupId(g), h),
                    "{mode:?}"
                );
            }
            assert_eq!(
                ctx.select(GroupId(g), || u32::MAX),
                table.select_in(GroupId(g), u32::MAX)
            );
        }
    }
}

#[test]
fn esp_to_a_local_endpoint_is_classified_by_spi() {
    let esp = |payload: &[u8]| plain(&ip_packet(R0, E1, IpProtocol::Esp, 64, 0, false, payload));
    let mut well_formed = vec![0, 0, 0x10, 0x01, 0, 0, 0, 1];
    well_formed.extend_from_slice(&[0xab; 32]);
    assert_eq!(verdict(&esp(&well_formed)), drop_(DropReason::EspNoSa));
    let mut zero_spi = well_formed.clone();
    zero_spi[..4].copy_from_slice(&[0; 4]);
    assert_eq!(
        verdict(&esp(&zero_spi)),
        drop_(crate::wire::Error::EspZeroSpi)
    );
    assert_eq!(
        verdict(&esp(&well_formed[..5])),
        drop_(crate::wire::Error::EspTruncated)
    );
}
