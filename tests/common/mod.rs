//! Helpers for tests that run the `conduit` binary: a pcap reader/writer and EAL arguments
//! for a private, hugepage-free, PCI-free instance.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// Writes a microsecond pcap with Ethernet link type.
pub fn write_pcap(path: &Path, packets: &[Vec<u8>]) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&0i32.to_le_bytes());
    hdr.extend_from_slice(&0u32.to_le_bytes());
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    f.write_all(&hdr).unwrap();
    for (i, p) in packets.iter().enumerate() {
        let mut rec = Vec::with_capacity(16 + p.len());
        rec.extend_from_slice(&(1_700_000_000u32 + (i / 1000) as u32).to_le_bytes());
        rec.extend_from_slice(&((i % 1000) as u32 * 1000).to_le_bytes());
        rec.extend_from_slice(&(p.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(p.len() as u32).to_le_bytes());
        rec.extend_from_slice(p);
        f.write_all(&rec).unwrap();
    }
}

/// Reads a little-endian pcap (micro- or nanosecond) and returns the packet bytes.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut data = Vec::new();
    std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .read_to_end(&mut data)
        .unwrap();
    assert!(data.len() >= 24, "pcap header");
    let magic = u32::from_le_bytes(data[..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2c3d4 || magic == 0xa1b23c4d,
        "unexpected pcap magic {magic:#x}"
    );
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(data[off + 12..off + 16].try_into().unwrap()) as usize;
        assert_eq!(incl, orig, "packet truncated in capture");
        off += 16;
        assert!(off + incl <= data.len(), "record runs past the file");
        out.push(data[off..off + incl].to_vec());
        off += incl;
    }
    assert_eq!(off, data.len(), "trailing bytes in pcap");
    out
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
