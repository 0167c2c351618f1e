//! Routes whose next hop is the gateway (docs/behaviour.md §3): plain IPv4 forwarded
//! unencapsulated, TTL − 1, to the gateway's MAC; longest prefix still wins; a tie with a tunnel
//! is ECMP; the gateway is never penalised.

use super::*;
use crate::route::NextHop;

/// The shared test tables plus `0.0.0.0/0` via the gateway (priority 100) and, when `tie`,
/// `8.8.0.0/16` via the gateway and via T1 at the same priority, T1 in health `t1`.
fn gateway_ctx(ttl_exceeded: bool, tie: bool, t1: Health) -> Context {
    let route = |p: &str, len, hop: NextHop| Route::new(u32::from(a(p)), len, hop, 100);
    let mut b = ForwardingTable::builder()
        .tunnels(crate::testing::tunnels().into_iter().map(|(id, _)| {
            let h = if id == T1 { t1 } else { Health::Healthy };
            (id, h)
        }))
        .route(route("0.0.0.0", 0, NextHop::Gateway))
        .route(route("172.16.0.0", 16, T0.into()));
    if tie {
        b = b
            .route(route("8.8.0.0", 16, NextHop::Gateway))
            .route(route("8.8.0.0", 16, T1.into()));
    }
    let table = Arc::new(b.build().unwrap());
    Context::new(&crate::testing::config(ttl_exceeded), table).unwrap()
}

fn run_on(ctx: &Context, frame: &[u8]) -> (Outcome, VecBuf) {
    let capacity = HEADROOM + frame.len();
    let (o, b) = run_with(ctx, 0, frame, &mut state(), 0);
    crate::testing::check_outcome(ctx, 0, capacity, &o, &b);
    (o, b)
}

/// `ip` as it must leave towards the gateway: the gateway's Ethernet header from port 0, and
/// the packet with TTL − 1 and a correct checksum, nothing else changed.
fn expected_egress(ip: &[u8]) -> Vec<u8> {
    frames::ethernet(
        GW.0,
        P0.0,
        frames::ETHERTYPE_IPV4,
        &forwarded(ip, &L4Kind::Udp, 0),
    )
}

#[test]
fn plain_traffic_follows_a_default_route_to_the_gateway() {
    let ctx = gateway_ctx(false, false, Health::Healthy);
    let ip = customer_udp("8.8.8.8", b"to the internet");
    let (o, b) = run_on(&ctx, &plain(&ip));
    assert_eq!(o.verdict, forward(None));
    assert_eq!(o.rx_tunnel, None);
    assert_eq!(b.data(), &expected_egress(&ip)[..]);
    // The incremental checksum equals a full recomputation (`forwarded` fills it afresh).
    let out = Ipv4Packet::new_checked(&b.data()[14..]).unwrap();
    assert!(out.verify_checksum());
    assert_eq!(out.ttl(), 63);
}

#[test]
fn a_longer_tunnel_prefix_beats_the_default_gateway_route() {
    let ctx = gateway_ctx(false, false, Health::Healthy);
    let (o, b) = run_on(&ctx, &plain(&customer_udp("172.16.9.9", b"x")));
    assert_eq!(o.verdict, forward(Some(T0)));
    check_gre_frame(b.data(), ctx.tunnel(T0).unwrap());
    // Without the default route the same internet packet is `no_route`, as before.
    assert_eq!(
        verdict(&plain(&customer_udp("8.8.8.8", b"x"))),
        drop_(DropReason::NoRoute)
    );
}

#[test]
fn gateway_route_rules_ttl_martians_and_mss() {
    let ctx = gateway_ctx(false, false, Health::Healthy);
    // TTL 1: dropped as `ttl_exceeded` (silently, or with an ICMP error from a local endpoint).
    let dying = ip_packet(
        HOST,
        a("8.8.8.8"),
        IpProtocol::Udp,
        1,
        0,
        false,
        &udp(HOST, a("8.8.8.8"), 1, 2, b"x"),
    );
    let (o, _) = run_on(&ctx, &plain(&dying));
    assert_eq!(o.verdict, drop_(DropReason::TtlExceeded));
    let with_icmp = gateway_ctx(true, false, Health::Healthy);
    let (o, b) = run_on(&with_icmp, &plain(&dying));
    assert_eq!(
        o.verdict,
        Verdict::IcmpError {
            reason: DropReason::TtlExceeded,
            port: 0,
            tunnel: None
        }
    );
    let err = Ipv4Packet::new_checked(&b.data()[14..]).unwrap();
    assert_eq!((err.src_addr(), err.dst_addr()), (E1, HOST));
    // Martian destinations never go to the internet, even through a default route.
    for dst in ["127.0.0.1", "240.0.0.1", "224.0.0.5", "0.1.2.3"] {
        let (o, _) = run_on(&ctx, &plain(&customer_udp(dst, b"x")));
        assert_eq!(o.verdict, drop_(DropReason::MartianDestination), "{dst}");
    }
    // A plain SYN crosses no tunnel: its MSS is left alone, only the TTL changes.
    let (src, dst) = (HOST, a("8.8.4.4"));
    let syn = ip_packet(
        src,
        dst,
        IpProtocol::Tcp,
        64,
        0,
        true,
        &tcp(src, dst, 4000, 443, 0x02, Some(8960), false, b""),
    );
    let (o, b) = run_on(&ctx, &plain(&syn));
    assert_eq!(o.verdict, forward(None));
    assert_eq!(b.data(), &expected_egress(&syn)[..]);
}

#[test]
fn decapsulated_traffic_to_a_gateway_route_is_internet_egress() {
    // The same result as with no route at all (the shared context): TTL − 1, MSS of the
    // tunnel it came out of.
    let inner = customer_udp("8.8.8.8", b"out");
    let (o, b) = run_on(&gateway_ctx(false, false, Health::Healthy), &via_t0(&inner));
    let (o0, b0) = run(&via_t0(&inner));
    assert_eq!((o, b.data()), (o0, b0.data()));
    assert_eq!(o.verdict, forward(None));
    assert_eq!(o.rx_tunnel, Some(T0));
}

#[test]
fn gateway_ties_with_a_tunnel_and_is_never_penalised() {
    let flows = |ctx: &Context| -> [usize; 2] {
        let mut n = [0; 2];
        for i in 0..400u16 {
            let dst = Ipv4Addr::new(8, 8, (i >> 8) as u8, i as u8);
            let seg = udp(HOST, dst, 1000 + i, 53, b"q");
            let frame = plain(&ip_packet(HOST, dst, IpProtocol::Udp, 64, 0, false, &seg));
            match run_on(ctx, &frame).0.verdict {
                Verdict::Forward { tunnel: None, .. } => n[0] += 1,
                Verdict::Forward {
                    tunnel: Some(T1), ..
                } => n[1] += 1,
                v => panic!("{v:?}"),
            }
        }
        n
    };
    // Equal priority: ECMP over the gateway and T1.
    let both = flows(&gateway_ctx(false, true, Health::Healthy));
    assert!(both[0] > 100 && both[1] > 100, "{both:?}");
    // T1 down: its penalty moves everything to the gateway, which has none.
    for h in [Health::Degraded, Health::Down] {
        let ctx = gateway_ctx(false, true, h);
        assert_eq!(flows(&ctx), [400, 0], "{h:?}");
        let u = ctx.table().describe(u32::from(a("8.8.0.0")), 16).unwrap();
        assert_eq!(u.tunnels, &[NextHop::Gateway]);
        assert_eq!(u.effective_priority, 100);
    }
}
