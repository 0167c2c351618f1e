//! Fuzzes `pipeline::process` over a fixed context (`conduit_packet::testing`, the one of the
//! pipeline's unit tests, so the golden frames in `corpus/pipeline` reach every path), then the worker-side follow-ups: outer
//! fragments into a `Reassembler` (and the reassembled datagram back into `process`), and
//! oversized packets through `FragmentPlan` / `write_fragment` / `encapsulate`.
//!
//! Input: one control byte, then frames, each as a big-endian `u16` length and that many bytes
//! (the last one takes what is left). Control bits: 0-1 rx port (2 and 3 are not configured),
//! 2 repair the outer IPv4 header checksum, 3 repair the GRE and inner IPv4 checksums (so
//! mutations get past the checksums), 4 use the context that sends ICMP time exceeded, 5-7
//! headroom (0, 8, ..., 56 bytes, or 128 for 7).
//!
//! After every call it asserts what must hold for any input (`testing::check_outcome`, as the unit
//! tests do): buffer accounting, and that whatever is to be transmitted parses with valid
//! checksums, to the gateway MAC, in the right tunnel.
#![no_main]

use conduit_packet::pipeline::{
    encapsulate, process, write_fragment, Context, FragmentPlan, Outcome, PacketBuf, Reassembler,
    ReassemblerConfig, Reassembly, TokenBucket, VecBuf, Verdict, WorkerState,
};
use conduit_packet::testing::{check_gre_frame, check_outcome, context};
use conduit_packet::wire::{checksum, Ipv4Packet};

/// Recomputes the IPv4 header checksum of the packet at the start of `ip`, if it has a header.
fn fix_ipv4(ip: &mut [u8]) {
    let ihl = usize::from(ip.first().copied().unwrap_or(0) & 0x0f) * 4;
    if ihl >= 20 && ip.len() >= ihl {
        ip[10..12].fill(0);
        let ck = checksum::checksum(&ip[..ihl]);
        ip[10..12].copy_from_slice(&ck.to_be_bytes());
    }
}

fn repair(frame: &mut [u8], outer: bool, inner: bool) {
    if frame.len() < 34 {
        return;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    if inner && frame[23] == 47 && ihl >= 20 && frame.len() >= 14 + ihl + 4 {
        let gre_off = 14 + ihl;
        let flags = u16::from_be_bytes([frame[gre_off], frame[gre_off + 1]]);
        let len = 4 + 4 * ((flags >> 15) + ((flags >> 13) & 1) + ((flags >> 12) & 1)) as usize;
        if frame.len() >= gre_off + len {
            fix_ipv4(&mut frame[gre_off + len..]);
            if flags & 0x8000 != 0 {
                frame[gre_off + 4..gre_off + 6].fill(0);
                let ck = checksum::checksum(&frame[gre_off..]);
                frame[gre_off + 4..gre_off + 6].copy_from_slice(&ck.to_be_bytes());
            }
        }
    }
    if outer {
        fix_ipv4(&mut frame[14..]);
    }
}

/// What the worker does after `process`.
fn follow_up(
    ctx: &Context,
    rx_port: u16,
    o: &Outcome,
    buf: &VecBuf,
    state: &mut WorkerState,
    reassembler: &mut Reassembler,
    now: u64,
    depth: u32,
) {
    match o.verdict {
        Verdict::NeedsFragmentation { tunnel, mtu, .. } => {
            let t = ctx.tunnel(tunnel).expect("tunnel");
            let plan = FragmentPlan::new(buf.data(), mtu).expect("plannable");
            let mut covered = 0;
            for f in plan {
                let mut frag = VecBuf::with_tailroom(64, &[], 2048);
                let room = frag.append(2048).expect("room");
                let n = write_fragment(buf.data(), &f, room).expect("fragment");
                assert!(n <= usize::from(mtu));
                assert!(frag.trim((2048 - n) as u16));
                encapsulate(ctx, tunnel, &mut frag, state).expect("encapsulate");
                check_gre_frame(frag.data(), t);
                covered += f.len;
            }
            let ip = Ipv4Packet::new_checked(buf.data()).expect("ipv4");
            assert_eq!(covered, ip.payload().len());
        }
        Verdict::Reassemble => {
            let mut out = vec![0u8; 14 + 2048 + 60];
            let fragment = buf.data().get(14..).unwrap_or(&[]);
            if let Ok(Reassembly::Complete(n)) = reassembler.insert(fragment, now, &mut out[14..]) {
                out[..14].copy_from_slice(&buf.data()[..14]);
                let datagram = Ipv4Packet::new_checked(&out[14..14 + n]).expect("reassembled");
                assert!(datagram.verify_checksum() && !datagram.is_fragment());
                if depth == 0 {
                    run_one(
                        ctx,
                        rx_port,
                        &out[..14 + n],
                        128,
                        state,
                        reassembler,
                        now,
                        depth + 1,
                    );
                }
            }
            assert!(reassembler.in_progress() <= reassembler.capacity());
        }
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    ctx: &Context,
    rx_port: u16,
    frame: &[u8],
    headroom: usize,
    state: &mut WorkerState,
    reassembler: &mut Reassembler,
    now: u64,
    depth: u32,
) {
    let mut buf = VecBuf::new(headroom, frame);
    let o = process(ctx, rx_port, &mut buf, state, now);
    check_outcome(ctx, rx_port, headroom + frame.len(), &o, &buf);
    follow_up(ctx, rx_port, &o, &buf, state, reassembler, now, depth);
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let ctx = context(control >> 4 & 1 != 0);
    let rx_port = u16::from(control & 3);
    let headroom = match control >> 5 {
        7 => 128,
        h => usize::from(h) * 8,
    };
    let mut state = WorkerState::new(TokenBucket::new(10, 2, 1000, 0), 0x0100);
    let mut reassembler = Reassembler::new(ReassemblerConfig {
        max_sets: 8,
        timeout: 100,
        max_datagram: 2048,
        seed: 7,
    });
    let mut now = 0;
    while !rest.is_empty() {
        let len = match rest {
            [hi, lo, tail @ ..] => {
                rest = tail;
                usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len())
            }
            _ => rest.len(),
        };
        let (frame, tail) = rest.split_at(len);
        rest = tail;
        let mut frame = frame.to_vec();
        repair(&mut frame, control & 4 != 0, control & 8 != 0);
        run_one(
            ctx,
            rx_port,
            &frame,
            headroom,
            &mut state,
            &mut reassembler,
            now,
            0,
        );
        now += 30;
    }
});
