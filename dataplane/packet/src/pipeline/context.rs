//! The immutable per-worker view of the configuration: ports, gateway, local endpoints, tunnels
//! and the forwarding table, prepared for the packet path. Built by the control side with
//! [`Context::new`] (which validates and allocates), then shared by reference; lookups are an
//! open-addressing hash probe (our addresses; GRE (local, remote) pairs) or an index (tunnels),
//! and each tunnel carries its precomputed Ethernet + outer IPv4 + GRE header and the checksum
//! sum of the header's constant fields, so encapsulation is a copy and four field patches.

use core::fmt;
use core::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use thiserror::Error;

use crate::esp::iv::IvPrefix;
use crate::esp::replay::{MAX_WINDOW, MIN_WINDOW};
use crate::esp::sa::{IpsecConfig, SaDirection, SaKey, SaShared, MAX_INBOUND};
use crate::route::{ecmp, EcmpMode, ForwardingTable, GroupId, NextHop, TunnelId};
use crate::wire::{esp, ethernet, gre, ipv4, tcp, EtherType, EthernetAddress, IpProtocol};

use super::options::Ipv4OptionsPolicy;

/// Default ICMP identifier of health-check probes.
pub const DEFAULT_PROBE_IDENT: u16 = 0xC0DE;
/// First four data bytes of a health-check probe; the tunnel id (big endian) follows.
pub const PROBE_MAGIC: [u8; 4] = *b"CNDT";

/// The first 8 data bytes of a probe for `tunnel`: [`PROBE_MAGIC`] then the id, big endian.
pub fn probe_payload(tunnel: TunnelId) -> [u8; 8] {
    let mut p = [0; 8];
    p[..4].copy_from_slice(&PROBE_MAGIC);
    p[4..].copy_from_slice(&tunnel.0.to_be_bytes());
    p
}

/// Largest tunnel id the context accepts (tunnels are indexed by id).
pub const MAX_TUNNEL_ID: u32 = (1 << 20) - 1;
/// Smallest tunnel MTU: RFC 791's 576, so a generated ICMP error always fits any tunnel.
pub const MIN_MTU: u16 = 576;
/// Largest tunnel MTU (the outer packet must stay below 64 KiB).
pub const MAX_MTU: u16 = 65_000;
/// The smallest MSS clamp: the TCP default MSS for IPv4 (RFC 9293), i.e. [`MIN_MTU`] − 40.
pub const MIN_MSS: u16 = MIN_MTU - Tunnel::MSS_OVERHEAD;

/// docs/behaviour.md §2 default TTL, of the outer header and of the ICMP messages Conduit
/// generates.
pub const DEFAULT_TTL: u8 = 64;
/// The link MTU the default tunnel MTUs are computed from (plain Ethernet).
pub const ETHERNET_MTU: u16 = 1500;

/// Outer IPv4 header (no options).
pub const OUTER_IPV4_LEN: u16 = ipv4::HEADER_LEN as u16;
/// GRE header without the key (RFC 2784).
pub const GRE_HEADER_LEN: u16 = gre::BASE_HEADER_LEN as u16;
/// The GRE key field (RFC 2890).
pub const GRE_KEY_LEN: u16 = 4;
/// ESP header: SPI and sequence number (RFC 4303).
pub const ESP_HEADER_LEN: u16 = esp::HEADER_LEN as u16;
/// AES-GCM explicit IV (RFC 4106).
pub const ESP_IV_LEN: u16 = 8;
/// AES-GCM-256 integrity check value (RFC 4106, 16 bytes).
pub const ESP_ICV_LEN: u16 = 16;
/// ESP trailer after the padding: pad length and next header.
pub const ESP_TRAILER_LEN: u16 = 2;
/// UDP header of ESP in UDP (NAT-T, RFC 3948).
pub const NAT_T_UDP_LEN: u16 = 8;
/// The UDP port of NAT-T, source and destination (RFC 3948).
pub const NAT_T_PORT: u16 = 4500;
/// SPIs below this are reserved (RFC 4303 §2.1: 1..=255 by IANA, 0 for local use).
pub const MIN_SPI: u32 = 256;

/// Ethernet + outer IPv4 + GRE with key.
pub(crate) const MAX_ENCAP_LEN: usize =
    ethernet::HEADER_LEN + (OUTER_IPV4_LEN + GRE_HEADER_LEN + GRE_KEY_LEN) as usize;
/// Ethernet + outer IPv4 + NAT-T UDP + ESP header (SPI, sequence number).
pub(crate) const MAX_ESP_ENCAP_LEN: usize =
    ethernet::HEADER_LEN + (OUTER_IPV4_LEN + NAT_T_UDP_LEN + ESP_HEADER_LEN) as usize;

/// Tunnel encapsulation: the config file's `kind` (`gre`, `ipsec`) and the packet path's alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum TunnelKind {
    /// GRE (RFC 2784, key of RFC 2890).
    Gre,
    /// ESP tunnel mode with AES-GCM-256 (RFC 4303, RFC 4106), static SAs
    /// ([`ContextConfig::ipsec`]).
    Ipsec,
}

impl TunnelKind {
    /// Lower-case name, as in the config file, metrics labels and telemetry (`gre`, `ipsec`).
    pub const fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Gre => "gre",
            TunnelKind::Ipsec => "ipsec",
        }
    }

    /// The default MTU: [`ETHERNET_MTU`] minus the GRE overhead (1476, 1472 with a
    /// key), 1400 for IPsec.
    pub const fn default_mtu(self, keyed: bool) -> u16 {
        match self {
            TunnelKind::Gre => ETHERNET_MTU - gre_overhead(keyed),
            TunnelKind::Ipsec => Tunnel::IPSEC_MTU,
        }
    }

    /// The largest inner packet whose encapsulation fits in `link_mtu` (the outer IP packet
    /// size the gateway port carries). ESP pads payload + trailer to a multiple of 4.
    pub const fn max_mtu_for_link(self, keyed: bool, link_mtu: u16) -> u16 {
        match self {
            TunnelKind::Gre => link_mtu.saturating_sub(gre_overhead(keyed)),
            TunnelKind::Ipsec => {
                let room = link_mtu
                    .saturating_sub(OUTER_IPV4_LEN + ESP_HEADER_LEN + ESP_IV_LEN + ESP_ICV_LEN);
                (room & !3).saturating_sub(ESP_TRAILER_LEN)
            }
        }
    }
}

/// Capitalised as in prose and messages (`GRE`, `IPsec`).
impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunnelKind::Gre => "GRE",
            TunnelKind::Ipsec => "IPsec",
        })
    }
}

/// Outer IPv4 + GRE header bytes, with or without the key.
const fn gre_overhead(keyed: bool) -> u16 {
    OUTER_IPV4_LEN + GRE_HEADER_LEN + if keyed { GRE_KEY_LEN } else { 0 }
}

/// One configured tunnel, as the packet path needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    pub kind: TunnelKind,
    /// Our endpoint (one of the local endpoints): outer source.
    pub local: Ipv4Addr,
    /// The customer's endpoint: outer destination, and the only accepted outer source.
    pub remote: Ipv4Addr,
    /// GRE key (RFC 2890); a keyed tunnel rejects keyless packets.
    pub key: Option<u32>,
    /// Outer TTL.
    pub ttl: u8,
    /// Largest inner packet sent without fragmenting.
    pub mtu: u16,
    /// MSS that SYNs crossing the tunnel are clamped to.
    pub mss: u16,
    /// Fragment oversized inner packets even with DF set, and never set DF on the outer header.
    pub clear_df: bool,
    /// Our side of the tunnel's /31 or /30.
    pub interface: Ipv4Addr,
    /// The customer's side.
    pub peer_interface: Ipv4Addr,
}

impl Tunnel {
    /// docs/behaviour.md §2 default TTL.
    pub const DEFAULT_TTL: u8 = DEFAULT_TTL;
    /// Default MTU of a GRE tunnel (1500 − 20 − 4).
    pub const GRE_MTU: u16 = TunnelKind::Gre.default_mtu(false);
    /// Default MTU of a keyed GRE tunnel (1500 − 20 − 8).
    pub const GRE_KEY_MTU: u16 = TunnelKind::Gre.default_mtu(true);
    /// Default MTU of an IPsec tunnel (docs/behaviour.md §2).
    pub const IPSEC_MTU: u16 = 1400;
    /// MSS default: MTU minus IPv4 and TCP headers.
    pub const MSS_OVERHEAD: u16 = (ipv4::HEADER_LEN + tcp::HEADER_LEN) as u16;

    /// The default MSS clamp for `mtu`.
    pub const fn default_mss(mtu: u16) -> u16 {
        mtu.saturating_sub(Self::MSS_OVERHEAD)
    }

    /// A keyless GRE tunnel with the documented defaults (TTL 64, MTU 1476, MSS 1436, DF copied).
    pub fn gre(
        local: Ipv4Addr,
        remote: Ipv4Addr,
        interface: Ipv4Addr,
        peer_interface: Ipv4Addr,
    ) -> Self {
        Tunnel {
            kind: TunnelKind::Gre,
            local,
            remote,
            key: None,
            ttl: Self::DEFAULT_TTL,
            mtu: Self::GRE_MTU,
            mss: Self::default_mss(Self::GRE_MTU),
            clear_df: false,
            interface,
            peer_interface,
        }
    }

    /// An IPsec tunnel with the documented defaults (MTU 1400, MSS 1360).
    pub fn ipsec(
        local: Ipv4Addr,
        remote: Ipv4Addr,
        interface: Ipv4Addr,
        peer_interface: Ipv4Addr,
    ) -> Self {
        Tunnel {
            kind: TunnelKind::Ipsec,
            mtu: Self::IPSEC_MTU,
            mss: Self::default_mss(Self::IPSEC_MTU),
            ..Self::gre(local, remote, interface, peer_interface)
        }
    }

    /// Sets the GRE key and the keyed defaults MTU 1472 / MSS 1432 (call `with_mtu` or
    /// `with_mss` afterwards to override them).
    pub fn with_key(self, key: u32) -> Self {
        Tunnel {
            key: Some(key),
            ..self.with_mtu(Self::GRE_KEY_MTU)
        }
    }

    /// Sets the MTU and the default MSS for it (MTU − 40).
    pub fn with_mtu(self, mtu: u16) -> Self {
        Tunnel {
            mtu,
            mss: Self::default_mss(mtu),
            ..self
        }
    }

    /// Sets the MSS clamp.
    pub fn with_mss(self, mss: u16) -> Self {
        Tunnel { mss, ..self }
    }

    /// Sets the outer TTL.
    pub fn with_ttl(self, ttl: u8) -> Self {
        Tunnel { ttl, ..self }
    }

    /// Sets `clear_df`.
    pub fn with_clear_df(self, clear_df: bool) -> Self {
        Tunnel { clear_df, ..self }
    }

    /// The other host of the /31 or /30 that `ours` belongs to (docs/behaviour.md §2: the
    /// configured address is our side). `None` for other lengths and for a /30's network or
    /// broadcast address.
    pub fn peer_of(ours: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Addr> {
        let a = u32::from(ours);
        match prefix_len {
            31 => Some(Ipv4Addr::from(a ^ 1)),
            30 => match a & 3 {
                1 => Some(Ipv4Addr::from(a + 1)),
                2 => Some(Ipv4Addr::from(a - 1)),
                _ => None,
            },
            _ => None,
        }
    }
}

/// One port: its MAC and the IPv4 addresses it answers ARP for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub mac: EthernetAddress,
    pub addresses: Vec<Ipv4Addr>,
}

/// Everything [`Context::new`] needs besides the forwarding table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextConfig {
    /// Indexed by DPDK port id.
    pub ports: Vec<PortConfig>,
    /// Port towards the gateway: everything Conduit sends (encapsulated or plain) leaves here.
    pub gateway_port: u16,
    /// The gateway's MAC (static, or resolved by the control side before building).
    pub gateway_mac: EthernetAddress,
    /// Anycast tunnel endpoints.
    pub local_endpoints: Vec<Ipv4Addr>,
    /// Tunnels by id (ids as in the forwarding table; at most [`MAX_TUNNEL_ID`]).
    pub tunnels: Vec<(TunnelId, Tunnel)>,
    /// ICMP identifier of health-check probes.
    pub probe_ident: u16,
    /// TTL of the ICMP messages Conduit generates (echo replies, errors).
    pub icmp_ttl: u8,
    /// Send ICMP time exceeded on TTL expiry (otherwise drop silently).
    pub icmp_ttl_exceeded: bool,
    /// What happens to IPv4 packets with options.
    pub ipv4_options: Ipv4OptionsPolicy,
    /// The IV prefix and the SAs of the IPsec tunnels.
    pub ipsec: IpsecConfig,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            ports: Vec::new(),
            gateway_port: 0,
            gateway_mac: EthernetAddress::default(),
            local_endpoints: Vec::new(),
            tunnels: Vec::new(),
            probe_ident: DEFAULT_PROBE_IDENT,
            icmp_ttl: DEFAULT_TTL,
            icmp_ttl_exceeded: false,
            ipv4_options: Ipv4OptionsPolicy::default(),
            ipsec: IpsecConfig::default(),
        }
    }
}

/// Why a configuration cannot become a [`Context`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContextError {
    #[error("gateway port {0} is not a configured port")]
    GatewayPort(u16),
    #[error("more than 65536 ports")]
    TooManyPorts,
    #[error("{what} {addr} is not a unicast host address")]
    InvalidAddress { what: &'static str, addr: Ipv4Addr },
    #[error("address {0} is configured twice")]
    DuplicateAddress(Ipv4Addr),
    #[error("{0} is listed twice")]
    DuplicateTunnel(TunnelId),
    #[error("{0}: ids above {MAX_TUNNEL_ID} are not supported")]
    TunnelIdTooLarge(TunnelId),
    #[error("{tunnel}: local address {local} is not a local endpoint")]
    LocalNotEndpoint { tunnel: TunnelId, local: Ipv4Addr },
    #[error("{tunnel}: MTU {mtu} outside {MIN_MTU}..={MAX_MTU}")]
    InvalidMtu { tunnel: TunnelId, mtu: u16 },
    #[error("{tunnel}: MSS {mss} must be 1..=MTU - 40")]
    InvalidMss { tunnel: TunnelId, mss: u16 },
    #[error("{tunnel}: TTL must not be 0")]
    InvalidTtl { tunnel: TunnelId },
    #[error("{tunnel} and {other} have the same local, remote and GRE key")]
    AmbiguousGre { tunnel: TunnelId, other: TunnelId },
    #[error("the forwarding table routes to {0}, which is not configured")]
    MissingTunnel(TunnelId),
    #[error("SAs are configured for {0}, which is not configured")]
    SasForUnknownTunnel(TunnelId),
    #[error("{0} has SAs but is not an IPsec tunnel")]
    SasOnNonIpsecTunnel(TunnelId),
    #[error("{0} has SAs listed twice")]
    DuplicateSas(TunnelId),
    #[error("{tunnel}: {count} inbound SAs, at most {MAX_INBOUND}")]
    TooManyInboundSas { tunnel: TunnelId, count: usize },
    #[error("{tunnel}: SPI {spi:#x} is reserved (SPIs start at {MIN_SPI})")]
    ReservedSpi { tunnel: TunnelId, spi: u32 },
    #[error("{tunnel}: inbound SPI {spi:#x} is listed twice")]
    DuplicateSpi { tunnel: TunnelId, spi: u32 },
    #[error("{tunnel}: replay window {window} must be 0 (off) or {MIN_WINDOW}..={MAX_WINDOW}")]
    InvalidReplayWindow { tunnel: TunnelId, window: u32 },
    #[error("{tunnel} and {other} share the remote endpoint and the inbound SPI {spi:#x}")]
    AmbiguousSpi {
        tunnel: TunnelId,
        other: TunnelId,
        spi: u32,
    },
}

/// Key of an empty [`FlatMap`] slot (no valid key is all ones: addresses are checked unicast).
const EMPTY: u64 = u64::MAX;

/// An open-addressing hash map `u64 → u32` with linear probing, built once, at most half full,
/// so a lookup is one multiply and usually one or two loads.
#[derive(Debug, Clone)]
struct FlatMap {
    keys: Box<[u64]>,
    values: Box<[u32]>,
    shift: u32,
    mask: usize,
}

impl FlatMap {
    /// `Err(key)` on a duplicate key.
    fn build(entries: &[(u64, u32)]) -> Result<FlatMap, u64> {
        let cap = (entries.len() * 2).next_power_of_two().max(16);
        let mut map = FlatMap {
            keys: vec![EMPTY; cap].into_boxed_slice(),
            values: vec![0; cap].into_boxed_slice(),
            shift: 64 - cap.trailing_zeros(),
            mask: cap - 1,
        };
        for &(key, value) in entries {
            debug_assert_ne!(key, EMPTY);
            let mut i = map.slot(key);
            while map.keys[i] != EMPTY {
                if map.keys[i] == key {
                    return Err(key);
                }
                i = (i + 1) & map.mask;
            }
            map.keys[i] = key;
            map.values[i] = value;
        }
        Ok(map)
    }

    /// Fibonacci hashing: the top bits of the product depend on every key bit.
    #[inline(always)]
    fn slot(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline(always)]
    fn get(&self, key: u64) -> Option<u32> {
        let mut i = self.slot(key);
        // Terminates: at least half the slots are empty.
        loop {
            let k = *self.keys.get(i)?;
            if k == key {
                return self.values.get(i).copied();
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// What one of our addresses is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Local {
    /// An anycast tunnel endpoint.
    Endpoint,
    /// An address of this port.
    Port(u16),
    /// Our side of this tunnel's interface subnet.
    TunnelInterface(TunnelId),
}

const LOCAL_TAG_SHIFT: u32 = 30;
const LOCAL_VALUE: u32 = (1 << LOCAL_TAG_SHIFT) - 1;

impl Local {
    fn encode(self) -> u32 {
        match self {
            Local::Endpoint => 0,
            Local::Port(p) => 1 << LOCAL_TAG_SHIFT | u32::from(p),
            Local::TunnelInterface(t) => 2 << LOCAL_TAG_SHIFT | t.0,
        }
    }

    #[inline(always)]
    fn decode(v: u32) -> Local {
        match v >> LOCAL_TAG_SHIFT {
            0 => Local::Endpoint,
            1 => Local::Port((v & LOCAL_VALUE) as u16),
            _ => Local::TunnelInterface(TunnelId(v & LOCAL_VALUE)),
        }
    }
}

/// A GRE tunnel among those sharing one (local, remote) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GreEntry {
    pub key: Option<u32>,
    pub tunnel: TunnelId,
}

/// A tunnel with its prepared encapsulation.
#[derive(Debug, Clone)]
pub(crate) struct TunnelEntry {
    pub tunnel: Tunnel,
    /// Ethernet (our gateway-port MAC → gateway MAC) + outer IPv4 (length, ident, TOS, flags
    /// and checksum zero) + GRE.
    pub header: [u8; MAX_ENCAP_LEN],
    /// 38, or 42 with a key.
    pub header_len: usize,
    /// One's-complement sum of the outer IPv4 header as templated.
    pub ip_sum: u16,
}

/// One SA of the context: what a worker's [`EspRuntime`](crate::esp::runtime::EspRuntime)
/// makes its session and window from.
#[derive(Debug, Clone)]
pub(crate) struct SaSlot {
    pub tunnel: TunnelId,
    pub direction: SaDirection,
    pub spi: u32,
    pub key: SaKey,
    pub replay_window: u32,
    pub shared: Arc<SaShared>,
}

/// An IPsec tunnel's prepared encapsulation.
#[derive(Debug, Clone)]
pub(crate) struct EspTunnel {
    /// Ethernet + outer IPv4 (length, ident, TOS, flags and checksum zero; protocol ESP, or UDP
    /// with NAT-T) + with NAT-T the UDP header (4500 → 4500, length zero, checksum 0) + the ESP
    /// header (the outbound SPI, sequence number zero).
    pub header: [u8; MAX_ESP_ENCAP_LEN],
    /// 42, or 50 with NAT-T.
    pub header_len: usize,
    /// One's-complement sum of the outer IPv4 header as templated.
    pub ip_sum: u16,
    pub nat_t: bool,
    /// The outbound SA's slot; `None`: the tunnel does not send (`esp_no_sa`).
    pub outbound: Option<u32>,
}

/// Contexts' IPsec generations: every `Context::new` takes the next.
static IPSEC_GENERATION: AtomicU64 = AtomicU64::new(1);

/// The immutable per-worker context. `Send + Sync`; shared by reference.
#[derive(Clone)]
pub struct Context {
    port_macs: Box<[EthernetAddress]>,
    gateway_port: u16,
    /// Ethernet header of plain packets to the gateway.
    gateway_eth: [u8; ethernet::HEADER_LEN],
    locals: FlatMap,
    /// (local, remote) → index in `gre_runs`.
    gre_pairs: FlatMap,
    gre_runs: Box<[(u32, u32)]>,
    gre_entries: Box<[GreEntry]>,
    tunnels: Box<[Option<TunnelEntry>]>,
    table: Arc<ForwardingTable>,
    /// In modulo ECMP mode, each group of `table` by id, ready for selection; empty otherwise.
    modulo: ModuloGroups,
    probe_ident: u16,
    icmp_ttl: u8,
    icmp_ttl_exceeded: bool,
    /// Source of ICMP errors about plain packets, which crossed no tunnel: the first local
    /// endpoint (docs/behaviour.md §6), unspecified when there is none.
    icmp_source: Ipv4Addr,
    ipv4_options: Ipv4OptionsPolicy,
    /// Changes with every `Context::new`, kept by `with_table`: the workers' ESP runtimes
    /// rebuild when it changes.
    ipsec_generation: u64,
    iv_prefix: IvPrefix,
    /// Every SA of every IPsec tunnel; the runtimes mirror it slot for slot.
    sa_slots: Box<[SaSlot]>,
    /// By tunnel id (empty without IPsec tunnels).
    esp_tunnels: Box<[Option<EspTunnel>]>,
    /// (remote << 32 | inbound SPI) → slot in `sa_slots`.
    esp_spis: FlatMap,
    /// (local, remote) pairs of the IPsec tunnels (value unused): their ESP fragments are
    /// reassembled.
    esp_pairs: FlatMap,
}

/// The groups of a modulo-mode table, flattened for the packet path: one 16-byte record per
/// group (its members' range and the [`ecmp::fastmod_multiplier`] of its size), so selection is
/// one load, two multiplies and the member's load, with no call into the table.
#[derive(Debug, Clone, Default)]
struct ModuloGroups {
    groups: Box<[ModuloGroup]>,
    /// The members of every group in the table's order ([`ForwardingTable::group_tunnels`]),
    /// concatenated.
    members: Box<[NextHop]>,
}

#[derive(Debug, Clone, Copy)]
struct ModuloGroup {
    first: u32,
    len: u32,
    /// [`ecmp::fastmod_multiplier`]`(len)`.
    multiplier: u64,
}

/// Validates that every tunnel `table` can select is configured, and prepares the groups for
/// selection (modulo mode only).
fn check_table(
    table: &ForwardingTable,
    tunnels: &[Option<TunnelEntry>],
) -> Result<ModuloGroups, ContextError> {
    let mut groups = Vec::new();
    let mut all = Vec::new();
    for g in 0..table.stats().groups {
        let members = table.group_tunnels(GroupId(g as u32));
        for t in members.iter().filter_map(|m| m.tunnel()) {
            if !matches!(tunnels.get(t.0 as usize), Some(Some(_))) {
                return Err(ContextError::MissingTunnel(t));
            }
        }
        groups.push(ModuloGroup {
            first: all.len() as u32,
            len: members.len() as u32,
            multiplier: ecmp::fastmod_multiplier(members.len() as u32),
        });
        all.extend_from_slice(members);
    }
    if table.mode() != EcmpMode::Modulo {
        return Ok(ModuloGroups::default());
    }
    Ok(ModuloGroups {
        groups: groups.into_boxed_slice(),
        members: all.into_boxed_slice(),
    })
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("ports", &self.port_macs)
            .field("gateway_port", &self.gateway_port)
            .field("tunnels", &self.tunnels.iter().flatten().count())
            .field("table", &self.table.stats())
            .finish_non_exhaustive()
    }
}

fn unicast(what: &'static str, addr: Ipv4Addr) -> Result<u64, ContextError> {
    if addr.is_unspecified()
        || addr.is_loopback()
        || addr.is_multicast()
        || addr.is_broadcast()
        || addr.octets()[0] >= 240
    {
        return Err(ContextError::InvalidAddress { what, addr });
    }
    Ok(u64::from(u32::from(addr)))
}

#[inline(always)]
fn pair_key(local: u32, remote: u32) -> u64 {
    u64::from(local) << 32 | u64::from(remote)
}

impl Context {
    /// Validates `config` against itself and `table` (every tunnel the table can select must be
    /// configured) and prepares the lookup structures.
    pub fn new(config: &ContextConfig, table: Arc<ForwardingTable>) -> Result<Self, ContextError> {
        if config.ports.len() > 1 << 16 {
            return Err(ContextError::TooManyPorts);
        }
        let gateway_mac = config
            .ports
            .get(usize::from(config.gateway_port))
            .ok_or(ContextError::GatewayPort(config.gateway_port))?
            .mac;
        let mut gateway_eth = [0u8; ethernet::HEADER_LEN];
        gateway_eth[..6].copy_from_slice(&config.gateway_mac.0);
        gateway_eth[6..12].copy_from_slice(&gateway_mac.0);
        gateway_eth[12..].copy_from_slice(&u16::from(EtherType::Ipv4).to_be_bytes());

        let mut locals: Vec<(u64, u32)> = Vec::new();
        for &addr in &config.local_endpoints {
            locals.push((unicast("local endpoint", addr)?, Local::Endpoint.encode()));
        }
        for (p, port) in config.ports.iter().enumerate() {
            for &addr in &port.addresses {
                locals.push((
                    unicast("port address", addr)?,
                    Local::Port(p as u16).encode(),
                ));
            }
        }

        let max_id = config.tunnels.iter().map(|(id, _)| id.0).max();
        let mut tunnels: Vec<Option<TunnelEntry>> = vec![
            None;
            max_id
                .map_or(0, |m| m as usize + 1)
                .min(MAX_TUNNEL_ID as usize + 1)
        ];
        let mut gre: Vec<(u64, GreEntry)> = Vec::new();
        for &(id, t) in &config.tunnels {
            if id.0 > MAX_TUNNEL_ID {
                return Err(ContextError::TunnelIdTooLarge(id));
            }
            if tunnels[id.0 as usize].is_some() {
                return Err(ContextError::DuplicateTunnel(id));
            }
            let local = unicast("tunnel local", t.local)?;
            let remote = unicast("tunnel remote", t.remote)?;
            if !config.local_endpoints.contains(&t.local) {
                return Err(ContextError::LocalNotEndpoint {
                    tunnel: id,
                    local: t.local,
                });
            }
            if !(MIN_MTU..=MAX_MTU).contains(&t.mtu) {
                return Err(ContextError::InvalidMtu {
                    tunnel: id,
                    mtu: t.mtu,
                });
            }
            if t.mss == 0 || t.mss > t.mtu - Tunnel::MSS_OVERHEAD {
                return Err(ContextError::InvalidMss {
                    tunnel: id,
                    mss: t.mss,
                });
            }
            if t.ttl == 0 {
                return Err(ContextError::InvalidTtl { tunnel: id });
            }
            locals.push((
                unicast("tunnel interface", t.interface)?,
                Local::TunnelInterface(id).encode(),
            ));
            unicast("tunnel peer interface", t.peer_interface)?;
            if t.kind == TunnelKind::Gre {
                gre.push((
                    pair_key(local as u32, remote as u32),
                    GreEntry {
                        key: t.key,
                        tunnel: id,
                    },
                ));
            }
            tunnels[id.0 as usize] = Some(Self::prepare(&t, gateway_eth));
        }

        let locals = FlatMap::build(&locals)
            .map_err(|k| ContextError::DuplicateAddress(Ipv4Addr::from(k as u32)))?;

        gre.sort_by_key(|&(pair, e)| (pair, e.key, e.tunnel));
        if let Some(w) = gre
            .windows(2)
            .find(|w| (w[0].0, w[0].1.key) == (w[1].0, w[1].1.key))
        {
            return Err(ContextError::AmbiguousGre {
                tunnel: w[0].1.tunnel,
                other: w[1].1.tunnel,
            });
        }
        let mut runs: Vec<(u32, u32)> = Vec::new();
        let mut pairs: Vec<(u64, u32)> = Vec::new();
        for (i, e) in gre.iter().enumerate() {
            if pairs.last().map(|p| p.0) != Some(e.0) {
                pairs.push((e.0, runs.len() as u32));
                runs.push((i as u32, i as u32 + 1));
            } else if let Some(r) = runs.last_mut() {
                r.1 = i as u32 + 1;
            }
        }
        let gre_pairs = FlatMap::build(&pairs).expect("pairs are distinct");

        let modulo = check_table(&table, &tunnels)?;
        let esp = prepare_ipsec(config, &tunnels, gateway_eth)?;

        Ok(Context {
            port_macs: config.ports.iter().map(|p| p.mac).collect(),
            gateway_port: config.gateway_port,
            gateway_eth,
            locals,
            gre_pairs,
            gre_runs: runs.into_boxed_slice(),
            gre_entries: gre.into_iter().map(|(_, e)| e).collect(),
            tunnels: tunnels.into_boxed_slice(),
            table,
            modulo,
            probe_ident: config.probe_ident,
            icmp_ttl: config.icmp_ttl,
            icmp_ttl_exceeded: config.icmp_ttl_exceeded,
            icmp_source: config
                .local_endpoints
                .first()
                .copied()
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            ipv4_options: config.ipv4_options,
            ipsec_generation: IPSEC_GENERATION.fetch_add(1, Ordering::Relaxed),
            iv_prefix: config.ipsec.iv_prefix,
            sa_slots: esp.slots.into_boxed_slice(),
            esp_tunnels: esp.tunnels.into_boxed_slice(),
            esp_spis: esp.spis,
            esp_pairs: esp.pairs,
        })
    }

    /// The encapsulation template of a tunnel.
    fn prepare(t: &Tunnel, eth: [u8; ethernet::HEADER_LEN]) -> TunnelEntry {
        // The fixed fields of the outer IPv4 header. Total length, identification, TOS and DF
        // change per packet: `encap` writes them and folds them into `ip_sum`, the one's-complement
        // sum of the fields set here.
        let mut ip = [0u8; ipv4::HEADER_LEN];
        let mut outer = ipv4::Ipv4Header::new(&mut ip);
        outer.set_header_len(ipv4::HEADER_LEN);
        outer.set_ttl(t.ttl);
        outer.set_protocol(IpProtocol::Gre);
        outer.set_src_addr(t.local);
        outer.set_dst_addr(t.remote);
        let ip_sum = outer.sum();
        let gre = gre::GreRepr {
            protocol: EtherType::Ipv4,
            checksum: false,
            key: t.key,
            sequence: None,
        };
        let g = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
        let mut header = [0u8; MAX_ENCAP_LEN];
        header[..ethernet::HEADER_LEN].copy_from_slice(&eth);
        header[ethernet::HEADER_LEN..g].copy_from_slice(&ip);
        // The template has room for the longest header a tunnel uses (GRE with key), and no
        // checksum to compute over a payload: emitting cannot fail.
        let gre_len = gre.emit(&mut header[g..]).unwrap_or(gre.buffer_len());
        TunnelEntry {
            tunnel: *t,
            header,
            header_len: g + gre_len,
            ip_sum,
        }
    }

    /// The same context over another forwarding table (e.g. after a health change).
    pub fn with_table(&self, table: Arc<ForwardingTable>) -> Result<Self, ContextError> {
        let modulo = check_table(&table, &self.tunnels)?;
        Ok(Context {
            table,
            modulo,
            ..self.clone()
        })
    }

    /// The forwarding table.
    #[inline]
    pub fn table(&self) -> &ForwardingTable {
        &self.table
    }

    /// A configured tunnel.
    #[inline]
    pub fn tunnel(&self, id: TunnelId) -> Option<&Tunnel> {
        self.entry(id).map(|e| &e.tunnel)
    }

    /// The port everything is sent to the gateway on.
    #[inline]
    pub fn gateway_port(&self) -> u16 {
        self.gateway_port
    }

    /// ICMP identifier of probes.
    #[inline]
    pub fn probe_ident(&self) -> u16 {
        self.probe_ident
    }

    /// The group a packet to `dst` (host order) matches and the next hop the workers choose in
    /// it for a non-fragment with these fields, by the packet path's own calls
    /// ([`ForwardingTable::lookup_group`], then [`Self::select`] with the seed rule's flow hash);
    /// `None` when no route covers `dst`. For operators' "which way does this flow go", off the
    /// packet path.
    pub fn next_hop(
        &self,
        src: u32,
        dst: u32,
        protocol: u8,
        src_port: u16,
        dst_port: u16,
    ) -> Option<(GroupId, NextHop)> {
        let group = self.table.lookup_group(dst)?;
        let hash = move || ecmp::flow_hash(src, dst, protocol, false, src_port, dst_port);
        Some((group, self.select(group, hash)))
    }

    /// [`ForwardingTable::select_in`] for the flow hash that `hash` computes, from the group
    /// records prepared with the context rather than the table's. Same result: in modulo mode
    /// both pick `members[`[`ecmp::fastmod`]`(hash, n)]` of the group's members by ascending
    /// id, which [`ForwardingTable::group_tunnels`] returns. A group of one member needs no hash,
    /// so `hash` is then not called.
    #[inline(always)]
    pub(crate) fn select(&self, group: GroupId, hash: impl Fn() -> u32) -> NextHop {
        let m = &self.modulo;
        if let Some(g) = m.groups.get(group.0 as usize) {
            let i = match g.len {
                1 => Some(0),
                0 => None,
                n => Some(ecmp::fastmod(hash(), n, g.multiplier) as usize),
            };
            if let Some(&t) = i.and_then(|i| m.members.get(g.first as usize + i)) {
                return t;
            }
        }
        self.table.select_in(group, hash())
    }

    #[inline(always)]
    pub(crate) fn entry(&self, id: TunnelId) -> Option<&TunnelEntry> {
        self.tunnels.get(id.0 as usize)?.as_ref()
    }

    #[inline(always)]
    pub(crate) fn port_mac(&self, port: u16) -> Option<EthernetAddress> {
        self.port_macs.get(usize::from(port)).copied()
    }

    #[inline]
    pub(crate) fn gateway_eth(&self) -> &[u8; ethernet::HEADER_LEN] {
        &self.gateway_eth
    }

    /// What `addr` (host order) is to us, if it is ours.
    #[inline(always)]
    pub(crate) fn local(&self, addr: u32) -> Option<Local> {
        self.locals.get(u64::from(addr)).map(Local::decode)
    }

    /// The GRE tunnels from `remote` to `local` (host order); empty if none.
    #[inline(always)]
    pub(crate) fn gre_candidates(&self, local: u32, remote: u32) -> &[GreEntry] {
        self.gre_pairs
            .get(pair_key(local, remote))
            .and_then(|run| self.gre_runs.get(run as usize))
            .and_then(|&(a, b)| self.gre_entries.get(a as usize..b as usize))
            .unwrap_or(&[])
    }

    #[inline]
    pub(crate) fn icmp_ttl(&self) -> u8 {
        self.icmp_ttl
    }

    #[inline]
    pub(crate) fn icmp_ttl_exceeded(&self) -> bool {
        self.icmp_ttl_exceeded
    }

    #[inline]
    pub(crate) fn icmp_source(&self) -> Ipv4Addr {
        self.icmp_source
    }

    /// What happens to IPv4 packets with options.
    #[inline]
    pub fn ipv4_options(&self) -> Ipv4OptionsPolicy {
        self.ipv4_options
    }

    /// Identifies this context's SAs: different for every [`Context::new`], the same after
    /// [`Context::with_table`]. Workers' ESP runtimes rebuild their sessions when it changes.
    #[inline]
    pub fn ipsec_generation(&self) -> u64 {
        self.ipsec_generation
    }

    /// The IV prefix of every outbound SA.
    #[inline]
    pub fn iv_prefix(&self) -> IvPrefix {
        self.iv_prefix
    }

    /// Every SA, in the order of the runtimes' slots.
    #[inline]
    pub(crate) fn sa_slots(&self) -> &[SaSlot] {
        &self.sa_slots
    }

    /// The prepared encapsulation of IPsec tunnel `id`.
    #[inline]
    pub(crate) fn esp_tunnel(&self, id: TunnelId) -> Option<&EspTunnel> {
        self.esp_tunnels.get(id.0 as usize)?.as_ref()
    }

    /// The slot of the inbound SA with `spi` of a tunnel from `remote` to `local` (host order).
    #[inline]
    pub(crate) fn esp_inbound(&self, local: u32, remote: u32, spi: u32) -> Option<u32> {
        let slot = self
            .esp_spis
            .get(u64::from(remote) << 32 | u64::from(spi))?;
        let sa = self.sa_slots.get(slot as usize)?;
        let t = self.tunnel(sa.tunnel)?;
        (u32::from(t.local) == local).then_some(slot)
    }

    /// The slot's SA.
    #[inline]
    pub(crate) fn sa_slot(&self, slot: u32) -> Option<&SaSlot> {
        self.sa_slots.get(slot as usize)
    }

    /// Whether an IPsec tunnel runs from `remote` to `local` (host order).
    #[inline]
    pub(crate) fn has_esp_pair(&self, local: u32, remote: u32) -> bool {
        self.esp_pairs.get(pair_key(local, remote)).is_some()
    }
}

/// The IPsec parts of a context, before they are boxed.
struct EspTables {
    slots: Vec<SaSlot>,
    tunnels: Vec<Option<EspTunnel>>,
    spis: FlatMap,
    pairs: FlatMap,
}

/// Validates `config.ipsec` against the tunnels and prepares the SA slots, the inbound lookup
/// and each IPsec tunnel's header template.
fn prepare_ipsec(
    config: &ContextConfig,
    tunnels: &[Option<TunnelEntry>],
    eth: [u8; ethernet::HEADER_LEN],
) -> Result<EspTables, ContextError> {
    let mut slots = Vec::new();
    let mut esp_tunnels: Vec<Option<EspTunnel>> = Vec::new();
    let mut spis: Vec<(u64, u32)> = Vec::new();
    let mut pairs: Vec<(u64, u32)> = Vec::new();
    let mut seen: Vec<TunnelId> = Vec::new();
    let any_ipsec = tunnels
        .iter()
        .flatten()
        .any(|e| e.tunnel.kind == TunnelKind::Ipsec);
    if any_ipsec {
        esp_tunnels = vec![None; tunnels.len()];
    }
    for (id, _) in &config.ipsec.tunnels {
        match tunnels.get(id.0 as usize) {
            Some(Some(e)) if e.tunnel.kind == TunnelKind::Ipsec => {}
            Some(Some(_)) => return Err(ContextError::SasOnNonIpsecTunnel(*id)),
            _ => return Err(ContextError::SasForUnknownTunnel(*id)),
        }
        if seen.contains(id) {
            return Err(ContextError::DuplicateSas(*id));
        }
        seen.push(*id);
    }
    let empty = crate::esp::sa::TunnelSas::default();
    for (i, entry) in tunnels.iter().enumerate() {
        let Some(entry) = entry.as_ref() else {
            continue;
        };
        let t = &entry.tunnel;
        if t.kind != TunnelKind::Ipsec {
            continue;
        }
        let id = TunnelId(i as u32);
        let sas = config
            .ipsec
            .tunnels
            .iter()
            .find(|(tid, _)| *tid == id)
            .map_or(&empty, |(_, s)| s);
        if sas.inbound.len() > MAX_INBOUND {
            return Err(ContextError::TooManyInboundSas {
                tunnel: id,
                count: sas.inbound.len(),
            });
        }
        let outbound = match &sas.outbound {
            Some(o) => {
                if o.spi < MIN_SPI {
                    return Err(ContextError::ReservedSpi {
                        tunnel: id,
                        spi: o.spi,
                    });
                }
                slots.push(SaSlot {
                    tunnel: id,
                    direction: SaDirection::Outbound,
                    spi: o.spi,
                    key: o.key.clone(),
                    replay_window: 0,
                    shared: Arc::clone(&o.shared),
                });
                Some(slots.len() as u32 - 1)
            }
            None => None,
        };
        for (n, sa) in sas.inbound.iter().enumerate() {
            if sa.spi < MIN_SPI {
                return Err(ContextError::ReservedSpi {
                    tunnel: id,
                    spi: sa.spi,
                });
            }
            if sas.inbound[..n].iter().any(|o| o.spi == sa.spi) {
                return Err(ContextError::DuplicateSpi {
                    tunnel: id,
                    spi: sa.spi,
                });
            }
            if sa.replay_window != 0 && !(MIN_WINDOW..=MAX_WINDOW).contains(&sa.replay_window) {
                return Err(ContextError::InvalidReplayWindow {
                    tunnel: id,
                    window: sa.replay_window,
                });
            }
            let key = u64::from(u32::from(t.remote)) << 32 | u64::from(sa.spi);
            if let Some(&(_, other)) = spis.iter().find(|(k, _)| *k == key) {
                return Err(ContextError::AmbiguousSpi {
                    tunnel: slots[other as usize].tunnel,
                    other: id,
                    spi: sa.spi,
                });
            }
            slots.push(SaSlot {
                tunnel: id,
                direction: SaDirection::Inbound,
                spi: sa.spi,
                key: sa.key.clone(),
                replay_window: sa.replay_window,
                shared: Arc::clone(&sa.shared),
            });
            spis.push((key, slots.len() as u32 - 1));
        }
        let pair = pair_key(u32::from(t.local), u32::from(t.remote));
        if !pairs.iter().any(|&(k, _)| k == pair) {
            pairs.push((pair, 0));
        }
        esp_tunnels[i] = Some(esp_template(
            t,
            sas.outbound.as_ref().map_or(0, |o| o.spi),
            sas.nat_t,
            outbound,
            eth,
        ));
    }
    Ok(EspTables {
        slots,
        tunnels: esp_tunnels,
        spis: FlatMap::build(&spis).expect("checked distinct"),
        pairs: FlatMap::build(&pairs).expect("deduplicated"),
    })
}

/// The header template of an IPsec tunnel sending on `spi`.
fn esp_template(
    t: &Tunnel,
    spi: u32,
    nat_t: bool,
    outbound: Option<u32>,
    eth: [u8; ethernet::HEADER_LEN],
) -> EspTunnel {
    let mut header = [0u8; MAX_ESP_ENCAP_LEN];
    header[..ethernet::HEADER_LEN].copy_from_slice(&eth);
    let ip_end = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    let ip_sum = {
        let mut outer = ipv4::Ipv4Header::new(
            <&mut [u8; ipv4::HEADER_LEN]>::try_from(&mut header[ethernet::HEADER_LEN..ip_end])
                .expect("20 bytes"),
        );
        outer.set_header_len(ipv4::HEADER_LEN);
        outer.set_ttl(t.ttl);
        outer.set_protocol(if nat_t {
            IpProtocol::Udp
        } else {
            IpProtocol::Esp
        });
        outer.set_src_addr(t.local);
        outer.set_dst_addr(t.remote);
        outer.sum()
    };
    let mut at = ip_end;
    if nat_t {
        header[at..at + 2].copy_from_slice(&NAT_T_PORT.to_be_bytes());
        header[at + 2..at + 4].copy_from_slice(&NAT_T_PORT.to_be_bytes());
        at += usize::from(NAT_T_UDP_LEN);
    }
    header[at..at + 4].copy_from_slice(&spi.to_be_bytes());
    EspTunnel {
        header,
        header_len: at + usize::from(ESP_HEADER_LEN),
        ip_sum,
        nat_t,
        outbound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_map_finds_every_key_and_nothing_else() {
        let entries: Vec<(u64, u32)> = (0..1000u32)
            .map(|i| (u64::from(0x0a00_0000 + i * 7), i))
            .collect();
        let m = FlatMap::build(&entries).unwrap();
        for &(k, v) in &entries {
            assert_eq!(m.get(k), Some(v));
        }
        assert_eq!(m.get(1), None);
        assert_eq!(m.get(0x0a00_0001), None);
        assert_eq!(FlatMap::build(&[(5, 1), (5, 2)]).unwrap_err(), 5);
        assert_eq!(FlatMap::build(&[]).unwrap().get(0), None);
    }

    #[test]
    fn local_encoding_round_trips() {
        for l in [
            Local::Endpoint,
            Local::Port(0),
            Local::Port(u16::MAX),
            Local::TunnelInterface(TunnelId(0)),
            Local::TunnelInterface(TunnelId(MAX_TUNNEL_ID)),
        ] {
            assert_eq!(Local::decode(l.encode()), l);
        }
    }

    #[test]
    fn peer_of_31_and_30() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(Tunnel::peer_of(a("10.200.0.0"), 31), Some(a("10.200.0.1")));
        assert_eq!(Tunnel::peer_of(a("10.200.0.3"), 31), Some(a("10.200.0.2")));
        assert_eq!(Tunnel::peer_of(a("10.200.0.9"), 30), Some(a("10.200.0.10")));
        assert_eq!(Tunnel::peer_of(a("10.200.0.10"), 30), Some(a("10.200.0.9")));
        assert_eq!(Tunnel::peer_of(a("10.200.0.8"), 30), None);
        assert_eq!(Tunnel::peer_of(a("10.200.0.8"), 29), None);
    }

    #[test]
    fn tunnel_defaults_follow_spec() {
        let a = Ipv4Addr::new(1, 1, 1, 1);
        let t = Tunnel::gre(a, a, a, a);
        assert_eq!((t.ttl, t.mtu, t.mss, t.key), (64, 1476, 1436, None));
        let t = t.with_key(7);
        assert_eq!((t.mtu, t.mss, t.key), (1472, 1432, Some(7)));
        let t = Tunnel::ipsec(a, a, a, a);
        assert_eq!((t.kind, t.mtu, t.mss), (TunnelKind::Ipsec, 1400, 1360));
        assert_eq!((MIN_MTU, MIN_MSS, MAX_ENCAP_LEN), (576, 536, 14 + 20 + 8));
        // Outer IPv4 + ESP header + IV + ICV = 52, trailer padded to 4: 1446 of 1500.
        assert_eq!(TunnelKind::Ipsec.max_mtu_for_link(false, 1500), 1446);
        assert_eq!(TunnelKind::Gre.max_mtu_for_link(true, 9000), 8972);
        // The names the config file, metrics labels and messages use.
        assert_eq!(
            (TunnelKind::Gre.as_str(), TunnelKind::Ipsec.as_str()),
            ("gre", "ipsec")
        );
        assert_eq!(
            (TunnelKind::Gre.to_string(), TunnelKind::Ipsec.to_string()),
            ("GRE".into(), "IPsec".into())
        );
        assert_eq!(
            probe_payload(TunnelId(0x0102_0304)),
            *b"CNDT\x01\x02\x03\x04"
        );
    }
}
