//! Frames that are not for us or are malformed: dropped by reason, and never a panic whatever
//! the bytes.

use super::*;

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
        let inner = customer_udp(dst, b"");
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

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
}
