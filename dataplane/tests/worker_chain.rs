//! A pipeline worker given chained mbufs (over a ring port, on a real EAL): a chain that fits one
//! packet buffer is made one segment, in place or by a copy, and processed whole; a longer one is
//! dropped as `frame_too_long`. Every mbuf is back in the pool at the end.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conduit_packet::pipeline::{Context, DropReason};
use conduit_packet::publish::Publisher;
use conduit_packet::testing::{self, E1, GW, P0, R0};
use conduit_test_support::frames::{self, ethernet, gre, udp, Ipv4, ETHERTYPE_IPV4};
use dataplane::lcore::LcoreId;
use dataplane::mbuf::{Burst, Mbuf};
use dataplane::mempool::Mempool;
use dataplane::port::{Port, PortConfig};
use dataplane::ring::{ring_port, Ring};
use dataplane::worker::pipeline::{data_room_for_mtu, PipelineWorker, WorkerConfig, WorkerQueues};
use dataplane::worker::Workers;

/// A GRE frame from T0's remote to its endpoint whose inner UDP packet (to the internet, so it
/// is decapsulated to the gateway) makes the frame `len` bytes long.
fn gre_frame(len: usize, sport: u16) -> (Vec<u8>, Vec<u8>) {
    let (src, dst) = (Ipv4Addr::new(172, 16, 1, 1), Ipv4Addr::new(8, 8, 8, 8));
    let data: Vec<u8> = (0..len - 14 - 24 - 28)
        .map(|i| (i * 13 + i / 256) as u8)
        .collect();
    let inner = Ipv4::new(src, dst, frames::UDP).packet(&udp(src, dst, sport, 9, &data));
    let outer = Ipv4::new(R0, E1, frames::GRE).packet(&gre(0, 0x0800, None, None, &inner));
    (ethernet(P0.0, GW.0, ETHERTYPE_IPV4, &outer), inner)
}

/// `frame` as a chain of segments of `sizes` bytes (the rest in the last). With `full_head`, the
/// first segment's data ends its buffer, so the rest cannot be pulled up into it.
fn chain(pool: &Mempool, frame: &[u8], sizes: &[usize], full_head: bool) -> Mbuf {
    let mut parts = Vec::new();
    let mut rest = frame;
    for &n in sizes {
        let (a, b) = rest.split_at(n);
        parts.push(a);
        rest = b;
    }
    parts.push(rest);
    let mut head = pool.alloc().unwrap();
    if full_head {
        let room = head.tailroom();
        head.append(room).unwrap();
        assert!(head.adj(room - parts[0].len() as u16));
        head.data_mut().copy_from_slice(parts[0]);
    } else {
        assert!(head.set_data(parts[0]));
    }
    for p in &parts[1..] {
        let mut m = pool.alloc().unwrap();
        assert!(m.set_data(p));
        head.chain(m).unwrap();
    }
    assert_eq!(head.pkt_len() as usize, frame.len());
    head
}

#[test]
fn chained_frames_are_processed_whole_or_dropped_as_too_long() {
    let eal = common::init_eal(&["-l", "0,1"]);
    let pool = Arc::new(Mempool::new("chain_pool", 255, 0, data_room_for_mtu(9000), -1).unwrap());
    let (mut to_worker, rx) = Ring::create("chain_rx", 64, -1).unwrap();
    let (tx, mut from_worker) = Ring::create("chain_tx", 64, -1).unwrap();
    let (id, rings) = ring_port("chain_ring", vec![rx], vec![tx]).unwrap();
    let cfg = PortConfig {
        rss: false,
        ..PortConfig::default()
    };
    let mut port = Port::configure(id, "chain_ring", &cfg, &pool).unwrap();
    port.start().unwrap();

    let ctx = Context::new(&testing::config(false), testing::table()).unwrap();
    let publisher = Publisher::with_capacity(ctx, 1, 1);
    let config = WorkerConfig {
        burst: 32,
        tsc_hz: eal.tsc_hz(),
        icmp_rate_per_sec: 100,
        icmp_burst: 10,
        reassembly_max_sets: 16,
        reassembly_timeout_ms: 1000,
    };
    let queues = WorkerQueues {
        rx: vec![port.take_rx_queue(0).unwrap()],
        tx: vec![port.take_tx_queue(0).unwrap()],
    };
    let worker = PipelineWorker::new(
        &config,
        0,
        queues,
        publisher.reader().unwrap(),
        Arc::clone(&pool),
    );
    let mut workers = Workers::new(1, 8);
    workers.launch_pipeline(LcoreId(1), worker).unwrap();

    let (small, small_inner) = gre_frame(2500, 1);
    let (big, big_inner) = gre_frame(9014, 2);
    let (too_long, _) = gre_frame(9300, 3);
    let mut burst = Burst::new();
    // Pulled up into the first segment's tailroom; copied into a fresh buffer; too long.
    for m in [
        chain(&pool, &small, &[1000, 1000], false),
        chain(&pool, &big, &[2048, 4096], true),
        chain(&pool, &too_long, &[8000], false),
    ] {
        burst.push(m).unwrap();
    }
    assert_eq!(to_worker.enqueue(&mut burst), 3);

    let mut out = Burst::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < 2 && Instant::now() < deadline {
        from_worker.dequeue(&mut out, 8);
    }
    let c = &workers.counters()[0];
    while c.drops.get(DropReason::FrameTooLong.index()) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(workers.stop().is_empty());
    let c = &workers.counters()[0];
    assert_eq!(c.drops.get(DropReason::FrameTooLong.index()), 1);
    let dropped: u64 = DropReason::all().map(|r| c.drops.get(r.index())).sum();
    assert_eq!(dropped, 1, "no other drop");
    assert_eq!(c.alloc_failed.get(), 0);

    assert_eq!(out.len(), 2, "both chains that fit were decapsulated");
    for (m, inner) in out.as_slice().iter().zip([&small_inner, &big_inner]) {
        assert!(!m.is_chained());
        assert_eq!(&m.data()[..6], &GW.0, "to the gateway");
        assert_eq!(m.data().len(), 14 + inner.len());
        assert_eq!(
            &m.data()[14 + 20..],
            &inner[20..],
            "UDP header and data intact"
        );
    }
    drop(out);
    drop(workers);
    port.stop().unwrap();
    drop(port);
    drop(rings);
    drop(to_worker);
    drop(from_worker);
    assert_eq!(pool.in_use_count(), 0, "every mbuf back in the pool");
}
