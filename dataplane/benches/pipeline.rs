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

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use dataplane::pipeline::{
    process, Context, ContextConfig, PacketBuf, PortConfig, TokenBucket, Tunnel, VecBuf, Verdict,
    WorkerState,
};
use dataplane::route::{ForwardingTable, Health, Route, TunnelId};
use dataplane::wire::{self, EthernetAddress, IpProtocol, Ipv4Repr, UdpPacket};

const FLOWS: usize = 10_000;
const ROUTES: usize = 1_000;
const TUNNELS: u32 = 64;
const HEADROOM: usize = 128;
const PORT_MAC: EthernetAddress = EthernetAddress([0x02, 0xc0, 0xd0, 0, 0, 1]);
const GW_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0x5e, 0, 0x53, 1]);
const ENDPOINT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// Deterministic PRNG (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn remote(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100 + (i / 200) as u8, 1 + (i % 200) as u8)
}

/// 64 tunnels (every 8th keyed) and 1,000 /24 prefixes under 100.64.0.0/10.
fn context() -> (Context, Vec<u32>) {
    let tunnels: Vec<(TunnelId, Tunnel)> = (0..TUNNELS)
        .map(|i| {
            let ours = Ipv4Addr::new(10, 200, (i >> 7) as u8, (2 * i) as u8);
            let t = Tunnel::gre(
                ENDPOINT,
                remote(i),
                ours,
                Tunnel::peer_of(ours, 31).unwrap(),
            );
            (
                TunnelId(i),
                if i % 8 == 0 { t.with_key(1000 + i) } else { t },
            )
        })
        .collect();
    let mut rng = Rng(1);
    let mut prefixes: Vec<u32> = Vec::new();
    while prefixes.len() < ROUTES {
        let p = 0x6440_0000 | (rng.next() as u32 & 0x003f_ff00);
        if !prefixes.contains(&p) {
            prefixes.push(p);
        }
    }
    let mut routes = Vec::new();
    for (i, &p) in prefixes.iter().enumerate() {
        let t = i as u32 % TUNNELS;
        routes.push(Route::new(p, 24, TunnelId(t), 100));
        if i % 4 == 0 {
            routes.push(Route::new(p, 24, TunnelId((t + 1) % TUNNELS), 100));
        }
    }
    let table = ForwardingTable::builder()
        .tunnels(tunnels.iter().map(|&(id, _)| (id, Health::Healthy)))
        .routes(routes)
        .build()
        .unwrap();
    let config = ContextConfig {
        ports: vec![PortConfig {
            mac: PORT_MAC,
            addresses: vec![Ipv4Addr::new(192, 0, 2, 10)],
        }],
        gateway_mac: GW_MAC,
        local_endpoints: vec![ENDPOINT],
        tunnels,
        ..ContextConfig::default()
    };
    (Context::new(&config, Arc::new(table)).unwrap(), prefixes)
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0; 20 + payload.len()];
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: payload.len() as u16,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut v)
    .unwrap();
    v[20..].copy_from_slice(payload);
    v
}

/// A UDP datagram of `total` IPv4 bytes.
fn udp_packet(rng: &mut Rng, src: Ipv4Addr, dst: Ipv4Addr, total: usize) -> Vec<u8> {
    let mut seg = vec![0u8; total - 20];
    let r = rng.next();
    seg[0..2].copy_from_slice(&(r as u16).to_be_bytes());
    seg[2..4].copy_from_slice(&((r >> 16) as u16).to_be_bytes());
    let len = seg.len() as u16;
    seg[4..6].copy_from_slice(&len.to_be_bytes());
    UdpPacket::new_checked(&mut seg[..])
        .unwrap()
        .fill_checksum(src, dst);
    ipv4(src, dst, IpProtocol::Udp, &seg)
}

fn frame(ip: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + ip.len());
    v.extend_from_slice(&PORT_MAC.0);
    v.extend_from_slice(&GW_MAC.0);
    v.extend_from_slice(&0x0800u16.to_be_bytes());
    v.extend_from_slice(ip);
    v
}

/// 10,000 64-byte frames of distinct flows to the customer prefixes.
fn encap_frames(prefixes: &[u32]) -> Vec<Vec<u8>> {
    let mut rng = Rng(2);
    (0..FLOWS)
        .map(|_| {
            let r = rng.next();
            let src = Ipv4Addr::from(0x0800_0000 | (r as u32 & 0x00ff_ffff));
            let dst =
                Ipv4Addr::from(prefixes[(r >> 32) as usize % prefixes.len()] | (r >> 56) as u32);
            frame(&udp_packet(&mut rng, src, dst, 50))
        })
        .collect()
}

/// 10,000 64-byte inner packets from customers to the internet, each in GRE from its tunnel.
fn decap_frames(ctx: &Context) -> Vec<Vec<u8>> {
    let mut rng = Rng(3);
    (0..FLOWS)
        .map(|i| {
            let id = TunnelId(i as u32 % TUNNELS);
            let t = ctx.tunnel(id).unwrap();
            let r = rng.next();
            let src = Ipv4Addr::from(0x6440_0000 | (r as u32 & 0x003f_ffff));
            let dst = Ipv4Addr::from(0x0800_0000 | ((r >> 32) as u32 & 0x00ff_ffff));
            let inner = udp_packet(&mut rng, src, dst, 50);
            let mut gre = Vec::new();
            gre.extend_from_slice(&if t.key.is_some() { 0x2000u16 } else { 0 }.to_be_bytes());
            gre.extend_from_slice(&0x0800u16.to_be_bytes());
            if let Some(key) = t.key {
                gre.extend_from_slice(&key.to_be_bytes());
            }
            gre.extend_from_slice(&inner);
            frame(&ipv4(t.remote, t.local, IpProtocol::Gre, &gre))
        })
        .collect()
}

fn state() -> WorkerState {
    WorkerState::new(TokenBucket::new(100, 50, 1_000_000_000, 0), 0)
}

/// Processes every frame once (resetting the buffer from its template first), consuming the
/// outcome as a worker would (tx port, tunnel ids for the per-tunnel counters, length); returns
/// a value that depends on all of it so nothing is optimised away.
#[inline(never)]
fn run_batch(ctx: &Context, frames: &[Vec<u8>], buf: &mut VecBuf, state: &mut WorkerState) -> u64 {
    let mut acc = 0u64;
    for f in frames {
        buf.reset(HEADROOM, f);
        let o = process(ctx, 0, buf, state, 0);
        let (port, tunnel) = match o.verdict {
            Verdict::Forward { port, tunnel } => (port, tunnel),
            Verdict::Drop(reason) => (reason.index() as u16, None),
            _ => (u16::MAX, None),
        };
        acc = acc
            .wrapping_mul(31)
            .wrapping_add(u64::from(port))
            .wrapping_add(u64::from(tunnel.map_or(u32::MAX, |t| t.0)))
            .wrapping_add(u64::from(o.rx_tunnel.map_or(7, |t| t.0)))
            .wrapping_add(buf.len() as u64);
    }
    acc
}

/// The same loop without `process`.
#[inline(never)]
fn reset_batch(frames: &[Vec<u8>], buf: &mut VecBuf) -> u64 {
    let mut acc = 0u64;
    for f in frames {
        buf.reset(HEADROOM, f);
        acc = acc.wrapping_add(black_box(&*buf).len() as u64);
    }
    acc
}

#[cfg(target_arch = "x86_64")]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
fn rdtsc() -> u64 {
    Instant::now().elapsed().as_nanos() as u64
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
