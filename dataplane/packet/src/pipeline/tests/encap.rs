//! Encapsulation: plain IPv4 from the internet to a customer prefix, out through its GRE tunnel
//! (golden frames, MSS clamping, ECMP, what `encapsulate` refuses).

use super::*;

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
fn golden_mss_clamped_on_syn_into_a_tunnel() {
    let (o, b) = run(&SYN_IN);
    assert_eq!(o.verdict, forward(Some(T0)));
    // scapy recomputed the TCP checksum from scratch: equal bytes mean the incremental update
    // equals a full recomputation.
    assert_eq!(b.data(), &SYN_OUT[..]);
}

#[test]
fn mss_clamp_matches_a_full_recompute_in_both_directions() {
    // A DF-set TCP segment from an internet host to a T2 customer.
    let into_t2 = |seg: &[u8]| {
        plain(&ip_packet(
            HOST,
            a("172.20.3.3"),
            IpProtocol::Tcp,
            64,
            0,
            true,
            seg,
        ))
    };
    for (odd, flags) in [(false, 0x02), (true, 0x12)] {
        // Into T2 (MSS 1400) from the internet.
        let seg = tcp(HOST, a("172.20.3.3"), 1234, 80, flags, Some(1460), odd, b"");
        let (o, b) = run(&into_t2(&seg));
        assert_eq!(o.verdict, forward(Some(T2)));
        let inner = check_gre_frame(b.data(), ctx().tunnel(T2).unwrap());
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
    let inner = check_gre_frame(b.data(), ctx().tunnel(T2).unwrap());
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
    let (_, b) = run(&into_t2(&seg));
    let inner = check_gre_frame(b.data(), ctx().tunnel(T2).unwrap());
    let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
    assert_eq!(ip.payload(), &seg[..]);
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
            .and_then(NextHop::tunnel)
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
            .and_then(NextHop::tunnel)
            .unwrap();
        assert!(tunnels.iter().all(|&v| v == forward(Some(by_ips))));
    }
    assert!(seen[0] > 50 && seen[1] > 50, "{seen:?}");
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
    let mut b = VecBuf::new(HEADROOM, &ip[..100]);
    assert_eq!(
        encapsulate(ctx(), T3, &mut b, &mut s),
        Err(DropReason::Wire(wire::Error::Ipv4BadTotalLength))
    );
    let small = ip_packet(HOST, a("10.50.1.1"), IpProtocol::Udp, 64, 0, false, &[0; 8]);
    let mut b = VecBuf::new(HEADROOM, &small);
    assert_eq!(
        encapsulate(ctx(), T3, &mut b, &mut s),
        Err(DropReason::EspNoSa),
        "an IPsec tunnel without an outbound SA"
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
        let got = check_gre_frame(b.data(), t);
        prop_assert_eq!(got, forwarded(&inner, &kind, effective_mss(&kind, t.mss)));
        check_outcome(ctx(), 0, HEADROOM + inner.len() + 14, &o, &b);
    }
}
