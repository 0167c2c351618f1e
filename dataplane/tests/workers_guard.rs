//! The `Workers` guard: workers poll until stopped, a panic is reported by `stop`, and dropping
//! the guard (an early return, a panic on the main lcore) stops and joins them, leaving the
//! lcore free for the next launch.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::lcore::LcoreId;
use dataplane::worker::Workers;

/// Launches a worker that counts its turns until stopped; returns the count.
fn spin(workers: &mut Workers) -> Arc<AtomicU64> {
    let turns = Arc::new(AtomicU64::new(0));
    let t = Arc::clone(&turns);
    workers
        .launch(LcoreId(1), move |stop: &AtomicBool, c| {
            while !stop.load(Ordering::Relaxed) {
                t.fetch_add(1, Ordering::Relaxed);
                c.core.polls.add(1);
            }
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while turns.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the worker never ran");
        std::thread::yield_now();
    }
    turns
}

#[test]
fn stop_join_and_drop() {
    let _eal = common::init_eal(&["-l", "0,1"]);

    let mut workers = Workers::new(1, 4);
    let turns = spin(&mut workers);
    assert!(workers.stop().is_empty());
    let after = turns.load(Ordering::Relaxed);
    assert!(workers.counters()[0].core.snapshot().polls >= after);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        turns.load(Ordering::Relaxed),
        after,
        "stopped means stopped"
    );

    // Dropping the guard stops and joins: the lcore can be launched on at once.
    let workers = {
        let mut w = Workers::new(1, 4);
        spin(&mut w);
        w
    };
    drop(workers);
    let mut workers = Workers::new(1, 4);
    let turns = spin(&mut workers);
    drop(workers);
    let after = turns.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(turns.load(Ordering::Relaxed), after);

    // A worker's panic comes back from stop(), with its lcore.
    let mut workers = Workers::new(1, 4);
    workers
        .launch(LcoreId(1), |_, _| panic!("worker fell over"))
        .unwrap();
    let errors = workers.stop();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].lcore(), LcoreId(1));
    assert!(errors[0].to_string().contains("worker fell over"));
}
