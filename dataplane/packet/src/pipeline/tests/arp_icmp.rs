//! What the appliance answers itself: ARP, ICMP echo (in place and through a tunnel), time
//! exceeded, and tunnel health probes handed to the control plane.

use super::*;

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
