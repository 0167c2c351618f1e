//! Helpers for tests that run the `conduit` binary: a pcap reader/writer (from
//! `conduit-test-support`) and EAL arguments for a private, hugepage-free, PCI-free instance.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

#[allow(unused_imports)] // not every test binary reads or writes captures
pub use conduit_test_support::pcap::{read_pcap, write_pcap};

pub const CONDUIT: &str = env!("CARGO_BIN_EXE_conduit");

/// A scratch directory unique to this test process.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("conduit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// EAL arguments for a test instance with worker lcore 1.
pub fn eal_args(prefix: &str) -> Vec<String> {
    let mut args = vec!["-l".to_string(), "0,1".to_string()];
    args.extend(conduit_test_support::eal::private_instance(prefix));
    args
}

pub fn run(args: &[String]) -> Output {
    Command::new(CONDUIT)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("run conduit")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
