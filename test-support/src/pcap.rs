//! Classic pcap files (little-endian, Ethernet link type), for tests that feed net_pcap and read
//! what it wrote.

use std::io::{Read, Write};
use std::path::Path;

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
