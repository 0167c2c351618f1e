//! ICMP for IPv4 (RFC 792), for the three things the appliance does with it: answer echo
//! requests to its own addresses ([`echo_reply_in_place`], which turns the request buffer into
//! the reply without copying: swapping the addresses leaves the IPv4 checksum unchanged and the
//! TTL and type changes are patched incrementally), send "fragmentation needed" (type 3 code 4,
//! with the next-hop MTU, for PMTUD through a tunnel) and "time exceeded" (type 11) errors
//! ([`emit_error`], into a caller-provided buffer, quoting the original IP header and 8 bytes of
//! its payload), and parse health-check probes ([`IcmpRepr`]). [`emit_error`] applies RFC 1122
//! 3.2.2's rules itself, so no caller can emit an ICMP error about an ICMP error, a non-first
//! fragment or a non-unicast source.

use core::net::Ipv4Addr;

use super::checksum;
use super::ipv4::{self, Ipv4Packet, Ipv4Repr};
use super::{be16, byte, set_be16, set_be32, set_byte, Error, IpProtocol, Result};

enum_with_unknown! {
    /// ICMP message types.
    pub enum IcmpMessage(u8) {
        /// Echo reply.
        EchoReply = 0,
        /// Destination unreachable.
        DstUnreachable = 3,
        /// Source quench (deprecated).
        SourceQuench = 4,
        /// Redirect.
        Redirect = 5,
        /// Echo request.
        EchoRequest = 8,
        /// Time exceeded.
        TimeExceeded = 11,
        /// Parameter problem.
        ParamProblem = 12,
    }
}

impl IcmpMessage {
    /// Whether this is an error message (about which no further error may be sent).
    #[inline]
    pub fn is_error(self) -> bool {
        matches!(
            self,
            IcmpMessage::DstUnreachable
                | IcmpMessage::SourceQuench
                | IcmpMessage::Redirect
                | IcmpMessage::TimeExceeded
                | IcmpMessage::ParamProblem
        )
    }
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Echo identifier / first half of "rest of header".
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    /// Next-hop MTU of type 3 code 4 (RFC 1191).
    pub const NEXT_HOP_MTU: usize = 6;
    pub const REST_OF_HEADER: usize = 4;
    pub const HEADER_LEN: usize = 8;
}

/// Length of the ICMP header (type, code, checksum, 4 bytes rest of header).
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Code of "fragmentation needed and DF set" in type 3.
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Code of "TTL exceeded in transit" in type 11.
pub const CODE_TTL_EXCEEDED: u8 = 0;
/// Bytes of the original payload quoted in an error (RFC 792: 64 bits).
pub const QUOTED_PAYLOAD_LEN: usize = 8;
/// Largest packet [`emit_error`] writes: IPv4 + ICMP headers, a 60-byte header quoted, 8 bytes.
pub const MAX_ERROR_LEN: usize =
    ipv4::HEADER_LEN + field::HEADER_LEN + ipv4::MAX_HEADER_LEN + QUOTED_PAYLOAD_LEN;
/// TOS of generated errors: precedence "internetwork control" (CS6), like Linux.
const ERROR_TOS: u8 = 0xc0;

/// A read (and, with `T: AsMut`, write) view of an ICMP message; the buffer is the whole message
/// (the IP payload), since the checksum covers all of it.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer` after checking that the 8-byte header fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(Error::IcmpTruncated);
        }
        Ok(IcmpPacket { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> IcmpMessage {
        IcmpMessage::from(byte(self.buffer.as_ref(), field::TYPE))
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        byte(self.buffer.as_ref(), field::CODE)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier (meaningful for echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (meaningful for echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU (meaningful for type 3 code 4).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Everything after the 8-byte header (echo data, or the quoted packet of an error).
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(field::HEADER_LEN..).unwrap_or(&[])
    }

    /// Whether the checksum over the whole message is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
    }

    /// [`Self::verify_checksum`] as a `Result` (`IcmpBadChecksum`).
    #[inline]
    pub fn check_checksum(&self) -> Result<()> {
        if self.verify_checksum() {
            Ok(())
        } else {
            Err(Error::IcmpBadChecksum)
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the type (checksum not updated).
    #[inline]
    pub fn set_msg_type(&mut self, value: IcmpMessage) {
        set_byte(self.buffer.as_mut(), field::TYPE, value.into())
    }

    /// Sets the code (checksum not updated).
    #[inline]
    pub fn set_msg_code(&mut self, value: u8) {
        set_byte(self.buffer.as_mut(), field::CODE, value)
    }

    /// Sets the echo identifier (checksum not updated).
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        set_be16(self.buffer.as_mut(), field::ECHO_IDENT, value)
    }

    /// Sets the echo sequence number (checksum not updated).
    #[inline]
    pub fn set_echo_seq_no(&mut self, value: u16) {
        set_be16(self.buffer.as_mut(), field::ECHO_SEQNO, value)
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, value)
    }

    /// Recomputes the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(value);
    }

    /// Turns an echo request (type 8 code 0) into the echo reply, patching the checksum
    /// incrementally; identifier, sequence and data stay. `IcmpNotEchoRequest` otherwise.
    #[inline]
    pub fn make_echo_reply(&mut self) -> Result<()> {
        if self.msg_type() != IcmpMessage::EchoRequest || self.msg_code() != 0 {
            return Err(Error::IcmpNotEchoRequest);
        }
        let old = u16::from_be_bytes([IcmpMessage::EchoRequest.into(), 0]);
        let new = u16::from_be_bytes([IcmpMessage::EchoReply.into(), 0]);
        let value = checksum::update_u16(self.checksum(), old, new);
        self.set_msg_type(IcmpMessage::EchoReply);
        self.set_checksum(value);
        Ok(())
    }

    /// Mutable data (after the header).
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

/// An ICMP message header, parsed or to be emitted (its data is whatever follows the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpRepr {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
    },
    /// Destination unreachable; `next_hop_mtu` is meaningful for code 4 and 0 otherwise.
    DstUnreachable {
        /// Code.
        code: u8,
        /// Next-hop MTU.
        next_hop_mtu: u16,
    },
    /// Time exceeded.
    TimeExceeded {
        /// Code (0: TTL in transit, 1: reassembly).
        code: u8,
    },
    /// Any other message; the 4 bytes after the checksum are emitted as zero.
    Other {
        /// Type.
        msg_type: IcmpMessage,
        /// Code.
        code: u8,
    },
}

impl IcmpRepr {
    /// Parses a checked message, verifying its checksum.
    pub fn parse<T: AsRef<[u8]>>(packet: &IcmpPacket<T>) -> Result<IcmpRepr> {
        packet.check_checksum()?;
        let code = packet.msg_code();
        Ok(match (packet.msg_type(), code) {
            (IcmpMessage::EchoRequest, 0) => IcmpRepr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
            },
            (IcmpMessage::EchoReply, 0) => IcmpRepr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
            },
            (IcmpMessage::DstUnreachable, CODE_FRAG_NEEDED) => IcmpRepr::DstUnreachable {
                code,
                next_hop_mtu: packet.next_hop_mtu(),
            },
            (IcmpMessage::DstUnreachable, _) => IcmpRepr::DstUnreachable {
                code,
                next_hop_mtu: 0,
            },
            (IcmpMessage::TimeExceeded, _) => IcmpRepr::TimeExceeded { code },
            (msg_type, _) => IcmpRepr::Other { msg_type, code },
        })
    }

    /// Header length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// Writes the header into the front of `buf`, whose remainder is the message data (already
    /// in place), and fills the checksum over all of `buf`. Returns 8.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < field::HEADER_LEN {
            return Err(Error::BufferTooSmall);
        }
        let (msg_type, code, rest) = match *self {
            IcmpRepr::EchoRequest { ident, seq_no } => (
                IcmpMessage::EchoRequest,
                0,
                u32::from(ident) << 16 | u32::from(seq_no),
            ),
            IcmpRepr::EchoReply { ident, seq_no } => (
                IcmpMessage::EchoReply,
                0,
                u32::from(ident) << 16 | u32::from(seq_no),
            ),
            IcmpRepr::DstUnreachable { code, next_hop_mtu } => {
                (IcmpMessage::DstUnreachable, code, u32::from(next_hop_mtu))
            }
            IcmpRepr::TimeExceeded { code } => (IcmpMessage::TimeExceeded, code, 0),
            IcmpRepr::Other { msg_type, code } => (msg_type, code, 0),
        };
        set_byte(buf, field::TYPE, msg_type.into());
        set_byte(buf, field::CODE, code);
        set_be32(buf, field::REST_OF_HEADER, rest);
        let mut packet = IcmpPacket { buffer: buf };
        packet.fill_checksum();
        Ok(field::HEADER_LEN)
    }
}

/// Turns an IPv4 ICMP echo request (`packet` starts at the IPv4 header; trailing padding is
/// allowed) into the echo reply in place: addresses swapped, TTL set to `ttl`, type 0, both
/// checksums patched incrementally. Returns the reply's length (the IPv4 total length). The
/// caller has checked that the destination is one of its addresses. Fragments, non-echo-requests
/// and packets with a wrong ICMP checksum are refused.
pub fn echo_reply_in_place(packet: &mut [u8], ttl: u8) -> Result<usize> {
    let mut ip = Ipv4Packet::new_checked(packet)?;
    if ip.protocol() != IpProtocol::Icmp || ip.is_fragment() {
        return Err(Error::IcmpNotEchoRequest);
    }
    {
        let mut icmp = IcmpPacket::new_checked(ip.payload_mut())?;
        icmp.check_checksum()?;
        icmp.make_echo_reply()?;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    // Swapping two summands leaves the one's-complement sum, hence the checksum, unchanged.
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    let protocol = u8::from(IpProtocol::Icmp);
    let old = u16::from_be_bytes([ip.ttl(), protocol]);
    let value = checksum::update_u16(ip.checksum(), old, u16::from_be_bytes([ttl, protocol]));
    ip.set_ttl(ttl);
    ip.set_checksum(value);
    Ok(usize::from(ip.total_len()))
}

/// An ICMP error the appliance generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Type 3 code 4: the packet does not fit the tunnel and has DF set.
    FragmentationNeeded {
        /// MTU of the next hop (the tunnel MTU).
        next_hop_mtu: u16,
    },
    /// Type 11 code 0: TTL expired in transit.
    TimeExceeded,
}

/// Whether RFC 1122 3.2.2 (and RFC 1812 4.3.2.7) allow an ICMP error about `original`: not
/// about an ICMP error, a non-first fragment, or a packet whose source is not a unicast host
/// (unspecified, loopback, multicast, class E, broadcast) or whose destination is multicast or
/// broadcast.
pub fn error_allowed<T: AsRef<[u8]>>(original: &Ipv4Packet<T>) -> bool {
    let src = original.src_addr();
    let dst = original.dst_addr();
    let bad_src = src.is_unspecified()
        || src.is_loopback()
        || src.is_multicast()
        || src.is_broadcast()
        || src.octets()[0] >= 240;
    let bad_dst = dst.is_multicast() || dst.is_broadcast();
    let about_error = original.protocol() == IpProtocol::Icmp
        && original
            .payload()
            .first()
            .is_some_and(|&t| IcmpMessage::from(t).is_error());
    !(bad_src || bad_dst || about_error || original.frag_offset() != 0)
}

/// Writes a complete IPv4 packet carrying ICMP error `kind` about `original` (which starts at
/// its IPv4 header) into `buf`: IPv4 from `src_addr` to the original source with TTL `ttl`,
/// the ICMP header, the original IP header with options and the first 8 bytes of its payload.
/// Returns the packet length (at most [`MAX_ERROR_LEN`]). Fails with `IcmpErrorSuppressed` when
/// [`error_allowed`] says no, with the IPv4 error when `original` is not a valid IPv4 packet, and
/// with `BufferTooSmall`.
pub fn emit_error(
    kind: IcmpError,
    original: &[u8],
    src_addr: Ipv4Addr,
    ttl: u8,
    buf: &mut [u8],
) -> Result<usize> {
    let original = Ipv4Packet::new_checked(original)?;
    if !error_allowed(&original) {
        return Err(Error::IcmpErrorSuppressed);
    }
    let quote_len = original.header_len() + original.payload().len().min(QUOTED_PAYLOAD_LEN);
    let icmp_len = field::HEADER_LEN + quote_len;
    let total_len = ipv4::HEADER_LEN + icmp_len;
    let out = buf.get_mut(..total_len).ok_or(Error::BufferTooSmall)?;
    let (ip_header, icmp) = out.split_at_mut(ipv4::HEADER_LEN);
    Ipv4Repr {
        src_addr,
        dst_addr: original.src_addr(),
        protocol: IpProtocol::Icmp,
        payload_len: icmp_len as u16,
        ttl,
        tos: ERROR_TOS,
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(ip_header)?;
    // Both sides are `quote_len` long by construction; the guard keeps this panic-free anyway.
    if let (Some(quote), Some(src)) = (
        icmp.get_mut(field::HEADER_LEN..),
        original.packet().get(..quote_len),
    ) {
        if quote.len() == src.len() {
            quote.copy_from_slice(src);
        }
    }
    let repr = match kind {
        IcmpError::FragmentationNeeded { next_hop_mtu } => IcmpRepr::DstUnreachable {
            code: CODE_FRAG_NEEDED,
            next_hop_mtu,
        },
        IcmpError::TimeExceeded => IcmpRepr::TimeExceeded {
            code: CODE_TTL_EXCEEDED,
        },
    };
    repr.emit(icmp)?;
    Ok(total_len)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{GRE_IPV4_FRAME, TCP_SYN_IPV4_FRAME};
    use super::*;
    use proptest::prelude::*;

    /// The inner IPv4 + ICMP echo request of the GRE fixture.
    fn echo_request() -> &'static [u8] {
        &GRE_IPV4_FRAME[38..]
    }

    /// Expected reply to [`echo_request`] with TTL 64 (checked with Wireshark).
    const ECHO_REPLY: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0x00, 0x01, 0x00, 0x00, 0x40, 0x01, 0x65, 0xd7, // IPv4
        0x0a, 0x00, 0x01, 0x01, 0x0a, 0x00, 0x00, 0x01, //
        0x00, 0x00, 0x32, 0x6c, 0x12, 0x34, 0x00, 0x01, // ICMP echo reply
        0x63, 0x6f, 0x6e, 0x64, 0x75, 0x69, 0x74, 0x21,
    ];

    /// Fragmentation needed (MTU 1476) about the TCP SYN fixture, from 203.0.113.9, TTL 64.
    const FRAG_NEEDED: [u8; 56] = [
        0x45, 0xc0, 0x00, 0x38, 0x00, 0x00, 0x00, 0x00, 0x40, 0x01, 0x7b, 0xf1, // IPv4
        0xcb, 0x00, 0x71, 0x09, 0xc0, 0x00, 0x02, 0x0a, //
        0x03, 0x04, 0x37, 0xf9, 0x00, 0x00, 0x05, 0xc4, // ICMP 3/4, MTU 1476
        0x45, 0x00, 0x00, 0x3c, 0x3f, 0xa0, 0x40, 0x00, 0x40, 0x06, 0x0e, 0xca, // quoted IPv4
        0xc0, 0x00, 0x02, 0x0a, 0xc6, 0x33, 0x64, 0x14, //
        0xc0, 0x00, 0x01, 0xbb, 0x5b, 0xd0, 0xa1, 0xb2, // first 8 bytes of TCP
    ];

    /// Time exceeded about [`echo_request`], from 203.0.113.9, TTL 255.
    const TIME_EXCEEDED: [u8; 56] = [
        0x45, 0xc0, 0x00, 0x38, 0x00, 0x00, 0x00, 0x00, 0xff, 0x01, 0x74, 0xfa, // IPv4
        0xcb, 0x00, 0x71, 0x09, 0x0a, 0x00, 0x00, 0x01, //
        0x0b, 0x00, 0xb0, 0x5e, 0x00, 0x00, 0x00, 0x00, // ICMP 11/0
        0x45, 0x00, 0x00, 0x24, 0x00, 0x01, 0x00, 0x00, 0x3f, 0x01, 0x66, 0xd7, // quoted IPv4
        0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x01, 0x01, //
        0x08, 0x00, 0x2a, 0x6c, 0x12, 0x34, 0x00, 0x01, // first 8 bytes of ICMP
    ];

    const LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

    #[test]
    fn deconstruct_echo_request() {
        let p = IcmpPacket::new_checked(&echo_request()[20..]).unwrap();
        assert_eq!(p.msg_type(), IcmpMessage::EchoRequest);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x2a6c);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"conduit!");
        assert!(p.verify_checksum());
        assert_eq!(
            IcmpRepr::parse(&p),
            Ok(IcmpRepr::EchoRequest {
                ident: 0x1234,
                seq_no: 1
            })
        );
    }

    #[test]
    fn construct_echo_request() {
        let golden = &echo_request()[20..];
        let mut buf = golden.to_vec();
        buf[..8].fill(0x5a);
        let repr = IcmpRepr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
        };
        assert_eq!(repr.emit(&mut buf), Ok(8));
        assert_eq!(buf, golden);
        assert_eq!(repr.emit(&mut [0u8; 7]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn truncated_and_bad_checksum() {
        let golden = &echo_request()[20..];
        for n in 0..8 {
            assert_eq!(
                IcmpPacket::new_checked(&golden[..n]).err(),
                Some(Error::IcmpTruncated)
            );
        }
        let mut bad = golden.to_vec();
        bad[12] ^= 0x01;
        let p = IcmpPacket::new_checked(&bad[..]).unwrap();
        assert_eq!(IcmpRepr::parse(&p), Err(Error::IcmpBadChecksum));
    }

    #[test]
    fn echo_reply_in_place_matches_golden() {
        let mut buf = echo_request().to_vec();
        buf.extend_from_slice(&[0; 10]); // Ethernet padding stays out of the reply
        assert_eq!(echo_reply_in_place(&mut buf, 64), Ok(36));
        assert_eq!(&buf[..36], &ECHO_REPLY);
        // The reply is not a request any more.
        assert_eq!(
            echo_reply_in_place(&mut buf, 64),
            Err(Error::IcmpNotEchoRequest)
        );
    }

    #[test]
    fn echo_reply_refusals() {
        let mut bad = echo_request().to_vec();
        bad[30] ^= 0xff; // ICMP payload corrupted
        assert_eq!(
            echo_reply_in_place(&mut bad, 64),
            Err(Error::IcmpBadChecksum)
        );
        let mut frag = echo_request().to_vec();
        frag[6] = 0x20; // MF
        assert_eq!(
            echo_reply_in_place(&mut frag, 64),
            Err(Error::IcmpNotEchoRequest)
        );
        let mut tcp = TCP_SYN_IPV4_FRAME[14..].to_vec();
        assert_eq!(
            echo_reply_in_place(&mut tcp, 64),
            Err(Error::IcmpNotEchoRequest)
        );
        assert_eq!(
            echo_reply_in_place(&mut [0x45; 10], 64),
            Err(Error::Ipv4Truncated)
        );
        let mut short = echo_request()[..24].to_vec();
        short[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(
            echo_reply_in_place(&mut short, 64),
            Err(Error::IcmpTruncated)
        );
    }

    #[test]
    fn frag_needed_matches_golden() {
        let mut buf = [0u8; MAX_ERROR_LEN];
        let kind = IcmpError::FragmentationNeeded { next_hop_mtu: 1476 };
        let n = emit_error(kind, &TCP_SYN_IPV4_FRAME[14..], LOCAL, 64, &mut buf).unwrap();
        assert_eq!(&buf[..n], &FRAG_NEEDED);
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(
            IcmpRepr::parse(&icmp),
            Ok(IcmpRepr::DstUnreachable {
                code: 4,
                next_hop_mtu: 1476
            })
        );
        assert_eq!(
            emit_error(kind, &TCP_SYN_IPV4_FRAME[14..], LOCAL, 64, &mut buf[..55]),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn time_exceeded_matches_golden() {
        let mut buf = [0u8; MAX_ERROR_LEN];
        let n = emit_error(
            IcmpError::TimeExceeded,
            echo_request(),
            LOCAL,
            255,
            &mut buf,
        )
        .unwrap();
        assert_eq!(&buf[..n], &TIME_EXCEEDED);
    }

    #[test]
    fn short_payload_and_options_are_quoted_whole() {
        // IHL 6 and a 3-byte payload: the quote is 24 + 3 bytes.
        let mut orig = [0u8; 27];
        orig[..20].copy_from_slice(&echo_request()[..20]);
        orig[0] = 0x46;
        orig[2..4].copy_from_slice(&27u16.to_be_bytes());
        orig[9] = 17;
        orig[20..24].copy_from_slice(&[1, 1, 1, 0]);
        let mut buf = [0u8; MAX_ERROR_LEN];
        let n = emit_error(IcmpError::TimeExceeded, &orig, LOCAL, 64, &mut buf).unwrap();
        assert_eq!(n, 20 + 8 + 27);
        assert_eq!(&buf[28..n], &orig[..]);
        assert!(IcmpPacket::new_checked(&buf[20..n])
            .unwrap()
            .verify_checksum());
    }

    #[test]
    fn errors_are_suppressed_where_rfc1122_says() {
        let mut buf = [0u8; MAX_ERROR_LEN];
        let te = IcmpError::TimeExceeded;
        // About an ICMP error (our own time exceeded).
        assert_eq!(
            emit_error(te, &TIME_EXCEEDED, LOCAL, 64, &mut buf),
            Err(Error::IcmpErrorSuppressed)
        );
        // A non-first fragment.
        let mut frag = TCP_SYN_IPV4_FRAME[14..].to_vec();
        frag[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
        assert_eq!(
            emit_error(te, &frag, LOCAL, 64, &mut buf),
            Err(Error::IcmpErrorSuppressed)
        );
        // A first fragment is fine.
        frag[6..8].copy_from_slice(&0x2000u16.to_be_bytes());
        assert!(emit_error(te, &frag, LOCAL, 64, &mut buf).is_ok());
        // Non-unicast sources and multicast/broadcast destinations.
        for (at, addr) in [
            (12, [0, 0, 0, 0]),
            (12, [127, 0, 0, 1]),
            (12, [224, 0, 0, 5]),
            (12, [255; 4]),
            (12, [240, 0, 0, 1]),
            (16, [239, 1, 1, 1]),
            (16, [255; 4]),
        ] {
            let mut orig = TCP_SYN_IPV4_FRAME[14..].to_vec();
            orig[at..at + 4].copy_from_slice(&addr);
            assert_eq!(
                emit_error(te, &orig, LOCAL, 64, &mut buf),
                Err(Error::IcmpErrorSuppressed),
                "{addr:?}"
            );
        }
        // An echo request (not an error) may be answered with an error.
        assert!(emit_error(te, echo_request(), LOCAL, 64, &mut buf).is_ok());
        // Garbage is reported as what is wrong with it.
        assert_eq!(
            emit_error(te, &[0x45; 19], LOCAL, 64, &mut buf),
            Err(Error::Ipv4Truncated)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..100),
                                       mtu in any::<u16>()) {
            if let Ok(mut p) = IcmpPacket::new_checked(data.clone()) {
                let _ = (IcmpRepr::parse(&p), p.data(), p.next_hop_mtu());
                let was_request = p.msg_type() == IcmpMessage::EchoRequest && p.msg_code() == 0;
                prop_assert_eq!(p.make_echo_reply().is_ok(), was_request);
            }
            let mut buf = [0u8; MAX_ERROR_LEN];
            if let Ok(n) = emit_error(IcmpError::FragmentationNeeded { next_hop_mtu: mtu }, &data, LOCAL, 64, &mut buf) {
                let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
                prop_assert!(ip.verify_checksum());
                prop_assert!(IcmpPacket::new_checked(ip.payload()).unwrap().verify_checksum());
            }
            let mut copy = data.clone();
            let _ = echo_reply_in_place(&mut copy, 64);
        }

        #[test]
        fn echo_reply_checksums_equal_full_recompute(
            ident in any::<u16>(), seq_no in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            src in any::<u32>(), dst in any::<u32>(), ttl in any::<u8>(), new_ttl in any::<u8>(),
        ) {
            let mut pkt = vec![0u8; 28];
            pkt.extend_from_slice(&payload);
            IcmpRepr::EchoRequest { ident, seq_no }.emit(&mut pkt[20..]).unwrap();
            Ipv4Repr {
                src_addr: Ipv4Addr::from(src), dst_addr: Ipv4Addr::from(dst), protocol: IpProtocol::Icmp,
                payload_len: (8 + payload.len()) as u16, ttl, tos: 0, ident: 1, dont_frag: true,
                more_frags: false, frag_offset: 0,
            }.emit(&mut pkt).unwrap();
            prop_assert_eq!(echo_reply_in_place(&mut pkt, new_ttl), Ok(pkt.len()));
            let mut ip = Ipv4Packet::new_checked(&mut pkt[..]).unwrap();
            prop_assert_eq!((ip.src_addr(), ip.dst_addr(), ip.ttl()), (Ipv4Addr::from(dst), Ipv4Addr::from(src), new_ttl));
            prop_assert!(ip.verify_checksum());
            let ck = ip.checksum();
            ip.fill_checksum();
            prop_assert_eq!(ck, ip.checksum());
            let mut icmp = IcmpPacket::new_checked(ip.payload_mut()).unwrap();
            prop_assert_eq!(IcmpRepr::parse(&icmp), Ok(IcmpRepr::EchoReply { ident, seq_no }));
            let ck = icmp.checksum();
            icmp.fill_checksum();
            prop_assert_eq!(ck, icmp.checksum());
        }
    }
}
