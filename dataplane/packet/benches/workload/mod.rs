//! The pipeline benchmark's workload, shared by `benches/pipeline.rs` (criterion and TSC) and
//! `examples/encap_icount.rs` (instruction counts) so that both measure the same packets over
//! the same tables: 64-byte UDP frames over 10,000 flows and 1,000 routes (64 GRE tunnels, every
//! 8th keyed; a quarter of the prefixes ECMP over two tunnels).
//!
//! Each measured packet is first copied from its 64-byte template into one reused buffer
//! (`VecBuf::reset`, no allocation): the pipeline rewrites its input, and a NIC writes every
//! received frame into its mbuf, so the copy stands in for the DMA. `reset_batch` measures that
//! copy alone so it can be subtracted.
#![allow(dead_code)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use conduit_packet::pipeline::{
    process, Context, ContextConfig, PacketBuf, PortConfig, TokenBucket, Tunnel, VecBuf, Verdict,
    WorkerState,
};
use conduit_packet::route::{ForwardingTable, Health, Route, TunnelId};
use conduit_packet::wire::EthernetAddress;
use conduit_test_support::frames;

pub const FLOWS: usize = 10_000;
pub const ROUTES: usize = 1_000;
pub const TUNNELS: u32 = 64;
pub const HEADROOM: usize = 128;
pub const PORT_MAC: EthernetAddress = EthernetAddress([0x02, 0xc0, 0xd0, 0, 0, 1]);
pub const GW_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0x5e, 0, 0x53, 1]);
pub const ENDPOINT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// Seeded, so every run builds the same workload.
pub use conduit_test_support::rng::SplitMix64 as Rng;

pub fn remote(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100 + (i / 200) as u8, 1 + (i % 200) as u8)
}

/// 64 tunnels (every 8th keyed) and 1,000 /24 prefixes under 100.64.0.0/10.
pub fn context() -> (Context, Vec<u32>) {
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
    let mut rng = Rng::new(1);
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

/// An IPv4 packet with TTL 64, ident 1 and DF set, as a host sends.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    frames::Ipv4::new(src, dst, protocol)
        .ident(1)
        .dont_frag(true)
        .packet(payload)
}

/// A UDP datagram of `total` IPv4 bytes (random ports, zero data).
pub fn udp_packet(rng: &mut Rng, src: Ipv4Addr, dst: Ipv4Addr, total: usize) -> Vec<u8> {
    let r = rng.next();
    let seg = frames::udp(src, dst, r as u16, (r >> 16) as u16, &vec![0; total - 28]);
    ipv4(src, dst, frames::UDP, &seg)
}

/// `ip` from the gateway to the port.
pub fn frame(ip: &[u8]) -> Vec<u8> {
    frames::ethernet(PORT_MAC.0, GW_MAC.0, frames::ETHERTYPE_IPV4, ip)
}

/// 10,000 64-byte frames of distinct flows to the customer prefixes.
pub fn encap_frames(prefixes: &[u32]) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(2);
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
pub fn decap_frames(ctx: &Context) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(3);
    (0..FLOWS)
        .map(|i| {
            let id = TunnelId(i as u32 % TUNNELS);
            let t = ctx.tunnel(id).unwrap();
            let r = rng.next();
            let src = Ipv4Addr::from(0x6440_0000 | (r as u32 & 0x003f_ffff));
            let dst = Ipv4Addr::from(0x0800_0000 | ((r >> 32) as u32 & 0x00ff_ffff));
            let inner = udp_packet(&mut rng, src, dst, 50);
            let flags = if t.key.is_some() { frames::GRE_KEY } else { 0 };
            let gre = frames::gre(flags, frames::ETHERTYPE_IPV4, t.key, None, &inner);
            frame(&ipv4(t.remote, t.local, frames::GRE, &gre))
        })
        .collect()
}

pub fn state() -> WorkerState {
    WorkerState::new(TokenBucket::new(100, 50, 1_000_000_000, 0), 0)
}

/// Processes every frame once (resetting the buffer from its template first), consuming the
/// outcome as a worker would (tx port, tunnel ids for the per-tunnel counters, length); returns
/// a value that depends on all of it so nothing is optimised away.
#[inline(never)]
pub fn run_batch(
    ctx: &Context,
    frames: &[Vec<u8>],
    buf: &mut VecBuf,
    state: &mut WorkerState,
) -> u64 {
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
pub fn reset_batch(frames: &[Vec<u8>], buf: &mut VecBuf) -> u64 {
    let mut acc = 0u64;
    for f in frames {
        buf.reset(HEADROOM, f);
        acc = acc.wrapping_add(black_box(&*buf).len() as u64);
    }
    acc
}
