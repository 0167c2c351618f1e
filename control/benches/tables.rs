//! Control-plane build costs, measured end to end from YAML text to the context the workers
//! read: parse + validate the config, build the forwarding table, build the pipeline context.
//!
//! Two shapes (issue: control plane benchmarks): 10,000 tunnels with 100,000 routes, and
//! 1,000,000 routes over 16 tunnels. Plain timing (no criterion: one build takes long enough
//! that a handful of rounds is the measurement), best and median of `ROUNDS` (default 5).
//!
//!     cargo bench -p control --bench tables

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conduit_packet::route::Health;
use conduit_packet::wire::EthernetAddress;
use control::config::Config;
use control::tables;

/// A pipeline config with `tunnels` GRE tunnels and `routes` routes spread over them
/// (every route a distinct /24 or /32 prefix, each with two equal-priority tunnels).
fn config_text(tunnels: usize, routes: usize) -> String {
    let mut s = String::with_capacity(routes * 64 + tunnels * 160);
    s.push_str(
        "dataplane:\n  ports:\n    - device: net_null0\n      ipv4: 192.0.2.10/24\n  workers: [1]\n  mode: pipeline\n\
         local_endpoints: [203.0.113.1]\n\
         gateway: { ipv4: 192.0.2.1, mac: \"02:00:5e:00:53:01\", port: net_null0 }\n\
         stats: { interval_ms: 0 }\ntunnels:\n",
    );
    for i in 0..tunnels {
        // Remote endpoints in 198.18.0.0/15 (benchmarking range), /31s in 10.0.0.0/8.
        let r = 198u32 << 24 | 18 << 16 | i as u32;
        let a = 10u32 << 24 | (2 * i as u32);
        let _ = writeln!(
            s,
            "  - {{ name: t{i}, kind: gre, local: 203.0.113.1, remote: {}, interface_address: {}/31, health_check: {{ enabled: false }} }}",
            std::net::Ipv4Addr::from(r),
            std::net::Ipv4Addr::from(a)
        );
    }
    s.push_str("routes:\n");
    for j in 0..routes {
        // Distinct prefixes: /24s from 100.0.0.0 upwards (wrapping into /32s past 16M).
        let (p, len) = if j < (1 << 16) {
            ((100u32 << 24) | ((j as u32) << 8), 24)
        } else {
            ((20u32 << 24) | (j as u32), 32)
        };
        let t = j % tunnels;
        let _ = writeln!(
            s,
            "  - {{ prefix: {}/{len}, tunnel: t{t}, priority: {} }}",
            std::net::Ipv4Addr::from(p),
            100 + (j / tunnels) % 2
        );
    }
    s
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort_unstable();
    (v[0], v[v.len() / 2])
}

fn run(name: &str, tunnels: usize, routes: usize, rounds: usize) {
    let text = config_text(tunnels, routes);
    let (mut parse, mut table, mut ctx_t, mut fail) = (vec![], vec![], vec![], vec![]);
    let mut memory = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let cfg = Config::parse(black_box(&text), Path::new("bench.yaml")).expect("valid");
        let t1 = Instant::now();
        let healthy = vec![Health::Healthy; tunnels];
        let ft = Arc::new(tables::forwarding_table(&cfg, &healthy).expect("table"));
        let t2 = Instant::now();
        memory = ft.stats().memory_bytes;
        let ctx = tables::context(
            &cfg,
            &[EthernetAddress([2, 0, 0, 0, 0, 1])],
            EthernetAddress([2, 0, 0, 0, 0, 2]),
            ft,
        )
        .expect("context");
        let t3 = Instant::now();
        black_box(&ctx);
        // A failover: one tunnel down, the table rebuilt from the parsed config (what the
        // control thread does on a state change; no parsing).
        let mut health = healthy;
        health[0] = Health::Down;
        let t4 = Instant::now();
        let ft = Arc::new(tables::forwarding_table(&cfg, &health).expect("table"));
        let ctx2 = ctx.with_table(ft).expect("context");
        fail.push(t4.elapsed());
        black_box(ctx2);
        parse.push(t1 - t0);
        table.push(t2 - t1);
        ctx_t.push(t3 - t2);
    }
    let (pb, pm) = stats(parse);
    let (tb, tm) = stats(table);
    let (cb, cm) = stats(ctx_t);
    let (fb, fm) = stats(fail);
    println!(
        "{name}: {tunnels} tunnels, {routes} routes, YAML {:.1} MiB; best/median of {rounds}:\n  \
         parse+validate {pb:.2?} / {pm:.2?}\n  forwarding table {tb:.2?} / {tm:.2?} ({:.1} MiB)\n  \
         context {cb:.2?} / {cm:.2?}\n  state-change rebuild (table + context) {fb:.2?} / {fm:.2?}",
        text.len() as f64 / (1 << 20) as f64,
        memory as f64 / (1 << 20) as f64,
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and wants it quick.
    let bench = std::env::args().any(|a| a == "--bench");
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    if bench {
        run("10k tunnels", 10_000, 100_000, rounds);
        run("1M routes", 16, 1_000_000, rounds);
    } else {
        run("smoke", 10, 100, 1);
    }
}
