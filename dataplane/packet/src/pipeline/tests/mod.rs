//! Tests of the whole pipeline over `VecBuf`, one file per path: [`encap`], [`decap`],
//! [`transit`], [`arp_icmp`], [`fragmentation`], [`reassembler`], [`jumbo`] (packets up to
//! 9000 bytes), plus [`classify`] (what is dropped, and never a panic) and [`setup`] (the
//! context). Each has golden frames for its paths
//! (generated with scapy by `golden.py`, checked with tshark, in [`golden`]), one test per
//! rejection rule, and property tests.
//!
//! What they share is here: the test context and outcome checks (`crate::testing`, also used by
//! the fuzz target), byte-level builders (`conduit_test_support::frames`) and the proptest
//! strategies.

use std::net::Ipv4Addr;
use std::sync::Arc;

use conduit_test_support::frames;
use proptest::prelude::*;

use super::*;
use crate::route::{ecmp, Health, NextHop, Route};
use crate::testing::{
    a, check_gre_frame, check_outcome, config, table, E1, E2, GW, P0, P1, R0, R2, T0, T1, T2, T3,
    T4, T5,
};
use crate::wire::{
    self, EthernetAddress, IcmpPacket, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, UdpPacket,
};

mod golden;
use golden::*;

mod arp_icmp;
mod classify;
mod decap;
mod encap;
mod esp;
mod fragmentation;
mod gateway;
mod jumbo;
mod reassembler;
mod setup;
mod transit;
mod validation;

const HEADROOM: usize = 128;

const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

/// The shared test context (ICMP time exceeded off).
fn ctx() -> &'static Context {
    crate::testing::context(false)
}

/// The same with ICMP time exceeded on.
fn ctx_ttl() -> &'static Context {
    crate::testing::context(true)
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

// ---- packet builders (byte-level, independent of the pipeline) ----

use frames::{gre, icmp as icmp_msg, tcp, udp};

/// An IPv4 packet with ident 0x5a5a, never a fragment.
fn ip_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    ttl: u8,
    tos: u8,
    df: bool,
    payload: &[u8],
) -> Vec<u8> {
    frames::Ipv4 {
        src,
        dst,
        protocol: protocol.into(),
        ttl,
        tos,
        ident: 0x5a5a,
        dont_frag: df,
    }
    .packet(payload)
}

/// A frame from the gateway to `dst`.
fn frame_to(dst: EthernetAddress, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    frames::ethernet(dst.0, GW.0, ethertype, payload)
}

/// An IPv4 frame from the gateway to port 0.
fn plain(ip: &[u8]) -> Vec<u8> {
    frame_to(P0, frames::ETHERTYPE_IPV4, ip)
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

/// UDP (ports 1 → 2, TTL 64, DF clear) from 172.16.1.1, a customer host behind T0, to `dst`.
fn customer_udp(dst: &str, data: &[u8]) -> Vec<u8> {
    let (src, dst) = (a("172.16.1.1"), a(dst));
    ip_packet(
        src,
        dst,
        IpProtocol::Udp,
        64,
        0,
        false,
        &udp(src, dst, 1, 2, data),
    )
}

/// `inner` in keyless GRE from T0's remote.
fn via_t0(inner: &[u8]) -> Vec<u8> {
    gre_frame(R0, E1, &gre(0, 0x0800, None, None, inner))
}

#[test]
fn byte_builders_agree_with_the_wire_emitters() {
    let (src, dst) = (a("192.0.2.1"), a("198.51.100.7"));
    for (df, tos, ttl) in [(false, 0, 64), (true, 0xb9, 1)] {
        let payload = udp(src, dst, 1, 2, b"abc");
        let mut v = vec![0; 20 + payload.len()];
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: IpProtocol::Udp,
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
        v[20..].copy_from_slice(&payload);
        assert_eq!(
            ip_packet(src, dst, IpProtocol::Udp, ttl, tos, df, &payload),
            v
        );
    }
    let mut seg = udp(src, dst, 7, 9, b"odd");
    let built = seg.clone();
    UdpPacket::new_checked(&mut seg[..])
        .unwrap()
        .fill_checksum(src, dst);
    assert_eq!(seg, built);
    let mut seg = tcp(src, dst, 7, 9, 0x02, Some(1460), true, b"data");
    let built = seg.clone();
    TcpPacket::new_checked(&mut seg[..])
        .unwrap()
        .fill_checksum(src, dst);
    assert_eq!(seg, built);
    let mut msg = icmp_msg(8, 1, 2, b"ping");
    let built = msg.clone();
    IcmpPacket::new_checked(&mut msg[..])
        .unwrap()
        .fill_checksum();
    assert_eq!(msg, built);
}

// ---- proptest strategies and the expected results they are checked against ----

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
