//! docs/behaviour.md §7's checks beyond the fixed IPv4 header (L4 headers, fragment lengths)
//! and §6's IPv4 options policy: each drop is counted under the packet's first defect, before
//! any route, SA or TTL decision, on plain, decapsulated and transit packets alike.

use std::sync::OnceLock;

use super::*;
use crate::pipeline::{Ipv4OptionsPolicy, OPTION_LSRR, OPTION_SSRR};

/// The shared context with `ipv4_options: forward`.
fn ctx_forward() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let config = ContextConfig {
            ipv4_options: Ipv4OptionsPolicy::Forward,
            ..config(false)
        };
        Context::new(&config, table()).unwrap()
    })
}

const MF: u16 = 0x2000;

/// An IPv4 packet with `options` (a multiple of 4 bytes), fragment field `flags` and a valid
/// header checksum.
fn ip_with(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    flags: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut p = frames::Ipv4::new(src, dst, protocol)
        .ttl(ttl)
        .packet(payload);
    let header_len = 20 + options.len();
    p.splice(20..20, options.iter().copied());
    p[0] = 0x40 | (header_len / 4) as u8;
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[6..8].copy_from_slice(&flags.to_be_bytes());
    p[10..12].fill(0);
    let ck = frames::checksum(&p[..header_len]);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    p
}

/// From a host to `dst`, TTL 64, unfragmented, no options.
fn to(dst: &str, protocol: u8, payload: &[u8]) -> Vec<u8> {
    ip_with(HOST, a(dst), protocol, 64, 0, &[], payload)
}

fn udp_to(dst: &str) -> Vec<u8> {
    udp(HOST, a(dst), 1, 2, b"payload!")
}

fn tcp_to(dst: &str) -> Vec<u8> {
    tcp(HOST, a(dst), 1, 2, 0x10, None, false, b"data")
}

/// Destinations that reach every later decision: no route, a GRE route, an IPsec route, one of
/// our addresses.
const DESTINATIONS: [&str; 4] = ["9.9.9.9", "172.16.1.1", "10.50.1.1", "203.0.113.1"];

fn w(e: wire::Error) -> Verdict {
    drop_(DropReason::Wire(e))
}

/// Each malformed L4 header against its reason, whatever the destination (plain), and inside
/// GRE from T0 (decapsulated: internet egress, or transit to T2).
#[test]
fn l4_defects_are_counted_before_route_sa_or_local_decisions() {
    for dst in DESTINATIONS.iter().chain(&["8.8.8.8", "172.20.1.1"]) {
        let cut = |mut v: Vec<u8>, n: usize| {
            v.truncate(n);
            v
        };
        let set = |mut v: Vec<u8>, at: usize, b: &[u8]| {
            v[at..at + b.len()].copy_from_slice(b);
            v
        };
        let cases: Vec<(&str, u8, Vec<u8>, Verdict)> = vec![
            (
                "TCP 19 bytes",
                6,
                cut(tcp_to(dst), 19),
                w(wire::Error::TcpTruncated),
            ),
            ("TCP empty", 6, vec![], w(wire::Error::TcpTruncated)),
            (
                "TCP offset 4",
                6,
                set(tcp_to(dst), 12, &[0x40]),
                w(wire::Error::TcpBadDataOffset),
            ),
            (
                "TCP offset 0",
                6,
                set(tcp_to(dst), 12, &[0x00]),
                w(wire::Error::TcpBadDataOffset),
            ),
            (
                "TCP offset 15",
                6,
                set(tcp_to(dst), 12, &[0xf0]),
                w(wire::Error::TcpBadDataOffset),
            ),
            (
                "UDP 7 bytes",
                17,
                cut(udp_to(dst), 7),
                w(wire::Error::UdpTruncated),
            ),
            (
                "UDP length 7",
                17,
                set(udp_to(dst), 4, &[0, 7]),
                w(wire::Error::UdpBadLength),
            ),
            (
                "UDP length 0",
                17,
                set(udp_to(dst), 4, &[0, 0]),
                w(wire::Error::UdpBadLength),
            ),
            (
                "UDP length +1",
                17,
                set(udp_to(dst), 4, &[0, 17]),
                w(wire::Error::UdpBadLength),
            ),
            (
                "ICMP 7 bytes",
                1,
                vec![8, 0, 0, 0, 0, 0, 0],
                w(wire::Error::IcmpTruncated),
            ),
            ("ICMP empty", 1, vec![], w(wire::Error::IcmpTruncated)),
        ];
        for (what, protocol, payload, expected) in cases {
            let plain_packet = to(dst, protocol, &payload);
            assert_eq!(verdict(&plain(&plain_packet)), expected, "{what} to {dst}");
            // The same inside GRE, from a customer host and with TTL 1: the L4 defect comes
            // first.
            let inner = ip_with(a("172.16.1.1"), a(dst), protocol, 1, 0, &[], &payload);
            let (o, _) = run(&via_t0(&inner));
            assert_eq!(o.verdict, expected, "{what} to {dst} in GRE");
            assert_eq!(o.rx_tunnel, Some(T0));
        }
    }
}

#[test]
fn ttl_is_still_checked_after_the_route_on_valid_packets() {
    let dying = ip_with(HOST, a("172.16.1.1"), 17, 1, 0, &[], &udp_to("172.16.1.1"));
    assert_eq!(verdict(&plain(&dying)), drop_(DropReason::TtlExceeded));
    let no_route = ip_with(HOST, a("9.9.9.9"), 17, 1, 0, &[], &udp_to("9.9.9.9"));
    assert_eq!(verdict(&plain(&no_route)), drop_(DropReason::NoRoute));
    let zero = ip_with(HOST, a("172.16.1.1"), 6, 0, 0, &[], &tcp_to("172.16.1.1"));
    assert_eq!(verdict(&plain(&zero)), drop_(DropReason::TtlExceeded));
}

#[test]
fn non_last_fragments_must_carry_multiples_of_8() {
    let bad = DropReason::Ipv4BadFragmentLength;
    for dst in DESTINATIONS {
        for (flags, len) in [(MF, 13usize), (MF, 1), (MF | 3, 15), (MF | 100, 9)] {
            let p = ip_with(HOST, a(dst), 17, 64, flags, &[], &vec![7; len]);
            assert_eq!(verdict(&plain(&p)), drop_(bad), "{dst} {flags:#x} {len}");
        }
    }
    // An outer GRE fragment from a tunnel's remote: dropped before reassembly.
    let outer = ip_with(R0, E1, 47, 64, MF, &[], &[0; 21]);
    assert_eq!(verdict(&plain(&outer)), drop_(bad));
    let aligned = ip_with(R0, E1, 47, 64, MF, &[], &[0; 24]);
    assert_eq!(verdict(&plain(&aligned)), Verdict::Reassemble);
    // Inside GRE.
    let inner = ip_with(a("172.16.1.1"), a("8.8.8.8"), 17, 64, MF | 1, &[], &[0; 12]);
    assert_eq!(run(&via_t0(&inner)).0.verdict, drop_(bad));
    // The last fragment may have any length; later fragments carry no L4 header to check.
    let last = ip_with(HOST, a("172.16.1.1"), 6, 64, 2, &[], &[1, 2, 3]);
    assert_eq!(verdict(&plain(&last)), forward(Some(T0)));
    let middle = ip_with(HOST, a("172.16.1.1"), 1, 64, MF | 2, &[], &[0; 8]);
    assert_eq!(verdict(&plain(&middle)), forward(Some(T0)));
}

#[test]
fn first_fragments_must_hold_their_l4_header() {
    let dst = "172.16.1.1";
    let first = |protocol, payload: &[u8]| ip_with(HOST, a(dst), protocol, 64, MF, &[], payload);
    let mut udp_first = udp(HOST, a(dst), 1, 2, &[0; 16]);
    udp_first[4..6].copy_from_slice(&100u16.to_be_bytes());
    let mut tcp_long = tcp_to(dst);
    tcp_long[12] = 0xf0; // 60-byte header, in a 24-byte fragment
    tcp_long.resize(24, 0);
    let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
        (
            "TCP 8 bytes",
            first(6, &tcp_to(dst)[..8]),
            w(wire::Error::TcpTruncated),
        ),
        (
            "TCP header past the fragment",
            first(6, &tcp_long),
            w(wire::Error::TcpBadDataOffset),
        ),
        (
            "UDP length 4",
            first(17, &{
                let mut u = udp_first.clone();
                u[4..6].copy_from_slice(&[0, 4]);
                u
            }),
            w(wire::Error::UdpBadLength),
        ),
        (
            "UDP length below the fragment",
            first(17, &{
                let mut u = udp_first.clone();
                u[4..6].copy_from_slice(&[0, 16]);
                u
            }),
            w(wire::Error::UdpBadLength),
        ),
        ("ICMP 0 bytes", first(1, &[]), w(wire::Error::IcmpTruncated)),
        // Valid first fragments are forwarded (the UDP length covers the whole datagram).
        ("UDP", first(17, &udp_first), forward(Some(T0))),
        (
            "TCP",
            first(6, &tcp(HOST, a(dst), 1, 2, 0x10, None, false, &[0; 20])),
            forward(Some(T0)),
        ),
        (
            "ICMP",
            first(1, &icmp_msg(8, 1, 1, &[0; 8])),
            forward(Some(T0)),
        ),
    ];
    for (what, p, expected) in cases {
        assert_eq!(verdict(&plain(&p)), expected, "{what}");
    }
}

/// Options of each kind: (what, options, under `drop`, under `forward`).
fn option_cases() -> Vec<(&'static str, Vec<u8>, DropReason, Option<DropReason>)> {
    let opts = DropReason::Ipv4Options;
    let bad = DropReason::Ipv4BadOptions;
    let sr = DropReason::Ipv4SourceRoute;
    vec![
        ("NOPs", vec![1, 1, 1, 1], opts, None),
        ("end of list only", vec![0, 0, 0, 0], opts, None),
        ("router alert", vec![0x94, 4, 0, 0], opts, None),
        ("record route", vec![7, 7, 4, 0, 0, 0, 0, 0], opts, None),
        ("unknown", vec![0x9e, 4, 1, 2], opts, None),
        ("max length", [vec![1; 39], vec![0]].concat(), opts, None),
        (
            "LSRR",
            vec![OPTION_LSRR, 7, 4, 10, 0, 0, 1, 0],
            sr,
            Some(sr),
        ),
        (
            "SSRR",
            vec![OPTION_SSRR, 7, 4, 10, 0, 0, 1, 0],
            sr,
            Some(sr),
        ),
        (
            "LSRR after NOP",
            vec![1, OPTION_LSRR, 7, 4, 10, 0, 0, 1],
            sr,
            Some(sr),
        ),
        ("length 0", vec![0x94, 0, 0, 0], bad, Some(bad)),
        ("length 1", vec![0x94, 1, 0, 0], bad, Some(bad)),
        ("past the header", vec![0x94, 8, 0, 0], bad, Some(bad)),
        ("no length byte", vec![1, 1, 1, 0x94], bad, Some(bad)),
        (
            "LSRR, bad length",
            vec![OPTION_LSRR, 9, 4, 0],
            bad,
            Some(bad),
        ),
    ]
}

#[test]
fn ipv4_options_follow_the_policy_outer_inner_and_transit() {
    for (what, options, dropped, forwarded) in option_cases() {
        let expect = |ctx: &Context, frame: &[u8], ok: Verdict, reason: Option<DropReason>| {
            let v = run_with(ctx, 0, frame, &mut state(), 0).0.verdict;
            assert_eq!(v, reason.map_or(ok, drop_), "{what}: {frame:02x?}");
        };
        // Plain to a customer route; a truncated UDP header behind the options changes nothing:
        // the options come first.
        for payload in [udp_to("172.16.1.1"), vec![0; 3]] {
            let p = ip_with(HOST, a("172.16.1.1"), 17, 64, 0, &options, &payload);
            let later = (payload.len() < 8).then_some(DropReason::Wire(wire::Error::UdpTruncated));
            expect(ctx(), &plain(&p), forward(Some(T0)), Some(dropped));
            expect(
                ctx_forward(),
                &plain(&p),
                forward(Some(T0)),
                forwarded.or(later),
            );
        }
        // Plain without a route: the options, not `no_route`.
        let p = ip_with(HOST, a("9.9.9.9"), 17, 64, 0, &options, &udp_to("9.9.9.9"));
        expect(ctx(), &plain(&p), forward(None), Some(dropped));
        expect(
            ctx_forward(),
            &plain(&p),
            forward(None),
            forwarded.or(Some(DropReason::NoRoute)),
        );
        // Outer GRE header with options (its inner packet is valid).
        let inner = customer_udp("8.8.8.8", b"x");
        let outer = ip_with(
            R0,
            E1,
            47,
            64,
            0,
            &options,
            &gre(0, 0x0800, None, None, &inner),
        );
        expect(ctx(), &plain(&outer), forward(None), Some(dropped));
        expect(ctx_forward(), &plain(&outer), forward(None), forwarded);
        // Inner packet with options: internet egress, and transit to T2.
        for (dst, ok) in [
            ("8.8.8.8", forward(None)),
            ("172.20.1.1", forward(Some(T2))),
        ] {
            let inner = ip_with(a("172.16.1.1"), a(dst), 17, 64, 0, &options, &udp_to(dst));
            expect(ctx(), &via_t0(&inner), ok, Some(dropped));
            expect(ctx_forward(), &via_t0(&inner), ok, forwarded);
        }
    }
}

#[test]
fn forwarded_options_are_unchanged() {
    let options = [0x94, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0];
    let p = ip_with(
        HOST,
        a("172.16.1.1"),
        17,
        64,
        0,
        &options,
        &udp_to("172.16.1.1"),
    );
    let (o, b) = run_with(ctx_forward(), 0, &plain(&p), &mut state(), 0);
    assert_eq!(o.verdict, forward(Some(T0)));
    let inner = check_gre_frame(b.data(), ctx().tunnel(T0).unwrap());
    assert_eq!(&inner[20..32], &options);
    assert_eq!(inner[8], 63);
    assert_eq!(&inner[32..], &p[32..]);
}

#[test]
fn header_defects_still_come_before_options_and_l4() {
    let mut p = ip_with(
        HOST,
        a("172.16.1.1"),
        17,
        64,
        0,
        &[OPTION_LSRR, 3, 4, 0],
        &[0; 3],
    );
    p[11] ^= 1;
    assert_eq!(verdict(&plain(&p)), w(wire::Error::Ipv4BadChecksum));
    let p = ip_with(
        HOST,
        a("172.16.1.1"),
        17,
        64,
        0,
        &[OPTION_LSRR, 3, 4, 0],
        &[0; 3],
    );
    assert_eq!(
        verdict(&plain(&p[..26])),
        w(wire::Error::Ipv4BadTotalLength)
    );
}
