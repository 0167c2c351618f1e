//! The `tunnels:` section: one entry per GRE or IPsec tunnel, with its endpoints, interface
//! addresses, MTU/MSS, GRE key or static ESP SAs, and health-check settings (docs/behaviour.md §2
//! and §4).
//!
//! Fields left out take the documented defaults, computed by the accessors ([`TunnelConfig::mtu`],
//! [`TunnelConfig::mss`], [`TunnelConfig::health`], ...) because several depend on other fields
//! (the MTU on the kind and the key, the MSS on the MTU, the probe direction on the kind).

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Deserialize;

use conduit_packet::pipeline::{Tunnel, TunnelKind};
use conduit_packet::route::AdminState;

use super::addr::Ipv4Cidr;
use super::ipsec::TunnelIpsecConfig;
use crate::health::{HealthConfig, ProbeRate};

/// One tunnel.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// Unique; used in routes, logs and metrics labels.
    pub name: String,
    pub kind: TunnelKind,
    /// Our endpoint: one of `local_endpoints`.
    pub local: Ipv4Addr,
    /// The customer's endpoint.
    pub remote: Ipv4Addr,
    /// Our side of the tunnel's /30 or /31; the other usable host is the customer side.
    pub interface_address: Ipv4Cidr,
    /// TTL of the outer header.
    #[serde(default = "default_ttl")]
    pub ttl: u8,
    /// Largest inner packet; default [`TunnelConfig::default_mtu`].
    #[serde(default)]
    pub mtu: Option<u16>,
    /// TCP MSS clamp; default MTU − 40.
    #[serde(default)]
    pub mss: Option<u16>,
    /// GRE key (RFC 2890); GRE tunnels only.
    #[serde(default)]
    pub key: Option<u32>,
    /// Fragment inner packets bigger than the MTU even when they have DF set.
    #[serde(default)]
    pub clear_df: bool,
    /// `up` (default) or `down`: an admin-down tunnel counts as down for routing, sends no
    /// probes and still decapsulates (docs/behaviour.md §2).
    #[serde(default)]
    pub admin: AdminState,
    #[serde(default)]
    pub health_check: HealthCheckConfig,
    /// Static security associations; IPsec tunnels only (and required there).
    #[serde(default)]
    pub ipsec: Option<TunnelIpsecConfig>,
}

impl TunnelConfig {
    /// Documented defaults: 1500 minus the GRE overhead (1476, 1472 with a key), 1400 for IPsec
    /// ([`TunnelKind::default_mtu`]).
    pub fn default_mtu(&self) -> u16 {
        self.kind.default_mtu(self.key.is_some())
    }

    /// The largest inner packet.
    pub fn mtu(&self) -> u16 {
        self.mtu.unwrap_or_else(|| self.default_mtu())
    }

    /// The TCP MSS clamp (default MTU − 40, [`Tunnel::default_mss`]).
    pub fn mss(&self) -> u16 {
        self.mss.unwrap_or_else(|| Tunnel::default_mss(self.mtu()))
    }

    /// The largest inner packet whose encapsulation fits in `link_mtu` (the outer IP packet
    /// size the gateway port carries); see [`TunnelKind::max_mtu_for_link`].
    pub fn max_mtu_for_link(&self, link_mtu: u16) -> u16 {
        // NAT-T puts an 8-byte UDP header in front of the ESP header.
        let link_mtu = if self.nat_t() {
            link_mtu.saturating_sub(NAT_T_OVERHEAD)
        } else {
            link_mtu
        };
        self.kind.max_mtu_for_link(self.key.is_some(), link_mtu)
    }

    /// Whether the tunnel's ESP travels in UDP (RFC 3948).
    pub fn nat_t(&self) -> bool {
        self.ipsec.as_ref().is_some_and(|s| s.nat_t)
    }

    /// Our side of the tunnel's link (the configured interface address).
    pub fn our_address(&self) -> Ipv4Addr {
        self.interface_address.addr()
    }

    /// The customer side: the other usable host of the /31 or /30. Meaningful once the config
    /// is validated (the prefix is a /30 or /31 and the address a usable host).
    pub fn customer_address(&self) -> Ipv4Addr {
        let ours = self.interface_address.addr().to_bits();
        Ipv4Addr::from_bits(match self.interface_address.prefix_len() {
            // .0 <-> .1 in a /31; .1 <-> .2 in a /30 (.0 and .3 are network and broadcast).
            30 => (ours & !3) | (3 - (ours & 3)),
            _ => ours ^ 1,
        })
    }

    /// The probe direction: configured, else unidirectional for GRE and bidirectional for IPsec.
    pub fn health_direction(&self) -> ProbeDirection {
        self.health_check.direction.unwrap_or(match self.kind {
            TunnelKind::Gre => ProbeDirection::Unidirectional,
            TunnelKind::Ipsec => ProbeDirection::Bidirectional,
        })
    }

    /// Where `request` probes go: configured, else the customer endpoint.
    pub fn health_target(&self) -> Ipv4Addr {
        self.health_check.target.unwrap_or(self.remote)
    }

    /// The health state machine's settings (the documented defaults, overridden by the config).
    pub fn health(&self) -> HealthConfig {
        self.health_check.to_health_config()
    }
}

/// The UDP header of ESP in UDP (RFC 3948).
pub const NAT_T_OVERHEAD: u16 = 8;

fn default_ttl() -> u8 {
    Tunnel::DEFAULT_TTL
}

/// Health checking of one tunnel (docs/behaviour.md §4). Everything is optional; the timer and
/// threshold overrides exist so that labs and tests can run the state machine in seconds.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default, rename = "type")]
    pub probe: ProbeType,
    /// Default: unidirectional for GRE, bidirectional for IPsec.
    #[serde(default)]
    pub direction: Option<ProbeDirection>,
    /// `low` (10 s), `mid` (1 s, default) or `high` (100 ms); or give `interval_ms` instead.
    #[serde(default)]
    pub rate: Option<RatePreset>,
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// Destination of `request` probes; default: the customer endpoint.
    #[serde(default)]
    pub target: Option<Ipv4Addr>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub down_after_failures: Option<u32>,
    #[serde(default)]
    pub loss_window_ms: Option<u64>,
    #[serde(default)]
    pub degraded_loss_ppm: Option<u32>,
    #[serde(default)]
    pub degraded_min_failures: Option<u32>,
    #[serde(default)]
    pub successes_to_degraded: Option<u32>,
    #[serde(default)]
    pub successes_to_healthy: Option<u32>,
    #[serde(default)]
    pub hold_down_ms: Option<u64>,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            enabled: true,
            probe: ProbeType::default(),
            direction: None,
            rate: None,
            interval_ms: None,
            target: None,
            timeout_ms: None,
            retries: None,
            down_after_failures: None,
            loss_window_ms: None,
            degraded_loss_ppm: None,
            degraded_min_failures: None,
            successes_to_degraded: None,
            successes_to_healthy: None,
            hold_down_ms: None,
        }
    }
}

fn default_true() -> bool {
    true
}

impl HealthCheckConfig {
    /// The probe rate: `interval_ms` if given, else the preset (default `mid`).
    pub fn probe_rate(&self) -> ProbeRate {
        match (self.interval_ms, self.rate) {
            (Some(ms), _) => ProbeRate::Every(Duration::from_millis(ms)),
            (None, Some(RatePreset::Low)) => ProbeRate::Low,
            (None, Some(RatePreset::Mid) | None) => ProbeRate::Mid,
            (None, Some(RatePreset::High)) => ProbeRate::High,
        }
    }

    /// [`HealthConfig::default`] with the configured overrides applied.
    pub fn to_health_config(&self) -> HealthConfig {
        let d = HealthConfig::default();
        let ms = Duration::from_millis;
        HealthConfig {
            enabled: self.enabled,
            rate: self.probe_rate(),
            timeout: self.timeout_ms.map(ms),
            retries: self.retries.unwrap_or(d.retries),
            down_after_failures: self.down_after_failures.unwrap_or(d.down_after_failures),
            loss_window: self.loss_window_ms.map_or(d.loss_window, ms),
            degraded_loss_ppm: self.degraded_loss_ppm.unwrap_or(d.degraded_loss_ppm),
            degraded_min_failures: self
                .degraded_min_failures
                .unwrap_or(d.degraded_min_failures),
            successes_to_degraded: self
                .successes_to_degraded
                .unwrap_or(d.successes_to_degraded),
            successes_to_healthy: self.successes_to_healthy.unwrap_or(d.successes_to_healthy),
            hold_down: self.hold_down_ms.map_or(d.hold_down, ms),
        }
    }
}

/// What a probe is (docs/behaviour.md §4).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProbeType {
    /// An echo reply from the customer side to our side, looped back by the customer router.
    #[default]
    Reply,
    /// An echo request to the target; its reply comes back.
    Request,
}

/// How the answer to a probe returns (docs/behaviour.md §4).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProbeDirection {
    /// Plain, outside the tunnel.
    Unidirectional,
    /// Inside the tunnel, addressed with the interface addresses.
    Bidirectional,
}

/// The named probe rates.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RatePreset {
    Low,
    Mid,
    High,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(yaml: &str) -> TunnelConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const GRE: &str = "name: a\nkind: gre\nlocal: 192.0.2.1\nremote: 198.51.100.1\n\
                       interface_address: 10.0.0.0/31\n";

    #[test]
    fn gre_defaults() {
        let t = tunnel(GRE);
        assert_eq!(t.ttl, 64);
        assert_eq!(t.mtu(), 1476);
        assert_eq!(t.mss(), 1436);
        assert!(!t.clear_df);
        assert_eq!(t.health_direction(), ProbeDirection::Unidirectional);
        assert_eq!(t.health_check.probe, ProbeType::Reply);
        assert_eq!(t.health_target(), Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(t.health(), HealthConfig::default());
        assert_eq!(t.max_mtu_for_link(1500), 1476);

        let keyed = tunnel(&format!("{GRE}key: 7\n"));
        assert_eq!(keyed.mtu(), 1472);
        assert_eq!(keyed.mss(), 1432);
        assert_eq!(keyed.max_mtu_for_link(9000), 8972);

        let set = tunnel(&format!("{GRE}mtu: 1400\n"));
        assert_eq!(set.mss(), 1360);
    }

    #[test]
    fn ipsec_defaults_and_overhead() {
        let k = "ab".repeat(36);
        let t = tunnel(&format!(
            "{}ipsec: {{inbound: [{{spi: 1000, key: {k}}}]}}\n",
            GRE.replace("gre", "ipsec")
        ));
        assert_eq!(t.mtu(), 1400);
        assert_eq!(t.mss(), 1360);
        assert_eq!(t.health_direction(), ProbeDirection::Bidirectional);
        let sa = t.ipsec.as_ref().unwrap();
        assert_eq!(sa.replay_window, 0);
        assert!(!sa.nat_t && sa.outbound.is_none());
        let key = sa.inbound[0].key.as_ref().unwrap();
        assert_eq!(key.key, [0xab; 32]);
        assert_eq!(key.salt, [0xab; 4]);
        assert!(!format!("{t:?}").contains("abab"));
        // 20 + 8 + 8 + 16 = 52 bytes, then payload + 2 padded to 4: 1448 - 2 = 1446.
        assert_eq!(t.max_mtu_for_link(1500), 1446);
        assert_eq!(t.max_mtu_for_link(1501), 1446);
        assert_eq!(t.max_mtu_for_link(1504), 1450);
        // NAT-T adds a UDP header.
        let natt = tunnel(&format!(
            "{}ipsec: {{inbound: [{{spi: 1000, key: {k}}}], nat_t: true}}\n",
            GRE.replace("gre", "ipsec")
        ));
        assert!(natt.nat_t());
        assert_eq!(natt.max_mtu_for_link(1500), 1438);
    }

    #[test]
    fn customer_side_is_the_other_host() {
        let side = |cidr: &str| {
            let t = tunnel(&GRE.replace("10.0.0.0/31", cidr));
            (
                t.our_address().to_string(),
                t.customer_address().to_string(),
            )
        };
        assert_eq!(side("10.0.0.0/31"), ("10.0.0.0".into(), "10.0.0.1".into()));
        assert_eq!(side("10.0.0.1/31"), ("10.0.0.1".into(), "10.0.0.0".into()));
        assert_eq!(side("10.0.0.1/30"), ("10.0.0.1".into(), "10.0.0.2".into()));
        assert_eq!(side("10.0.0.6/30"), ("10.0.0.6".into(), "10.0.0.5".into()));
    }

    #[test]
    fn health_overrides_map_onto_health_config() {
        let t = tunnel(&format!(
            "{GRE}health_check:\n  enabled: false\n  type: request\n  direction: bidirectional\n  \
             rate: high\n  target: 10.9.9.9\n  timeout_ms: 50\n  retries: 0\n  \
             down_after_failures: 4\n  loss_window_ms: 10000\n  degraded_loss_ppm: 5000\n  \
             degraded_min_failures: 3\n  successes_to_degraded: 2\n  successes_to_healthy: 5\n  \
             hold_down_ms: 2000\n"
        ));
        let h = t.health();
        assert_eq!(
            h,
            HealthConfig {
                enabled: false,
                rate: ProbeRate::High,
                timeout: Some(Duration::from_millis(50)),
                retries: 0,
                down_after_failures: 4,
                loss_window: Duration::from_secs(10),
                degraded_loss_ppm: 5000,
                degraded_min_failures: 3,
                successes_to_degraded: 2,
                successes_to_healthy: 5,
                hold_down: Duration::from_secs(2),
            }
        );
        assert_eq!(t.health_direction(), ProbeDirection::Bidirectional);
        assert_eq!(t.health_check.probe, ProbeType::Request);
        assert_eq!(t.health_target(), Ipv4Addr::new(10, 9, 9, 9));

        for (rate, expect) in [
            ("rate: low", ProbeRate::Low),
            ("rate: mid", ProbeRate::Mid),
            (
                "interval_ms: 250",
                ProbeRate::Every(Duration::from_millis(250)),
            ),
        ] {
            let t = tunnel(&format!("{GRE}health_check: {{{rate}}}\n"));
            assert_eq!(t.health().rate, expect, "{rate}");
        }
    }
}
