//! ESP (RFC 4303) as seen before and after decryption. On the wire only SPI and sequence number
//! are in the clear; the rest (IV, ciphertext, ICV) is [`EspPacket::payload`], split by the
//! caller, who knows the SA's IV and ICV sizes ([`EspPacket::split_payload`]). SPI 0 is reserved
//! for local use and must never appear on the wire, so it is rejected here; whether a non-zero SPI
//! names a configured SA is the SA table's business. After decryption, [`parse_trailer`] checks
//! the pad length and the RFC 4303 monotonic padding (1, 2, 3, ...) and yields the inner packet.

use super::{be32, set_be32, Error, IpProtocol, Result};

mod field {
    pub const SPI: usize = 0;
    pub const SEQUENCE: usize = 4;
    pub const HEADER_LEN: usize = 8;
}

/// Length of the ESP header (SPI + sequence number).
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// A read (and, with `T: AsMut`, write) view of an ESP packet.
#[derive(Debug, Clone)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Wraps `buffer` after checking the header length and that the SPI is not zero.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::HEADER_LEN {
            return Err(Error::EspTruncated);
        }
        if be32(data, field::SPI) == 0 {
            return Err(Error::EspZeroSpi);
        }
        Ok(EspPacket { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Security parameters index (never 0).
    #[inline]
    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SPI)
    }

    /// Sequence number (low 32 bits when extended sequence numbers are used).
    #[inline]
    pub fn sequence_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQUENCE)
    }

    /// Everything after the header: IV, ciphertext (payload, padding, pad length, next header)
    /// and ICV.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::HEADER_LEN..).unwrap_or(&[])
    }

    /// Splits the payload into (IV, ciphertext, ICV) for an SA with the given sizes; fails with
    /// `EspTruncated` if the payload cannot hold IV + ICV + the 2-byte trailer.
    #[inline]
    pub fn split_payload(&self, iv_len: usize, icv_len: usize) -> Result<(&[u8], &[u8], &[u8])> {
        let payload = self.payload();
        let min = iv_len.checked_add(icv_len).and_then(|n| n.checked_add(2));
        match min {
            Some(min) if payload.len() >= min => {
                let (iv, rest) = payload.split_at(iv_len);
                let (ciphertext, icv) = rest.split_at(rest.len() - icv_len);
                Ok((iv, ciphertext, icv))
            }
            _ => Err(Error::EspTruncated),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    /// Mutable payload (for in-place decryption).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

/// An ESP header, parsed or to be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspRepr {
    /// Security parameters index.
    pub spi: u32,
    /// Sequence number.
    pub sequence_number: u32,
}

impl EspRepr {
    /// Parses a checked packet.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &EspPacket<T>) -> EspRepr {
        EspRepr {
            spi: packet.spi(),
            sequence_number: packet.sequence_number(),
        }
    }

    /// Header length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// Writes the 8-byte header into the front of `buf`; refuses SPI 0 (`EspZeroSpi`).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if self.spi == 0 {
            return Err(Error::EspZeroSpi);
        }
        let header = buf
            .get_mut(..field::HEADER_LEN)
            .ok_or(Error::BufferTooSmall)?;
        set_be32(header, field::SPI, self.spi);
        set_be32(header, field::SEQUENCE, self.sequence_number);
        Ok(field::HEADER_LEN)
    }
}

/// Splits decrypted ESP plaintext (payload, padding, pad length, next header) into the inner
/// packet and its protocol. Checks that the padding fits and is 1, 2, 3, ... as RFC 4303
/// section 2.4 specifies (a cheap integrity hint after AEAD, and what Linux checks too).
#[inline]
pub fn parse_trailer(plaintext: &[u8]) -> Result<(&[u8], IpProtocol)> {
    let [.., pad_len, next_header] = *plaintext else {
        return Err(Error::EspTruncated);
    };
    let body = &plaintext[..plaintext.len() - 2];
    let payload_len = body
        .len()
        .checked_sub(usize::from(pad_len))
        .ok_or(Error::EspBadPadding)?;
    let (payload, padding) = body.split_at(payload_len);
    if padding
        .iter()
        .zip(1..=u8::MAX)
        .any(|(&b, expected)| b != expected)
    {
        return Err(Error::EspBadPadding);
    }
    Ok((payload, IpProtocol::from(next_header)))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::ESP_IPV4_FRAME;
    use super::*;
    use proptest::prelude::*;

    fn golden() -> &'static [u8] {
        &ESP_IPV4_FRAME[34..]
    }

    #[test]
    fn deconstruct() {
        let p = EspPacket::new_checked(golden()).unwrap();
        assert_eq!(p.spi(), 0x1001);
        assert_eq!(p.sequence_number(), 1);
        assert_eq!(p.payload().len(), 72);
        let (iv, ciphertext, icv) = p.split_payload(8, 16).unwrap();
        assert_eq!(iv, &[0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17]);
        assert_eq!(ciphertext.len(), 48);
        assert_eq!(icv[0], 0xa0);
        assert_eq!(icv.len(), 16);
        assert_eq!(p.split_payload(8, 63).err(), Some(Error::EspTruncated));
        assert!(p.split_payload(8, 62).is_ok());
        assert_eq!(
            p.split_payload(usize::MAX, 1).err(),
            Some(Error::EspTruncated)
        );
    }

    #[test]
    fn construct_matches_golden() {
        let repr = EspRepr::parse(&EspPacket::new_checked(golden()).unwrap());
        let mut buf = golden().to_vec();
        buf[..8].fill(0);
        assert_eq!(repr.emit(&mut buf), Ok(8));
        assert_eq!(buf, golden());
        assert_eq!(repr.emit(&mut [0u8; 7]), Err(Error::BufferTooSmall));
        assert_eq!(
            EspRepr { spi: 0, ..repr }.emit(&mut buf),
            Err(Error::EspZeroSpi)
        );
    }

    #[test]
    fn malformed() {
        for n in 0..8 {
            assert_eq!(
                EspPacket::new_checked(&golden()[..n]).err(),
                Some(Error::EspTruncated)
            );
        }
        assert!(EspPacket::new_checked(&golden()[..8]).is_ok());
        let mut bad = golden().to_vec();
        bad[..4].fill(0);
        assert_eq!(
            EspPacket::new_checked(&bad[..]).err(),
            Some(Error::EspZeroSpi)
        );
    }

    #[test]
    fn trailer() {
        let plaintext = [0x45, 0xaa, 0xbb, 1, 2, 3, 3, 4];
        assert_eq!(
            parse_trailer(&plaintext),
            Ok((&plaintext[..3], IpProtocol::Ipv4))
        );
        assert_eq!(
            parse_trailer(&[9, 0, 41]),
            Ok((&[9u8][..], IpProtocol::Ipv6))
        );
        assert_eq!(parse_trailer(&[0, 4]), Ok((&[][..], IpProtocol::Ipv4)));
        assert_eq!(parse_trailer(&[4]), Err(Error::EspTruncated));
        assert_eq!(parse_trailer(&[1, 2, 3, 4]), Err(Error::EspBadPadding));
        assert_eq!(
            parse_trailer(&[0x45, 1, 3, 3, 4]),
            Err(Error::EspBadPadding)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40),
                                       iv in 0usize..20, icv in 0usize..20) {
            if let Ok(p) = EspPacket::new_checked(&data[..]) {
                prop_assert_ne!(p.spi(), 0);
                if let Ok((a, b, c)) = p.split_payload(iv, icv) {
                    prop_assert_eq!(a.len() + b.len() + c.len() + 8, data.len());
                }
            }
            let _ = parse_trailer(&data);
        }

        #[test]
        fn trailer_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..40),
                              pad in 0u8..=255, nh in any::<u8>()) {
            let mut plaintext = payload.clone();
            plaintext.extend(1..=pad);
            plaintext.extend([pad, nh]);
            prop_assert_eq!(parse_trailer(&plaintext), Ok((&payload[..], IpProtocol::from(nh))));
        }

        #[test]
        fn emit_parse_round_trip(spi in 1u32.., seq in any::<u32>()) {
            let repr = EspRepr { spi, sequence_number: seq };
            let mut buf = [0u8; 8];
            repr.emit(&mut buf).unwrap();
            prop_assert_eq!(EspRepr::parse(&EspPacket::new_checked(&buf[..]).unwrap()), repr);
        }
    }
}
