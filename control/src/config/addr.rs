//! Address types of the config file: IPv4 prefixes written `a.b.c.d/len` ([`Ipv4Cidr`]). They
//! parse with precise errors that quote the offending text, and deserialize from YAML strings
//! (so serde reports their line and column). MACs (`02:00:5e:00:53:01`) are the wire layer's
//! `EthernetAddress`, which parses the same way.

use std::fmt;
use std::marker::PhantomData;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use thiserror::Error;

/// An IPv4 address with a prefix length (0..=32), e.g. `10.0.0.1/31`.
///
/// The address may have host bits set: an interface address (`10.0.0.1/31`) is a `Ipv4Cidr`
/// as much as a route prefix (`10.0.0.0/24`); [`Ipv4Cidr::is_network`] tells them apart.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    len: u8,
}

/// Why a text is not an `a.b.c.d/len` prefix. Each message starts with the text itself.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CidrError {
    #[error("{0}: expected ADDRESS/LENGTH, e.g. 10.0.0.0/24")]
    MissingLength(String),
    #[error("{text}: invalid IPv4 address {addr:?}")]
    InvalidAddress { text: String, addr: String },
    #[error("{text}: invalid prefix length {len:?}")]
    InvalidLength { text: String, len: String },
    #[error("{0}: prefix length above 32")]
    LengthAbove32(String),
}

impl Ipv4Cidr {
    /// `addr/len`; `None` if `len` exceeds 32.
    pub const fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        if len > 32 {
            None
        } else {
            Some(Ipv4Cidr { addr, len })
        }
    }

    /// The address as written (host bits included).
    pub const fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0..=32.
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The mask of the prefix bits, host order (`/24` → `0xffff_ff00`).
    pub const fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        }
    }

    /// The network address (host bits cleared).
    pub const fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() & self.mask())
    }

    /// The last address of the prefix (host bits set).
    pub const fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() | !self.mask())
    }

    /// Whether no host bit is set, as a route prefix must be.
    pub const fn is_network(&self) -> bool {
        self.addr.to_bits() & !self.mask() == 0
    }

    /// Whether `ip` lies inside the prefix.
    pub const fn contains(&self, ip: Ipv4Addr) -> bool {
        (ip.to_bits() ^ self.addr.to_bits()) & self.mask() == 0
    }

    /// Whether the two prefixes share at least one address (one contains the other).
    pub const fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        let shorter = if self.len < other.len { self } else { other };
        (self.addr.to_bits() ^ other.addr.to_bits()) & shorter.mask() == 0
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let Some((addr, len)) = text.split_once('/') else {
            return Err(CidrError::MissingLength(text.to_string()));
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| CidrError::InvalidAddress {
            text: text.to_string(),
            addr: addr.to_string(),
        })?;
        // Canonical decimal only: no sign, no leading zero, at most three digits.
        let canonical = !len.is_empty()
            && len.len() <= 3
            && len.bytes().all(|b| b.is_ascii_digit())
            && (len == "0" || !len.starts_with('0'));
        let bad_len = || CidrError::InvalidLength {
            text: text.to_string(),
            len: len.to_string(),
        };
        if !canonical {
            return Err(bad_len());
        }
        let len: u16 = len.parse().map_err(|_| bad_len())?;
        if len > 32 {
            return Err(CidrError::LengthAbove32(text.to_string()));
        }
        Ok(Ipv4Cidr {
            addr,
            len: len as u8,
        })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FromStrVisitor::<Self>::new(
            "an IPv4 prefix such as 10.0.0.0/24",
        ))
    }
}

/// Whether `ip` can be the address of one host on the wire: not unspecified (0.0.0.0/8),
/// loopback, multicast, or the reserved/broadcast 240.0.0.0/4.
pub fn is_unicast(ip: Ipv4Addr) -> bool {
    let first = ip.octets()[0];
    first != 0 && !ip.is_loopback() && !ip.is_multicast() && first < 240
}

/// Deserializes a string scalar through `FromStr`, reporting the parse error as the message.
pub(crate) struct FromStrVisitor<T> {
    expecting: &'static str,
    _t: PhantomData<fn() -> T>,
}

impl<T> FromStrVisitor<T> {
    pub(crate) const fn new(expecting: &'static str) -> Self {
        FromStrVisitor {
            expecting,
            _t: PhantomData,
        }
    }
}

impl<T> Visitor<'_> for FromStrVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parses_and_prints() {
        let c = cidr("10.1.2.3/24");
        assert_eq!(c.addr(), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.network(), Ipv4Addr::new(10, 1, 2, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 1, 2, 255));
        assert_eq!(c.mask(), 0xffff_ff00);
        assert!(!c.is_network());
        assert_eq!(c.to_string(), "10.1.2.3/24");
        assert_eq!(format!("{c:?}"), "10.1.2.3/24");
        assert!(cidr("10.1.2.0/24").is_network());
        let all = cidr("0.0.0.0/0");
        assert_eq!(all.mask(), 0);
        assert!(all.is_network());
        assert!(all.contains(Ipv4Addr::new(255, 255, 255, 255)));
        let host = cidr("192.0.2.7/32");
        assert!(host.is_network());
        assert_eq!(host.broadcast(), host.addr());
        assert_eq!(Ipv4Cidr::new(Ipv4Addr::LOCALHOST, 33), None);
        assert_eq!(
            Ipv4Cidr::new(Ipv4Addr::LOCALHOST, 8),
            Some(cidr("127.0.0.1/8"))
        );
    }

    #[test]
    fn cidr_errors_are_precise() {
        let cases = [
            ("10.0.0.1/33", "10.0.0.1/33: prefix length above 32"),
            ("10.0.0.1/255", "10.0.0.1/255: prefix length above 32"),
            (
                "10.0.0.1",
                "10.0.0.1: expected ADDRESS/LENGTH, e.g. 10.0.0.0/24",
            ),
            (
                "10.0.0.300/24",
                "10.0.0.300/24: invalid IPv4 address \"10.0.0.300\"",
            ),
            ("10.0.0/24", "10.0.0/24: invalid IPv4 address \"10.0.0\""),
            ("/24", "/24: invalid IPv4 address \"\""),
            ("10.0.0.0/", "10.0.0.0/: invalid prefix length \"\""),
            ("10.0.0.0/x", "10.0.0.0/x: invalid prefix length \"x\""),
            ("10.0.0.0/+8", "10.0.0.0/+8: invalid prefix length \"+8\""),
            ("10.0.0.0/08", "10.0.0.0/08: invalid prefix length \"08\""),
            (
                "10.0.0.0/1000",
                "10.0.0.0/1000: invalid prefix length \"1000\"",
            ),
            (
                "10.0.0.0/8/8",
                "10.0.0.0/8/8: invalid prefix length \"8/8\"",
            ),
            (
                " 10.0.0.0/8",
                " 10.0.0.0/8: invalid IPv4 address \" 10.0.0.0\"",
            ),
        ];
        for (text, message) in cases {
            let e = text.parse::<Ipv4Cidr>().unwrap_err();
            assert_eq!(e.to_string(), message, "{text}");
        }
        assert_eq!(cidr("10.0.0.0/0").prefix_len(), 0);
    }

    #[test]
    fn cidr_contains_and_overlaps() {
        let a = cidr("10.0.0.0/30");
        assert!(a.contains(Ipv4Addr::new(10, 0, 0, 3)));
        assert!(!a.contains(Ipv4Addr::new(10, 0, 0, 4)));
        assert!(a.overlaps(&cidr("10.0.0.2/31")));
        assert!(cidr("10.0.0.2/31").overlaps(&a));
        assert!(a.overlaps(&cidr("10.0.0.0/8")));
        assert!(!a.overlaps(&cidr("10.0.0.4/31")));
        assert!(!cidr("10.0.0.0/31").overlaps(&cidr("10.0.0.2/31")));
        assert!(cidr("0.0.0.0/0").overlaps(&cidr("192.0.2.1/32")));
    }

    #[test]
    fn unicast_addresses() {
        for ip in ["192.0.2.1", "10.0.0.1", "223.255.255.254"] {
            assert!(is_unicast(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "224.0.0.1",
            "239.1.1.1",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_unicast(ip.parse().unwrap()), "{ip}");
        }
    }
}
