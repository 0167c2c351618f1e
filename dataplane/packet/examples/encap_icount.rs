//! A deterministic measure of the pipeline's cost: runs the pipeline bench's workload
//! (`benches/workload`: 64-byte UDP frames, 10,000 flows, 1,000 routes) through `process` a given
//! number of times, so that a counter outside the process can divide by the packet count.
//!
//! ```sh
//! encap_icount MODE PASSES     # MODE: encap | decap | reset; one pass = 10,000 packets
//! ```
//!
//! It first builds the workload and runs one unmeasured pass (page faults, first touches), then
//! `PASSES` passes inside `measured_passes`, which callgrind can isolate with
//! `--toggle-collect`. `scripts/icount.sh` does that and prints instructions per packet
//! (and, where the VM exposes hardware counters, user-mode cycles per packet from `perf stat`
//! as the difference between `PASSES` and zero passes).
//!
//! `reset` is the copy of each 64-byte template into the buffer alone (the stand-in for the
//! NIC writing the mbuf), which every `encap` and `decap` packet also pays.

#[path = "../benches/workload/mod.rs"]
mod workload;

use std::hint::black_box;

use conduit_packet::pipeline::{Context, VecBuf, WorkerState};

use workload::{context, decap_frames, encap_frames, reset_batch, run_batch, state, HEADROOM};

#[derive(Clone, Copy)]
enum Mode {
    Encap,
    Decap,
    Reset,
}

/// The measured region: `passes` rounds over `frames`.
#[inline(never)]
fn measured_passes(
    mode: Mode,
    passes: usize,
    ctx: &Context,
    frames: &[Vec<u8>],
    buf: &mut VecBuf,
    s: &mut WorkerState,
) -> u64 {
    let mut acc = 0u64;
    for _ in 0..passes {
        acc ^= match mode {
            Mode::Reset => reset_batch(frames, buf),
            Mode::Encap | Mode::Decap => run_batch(ctx, frames, buf, s),
        };
    }
    acc
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: encap_icount encap|decap|reset PASSES";
    let mode = match args.next().as_deref() {
        Some("encap") => Mode::Encap,
        Some("decap") => Mode::Decap,
        Some("reset") => Mode::Reset,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let passes: usize = match args.next().map(|p| p.parse()) {
        Some(Ok(p)) => p,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let (ctx, prefixes) = context();
    let frames = match mode {
        Mode::Encap | Mode::Reset => encap_frames(&prefixes),
        Mode::Decap => decap_frames(&ctx),
    };
    let mut buf = VecBuf::new(HEADROOM, &[0; 256]);
    let mut s = state();
    let warm = match mode {
        Mode::Reset => reset_batch(&frames, &mut buf),
        Mode::Encap | Mode::Decap => run_batch(&ctx, &frames, &mut buf, &mut s),
    };
    let acc = measured_passes(mode, passes, &ctx, &frames, &mut buf, &mut s);
    black_box(warm ^ acc);
    println!("{} packets", passes * frames.len());
}
