//! Chained mbufs made one segment (`Mbuf::linearize`) over a real EAL: frames of 2,500 and
//! 9,000 bytes that net_pcap delivers as chains of 2 KiB buffers, and chains built by hand. Every
//! byte survives, and every pool is full again at the end.

mod common;

use std::time::{Duration, Instant};

use conduit_test_support::pcap::write_pcap;
use dataplane::mbuf::{Burst, LinearizeError, Mbuf};
use dataplane::mempool::{Mempool, DEFAULT_DATA_ROOM};
use dataplane::port::{find_port, Port, PortConfig};
use dataplane::worker::pipeline::data_room_for_mtu;

/// A frame of `len` bytes whose content identifies every position (so a segment copied to the
/// wrong place or twice shows).
fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 8) as u8)
        .collect()
}

/// Receives exactly `n` packets from `port`'s queue 0 (net_pcap reads its file on demand).
fn receive(port: &mut Port, n: usize) -> Burst {
    let mut rx = port.take_rx_queue(0).unwrap();
    let mut burst = Burst::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while burst.len() < n && Instant::now() < deadline {
        let want = n - burst.len();
        rx.rx_burst(&mut burst, want);
    }
    assert_eq!(burst.len(), n, "packets received");
    burst
}

#[test]
fn net_pcap_chains_are_linearised_into_one_jumbo_buffer() {
    let dir = std::env::temp_dir().join(format!("conduit-mbuf-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.pcap");
    let frames = vec![
        frame(100, 1),
        frame(2500, 2),
        frame(9000, 3),
        frame(2049, 4),
    ];
    write_pcap(&input, &frames);
    let vdev = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        dir.join("out.pcap").display()
    );
    let _eal = common::init_eal(&["--vdev", &vdev]);

    // The port receives into 2 KiB buffers, so net_pcap chains whatever is longer.
    let small = Mempool::new("rx_small", 511, 0, DEFAULT_DATA_ROOM, -1).unwrap();
    let jumbo = Mempool::new("jumbo", 63, 0, data_room_for_mtu(9000), -1).unwrap();
    assert_eq!(jumbo.data_room(), 9216);
    let cfg = PortConfig {
        rss: false,
        ..PortConfig::default()
    };
    let mut port = Port::configure(find_port("net_pcap0").unwrap(), "net_pcap0", &cfg, &small)
        .expect("configure");
    port.start().unwrap();
    let mut burst = receive(&mut port, frames.len());

    let segs: Vec<u16> = burst.as_slice().iter().map(Mbuf::nb_segs).collect();
    assert_eq!(segs, [1, 2, 5, 2], "net_pcap's chains of 2 KiB buffers");

    let mut whole = Vec::new();
    for (m, want) in burst.drain().zip(&frames) {
        assert_eq!(m.pkt_len() as usize, want.len());
        // Too long for one buffer of the receive pool: handed back untouched.
        let m = if m.is_chained() {
            let (m, why) = m.linearize(&small).unwrap_err();
            assert_eq!(why, LinearizeError::TooLong);
            assert_eq!(m.pkt_len() as usize, want.len());
            m
        } else {
            m
        };
        let m = m.linearize(&jumbo).expect("fits a jumbo buffer");
        assert!(!m.is_chained());
        assert_eq!(m.data(), &want[..], "every byte, in order");
        whole.push(m);
    }
    // The chains went back to the receive pool as they were copied out.
    assert_eq!(
        small.in_use_count(),
        1,
        "only the one-segment frame is still out"
    );
    assert_eq!(jumbo.in_use_count(), 3, "one jumbo buffer per copied chain");
    drop(whole);
    assert_eq!(jumbo.in_use_count(), 0);
    port.stop().unwrap();
    drop(port);
    assert_eq!(small.in_use_count(), 0, "receive pool full again");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chains_are_pulled_up_in_place_or_handed_back() {
    let _eal = common::init_eal(&[]);
    let pool = Mempool::new("chain", 63, 0, data_room_for_mtu(9000), -1).unwrap();
    let want = frame(9000, 7);

    // Three segments whose first buffer has room for all: pulled up without a new buffer.
    let mut parts = want.chunks(4000).map(|chunk| {
        let mut m = pool.alloc().unwrap();
        assert!(m.set_data(chunk));
        m
    });
    let mut head = parts.next().unwrap();
    for m in parts {
        head.chain(m).unwrap();
    }
    assert_eq!((head.nb_segs(), head.pkt_len()), (3, 9000));
    assert_eq!(pool.in_use_count(), 3);
    let head = head.linearize(&pool).expect("in place");
    assert_eq!((head.nb_segs(), head.data_len()), (1, 9000));
    assert_eq!(head.data(), &want[..]);
    assert_eq!(pool.in_use_count(), 1, "the later segments were freed");
    drop(head);

    // A first segment whose data ends its buffer: the chain is copied into a fresh buffer, and
    // comes back whole while the pool is empty.
    let mut head = pool.alloc().unwrap();
    let room = head.tailroom();
    head.append(room).unwrap();
    assert!(head.adj(room - 4000));
    assert_eq!(head.tailroom(), 0);
    head.data_mut().copy_from_slice(&want[..4000]);
    let mut tail = pool.alloc().unwrap();
    assert!(tail.set_data(&want[4000..]));
    head.chain(tail).unwrap();
    let mut out = Vec::new();
    while let Some(m) = pool.alloc() {
        out.push(m);
    }
    let (head, why) = head.linearize(&pool).unwrap_err();
    assert_eq!(why, LinearizeError::NoMbuf);
    assert_eq!(
        (head.nb_segs(), head.pkt_len()),
        (2, 9000),
        "handed back whole"
    );
    drop(out);
    let head = head.linearize(&pool).expect("copied");
    assert_eq!((head.nb_segs(), head.data_len()), (1, 9000));
    assert_eq!(head.data(), &want[..]);
    assert_eq!(pool.in_use_count(), 1, "the chain was freed");
    drop(head);
    assert_eq!(pool.in_use_count(), 0, "pool full again");
}
