//! Mbuf allocation, the headroom/tailroom operations and freeing, over a real EAL: whatever
//! path an mbuf takes, the pool ends up full again.

mod common;

use dataplane::mbuf::{Burst, Mbuf, MAX_BURST};
use dataplane::mempool::Mempool;

#[test]
fn alloc_free_returns_the_pool_to_full() {
    let _eal = common::init_eal(&[]);
    let pool = Mempool::new("t_pool", 1023, 32, 2048, -1).unwrap();
    assert_eq!(pool.capacity(), 1023);
    assert_eq!(pool.avail_count(), 1023);
    assert_eq!(pool.in_use_count(), 0);

    // Single mbufs: data operations keep the invariants DPDK documents.
    let mut m = pool.alloc().expect("alloc");
    assert_eq!(m.pkt_len(), 0);
    assert_eq!(m.refcnt(), 1);
    let head = m.headroom();
    assert_eq!(head, 128, "RTE_PKTMBUF_HEADROOM");
    let tail = m.tailroom();
    assert_eq!(tail, 2048);
    m.append(100).unwrap().copy_from_slice(&[7u8; 100]);
    assert_eq!(m.data(), &[7u8; 100][..]);
    m.prepend(14).unwrap().copy_from_slice(&[1u8; 14]);
    assert_eq!(m.data_len(), 114);
    assert_eq!(m.headroom(), head - 14);
    assert_eq!(&m.data()[..14], &[1u8; 14]);
    assert!(
        m.prepend(head).is_none(),
        "prepend beyond the headroom must fail"
    );
    assert!(
        m.append(tail).is_none(),
        "append beyond the tailroom must fail"
    );
    assert_eq!(m.data_len(), 114, "failed operations change nothing");
    // The exact room succeeds, one byte more fails; pkt_len follows data_len.
    let (h, t) = (m.headroom(), m.tailroom());
    assert!(m.prepend(h + 1).is_none());
    assert_eq!(m.prepend(h).map(|b| b.len()), Some(usize::from(h)));
    assert_eq!(m.headroom(), 0);
    assert_eq!(m.pkt_len(), u32::from(m.data_len()));
    assert!(m.adj(h));
    assert!(m.append(t + 1).is_none());
    assert_eq!(m.append(t).map(|b| b.len()), Some(usize::from(t)));
    assert_eq!(m.tailroom(), 0);
    assert_eq!(m.pkt_len(), u32::from(m.data_len()));
    assert!(m.trim(t));
    assert_eq!((m.headroom(), m.data_len()), (h, 114));
    assert!(m.adj(14));
    assert_eq!(m.data(), &[7u8; 100][..]);
    assert!(!m.adj(101), "adj beyond the data must fail");
    assert!(m.trim(40));
    assert_eq!(m.data_len(), 60);
    assert!(!m.trim(61));
    m.data_mut()[0] = 9;
    assert_eq!(m.data()[0], 9);
    assert!(m.set_data(&[3u8; 1500]));
    assert_eq!(m.pkt_len(), 1500);
    assert!(!m.set_data(&vec![0u8; 4000]));
    assert_eq!(pool.in_use_count(), 1);
    drop(m);
    assert_eq!(pool.in_use_count(), 0);

    // into_raw/from_raw hand ownership over without freeing.
    let raw = pool.alloc().unwrap().into_raw();
    assert_eq!(pool.in_use_count(), 1);
    // SAFETY: raw came from into_raw just above and is owned by nobody else.
    drop(unsafe { Mbuf::from_raw(raw) });
    assert_eq!(pool.in_use_count(), 0);

    // Bursts: bulk allocation, push/pop, clear and drop all free.
    let mut b = Burst::new();
    assert!(pool.alloc_bulk(&mut b, 200));
    assert_eq!(b.len(), 200);
    assert_eq!(pool.in_use_count(), 200);
    let popped = b.pop().unwrap();
    assert_eq!(b.len(), 199);
    b.push(popped).unwrap();
    assert!(
        !pool.alloc_bulk(&mut b, MAX_BURST),
        "more than the spare room is refused"
    );
    assert_eq!(pool.in_use_count(), 200);
    b.clear();
    assert_eq!(pool.in_use_count(), 0);
    {
        let mut full = Burst::new();
        assert!(pool.alloc_bulk(&mut full, MAX_BURST));
        let extra = pool.alloc().unwrap();
        let back = full.push(extra).unwrap_err();
        drop(back);
        assert_eq!(pool.in_use_count(), MAX_BURST as u32);
    }
    assert_eq!(pool.in_use_count(), 0);

    // drain() yields in order; dropping it early frees the rest and empties the burst.
    let mut b = Burst::new();
    for i in 0..10u8 {
        let mut m = pool.alloc().unwrap();
        assert!(m.set_data(&[i; 60]));
        b.push(m).unwrap();
    }
    let firsts: Vec<u8> = b.drain().take(4).map(|m| m.data()[0]).collect();
    assert_eq!(firsts, vec![0, 1, 2, 3]);
    assert!(b.is_empty());
    assert_eq!(pool.in_use_count(), 0);
    assert!(pool.alloc_bulk(&mut b, 3));
    assert_eq!(b.drain().count(), 3);
    assert_eq!(pool.in_use_count(), 0);

    // Exhaustion: every mbuf can be had exactly once, then allocation fails cleanly.
    let mut all: Vec<Mbuf> = (0..1023)
        .map(|_| pool.alloc().expect("pool has 1023"))
        .collect();
    assert!(pool.alloc().is_none());
    assert_eq!(pool.avail_count(), 0);
    all.truncate(10);
    assert_eq!(pool.in_use_count(), 10);
    drop(all);
    assert_eq!(pool.avail_count(), 1023);
}
