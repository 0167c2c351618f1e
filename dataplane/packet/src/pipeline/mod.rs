//! The per-packet classify-and-rewrite core of a worker: pure Rust over a [`PacketBuf`], with no
//! DPDK call, so every path is unit-tested, property-tested and fuzzed without EAL.
//!
//! A worker owns one [`WorkerState`] (outer IPv4 identification counter, ICMP error token bucket,
//! ESP sessions and replay windows)
//! and one [`Reassembler`], and shares an immutable [`Context`] built by the control side (MACs,
//! local endpoints, interface addresses, the tunnel table and the [`ForwardingTable`]). For each
//! received frame it calls [`process`], which validates every layer it reads, rewrites the frame
//! in place (headers are grown into the headroom or cut with `adj`, never copied around) and
//! returns an [`Outcome`]: a [`Verdict`] (forward, reply, hand to control, generate an ICMP error,
//! fragment, reassemble, or drop with a [`DropReason`]) and the tunnel the packet arrived through,
//! for the worker's per-tunnel counters. Nothing on the packet path allocates.
//!
//! | frame | verdict |
//! |---|---|
//! | IPv4 to a customer route | TTL − 1, MSS clamp, GRE-encapsulate → `Forward { tunnel: Some }` |
//! | GRE from a configured remote to a local endpoint | validate, decapsulate, route the inner packet: customer route → re-encapsulate (transit); none → plain to the gateway (internet egress) |
//! | IPv4 to a customer route through an IPsec tunnel | TTL − 1, MSS clamp, ESP-encapsulate (AES-GCM through the worker's [`EspRuntime`](crate::esp::runtime::EspRuntime)) → `Forward { tunnel: Some }` |
//! | ESP (or ESP in UDP to port 4500) to a local endpoint | SA of (remote, SPI), replay check, ICV, decrypt, trailer, route the inner packet like GRE's |
//! | outer fragment of GRE/ESP (or UDP from an IPsec remote) to a local endpoint | `Reassemble` (feed [`Reassembler`], then `process` the result) |
//! | ARP request for a local endpoint or a rx-port address | ARP reply in place → `Reply` |
//! | ICMP echo request to any of our addresses | echo reply in place → `Reply` (through the tunnel it came from, if any) |
//! | ICMP echo reply carrying our probe identity | `ToControl(Probe)` |
//! | too big for the tunnel | DF set → ICMP 3/4 in place (rate-limited) → `IcmpError`; DF clear or `clear_df` → `NeedsFragmentation` ([`fragment`]) |
//!
//! # Decisions where the behaviour is not prescribed
//!
//! - **Probe identity**: an ICMP echo reply (type 0 code 0, valid checksum) addressed to a local
//!   endpoint or a tunnel interface address (our side), with identifier
//!   [`ContextConfig::probe_ident`] (default [`DEFAULT_PROBE_IDENT`], `0xC0DE`) and data starting
//!   with [`PROBE_MAGIC`] followed by the probed tunnel's id (`u32`, big endian), see
//!   [`probe_payload`]. The control thread owns the rest of the payload (timestamp, MAC) and
//!   authenticates what it is handed ([`probe`]): nothing here trusts it beyond classifying.
//!   Echo replies echo identifier and data, so this matches `reply` and `request` probes alike.
//! - **Frames**: any unicast destination MAC is accepted (a non-promiscuous NIC already filters
//!   unicast in hardware, and replayed captures need not know the port's MAC), and broadcast;
//!   other group addresses, 802.1Q-tagged frames and EtherTypes other than IPv4 and ARP are
//!   dropped. Ethernet padding is trimmed.
//! - **Outer header**: TOS copied from the inner packet (DSCP and ECN, RFC 6040 normal mode);
//!   identification from a per-core counter; DF copied from the inner packet, except that a
//!   `clear_df` tunnel never sets it. On decapsulation an outer CE mark is copied into an
//!   ECN-capable inner packet (RFC 6040); nothing else of the outer header survives.
//! - **MSS clamp**: TCP SYN and SYN-ACK, unfragmented, to the egress tunnel's MSS; on decap to
//!   the ingress tunnel's MSS; in transit to the lower of the two.
//! - **Validation** (docs/behaviour.md §7, in its table's order): the IPv4 header, its options
//!   ([`ContextConfig::ipv4_options`]; source routes always dropped), the fragment length and the
//!   TCP/UDP/ICMP header, before any decision about the packet, plain or decapsulated.
//! - **TTL**: checked after the route lookup (no route → `NoRoute`, not `TtlExceeded`) and before
//!   the MTU check, as in Linux's `ip_forward`. ICMP time exceeded only when
//!   [`ContextConfig::icmp_ttl_exceeded`] is set (optional in docs/behaviour.md §6), sharing the
//!   token bucket.
//! - **Generated ICMP errors** are sourced from the egress (or, on decap, ingress) tunnel's local
//!   endpoint, written over the offending packet, and then routed like any packet (through a
//!   tunnel when their destination is a customer prefix, else plain to the gateway).
//! - **Internet egress** drops martian destinations (unspecified, loopback, multicast, broadcast,
//!   240/4); a decapsulated packet to one of our addresses is answered (echo), handed to control
//!   (probe) or dropped, never decapsulated again.
//! - **Inner IPv6** in GRE is dropped (`GreInnerIpv6`): the forwarding table is IPv4 only.

mod buf;
mod context;
pub mod fragment;
mod options;
pub mod probe;
mod process;
pub mod reassembly;
mod state;
pub mod trace;
mod verdict;

#[cfg(test)]
mod tests;

pub use buf::{PacketBuf, VecBuf};
pub use context::{
    probe_payload, Context, ContextConfig, ContextError, PortConfig, Tunnel, TunnelKind,
    DEFAULT_PROBE_IDENT, PROBE_MAGIC,
};
/// Tunnel defaults and the header lengths they derive from, shared with the config.
pub use context::{
    DEFAULT_TTL, ESP_HEADER_LEN, ESP_ICV_LEN, ESP_IV_LEN, ESP_TRAILER_LEN, ETHERNET_MTU,
    GRE_HEADER_LEN, GRE_KEY_LEN, MAX_MTU, MIN_MSS, MIN_MTU, MIN_SPI, NAT_T_PORT, NAT_T_UDP_LEN,
    OUTER_IPV4_LEN,
};
pub use fragment::{write_fragment, Fragment, FragmentPlan};
pub use options::{Ipv4OptionsPolicy, OPTION_LSRR, OPTION_SSRR};
pub use probe::{
    read_probe_echo, write_probe, ProbeEcho, ProbeKey, ProbeKind, ProbeReply, ProbeSpec,
    PROBE_DATA_LEN, PROBE_KEY_LEN, PROBE_PACKET_LEN,
};
pub use process::{encapsulate, process};
pub use reassembly::{Reassembler, ReassemblerConfig, Reassembly, ReassemblyStats};
pub use state::{TokenBucket, WorkerState};
pub use verdict::{Control, DropReason, Outcome, Verdict};

#[doc(no_inline)]
pub use crate::route::{ForwardingTable, TunnelId};
