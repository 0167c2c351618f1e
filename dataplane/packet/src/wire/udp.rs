//! UDP headers (RFC 768). The length field must be at least 8 and fit in the buffer (which may be
//! longer: [`UdpPacket::payload`] trims to the length). Over IPv4 a zero checksum means "none" and
//! verifies; a computed checksum of zero is sent as 0xFFFF. The pseudo-header comes from the
//! caller (IPv4 addresses), so the view never needs the IP layer.

use core::net::Ipv4Addr;

use super::checksum;
use super::{be16, set_be16, Error, IpProtocol, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const HEADER_LEN: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// The 8-byte UDP header as an array, for the packet path: once the array exists every
/// accessor is a load at a constant offset, with no bounds check. Validates nothing by itself.
#[derive(Debug, Clone, Copy)]
pub struct UdpHeader<'a>(&'a [u8; HEADER_LEN]);

impl<'a> UdpHeader<'a> {
    /// The header at the start of `datagram` after [`UdpPacket::new_checked`]'s checks, with
    /// its errors (8 bytes; a length field between 8 and `datagram`'s length).
    #[inline(always)]
    pub fn check(datagram: &'a [u8]) -> Result<Self> {
        let h = UdpHeader(datagram.first_chunk().ok_or(Error::UdpTruncated)?);
        let len = usize::from(h.len());
        if len < field::HEADER_LEN || len > datagram.len() {
            return Err(Error::UdpBadLength);
        }
        Ok(h)
    }

    /// The header at the start of the first fragment of a datagram (`fragment`: that
    /// fragment's part of the IP payload). Its length field covers the whole datagram, so it
    /// must be at least 8 and at least the part in this fragment. `UdpTruncated` if the
    /// fragment holds no 8-byte header, else `UdpBadLength`.
    pub fn check_first_fragment(fragment: &'a [u8]) -> Result<Self> {
        let h = UdpHeader(fragment.first_chunk().ok_or(Error::UdpTruncated)?);
        let len = usize::from(h.len());
        if len < field::HEADER_LEN || len < fragment.len() {
            return Err(Error::UdpBadLength);
        }
        Ok(h)
    }

    /// Both ports, source in the high half.
    #[inline(always)]
    pub fn ports(&self) -> u32 {
        super::ports_word(self.0)
    }

    /// Length field (header + payload).
    #[inline(always)]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        u16::from_be_bytes([self.0[field::LENGTH], self.0[field::LENGTH + 1]])
    }
}

/// A read (and, with `T: AsMut`, write) view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` after checking the header and the length field.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        UdpHeader::check(buffer.as_ref())?;
        Ok(UdpPacket { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header + payload).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Always false for a checked datagram (the length is at least 8).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram (header + payload) trimmed to the length field.
    #[inline]
    pub fn datagram(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(..usize::from(self.len()))
            .unwrap_or(&[])
    }

    /// The payload, trimmed to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.datagram().get(field::HEADER_LEN..).unwrap_or(&[])
    }

    /// Whether the checksum is absent (zero) or correct for the IPv4 pseudo-header.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), self.len());
        checksum::combine(&[pseudo, checksum::sum(self.datagram())]) == 0xffff
    }

    /// [`Self::verify_checksum`] as a `Result` (`UdpBadChecksum`).
    #[inline]
    pub fn check_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Result<()> {
        if self.verify_checksum(src, dst) {
            Ok(())
        } else {
            Err(Error::UdpBadChecksum)
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port (checksum not updated).
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        set_be16(self.buffer.as_mut(), field::SRC_PORT, port)
    }

    /// Sets the destination port (checksum not updated).
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        set_be16(self.buffer.as_mut(), field::DST_PORT, port)
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, value)
    }

    /// Computes and stores the checksum for the IPv4 pseudo-header (0 is sent as 0xFFFF).
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), self.len());
        let value = !checksum::combine(&[pseudo, checksum::sum(self.datagram())]);
        self.set_checksum(if value == 0 { 0xffff } else { value });
    }

    /// Mutable payload, trimmed to the length field.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        self.buffer
            .as_mut()
            .get_mut(field::HEADER_LEN..end)
            .unwrap_or(&mut [])
    }
}

/// A UDP header, parsed or to be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: u16,
}

impl UdpRepr {
    /// Parses a checked datagram.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> UdpRepr {
        UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.len().saturating_sub(field::HEADER_LEN as u16),
        }
    }

    /// Header length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// Writes the header into the front of `buf`, whose next `payload_len` bytes must already
    /// hold the payload, and fills the checksum for the IPv4 pseudo-header. Returns 8.
    pub fn emit(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<usize> {
        let len = self
            .payload_len
            .checked_add(field::HEADER_LEN as u16)
            .ok_or(Error::UdpBadLength)?;
        let datagram = buf
            .get_mut(..usize::from(len))
            .ok_or(Error::BufferTooSmall)?;
        set_be16(datagram, field::SRC_PORT, self.src_port);
        set_be16(datagram, field::DST_PORT, self.dst_port);
        set_be16(datagram, field::LENGTH, len);
        UdpPacket { buffer: datagram }.fill_checksum(src, dst);
        Ok(field::HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::UDP_IPV4_FRAME;
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);

    /// UDP header + DNS query + 4 bytes of Ethernet padding.
    fn golden() -> &'static [u8] {
        &UDP_IPV4_FRAME[34..]
    }

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(golden()).unwrap();
        assert_eq!(p.src_port(), 33000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert_eq!(p.checksum(), 0x16f9);
        assert_eq!(p.payload().len(), 29);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(198, 51, 100, 21)));
        assert_eq!(
            p.check_checksum(SRC, Ipv4Addr::BROADCAST),
            Err(Error::UdpBadChecksum)
        );
    }

    #[test]
    fn construct_matches_golden() {
        let repr = UdpRepr::parse(&UdpPacket::new_checked(golden()).unwrap());
        let mut buf = golden().to_vec();
        buf[..8].fill(0);
        assert_eq!(repr.emit(&mut buf, SRC, DST), Ok(8));
        assert_eq!(buf, golden());
        assert_eq!(
            repr.emit(&mut [0u8; 36], SRC, DST),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn malformed() {
        let g = &golden()[..37];
        for n in 0..g.len() {
            let expected = if n < 8 {
                Error::UdpTruncated
            } else {
                Error::UdpBadLength
            };
            assert_eq!(
                UdpPacket::new_checked(&g[..n]).err(),
                Some(expected),
                "prefix {n}"
            );
        }
        let mut bad = g.to_vec();
        for len in [0u16, 7] {
            bad[4..6].copy_from_slice(&len.to_be_bytes());
            assert_eq!(
                UdpPacket::new_checked(&bad[..]).err(),
                Some(Error::UdpBadLength)
            );
        }
        let mut bad = g.to_vec();
        bad[20] ^= 0x10;
        assert!(!UdpPacket::new_checked(&bad[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    #[test]
    fn zero_checksum_means_none_and_is_never_sent() {
        let mut bad = golden().to_vec();
        bad[6..8].fill(0);
        bad[20] ^= 0x10;
        assert!(UdpPacket::new_checked(&bad[..])
            .unwrap()
            .verify_checksum(SRC, DST));
        // A datagram whose checksum computes to 0 is sent with 0xFFFF: find the port that does.
        let mut buf = [0u8; 8];
        let repr = UdpRepr {
            src_port: 0,
            dst_port: 0,
            payload_len: 0,
        };
        repr.emit(&mut buf, SRC, DST).unwrap();
        let needed = !UdpPacket::new_checked(&buf[..]).unwrap().checksum();
        // Adding the complement of the checksum to the sum makes the checksum zero.
        let repr = UdpRepr {
            src_port: !needed,
            ..repr
        };
        repr.emit(&mut buf, SRC, DST).unwrap();
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..40),
                                       src in any::<u32>(), dst in any::<u32>()) {
            if data.len() >= 8 && data[0] & 1 == 0 {
                let len = data.len() as u16 - u16::from(data[1] & 3);
                data[4..6].copy_from_slice(&len.to_be_bytes());
            }
            if let Ok(mut p) = UdpPacket::new_checked(&mut data[..]) {
                let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
                prop_assert_eq!(p.payload().len() + 8, usize::from(p.len()));
                let _ = p.verify_checksum(src, dst);
                p.fill_checksum(src, dst);
                prop_assert!(p.verify_checksum(src, dst));
            }
        }

        #[test]
        fn emit_parse_round_trip(sp in any::<u16>(), dp in any::<u16>(),
                                 payload in proptest::collection::vec(any::<u8>(), 0..64),
                                 src in any::<u32>(), dst in any::<u32>()) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let repr = UdpRepr { src_port: sp, dst_port: dp, payload_len: payload.len() as u16 };
            let mut buf = vec![0u8; 8];
            buf.extend_from_slice(&payload);
            repr.emit(&mut buf, src, dst).unwrap();
            let p = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(UdpRepr::parse(&p), repr);
            prop_assert!(p.verify_checksum(src, dst));
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
