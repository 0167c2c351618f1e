//! What [`process`](super::process) decided about a packet, and why packets are dropped.

use crate::route::TunnelId;
use crate::wire;

/// What the worker does with the packet buffer after [`process`](super::process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit on `port`. `tunnel`: the tunnel the packet was encapsulated into (`None`: sent
    /// plain, i.e. internet egress of a decapsulated packet).
    Forward { port: u16, tunnel: Option<TunnelId> },
    /// An answer built in place (ARP reply, ICMP echo reply): transmit on `port` (the rx port for
    /// plain requests, the gateway port for requests that came through `tunnel`).
    Reply { port: u16, tunnel: Option<TunnelId> },
    /// Not forwarded: hand the buffer to the control thread.
    ToControl(Control),
    /// The packet was dropped for `reason` (count it) and the buffer now holds the ICMP error
    /// about it, ready to transmit like a `Forward`.
    IcmpError {
        reason: DropReason,
        port: u16,
        tunnel: Option<TunnelId>,
    },
    /// The packet exceeds `tunnel`'s MTU and may be fragmented. The buffer now holds exactly the
    /// inner IPv4 packet (TTL decremented, MSS clamped, no Ethernet header): split it with
    /// [`FragmentPlan`](super::FragmentPlan) / [`write_fragment`](super::write_fragment) into
    /// new buffers, [`encapsulate`](super::encapsulate) each, transmit on `port`, free this one.
    NeedsFragmentation {
        port: u16,
        tunnel: TunnelId,
        mtu: u16,
    },
    /// An outer fragment of a tunnel packet (GRE from a configured remote, to a local endpoint):
    /// feed it to the worker's [`Reassembler`](super::Reassembler) (the IPv4 packet starts after
    /// the 14-byte Ethernet header) and `process` the reassembled datagram when it completes.
    Reassemble,
    /// Dropped; count by reason.
    Drop(DropReason),
}

impl Verdict {
    /// The drop reason, for `Drop` and `IcmpError`.
    #[inline]
    pub fn drop_reason(&self) -> Option<DropReason> {
        match *self {
            Verdict::Drop(reason) | Verdict::IcmpError { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// What a `ToControl` packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// A health-check probe reply for the tunnel named in its payload. The buffer starts at the
    /// probe's IPv4 header (Ethernet and any tunnel headers removed).
    Probe(TunnelId),
    /// An ARP reply to one of the rx port's addresses (gateway resolution); the frame as
    /// received.
    Arp,
}

/// The result of [`process`](super::process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The tunnel the packet was received through, once its GRE header matched one (for
    /// per-tunnel rx counters, drops included); `None` for plain packets.
    pub rx_tunnel: Option<TunnelId>,
}

macro_rules! drop_reasons {
    ( $( $(#[$doc:meta])* $variant:ident => $name:literal; )+ ) => {
        /// Why a packet was dropped: a wire parser's [`wire::Error`] or a pipeline decision.
        /// `Copy`, with a dense [`DropReason::index`] in `0..DropReason::COUNT` for per-core
        /// counter arrays and a stable snake_case [`DropReason::as_str`] for stats.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum DropReason {
            /// A header failed validation (indices `0..wire::Error::COUNT`).
            Wire(wire::Error),
            $( $(#[$doc])* $variant, )+
        }

        /// Position of each pipeline reason after the wire errors.
        #[allow(dead_code)]
        #[repr(usize)]
        enum Ordinal { $( $variant, )+ }

        impl DropReason {
            /// The pipeline's own reasons, in index order.
            const PIPELINE: &'static [DropReason] = &[ $( DropReason::$variant, )+ ];
            /// Number of reasons: the size of a per-reason counter array.
            pub const COUNT: usize = wire::Error::COUNT + Self::PIPELINE.len();

            /// Stable snake_case name for counters and logs (never rename one).
            #[inline]
            pub const fn as_str(self) -> &'static str {
                match self {
                    DropReason::Wire(e) => e.as_str(),
                    $( DropReason::$variant => $name, )+
                }
            }

            /// Dense index in `0..DropReason::COUNT`.
            #[inline]
            pub const fn index(self) -> usize {
                match self {
                    DropReason::Wire(e) => e.index(),
                    $( DropReason::$variant => wire::Error::COUNT + Ordinal::$variant as usize, )+
                }
            }
        }
    };
}

drop_reasons! {
    /// `rx_port` is not a configured port.
    UnknownPort => "unknown_port";
    /// Unicast frame to another MAC, or multicast.
    EthernetNotForUs => "ethernet_not_for_us";
    /// 802.1Q-tagged frame (no VLANs are configured).
    VlanTagged => "vlan_tagged";
    /// Neither IPv4 nor ARP (plain IPv6, LLDP, ...).
    UnsupportedEtherType => "unsupported_ethertype";
    /// ARP that is not a request for one of our addresses on this port, nor a reply to us.
    ArpNotForUs => "arp_not_for_us";
    /// IPv4 not to us and not to a customer route.
    NoRoute => "no_route";
    /// Decapsulated packet to an unspecified, loopback, multicast, broadcast or 240/4
    /// destination.
    MartianDestination => "martian_destination";
    /// To one of our addresses but nothing we answer (TCP, UDP, other ICMP, unknown probe).
    LocalUnsupported => "local_unsupported";
    /// GRE to a local endpoint from an address that is no tunnel's remote.
    GreUnknownRemote => "gre_unknown_remote";
    /// GRE key present but no tunnel of this remote has it (or the tunnel has no key).
    GreKeyMismatch => "gre_key_mismatch";
    /// GRE without a key from a remote whose tunnels all have one.
    GreKeyMissing => "gre_key_missing";
    /// GRE protocol type other than IPv4 and IPv6.
    GreUnsupportedProtocol => "gre_unsupported_protocol";
    /// GRE carrying IPv6, which the IPv4-only forwarding table cannot route.
    GreInnerIpv6 => "gre_inner_ipv6";
    /// A route through an IPsec tunnel that has no outbound SA, or an ESP fragment to a local
    /// endpoint from an address that is no IPsec tunnel's remote.
    EspNoSa => "esp_no_sa";
    /// ESP (or ESP in UDP) to a local endpoint whose SPI no inbound SA of a tunnel from this
    /// remote to this endpoint has.
    EspUnknownSpi => "esp_unknown_spi";
    /// ESP whose ICV did not verify (forged, corrupted, or under another key or salt).
    EspAuthFailed => "esp_auth_failed";
    /// ESP refused by the SA's anti-replay window (seen already, or older than the window).
    EspReplay => "esp_replay";
    /// Authenticated ESP whose trailer is wrong: pad length beyond the payload, padding other
    /// than 1, 2, 3, ..., or a next header other than IPv4.
    EspBadTrailer => "esp_bad_trailer";
    /// No cipher session for the SA (the crypto device refused it, or the worker has none), or
    /// the device failed on the packet.
    EspNoSession => "esp_no_session";
    /// The outbound SA has used all 2^32 - 1 sequence numbers: it must be rekeyed.
    EspSeqExhausted => "esp_seq_exhausted";
    /// TTL <= 1 on a packet to forward.
    TtlExceeded => "ttl_exceeded";
    /// Bigger than the tunnel MTU with DF set (the ICMP error is a separate `IcmpError` verdict;
    /// a plain `Drop` means it was rate-limited or not allowed).
    MtuExceeded => "mtu_exceeded";
    /// Not enough headroom to prepend the tunnel headers (or, for ESP, tailroom to append the
    /// trailer and ICV).
    Headroom => "headroom";
    /// The forwarding table names a tunnel the context does not have (table/context mismatch).
    UnknownTunnel => "unknown_tunnel";
    /// IPv4 options with a length below 2 or running past the header.
    Ipv4BadOptions => "ipv4_bad_options";
    /// Fragment that cannot belong to a valid datagram (non-final length not a multiple of 8,
    /// empty, two different ends, or not a fragment at all).
    ReassemblyBadFragment => "reassembly_bad_fragment";
    /// Fragments overlap with different extents: the whole set is dropped (RFC 5722 style).
    ReassemblyOverlap => "reassembly_overlap";
    /// The datagram would exceed the reassembly buffer.
    ReassemblyTooBig => "reassembly_too_big";
    /// An incomplete set timed out (counted per set by `ReassemblyStats`).
    ReassemblyTimeout => "reassembly_timeout";
    /// An incomplete set was evicted to make room (counted per set by `ReassemblyStats`).
    ReassemblyEvicted => "reassembly_evicted";
    /// A frame that arrived in several buffers and is longer than one packet buffer holds
    /// (longer than the largest port MTU allows).
    FrameTooLong => "frame_too_long";
    /// IPv4 options present and the options policy drops them (the default).
    Ipv4Options => "ipv4_options";
    /// IPv4 loose or strict source route option: dropped whatever the policy (RFC 7126).
    Ipv4SourceRoute => "ipv4_source_route";
    /// A fragment with more to follow whose payload is not a multiple of 8 bytes.
    Ipv4BadFragmentLength => "ipv4_bad_fragment_length";
}

impl DropReason {
    /// The reason with index `index`.
    pub fn from_index(index: usize) -> Option<DropReason> {
        match index.checked_sub(wire::Error::COUNT) {
            None => wire::Error::ALL.get(index).copied().map(DropReason::Wire),
            Some(i) => Self::PIPELINE.get(i).copied(),
        }
    }

    /// Every reason, in index order.
    pub fn all() -> impl Iterator<Item = DropReason> {
        (0..Self::COUNT).filter_map(Self::from_index)
    }
}

impl From<wire::Error> for DropReason {
    #[inline]
    fn from(e: wire::Error) -> Self {
        DropReason::Wire(e)
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_names_unique() {
        let all: Vec<DropReason> = DropReason::all().collect();
        assert_eq!(all.len(), DropReason::COUNT);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
            assert_eq!(DropReason::from_index(i), Some(*r));
            let name = r.as_str();
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert!(all[i + 1..].iter().all(|o| o.as_str() != name), "{name}");
        }
        assert_eq!(DropReason::from_index(DropReason::COUNT), None);
        assert_eq!(
            DropReason::from(wire::Error::GreVersion).as_str(),
            "gre_version"
        );
        assert_eq!(DropReason::UnknownPort.index(), wire::Error::COUNT);
        assert_eq!(DropReason::EspNoSa.to_string(), "esp_no_sa");
    }
}
