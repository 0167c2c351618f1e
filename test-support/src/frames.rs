//! Byte-level frame builders with valid checksums, written from the RFCs rather than with
//! `conduit_packet::wire` (so the code under test never builds its own inputs). Everything is
//! std types and `Vec<u8>`.

use std::net::Ipv4Addr;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// IP protocol numbers.
pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const GRE: u8 = 47;
pub const ESP: u8 = 50;
/// GRE flag bits in the first header word.
pub const GRE_CHECKSUM: u16 = 0x8000;
pub const GRE_KEY: u16 = 0x2000;
pub const GRE_SEQUENCE: u16 = 0x1000;

/// The Internet checksum (RFC 1071) of `data`: the ones' complement of the ones' complement sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

fn sum(data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    let mut s: u32 = chunks
        .by_ref()
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        s += u32::from(*last) << 8;
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum of a TCP or UDP segment under the IPv4 pseudo-header.
fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let pseudo = sum(&src.octets())
        + sum(&dst.octets())
        + u32::from(protocol)
        + u32::from(segment.len() as u16);
    !fold(pseudo + sum(segment))
}

/// An Ethernet II frame.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + payload.len());
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// An IPv4 header without options (never a fragment); [`Ipv4::packet`] builds the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4 {
    /// TTL 64, TOS 0, ident 0, DF clear.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> Self {
        Self {
            src,
            dst,
            protocol,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
        }
    }

    pub fn ttl(self, ttl: u8) -> Self {
        Self { ttl, ..self }
    }

    pub fn tos(self, tos: u8) -> Self {
        Self { tos, ..self }
    }

    pub fn ident(self, ident: u16) -> Self {
        Self { ident, ..self }
    }

    pub fn dont_frag(self, dont_frag: bool) -> Self {
        Self { dont_frag, ..self }
    }

    /// The 20-byte header of a packet carrying `payload_len` bytes, checksum filled in.
    pub fn header(&self, payload_len: usize) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        h[6] = if self.dont_frag { 0x40 } else { 0 };
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let ck = checksum(&h);
        h[10..12].copy_from_slice(&ck.to_be_bytes());
        h
    }

    /// This header followed by `payload`.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(20 + payload.len());
        v.extend_from_slice(&self.header(payload.len()));
        v.extend_from_slice(payload);
        v
    }
}

/// A UDP datagram (header + `data`) with its checksum under the pseudo-header of `src`, `dst`
/// (0 is sent as 0xffff, RFC 768).
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0; 8 + data.len()];
    v[0..2].copy_from_slice(&sport.to_be_bytes());
    v[2..4].copy_from_slice(&dport.to_be_bytes());
    let len = v.len() as u16;
    v[4..6].copy_from_slice(&len.to_be_bytes());
    v[8..].copy_from_slice(data);
    let ck = match l4_checksum(src, dst, UDP, &v) {
        0 => 0xffff,
        ck => ck,
    };
    v[6..8].copy_from_slice(&ck.to_be_bytes());
    v
}

/// A TCP segment: sequence 0x12345678, window 8192, `flags`, an optional MSS option (after a
/// NOP when `odd`, so the option sits at an odd offset), then `data`; checksum filled in.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    mss: Option<u16>,
    odd: bool,
    data: &[u8],
) -> Vec<u8> {
    let mut options = Vec::new();
    if let Some(mss) = mss {
        if odd {
            options.push(1);
        }
        options.extend_from_slice(&[2, 4]);
        options.extend_from_slice(&mss.to_be_bytes());
    }
    while options.len() % 4 != 0 {
        options.push(0);
    }
    let hlen = 20 + options.len();
    let mut v = vec![0; hlen + data.len()];
    v[0..2].copy_from_slice(&sport.to_be_bytes());
    v[2..4].copy_from_slice(&dport.to_be_bytes());
    v[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    v[12] = ((hlen / 4) as u8) << 4;
    v[13] = flags;
    v[14..16].copy_from_slice(&8192u16.to_be_bytes());
    v[20..hlen].copy_from_slice(&options);
    v[hlen..].copy_from_slice(data);
    let ck = l4_checksum(src, dst, TCP, &v);
    v[16..18].copy_from_slice(&ck.to_be_bytes());
    v
}

/// An ICMP message with code 0 and an identifier/sequence word (echo and the like).
pub fn icmp(msg_type: u8, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut v = vec![msg_type, 0, 0, 0];
    v.extend_from_slice(&ident.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(data);
    let ck = checksum(&v);
    v[2..4].copy_from_slice(&ck.to_be_bytes());
    v
}

/// A GRE header + payload: `flags` is the raw first word; the optional fields follow (the
/// checksum is computed when the C bit is set).
pub fn gre(
    flags: u16,
    protocol: u16,
    key: Option<u32>,
    seq: Option<u32>,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&protocol.to_be_bytes());
    if flags & GRE_CHECKSUM != 0 {
        v.extend_from_slice(&[0; 4]);
    }
    if let Some(key) = key {
        v.extend_from_slice(&key.to_be_bytes());
    }
    if let Some(seq) = seq {
        v.extend_from_slice(&seq.to_be_bytes());
    }
    v.extend_from_slice(payload);
    if flags & GRE_CHECKSUM != 0 {
        let ck = checksum(&v);
        v[4..6].copy_from_slice(&ck.to_be_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let (s, d) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 7));
        let ip = Ipv4::new(s, d, UDP).ident(7).packet(&[1, 2, 3]);
        assert_eq!(checksum(&ip[..20]), 0);
        for (proto, seg) in [
            (UDP, udp(s, d, 1, 2, b"odd")),
            (TCP, tcp(s, d, 1, 2, 0x02, Some(1460), true, b"x")),
        ] {
            assert_eq!(l4_checksum(s, d, proto, &seg), 0);
        }
        assert_eq!(checksum(&icmp(8, 1, 2, b"abc")), 0);
        assert_eq!(
            checksum(&gre(GRE_CHECKSUM, 0x0800, Some(1), None, b"abc")),
            0
        );
    }
}
