//! IP protocol numbers, shared by the IPv4 `protocol` and IPv6 `next header` fields. Values this
//! crate does not name are kept as `Unknown(n)`, so an unexpected protocol is a routing decision
//! for the caller (drop, forward), not a parse error.

enum_with_unknown! {
    /// IANA "Assigned Internet Protocol Numbers".
    pub enum IpProtocol(u8) {
        /// IPv6 hop-by-hop options (in IPv6 next header).
        HopByHop = 0,
        /// ICMP for IPv4.
        Icmp = 1,
        /// IPv4 in IP.
        Ipv4 = 4,
        /// TCP.
        Tcp = 6,
        /// UDP.
        Udp = 17,
        /// IPv6 in IP.
        Ipv6 = 41,
        /// IPv6 routing header.
        Ipv6Route = 43,
        /// IPv6 fragment header.
        Ipv6Frag = 44,
        /// Generic Routing Encapsulation.
        Gre = 47,
        /// IPsec Encapsulating Security Payload.
        Esp = 50,
        /// IPsec Authentication Header.
        Ah = 51,
        /// ICMP for IPv6.
        Icmpv6 = 58,
        /// IPv6 "no next header".
        Ipv6NoNxt = 59,
        /// IPv6 destination options.
        Ipv6Opts = 60,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_value() {
        for n in 0..=u8::MAX {
            assert_eq!(u8::from(IpProtocol::from(n)), n);
        }
        assert_eq!(IpProtocol::from(47), IpProtocol::Gre);
        assert_eq!(IpProtocol::from(50), IpProtocol::Esp);
        assert_eq!(IpProtocol::from(253), IpProtocol::Unknown(253));
    }
}
