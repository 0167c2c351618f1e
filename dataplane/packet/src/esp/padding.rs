//! What ESP encrypts after the inner packet: padding, pad length and next header
//! (RFC 4303 §2.4–2.6). AES-GCM needs no block alignment, so the padding only brings the
//! ciphertext (inner packet + padding + 2) to a multiple of 4 bytes, with RFC 4303's default
//! contents 1, 2, 3, ...; the receiver checks both ([`crate::wire::esp::parse_trailer`]).

/// Pad length plus next header.
pub const TRAILER_LEN: usize = 2;

/// Padding bytes for an inner packet of `inner_len` bytes: 0 to 3.
#[inline]
pub const fn pad_len(inner_len: usize) -> usize {
    (4 - (inner_len + TRAILER_LEN) % 4) % 4
}

/// Writes padding, pad length and `next_header` into `tail`, which must be exactly
/// `pad_len(inner_len) + TRAILER_LEN` bytes; returns `None` if it is not.
#[inline]
pub fn write_trailer(tail: &mut [u8], inner_len: usize, next_header: u8) -> Option<()> {
    let pad = pad_len(inner_len);
    if tail.len() != pad + TRAILER_LEN {
        return None;
    }
    for (i, b) in tail[..pad].iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    tail[pad] = pad as u8;
    tail[pad + 1] = next_header;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::esp::parse_trailer;
    use crate::wire::IpProtocol;

    #[test]
    fn every_length_round_trips_through_the_receivers_check() {
        for inner_len in 20..200 {
            let pad = pad_len(inner_len);
            assert!(pad < 4);
            assert_eq!((inner_len + pad + TRAILER_LEN) % 4, 0);
            let mut buf: Vec<u8> = (0..inner_len).map(|i| i as u8).collect();
            buf.resize(inner_len + pad + TRAILER_LEN, 0xee);
            write_trailer(&mut buf[inner_len..], inner_len, 4).unwrap();
            let (payload, next) = parse_trailer(&buf).unwrap();
            assert_eq!(payload.len(), inner_len);
            assert_eq!(next, IpProtocol::from(4));
        }
        assert_eq!(write_trailer(&mut [0; 5], 20, 4), None);
    }
}
