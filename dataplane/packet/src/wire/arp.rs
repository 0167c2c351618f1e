//! ARP for IPv4 over Ethernet (RFC 826), the only kind the appliance answers: requests for its
//! local addresses get a reply, built either as a new [`ArpRepr`] ([`ArpRepr::reply`]) or in place
//! ([`ArpPacket::make_reply`], which reuses the received buffer, saving an mbuf allocation).
//! Anything but htype 1 / ptype 0x0800 / hlen 6 / plen 4 is rejected as `ArpUnsupported`.

use core::net::Ipv4Addr;

use super::{be16, bytes, set_be16, set_bytes, Error, EtherType, EthernetAddress, Result};

enum_with_unknown! {
    /// ARP operation code.
    pub enum ArpOperation(u16) {
        /// Who has target IP?
        Request = 1,
        /// Source IP is at source hardware address.
        Reply = 2,
    }
}

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
    pub const PACKET_LEN: usize = 28;
}

/// Length of an IPv4-over-Ethernet ARP packet.
pub const PACKET_LEN: usize = field::PACKET_LEN;

const HTYPE_ETHERNET: u16 = 1;

/// A view of an IPv4-over-Ethernet ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` after checking its length and that it is IPv4 over Ethernet.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::PACKET_LEN {
            return Err(Error::ArpTruncated);
        }
        if be16(data, field::HTYPE) != HTYPE_ETHERNET
            || be16(data, field::PTYPE) != u16::from(EtherType::Ipv4)
            || data[field::HLEN] != 6
            || data[field::PLEN] != 4
        {
            return Err(Error::ArpUnsupported);
        }
        Ok(ArpPacket { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Operation.
    #[inline]
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(be16(self.buffer.as_ref(), field::OPER))
    }

    /// Sender hardware address.
    #[inline]
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress(bytes(self.buffer.as_ref(), field::SHA))
    }

    /// Sender protocol address.
    #[inline]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes::<4>(self.buffer.as_ref(), field::SPA))
    }

    /// Target hardware address.
    #[inline]
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress(bytes(self.buffer.as_ref(), field::THA))
    }

    /// Target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes::<4>(self.buffer.as_ref(), field::TPA))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Turns a request into the reply "`target_protocol_addr` is at `our_hw`", in place: the
    /// sender becomes the target and we become the sender. The caller has checked that the
    /// request is for one of its addresses. Fails with `ArpUnsupported` on a non-request.
    pub fn make_reply(&mut self, our_hw: EthernetAddress) -> Result<()> {
        if self.operation() != ArpOperation::Request {
            return Err(Error::ArpUnsupported);
        }
        let sha: [u8; 6] = bytes(self.buffer.as_ref(), field::SHA);
        let spa: [u8; 4] = bytes(self.buffer.as_ref(), field::SPA);
        let tpa: [u8; 4] = bytes(self.buffer.as_ref(), field::TPA);
        let data = self.buffer.as_mut();
        set_be16(data, field::OPER, ArpOperation::Reply.into());
        set_bytes(data, field::SHA, our_hw.0);
        set_bytes(data, field::SPA, tpa);
        set_bytes(data, field::THA, sha);
        set_bytes(data, field::TPA, spa);
        Ok(())
    }
}

/// An IPv4-over-Ethernet ARP packet, parsed or to be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address.
    pub target_hardware_addr: EthernetAddress,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a checked packet.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> ArpRepr {
        ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        }
    }

    /// The reply to this request, announcing `our_hw` for the requested address; `None` if this
    /// is not a request.
    pub fn reply(&self, our_hw: EthernetAddress) -> Option<ArpRepr> {
        (self.operation == ArpOperation::Request).then_some(ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: our_hw,
            source_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.source_hardware_addr,
            target_protocol_addr: self.source_protocol_addr,
        })
    }

    /// Bytes [`ArpRepr::emit`] writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        field::PACKET_LEN
    }

    /// Writes the packet into the front of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < field::PACKET_LEN {
            return Err(Error::BufferTooSmall);
        }
        set_be16(buf, field::HTYPE, HTYPE_ETHERNET);
        set_be16(buf, field::PTYPE, EtherType::Ipv4.into());
        buf[field::HLEN] = 6;
        buf[field::PLEN] = 4;
        set_be16(buf, field::OPER, self.operation.into());
        set_bytes(buf, field::SHA, self.source_hardware_addr.0);
        set_bytes(buf, field::SPA, self.source_protocol_addr.octets());
        set_bytes(buf, field::THA, self.target_hardware_addr.0);
        set_bytes(buf, field::TPA, self.target_protocol_addr.octets());
        Ok(field::PACKET_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A real request: who has 192.168.1.1? tell 192.168.1.100 (52:54:00:12:34:56), followed by
    /// the 18 bytes of Ethernet padding that a minimum-size frame carries.
    const REQUEST: [u8; 46] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet/IPv4, request
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 192, 168, 1, 100, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 168, 1, 1, // target
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];

    const OUR_HW: EthernetAddress = EthernetAddress([0x02, 0xc0, 0xd0, 0x00, 0x00, 0x01]);

    const REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // Ethernet/IPv4, reply
        0x02, 0xc0, 0xd0, 0x00, 0x00, 0x01, 192, 168, 1, 1, // sender: us
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 192, 168, 1, 100, // target: asker
    ];

    #[test]
    fn deconstruct_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(
            p.source_hardware_addr(),
            EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(p.source_protocol_addr(), Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(p.target_hardware_addr(), EthernetAddress([0; 6]));
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(192, 168, 1, 1));
    }

    #[test]
    fn reply_repr_emits_golden() {
        let req = ArpRepr::parse(&ArpPacket::new_checked(&REQUEST[..]).unwrap());
        let reply = req.reply(OUR_HW).unwrap();
        let mut buf = [0u8; 28];
        assert_eq!(reply.emit(&mut buf), Ok(28));
        assert_eq!(buf, REPLY);
        assert_eq!(reply.reply(OUR_HW), None);
        assert_eq!(reply.emit(&mut [0u8; 27]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn reply_in_place_matches_golden() {
        let mut buf = REQUEST;
        let mut p = ArpPacket::new_checked(&mut buf[..]).unwrap();
        p.make_reply(OUR_HW).unwrap();
        assert_eq!(p.make_reply(OUR_HW), Err(Error::ArpUnsupported));
        assert_eq!(&buf[..28], &REPLY);
    }

    #[test]
    fn malformed() {
        for n in 0..28 {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST[..n]).err(),
                Some(Error::ArpTruncated)
            );
        }
        for (at, value) in [(1, 6), (2, 0x86), (4, 8), (5, 16)] {
            let mut bad = REQUEST;
            bad[at] = value;
            assert_eq!(
                ArpPacket::new_checked(&bad[..]).err(),
                Some(Error::ArpUnsupported),
                "{at}"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if data.len() >= 6 && data[0] & 1 == 0 {
                // Make the header valid half of the time so the accessors get exercised.
                data[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
            }
            if let Ok(mut p) = ArpPacket::new_checked(&mut data[..]) {
                let repr = ArpRepr::parse(&p);
                let was_request = repr.operation == ArpOperation::Request;
                prop_assert_eq!(p.make_reply(OUR_HW).is_ok(), was_request);
            }
        }

        #[test]
        fn emit_parse_round_trip(op in any::<u16>(), sha in any::<[u8; 6]>(), spa in any::<u32>(),
                                 tha in any::<[u8; 6]>(), tpa in any::<u32>()) {
            let repr = ArpRepr {
                operation: ArpOperation::from(op),
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            };
            let mut buf = [0u8; 28];
            repr.emit(&mut buf).unwrap();
            prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()), repr);
        }
    }
}
