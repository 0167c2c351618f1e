//! Launching closures on a worker lcore: values come back through the join handle, a panic is
//! caught on the lcore and reported instead of aborting the process, and the lcore can be used
//! again afterwards.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dataplane::lcore::{self, JoinError, LcoreId};

#[test]
fn launch_join_and_catch_panics() {
    let eal = common::init_eal(&["-l", "0,1"]);
    assert_eq!(eal.main_lcore(), LcoreId(0));
    assert_eq!(eal.worker_lcores(), vec![LcoreId(1)]);
    assert!(eal.lcore_enabled(LcoreId(1)));
    assert!(!eal.lcore_enabled(LcoreId(5)));
    assert_eq!(lcore::current(), Some(LcoreId(0)));

    let h = lcore::launch(LcoreId(1), || (lcore::current(), 6 * 7)).unwrap();
    assert_eq!(h.lcore(), LcoreId(1));
    assert_eq!(h.join().unwrap(), (Some(LcoreId(1)), 42));

    let h = lcore::launch(LcoreId(1), || -> u32 { panic!("worker fell over: {}", 7) }).unwrap();
    match h.join() {
        Err(JoinError::Panicked { lcore, message }) => {
            assert_eq!(lcore, LcoreId(1));
            assert_eq!(message, "worker fell over: 7");
        }
        Ok(v) => panic!("expected a panic, got {v}"),
    }

    // The lcore is usable again, and state moves in and out through Arcs.
    let seen = Arc::new(AtomicU32::new(0));
    let s = Arc::clone(&seen);
    lcore::launch(LcoreId(1), move || s.store(99, Ordering::SeqCst))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 99);

    // The main lcore and disabled lcores cannot be launched on.
    assert!(lcore::launch(LcoreId(0), || ()).is_err());
    assert!(lcore::launch(LcoreId(3), || ()).is_err());
}
