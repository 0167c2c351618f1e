//! Per-packet cost of `pipeline::process` on 64-byte UDP frames over 10,000 flows and 1,000
//! routes (64 GRE tunnels, a quarter of the prefixes ECMP over two of them):
//!
//! * `encap`: plain frame → classify, route, select, TTL − 1, GRE-encapsulate (the hot path);
//! * `decap_egress`: GRE from a tunnel remote → validate, decapsulate, internet egress;
//! * `reset_only`: copying the 64-byte template into the reused buffer, which every measured
//!   iteration also does (the pipeline rewrites its input, so each packet needs fresh bytes).
//!
//! Before criterion runs, a TSC loop over 1M packets prints cycles/packet for each case with the
//! reset cost measured by the same loop alone and subtracted.
//!
//! `CARGO_TARGET_DIR=/tmp/target-pipe cargo bench -p dataplane --bench pipeline -- --warm-up-time 1 --measurement-time 3`

#[path = "workload/mod.rs"]
mod workload;

use std::hint::black_box;
use std::time::Instant;

use conduit_packet::pipeline::{process, Context, VecBuf, Verdict};
use conduit_packet::wire;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};

use workload::{
    context, decap_frames, encap_frames, reset_batch, run_batch, state, FLOWS, HEADROOM,
};

/// The CPU's time-stamp counter (quanta reads RDTSC on x86_64), so the figures are cycles as
/// DPDK's `rte_rdtsc` counts them.
fn rdtsc() -> u64 {
    thread_local!(static CLOCK: quanta::Clock = quanta::Clock::new());
    CLOCK.with(|c| c.raw())
}

/// TSC ticks per nanosecond, measured against the monotonic clock over 200 ms.
fn tsc_ghz() -> f64 {
    let (t0, c0) = (Instant::now(), rdtsc());
    while t0.elapsed().as_millis() < 200 {}
    let (c1, ns) = (rdtsc(), t0.elapsed().as_nanos());
    (c1 - c0) as f64 / ns as f64
}

fn cpuinfo_mhz() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("cpu MHz"))?;
    line.split(':').nth(1)?.trim().parse().ok()
}

/// Cycles per packet: the best of 5 passes of 1M packets (100 rounds over the 10,000 frames),
/// and the best of 300 passes of one round (10,000 packets), which a shared machine is less
/// likely to interrupt.
fn tsc_per_packet(mut round: impl FnMut() -> u64) -> (f64, f64) {
    let mut timed = |rounds: usize| {
        let c0 = rdtsc();
        let mut acc = 0;
        for _ in 0..rounds {
            acc ^= round();
        }
        let c1 = rdtsc();
        black_box(acc);
        (c1 - c0) as f64 / (rounds * FLOWS) as f64
    };
    let million = (0..5).map(|_| timed(100)).fold(f64::MAX, f64::min);
    let short = (0..300).map(|_| timed(1)).fold(f64::MAX, f64::min);
    (million, short)
}

fn tsc_report(ctx: &Context, encap: &[Vec<u8>], decap: &[Vec<u8>]) {
    let ghz = tsc_ghz();
    let mut buf = VecBuf::new(HEADROOM, &[0; 256]);
    let mut s = state();
    let reset = tsc_per_packet(|| reset_batch(encap, &mut buf));
    let enc = tsc_per_packet(|| run_batch(ctx, encap, &mut buf, &mut s));
    let dec = tsc_per_packet(|| run_batch(ctx, decap, &mut buf, &mut s));
    // The same 64 frames over and over: everything in L1, so this is the compute cost alone.
    let hot: Vec<Vec<u8>> = encap.iter().take(64).cycle().take(FLOWS).cloned().collect();
    let hot_enc = tsc_per_packet(|| run_batch(ctx, &hot, &mut buf, &mut s));
    let hot_reset = tsc_per_packet(|| reset_batch(&hot, &mut buf));
    println!(
        "TSC {ghz:.3} GHz (measured; /proc/cpuinfo says {:.0} MHz); cycles/packet, best pass",
        cpuinfo_mhz().unwrap_or(0.0)
    );
    println!("                      1M-packet passes      10k-packet passes");
    println!(
        "  reset only          {:6.1}                {:6.1}",
        reset.0, reset.1
    );
    for (name, (m, k), r) in [
        ("encap", enc, reset),
        ("decap + egress", dec, reset),
        ("encap, 64 flows", hot_enc, hot_reset),
    ] {
        println!(
            "  {name:<15} {m:6.1} - reset {:5.1}   {k:6.1} - reset {:5.1} = {:.1} ns",
            m - r.0,
            k - r.1,
            (k - r.1) / ghz
        );
    }
}

fn pipeline(c: &mut Criterion) {
    let (ctx, prefixes) = context();
    let encap = encap_frames(&prefixes);
    let decap = decap_frames(&ctx);
    // Sanity: every frame takes the path it is meant to measure.
    let mut buf = VecBuf::new(HEADROOM, &[]);
    for f in &encap {
        buf.reset(HEADROOM, f);
        let v = process(&ctx, 0, &mut buf, &mut state(), 0).verdict;
        assert!(
            matches!(
                v,
                Verdict::Forward {
                    tunnel: Some(_),
                    ..
                }
            ),
            "{v:?}"
        );
    }
    for f in &decap {
        buf.reset(HEADROOM, f);
        let v = process(&ctx, 0, &mut buf, &mut state(), 0).verdict;
        assert!(matches!(v, Verdict::Forward { tunnel: None, .. }), "{v:?}");
    }
    assert_eq!(encap[0].len(), 64);
    assert_eq!(wire::ethernet::HEADER_LEN + 20 + 8 + 22, 64);

    tsc_report(&ctx, &encap, &decap);

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(FLOWS as u64));
    let mut s = state();
    g.bench_function("encap_udp64_10k_flows", |b| {
        b.iter_batched_ref(
            || VecBuf::new(HEADROOM, &[0; 256]),
            |buf| run_batch(&ctx, &encap, buf, &mut s),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("decap_egress_udp64_10k_flows", |b| {
        b.iter_batched_ref(
            || VecBuf::new(HEADROOM, &[0; 256]),
            |buf| run_batch(&ctx, &decap, buf, &mut s),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("reset_only_10k", |b| {
        b.iter_batched_ref(
            || VecBuf::new(HEADROOM, &[0; 256]),
            |buf| reset_batch(&encap, buf),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, pipeline);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
