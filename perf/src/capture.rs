//! The profile's traffic as a capture file, for harnesses that replay it instead of running
//! conduit-perf's generator: DPDK's `net_pcap` with `rx_pcap=FILE,infinite_rx=1` loads the
//! file into mbufs once and hands them out endlessly on the polling core, and the appliance,
//! testpmd and OVS-DPDK all read it the same way (`perf/scripts/same-core.sh`).

use std::io::{self, Write};

use control::config::Config;

/// The device the replay configuration names.
pub const NET_PCAP_DEVICE: &str = "net_pcap0";
/// The MAC address DPDK 22.11's `net_pcap` gives its port ("pcap" in ASCII after the
/// locally administered 0x02): the capture's frames are addressed to it.
pub const NET_PCAP_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];

/// Classic pcap: magic (microsecond timestamps), version 2.4, link type Ethernet.
const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;
/// Snapshot length: larger than any frame the profiles build.
const SNAPLEN: u32 = 65_535;

/// Writes `frames` as a classic little-endian pcap file, one record per frame, the n-th record
/// stamped n microseconds after the epoch (replay with `infinite_rx` ignores the times).
pub fn write_pcap<W: Write>(mut w: W, frames: impl IntoIterator<Item = Vec<u8>>) -> io::Result<()> {
    let mut head = Vec::with_capacity(24);
    head.extend_from_slice(&PCAP_MAGIC.to_le_bytes());
    head.extend_from_slice(&2u16.to_le_bytes());
    head.extend_from_slice(&4u16.to_le_bytes());
    head.extend_from_slice(&0i32.to_le_bytes()); // GMT offset
    head.extend_from_slice(&0u32.to_le_bytes()); // timestamp accuracy
    head.extend_from_slice(&SNAPLEN.to_le_bytes());
    head.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    w.write_all(&head)?;
    for (n, frame) in frames.into_iter().enumerate() {
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&l| l <= SNAPLEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((n / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((n % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12..16].copy_from_slice(&len.to_le_bytes());
        w.write_all(&rec)?;
        w.write_all(&frame)?;
    }
    w.flush()
}

/// Mbufs for the appliance replaying a capture of `frames` frames: `net_pcap` keeps one mbuf
/// per frame (a frame of at most 1514 bytes fits one) for the whole run, on top of what the
/// configuration's rings, bursts and caches hold. Rounded as the default pool size is.
pub fn replay_mbufs(cfg: &Config, frames: u32) -> u32 {
    let want = (cfg.min_mbufs() + frames + 1024).max(8191);
    (want + 1).next_power_of_two() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a classic little-endian pcap back: (link type, records).
    fn read(b: &[u8]) -> (u32, Vec<Vec<u8>>) {
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!(u32_at(0), PCAP_MAGIC);
        let mut at = 24;
        let mut recs = Vec::new();
        while at < b.len() {
            let incl = u32_at(at + 8) as usize;
            assert_eq!(incl, u32_at(at + 12) as usize, "whole frames");
            recs.push(b[at + 16..at + 16 + incl].to_vec());
            at += 16 + incl;
        }
        assert_eq!(at, b.len(), "no trailing bytes");
        (u32_at(20), recs)
    }

    #[test]
    fn frames_read_back_in_order() {
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 60 + i as usize]).collect();
        let mut out = Vec::new();
        write_pcap(&mut out, frames.clone()).unwrap();
        let (link, recs) = read(&out);
        assert_eq!(link, LINKTYPE_ETHERNET);
        assert_eq!(recs, frames);
    }

    #[test]
    fn oversized_frame_is_refused() {
        let r = write_pcap(Vec::new(), [vec![0u8; SNAPLEN as usize + 1]]);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
