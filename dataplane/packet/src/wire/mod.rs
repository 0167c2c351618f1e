//! Zero-copy packet views over byte slices (no DPDK types): Ethernet, ARP, IPv4, IPv6, GRE,
//! ESP, TCP, UDP, ICMP, and the Internet checksum.
//!
//! Every header follows the same pattern (after smoltcp's `wire`): a `XxxPacket<T: AsRef<[u8]>>`
//! view whose only constructor, `new_checked`, validates every length the accessors rely on, so
//! that afterwards no accessor can panic whatever the bytes were; setters exist where
//! `T: AsMut<[u8]>`; fields are read with big-endian byte accessors at offsets named in a private
//! `mod field`; and, where the dataplane builds headers, an owned `XxxRepr` with
//! `parse`/`emit`/`buffer_len`. There is deliberately no `new_unchecked`: emitting goes through
//! `Repr::emit` into a slice whose length it checks, so the "no panic on any input" guarantee has
//! no escape hatch. Every failure is one variant of the `Copy` [`Error`] enum, which doubles as a
//! per-reason drop counter index ([`Error::index`], [`Error::as_str`]). Nothing here allocates.

/// Declares a wire enum whose unknown values are data (`Unknown(raw)`), not errors.
macro_rules! enum_with_unknown {
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$variant_attr:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$enum_attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_attr])* $variant, )+
            /// A value this crate has no name for; carried unchanged.
            Unknown($ty),
        }

        impl From<$ty> for $name {
            // Always inlined: matched right after the conversion, it folds into that match;
            // called, it cost the decapsulation path a call and a compare chain per packet.
            #[inline(always)]
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl $name {
            /// The raw value; `const`, so that a named value becomes a number at compile time
            /// (`const { EtherType::Vlan.value() }`) for code that compares raw fields.
            #[inline]
            pub const fn value(self) -> $ty {
                match self {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl From<$name> for $ty {
            #[inline]
            fn from(value: $name) -> Self {
                value.value()
            }
        }
    };
}

pub mod arp;
pub mod checksum;
mod error;
pub mod esp;
pub mod ethernet;
#[cfg(test)]
mod fixtures;
pub mod gre;
pub mod icmp;
mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use error::Error;
pub use esp::{EspPacket, EspRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use gre::{GreHeader, GrePacket, GreRepr};
pub use icmp::{IcmpError, IcmpMessage, IcmpPacket, IcmpRepr};
pub use ip::IpProtocol;
pub use ipv4::{Ipv4Header, Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use tcp::{MssChange, TcpFlags, TcpHeader, TcpOption, TcpPacket};
pub use udp::{UdpHeader, UdpPacket, UdpRepr};

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, Error>;

/// The source and destination ports that open a TCP or UDP header, from its fixed-size array, as
/// one big-endian word (source port in the high half): one load, for the flow hash.
#[inline(always)]
fn ports_word<const N: usize>(header: &[u8; N]) -> u32 {
    header.first_chunk().map_or(0, |&p| u32::from_be_bytes(p))
}

/// Reads the byte at `at` (zero if out of range, which `check_len` rules out).
#[inline(always)]
pub(crate) fn byte(data: &[u8], at: usize) -> u8 {
    data.get(at).copied().unwrap_or(0)
}

/// Writes the byte at `at` (ignored if out of range, which `check_len` rules out).
#[inline(always)]
pub(crate) fn set_byte(data: &mut [u8], at: usize, value: u8) {
    if let Some(b) = data.get_mut(at) {
        *b = value;
    }
}

/// Reads a big-endian `u16` at `at`; `None` instead of a panic if the slice is too short.
/// Accessors use the infallible forms below after `check_len` proved the range exists.
#[inline(always)]
pub(crate) fn be16(data: &[u8], at: usize) -> u16 {
    match data.get(at..at + 2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        // Unreachable after `check_len`; a zero keeps the accessor panic-free regardless.
        _ => 0,
    }
}

/// Reads a big-endian `u32` at `at` (zero if out of range, which `check_len` rules out).
#[inline(always)]
pub(crate) fn be32(data: &[u8], at: usize) -> u32 {
    match data.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Writes a big-endian `u16` at `at` (ignored if out of range, which `check_len` rules out).
#[inline(always)]
pub(crate) fn set_be16(data: &mut [u8], at: usize, value: u16) {
    if let Some(dst) = data.get_mut(at..at + 2) {
        dst.copy_from_slice(&value.to_be_bytes());
    }
}

/// Writes a big-endian `u32` at `at` (ignored if out of range, which `check_len` rules out).
#[inline(always)]
pub(crate) fn set_be32(data: &mut [u8], at: usize, value: u32) {
    if let Some(dst) = data.get_mut(at..at + 4) {
        dst.copy_from_slice(&value.to_be_bytes());
    }
}

/// Reads `N` bytes at `at` (zeros if out of range, which `check_len` rules out).
#[inline(always)]
pub(crate) fn bytes<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = data.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// Writes `N` bytes at `at` (ignored if out of range, which `check_len` rules out).
#[inline(always)]
pub(crate) fn set_bytes<const N: usize>(data: &mut [u8], at: usize, value: [u8; N]) {
    if let Some(dst) = data.get_mut(at..at + N) {
        dst.copy_from_slice(&value);
    }
}
