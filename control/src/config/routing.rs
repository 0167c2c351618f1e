//! Where traffic goes: the `gateway:` next hop for everything Conduit sends, the customer
//! `routes:` onto tunnels, and the `ecmp:` choice among equally good tunnels (docs/behaviour.md §1
//! and §3).

use std::net::Ipv4Addr;

use serde::Deserialize;

use conduit_packet::route::ecmp::{self, EcmpMode};
use conduit_packet::wire::EthernetAddress;

use super::addr::Ipv4Cidr;

/// The next hop of every packet Conduit sends out (encapsulated or internet egress).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub ipv4: Ipv4Addr,
    /// Static MAC address; without it the gateway is resolved with ARP from the port's `ipv4`.
    #[serde(default)]
    pub mac: Option<EthernetAddress>,
    /// Device name of the port (one of `dataplane.ports`) that faces the gateway.
    pub port: String,
}

/// One route. Its next hop is a tunnel (`tunnel: NAME`) or the gateway (`next_hop: gateway`):
/// exactly one of the two is given.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Network prefix; host bits must be zero.
    pub prefix: Ipv4Cidr,
    /// Name of the next-hop tunnel.
    #[serde(default)]
    pub tunnel: Option<String>,
    /// A next hop other than a tunnel: only `gateway` (plain IPv4 to the gateway, TTL − 1).
    #[serde(default)]
    pub next_hop: Option<NextHopConfig>,
    /// Lower wins; health penalties are added to it.
    pub priority: u32,
    /// Share among equal-cost routes in `weighted` and `resilient` ECMP (1..=256, default 1);
    /// ignored by `modulo`.
    #[serde(default)]
    pub weight: Option<u16>,
}

/// The `next_hop:` values of a route.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NextHopConfig {
    /// Forward plain (unencapsulated) to the gateway.
    Gateway,
}

/// Smallest and largest route weight: the forwarding table's.
pub const WEIGHT_RANGE: std::ops::RangeInclusive<u16> = ecmp::WEIGHT_RANGE;

impl RouteConfig {
    /// The weight, 1 when not configured.
    pub fn weight(&self) -> u16 {
        self.weight.unwrap_or(1)
    }

    /// The next hop's name for messages: the tunnel's name, or `gateway`.
    pub fn via(&self) -> &str {
        match (&self.tunnel, self.next_hop) {
            (Some(t), _) => t,
            (None, Some(NextHopConfig::Gateway)) | (None, None) => "gateway",
        }
    }
}

/// How equal-cost tunnels share a prefix's traffic.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EcmpConfig {
    #[serde(default)]
    pub mode: EcmpMode,
    /// Size of the bucket table of `weighted` and `resilient` (a power of two). Validated in
    /// every mode, so switching modes cannot make a config invalid.
    #[serde(default = "default_buckets")]
    pub buckets: u32,
}

/// Default bucket count: the size of the forwarding table's bucket runs ([`ecmp::BUCKETS`]).
pub const DEFAULT_BUCKETS: u32 = ecmp::BUCKETS as u32;
/// Allowed bucket counts (powers of two within): the forwarding table's
/// ([`ecmp::BUCKET_RANGE`]).
pub const BUCKETS_RANGE: std::ops::RangeInclusive<u32> =
    (*ecmp::BUCKET_RANGE.start() as u32)..=(*ecmp::BUCKET_RANGE.end() as u32);

fn default_buckets() -> u32 {
    DEFAULT_BUCKETS
}

impl Default for EcmpConfig {
    fn default() -> Self {
        EcmpConfig {
            mode: EcmpMode::default(),
            buckets: DEFAULT_BUCKETS,
        }
    }
}
