//! Transit: GRE in from one tunnel, re-encapsulated into another (and TTL expiry on the way).

use super::*;

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
    let inner = check_gre_frame(b.data(), ctx().tunnel(T0).unwrap());
    let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (E1, a("172.16.1.1")));
    let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmp.msg_type(), wire::IcmpMessage::TimeExceeded);
    assert_eq!(&icmp.data()[..20], &dying[..20]);
}
