//! A TX queue that accepts only part of a burst: the accepted prefix goes to the device, the
//! refused rest stays owned by the caller, nothing leaks and nothing is freed twice.
//!
//! net_ring's TX queue is a 1024-slot ring (1023 usable) that nobody drains until the test
//! reads it back through the RX queue, so it fills up and refuses the tail of a burst.

mod common;

use std::collections::HashSet;

use dataplane::mbuf::{Burst, Mbuf};
use dataplane::mempool::Mempool;
use dataplane::port::{find_port, Port, PortConfig};

const RING_USABLE: usize = 1023;

#[test]
fn partial_tx_leaks_nothing_and_frees_nothing_twice() {
    let _eal = common::init_eal(&["--vdev", "net_ring0"]);
    let pool = Mempool::new("t_pool", 4095, 0, 2048, -1).unwrap();
    let id = find_port("net_ring0").unwrap();
    let cfg = PortConfig {
        rx_desc: 256,
        tx_desc: 256,
        ..PortConfig::default()
    };
    let mut port = Port::configure(id, "net_ring0", &cfg, &pool).unwrap();
    port.start().unwrap();
    let mut rx = port.take_rx_queue(0).unwrap();
    let mut tx = port.take_tx_queue(0).unwrap();
    assert!(
        port.take_rx_queue(0).is_none(),
        "a queue is handed out once"
    );
    assert!(
        port.take_tx_queue(1).is_none(),
        "only configured queues exist"
    );

    // Tag every packet with a sequence number.
    let mut seq = 0u32;
    let mut fill = |b: &mut Burst, n: usize| {
        for _ in 0..n {
            let mut m = pool.alloc().unwrap();
            let mut frame = [0u8; 64];
            frame[..4].copy_from_slice(&seq.to_be_bytes());
            assert!(m.set_data(&frame));
            b.push(m).unwrap();
            seq += 1;
        }
    };

    let mut accepted = 0usize;
    let mut burst = Burst::new();
    let mut partial_seen = false;
    for _ in 0..5 {
        let room = 256 - burst.len();
        fill(&mut burst, room);
        let before = burst.len();
        let first_refused = burst
            .as_slice()
            .get(before.min(RING_USABLE - accepted))
            .map(tag);
        let n = tx.tx_burst(&mut burst);
        accepted += n;
        assert_eq!(
            burst.len(),
            before - n,
            "the refused rest stays in the burst"
        );
        if n > 0 && n < before {
            partial_seen = true;
            // The first refused packet is now at the front.
            assert_eq!(burst.as_slice().first().map(tag), first_refused);
        }
        assert_eq!(
            pool.in_use_count() as usize,
            accepted + burst.len(),
            "every mbuf is either in the ring or in the burst"
        );
    }
    assert!(partial_seen, "the ring must have refused part of a burst");
    assert_eq!(accepted, RING_USABLE);
    let held = burst.len();
    assert!(held > 0);

    // Read the ring back: every accepted packet exactly once, in order.
    let mut got = Vec::new();
    let mut rxb = Burst::new();
    loop {
        let n = rx.rx_burst(&mut rxb, 64);
        if n == 0 {
            break;
        }
        got.extend(rxb.as_slice().iter().map(tag));
        rxb.clear();
    }
    assert_eq!(got, (0..RING_USABLE as u32).collect::<Vec<_>>());

    // The refused packets are still valid and can be retried now that the ring is empty.
    let retry_tags: Vec<u32> = burst.as_slice().iter().map(tag).collect();
    let n = tx.tx_burst(&mut burst);
    assert_eq!(n, held);
    assert!(burst.is_empty());
    let n = rx.rx_burst(&mut rxb, 256);
    assert_eq!(n, held);
    assert_eq!(
        rxb.as_slice().iter().map(tag).collect::<Vec<_>>(),
        retry_tags
    );
    drop(rxb);

    assert_eq!(pool.in_use_count(), 0, "no mbuf leaked");
    // A double free would put an mbuf into the pool twice: then allocating the whole pool
    // would hand out the same buffer twice, or the pool would count more than its capacity.
    assert_eq!(pool.avail_count(), 4095);
    let all: Vec<Mbuf> = (0..4095)
        .map(|_| pool.alloc().expect("full pool"))
        .collect();
    let distinct: HashSet<usize> = all.iter().map(|m| m.data().as_ptr() as usize).collect();
    assert_eq!(distinct.len(), 4095, "every buffer handed out once");
    assert!(pool.alloc().is_none());
    drop(all);
    drop(rx);
    drop(tx);
    drop(port);
}

fn tag(m: &Mbuf) -> u32 {
    u32::from_be_bytes(m.data()[..4].try_into().unwrap())
}
