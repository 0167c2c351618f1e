//! Forwarding-table costs: LPM lookups at 1k / 100k / 1M prefixes (one at a time and in bursts,
//! random addresses), table build at 1M routes, and `select` per ECMP mode.
//!
//! `CARGO_TARGET_DIR=/tmp/target-route cargo bench -p dataplane --bench route -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Instant;

use conduit_packet::route::ecmp::flow_hash;
use conduit_packet::route::lpm::{mask, Lpm};
use conduit_packet::route::{EcmpMode, ForwardingTable, Health, Route, TunnelId};
use conduit_packet::wire::IpProtocol;
// Seeded, so every run measures the same tables.
use conduit_test_support::rng::SplitMix64 as Rng;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// `n` distinct prefixes with an Internet-like length mix: 60% /24, 30% /17../23, 8% /8../16,
/// 2% /25../32 (so the second level is exercised too).
fn prefixes(n: usize, seed: u64) -> Vec<(u32, u8)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n + n / 8);
    while out.len() < n {
        let r = rng.next();
        let len = match r % 100 {
            0..=59 => 24,
            60..=89 => 17 + (r >> 8) % 7,
            90..=97 => 8 + (r >> 8) % 9,
            _ => 25 + (r >> 8) % 8,
        } as u8;
        out.push(((r >> 32) as u32 & mask(len), len));
        if out.len() == n {
            out.sort_unstable();
            out.dedup();
        }
    }
    out
}

fn addresses(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.next() as u32).collect()
}

/// 1M routes: 500k prefixes, each via two of 16 tunnels at a random priority tier, one of which
/// is sometimes degraded or down.
fn routes_1m() -> (Vec<(TunnelId, Health)>, Vec<Route>) {
    let tunnels: Vec<(TunnelId, Health)> = (0..16)
        .map(|i| {
            (
                TunnelId(i),
                [
                    Health::Healthy,
                    Health::Healthy,
                    Health::Degraded,
                    Health::Down,
                ][i as usize % 4],
            )
        })
        .collect();
    let mut rng = Rng::new(7);
    let mut routes = Vec::with_capacity(1_000_000);
    for (p, len) in prefixes(500_000, 8) {
        let r = rng.next();
        let a = (r % 16) as u32;
        let b = (a + 1 + (r >> 8) as u32 % 15) % 16;
        let weight = |x: u64| 1 + (x % 4) as u16;
        routes.push(Route {
            weight: weight(r >> 16),
            ..Route::new(p, len, TunnelId(a), 100 * ((r >> 24) % 3) as u32)
        });
        routes.push(Route {
            weight: weight(r >> 20),
            ..Route::new(p, len, TunnelId(b), 100 * ((r >> 28) % 3) as u32)
        });
    }
    (tunnels, routes)
}

/// Address sets: 4096 random addresses, reused every iteration, stay cache- and TLB-resident
/// (traffic concentrated on few destinations); 2^20 random addresses touch ~1M distinct cache
/// lines of the 64 MiB first level, so most lookups miss cache and TLB (worst case).
const ADDRESS_SETS: [(&str, usize); 2] = [("hot4k", 4096), ("spread1M", 1 << 20)];

fn lpm_lookup(c: &mut Criterion) {
    for (name, n) in [("1k", 1_000), ("100k", 100_000), ("1M", 1_000_000)] {
        let entries: Vec<(u32, u8, u32)> = prefixes(n, n as u64)
            .into_iter()
            .enumerate()
            .map(|(i, (p, l))| (p, l, i as u32 % 1000))
            .collect();
        let start = Instant::now();
        let lpm = Lpm::build(&entries).unwrap();
        eprintln!(
            "lpm {name}: build {:?}, {} prefixes, {} tbl8 groups, {} MiB",
            start.elapsed(),
            lpm.len(),
            lpm.tbl8_groups(),
            lpm.memory_bytes() >> 20,
        );
        for (set, count) in ADDRESS_SETS {
            let addrs = addresses(count, 42);
            let mut g = c.benchmark_group(format!("lpm/{name}/{set}"));
            g.throughput(Throughput::Elements(count as u64));
            if count > 4096 {
                g.sample_size(20);
            }
            // Each address depends on the previous result: the latency of one lookup (what a
            // worker pays per packet when it cannot overlap them).
            g.bench_function("single_dependent", |b| {
                b.iter(|| {
                    let mut prev = 0u32;
                    for &a in black_box(&addrs) {
                        // Flip bit 12 so the first-level index (not just the last octet) depends on it.
                        prev = lpm.lookup(a ^ ((prev & 1) << 12)).unwrap_or(0);
                    }
                    prev
                })
            });
            // Independent lookups: the throughput the CPU reaches by overlapping the misses.
            g.bench_function("single_independent", |b| {
                b.iter(|| {
                    let mut acc = 0u32;
                    for &a in black_box(&addrs) {
                        acc = acc.wrapping_add(lpm.lookup(a).unwrap_or(0));
                    }
                    acc
                })
            });
            let mut out = vec![None; 32];
            g.bench_function("bulk32", |b| {
                b.iter(|| {
                    for burst in black_box(&addrs).chunks(32) {
                        lpm.lookup_bulk(burst, &mut out);
                        black_box(&out);
                    }
                })
            });
            g.finish();
        }
    }
}

fn build(c: &mut Criterion) {
    let (tunnels, routes) = routes_1m();
    let entries: Vec<(u32, u8, u32)> = prefixes(1_000_000, 9)
        .into_iter()
        .enumerate()
        .map(|(i, (p, l))| (p, l, i as u32))
        .collect();
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    g.bench_function("lpm_1M_prefixes", |b| {
        b.iter(|| Lpm::build(black_box(&entries)).unwrap())
    });
    for mode in [EcmpMode::Modulo, EcmpMode::Resilient] {
        let builder = ForwardingTable::builder()
            .mode(mode)
            .tunnels(tunnels.clone())
            .routes(routes.clone());
        let stats = builder.build().unwrap().stats();
        eprintln!("table {mode:?} 1M routes: {stats:?}");
        // Drop the 64 MiB result outside the timed region.
        g.bench_function(format!("table_1M_routes_{mode:?}"), |b| {
            b.iter_batched(
                || (),
                |()| builder.build().unwrap(),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn select(c: &mut Criterion) {
    // Spread over the whole table, as in `lpm/*/spread1M`.
    const BATCH: usize = 1 << 20;
    let (tunnels, routes) = routes_1m();
    let mut rng = Rng::new(11);
    // Destinations inside routed prefixes, so every lookup reaches a group.
    let packets: Vec<(u32, u32)> = (0..BATCH)
        .map(|_| {
            let r = &routes[(rng.next() % routes.len() as u64) as usize];
            let x = rng.next();
            let dst = r.prefix | (x as u32 & !mask(r.len));
            (
                dst,
                flow_hash(
                    (x >> 32) as u32,
                    dst,
                    IpProtocol::Tcp,
                    false,
                    (x >> 8) as u16,
                    443,
                ),
            )
        })
        .collect();
    let mut g = c.benchmark_group("select");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.bench_function("flow_hash", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for &(dst, h) in black_box(&packets) {
                acc ^= flow_hash(h, dst, IpProtocol::Tcp, false, h as u16, 443);
            }
            acc
        })
    });
    for mode in [EcmpMode::Modulo, EcmpMode::Weighted, EcmpMode::Resilient] {
        let table = ForwardingTable::builder()
            .mode(mode)
            .tunnels(tunnels.clone())
            .routes(routes.clone())
            .build()
            .unwrap();
        g.bench_function(format!("1M_routes_{mode:?}"), |b| {
            b.iter(|| {
                let mut acc = 0u32;
                for &(dst, h) in black_box(&packets) {
                    acc = acc.wrapping_add(
                        table
                            .select(dst, h)
                            .map_or(0, |t| t.tunnel().map_or(u32::MAX, |t| t.0)),
                    );
                }
                acc
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lpm_lookup, build, select);
criterion_main!(benches);
