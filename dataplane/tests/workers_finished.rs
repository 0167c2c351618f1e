//! Noticing a dead worker without blocking: `JoinHandle::is_finished` turns true once the
//! launched closure has returned or panicked, and `Workers::finished_early` names a worker whose
//! loop ended although nobody stopped it (and none once a stop was asked for).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::lcore::{self, LcoreId};
use dataplane::worker::Workers;

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn finished_is_seen_without_joining() {
    let _eal = common::init_eal(&["-l", "0,1"]);

    // A closure held on a flag: not finished until released.
    let release = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&release);
    let h = lcore::launch(LcoreId(1), move || {
        while !r.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
        7
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(!h.is_finished());
    release.store(true, Ordering::Relaxed);
    eventually("finished", || h.is_finished());
    assert_eq!(h.join().unwrap(), 7);

    // A panicking closure counts as finished too.
    let h = lcore::launch(LcoreId(1), || -> u32 { panic!("down") }).unwrap();
    eventually("finished after a panic", || h.is_finished());
    assert!(h.join().is_err());

    // A worker whose loop panics is named by finished_early, and reported by stop.
    let mut workers = Workers::new(1, 4);
    workers
        .launch(LcoreId(1), |_stop: &AtomicBool, _c| panic!("worker down"))
        .unwrap();
    eventually("finished_early", || {
        workers.finished_early() == Some(LcoreId(1))
    });
    let errors = workers.stop();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains("worker down"),
        "{}",
        errors[0]
    );

    // A worker that is running, then stopped, never counts as finished early.
    let mut workers = Workers::new(1, 4);
    workers
        .launch(LcoreId(1), |stop: &AtomicBool, _c| {
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(workers.finished_early(), None);
    assert!(workers.stop().is_empty());
    assert_eq!(workers.finished_early(), None);
}
