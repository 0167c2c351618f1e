//! Helpers for tests that run the `conduit` binary: a pcap reader/writer (from
//! `conduit-test-support`), EAL arguments for a private, hugepage-free, PCI-free instance, and
//! readers of what it sends and logs.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conduit_test_support::frames::{self, ETHERTYPE_IPV4};

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

/// The arguments of test instance `name`: EAL's (see [`eal_args`]) with the virtual devices
/// `vdevs`, then the config file `cfg`.
pub fn appliance_args(name: &str, vdevs: &[String], cfg: &Path) -> Vec<String> {
    let mut args = eal_args(name);
    for vdev in vdevs {
        args.extend(["--vdev".to_string(), vdev.clone()]);
    }
    args.extend([
        "--".to_string(),
        "--config".to_string(),
        cfg.display().to_string(),
    ]);
    args
}

/// The net_pcap0 device that reads the capture `rx` and writes what it sends to `tx`.
pub fn pcap_vdev(rx: &Path, tx: &Path) -> String {
    format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        rx.display(),
        tx.display()
    )
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

/// The IPv4 packet of an Ethernet frame, checked: IPv4 EtherType, valid header checksum, total
/// length equal to what the frame carries.
pub fn ip_of(frame: &[u8]) -> &[u8] {
    assert_eq!(&frame[12..14], &ETHERTYPE_IPV4.to_be_bytes(), "IPv4 frame");
    let ip = &frame[14..];
    assert_eq!(frames::checksum(&ip[..20]), 0, "IPv4 header checksum");
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        ip.len(),
        "total length is the frame's"
    );
    ip
}

/// The `drop <reason> <n>` lines of the final statistics.
pub fn drops(log: &str) -> BTreeMap<String, u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("drop "))
        .map(|l| {
            let mut it = l.split_whitespace();
            (
                it.next().unwrap().to_string(),
                it.next().unwrap().parse().unwrap(),
            )
        })
        .collect()
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
