//! Packets larger than a tunnel's MTU: fragmentation needed (rate limited), or fragmentation
//! before encapsulation when DF is clear or the tunnel clears it.

use super::*;

fn too_big_in() -> Vec<u8> {
    let mut v = TOO_BIG_IN.to_vec();
    v.resize(1514, b'x');
    v
}

#[test]
fn golden_too_big_df_gets_fragmentation_needed_with_tunnel_mtu() {
    let (o, b) = run(&too_big_in());
    assert_eq!(
        o.verdict,
        Verdict::IcmpError {
            reason: DropReason::MtuExceeded,
            port: 0,
            tunnel: None
        }
    );
    assert_eq!(b.data(), &TOO_BIG_OUT[..]);
}

#[test]
fn too_big_icmp_is_rate_limited_by_the_token_bucket() {
    let mut s = state();
    let frame = too_big_in();
    let sent = |v: Verdict| matches!(v, Verdict::IcmpError { .. });
    // Burst of 2, then nothing until 100 ticks (1/10 s) have passed.
    assert!(sent(run_with(ctx(), 0, &frame, &mut s, 0).0.verdict));
    assert!(sent(run_with(ctx(), 0, &frame, &mut s, 0).0.verdict));
    assert_eq!(
        run_with(ctx(), 0, &frame, &mut s, 99).0.verdict,
        drop_(DropReason::MtuExceeded)
    );
    assert!(sent(run_with(ctx(), 0, &frame, &mut s, 100).0.verdict));
    assert_eq!(
        run_with(ctx(), 0, &frame, &mut s, 100).0.verdict,
        drop_(DropReason::MtuExceeded)
    );
}

#[test]
fn df_clear_or_clear_df_fragments_and_the_fragments_reassemble() {
    for (dst, df, tunnel) in [("172.16.1.1", false, T0), ("172.30.1.1", true, T4)] {
        let payload: Vec<u8> = (0..1600u32).map(|i| i as u8).collect();
        let inner = ip_packet(
            HOST,
            a(dst),
            IpProtocol::Udp,
            64,
            0x10,
            df,
            &udp(HOST, a(dst), 7, 8, &payload),
        );
        let (o, b) = run(&plain(&inner));
        let t = *ctx().tunnel(tunnel).unwrap();
        assert_eq!(
            o.verdict,
            Verdict::NeedsFragmentation {
                port: 0,
                tunnel,
                mtu: t.mtu
            }
        );
        let mut expected = inner.clone();
        Ipv4Packet::new_checked(&mut expected[..])
            .unwrap()
            .decrement_ttl();
        assert_eq!(b.data(), &expected[..], "TTL - 1, no Ethernet header");

        // What the worker's adapter does: fragment, encapsulate, send.
        let mut reassembler = Reassembler::new(ReassemblerConfig {
            max_sets: 4,
            timeout: 10,
            max_datagram: 4096,
            seed: 9,
        });
        let mut out = vec![0; 4096];
        let mut result = None;
        let mut s = state();
        for f in FragmentPlan::new(b.data(), t.mtu).unwrap() {
            let mut frag = VecBuf::with_tailroom(HEADROOM, &[], 2048);
            let room = frag.append(2048).unwrap();
            let n = write_fragment(b.data(), &f, room).unwrap();
            assert!(frag.trim((2048 - n) as u16));
            encapsulate(ctx(), tunnel, &mut frag, &mut s).unwrap();
            let inner = check_gre_frame(frag.data(), &t);
            let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
            assert!(!ip.dont_frag());
            assert!(inner.len() <= usize::from(t.mtu));
            if let Reassembly::Complete(n) = reassembler.insert(&inner, 0, &mut out).unwrap() {
                result = Some(n);
            }
        }
        let n = result.unwrap();
        let mut expected_no_df = expected.clone();
        expected_no_df[6] &= !0x40;
        Ipv4Packet::new_checked(&mut expected_no_df[..])
            .unwrap()
            .fill_checksum();
        assert_eq!(&out[..n], &expected_no_df[..]);
    }
    // clear_df also keeps DF off the outer header of packets that fit.
    let small = ip_packet(
        HOST,
        a("172.30.1.1"),
        IpProtocol::Udp,
        64,
        0,
        true,
        &udp(HOST, a("172.30.1.1"), 7, 8, b"s"),
    );
    let (o, b) = run(&plain(&small));
    assert_eq!(o.verdict, forward(Some(T4)));
    let outer = Ipv4Packet::new_checked(&b.data()[14..]).unwrap();
    assert!(!outer.dont_frag());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fragments_reassemble_to_the_original(
        len in 0usize..3000, mtu in 576u16..1500, options in 0usize..3,
        order in Just((0..64).collect::<Vec<usize>>()).prop_shuffle(),
        dups in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let mut ip = ip_packet(HOST, E1, IpProtocol::Gre, 64, 0, false, &payload);
        // Options: none; a copied one (loose source route) + NOP; a non-copied one (record route).
        let opts: &[u8] = match options {
            0 => &[],
            1 => &[0x83, 7, 4, 1, 2, 3, 4, 1],
            _ => &[7, 7, 4, 0, 0, 0, 0, 0],
        };
        ip.splice(20..20, opts.iter().copied());
        ip[0] = 0x40 | ((20 + opts.len()) / 4) as u8;
        let total = ip.len() as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        Ipv4Packet::new_checked(&mut ip[..]).unwrap().fill_checksum();

        let plan = FragmentPlan::new(&ip, mtu).unwrap();
        let count = plan.fragments();
        let frags: Vec<Vec<u8>> = plan.map(|f| {
            let mut out = vec![0; usize::from(mtu)];
            let n = write_fragment(&ip, &f, &mut out).unwrap();
            out.truncate(n);
            out
        }).collect();
        prop_assert_eq!(frags.len(), count);
        for (i, f) in frags.iter().enumerate() {
            let p = Ipv4Packet::new_checked(&f[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert!(f.len() <= usize::from(mtu));
            prop_assert_eq!(p.more_frags(), i + 1 < count);
            prop_assert_eq!(p.header_len(), if i == 0 || options == 1 { ip.len() - payload.len() } else { 20 });
        }
        let mut r = Reassembler::new(ReassemblerConfig { max_sets: 8, timeout: 100, max_datagram: 4096, seed: 3 });
        let mut out = vec![0; 4096];
        let mut feed: Vec<usize> = order.into_iter().filter(|&i| i < count).collect();
        for d in dups {
            feed.insert(d % (feed.len() + 1), d % count);
        }
        let mut complete = None;
        for i in feed {
            if count == 1 {
                // A single "fragment" is the whole packet, not a fragment.
                prop_assert_eq!(r.insert(&frags[i], 0, &mut out), Err(DropReason::ReassemblyBadFragment));
                complete = Some(frags[i].len());
                out[..frags[i].len()].copy_from_slice(&frags[i]);
                continue;
            }
            match r.insert(&frags[i], 0, &mut out).unwrap() {
                Reassembly::Complete(n) => { prop_assert!(complete.is_none()); complete = Some(n); }
                Reassembly::Pending => {}
            }
            if complete.is_some() { break; }
        }
        let n = complete.unwrap();
        prop_assert_eq!(&out[..n], &ip[..]);
        prop_assert_eq!(r.in_progress(), 0);
    }
}
