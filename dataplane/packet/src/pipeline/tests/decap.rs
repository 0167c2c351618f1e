//! Decapsulation: GRE (and ESP) from a tunnel remote to a local endpoint, out to the internet
//! (golden frames, every GRE acceptance and rejection rule, ECN, round trips).

use super::*;

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

/// (description, frame, expected verdict, expected rx tunnel).
fn gre_rejections() -> Vec<(&'static str, Vec<u8>, Verdict, Option<TunnelId>)> {
    let inner = customer_udp("8.8.8.8", b"x");
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
            "ESP with an SPI of no SA",
            plain(&ip_packet(
                R0,
                E1,
                IpProtocol::Esp,
                50,
                0,
                false,
                &[0, 0, 0x10, 1, 0, 0, 0, 1],
            )),
            drop_(DropReason::EspUnknownSpi),
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
    let inner = customer_udp("8.8.8.8", b"x");
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
fn esp_to_a_local_endpoint_is_classified_by_spi() {
    let esp = |payload: &[u8]| plain(&ip_packet(R0, E1, IpProtocol::Esp, 64, 0, false, payload));
    let mut well_formed = vec![0, 0, 0x10, 0x01, 0, 0, 0, 1];
    well_formed.extend_from_slice(&[0xab; 32]);
    assert_eq!(
        verdict(&esp(&well_formed)),
        drop_(DropReason::EspUnknownSpi)
    );
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

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
        prop_assert_eq!(check_gre_frame(b2.data(), t), twice);
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
}
