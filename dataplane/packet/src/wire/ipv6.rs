//! The fixed 40-byte IPv6 header (RFC 8200). Conduit carries IPv6 only as a tunnel payload, so
//! the view stops at the fixed header: extension headers are the caller's (the next header value
//! says whether there are any). `new_checked` checks the version and that the payload length fits
//! in the buffer (which may be longer, e.g. Ethernet padding; [`Ipv6Packet::payload`] trims it).
//! Jumbograms (payload length 0 plus a hop-by-hop option) cannot occur below a 64 KiB MTU and
//! are read as an empty payload.

use core::net::Ipv6Addr;

use super::{
    be16, be32, byte, bytes, set_be16, set_be32, set_byte, set_bytes, Error, IpProtocol, Result,
};

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: usize = 8;
    pub const DST_ADDR: usize = 24;
    pub const HEADER_LEN: usize = 40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// A read (and, with `T: AsMut`, write) view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` after checking the version and that header + payload fit.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::HEADER_LEN {
            return Err(Error::Ipv6Truncated);
        }
        if data[field::VER_TC_FLOW] >> 4 != 6 {
            return Err(Error::Ipv6BadVersion);
        }
        if field::HEADER_LEN + usize::from(be16(data, field::LENGTH)) > data.len() {
            return Err(Error::Ipv6BadPayloadLength);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    /// The version field (always 6 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// Traffic class (DSCP << 2 | ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header, extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(byte(self.buffer.as_ref(), field::NXT_HDR))
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        byte(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(bytes::<16>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(bytes::<16>(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The payload, trimmed to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = field::HEADER_LEN + usize::from(self.payload_len());
        self.buffer
            .as_ref()
            .get(field::HEADER_LEN..end)
            .unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        set_byte(self.buffer.as_mut(), field::HOP_LIMIT, hop_limit)
    }

    /// Decrements the hop limit (IPv6 has no header checksum); `None` if it was already 0.
    #[inline]
    pub fn decrement_hop_limit(&mut self) -> Option<u8> {
        let new = self.hop_limit().checked_sub(1)?;
        self.set_hop_limit(new);
        Some(new)
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, next_header: IpProtocol) {
        set_byte(self.buffer.as_mut(), field::NXT_HDR, next_header.into())
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        set_bytes(self.buffer.as_mut(), field::SRC_ADDR, addr.octets())
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        set_bytes(self.buffer.as_mut(), field::DST_ADDR, addr.octets())
    }

    /// Mutable payload, trimmed to the payload length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = field::HEADER_LEN + usize::from(self.payload_len());
        self.buffer
            .as_mut()
            .get_mut(field::HEADER_LEN..end)
            .unwrap_or(&mut [])
    }
}

/// A fixed IPv6 header, parsed or to be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits; higher bits are ignored on emit).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parses a checked packet.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        }
    }

    /// Header length this repr emits.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// Writes the 40-byte header into the front of `buf`; returns its length.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let header = buf
            .get_mut(..field::HEADER_LEN)
            .ok_or(Error::BufferTooSmall)?;
        let first = 6 << 28 | u32::from(self.traffic_class) << 20 | (self.flow_label & 0x000f_ffff);
        set_be32(header, field::VER_TC_FLOW, first);
        set_be16(header, field::LENGTH, self.payload_len);
        set_byte(header, field::NXT_HDR, self.next_header.into());
        set_byte(header, field::HOP_LIMIT, self.hop_limit);
        set_bytes(header, field::SRC_ADDR, self.src_addr.octets());
        set_bytes(header, field::DST_ADDR, self.dst_addr.octets());
        Ok(field::HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::UDP_IPV6_FRAME;
    use super::*;
    use proptest::prelude::*;

    fn golden() -> &'static [u8] {
        &UDP_IPV6_FRAME[14..]
    }

    #[test]
    fn deconstruct() {
        let p = Ipv6Packet::new_checked(golden()).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 16);
        assert_eq!(p.next_header(), IpProtocol::Udp);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &golden()[40..]);
    }

    #[test]
    fn construct_matches_golden() {
        let repr = Ipv6Repr::parse(&Ipv6Packet::new_checked(golden()).unwrap());
        let mut buf = golden().to_vec();
        buf[..40].fill(0);
        assert_eq!(repr.emit(&mut buf), Ok(40));
        assert_eq!(buf, golden());
        assert_eq!(repr.emit(&mut [0u8; 39]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn malformed() {
        let g = golden();
        for n in 0..g.len() {
            let expected = if n < 40 {
                Error::Ipv6Truncated
            } else {
                Error::Ipv6BadPayloadLength
            };
            assert_eq!(
                Ipv6Packet::new_checked(&g[..n]).err(),
                Some(expected),
                "prefix {n}"
            );
        }
        let mut bad = g.to_vec();
        bad[0] = 0x4b;
        assert_eq!(
            Ipv6Packet::new_checked(&bad[..]).err(),
            Some(Error::Ipv6BadVersion)
        );
        // Longer buffers (padding) are fine and trimmed.
        let mut padded = g.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(
            Ipv6Packet::new_checked(&padded[..])
                .unwrap()
                .payload()
                .len(),
            16
        );
    }

    #[test]
    fn hop_limit() {
        let mut buf = golden().to_vec();
        let mut p = Ipv6Packet::new_checked(&mut buf[..]).unwrap();
        assert_eq!(p.decrement_hop_limit(), Some(63));
        p.set_hop_limit(0);
        assert_eq!(p.decrement_hop_limit(), None);
        assert_eq!(buf[7], 0);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if data.len() >= 40 && data[1] & 1 == 0 {
                data[0] = 0x60 | (data[0] & 0x0f);
                let len = (data.len() - 40) as u16;
                data[4..6].copy_from_slice(&len.to_be_bytes());
            }
            if let Ok(mut p) = Ipv6Packet::new_checked(&mut data[..]) {
                let repr = Ipv6Repr::parse(&p);
                prop_assert_eq!(p.payload().len(), usize::from(repr.payload_len));
                let _ = p.decrement_hop_limit();
                let _ = p.payload_mut();
            }
        }

        #[test]
        fn emit_parse_round_trip(src in any::<u128>(), dst in any::<u128>(), nh in any::<u8>(),
                                 len in 0u16..100, hl in any::<u8>(), tc in any::<u8>(),
                                 flow in 0u32..0x10_0000) {
            let repr = Ipv6Repr {
                src_addr: Ipv6Addr::from(src),
                dst_addr: Ipv6Addr::from(dst),
                next_header: IpProtocol::from(nh),
                payload_len: len,
                hop_limit: hl,
                traffic_class: tc,
                flow_label: flow,
            };
            let mut buf = vec![0u8; 40 + usize::from(len)];
            repr.emit(&mut buf).unwrap();
            prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&buf[..]).unwrap()), repr);
        }
    }
}
