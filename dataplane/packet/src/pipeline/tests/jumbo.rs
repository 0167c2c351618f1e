//! Packets of a jumbo underlay (port MTU 9000) through the pipeline over `VecBuf`: no step is
//! bounded by 1500 bytes or by a 2 KiB buffer. The only bound is the reassembler's, which the
//! worker derives from its packet buffers.

use super::*;

/// The worker's reassembly bound for buffers of a 9000-byte port MTU (a 9216-byte data room
/// minus an Ethernet header and a 60-byte IPv4 header).
const JUMBO_DATAGRAM: usize = 9142;
/// A 9216-byte data room, for the fragments the worker builds.
const JUMBO_ROOM: usize = 9216;

/// A UDP packet of `len` bytes (TTL 64) whose data identifies every position.
fn udp_of_len(src: Ipv4Addr, dst: Ipv4Addr, len: usize, df: bool) -> Vec<u8> {
    let data: Vec<u8> = (0..len - 28).map(|i| (i * 7 + i / 251) as u8).collect();
    ip_packet(
        src,
        dst,
        IpProtocol::Udp,
        64,
        0,
        df,
        &udp(src, dst, 7, 8, &data),
    )
}

fn jumbo_reassembler() -> (Reassembler, Vec<u8>) {
    let r = Reassembler::new(ReassemblerConfig {
        max_sets: 4,
        timeout: 10,
        max_datagram: JUMBO_DATAGRAM,
        seed: 5,
    });
    (r, vec![0; JUMBO_DATAGRAM + 64])
}

#[test]
fn a_9000_byte_gre_packet_is_decapsulated_whole() {
    let inner = udp_of_len(a("172.16.1.1"), a("8.8.8.8"), 8976, false);
    let frame = via_t0(&inner);
    assert_eq!(frame.len(), 9014);
    let (o, b) = run(&frame);
    assert_eq!((o.verdict, o.rx_tunnel), (forward(None), Some(T0)));
    assert_eq!(b.len(), 14 + 8976);
    assert_eq!(
        &b.data()[14 + 20..],
        &inner[20..],
        "UDP header and data intact"
    );
}

#[test]
fn a_jumbo_inner_packet_is_fragmented_to_the_tunnel_mtu_or_refused_with_df() {
    let dst = a("172.16.1.1");
    let t = *ctx().tunnel(T0).unwrap();
    let too_big = udp_of_len(HOST, dst, 9000, true);
    assert!(matches!(
        run(&plain(&too_big)).0.verdict,
        Verdict::IcmpError {
            reason: DropReason::MtuExceeded,
            ..
        }
    ));

    let inner = udp_of_len(HOST, dst, 9000, false);
    let (o, b) = run(&plain(&inner));
    assert_eq!(
        o.verdict,
        Verdict::NeedsFragmentation {
            port: 0,
            tunnel: T0,
            mtu: t.mtu
        }
    );
    // What the worker does with a jumbo buffer per fragment: cut, encapsulate, send.
    let (mut r, mut out) = jumbo_reassembler();
    let mut s = state();
    let mut fragments = 0;
    let mut result = None;
    for f in FragmentPlan::new(b.data(), t.mtu).unwrap() {
        let mut frag = VecBuf::with_tailroom(HEADROOM, &[], JUMBO_ROOM);
        let room = frag.append(JUMBO_ROOM).unwrap();
        let n = write_fragment(b.data(), &f, room).unwrap();
        assert!(frag.trim((JUMBO_ROOM - n) as u16));
        encapsulate(ctx(), T0, &mut frag, &mut s).unwrap();
        let sent = check_gre_frame(frag.data(), &t);
        assert!(sent.len() <= usize::from(t.mtu));
        fragments += 1;
        if let Reassembly::Complete(n) = r.insert(&sent, 0, &mut out).unwrap() {
            result = Some(n);
        }
    }
    // 8980 bytes of payload in pieces of at most 1456 (the MTU's 1476 - 20, a multiple of 8).
    assert_eq!(fragments, 7);
    let n = result.expect("the fragments reassemble");
    assert_eq!(&out[20..n], &b.data()[20..], "every byte of the original");
}

#[test]
fn outer_fragments_of_a_jumbo_tunnel_packet_reassemble_up_to_the_bound() {
    let inner = udp_of_len(a("172.16.1.1"), a("8.8.8.8"), 8976, false);
    let outer = ip_packet(
        R0,
        E1,
        IpProtocol::Gre,
        50,
        0,
        false,
        &gre(0, 0x0800, None, None, &inner),
    );
    let feed = |outer: &[u8]| {
        let (mut r, mut out) = jumbo_reassembler();
        let mut last = Ok(Reassembly::Pending);
        for f in FragmentPlan::new(outer, 1500).unwrap() {
            let mut frag = vec![0; 1500];
            let n = write_fragment(outer, &f, &mut frag).unwrap();
            let frame = plain(&frag[..n]);
            assert_eq!(verdict(&frame), Verdict::Reassemble);
            last = r.insert(&frame[14..], 0, &mut out);
            if last.is_err() {
                break;
            }
        }
        last.map(|done| match done {
            Reassembly::Complete(n) => out[..n].to_vec(),
            Reassembly::Pending => panic!("incomplete"),
        })
    };
    let whole = feed(&outer).unwrap();
    assert_eq!(whole, outer);
    let (o, b) = run(&plain(&whole));
    assert_eq!((o.verdict, o.rx_tunnel), (forward(None), Some(T0)));
    assert_eq!(b.len(), 14 + 8976);

    // The bound is on the payload: exactly JUMBO_DATAGRAM bytes fit, one more does not.
    let payload = |len: usize| ip_packet(R0, E1, IpProtocol::Gre, 50, 0, false, &vec![3; len]);
    assert!(feed(&payload(JUMBO_DATAGRAM)).is_ok());
    assert_eq!(
        feed(&payload(JUMBO_DATAGRAM + 1)),
        Err(DropReason::ReassemblyTooBig)
    );
}
