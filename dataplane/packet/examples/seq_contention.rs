//! What an ESP sequence number costs when several workers send on one SA: every worker takes
//! the next number with one atomic add on the SA's shared counter ([`OutboundSeq`]), so when
//! two workers send on the same SA at once, the counter's cache line moves between their
//! cores on every packet.
//!
//! Measures nanoseconds per number taken, for 1 and 2 threads (one per core, pinned), each
//! either on its own SA (no sharing: the uncontended atomic add) or all on one SA (the worst
//! case: every take contended). Each thread also does some other work between takes (none,
//! and about a packet's worth), as a worker does between packets, so that the figures show what
//! the contention adds to a packet rather than to a loop that does nothing else.
//!
//! `cargo run --release -p conduit-packet --example seq_contention`

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use conduit_packet::esp::seq::OutboundSeq;

const TAKES: u64 = 5_000_000;
const PASSES: usize = 5;
/// Rounds of [`other_work`] between takes: none, about a GRE packet's worth on this kind of
/// machine (50–100 ns), and more.
const WORK: [u32; 3] = [0, 25, 60];

/// A dependent chain of integer work (about 5 cycles a round) standing in for a packet's
/// processing between two takes.
fn other_work(x: u64, rounds: u32) -> u64 {
    let mut h = x;
    for _ in 0..rounds {
        h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ 0x5bd1_e995;
    }
    h
}

/// ns per take on each of `threads` threads; `shared`: all on one counter.
fn run(threads: usize, shared: bool, work: u32) -> f64 {
    let one = Arc::new(OutboundSeq::new());
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let seq = if shared {
                Arc::clone(&one)
            } else {
                Arc::new(OutboundSeq::new())
            };
            let core = cores.get(t % cores.len().max(1)).copied();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                barrier.wait();
                let start = Instant::now();
                let mut acc = 0u64;
                for i in 0..TAKES {
                    acc = acc.wrapping_add(u64::from(seq.take().unwrap_or(0)));
                    acc = other_work(acc ^ i, work);
                }
                black_box(acc);
                start.elapsed().as_nanos() as f64 / TAKES as f64
            })
        })
        .collect();
    let per: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    per.iter().sum::<f64>() / per.len() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ns per iteration of the work alone, on one thread.
fn work_alone(work: u32) -> f64 {
    median(
        (0..PASSES)
            .map(|_| {
                let start = Instant::now();
                let mut acc = 0u64;
                for i in 0..TAKES {
                    acc = other_work(acc ^ i, work);
                }
                black_box(acc);
                start.elapsed().as_nanos() as f64 / TAKES as f64
            })
            .collect(),
    )
}

fn main() {
    let cpus = core_affinity::get_core_ids().map_or(1, |c| c.len());
    println!(
        "ns per iteration: take a sequence number, then WORK ({TAKES} iterations per thread, \
         median of {PASSES} passes; {cpus} CPUs)"
    );
    let alone: Vec<f64> = WORK.iter().map(|&w| work_alone(w)).collect();
    print!("{:<28}", "WORK alone, 1 thread");
    for a in &alone {
        print!(" {a:>10.2}");
    }
    println!();
    for (label, threads, shared) in [
        ("1 thread", 1, false),
        ("2 threads, own SA each", 2, false),
        ("2 threads, one shared SA", 2, true),
    ] {
        print!("{label:<28}");
        for &w in &WORK {
            let ns = median((0..PASSES).map(|_| run(threads, shared, w)).collect());
            print!(" {ns:>10.2}");
        }
        println!();
    }
}
