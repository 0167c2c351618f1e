//! Table publication costs (`conduit_packet::publish`): the worker's per-burst `read()` + `quiescent()`
//! with and without a concurrent publisher, `publish` + `reclaim` on the control thread, and the
//! swap-to-effect latency (publish → a spinning reader thread has read the new generation), printed
//! as median/p99 after the criterion groups. Cycles are ns × 2.25 (TSC 2.25 GHz).
//!
//! `CARGO_TARGET_DIR=/tmp/target-publish cargo bench -p dataplane --bench publish -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use conduit_packet::publish::Publisher;
use criterion::{criterion_group, Criterion};

/// TSC frequency of the reference machine, for the cycle figures.
const TSC_GHZ: f64 = 2.25;

/// Stand-in for a forwarding table: a header the worker touches every burst.
struct Table {
    generation: u64,
    entries: [u64; 7],
}

fn table(generation: u64) -> Table {
    Table {
        generation,
        entries: [generation; 7],
    }
}

fn read_side(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish/read_side");

    let p = Publisher::new(table(0));
    let mut r = p.reader().unwrap();
    g.bench_function("read+quiescent", |b| {
        b.iter(|| {
            let t = r.read();
            black_box(t.entries[0]);
            r.quiescent();
        })
    });
    drop(r);

    // A control thread publishing as fast as the retire list allows.
    let mut p = p;
    let mut r = p.reader().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let publisher = thread::spawn(move || {
        let mut n = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            n += 1;
            if p.publish(table(n)).is_err() {
                n -= 1;
                thread::yield_now();
            }
            p.reclaim();
        }
        n
    });
    g.bench_function("read+quiescent, concurrent publisher", |b| {
        b.iter(|| {
            let t = r.read();
            black_box(t.entries[0]);
            r.quiescent();
        })
    });
    stop.store(true, Ordering::Relaxed);
    let n = publisher.join().unwrap();
    eprintln!("    (concurrent publisher made {n} publications)");
    drop(r);
    g.finish();
}

fn control_side(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish/control_side");
    let mut p = Publisher::new(table(0));
    let mut n = 0;
    g.bench_function("publish+reclaim, no reader online", |b| {
        b.iter(|| {
            n += 1;
            p.publish(table(n)).unwrap();
            black_box(p.reclaim());
        })
    });
    let mut r = p.reader().unwrap();
    g.bench_function("publish+reader quiescent+reclaim, 1 reader", |b| {
        b.iter(|| {
            n += 1;
            p.publish(table(n)).unwrap();
            black_box(r.read().generation);
            r.quiescent();
            black_box(p.reclaim());
        })
    });
    drop(r);
    g.finish();
}

criterion_group!(benches, read_side, control_side);

/// Publish, then spin on the control thread until the (single, spinning) reader thread reports the
/// new generation; `samples` times. Returns sorted latencies in ns.
fn swap_to_effect(samples: usize) -> Vec<u64> {
    let mut p = Publisher::new(table(0));
    let mut r = p.reader().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let reader = thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            black_box(r.read().entries[0]);
            r.quiescent();
        }
    });
    let mut lat = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        let g = p.publish_wait(table(0), Duration::from_secs(1)).unwrap();
        while p.min_seen_generation().is_none_or(|s| s < g) {
            std::hint::spin_loop();
        }
        lat.push(start.elapsed().as_nanos() as u64);
        p.reclaim();
        assert_eq!(p.current().generation, 0);
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    lat.sort_unstable();
    lat
}

fn main() {
    benches();
    let lat = swap_to_effect(20_000);
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    let (med, p99, max) = (pct(0.5), pct(0.99), *lat.last().unwrap());
    println!(
        "publish/swap_to_effect (1 spinning reader, {} samples): median {med} ns ({:.0} cycles), \
         p99 {p99} ns ({:.0} cycles), max {max} ns",
        lat.len(),
        med as f64 * TSC_GHZ,
        p99 as f64 * TSC_GHZ,
    );
    Criterion::default().configure_from_args().final_summary();
}
