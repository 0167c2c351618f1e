//! The one error type of the wire parsers. Each variant names the layer and what was wrong with
//! it, because the packet path turns every error straight into a per-reason drop counter: the
//! enum is `Copy`, has a stable snake_case name per variant ([`Error::as_str`], used in stats and
//! telemetry, so never rename one) and a dense index ([`Error::index`]) for counter arrays.

macro_rules! wire_errors {
    ( $( $(#[$doc:meta])* $variant:ident => $name:literal, $desc:literal; )+ ) => {
        /// Why a header was rejected (or could not be emitted).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Error {
            $( $(#[$doc])* $variant, )+
        }

        impl Error {
            /// Every variant, in [`Error::index`] order.
            pub const ALL: &'static [Error] = &[ $( Error::$variant, )+ ];
            /// Number of variants: the size of a per-reason counter array.
            pub const COUNT: usize = Error::ALL.len();

            /// Stable snake_case name, e.g. `"ipv4_bad_ihl"`, for counters and logs.
            #[inline]
            pub const fn as_str(self) -> &'static str {
                match self { $( Error::$variant => $name, )+ }
            }

            /// Human-readable description.
            pub const fn description(self) -> &'static str {
                match self { $( Error::$variant => $desc, )+ }
            }

            /// Dense index in `0..Error::COUNT`, for counter arrays.
            #[inline]
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

wire_errors! {
    /// Frame shorter than the 14-byte Ethernet header.
    EthernetTruncated => "ethernet_truncated", "frame shorter than the Ethernet header";
    /// 802.1Q tag announced but the frame ends inside it.
    VlanTruncated => "vlan_truncated", "frame ends inside the 802.1Q tag";
    /// ARP shorter than 28 bytes.
    ArpTruncated => "arp_truncated", "ARP packet shorter than 28 bytes";
    /// ARP for anything but IPv4 over Ethernet (htype 1, ptype 0x0800, hlen 6, plen 4).
    ArpUnsupported => "arp_unsupported", "ARP is not IPv4 over Ethernet";
    /// Buffer shorter than the IPv4 header (20 bytes, or IHL * 4).
    Ipv4Truncated => "ipv4_truncated", "buffer shorter than the IPv4 header";
    /// IPv4 version field is not 4.
    Ipv4BadVersion => "ipv4_bad_version", "IPv4 version is not 4";
    /// IPv4 IHL below 5.
    Ipv4BadIhl => "ipv4_bad_ihl", "IPv4 IHL below 5";
    /// IPv4 total length below the header length or beyond the buffer.
    Ipv4BadTotalLength => "ipv4_bad_total_length", "IPv4 total length below the header or beyond the buffer";
    /// IPv4 fragment would end past 65535 bytes (the "ping of death").
    Ipv4BadFragmentOffset => "ipv4_bad_fragment_offset", "IPv4 fragment ends past 65535 bytes";
    /// IPv4 header checksum mismatch.
    Ipv4BadChecksum => "ipv4_bad_checksum", "IPv4 header checksum mismatch";
    /// Buffer shorter than the 40-byte IPv6 header.
    Ipv6Truncated => "ipv6_truncated", "buffer shorter than the IPv6 header";
    /// IPv6 version field is not 6.
    Ipv6BadVersion => "ipv6_bad_version", "IPv6 version is not 6";
    /// IPv6 payload length beyond the buffer.
    Ipv6BadPayloadLength => "ipv6_bad_payload_length", "IPv6 payload length beyond the buffer";
    /// Buffer shorter than the GRE header its flags announce.
    GreTruncated => "gre_truncated", "buffer shorter than the GRE header";
    /// GRE version is not 0 (1 is PPTP's enhanced GRE).
    GreVersion => "gre_version", "GRE version is not 0";
    /// RFC 1701 routing bit set (source routing is not supported).
    GreRoutingPresent => "gre_routing_present", "GRE routing bit set";
    /// RFC 1701 recursion control non-zero.
    GreRecursionControl => "gre_recursion_control", "GRE recursion control non-zero";
    /// Other reserved0 bits (strict source route, flags 8-12) set.
    GreReservedBits => "gre_reserved_bits", "GRE reserved0 bits set";
    /// GRE checksum present and wrong.
    GreBadChecksum => "gre_bad_checksum", "GRE checksum mismatch";
    /// Buffer shorter than the 8-byte ESP header.
    EspTruncated => "esp_truncated", "buffer shorter than the ESP header";
    /// ESP SPI 0, which RFC 4303 forbids on the wire.
    EspZeroSpi => "esp_zero_spi", "ESP SPI is zero";
    /// Decrypted ESP trailer whose pad length or padding bytes are wrong.
    EspBadPadding => "esp_bad_padding", "ESP padding malformed";
    /// Buffer shorter than the TCP header.
    TcpTruncated => "tcp_truncated", "buffer shorter than the TCP header";
    /// TCP data offset below 5 or beyond the buffer.
    TcpBadDataOffset => "tcp_bad_data_offset", "TCP data offset below 5 or beyond the buffer";
    /// TCP option with a length below 2, running past the header, or a malformed MSS option.
    TcpBadOption => "tcp_bad_option", "TCP option malformed";
    /// TCP checksum mismatch.
    TcpBadChecksum => "tcp_bad_checksum", "TCP checksum mismatch";
    /// Buffer shorter than the 8-byte UDP header.
    UdpTruncated => "udp_truncated", "buffer shorter than the UDP header";
    /// UDP length below 8 or beyond the buffer.
    UdpBadLength => "udp_bad_length", "UDP length below 8 or beyond the buffer";
    /// UDP checksum non-zero and wrong.
    UdpBadChecksum => "udp_bad_checksum", "UDP checksum mismatch";
    /// Buffer shorter than the 8-byte ICMP header.
    IcmpTruncated => "icmp_truncated", "buffer shorter than the ICMP header";
    /// ICMP checksum mismatch.
    IcmpBadChecksum => "icmp_bad_checksum", "ICMP checksum mismatch";
    /// An echo reply was asked for a packet that is not an IPv4 ICMP echo request.
    IcmpNotEchoRequest => "icmp_not_echo_request", "not an ICMP echo request";
    /// RFC 1122 3.2.2 forbids an ICMP error about this packet (an ICMP error, a non-first
    /// fragment, or a non-unicast source).
    IcmpErrorSuppressed => "icmp_error_suppressed", "no ICMP error may be sent about this packet";
    /// The output buffer is too small for what was to be emitted.
    BufferTooSmall => "buffer_too_small", "output buffer too small";
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_position_and_names_are_unique_snake_case() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            let name = e.as_str();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            for other in &Error::ALL[i + 1..] {
                assert_ne!(name, other.as_str());
            }
        }
        assert_eq!(Error::COUNT, Error::ALL.len());
        assert_eq!(Error::Ipv4BadIhl.as_str(), "ipv4_bad_ihl");
        assert_eq!(Error::GreRoutingPresent.to_string(), "GRE routing bit set");
    }
}
