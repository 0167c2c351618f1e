//! What each fuzz target does with its input: parse it with one wire parser, call every
//! accessor, and assert the invariants that must hold for *any* accepted input (emit -> parse
//! round trips, fill_checksum -> verify, incremental checksum == full recomputation). libFuzzer
//! reports a panic or a failed assertion as a crash.

use core::net::Ipv4Addr;

use conduit_packet::wire::{
    self, arp, esp, icmp, ArpPacket, ArpRepr, EspPacket, EspRepr, EtherType, EthernetFrame,
    EthernetRepr, GrePacket, GreRepr, IcmpPacket, IcmpRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, TcpPacket, UdpPacket,
};

/// Pseudo-header addresses taken from the input when it is long enough, so checksum paths see
/// varied values.
fn addrs(data: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
    let mut a = [0u8; 8];
    for (dst, src) in a.iter_mut().zip(data.iter().rev()) {
        *dst = *src;
    }
    (
        Ipv4Addr::new(a[0], a[1], a[2], a[3]),
        Ipv4Addr::new(a[4], a[5], a[6], a[7]),
    )
}

pub fn ethernet(data: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    let repr = EthernetRepr::parse(&frame);
    assert_eq!(repr.buffer_len() + frame.payload().len(), data.len());
    let mut buf = [0u8; wire::ethernet::VLAN_HEADER_LEN];
    let n = repr.emit(&mut buf).expect("buffer fits any header");
    if repr.vlan_tci.is_some() || repr.ethertype != EtherType::Vlan {
        let again = EthernetFrame::new_checked(&buf[..n]).expect("emitted header parses");
        assert_eq!(EthernetRepr::parse(&again), repr);
    }
}

pub fn arp(data: &[u8]) {
    let mut copy = data.to_vec();
    let Ok(mut packet) = ArpPacket::new_checked(&mut copy[..]) else {
        return;
    };
    let repr = ArpRepr::parse(&packet);
    let mut buf = [0u8; arp::PACKET_LEN];
    repr.emit(&mut buf).expect("fits");
    assert_eq!(&buf[..], &data[..arp::PACKET_LEN]);
    let hw = wire::EthernetAddress([2, 0, 0, 0, 0, 1]);
    match (repr.reply(hw), packet.make_reply(hw)) {
        (Some(reply), Ok(())) => assert_eq!(ArpRepr::parse(&packet), reply),
        (None, Err(_)) => {}
        other => panic!("repr and in-place reply disagree: {other:?}"),
    }
}

pub fn ipv4(data: &[u8]) {
    let mut copy = data.to_vec();
    let Ok(mut packet) = Ipv4Packet::new_checked(&mut copy[..]) else {
        return;
    };
    assert!(packet.header_len() >= 20);
    assert_eq!(
        packet.header_len() + packet.payload().len(),
        usize::from(packet.total_len())
    );
    let _ = (
        packet.options(),
        packet.dscp(),
        packet.ecn(),
        packet.is_fragment(),
    );
    if let Ok(repr) = Ipv4Repr::parse(&packet) {
        let mut buf = vec![0u8; 20 + usize::from(repr.payload_len)];
        repr.emit(&mut buf).expect("a parsed header can be emitted");
        let again = Ipv4Packet::new_checked(&buf[..]).expect("emitted header parses");
        assert_eq!(Ipv4Repr::parse(&again), Ok(repr));
        // A valid checksum stays valid, and equal to a full recomputation, after TTL - 1.
        if packet.decrement_ttl().is_some() {
            let incremental = packet.checksum();
            packet.fill_checksum();
            assert_eq!(incremental, packet.checksum());
        }
    }
    packet.fill_checksum();
    assert!(packet.verify_checksum());
    let mut out = [0u8; icmp::MAX_ERROR_LEN];
    let kind = icmp::IcmpError::FragmentationNeeded { next_hop_mtu: 1400 };
    if let Ok(n) = icmp::emit_error(kind, data, Ipv4Addr::new(192, 0, 2, 1), 64, &mut out) {
        let ip = Ipv4Packet::new_checked(&out[..n]).expect("emitted error parses");
        assert!(ip.verify_checksum());
        assert!(IcmpPacket::new_checked(ip.payload())
            .expect("icmp")
            .verify_checksum());
    }
}

pub fn ipv6(data: &[u8]) {
    let Ok(packet) = Ipv6Packet::new_checked(data) else {
        return;
    };
    let repr = Ipv6Repr::parse(&packet);
    assert_eq!(packet.payload().len(), usize::from(repr.payload_len));
    let mut buf = [0u8; wire::ipv6::HEADER_LEN];
    repr.emit(&mut buf).expect("fits");
    assert_eq!(&buf[..], &data[..wire::ipv6::HEADER_LEN]);
}

pub fn gre(data: &[u8]) {
    let mut copy = data.to_vec();
    let Ok(mut packet) = GrePacket::new_checked(&mut copy[..]) else {
        return;
    };
    assert_eq!(packet.header_len() + packet.payload().len(), data.len());
    if let Ok(repr) = GreRepr::parse(&packet) {
        let mut buf = data.to_vec();
        repr.emit(&mut buf).expect("fits");
        let again = GrePacket::new_checked(&buf[..]).expect("emitted header parses");
        assert_eq!(GreRepr::parse(&again), Ok(repr));
        assert_eq!(again.payload(), packet.payload());
    }
    packet.fill_checksum();
    assert!(packet.verify_checksum());
}

pub fn esp(data: &[u8]) {
    if let Ok(packet) = EspPacket::new_checked(data) {
        let repr = EspRepr::parse(&packet);
        assert_ne!(repr.spi, 0);
        for (iv, icv) in [(0, 0), (8, 16), (16, 12)] {
            if let Ok((a, b, c)) = packet.split_payload(iv, icv) {
                assert_eq!(a.len() + b.len() + c.len(), packet.payload().len());
            }
        }
    }
    if let Ok((payload, _)) = esp::parse_trailer(data) {
        assert!(payload.len() + 2 <= data.len());
    }
}

pub fn tcp(data: &[u8]) {
    let (src, dst) = addrs(data);
    let mut copy = data.to_vec();
    let Ok(mut packet) = TcpPacket::new_checked(&mut copy[..]) else {
        return;
    };
    let walked = packet.option_iter().take(100).count();
    assert!(walked <= 40, "the option walker must make progress");
    let _ = (
        packet.flags(),
        packet.payload(),
        packet.seq_number(),
        packet.ack_number(),
    );
    packet.fill_checksum(src, dst);
    let max = u16::from_be_bytes([data[0], data[1]]);
    match packet.clamp_mss_and_update_checksum(max) {
        Ok(Some(change)) => {
            assert_eq!(change.new, change.old.min(max));
            assert_eq!(packet.mss(), Ok(Some(change.new)));
            // All-zero segments are the one case where incremental and full forms differ.
            if packet.options().iter().any(|&b| b != 0) {
                let incremental = packet.checksum();
                packet.fill_checksum(src, dst);
                assert_eq!(incremental, packet.checksum());
            }
        }
        Ok(None) => assert_eq!(packet.mss(), Ok(None)),
        Err(e) => assert_eq!(e, wire::Error::TcpBadOption),
    }
}

pub fn udp(data: &[u8]) {
    let (src, dst) = addrs(data);
    let mut copy = data.to_vec();
    let Ok(mut packet) = UdpPacket::new_checked(&mut copy[..]) else {
        return;
    };
    assert_eq!(packet.payload().len() + 8, usize::from(packet.len()));
    let _ = packet.verify_checksum(src, dst);
    packet.fill_checksum(src, dst);
    assert!(packet.verify_checksum(src, dst));
    assert_ne!(packet.checksum(), 0);
}

pub fn icmp(data: &[u8]) {
    let mut copy = data.to_vec();
    if let Ok(mut packet) = IcmpPacket::new_checked(&mut copy[..]) {
        let parsed = IcmpRepr::parse(&packet);
        let _ = (packet.data(), packet.next_hop_mtu(), packet.echo_ident());
        if let Ok(repr) = parsed {
            let mut buf = data.to_vec();
            repr.emit(&mut buf).expect("fits");
            let again = IcmpPacket::new_checked(&buf[..]).expect("parses");
            assert_eq!(IcmpRepr::parse(&again), Ok(repr));
        }
        let _ = packet.make_echo_reply();
    }
    // The input as an IPv4 packet to answer in place.
    let mut copy = data.to_vec();
    if let Ok(n) = icmp::echo_reply_in_place(&mut copy, 64) {
        let ip = Ipv4Packet::new_checked(&copy[..n]).expect("reply parses");
        assert_eq!(ip.protocol(), IpProtocol::Icmp);
        let reply = IcmpPacket::new_checked(ip.payload()).expect("icmp");
        assert!(reply.verify_checksum());
        assert_eq!(reply.msg_type(), wire::IcmpMessage::EchoReply);
    }
}

/// Walks a frame the way the dataplane does: Ethernet, then IPv4/IPv6/ARP, then the transport
/// or tunnel header, then (for GRE) the inner packet.
fn walk(data: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    match frame.ethertype() {
        EtherType::Arp => arp(frame.payload()),
        EtherType::Ipv6 => ipv6(frame.payload()),
        EtherType::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(frame.payload()) else {
                return;
            };
            ipv4(ip.packet());
            let payload = ip.payload();
            match ip.protocol() {
                IpProtocol::Gre => {
                    gre(payload);
                    if let Ok(g) = GrePacket::new_checked(payload) {
                        ipv4(g.payload());
                        icmp(g.payload());
                    }
                }
                IpProtocol::Esp => esp(payload),
                IpProtocol::Tcp => tcp(payload),
                IpProtocol::Udp => udp(payload),
                IpProtocol::Icmp => {
                    icmp(payload);
                    icmp(ip.packet());
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// Every parser over the input, then the frame walk.
pub fn all(data: &[u8]) {
    ethernet(data);
    arp(data);
    ipv4(data);
    ipv6(data);
    gre(data);
    esp(data);
    tcp(data);
    udp(data);
    icmp(data);
    walk(data);
}
