//! Ethernet II frames with at most one 802.1Q tag. The view hides the tag:
//! [`EthernetFrame::ethertype`] and [`EthernetFrame::payload`] are those after the tag, and
//! [`EthernetFrame::vlan_tci`] says whether there was one. Double tagging is not unwrapped: an
//! 802.1ad outer tag shows up as [`EtherType::QinQ`] and a second 802.1Q tag as
//! [`EtherType::Vlan`], for the caller to drop as unsupported. The frame may carry trailing
//! padding (minimum frame size); the payload includes it and the IP layer trims it by its own
//! length field.

use super::{be16, bytes, set_be16, set_bytes, Error, Result};

enum_with_unknown! {
    /// EtherType values the dataplane acts on (also GRE's protocol type field).
    pub enum EtherType(u16) {
        /// IPv4.
        Ipv4 = 0x0800,
        /// ARP.
        Arp = 0x0806,
        /// 802.1Q VLAN tag.
        Vlan = 0x8100,
        /// IPv6.
        Ipv6 = 0x86dd,
        /// 802.1ad service tag (QinQ outer tag).
        QinQ = 0x88a8,
    }
}

/// A 48-bit Ethernet (MAC) address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// The raw octets.
    #[inline]
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Broadcast address.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit set (includes broadcast).
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Neither multicast nor broadcast.
    #[inline]
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether every octet is zero.
    #[inline]
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

/// Why a text is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}: expected a MAC address such as 02:00:5e:00:53:01")]
pub struct ParseEthernetAddressError(String);

/// Six colon-separated pairs of hex digits, either case (`02:00:5e:00:53:01`).
impl core::str::FromStr for EthernetAddress {
    type Err = ParseEthernetAddressError;

    fn from_str(text: &str) -> core::result::Result<Self, ParseEthernetAddressError> {
        let err = || ParseEthernetAddressError(text.to_string());
        let mut out = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            // from_str_radix would accept a sign ("+1").
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(EthernetAddress(out))
    }
}

/// From a YAML/JSON string through `FromStr`, so the parse error is the message.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for EthernetAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        struct MacVisitor;
        impl serde::de::Visitor<'_> for MacVisitor {
            type Value = EthernetAddress;

            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a MAC address such as 02:00:5e:00:53:01")
            }

            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> core::result::Result<EthernetAddress, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(MacVisitor)
    }
}

impl core::fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl core::fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

/// Byte offsets of the header fields (for code over fixed-size arrays).
pub mod field {
    #![allow(missing_docs)]
    pub const DESTINATION: usize = 0;
    pub const SOURCE: usize = 6;
    pub const ETHERTYPE: usize = 12;
    /// Tag control information (PCP, DEI, VID) of an 802.1Q tag.
    pub const VLAN_TCI: usize = 14;
    pub const VLAN_ETHERTYPE: usize = 16;
    pub const HEADER_LEN: usize = 14;
    pub const VLAN_HEADER_LEN: usize = 18;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Length of an Ethernet header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = field::VLAN_HEADER_LEN;

/// A read (and, with `T: AsMut`, write) view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
    /// Cached: whether the outer EtherType is 802.1Q (checked to fit by `new_checked`).
    tagged: bool,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` after checking that the header (and the tag, if announced) fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::HEADER_LEN {
            return Err(Error::EthernetTruncated);
        }
        let tagged = be16(data, field::ETHERTYPE) == u16::from(EtherType::Vlan);
        if tagged && data.len() < field::VLAN_HEADER_LEN {
            return Err(Error::VlanTruncated);
        }
        Ok(EthernetFrame { buffer, tagged })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress(bytes(self.buffer.as_ref(), field::DESTINATION))
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress(bytes(self.buffer.as_ref(), field::SOURCE))
    }

    /// The 802.1Q tag control information (PCP 3 bits, DEI 1 bit, VID 12 bits), if tagged.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        self.tagged
            .then(|| be16(self.buffer.as_ref(), field::VLAN_TCI))
    }

    /// The VLAN id (12 bits), if tagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|tci| tci & 0x0fff)
    }

    /// Header length: 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.tagged {
            field::VLAN_HEADER_LEN
        } else {
            field::HEADER_LEN
        }
    }

    #[inline]
    fn ethertype_offset(&self) -> usize {
        if self.tagged {
            field::VLAN_ETHERTYPE
        } else {
            field::ETHERTYPE
        }
    }

    /// The EtherType of the payload (after the tag, if any).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), self.ethertype_offset()))
    }

    /// Everything after the header, including any trailing padding.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        set_bytes(self.buffer.as_mut(), field::DESTINATION, addr.0)
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        set_bytes(self.buffer.as_mut(), field::SOURCE, addr.0)
    }

    /// Sets the payload EtherType (after the tag, if any).
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        let at = self.ethertype_offset();
        set_be16(self.buffer.as_mut(), at, ethertype.into())
    }

    /// Sets the tag control information; does nothing on an untagged frame.
    #[inline]
    pub fn set_vlan_tci(&mut self, tci: u16) {
        if self.tagged {
            set_be16(self.buffer.as_mut(), field::VLAN_TCI, tci)
        }
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        self.buffer.as_mut().get_mut(at..).unwrap_or(&mut [])
    }
}

/// An Ethernet header, parsed or to be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// 802.1Q tag control information, if tagged.
    pub vlan_tci: Option<u16>,
    /// Payload EtherType.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Parses a checked frame.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlan_tci: frame.vlan_tci(),
            ethertype: frame.ethertype(),
        }
    }

    /// Header length this repr emits.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        if self.vlan_tci.is_some() {
            field::VLAN_HEADER_LEN
        } else {
            field::HEADER_LEN
        }
    }

    /// Writes the header into the front of `buf`; returns its length.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        set_bytes(buf, field::DESTINATION, self.dst_addr.0);
        set_bytes(buf, field::SOURCE, self.src_addr.0);
        match self.vlan_tci {
            Some(tci) => {
                set_be16(buf, field::ETHERTYPE, EtherType::Vlan.into());
                set_be16(buf, field::VLAN_TCI, tci);
                set_be16(buf, field::VLAN_ETHERTYPE, self.ethertype.into());
            }
            None => set_be16(buf, field::ETHERTYPE, self.ethertype.into()),
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UNTAGGED: [u8; 18] = [
        0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x5d, // dst
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x14, // start of payload
    ];

    const TAGGED: [u8; 20] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x81, 0x00, 0xa0, 0x64, // 802.1Q, PCP 5, VID 100
        0x08, 0x06, // ARP
        0x00, 0x01,
    ];

    #[test]
    fn address_parses_and_prints() {
        let m: EthernetAddress = "02:00:5E:00:53:0a".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0x5e, 0, 0x53, 0x0a]);
        assert_eq!(m.to_string(), "02:00:5e:00:53:0a");
        assert_eq!(format!("{m:?}"), "02:00:5e:00:53:0a");
        assert!(!m.is_multicast());
        assert!(!m.is_zero());
        assert!("01:00:5e:00:00:01"
            .parse::<EthernetAddress>()
            .unwrap()
            .is_multicast());
        assert!("00:00:00:00:00:00"
            .parse::<EthernetAddress>()
            .unwrap()
            .is_zero());
        for bad in [
            "",
            "02:00:5e:00:53",
            "02:00:5e:00:53:01:02",
            "02-00-5e-00-53-01",
            "2:00:5e:00:53:01",
            "02:00:5e:00:53:0g",
            "02:00:5e:00:53:+1",
        ] {
            let e = bad.parse::<EthernetAddress>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{bad}: expected a MAC address such as 02:00:5e:00:53:01")
            );
        }
    }

    #[test]
    fn deconstruct_untagged() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(
            f.dst_addr(),
            EthernetAddress([0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x5d])
        );
        assert_eq!(f.src_addr().to_string(), "52:54:00:12:34:56");
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.vlan_tci(), None);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[0x45, 0x00, 0x00, 0x14]);
    }

    #[test]
    fn deconstruct_tagged() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert!(f.dst_addr().is_broadcast());
        assert_eq!(f.vlan_tci(), Some(0xa064));
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &[0x00, 0x01]);
    }

    #[test]
    fn construct_matches_golden() {
        for golden in [&UNTAGGED[..], &TAGGED[..]] {
            let repr = EthernetRepr::parse(&EthernetFrame::new_checked(golden).unwrap());
            let mut buf = golden.to_vec();
            buf[..repr.buffer_len()].fill(0);
            assert_eq!(repr.emit(&mut buf), Ok(repr.buffer_len()));
            assert_eq!(buf, golden);
        }
        let repr = EthernetRepr::parse(&EthernetFrame::new_checked(&TAGGED[..]).unwrap());
        assert_eq!(repr.emit(&mut [0u8; 17]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn setters() {
        let mut buf = TAGGED;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_ethertype(EtherType::Ipv6);
        f.set_vlan_tci(7);
        f.set_src_addr(EthernetAddress([2, 0, 0, 0, 0, 1]));
        f.set_dst_addr(EthernetAddress([2, 0, 0, 0, 0, 2]));
        f.payload_mut()[0] = 0x60;
        assert_eq!(f.ethertype(), EtherType::Ipv6);
        assert_eq!(f.vlan_id(), Some(7));
        assert_eq!(
            &buf[..14],
            &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00]
        );
        assert_eq!(&buf[16..19], &[0x86, 0xdd, 0x60]);
    }

    #[test]
    fn truncated_at_every_offset() {
        for n in 0..14 {
            assert_eq!(
                EthernetFrame::new_checked(&UNTAGGED[..n]).err(),
                Some(Error::EthernetTruncated)
            );
        }
        assert!(EthernetFrame::new_checked(&UNTAGGED[..14]).is_ok());
        for n in 14..18 {
            assert_eq!(
                EthernetFrame::new_checked(&TAGGED[..n]).err(),
                Some(Error::VlanTruncated)
            );
        }
        assert!(EthernetFrame::new_checked(&TAGGED[..18]).is_ok());
    }

    #[test]
    fn address_classes() {
        assert!(EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(EthernetAddress([0x02, 0, 0, 0, 0, 1]).is_unicast());
        assert!(!EthernetAddress::BROADCAST.is_unicast());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(f) = EthernetFrame::new_checked(&data[..]) {
                let repr = EthernetRepr::parse(&f);
                prop_assert_eq!(f.header_len() + f.payload().len(), data.len());
                prop_assert_eq!(repr.buffer_len(), f.header_len());
                let _ = (f.vlan_id(), f.src_addr(), f.dst_addr());
            }
        }

        #[test]
        fn emit_parse_round_trip(
            src in any::<[u8; 6]>(), dst in any::<[u8; 6]>(),
            tci in proptest::option::of(any::<u16>()), ethertype in any::<u16>(),
        ) {
            // An untagged header whose EtherType says "tag follows" is not representable.
            prop_assume!(tci.is_some() || ethertype != 0x8100);
            let repr = EthernetRepr {
                src_addr: EthernetAddress(src),
                dst_addr: EthernetAddress(dst),
                vlan_tci: tci,
                ethertype: EtherType::from(ethertype),
            };
            let mut buf = [0u8; 18];
            let n = repr.emit(&mut buf).unwrap();
            prop_assert_eq!(EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..n]).unwrap()), repr);
        }
    }
}
