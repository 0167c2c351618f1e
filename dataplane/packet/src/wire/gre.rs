//! GRE headers (RFC 2784 with the key and sequence number extensions of RFC 2890). The first
//! 16 bits are C, reserved0 (bits 1-12, where RFC 2890 takes bit 2 for K and bit 3 for S) and
//! the version. Conduit is strict: the RFC 1701 routing bit, recursion control, any other
//! reserved0 bit and a version other than 0 are each rejected with their own error, so a
//! misconfigured peer shows up as a precise drop counter rather than as garbage forwarded. (RFC
//! 2784 lets a receiver ignore bits 6-12; no GRE implementation we interoperate with sets them.)
//! Optional fields follow in the order checksum+reserved1, key, sequence, and the header length
//! is derived from the flags. The checksum, when present, covers the GRE header and payload, so
//! [`GrePacket`] must be given exactly the IP payload.

use super::checksum;
use super::{be16, be32, set_be16, set_be32, Error, EtherType, Result};

mod field {
    pub const FLAGS: usize = 0;
    pub const PROTOCOL: usize = 2;
    /// First optional field (checksum, else key, else sequence).
    pub const OPTIONAL: usize = 4;
    pub const BASE_LEN: usize = 4;
}

/// Checksum present (RFC 2784).
const FLAG_C: u16 = 0x8000;
/// Routing present (RFC 1701 only; rejected).
const FLAG_R: u16 = 0x4000;
/// Key present (RFC 2890).
const FLAG_K: u16 = 0x2000;
/// Sequence number present (RFC 2890).
const FLAG_S: u16 = 0x1000;
/// RFC 1701 recursion control (3 bits; rejected).
const RECURSION_MASK: u16 = 0x0700;
/// Everything else in reserved0: strict source route (bit 4) and flags bits 8-12.
const RESERVED_MASK: u16 = 0x0800 | 0x00f8;
const VERSION_MASK: u16 = 0x0007;

/// Smallest GRE header (no optional fields).
pub const BASE_HEADER_LEN: usize = field::BASE_LEN;
/// Largest GRE header (checksum, key and sequence).
pub const MAX_HEADER_LEN: usize = 16;

/// Header length implied by the flag word: 4, plus 4 for each of C, K and S. A table indexed
/// by the top four flag bits (C, R, K, S; R adds nothing: it is rejected), which costs a shift
/// and a load where the sum of three bit tests cost a dozen instructions per packet.
#[inline(always)]
const fn header_len_for(flags: u16) -> usize {
    const LEN: [u8; 16] = {
        let mut t = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            let bits = ((i >> 3) & 1) + ((i >> 1) & 1) + (i & 1);
            t[i] = (field::BASE_LEN + 4 * bits) as u8;
            i += 1;
        }
        t
    };
    LEN[(flags >> 12) as usize] as usize
}

/// A read (and, with `T: AsMut`, write) view of a GRE packet (header + payload).
#[derive(Debug, Clone)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// Every flag bit Conduit rejects: the version, RFC 1701's routing bit and recursion control,
/// and the rest of reserved0.
const REJECTED_MASK: u16 = VERSION_MASK | FLAG_R | RECURSION_MASK | RESERVED_MASK;

/// The error for a flag word with a rejected bit, in the order the bits are checked: version,
/// routing, recursion control, reserved. Out of line: no peer we accept sends such a header.
#[cold]
#[inline(never)]
fn rejected_flags(flags: u16) -> Error {
    if flags & VERSION_MASK != 0 {
        Error::GreVersion
    } else if flags & FLAG_R != 0 {
        Error::GreRoutingPresent
    } else if flags & RECURSION_MASK != 0 {
        Error::GreRecursionControl
    } else {
        Error::GreReservedBits
    }
}

/// The fields of a GRE header the packet path decides on, read once by [`GreHeader::check`]
/// (the rules of [`GrePacket::new_checked`], which is built on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreHeader {
    flags: u16,
    /// Protocol type of the payload (an EtherType's raw value).
    pub protocol: u16,
    /// The key, if present.
    pub key: Option<u32>,
}

impl GreHeader {
    /// Checks the flags and version of the GRE packet `packet` (header + payload) and that the
    /// header they imply fits, and reads its protocol type and key. Does not verify the
    /// checksum ([`verify_checksum`]). One mask test accepts every legal flag word, so the
    /// common header costs a handful of instructions.
    #[inline(always)]
    pub fn check(packet: &[u8]) -> Result<Self> {
        let Some(&[f0, f1, p0, p1]) = packet.first_chunk::<{ field::BASE_LEN }>() else {
            return Err(Error::GreTruncated);
        };
        let flags = u16::from_be_bytes([f0, f1]);
        if flags & REJECTED_MASK != 0 {
            return Err(rejected_flags(flags));
        }
        if packet.len() < header_len_for(flags) {
            return Err(Error::GreTruncated);
        }
        let key = if flags & FLAG_K != 0 {
            let at = field::OPTIONAL + 4 * usize::from(flags & FLAG_C != 0);
            Some(be32(packet, at))
        } else {
            None
        };
        Ok(GreHeader {
            flags,
            protocol: u16::from_be_bytes([p0, p1]),
            key,
        })
    }

    /// Header length in bytes: 4, 8, 12 or 16.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        header_len_for(self.flags)
    }

    /// C bit: a checksum is present.
    #[inline(always)]
    pub fn checksum_present(&self) -> bool {
        self.flags & FLAG_C != 0
    }
}

/// Whether the GRE checksum over `packet` (header + payload) is correct; for a packet whose
/// header has the C bit. Out of line: tunnels seldom carry checksums.
#[cold]
#[inline(never)]
pub fn verify_checksum(packet: &[u8]) -> bool {
    checksum::sum(packet) == 0xffff
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// Wraps `buffer` after checking the flags and version and that the header they imply fits
    /// ([`GreHeader::check`]). Does not verify the checksum.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        GreHeader::check(buffer.as_ref())?;
        Ok(GrePacket { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS)
    }

    /// C bit: a checksum is present.
    #[inline]
    pub fn checksum_present(&self) -> bool {
        self.flags() & FLAG_C != 0
    }

    /// K bit: a key is present.
    #[inline]
    pub fn key_present(&self) -> bool {
        self.flags() & FLAG_K != 0
    }

    /// S bit: a sequence number is present.
    #[inline]
    pub fn sequence_present(&self) -> bool {
        self.flags() & FLAG_S != 0
    }

    /// Protocol type of the payload (an EtherType: 0x0800 IPv4, 0x86DD IPv6).
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), field::PROTOCOL))
    }

    /// Header length in bytes: 4, 8, 12 or 16.
    #[inline]
    pub fn header_len(&self) -> usize {
        header_len_for(self.flags())
    }

    #[inline]
    fn key_offset(&self) -> usize {
        field::OPTIONAL + 4 * usize::from(self.checksum_present())
    }

    #[inline]
    fn sequence_offset(&self) -> usize {
        self.key_offset() + 4 * usize::from(self.key_present())
    }

    /// The checksum field, if present.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present()
            .then(|| be16(self.buffer.as_ref(), field::OPTIONAL))
    }

    /// The key, if present.
    #[inline]
    pub fn key(&self) -> Option<u32> {
        self.key_present()
            .then(|| be32(self.buffer.as_ref(), self.key_offset()))
    }

    /// The sequence number, if present.
    #[inline]
    pub fn sequence(&self) -> Option<u32> {
        self.sequence_present()
            .then(|| be32(self.buffer.as_ref(), self.sequence_offset()))
    }

    /// The payload (everything after the header).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }

    /// Whether the checksum over header + payload is correct; true when there is none.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || verify_checksum(self.buffer.as_ref())
    }

    /// [`Self::verify_checksum`] as a `Result` (`GreBadChecksum`).
    #[inline]
    pub fn check_checksum(&self) -> Result<()> {
        if self.verify_checksum() {
            Ok(())
        } else {
            Err(Error::GreBadChecksum)
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    /// Sets the protocol type (checksum not updated).
    #[inline]
    pub fn set_protocol_type(&mut self, protocol: EtherType) {
        set_be16(self.buffer.as_mut(), field::PROTOCOL, protocol.into())
    }

    /// Sets the key if the K bit is set; returns whether it was.
    #[inline]
    pub fn set_key(&mut self, key: u32) -> bool {
        let present = self.key_present();
        if present {
            let at = self.key_offset();
            set_be32(self.buffer.as_mut(), at, key);
        }
        present
    }

    /// Sets the sequence number if the S bit is set; returns whether it was.
    #[inline]
    pub fn set_sequence(&mut self, sequence: u32) -> bool {
        let present = self.sequence_present();
        if present {
            let at = self.sequence_offset();
            set_be32(self.buffer.as_mut(), at, sequence);
        }
        present
    }

    /// Recomputes the checksum over header + payload if the C bit is set.
    #[inline]
    pub fn fill_checksum(&mut self) {
        if self.checksum_present() {
            let data = self.buffer.as_mut();
            set_be16(data, field::OPTIONAL, 0);
            let value = checksum::checksum(data);
            set_be16(data, field::OPTIONAL, value);
        }
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        self.buffer.as_mut().get_mut(at..).unwrap_or(&mut [])
    }
}

/// A GRE header, parsed or to be emitted by encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreRepr {
    /// Payload protocol type.
    pub protocol: EtherType,
    /// Whether a checksum is present (its value is computed on emit).
    pub checksum: bool,
    /// Key, if present.
    pub key: Option<u32>,
    /// Sequence number, if present.
    pub sequence: Option<u32>,
}

impl GreRepr {
    /// Parses a checked packet, verifying the checksum when present.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &GrePacket<T>) -> Result<GreRepr> {
        packet.check_checksum()?;
        Ok(GreRepr {
            protocol: packet.protocol_type(),
            checksum: packet.checksum_present(),
            key: packet.key(),
            sequence: packet.sequence(),
        })
    }

    /// Header length this repr emits: 4, 8, 12 or 16.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        field::BASE_LEN
            + 4 * (self.checksum as usize
                + self.key.is_some() as usize
                + self.sequence.is_some() as usize)
    }

    /// Writes the header into the front of `buf`, whose remainder is the payload (already in
    /// place: the checksum, if any, covers it). Returns the header length.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let mut flags = 0;
        let mut at = field::OPTIONAL;
        if self.checksum {
            flags |= FLAG_C;
            // Checksum and reserved1 start as zero; the checksum is filled below.
            set_be32(buf, at, 0);
            at += 4;
        }
        if let Some(key) = self.key {
            flags |= FLAG_K;
            set_be32(buf, at, key);
            at += 4;
        }
        if let Some(sequence) = self.sequence {
            flags |= FLAG_S;
            set_be32(buf, at, sequence);
        }
        set_be16(buf, field::FLAGS, flags);
        set_be16(buf, field::PROTOCOL, self.protocol.into());
        if self.checksum {
            let value = checksum::checksum(buf);
            set_be16(buf, field::OPTIONAL, value);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{GRE_CKS_IPV4_FRAME, GRE_IPV4_FRAME};
    use super::*;
    use proptest::prelude::*;

    /// GRE header + inner packet of the plain fixture (IP payload of the outer header).
    fn plain() -> &'static [u8] {
        &GRE_IPV4_FRAME[34..]
    }

    /// Same with checksum, key 1000, sequence 7.
    fn full() -> &'static [u8] {
        &GRE_CKS_IPV4_FRAME[34..]
    }

    #[test]
    fn deconstruct_plain() {
        let p = GrePacket::new_checked(plain()).unwrap();
        assert!(!p.checksum_present() && !p.key_present() && !p.sequence_present());
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!(p.header_len(), 4);
        assert_eq!((p.checksum(), p.key(), p.sequence()), (None, None, None));
        assert_eq!(p.payload(), &GRE_IPV4_FRAME[38..]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn deconstruct_with_checksum_key_sequence() {
        let p = GrePacket::new_checked(full()).unwrap();
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.checksum(), Some(0x4410));
        assert_eq!(p.key(), Some(1000));
        assert_eq!(p.sequence(), Some(7));
        assert_eq!(p.payload(), &GRE_IPV4_FRAME[38..]);
        assert!(p.verify_checksum());
        assert_eq!(
            GreRepr::parse(&p),
            Ok(GreRepr {
                protocol: EtherType::Ipv4,
                checksum: true,
                key: Some(1000),
                sequence: Some(7)
            })
        );
    }

    #[test]
    fn construct_matches_golden() {
        for golden in [plain(), full()] {
            let repr = GreRepr::parse(&GrePacket::new_checked(golden).unwrap()).unwrap();
            let mut buf = golden.to_vec();
            buf[..repr.buffer_len()].fill(0xee);
            assert_eq!(repr.emit(&mut buf), Ok(repr.buffer_len()));
            assert_eq!(buf, golden);
        }
    }

    #[test]
    fn key_only_header_layout() {
        let repr = GreRepr {
            protocol: EtherType::Ipv6,
            checksum: false,
            key: Some(0x0102_0304),
            sequence: None,
        };
        let mut buf = [0u8; 8];
        assert_eq!(repr.emit(&mut buf), Ok(8));
        assert_eq!(buf, [0x20, 0x00, 0x86, 0xdd, 1, 2, 3, 4]);
        assert_eq!(repr.emit(&mut [0u8; 7]), Err(Error::BufferTooSmall));
        let repr = GreRepr {
            key: None,
            sequence: Some(9),
            ..repr
        };
        repr.emit(&mut buf).unwrap();
        assert_eq!(buf, [0x10, 0x00, 0x86, 0xdd, 0, 0, 0, 9]);
    }

    #[test]
    fn truncated_at_every_offset() {
        for golden in [plain(), full()] {
            let header_len = GrePacket::new_checked(golden).unwrap().header_len();
            for n in 0..header_len {
                assert_eq!(
                    GrePacket::new_checked(&golden[..n]).err(),
                    Some(Error::GreTruncated),
                    "prefix {n}"
                );
            }
            // Header alone, no payload: valid view (a checksum would not verify, though).
            assert!(GrePacket::new_checked(&golden[..header_len]).is_ok());
        }
    }

    #[test]
    fn bad_flags_and_version() {
        let cases: [(u16, Error); 9] = [
            (0x0001, Error::GreVersion),
            (0x0007, Error::GreVersion),
            (0x2001, Error::GreVersion), // PPTP enhanced GRE: K bit + version 1
            (0x4000, Error::GreRoutingPresent),
            (0x0100, Error::GreRecursionControl),
            (0x0700, Error::GreRecursionControl),
            (0x0800, Error::GreReservedBits), // strict source route
            (0x0080, Error::GreReservedBits),
            (0x0008, Error::GreReservedBits),
        ];
        for (flags, expected) in cases {
            let mut bad = plain().to_vec();
            bad[..2].copy_from_slice(&flags.to_be_bytes());
            assert_eq!(
                GrePacket::new_checked(&bad[..]).err(),
                Some(expected),
                "flags {flags:#06x}"
            );
        }
    }

    #[test]
    fn bad_checksum() {
        for at in [5usize, 12, 20, 40] {
            let mut bad = full().to_vec();
            bad[at] ^= 0x04;
            let p = GrePacket::new_checked(&bad[..]).unwrap();
            assert!(!p.verify_checksum(), "byte {at}");
            assert_eq!(GreRepr::parse(&p), Err(Error::GreBadChecksum));
        }
        // Without the C bit the same corruption goes unnoticed, as it should.
        let mut bad = plain().to_vec();
        bad[20] ^= 0x04;
        assert!(GrePacket::new_checked(&bad[..]).unwrap().verify_checksum());
    }

    #[test]
    fn setters() {
        let mut buf = full().to_vec();
        let mut p = GrePacket::new_checked(&mut buf[..]).unwrap();
        assert!(p.set_key(42));
        assert!(p.set_sequence(43));
        p.set_protocol_type(EtherType::Ipv6);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.key(), p.sequence(), p.protocol_type()),
            (Some(42), Some(43), EtherType::Ipv6)
        );
        let mut buf = plain().to_vec();
        let mut p = GrePacket::new_checked(&mut buf[..]).unwrap();
        assert!(!p.set_key(1) && !p.set_sequence(1));
        assert_eq!(buf, plain());
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip_all_flag_combinations(
            checksum in any::<bool>(),
            key in proptest::option::of(any::<u32>()),
            sequence in proptest::option::of(any::<u32>()),
            protocol in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let repr = GreRepr { protocol: EtherType::from(protocol), checksum, key, sequence };
            let mut buf = vec![0u8; repr.buffer_len()];
            buf.extend_from_slice(&payload);
            prop_assert_eq!(repr.emit(&mut buf), Ok(repr.buffer_len()));
            let p = GrePacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(p.header_len(), repr.buffer_len());
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert_eq!(GreRepr::parse(&p), Ok(repr));
        }

        #[test]
        fn header_fields_agree_with_the_packet_view(mut data in proptest::collection::vec(any::<u8>(), 0..24)) {
            if data.len() >= 2 && data[1] & 0x40 != 0 {
                // Half of the cases get only legal flags so the optional fields are exercised.
                data[0] &= 0xb0;
                data[1] = 0;
            }
            let h = GreHeader::check(&data);
            let p = GrePacket::new_checked(&data[..]);
            match (h, p) {
                (Ok(h), Ok(p)) => {
                    prop_assert_eq!(h.header_len(), p.header_len());
                    prop_assert_eq!(h.key, p.key());
                    prop_assert_eq!(EtherType::from(h.protocol), p.protocol_type());
                    prop_assert_eq!(h.checksum_present(), p.checksum_present());
                    if h.checksum_present() {
                        prop_assert_eq!(verify_checksum(&data), checksum::sum(&data) == 0xffff);
                    }
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b.map(|_| ())),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if data.len() >= 2 && data[1] & 0x40 != 0 {
                // Half of the cases get only legal flags so the optional fields are exercised.
                data[0] &= 0xb0;
                data[1] = 0;
            }
            let len = data.len();
            if let Ok(mut p) = GrePacket::new_checked(&mut data[..]) {
                prop_assert_eq!(p.header_len() + p.payload().len(), len);
                let _ = (p.checksum(), p.key(), p.sequence(), GreRepr::parse(&p));
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
            }
        }
    }
}
