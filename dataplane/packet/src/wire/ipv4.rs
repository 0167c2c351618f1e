//! IPv4 headers (RFC 791). `new_checked` enforces what every later accessor relies on: version 4,
//! IHL >= 5 with the options inside the buffer, a total length between the header length and the
//! buffer length (the buffer may be longer: Ethernet pads short frames, and
//! [`Ipv4Packet::payload`] trims that), and a fragment that ends at or below 65535 bytes. The
//! header checksum is verified separately ([`Ipv4Packet::verify_checksum`]) so that a caller that
//! trusts a NIC's checksum offload can skip it. Forwarding uses [`Ipv4Packet::decrement_ttl`],
//! which patches the checksum incrementally (RFC 1624) instead of re-summing the header.

use core::borrow::{Borrow, BorrowMut};
use core::net::Ipv4Addr;

use super::checksum;
use super::{be16, byte, bytes, set_be16, set_byte, set_bytes, Error, IpProtocol, Result};

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
    /// Checksum field as a range, for zeroing it before a full recomputation.
    pub const CHECKSUM_RANGE: Range<usize> = CHECKSUM..CHECKSUM + 2;
    pub const HEADER_LEN: usize = 20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Largest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

/// Reserved bit of the flags/fragment-offset word (must be zero; carried unchanged).
pub const FLAG_RESERVED: u16 = 0x8000;
/// Don't-fragment bit of the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// More-fragments bit of the flags/fragment-offset word.
pub const FLAG_MF: u16 = 0x2000;
/// Fragment offset (in 8-byte units) in the flags/fragment-offset word.
pub const OFFSET_MASK: u16 = 0x1fff;

/// Option kind "end of option list" (RFC 791).
pub const OPTION_END: u8 = 0;
/// Option kind "no operation" (RFC 791).
pub const OPTION_NOP: u8 = 1;
/// The "copied" flag of an option kind: the option is repeated in every fragment (RFC 791).
pub const OPTION_COPIED: u8 = 0x80;

/// ECN mask of the type-of-service byte (RFC 3168).
pub const ECN_MASK: u8 = 0x03;
/// ECN "congestion experienced".
pub const ECN_CE: u8 = 0x03;

/// Sum of the `header_len`-byte header at the start of `data`.
#[inline(always)]
fn header_sum(data: &[u8], header_len: usize) -> u16 {
    match Ipv4Header::from_prefix(data) {
        Some(h) if header_len == field::HEADER_LEN => h.sum(),
        _ => data.get(..header_len).map_or(0, checksum::sum),
    }
}

/// The fixed 20-byte part of an IPv4 header as an array (`[u8; 20]`, `&[u8; 20]` or
/// `&mut [u8; 20]`), for the packet path: once the array exists, every accessor is a load or a
/// store at a constant offset, with no bounds check and no `Option`. It validates nothing by
/// itself; [`Ipv4Header::check`] applies [`Ipv4Packet::new_checked`]'s rules (which are
/// written over it). Options, if any, follow the 20 bytes and are not part of the view.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Header<T>(T);

impl<T: Borrow<[u8; HEADER_LEN]>> Ipv4Header<T> {
    /// Wraps the 20 bytes, unvalidated.
    #[inline(always)]
    pub fn new(header: T) -> Self {
        Ipv4Header(header)
    }

    #[inline(always)]
    fn b(&self) -> &[u8; HEADER_LEN] {
        self.0.borrow()
    }

    #[inline(always)]
    fn be16(&self, at: usize) -> u16 {
        let h = self.b();
        u16::from_be_bytes([h[at], h[at + 1]])
    }

    #[inline(always)]
    fn addr(&self, at: usize) -> Ipv4Addr {
        let h = self.b();
        Ipv4Addr::new(h[at], h[at + 1], h[at + 2], h[at + 3])
    }

    /// The version field.
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::VER_IHL] & 0x0f) * 4
    }

    /// The type-of-service byte (DSCP << 2 | ECN).
    #[inline(always)]
    pub fn tos(&self) -> u8 {
        self.b()[field::DSCP_ECN]
    }

    /// Total length (header + payload).
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        self.be16(field::LENGTH)
    }

    /// The flags/fragment-offset word ([`FLAG_DF`], [`FLAG_MF`], [`OFFSET_MASK`]).
    #[inline(always)]
    pub fn flags_offset(&self) -> u16 {
        self.be16(field::FLG_OFF)
    }

    /// Time to live.
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    /// Payload protocol.
    #[inline(always)]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.protocol_number())
    }

    /// Payload protocol number, for a caller that keeps it and converts where it matches: an
    /// `IpProtocol` kept in a struct is built with a compare chain, one converted in a `match`
    /// is compiled into that match.
    #[inline(always)]
    pub fn protocol_number(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        self.be16(field::CHECKSUM)
    }

    /// Source address.
    #[inline(always)]
    pub fn src_addr(&self) -> Ipv4Addr {
        self.addr(field::SRC_ADDR)
    }

    /// Destination address.
    #[inline(always)]
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.addr(field::DST_ADDR)
    }

    /// One's-complement sum of the 20 bytes (the whole header when it has no options; 0xffff
    /// when its checksum is right), as five native 32-bit words: by RFC 1071's byte-order
    /// independence the folded native sum is the big-endian sum with its bytes swapped, which
    /// [`checksum::sum`] undoes the same way.
    #[inline(always)]
    pub fn sum(&self) -> u16 {
        // Below 5 * 2^32: one 32-bit fold, then three 16-bit folds reach 16 bits.
        let acc = self.word_sum();
        let acc = (acc & 0xffff_ffff) + (acc >> 32);
        let acc = (acc & 0xffff) + (acc >> 16);
        let acc = (acc & 0xffff) + (acc >> 16);
        let acc = (acc & 0xffff) + (acc >> 16);
        u16::from_be_bytes((acc as u16).to_ne_bytes())
    }

    /// Whether the checksum of a header without options (these 20 bytes) is right: their
    /// one's-complement sum is 0xffff, which for the plain sum of the five native 32-bit words
    /// means a non-zero multiple of 0xffff (2^16 = 1 modulo 0xffff, so the folds [`Self::sum`]
    /// does keep the residue). One remainder by a constant instead of four folds.
    #[inline(always)]
    pub fn checksum_ok_no_options(&self) -> bool {
        let acc = self.word_sum();
        acc != 0 && acc % 0xffff == 0
    }

    /// The plain sum of the 20 bytes as five native 32-bit words (below 5 * 2^32).
    #[inline(always)]
    fn word_sum(&self) -> u64 {
        let h = self.b();
        let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
        w(0) + w(4) + w(8) + w(12) + w(16)
    }

    /// The version and IHL byte (0x45: version 4, no options).
    #[inline(always)]
    pub fn version_ihl(&self) -> u8 {
        self.b()[field::VER_IHL]
    }

    /// Whether the header checksum is right; `packet` is the buffer the header starts (holding
    /// the options, if any).
    #[inline(always)]
    pub fn verify_checksum(&self, packet: &[u8]) -> bool {
        let header_len = self.header_len();
        let sum = if header_len == HEADER_LEN {
            self.sum()
        } else {
            packet.get(..header_len).map_or(0, checksum::sum)
        };
        sum == 0xffff
    }
}

impl<'a> Ipv4Header<&'a [u8; HEADER_LEN]> {
    /// The first 20 bytes of `bytes`, if there are as many.
    #[inline(always)]
    pub fn from_prefix(bytes: &'a [u8]) -> Option<Self> {
        bytes.first_chunk().map(Ipv4Header)
    }

    /// The header at the start of `packet` after [`Ipv4Packet::new_checked`]'s checks, in its
    /// order and with its errors (version 4, IHL >= 5 with the options inside `packet`, total
    /// length between the header length and `packet`'s, fragment ending at or below 65535).
    /// The checksum is not verified.
    #[inline(always)]
    pub fn check(packet: &'a [u8]) -> Result<Self> {
        let h = Self::from_prefix(packet).ok_or(Error::Ipv4Truncated)?;
        if h.version() != 4 {
            return Err(Error::Ipv4BadVersion);
        }
        let header_len = h.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Ipv4BadIhl);
        }
        if packet.len() < header_len {
            return Err(Error::Ipv4Truncated);
        }
        let total_len = usize::from(h.total_len());
        if total_len < header_len || total_len > packet.len() {
            return Err(Error::Ipv4BadTotalLength);
        }
        let offset = usize::from(h.flags_offset() & OFFSET_MASK) * 8;
        if offset + (total_len - header_len) > usize::from(u16::MAX) {
            return Err(Error::Ipv4BadFragmentOffset);
        }
        Ok(h)
    }
}

impl<'a> Ipv4Header<&'a mut [u8; HEADER_LEN]> {
    /// The first 20 bytes of `bytes`, if there are as many.
    #[inline(always)]
    pub fn from_prefix_mut(bytes: &'a mut [u8]) -> Option<Self> {
        bytes.first_chunk_mut().map(Ipv4Header)
    }
}

impl<T: BorrowMut<[u8; HEADER_LEN]>> Ipv4Header<T> {
    #[inline(always)]
    fn b_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        self.0.borrow_mut()
    }

    #[inline(always)]
    fn set_be16(&mut self, at: usize, value: u16) {
        self.b_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version to 4 and the header length (a multiple of 4, 20..=60).
    #[inline(always)]
    pub fn set_header_len(&mut self, header_len: usize) {
        self.b_mut()[field::VER_IHL] = 0x40 | (header_len / 4) as u8;
    }

    /// Sets the type-of-service byte (checksum not updated).
    #[inline(always)]
    pub fn set_tos(&mut self, tos: u8) {
        self.b_mut()[field::DSCP_ECN] = tos;
    }

    /// Sets the total length (checksum not updated).
    #[inline(always)]
    pub fn set_total_len(&mut self, len: u16) {
        self.set_be16(field::LENGTH, len)
    }

    /// Sets the identification (checksum not updated).
    #[inline(always)]
    pub fn set_ident(&mut self, ident: u16) {
        self.set_be16(field::IDENT, ident)
    }

    /// Sets the flags/fragment-offset word (checksum not updated).
    #[inline(always)]
    pub fn set_flags_offset(&mut self, value: u16) {
        self.set_be16(field::FLG_OFF, value)
    }

    /// Sets the checksum field.
    #[inline(always)]
    pub fn set_checksum(&mut self, value: u16) {
        self.set_be16(field::CHECKSUM, value)
    }

    /// Sets the time to live (checksum not updated).
    #[inline(always)]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.b_mut()[field::TTL] = ttl;
    }

    /// Sets the payload protocol (checksum not updated).
    #[inline(always)]
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.b_mut()[field::PROTOCOL] = protocol.into();
    }

    /// Sets the source address (checksum not updated).
    #[inline(always)]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.b_mut()[field::SRC_ADDR..field::SRC_ADDR + 4].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address (checksum not updated).
    #[inline(always)]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.b_mut()[field::DST_ADDR..field::DST_ADDR + 4].copy_from_slice(&addr.octets());
    }

    /// Recomputes the checksum of an option-less header from scratch.
    #[inline(always)]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = self.sum();
        self.set_checksum(!sum)
    }

    /// Sets the type-of-service byte and patches the checksum incrementally (RFC 1624).
    #[inline(always)]
    pub fn update_tos(&mut self, tos: u8) {
        let ver_ihl = self.b()[field::VER_IHL];
        let old = u16::from_be_bytes([ver_ihl, self.tos()]);
        let new = u16::from_be_bytes([ver_ihl, tos]);
        let ck = checksum::update_u16(self.checksum(), old, new);
        self.set_tos(tos);
        self.set_checksum(ck);
    }

    /// Decrements the TTL and patches the checksum; returns the new TTL, or `None` (header
    /// unchanged) if it was 0. Same result as [`Ipv4Packet::decrement_ttl`] in one
    /// one's-complement addition: for the TTL/protocol word going from `m` to `m - 0x100`,
    /// RFC 1624's `~m + m'` is the constant `0xFEFF` whatever the TTL and protocol (both sums
    /// are congruent modulo 0xFFFF and neither can be zero; an exhaustive test checks it).
    #[inline(always)]
    pub fn decrement_ttl(&mut self) -> Option<u8> {
        let ttl = self.ttl().checked_sub(1)?;
        self.b_mut()[field::TTL] = ttl;
        let ck = !checksum::add(!self.checksum(), 0xFEFF);
        self.set_checksum(ck);
        Some(ttl)
    }
}

/// A read (and, with `T: AsMut`, write) view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` (which starts at the IPv4 header and may extend past the packet) after
    /// validating version, IHL, total length and fragment extent. Does not verify the checksum.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        Ipv4Header::check(buffer.as_ref())?;
        Ok(Ipv4Packet { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (always 4 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        byte(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL * 4), 20..=60.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(byte(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    /// The whole type-of-service byte (DSCP << 2 | ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        byte(self.buffer.as_ref(), field::DSCP_ECN)
    }

    /// Differentiated services code point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// Explicit congestion notification.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    /// Total length (header + payload), as checked against the buffer.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    fn flags_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field * 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// Whether this is a fragment (first, middle or last) rather than a whole datagram.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        byte(self.buffer.as_ref(), field::TTL)
    }

    /// Payload protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(byte(self.buffer.as_ref(), field::PROTOCOL))
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes::<4>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes::<4>(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The header including options.
    #[inline]
    pub fn header(&self) -> &[u8] {
        self.buffer.as_ref().get(..self.header_len()).unwrap_or(&[])
    }

    /// Options (between the fixed header and the payload), possibly empty.
    #[inline]
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(field::HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// The payload, trimmed to the total length (excludes Ethernet padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.header_len()..usize::from(self.total_len()))
            .unwrap_or(&[])
    }

    /// The packet (header + payload) without trailing padding.
    #[inline]
    pub fn packet(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(..usize::from(self.total_len()))
            .unwrap_or(&[])
    }

    /// Whether the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        header_sum(self.buffer.as_ref(), self.header_len()) == 0xffff
    }

    /// [`Self::verify_checksum`] as a `Result` (`Ipv4BadChecksum`).
    #[inline]
    pub fn check_checksum(&self) -> Result<()> {
        if self.verify_checksum() {
            Ok(())
        } else {
            Err(Error::Ipv4BadChecksum)
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the type-of-service byte (checksum not updated).
    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        set_byte(self.buffer.as_mut(), field::DSCP_ECN, tos)
    }

    /// Sets the identification (checksum not updated).
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        set_be16(self.buffer.as_mut(), field::IDENT, ident)
    }

    /// Sets the time to live (checksum not updated).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        set_byte(self.buffer.as_mut(), field::TTL, ttl)
    }

    /// Sets the protocol (checksum not updated).
    #[inline]
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        set_byte(self.buffer.as_mut(), field::PROTOCOL, protocol.into())
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, value)
    }

    /// Sets the source address (checksum not updated).
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        set_bytes(self.buffer.as_mut(), field::SRC_ADDR, addr.octets())
    }

    /// Sets the destination address (checksum not updated).
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        set_bytes(self.buffer.as_mut(), field::DST_ADDR, addr.octets())
    }

    /// Recomputes the header checksum from scratch.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let header_len = self.header_len();
        let data = self.buffer.as_mut();
        if let Some(ck) = data.get_mut(field::CHECKSUM_RANGE) {
            ck.fill(0);
        }
        let value = !header_sum(data, header_len);
        set_be16(data, field::CHECKSUM, value)
    }

    /// Decrements the TTL and patches the checksum incrementally; returns the new TTL, or `None`
    /// (packet unchanged) if the TTL was already 0. The caller drops packets whose TTL is <= 1
    /// *before* forwarding, as RFC 1812 asks.
    #[inline]
    pub fn decrement_ttl(&mut self) -> Option<u8> {
        let data = self.buffer.as_mut();
        let ttl = byte(data, field::TTL);
        let new_ttl = ttl.checked_sub(1)?;
        let protocol = byte(data, field::PROTOCOL);
        // TTL and protocol share one 16-bit word of the header.
        let old_word = u16::from_be_bytes([ttl, protocol]);
        let new_word = u16::from_be_bytes([new_ttl, protocol]);
        let ck = checksum::update_u16(be16(data, field::CHECKSUM), old_word, new_word);
        set_byte(data, field::TTL, new_ttl);
        set_be16(data, field::CHECKSUM, ck);
        Some(new_ttl)
    }

    /// Mutable payload, trimmed to the total length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        self.buffer.as_mut().get_mut(range).unwrap_or(&mut [])
    }
}

/// An IPv4 header without options, parsed or to be emitted (e.g. the outer header of a tunnel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length in bytes (total length - header length).
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// Type-of-service byte (DSCP << 2 | ECN).
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Fragment offset in bytes; a multiple of 8.
    pub frag_offset: u16,
}

impl Ipv4Repr {
    /// Parses a checked packet, verifying its header checksum. Options are skipped (the repr
    /// describes the header a tunnel would emit, which has none).
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        packet.check_checksum()?;
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len() as u16,
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Header length this repr emits (no options).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// Writes the 20-byte header, checksum included, into the front of `buf`; the payload (if
    /// already there) is not touched. Returns the header length. Fails with
    /// `Ipv4BadTotalLength` if header + payload exceed 65535, `Ipv4BadFragmentOffset` if the
    /// offset is not a multiple of 8 or the fragment would end past 65535.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let header = buf
            .get_mut(..field::HEADER_LEN)
            .ok_or(Error::BufferTooSmall)?;
        let total_len = self
            .payload_len
            .checked_add(field::HEADER_LEN as u16)
            .ok_or(Error::Ipv4BadTotalLength)?;
        if self.frag_offset % 8 != 0
            || u32::from(self.frag_offset) + u32::from(self.payload_len) > u32::from(u16::MAX)
        {
            return Err(Error::Ipv4BadFragmentOffset);
        }
        let mut flags_offset = self.frag_offset >> 3;
        if self.dont_frag {
            flags_offset |= FLAG_DF;
        }
        if self.more_frags {
            flags_offset |= FLAG_MF;
        }
        header[field::VER_IHL] = 0x45;
        header[field::DSCP_ECN] = self.tos;
        set_be16(header, field::LENGTH, total_len);
        set_be16(header, field::IDENT, self.ident);
        set_be16(header, field::FLG_OFF, flags_offset);
        header[field::TTL] = self.ttl;
        header[field::PROTOCOL] = self.protocol.into();
        set_be16(header, field::CHECKSUM, 0);
        set_bytes(header, field::SRC_ADDR, self.src_addr.octets());
        set_bytes(header, field::DST_ADDR, self.dst_addr.octets());
        let ck = checksum::checksum(header);
        set_be16(header, field::CHECKSUM, ck);
        Ok(field::HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{GRE_IPV4_FRAME, TCP_SYN_IPV4_FRAME, UDP_IPV4_FRAME};
    use super::*;
    use proptest::prelude::*;

    fn outer() -> [u8; 60] {
        GRE_IPV4_FRAME[14..].try_into().unwrap()
    }

    #[test]
    fn deconstruct_gre_outer() {
        let bytes = outer();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.tos(), 0);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::Gre);
        assert_eq!(p.checksum(), 0xb80e);
        assert_eq!(p.src_addr(), Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(203, 0, 113, 9));
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &bytes[20..]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn padding_is_trimmed() {
        // The UDP frame carries 4 bytes of Ethernet padding after the 57-byte datagram.
        let p = Ipv4Packet::new_checked(&UDP_IPV4_FRAME[14..]).unwrap();
        assert_eq!(p.total_len(), 57);
        assert_eq!(p.payload().len(), 37);
        assert_eq!(p.packet().len(), 57);
        assert_eq!(p.protocol(), IpProtocol::Udp);
        assert!(p.verify_checksum());
    }

    #[test]
    fn construct_matches_golden() {
        for frame in [&GRE_IPV4_FRAME[..], &TCP_SYN_IPV4_FRAME[..]] {
            let golden = &frame[14..];
            let repr = Ipv4Repr::parse(&Ipv4Packet::new_checked(golden).unwrap()).unwrap();
            let mut buf = golden.to_vec();
            buf[..20].fill(0xaa);
            assert_eq!(repr.emit(&mut buf), Ok(20));
            assert_eq!(buf, golden);
        }
    }

    #[test]
    fn options_are_within_the_header() {
        // IHL 6 with a 4-byte router-alert option (RFC 2113).
        let mut bytes = [0u8; 28];
        bytes[..20].copy_from_slice(&outer()[..20]);
        bytes[0] = 0x46;
        bytes[2..4].copy_from_slice(&28u16.to_be_bytes());
        bytes[20..24].copy_from_slice(&[0x94, 0x04, 0x00, 0x00]);
        let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload().len(), 4);
        // The repr drops options, and says so through its payload length.
        assert_eq!(Ipv4Repr::parse(&p).unwrap().payload_len, 4);
        // Options must fit in the buffer: IHL 15 needs 60 bytes.
        bytes[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]).err(),
            Some(Error::Ipv4Truncated)
        );
    }

    #[test]
    fn truncated_at_every_offset() {
        let bytes = outer();
        for n in 0..bytes.len() {
            let err = Ipv4Packet::new_checked(&bytes[..n]).err();
            let expected = if n < 20 {
                Error::Ipv4Truncated
            } else {
                Error::Ipv4BadTotalLength
            };
            assert_eq!(err, Some(expected), "prefix {n}");
        }
    }

    #[test]
    fn bad_version_and_ihl() {
        let mut bytes = outer();
        bytes[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]).err(),
            Some(Error::Ipv4BadVersion)
        );
        for ihl in 0..5 {
            bytes[0] = 0x40 | ihl;
            assert_eq!(
                Ipv4Packet::new_checked(&bytes[..]).err(),
                Some(Error::Ipv4BadIhl)
            );
        }
    }

    #[test]
    fn bad_total_length() {
        let mut bytes = outer();
        for total in [0u16, 19, 61, 0xffff] {
            bytes[2..4].copy_from_slice(&total.to_be_bytes());
            assert_eq!(
                Ipv4Packet::new_checked(&bytes[..]).err(),
                Some(Error::Ipv4BadTotalLength)
            );
        }
        // Total length 20 (no payload) is fine; IHL 6 with total 20 is not.
        bytes[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert!(Ipv4Packet::new_checked(&bytes[..]).is_ok());
        bytes[0] = 0x46;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]).err(),
            Some(Error::Ipv4BadTotalLength)
        );
    }

    #[test]
    fn ping_of_death_fragment() {
        let mut bytes = outer();
        // Offset 8189 * 8 = 65512 plus 40 bytes of payload ends past 65535.
        bytes[6..8].copy_from_slice(&8189u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]).err(),
            Some(Error::Ipv4BadFragmentOffset)
        );
        // 8187 * 8 + 40 = 65536 is still one byte too far; 8186 * 8 + 40 = 65528 fits.
        bytes[6..8].copy_from_slice(&8187u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]).err(),
            Some(Error::Ipv4BadFragmentOffset)
        );
        bytes[6..8].copy_from_slice(&8186u16.to_be_bytes());
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.is_fragment());
        assert_eq!(p.frag_offset(), 65488);
    }

    #[test]
    fn bad_checksum() {
        let mut bytes = outer();
        bytes[11] ^= 0x01;
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p).err(), Some(Error::Ipv4BadChecksum));
        // A flipped bit elsewhere in the header is caught too, one outside it is not.
        let mut bytes = outer();
        bytes[15] ^= 0x80;
        assert!(!Ipv4Packet::new_checked(&bytes[..])
            .unwrap()
            .verify_checksum());
        let mut bytes = outer();
        bytes[25] ^= 0x80;
        assert!(Ipv4Packet::new_checked(&bytes[..])
            .unwrap()
            .verify_checksum());
    }

    #[test]
    fn decrement_ttl() {
        let mut bytes = outer();
        let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(p.decrement_ttl(), Some(63));
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        // 0x40 -> 0x3f in the high byte of word 4: checksum goes up by 0x0100.
        assert_eq!(p.checksum(), 0xb90e);
        p.set_ttl(0);
        p.fill_checksum();
        let before = p.checksum();
        assert_eq!(p.decrement_ttl(), None);
        assert_eq!((p.ttl(), p.checksum()), (0, before));
    }

    #[test]
    fn header_view_ttl_decrement_matches_the_general_update() {
        for ck in 0..=u16::MAX {
            for ttl in [1u8, 2, 63, 64, 65, 128, 254, 255] {
                for proto in [0u8, 1, 6, 17, 47, 50, 255, ck as u8] {
                    let mut h = [0u8; HEADER_LEN];
                    h[8] = ttl;
                    h[9] = proto;
                    h[10..12].copy_from_slice(&ck.to_be_bytes());
                    let mut view = Ipv4Header::new(&mut h);
                    assert_eq!(view.decrement_ttl(), Some(ttl - 1));
                    let old = u16::from_be_bytes([ttl, proto]);
                    let new = u16::from_be_bytes([ttl - 1, proto]);
                    assert_eq!(
                        view.checksum(),
                        checksum::update_u16(ck, old, new),
                        "checksum {ck:#06x} ttl {ttl} protocol {proto}"
                    );
                }
            }
        }
        let mut h = [0u8; HEADER_LEN];
        assert_eq!(Ipv4Header::new(&mut h).decrement_ttl(), None);
        assert_eq!(h, [0; HEADER_LEN]);
    }

    #[test]
    fn header_view_reads_what_the_packet_view_reads() {
        let bytes = outer();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        let h = Ipv4Header::check(&bytes[..]).unwrap();
        assert_eq!((h.version(), h.header_len(), h.tos()), (4, 20, p.tos()));
        assert_eq!(
            (h.total_len(), h.ttl(), h.protocol()),
            (60, 64, IpProtocol::Gre)
        );
        assert_eq!((h.src_addr(), h.dst_addr()), (p.src_addr(), p.dst_addr()));
        assert_eq!(h.checksum(), p.checksum());
        assert!(h.verify_checksum(&bytes) && h.sum() == 0xffff);
        let mut copy: [u8; HEADER_LEN] = bytes[..20].try_into().unwrap();
        let mut v = Ipv4Header::new(&mut copy);
        v.update_tos(0x03);
        assert_eq!(v.sum(), 0xffff);
        v.set_ident(7);
        v.fill_checksum();
        assert_eq!(v.sum(), 0xffff);
    }

    #[test]
    fn fragment_flags() {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IpProtocol::Udp,
            payload_len: 1480,
            ttl: 64,
            tos: 0,
            ident: 7,
            dont_frag: false,
            more_frags: true,
            frag_offset: 1480,
        };
        let mut buf = [0u8; 20];
        repr.emit(&mut buf).unwrap();
        assert_eq!(&buf[6..8], &[0x20, 185]);
        assert_eq!(
            Ipv4Repr {
                frag_offset: 4,
                ..repr
            }
            .emit(&mut buf),
            Err(Error::Ipv4BadFragmentOffset)
        );
        assert_eq!(
            Ipv4Repr {
                payload_len: 65516,
                frag_offset: 0,
                ..repr
            }
            .emit(&mut buf),
            Err(Error::Ipv4BadTotalLength)
        );
        assert_eq!(repr.emit(&mut [0u8; 19]), Err(Error::BufferTooSmall));
    }

    fn arb_repr() -> impl Strategy<Value = Ipv4Repr> {
        (
            any::<[u32; 2]>(),
            any::<u8>(),
            0u16..2000,
            any::<[u8; 2]>(),
            any::<u16>(),
            any::<[bool; 2]>(),
            0u16..8000,
        )
            .prop_map(
                |(addrs, proto, payload_len, [ttl, tos], ident, [df, mf], off)| Ipv4Repr {
                    src_addr: Ipv4Addr::from(addrs[0]),
                    dst_addr: Ipv4Addr::from(addrs[1]),
                    protocol: IpProtocol::from(proto),
                    payload_len,
                    ttl,
                    tos,
                    ident,
                    dont_frag: df,
                    more_frags: mf,
                    frag_offset: off * 8,
                },
            )
    }

    proptest! {
        #[test]
        fn checksum_test_agrees_with_the_folded_sum(mut h in any::<[u8; HEADER_LEN]>(), fix in any::<bool>()) {
            if fix {
                h[10..12].fill(0);
                let ck = checksum::checksum(&h);
                h[10..12].copy_from_slice(&ck.to_be_bytes());
            }
            let v = Ipv4Header::new(&h);
            prop_assert_eq!(v.checksum_ok_no_options(), v.sum() == 0xffff);
            prop_assert_eq!(v.checksum_ok_no_options(), checksum::sum(&h) == 0xffff);
        }

        #[test]
        fn emit_parse_round_trip(repr in arb_repr(), fill in any::<u8>()) {
            prop_assume!(repr.frag_offset as u32 + repr.payload_len as u32 <= 65535);
            let mut buf = vec![fill; 20 + usize::from(repr.payload_len)];
            prop_assert_eq!(repr.emit(&mut buf), Ok(20));
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv4Repr::parse(&p), Ok(repr));
        }

        #[test]
        fn decrement_ttl_equals_full_recompute(repr in arb_repr()) {
            prop_assume!(repr.frag_offset as u32 + repr.payload_len as u32 <= 65535);
            let mut buf = vec![0u8; 20 + usize::from(repr.payload_len)];
            repr.emit(&mut buf).unwrap();
            let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
            let new = p.decrement_ttl();
            prop_assert_eq!(new, repr.ttl.checked_sub(1));
            let incremental = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(incremental, p.checksum());
            prop_assert!(p.verify_checksum());
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if data.len() >= 4 && data[1] & 1 == 0 {
                // Half of the cases get a plausible version/IHL/length so later checks run.
                data[0] = 0x40 | (data[0] & 0x0f);
                let len = data.len() as u16 - u16::from(data[1] & 3);
                data[2..4].copy_from_slice(&len.to_be_bytes());
            }
            if let Ok(mut p) = Ipv4Packet::new_checked(&mut data[..]) {
                prop_assert!(p.header_len() >= 20);
                prop_assert!(p.header_len() + p.payload().len() == usize::from(p.total_len()));
                let _ = (p.options(), p.verify_checksum(), Ipv4Repr::parse(&p), p.src_addr());
                let _ = p.decrement_ttl();
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
            }
        }
    }
}
