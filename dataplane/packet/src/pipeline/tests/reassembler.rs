//! Reassembly of outer fragments of tunnel packets before decapsulation, and the reassembler's
//! bounds (timeout, eviction, overlap, floods).

use super::*;

#[test]
fn outer_fragments_of_tunnel_packets_are_reassembled_first() {
    let inner = customer_udp("8.8.8.8", &[7; 100]);
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
    assert_eq!(verdict(&plain(&esp)), drop_(DropReason::EspUnknownSpi));
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

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
