//! Semantic checks, run after parsing. The first failing rule is reported with its field path
//! and the line found by [`locate`]. Sections are checked in file order: `dataplane`,
//! `local_endpoints`, `gateway`, `tunnels`, `ecmp`, `routes`, `icmp`, `reassembly`, `stats`, and
//! last the requirements of `pipeline` mode.
//!
//! Decisions where the behaviour is not prescribed:
//! - Addresses that go on the wire (endpoints, gateway, port addresses, probe targets) must be
//!   unicast: not 0.0.0.0/8, loopback, multicast or 240.0.0.0/4.
//! - A port address (`192.0.2.10/24`) must be a host of its subnet (not the network or broadcast
//!   address of a /30 or shorter). Without a static `gateway.mac`, the gateway port needs an
//!   address (ARP requests are sent from it), and the gateway must lie in its subnet.
//! - Tunnel names: 1..=64 letters, digits, `-`, `_`, `.` (they become metric labels).
//! - Tunnel MTU: from 576 (RFC 791) up to what fits in the gateway port's MTU (1500 if not
//!   set) after encapsulation (GRE 24 / 28 bytes; ESP 52 + 2..5 bytes of trailer, 8 more in
//!   UDP with `nat_t`), so the outer packet never needs fragmenting. MSS: 536..=MTU − 40.
//! - Two GRE tunnels with the same local and remote endpoints need different keys (a keyed and
//!   an unkeyed one may coexist: decapsulation matches the key exactly).
//! - IPsec (config/ipsec.rs): an IPsec tunnel needs its `ipsec` block and the appliance-wide
//!   `ipsec` section with an `instance_id`; a GRE tunnel has no `ipsec` block. 1..=4 inbound SAs
//!   with distinct SPIs; an inbound SPI is unique among the tunnels with the same remote
//!   endpoint (ESP is matched by remote and SPI); SPIs 0..=255 are reserved (RFC 4303). Each SA
//!   has exactly one of `key` and `key_ref`, and a `key_ref` names an entry of the keys file.
//!   An outbound key is used by one tunnel only and is no inbound key: each outbound SA numbers
//!   its own packets, and two SAs numbering packets under one key would repeat AES-GCM nonces.
//!   Replay window: 0 (off) or 64..=4096.
//! - Health checks: `rate` and `interval_ms` exclude each other; `target` only applies to
//!   `type: request`; everything else is delegated to [`HealthConfig::validate`], also for a
//!   disabled check (so enabling it later cannot fail).
//! - Routes: the same prefix twice via the same tunnel is an error; with `weighted` or
//!   `resilient` ECMP, a prefix cannot have more routes than buckets. Weights are accepted (and
//!   ignored) in `modulo` mode, and `ecmp.buckets` is checked in every mode, so switching modes
//!   never invalidates a config.
//! - `icmp.rate_per_sec: 0` turns generated ICMP errors off; otherwise `burst` must be ≥ 1.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;

use super::addr::is_unicast;
use super::limits::{MAX_SETS_RANGE, REASSEMBLY_TIMEOUT_RANGE_MS};
use conduit_packet::pipeline::{Tunnel, TunnelKind, MIN_MSS, MIN_MTU};
use conduit_packet::route::EcmpMode;

use super::ipsec::{
    spi_text, SaConfig, MAX_INBOUND, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW, MIN_SPI,
};
use super::routing::{BUCKETS_RANGE, WEIGHT_RANGE};
use super::tunnel::ProbeType;
use super::{locate, Config, ConfigError, ForwardMode, TunnelConfig, MAX_BURST, PORT_MTU_RANGE};
use crate::health::HealthConfigError;

/// The longest tunnel name.
pub const TUNNEL_NAME_MAX: usize = 64;

type Check = Result<(), ConfigError>;

/// Builds errors located in the text being checked.
struct Checker<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Checker<'_> {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let field = field.into();
        let line = locate(self.text, &field);
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            line,
            column: None,
            snippet: line
                .and_then(|l| super::diagnostic::snippet(self.text, l, None))
                .map(String::into_boxed_str),
            field,
            message: message.into(),
        }
    }
}

impl Config {
    pub(super) fn validate(&self, text: &str, file: &Path) -> Check {
        let c = Checker { text, file };
        check_dataplane(self, &c)?;
        check_local_endpoints(self, &c)?;
        check_gateway(self, &c)?;
        check_ipsec_section(self, &c)?;
        check_tunnels(self, &c)?;
        check_ecmp(self, &c)?;
        check_routes(self, &c)?;
        check_limits(self, &c)?;
        check_stats(self, &c)?;
        check_mode(self, &c)
    }
}

fn check_dataplane(cfg: &Config, c: &Checker) -> Check {
    check_ports(cfg, c)?;
    check_workers(cfg, c)?;
    check_bursts_and_rings(cfg, c)
}

/// Device names, MTUs and port addresses.
fn check_ports(cfg: &Config, c: &Checker) -> Check {
    let dp = &cfg.dataplane;
    if dp.ports.is_empty() {
        return Err(c.err("dataplane.ports", "at least one port is needed"));
    }
    let mut seen = HashSet::new();
    for (i, p) in dp.ports.iter().enumerate() {
        if p.device.trim().is_empty() {
            return Err(c.err(format!("dataplane.ports[{i}].device"), "empty device name"));
        }
        if !seen.insert(p.device.as_str()) {
            return Err(c.err(
                format!("dataplane.ports[{i}].device"),
                format!("port {:?} is listed twice", p.device),
            ));
        }
        if let Some(mtu) = p.mtu {
            if !PORT_MTU_RANGE.contains(&mtu) {
                return Err(c.err(
                    format!("dataplane.ports[{i}].mtu"),
                    format!(
                        "MTU {mtu} is outside {}..={}",
                        PORT_MTU_RANGE.start(),
                        PORT_MTU_RANGE.end()
                    ),
                ));
            }
        }
        if let Some(net) = p.ipv4 {
            let field = format!("dataplane.ports[{i}].ipv4");
            if !is_unicast(net.addr()) {
                return Err(c.err(field, format!("{} is not a unicast address", net.addr())));
            }
            if net.prefix_len() <= 30 && net.addr() == net.network() {
                return Err(c.err(
                    field,
                    format!("{net} is the network address of its subnet, not a host address"),
                ));
            }
            if net.prefix_len() <= 30 && net.addr() == net.broadcast() {
                return Err(c.err(
                    field,
                    format!("{net} is the broadcast address of its subnet, not a host address"),
                ));
            }
        }
        // Frames are sent from it and ARP answers name it: a group or zero address would be
        // dropped by every receiver.
        if let Some(mac) = p.mac {
            if mac.is_multicast() || mac.is_zero() {
                return Err(c.err(
                    format!("dataplane.ports[{i}].mac"),
                    format!("{mac} is not a unicast MAC address"),
                ));
            }
        }
    }
    Ok(())
}

fn check_workers(cfg: &Config, c: &Checker) -> Check {
    let dp = &cfg.dataplane;
    if dp.workers.is_empty() {
        return Err(c.err("dataplane.workers", "at least one worker lcore is needed"));
    }
    let mut seen = HashSet::new();
    for (i, w) in dp.workers.iter().enumerate() {
        if !seen.insert(*w) {
            return Err(c.err(
                format!("dataplane.workers[{i}]"),
                format!("lcore {w} is listed twice"),
            ));
        }
    }
    Ok(())
}

/// Burst size, descriptor rings and the mbufs that must fill them.
fn check_bursts_and_rings(cfg: &Config, c: &Checker) -> Check {
    let dp = &cfg.dataplane;
    if dp.burst == 0 || dp.burst > MAX_BURST {
        return Err(c.err(
            "dataplane.burst",
            format!("burst {} is outside 1..={MAX_BURST}", dp.burst),
        ));
    }
    if dp.rx_desc == 0 || dp.tx_desc == 0 {
        let f = if dp.rx_desc == 0 {
            "rx_desc"
        } else {
            "tx_desc"
        };
        return Err(c.err(format!("dataplane.{f}"), "must be at least 1"));
    }
    if let Some(n) = dp.mbufs {
        let need = cfg.min_mbufs();
        if n < need {
            return Err(c.err(
                "dataplane.mbufs",
                format!("{n} mbufs cannot fill the descriptor rings and bursts; at least {need} are needed"),
            ));
        }
    }
    Ok(())
}

fn check_local_endpoints(cfg: &Config, c: &Checker) -> Check {
    let mut seen = HashSet::new();
    for (i, &ip) in cfg.local_endpoints.iter().enumerate() {
        let field = format!("local_endpoints[{i}]");
        if !is_unicast(ip) {
            return Err(c.err(field, format!("{ip} is not a unicast address")));
        }
        if !seen.insert(ip) {
            return Err(c.err(field, format!("{ip} is listed twice")));
        }
    }
    Ok(())
}

fn check_gateway(cfg: &Config, c: &Checker) -> Check {
    let Some(gw) = &cfg.gateway else {
        return Ok(());
    };
    let Some((_, port)) = cfg.gateway_port() else {
        return Err(c.err(
            "gateway.port",
            format!("port {:?} is not one of dataplane.ports", gw.port),
        ));
    };
    if !is_unicast(gw.ipv4) {
        return Err(c.err(
            "gateway.ipv4",
            format!("{} is not a unicast address", gw.ipv4),
        ));
    }
    if cfg.local_endpoints.contains(&gw.ipv4) {
        return Err(c.err(
            "gateway.ipv4",
            format!("{} is one of our local_endpoints", gw.ipv4),
        ));
    }
    if let Some(mac) = gw.mac {
        if mac.is_multicast() || mac.is_zero() {
            return Err(c.err("gateway.mac", format!("{mac} is not a unicast MAC address")));
        }
    }
    match port.ipv4 {
        Some(net) if net.addr() == gw.ipv4 => Err(c.err(
            "gateway.ipv4",
            format!("{} is the address of port {:?} itself", gw.ipv4, port.device),
        )),
        Some(net) if !net.contains(gw.ipv4) => Err(c.err(
            "gateway.ipv4",
            format!(
                "{} is outside the subnet {net} of port {:?}",
                gw.ipv4, port.device
            ),
        )),
        None if gw.mac.is_none() => Err(c.err(
            "gateway.mac",
            format!(
                "not set, and port {:?} has no ipv4 address to send ARP requests from: give one of them",
                port.device
            ),
        )),
        _ => Ok(()),
    }
}

fn valid_tunnel_name(name: &str) -> bool {
    (1..=TUNNEL_NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The per-tunnel rules, with what the tunnels checked so far claim.
struct TunnelChecks<'a> {
    cfg: &'a Config,
    c: &'a Checker<'a>,
    uplink: Uplink,
    claimed: Claimed<'a>,
}

/// What earlier tunnels claim, for the uniqueness rules of the later ones.
#[derive(Default)]
struct Claimed<'a> {
    names: HashMap<&'a str, usize>,
    gre_ids: HashMap<(Ipv4Addr, Ipv4Addr, Option<u32>), usize>,
    /// Inbound SPIs by remote endpoint.
    spis: HashMap<(Ipv4Addr, u32), usize>,
    /// Keys of outbound SAs (tunnel index) and of inbound SAs (tunnel index).
    outbound_keys: HashMap<[u8; 36], usize>,
    inbound_keys: HashMap<[u8; 36], usize>,
    /// Tunnel indices by the /30 block of their interface address.
    subnets: HashMap<u32, Vec<usize>>,
}

/// The gateway port's MTU and how messages name that port.
struct Uplink {
    mtu: u16,
    name: String,
}

fn check_tunnels(cfg: &Config, c: &Checker) -> Check {
    let mut checks = TunnelChecks {
        cfg,
        c,
        uplink: Uplink {
            mtu: cfg.uplink_mtu(),
            name: match cfg.gateway_port() {
                Some((_, p)) => format!("port {:?}", p.device),
                None => "the uplink".to_string(),
            },
        },
        claimed: Claimed::default(),
    };
    for (i, t) in cfg.tunnels.iter().enumerate() {
        checks.name(i, t)?;
        checks.endpoints(i, t)?;
        checks.kind(i, t)?;
        checks.interface_address(i, t)?;
        checks.mtu_mss(i, t)?;
        checks.gre_unique(i, t)?;
        checks.ipsec(i, t)?;
        check_health(t, i, c)?;
    }
    checks.outbound_keys_not_inbound()
}

impl<'a> TunnelChecks<'a> {
    /// An error at `tunnels[i].<field>`.
    fn err(&self, i: usize, field: &str, message: impl Into<String>) -> ConfigError {
        self.c.err(format!("tunnels[{i}].{field}"), message)
    }

    /// A valid name, not taken by an earlier tunnel.
    fn name(&mut self, i: usize, t: &'a TunnelConfig) -> Check {
        if !valid_tunnel_name(&t.name) {
            return Err(self.err(
                i,
                "name",
                format!(
                    "{:?}: tunnel names are 1..={TUNNEL_NAME_MAX} letters, digits, '-', '_' or '.'",
                    t.name
                ),
            ));
        }
        if self.claimed.names.insert(&t.name, i).is_some() {
            return Err(self.err(i, "name", format!("tunnel {:?} is listed twice", t.name)));
        }
        Ok(())
    }

    /// Our endpoint is one of ours; the customer's is a unicast address that is not.
    fn endpoints(&self, i: usize, t: &TunnelConfig) -> Check {
        if !self.cfg.local_endpoints.contains(&t.local) {
            return Err(self.err(
                i,
                "local",
                format!("{} is not one of local_endpoints", t.local),
            ));
        }
        if !is_unicast(t.remote) {
            return Err(self.err(
                i,
                "remote",
                format!("{} is not a unicast address", t.remote),
            ));
        }
        if self.cfg.local_endpoints.contains(&t.remote) {
            return Err(self.err(
                i,
                "remote",
                format!("{} is one of our local_endpoints", t.remote),
            ));
        }
        Ok(())
    }

    /// The fields that belong to one kind only, and the outer TTL.
    fn kind(&self, i: usize, t: &TunnelConfig) -> Check {
        match t.kind {
            TunnelKind::Gre if t.ipsec.is_some() => {
                return Err(self.err(
                    i,
                    "ipsec",
                    "only IPsec tunnels have an ipsec block (this one is GRE)",
                ));
            }
            TunnelKind::Ipsec if t.key.is_some() => {
                return Err(self.err(
                    i,
                    "key",
                    "only GRE tunnels have a key (IPsec keys go in the ipsec block)",
                ));
            }
            TunnelKind::Ipsec if t.ipsec.is_none() => {
                return Err(self.err(
                    i,
                    "ipsec",
                    "an IPsec tunnel needs an ipsec block with its SAs (outbound, inbound)",
                ));
            }
            TunnelKind::Ipsec if self.cfg.ipsec.is_none() => {
                return Err(self.err(
                    i,
                    "kind",
                    "IPsec tunnels need the appliance-wide ipsec section (with instance_id)",
                ));
            }
            _ => {}
        }
        if t.ttl == 0 {
            return Err(self.err(i, "ttl", "TTL 0 is outside 1..=255"));
        }
        Ok(())
    }

    /// A usable host of a /30 or /31 that overlaps no earlier tunnel's.
    fn interface_address(&mut self, i: usize, t: &TunnelConfig) -> Check {
        let a = t.interface_address;
        let field = "interface_address";
        if a.prefix_len() != 30 && a.prefix_len() != 31 {
            return Err(self.err(
                i,
                field,
                format!("{a}: a tunnel interface address must be a /30 or /31"),
            ));
        }
        if a.prefix_len() == 30 && (a.addr() == a.network() || a.addr() == a.broadcast()) {
            let n = a.network().to_bits();
            return Err(self.err(
                i,
                field,
                format!(
                    "{a} is not a usable host of the /30 (use {}/30 or {}/30)",
                    Ipv4Addr::from_bits(n + 1),
                    Ipv4Addr::from_bits(n + 2)
                ),
            ));
        }
        // Interface subnets are /30s or /31s, so two overlap only inside the same /30 block:
        // a hash lookup per tunnel instead of a scan of every earlier one.
        let block = a.addr().to_bits() & !3;
        let earlier = self.claimed.subnets.entry(block).or_default();
        let overlapping = earlier
            .iter()
            .map(|&j| &self.cfg.tunnels[j])
            .find(|o| o.interface_address.overlaps(&a));
        earlier.push(i);
        if let Some(other) = overlapping {
            return Err(self.err(
                i,
                field,
                format!(
                    "{a} overlaps {} of tunnel {:?}",
                    other.interface_address, other.name
                ),
            ));
        }
        Ok(())
    }

    /// The MTU fits the uplink after encapsulation; the MSS fits the MTU.
    fn mtu_mss(&self, i: usize, t: &TunnelConfig) -> Check {
        let mtu = t.mtu();
        let default = if t.mtu.is_none() {
            " (the default)"
        } else {
            ""
        };
        if mtu < MIN_MTU {
            return Err(self.err(
                i,
                "mtu",
                format!("MTU {mtu} is below the minimum {MIN_MTU}"),
            ));
        }
        let max = t.max_mtu_for_link(self.uplink.mtu);
        if mtu > max {
            return Err(self.err(i, "mtu",
                format!(
                    "MTU {mtu}{default} does not fit the {}-byte MTU of {} after {} encapsulation: at most {max}",
                    self.uplink.mtu, self.uplink.name, t.kind
                ),
            ));
        }
        let mss = t.mss();
        let overhead = Tunnel::MSS_OVERHEAD;
        if mss > mtu - overhead {
            return Err(self.err(
                i,
                "mss",
                format!(
                    "MSS {mss} exceeds MTU {mtu} - {overhead} = {}",
                    mtu - overhead
                ),
            ));
        }
        if mss < MIN_MSS {
            return Err(self.err(
                i,
                "mss",
                format!("MSS {mss} is below the minimum {MIN_MSS}"),
            ));
        }
        Ok(())
    }

    /// GRE packets are told apart by (local, remote, key).
    fn gre_unique(&mut self, i: usize, t: &TunnelConfig) -> Check {
        if t.kind != TunnelKind::Gre {
            return Ok(());
        }
        if let Some(&j) = self.claimed.gre_ids.get(&(t.local, t.remote, t.key)) {
            let other = &self.cfg.tunnels[j].name;
            return Err(match t.key {
                Some(key) => self.err(i, "key",
                    format!("tunnel {other:?} has the same local, remote and key {key}: GRE packets could not be told apart"),
                ),
                None => self.err(i, "remote",
                    format!("tunnel {other:?} has the same local and remote and no key either: give them different keys"),
                ),
            });
        }
        self.claimed.gre_ids.insert((t.local, t.remote, t.key), i);
        Ok(())
    }

    /// SPIs, keys and the replay window of the static SAs.
    fn ipsec(&mut self, i: usize, t: &TunnelConfig) -> Check {
        let Some(sa) = &t.ipsec else {
            return Ok(());
        };
        if let Some(out) = &sa.outbound {
            let key = self.sa(i, "ipsec.outbound", out)?;
            if let Some(&j) = self.claimed.outbound_keys.get(&key) {
                return Err(self.err(i, "ipsec.outbound",
                    format!("the outbound key of tunnel {:?} again: two SAs numbering packets under one key would repeat AES-GCM nonces; give each outbound SA its own key", self.cfg.tunnels[j].name),
                ));
            }
            self.claimed.outbound_keys.insert(key, i);
        }
        if sa.inbound.is_empty() || sa.inbound.len() > MAX_INBOUND {
            return Err(self.err(
                i,
                "ipsec.inbound",
                format!(
                    "{} inbound SAs: give 1..={MAX_INBOUND} (more than one during a rekey)",
                    sa.inbound.len()
                ),
            ));
        }
        for (k, inb) in sa.inbound.iter().enumerate() {
            let field = format!("ipsec.inbound[{k}]");
            let key = self.sa(i, &field, inb)?;
            if sa.inbound[..k].iter().any(|o| o.spi == inb.spi) {
                return Err(self.err(
                    i,
                    &format!("{field}.spi"),
                    format!("SPI {} is listed twice", spi_text(inb.spi)),
                ));
            }
            if let Some(&j) = self.claimed.spis.get(&(t.remote, inb.spi)) {
                return Err(self.err(i, &format!("{field}.spi"),
                    format!(
                        "inbound SPI {} is already used by tunnel {:?} with the same remote {}: ESP from it could not be told apart",
                        spi_text(inb.spi), self.cfg.tunnels[j].name, t.remote
                    ),
                ));
            }
            self.claimed.spis.insert((t.remote, inb.spi), i);
            self.claimed.inbound_keys.entry(key).or_insert(i);
        }
        // Checked once every tunnel's inbound keys are known: see `outbound_keys_not_inbound`.
        let w = sa.replay_window;
        if w != 0 && !(MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW).contains(&w) {
            return Err(self.err(
                i,
                "ipsec.replay_window",
                format!(
                    "replay window {w} must be 0 (off) or {MIN_REPLAY_WINDOW}..={MAX_REPLAY_WINDOW}"
                ),
            ));
        }
        Ok(())
    }

    /// One SA's SPI and key source; returns the key's bytes (for the uniqueness rules).
    fn sa(&self, i: usize, field: &str, sa: &SaConfig) -> Result<[u8; 36], ConfigError> {
        if sa.spi < MIN_SPI {
            return Err(self.err(
                i,
                &format!("{field}.spi"),
                format!(
                    "SPI {} is reserved (0..={}, RFC 4303); use {MIN_SPI} or above",
                    sa.spi,
                    MIN_SPI - 1
                ),
            ));
        }
        let key = match (&sa.key, &sa.key_ref) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    i,
                    &format!("{field}.key_ref"),
                    "give either key or key_ref, not both",
                ))
            }
            (None, None) => {
                return Err(self.err(
                    i,
                    field,
                    "the SA has no key: add `key: 0x<72 hex digits>` or `key_ref: NAME` (an entry of ipsec.keys_file)",
                ))
            }
            (Some(k), None) => k,
            (None, Some(name)) => {
                let has_file = self
                    .cfg
                    .ipsec
                    .as_ref()
                    .is_some_and(|s| s.keys_file.is_some());
                match self.cfg.keys.get(name) {
                    Some(k) => k,
                    None if !has_file => {
                        return Err(self.err(
                            i,
                            &format!("{field}.key_ref"),
                            format!("key_ref {name:?} needs ipsec.keys_file, which is not set"),
                        ))
                    }
                    None => {
                        return Err(self.err(
                            i,
                            &format!("{field}.key_ref"),
                            format!("no key {name:?} in ipsec.keys_file"),
                        ))
                    }
                }
            }
        };
        let mut bytes = [0u8; 36];
        bytes[..32].copy_from_slice(&key.key);
        bytes[32..].copy_from_slice(&key.salt);
        Ok(bytes)
    }

    /// No outbound key is also an inbound key (of any tunnel): the peer numbers its packets
    /// under its own scheme, and ours and its could repeat nonces.
    fn outbound_keys_not_inbound(&self) -> Check {
        let mut clash: Vec<(usize, usize)> = self
            .claimed
            .outbound_keys
            .iter()
            .filter_map(|(k, &i)| self.claimed.inbound_keys.get(k).map(|&j| (i, j)))
            .collect();
        clash.sort_unstable();
        if let Some(&(i, j)) = clash.first() {
            return Err(self.err(i, "ipsec.outbound",
                format!(
                    "the key is also an inbound key of tunnel {:?}: the two directions would repeat AES-GCM nonces under one key; give each SA its own key",
                    self.cfg.tunnels[j].name
                ),
            ));
        }
        Ok(())
    }
}

/// The appliance-wide `ipsec` section, and that IPsec tunnels have one with an instance id.
fn check_ipsec_section(cfg: &Config, c: &Checker) -> Check {
    let Some(s) = &cfg.ipsec else {
        return Ok(());
    };
    if s.crypto_device.trim().is_empty() {
        return Err(c.err("ipsec.crypto_device", "empty device name"));
    }
    if s.state_dir.as_os_str().is_empty() {
        return Err(c.err("ipsec.state_dir", "empty path"));
    }
    if s.instance_id.is_none() && cfg.has_ipsec_tunnels() {
        return Err(c.err(
            "ipsec",
            "instance_id is missing: IPsec tunnels need it, unique among the appliances of a fleet (it makes their IVs differ)",
        ));
    }
    Ok(())
}

fn check_health(t: &TunnelConfig, i: usize, c: &Checker) -> Check {
    let hc = &t.health_check;
    let f = |s: &str| format!("tunnels[{i}].health_check.{s}");
    if hc.rate.is_some() && hc.interval_ms.is_some() {
        return Err(c.err(
            f("interval_ms"),
            "give either rate or interval_ms, not both",
        ));
    }
    if let Some(target) = hc.target {
        if hc.probe == ProbeType::Reply {
            return Err(c.err(
                f("target"),
                "a target applies only to probes of type: request",
            ));
        }
        if !is_unicast(target) {
            return Err(c.err(f("target"), format!("{target} is not a unicast address")));
        }
    }
    hc.to_health_config().validate().map_err(|e| {
        let field = match &e {
            HealthConfigError::ZeroInterval => "interval_ms",
            HealthConfigError::ZeroTimeout | HealthConfigError::TimeoutTooLong { .. } => {
                "timeout_ms"
            }
            HealthConfigError::Zero("loss_window") => "loss_window_ms",
            HealthConfigError::Zero(name) => name,
            HealthConfigError::LossRatioTooHigh(_) => "degraded_loss_ppm",
        };
        c.err(f(field), e.to_string())
    })
}

fn check_ecmp(cfg: &Config, c: &Checker) -> Check {
    let b = cfg.ecmp.buckets;
    if !BUCKETS_RANGE.contains(&b) {
        return Err(c.err(
            "ecmp.buckets",
            format!(
                "{b} buckets is outside {}..={}",
                BUCKETS_RANGE.start(),
                BUCKETS_RANGE.end()
            ),
        ));
    }
    if !b.is_power_of_two() {
        return Err(c.err("ecmp.buckets", format!("{b} buckets is not a power of two")));
    }
    Ok(())
}

fn check_routes(cfg: &Config, c: &Checker) -> Check {
    // (prefix, next-hop tunnel name or `None` for the gateway).
    let mut seen: HashSet<(super::Ipv4Cidr, Option<&str>)> = HashSet::new();
    let mut per_prefix: HashMap<super::Ipv4Cidr, u32> = HashMap::new();
    let names: HashSet<&str> = cfg.tunnels.iter().map(|t| t.name.as_str()).collect();
    let bucket_mode = cfg.ecmp.mode != EcmpMode::Modulo;
    for (i, r) in cfg.routes.iter().enumerate() {
        let f = |s: &str| format!("routes[{i}].{s}");
        let p = r.prefix;
        if !p.is_network() {
            return Err(c.err(
                f("prefix"),
                format!(
                    "{p}: host bits are set (the network is {}/{})",
                    p.network(),
                    p.prefix_len()
                ),
            ));
        }
        match (&r.tunnel, r.next_hop) {
            (Some(_), Some(_)) => {
                return Err(c.err(
                    f("next_hop"),
                    "give either `tunnel` or `next_hop`, not both",
                ))
            }
            (None, None) => {
                return Err(c.err(
                    f("prefix"),
                    "the route has no next hop: add `tunnel: NAME` or `next_hop: gateway`",
                ))
            }
            (Some(t), None) if !names.contains(t.as_str()) => {
                // A tunnel called "gateway" would be found above; otherwise say how to name the
                // gateway.
                let hint = if t == "gateway" {
                    " (to forward plain to the gateway, write `next_hop: gateway`)"
                } else {
                    ""
                };
                return Err(c.err(f("tunnel"), format!("unknown tunnel {t:?}{hint}")));
            }
            _ => {}
        }
        if let Some(w) = r.weight {
            if !WEIGHT_RANGE.contains(&w) {
                return Err(c.err(
                    f("weight"),
                    format!(
                        "weight {w} is outside {}..={}",
                        WEIGHT_RANGE.start(),
                        WEIGHT_RANGE.end()
                    ),
                ));
            }
        }
        if !seen.insert((p, r.tunnel.as_deref())) {
            let via = match &r.tunnel {
                Some(t) => format!("tunnel {t:?}"),
                None => "the gateway".to_string(),
            };
            return Err(c.err(f("prefix"), format!("route {p} via {via} is listed twice")));
        }
        let n = per_prefix.entry(p).or_default();
        *n += 1;
        if bucket_mode && *n > cfg.ecmp.buckets {
            return Err(c.err(
                f("prefix"),
                format!(
                    "{p} has more routes than the {} ECMP buckets",
                    cfg.ecmp.buckets
                ),
            ));
        }
    }
    Ok(())
}

fn check_limits(cfg: &Config, c: &Checker) -> Check {
    let icmp = &cfg.icmp;
    if icmp.rate_per_sec > 0 && icmp.burst == 0 {
        return Err(c.err(
            "icmp.burst",
            "burst 0 lets no ICMP error through; use at least 1 (rate_per_sec: 0 turns ICMP errors off)",
        ));
    }
    let r = &cfg.reassembly;
    if !MAX_SETS_RANGE.contains(&r.max_sets) {
        return Err(c.err(
            "reassembly.max_sets",
            format!(
                "{} sets is outside {}..={}",
                r.max_sets,
                MAX_SETS_RANGE.start(),
                MAX_SETS_RANGE.end()
            ),
        ));
    }
    if !REASSEMBLY_TIMEOUT_RANGE_MS.contains(&r.timeout_ms) {
        return Err(c.err(
            "reassembly.timeout_ms",
            format!(
                "{} ms is outside {}..={}",
                r.timeout_ms,
                REASSEMBLY_TIMEOUT_RANGE_MS.start(),
                REASSEMBLY_TIMEOUT_RANGE_MS.end()
            ),
        ));
    }
    Ok(())
}

fn check_stats(cfg: &Config, c: &Checker) -> Check {
    if let Some(addr) = cfg.stats.prometheus_listen {
        if addr.port() == 0 {
            return Err(c.err(
                "stats.prometheus_listen",
                format!("{addr}: port 0 cannot be scraped; give a fixed port such as 9100"),
            ));
        }
    }
    Ok(())
}

fn check_mode(cfg: &Config, c: &Checker) -> Check {
    if cfg.dataplane.mode != ForwardMode::Pipeline {
        return Ok(());
    }
    let missing = if cfg.local_endpoints.is_empty() {
        "at least one address in local_endpoints"
    } else if cfg.gateway.is_none() {
        "a gateway section"
    } else if cfg.tunnels.is_empty() {
        "at least one tunnel"
    } else {
        return Ok(());
    };
    Err(c.err("dataplane.mode", format!("pipeline mode needs {missing}")))
}
