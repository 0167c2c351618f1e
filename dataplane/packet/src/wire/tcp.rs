//! TCP headers (RFC 9293), as far as a tunnel router needs them: ports and flags for ECMP and
//! MSS clamping, checksum verification over the IPv4 pseudo-header, and an options walker robust
//! to hostile input. The walker stops at EOL, steps over NOP, and rejects a missing length byte,
//! a length below 2 and an option running past the header (`TcpBadOption`): a loop that trusted
//! such lengths could spin forever or read out of bounds. [`TcpPacket::clamp_mss`] lowers the MSS
//! option in place and returns an [`MssChange`] that knows how to patch the checksum
//! incrementally, including when the option sits at an odd offset (after a single NOP), where
//! the MSS bytes straddle two checksum words.

use core::net::Ipv4Addr;

use super::checksum;
use super::{be16, be32, byte, set_be16, set_be32, set_byte, Error, IpProtocol, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const HEADER_LEN: usize = 20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// Option kinds.
mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const TIMESTAMPS: u8 = 8;
}

/// The flag byte of a TCP header (CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;

    /// FIN set.
    #[inline]
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    /// SYN set.
    #[inline]
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    /// RST set.
    #[inline]
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    /// PSH set.
    #[inline]
    pub fn psh(self) -> bool {
        self.0 & Self::PSH != 0
    }
    /// ACK set.
    #[inline]
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    /// URG set.
    #[inline]
    pub fn urg(self) -> bool {
        self.0 & Self::URG != 0
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list (the walker stops after it).
    EndOfList,
    /// Padding.
    NoOperation,
    /// Maximum segment size.
    MaxSegmentSize(u16),
    /// Window scale shift.
    WindowScale(u8),
    /// SACK permitted.
    SackPermitted,
    /// Timestamps.
    Timestamps {
        /// Sender's timestamp.
        tsval: u32,
        /// Echoed timestamp.
        tsecr: u32,
    },
    /// Any other kind, with its data (after kind and length).
    Unknown {
        /// Option kind.
        kind: u8,
        /// Option data.
        data: &'a [u8],
    },
}

/// Structural step of the walker: the option at `at` is (kind, data range end), or `None` at
/// the end of the list. Only NOP and EOL are single bytes; everything else must carry a length
/// >= 2 that stays inside `options`.
#[inline]
fn next_option(options: &[u8], at: usize) -> Result<Option<(u8, usize, usize)>> {
    let Some(&kind) = options.get(at) else {
        return Ok(None);
    };
    match kind {
        kind::EOL => Ok(None),
        kind::NOP => Ok(Some((kind, at + 1, at + 1))),
        _ => {
            let len = usize::from(*options.get(at + 1).ok_or(Error::TcpBadOption)?);
            if len < 2 || at + len > options.len() {
                return Err(Error::TcpBadOption);
            }
            Ok(Some((kind, at + 2, at + len)))
        }
    }
}

/// Iterator over the options of a header; yields `Err(TcpBadOption)` once on malformed input,
/// then stops.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    options: &'a [u8],
    at: usize,
    done: bool,
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = match next_option(self.options, self.at) {
            Ok(None) => {
                self.done = true;
                // Report an explicit EOL, but not the end of the buffer.
                return (self.options.get(self.at) == Some(&kind::EOL))
                    .then_some(Ok(TcpOption::EndOfList));
            }
            Ok(Some(step)) => step,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let (kind, start, end) = step;
        self.at = end;
        let data = self.options.get(start..end).unwrap_or(&[]);
        let option = match (kind, data.len()) {
            (kind::NOP, _) => TcpOption::NoOperation,
            (kind::MSS, 2) => TcpOption::MaxSegmentSize(be16(data, 0)),
            (kind::WINDOW_SCALE, 1) => TcpOption::WindowScale(byte(data, 0)),
            (kind::SACK_PERMITTED, 0) => TcpOption::SackPermitted,
            (kind::TIMESTAMPS, 8) => TcpOption::Timestamps {
                tsval: be32(data, 0),
                tsecr: be32(data, 4),
            },
            (kind::MSS | kind::WINDOW_SCALE | kind::SACK_PERMITTED | kind::TIMESTAMPS, _) => {
                self.done = true;
                return Some(Err(Error::TcpBadOption));
            }
            (kind, _) => TcpOption::Unknown { kind, data },
        };
        Some(Ok(option))
    }
}

/// The MSS option before and after [`TcpPacket::clamp_mss`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MssChange {
    /// MSS the sender announced.
    pub old: u16,
    /// MSS now in the packet (`old` if it was already low enough).
    pub new: u16,
    /// Offset of the MSS value from the start of the TCP header.
    pub offset: usize,
}

impl MssChange {
    /// Whether the packet was modified.
    #[inline]
    pub fn changed(&self) -> bool {
        self.old != self.new
    }

    /// The TCP checksum after this change, from the checksum before it (RFC 1624), accounting
    /// for an MSS value at an odd offset.
    #[inline]
    pub fn update_checksum(&self, checksum: u16) -> u16 {
        if !self.changed() {
            checksum
        } else if self.offset % 2 == 0 {
            checksum::update_u16(checksum, self.old, self.new)
        } else {
            checksum::update_u16_unaligned(checksum, self.old, self.new)
        }
    }
}

/// The fixed 20-byte TCP header as an array, for the packet path: once the array exists every
/// accessor is a load at a constant offset, with no bounds check. Validates nothing by itself.
#[derive(Debug, Clone, Copy)]
pub struct TcpHeader<'a>(&'a [u8; HEADER_LEN]);

impl<'a> TcpHeader<'a> {
    /// The header at the start of `segment` after [`TcpPacket::new_checked`]'s checks, with its
    /// errors (20 bytes; a data offset between 20 and `segment`'s length).
    #[inline(always)]
    pub fn check(segment: &'a [u8]) -> Result<Self> {
        let h = TcpHeader(segment.first_chunk().ok_or(Error::TcpTruncated)?);
        let header_len = h.header_len();
        if header_len < field::HEADER_LEN || header_len > segment.len() {
            return Err(Error::TcpBadDataOffset);
        }
        Ok(h)
    }

    /// Source port << 16 | destination port (as the flow hash takes them).
    #[inline(always)]
    pub fn ports(&self) -> u32 {
        super::ports_word(self.0)
    }

    /// Header length in bytes (data offset * 4).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.0[field::DATA_OFFSET] >> 4) * 4
    }

    /// The flag byte.
    #[inline(always)]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.0[field::FLAGS])
    }
}

/// A read (and, with `T: AsMut`, write) view of a TCP segment. The buffer must be exactly the
/// segment (the IP payload), since the checksum covers all of it.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` after checking that the header and its options fit. Does not verify the
    /// checksum or the options.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        TcpHeader::check(buffer.as_ref())?;
        Ok(TcpPacket { buffer })
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset * 4), 20..=60.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(byte(self.buffer.as_ref(), field::DATA_OFFSET) >> 4) * 4
    }

    /// Flags.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(byte(self.buffer.as_ref(), field::FLAGS))
    }

    /// Window size (unscaled).
    #[inline]
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }

    /// Raw option bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(field::HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// Iterator over the options.
    #[inline]
    pub fn option_iter(&self) -> TcpOptions<'_> {
        TcpOptions {
            options: self.options(),
            at: 0,
            done: false,
        }
    }

    /// Payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }

    /// Finds the MSS option: `Ok(Some((value, offset from header start)))`, `Ok(None)` if
    /// absent, `TcpBadOption` if the options are malformed, the MSS option is not 4 bytes, or
    /// there are two (receivers differ on which wins, so clamping one would not be enough).
    pub fn find_mss(&self) -> Result<Option<(u16, usize)>> {
        let options = self.options();
        let mut found = None;
        let mut at = 0;
        while let Some((kind, start, end)) = next_option(options, at)? {
            if kind == kind::MSS {
                if end - start != 2 || found.is_some() {
                    return Err(Error::TcpBadOption);
                }
                found = Some((be16(options, start), field::HEADER_LEN + start));
            }
            at = end;
        }
        Ok(found)
    }

    /// The MSS option's value, if present.
    #[inline]
    pub fn mss(&self) -> Result<Option<u16>> {
        Ok(self.find_mss()?.map(|(mss, _)| mss))
    }

    #[inline]
    fn pseudo_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Option<u16> {
        let len = u16::try_from(self.buffer.as_ref().len()).ok()?;
        Some(checksum::pseudo_header_v4(
            src,
            dst,
            IpProtocol::Tcp.into(),
            len,
        ))
    }

    /// Whether the checksum is correct for the IPv4 pseudo-header.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.pseudo_sum(src, dst)
            .is_some_and(|p| checksum::combine(&[p, checksum::sum(self.buffer.as_ref())]) == 0xffff)
    }

    /// [`Self::verify_checksum`] as a `Result` (`TcpBadChecksum`).
    #[inline]
    pub fn check_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Result<()> {
        if self.verify_checksum(src, dst) {
            Ok(())
        } else {
            Err(Error::TcpBadChecksum)
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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

    /// Sets the sequence number (checksum not updated).
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        set_be32(self.buffer.as_mut(), field::SEQ_NUM, value)
    }

    /// Sets the acknowledgment number (checksum not updated).
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        set_be32(self.buffer.as_mut(), field::ACK_NUM, value)
    }

    /// Sets the flags (checksum not updated).
    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        set_byte(self.buffer.as_mut(), field::FLAGS, flags.0)
    }

    /// Sets the window (checksum not updated).
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        set_be16(self.buffer.as_mut(), field::WINDOW, value)
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, value)
    }

    /// Recomputes the checksum for the IPv4 pseudo-header (left as is for a segment over 64 KiB,
    /// which IPv4 cannot carry).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        if let Some(pseudo) = self.pseudo_sum(src, dst) {
            self.set_checksum(0);
            let value = !checksum::combine(&[pseudo, checksum::sum(self.buffer.as_ref())]);
            self.set_checksum(value);
        }
    }

    /// Lowers the MSS option to `max` if it is larger, in place, *without* touching the
    /// checksum; apply [`MssChange::update_checksum`] (or use
    /// [`Self::clamp_mss_and_update_checksum`]). `Ok(None)` when there is no MSS option. The
    /// caller decides which segments to clamp (SYN and SYN-ACK).
    pub fn clamp_mss(&mut self, max: u16) -> Result<Option<MssChange>> {
        let Some((old, offset)) = self.find_mss()? else {
            return Ok(None);
        };
        let new = old.min(max);
        if new != old {
            set_be16(self.buffer.as_mut(), offset, new);
        }
        Ok(Some(MssChange { old, new, offset }))
    }

    /// [`Self::clamp_mss`] and the incremental checksum update in one go.
    #[inline]
    pub fn clamp_mss_and_update_checksum(&mut self, max: u16) -> Result<Option<MssChange>> {
        let change = self.clamp_mss(max)?;
        if let Some(change) = change {
            let value = change.update_checksum(self.checksum());
            self.set_checksum(value);
        }
        Ok(change)
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        self.buffer.as_mut().get_mut(at..).unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::TCP_SYN_IPV4_FRAME;
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);

    fn golden() -> &'static [u8] {
        &TCP_SYN_IPV4_FRAME[34..]
    }

    /// A SYN with the given option bytes (padded with EOL to a multiple of 4) and a valid
    /// checksum.
    fn syn_with_options(options: &[u8]) -> Vec<u8> {
        let mut seg = golden()[..20].to_vec();
        seg.extend_from_slice(options);
        while seg.len() % 4 != 0 {
            seg.push(0);
        }
        seg[12] = ((seg.len() / 4) as u8) << 4;
        let mut p = TcpPacket::new_checked(&mut seg[..]).unwrap();
        p.fill_checksum(SRC, DST);
        seg
    }

    #[test]
    fn deconstruct_syn() {
        let p = TcpPacket::new_checked(golden()).unwrap();
        assert_eq!(p.src_port(), 49152);
        assert_eq!(p.dst_port(), 443);
        assert_eq!(p.seq_number(), 0x5bd0_a1b2);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert!(p.flags().syn() && !p.flags().ack() && !p.flags().fin() && !p.flags().rst());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.checksum(), 0x6b26);
        assert_eq!(p.urgent_at(), 0);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(
            p.check_checksum(DST, SRC),
            Ok(()),
            "the pseudo-header sum is symmetric"
        );
        assert_eq!(
            p.check_checksum(SRC, Ipv4Addr::new(198, 51, 100, 21)),
            Err(Error::TcpBadChecksum)
        );
        let options: Vec<_> = p.option_iter().collect();
        assert_eq!(
            options,
            [
                Ok(TcpOption::MaxSegmentSize(1460)),
                Ok(TcpOption::SackPermitted),
                Ok(TcpOption::Timestamps {
                    tsval: 0x0a1b_2c3d,
                    tsecr: 0
                }),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::WindowScale(7)),
            ]
        );
        assert_eq!(p.find_mss(), Ok(Some((1460, 22))));
    }

    #[test]
    fn bad_checksum() {
        for at in [0usize, 13, 23, 39] {
            let mut bad = golden().to_vec();
            bad[at] ^= 0x20;
            assert!(
                !TcpPacket::new_checked(&bad[..])
                    .unwrap()
                    .verify_checksum(SRC, DST),
                "{at}"
            );
        }
    }

    #[test]
    fn truncated_and_bad_data_offset() {
        let g = golden();
        for n in 0..g.len() {
            let expected = if n < 20 {
                Error::TcpTruncated
            } else {
                Error::TcpBadDataOffset
            };
            assert_eq!(
                TcpPacket::new_checked(&g[..n]).err(),
                Some(expected),
                "prefix {n}"
            );
        }
        let mut bad = g.to_vec();
        for offset in [0u8, 4, 11, 15] {
            bad[12] = offset << 4;
            assert_eq!(
                TcpPacket::new_checked(&bad[..]).err(),
                Some(Error::TcpBadDataOffset),
                "{offset}"
            );
        }
        bad[12] = 5 << 4;
        assert_eq!(
            TcpPacket::new_checked(&bad[..]).unwrap().payload().len(),
            20
        );
    }

    #[test]
    fn bad_options() {
        let cases: [&[u8]; 6] = [
            &[2],                 // kind without length byte
            &[1, 1, 1, 8],        // NOPs then a kind without length byte
            &[3, 0, 0, 0],        // length 0: a naive walker would loop forever
            &[5, 1, 0, 0],        // length 1
            &[8, 10, 0, 0, 0, 0], // timestamps running past the header
            &[2, 3, 5, 1],        // MSS with length 3
        ];
        for (i, options) in cases.iter().enumerate() {
            let seg = syn_with_options(options);
            let p = TcpPacket::new_checked(&seg[..]).unwrap();
            assert_eq!(p.find_mss().err(), Some(Error::TcpBadOption), "case {i}");
            assert_eq!(
                p.option_iter().last(),
                Some(Err(Error::TcpBadOption)),
                "case {i}"
            );
        }
        // An option that ends exactly at the end of the header is fine.
        let seg = syn_with_options(&[2, 4, 5, 0xb4]);
        assert_eq!(
            TcpPacket::new_checked(&seg[..]).unwrap().mss(),
            Ok(Some(1460))
        );
        // Two MSS options are refused rather than clamping only one.
        let seg = syn_with_options(&[2, 4, 5, 0xb4, 2, 4, 0x23, 0x28]);
        assert_eq!(
            TcpPacket::new_checked(&seg[..]).unwrap().mss(),
            Err(Error::TcpBadOption)
        );
        // Known kinds with the wrong length are errors for the iterator.
        let seg = syn_with_options(&[3, 4, 7, 0]);
        let p = TcpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!(p.option_iter().next(), Some(Err(Error::TcpBadOption)));
        assert_eq!(
            p.find_mss(),
            Ok(None),
            "the MSS finder only cares about structure and MSS"
        );
    }

    #[test]
    fn eol_ends_the_walk() {
        // Garbage after EOL is padding, not options.
        let seg = syn_with_options(&[1, 0, 0xff, 0x00, 2, 4, 5, 0xb4]);
        let p = TcpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!(p.mss(), Ok(None));
        assert_eq!(
            p.option_iter().collect::<Vec<_>>(),
            [Ok(TcpOption::NoOperation), Ok(TcpOption::EndOfList)]
        );
        let seg = syn_with_options(&[]);
        assert_eq!(
            TcpPacket::new_checked(&seg[..])
                .unwrap()
                .option_iter()
                .count(),
            0
        );
    }

    #[test]
    fn clamp_golden_syn() {
        let mut seg = golden().to_vec();
        let mut p = TcpPacket::new_checked(&mut seg[..]).unwrap();
        let change = p.clamp_mss_and_update_checksum(1436).unwrap().unwrap();
        assert_eq!(
            change,
            MssChange {
                old: 1460,
                new: 1436,
                offset: 22
            }
        );
        assert_eq!(p.mss(), Ok(Some(1436)));
        assert!(p.verify_checksum(SRC, DST));
        // Already below the clamp: untouched.
        let change = p.clamp_mss_and_update_checksum(1500).unwrap().unwrap();
        assert!(!change.changed());
        assert_eq!(&seg[22..24], &1436u16.to_be_bytes());
        let mut expected = golden().to_vec();
        expected[22..24].copy_from_slice(&1436u16.to_be_bytes());
        expected[16..18].copy_from_slice(&(0x6b26u16 + 24).to_be_bytes());
        assert_eq!(seg, expected);
    }

    #[test]
    fn clamp_odd_offset_mss() {
        // One NOP puts the MSS value at offset 23: its bytes straddle two checksum words.
        let mut seg = syn_with_options(&[1, 2, 4, 0x23, 0x28, 1, 1, 1]);
        let mut p = TcpPacket::new_checked(&mut seg[..]).unwrap();
        let change = p.clamp_mss(1360).unwrap().unwrap();
        assert_eq!((change.old, change.new, change.offset), (9000, 1360, 23));
        // The aligned formula would be wrong here; the change knows better.
        let before = p.checksum();
        assert_ne!(
            checksum::update_u16(before, 9000, 1360),
            change.update_checksum(before)
        );
        p.set_checksum(change.update_checksum(before));
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn no_mss_option() {
        let mut seg = syn_with_options(&[1, 1, 4, 2]);
        let mut p = TcpPacket::new_checked(&mut seg[..]).unwrap();
        assert_eq!(p.clamp_mss_and_update_checksum(1000), Ok(None));
        assert!(p.verify_checksum(SRC, DST));
    }

    /// Option layouts: some NOPs, optionally SACK-permitted, the MSS, optionally timestamps.
    fn arb_options() -> impl Strategy<Value = Vec<u8>> {
        (
            0usize..4,
            any::<bool>(),
            any::<u16>(),
            any::<bool>(),
            any::<[u8; 8]>(),
        )
            .prop_map(|(nops, sack, mss, ts, ts_bytes)| {
                let mut o = vec![1u8; nops];
                if sack {
                    o.extend([4, 2]);
                }
                o.extend([2, 4]);
                o.extend(mss.to_be_bytes());
                if ts {
                    o.extend([8, 10]);
                    o.extend(ts_bytes);
                }
                o
            })
    }

    proptest! {
        #[test]
        fn clamp_incremental_equals_full_recompute(
            options in arb_options(),
            payload in proptest::collection::vec(any::<u8>(), 0..20),
            max in any::<u16>(),
            src in any::<u32>(),
            dst in any::<u32>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let mut seg = syn_with_options(&options);
            seg.extend_from_slice(&payload);
            let mut p = TcpPacket::new_checked(&mut seg[..]).unwrap();
            p.fill_checksum(src, dst);
            let old = p.mss().unwrap().unwrap();
            let change = p.clamp_mss_and_update_checksum(max).unwrap().unwrap();
            prop_assert_eq!(change.new, old.min(max));
            prop_assert_eq!(p.mss(), Ok(Some(old.min(max))));
            let incremental = p.checksum();
            p.fill_checksum(src, dst);
            prop_assert_eq!(incremental, p.checksum());
            prop_assert!(p.verify_checksum(src, dst));
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..80),
                                       max in any::<u16>()) {
            if data.len() >= 20 && data[0] & 1 == 0 {
                // Half of the cases get a data offset that fits, so the option walker runs.
                data[12] = (((data.len().min(60) / 4) as u8) << 4) | (data[12] & 0x0f);
            }
            if let Ok(mut p) = TcpPacket::new_checked(&mut data[..]) {
                prop_assert!(p.header_len() >= 20);
                let walked = p.option_iter().take(64).count();
                prop_assert!(walked <= 40);
                let found = p.find_mss();
                let clamped = p.clamp_mss_and_update_checksum(max);
                prop_assert_eq!(found.map(|f| f.map(|(old, _)| old)), clamped.map(|c| c.map(|c| c.old)));
                let _ = (p.flags(), p.payload(), p.verify_checksum(Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST));
            }
        }
    }
}
