//! The appliance's YAML configuration.
//!
//! Parsing is strict: unknown fields are errors, and every error names the file, the line and
//! the field path (`tunnels[1].mtu`), then shows the source line, so an operator can go
//! straight to the mistake. Syntax and type errors are placed by the YAML parser's own marks
//! and worded by `config/diagnostic.rs`; the semantic checks done after parsing
//! (`config/validate.rs`) find the line of the offending field with [`locate`]. The file is
//! read with bounds (`config/read.rs`): a regular file of at most [`MAX_CONFIG_BYTES`].
//!
//! The file's sections (all but `dataplane` optional, so an `io` demo needs only that):
//!
//! ```yaml
//! dataplane:        # ports (device, mtu, rss, ipv4, mac), workers, mode (io | pipeline), pools
//! local_endpoints:  # anycast tunnel endpoints announced by every appliance
//! gateway:          # { ipv4, mac?, port }: next hop of everything Conduit sends
//! ipsec:            # { instance_id, crypto_device, keys_file, state_dir } (config/ipsec.rs)
//! tunnels:          # GRE / IPsec tunnels, with health checks (config/tunnel.rs)
//! routes:           # { prefix, tunnel | next_hop: gateway, priority, weight? }
//! ecmp:             # { mode: modulo | weighted | resilient, buckets }
//! icmp:             # { rate_per_sec, burst, ttl_exceeded }
//! ipv4_options:     # drop | forward: IPv4 packets with options (source routes always drop)
//! reassembly:       # { max_sets, timeout_ms }
//! stats:            # { interval_ms, prometheus_listen? }
//! ```
//!
//! `configs/lab.yaml` is the commented reference. Defaults are the numbers of docs/behaviour.md;
//! where it is silent the choice is documented on the field, and the rules' choices in
//! `config/validate.rs`.

mod addr;
mod diagnostic;
mod ipsec;
mod limits;
mod locate;
mod read;
mod routing;
mod tunnel;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use conduit_packet::wire::EthernetAddress;

pub use addr::{is_unicast, CidrError, Ipv4Cidr};
/// The config file's `kind` and `ecmp.mode` name the packet path's own enums (one definition,
/// in `conduit-packet`, which deserializes them with its `serde` feature).
pub use conduit_packet::{
    pipeline::{Ipv4OptionsPolicy, TunnelKind},
    route::EcmpMode,
};
pub use diagnostic::MAX_MESSAGE_CHARS;
pub use ipsec::{
    parse_key, spi_text, IpsecSection, KeyError, KeyStore, SaConfig, TunnelIpsecConfig,
    DEFAULT_CRYPTO_DEVICE, DEFAULT_REPLAY_WINDOW, DEFAULT_STATE_DIR, MAX_INBOUND,
    MAX_KEYS_FILE_BYTES, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW, MIN_SPI,
};
pub use limits::{IcmpConfig, ReassemblyConfig};
pub use locate::locate;
pub use read::MAX_CONFIG_BYTES;
pub use routing::{EcmpConfig, GatewayConfig, NextHopConfig, RouteConfig};
pub use tunnel::{
    HealthCheckConfig, ProbeDirection, ProbeType, RatePreset, TunnelConfig, NAT_T_OVERHEAD,
};
pub use validate::TUNNEL_NAME_MAX;

pub use limits::{
    DEFAULT_ICMP_BURST, DEFAULT_ICMP_RATE, DEFAULT_MAX_SETS, DEFAULT_REASSEMBLY_TIMEOUT_MS,
    MAX_SETS_RANGE, REASSEMBLY_TIMEOUT_RANGE_MS,
};
pub use routing::{BUCKETS_RANGE, DEFAULT_BUCKETS, WEIGHT_RANGE};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub dataplane: DataplaneConfig,
    /// Anycast tunnel endpoints announced by every appliance.
    #[serde(default)]
    pub local_endpoints: Vec<Ipv4Addr>,
    /// Next hop of everything Conduit sends; required in `pipeline` mode.
    #[serde(default)]
    pub gateway: Option<GatewayConfig>,
    /// Appliance-wide IPsec settings; required when any tunnel is `kind: ipsec`.
    #[serde(default)]
    pub ipsec: Option<IpsecSection>,
    #[serde(default)]
    pub tunnels: Vec<TunnelConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub ecmp: EcmpConfig,
    #[serde(default)]
    pub icmp: IcmpConfig,
    /// IPv4 packets with options, outer, inner or transit: `drop` (default) or `forward`
    /// unchanged; source routes are dropped either way (docs/behaviour.md §6).
    #[serde(default)]
    pub ipv4_options: Ipv4OptionsPolicy,
    #[serde(default)]
    pub reassembly: ReassemblyConfig,
    #[serde(default)]
    pub stats: StatsConfig,
    /// The keys of `ipsec.keys_file`, read when the config is loaded (so a reload re-reads
    /// them). Never printed: [`SaKey`](conduit_packet::esp::sa::SaKey)'s `Debug` is redacted.
    #[serde(skip)]
    pub keys: KeyStore,
}

/// Ports, lcores and the poll loop.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// Ports by DPDK device name (a vdev name such as `net_ring0`, or a PCI address), in the
    /// order that defines port pairing for `io` mode.
    pub ports: Vec<PortConfig>,
    /// Worker lcore ids. Each owns one RX/TX queue pair on every port.
    pub workers: Vec<u32>,
    #[serde(default)]
    pub mode: ForwardMode,
    /// Packets per receive burst (1..=256).
    #[serde(default = "default_burst")]
    pub burst: u16,
    /// Mbufs in the packet pool; default: enough for every descriptor ring, burst and cache.
    #[serde(default)]
    pub mbufs: Option<u32>,
    #[serde(default = "default_mbuf_cache")]
    pub mbuf_cache: u32,
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
}

/// One port.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub device: String,
    /// Default: the device's (1500 for Ethernet), assumed [`DEFAULT_LINK_MTU`] when checking
    /// that tunnel packets fit.
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Spread load over the workers' RX queues by RSS where the device supports it.
    #[serde(default = "default_true")]
    pub rss: bool,
    /// The port's own address and subnet (`192.0.2.10/24`): answered in ARP, and the source of
    /// ARP requests for the gateway.
    #[serde(default)]
    pub ipv4: Option<Ipv4Cidr>,
    /// The MAC Conduit answers ARP with and sends every frame of this port from; default: the
    /// device's own (docs/behaviour.md §8).
    #[serde(default)]
    pub mac: Option<EthernetAddress>,
}

/// The MTU assumed for a port without one: plain Ethernet, which the default tunnel MTUs are
/// computed from.
pub const DEFAULT_LINK_MTU: u16 = conduit_packet::pipeline::ETHERNET_MTU;
/// The port MTUs accepted: IPv4's minimum (RFC 791) up to the usual jumbo frame. Packet buffers
/// are sized for the largest port MTU, so the bound also caps their memory.
pub const PORT_MTU_RANGE: std::ops::RangeInclusive<u16> = 68..=9000;

impl PortConfig {
    /// The configured MTU, else [`DEFAULT_LINK_MTU`].
    pub fn link_mtu(&self) -> u16 {
        self.mtu.unwrap_or(DEFAULT_LINK_MTU)
    }
}

/// What the workers do with packets.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// testpmd's io mode: forward unchanged to the paired port (a diagnostic mode).
    #[default]
    Io,
    /// The appliance: decapsulate, route, encapsulate, answer ARP and ICMP. Needs
    /// `local_endpoints`, `gateway` and at least one tunnel.
    Pipeline,
}

/// Console statistics and the metrics endpoint.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Print per-port and per-core rates every this many milliseconds; 0 turns it off.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Serve Prometheus text metrics on this address (e.g. `127.0.0.1:9100`); off by default.
    #[serde(default)]
    pub prometheus_listen: Option<SocketAddr>,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            interval_ms: default_interval(),
            prometheus_listen: None,
        }
    }
}

fn default_burst() -> u16 {
    32
}
fn default_mbuf_cache() -> u32 {
    256
}
fn default_desc() -> u16 {
    1024
}
fn default_true() -> bool {
    true
}
fn default_interval() -> u64 {
    1000
}

/// The largest burst a worker accepts: the dataplane's fixed burst array,
/// `dataplane::mbuf::MAX_BURST`, which `control` cannot name (it has no DPDK); the root
/// package's `tests/shared_numbers.rs` checks that the two agree.
pub const MAX_BURST: u16 = 256;

/// A configuration that could not be used.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    /// Syntax, type or semantic error at a place in the file.
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        field: String,
        message: String,
        /// The offending source line with a caret under the column, printed after the
        /// message.
        /// (Boxed, to keep the error small for `Result`s.)
        snippet: Option<Box<str>>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, error } => {
                write!(f, "{}: cannot read config: {error}", file.display())
            }
            ConfigError::Invalid {
                file,
                line,
                column,
                field,
                message,
                snippet,
            } => {
                write!(f, "{}", file.display())?;
                if let Some(l) = line {
                    write!(f, ":{l}")?;
                    if let Some(c) = column {
                        write!(f, ":{c}")?;
                    }
                }
                let message = diagnostic::cut(message, MAX_MESSAGE_CHARS);
                if field.is_empty() || field == "." {
                    write!(f, ": {message}")?;
                } else {
                    let field = diagnostic::cut(field, MAX_MESSAGE_CHARS);
                    write!(f, ": {field}: {message}")?;
                }
                match snippet {
                    Some(s) => write!(f, "\n{s}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { error, .. } => Some(error),
            ConfigError::Invalid { .. } => None,
        }
    }
}

impl Config {
    /// Reads and validates a config file: a regular file of at most [`MAX_CONFIG_BYTES`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read::read_bounded(path).map_err(|error| ConfigError::Read {
            file: path.to_path_buf(),
            error,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            // A syntax error inside a mapping ends the path in "?" (no key read yet).
            let mut field = e.path().to_string();
            while let Some(parent) = field.strip_suffix(".?") {
                field.truncate(parent.len());
            }
            if field == "?" || field == "." {
                field.clear();
            }
            let d = diagnostic::diagnose(text, field, e.inner());
            ConfigError::Invalid {
                file: file.to_path_buf(),
                line: d.line,
                column: d.column,
                snippet: d
                    .line
                    .and_then(|l| diagnostic::snippet(text, l, d.column))
                    .map(String::into_boxed_str),
                field: d.field,
                // A value the parser could not use may be quoted; it may be a key.
                message: ipsec::mask_text(&d.message),
            }
        })?;
        let mut cfg = cfg;
        cfg.keys = cfg.read_keys_file(text, file)?;
        cfg.validate(text, file)?;
        Ok(cfg)
    }

    /// The keys file named by `ipsec.keys_file`, relative to the directory of `file` (the
    /// config file); empty without one.
    fn read_keys_file(&self, text: &str, file: &Path) -> Result<KeyStore, ConfigError> {
        let Some(rel) = self.ipsec.as_ref().and_then(|s| s.keys_file.as_ref()) else {
            return Ok(KeyStore::new());
        };
        let path = self.keys_file_path(file).unwrap_or_else(|| rel.clone());
        ipsec::load_keys(&path, &path).map_err(|e| match e {
            ipsec::KeysFileError::Content(c) => c,
            e => {
                let message = e.message(&path);
                let field = "ipsec.keys_file".to_string();
                let line = locate(text, &field);
                ConfigError::Invalid {
                    file: file.to_path_buf(),
                    line,
                    column: None,
                    snippet: line
                        .and_then(|l| diagnostic::snippet(text, l, None))
                        .map(String::into_boxed_str),
                    field,
                    message,
                }
            }
        })
    }

    /// Where `ipsec.keys_file` is: relative paths are taken from the directory of
    /// `config_file`.
    pub fn keys_file_path(&self, config_file: &Path) -> Option<PathBuf> {
        let rel = self.ipsec.as_ref()?.keys_file.as_ref()?;
        Some(match config_file.parent() {
            Some(dir) if rel.is_relative() => dir.join(rel),
            _ => rel.clone(),
        })
    }

    /// The key of an SA: given inline, or its `key_ref` looked up in the keys file. `None`
    /// only for a config that did not pass validation.
    pub fn sa_key<'a>(&'a self, sa: &'a SaConfig) -> Option<&'a conduit_packet::esp::sa::SaKey> {
        match (&sa.key, &sa.key_ref) {
            (Some(k), _) => Some(k),
            (None, Some(name)) => self.keys.get(name),
            (None, None) => None,
        }
    }

    /// Whether any tunnel is `kind: ipsec` (then the appliance needs a cryptodev and a boot
    /// epoch).
    pub fn has_ipsec_tunnels(&self) -> bool {
        self.tunnels.iter().any(|t| t.kind == TunnelKind::Ipsec)
    }

    /// The tunnel called `name`, with its index in `tunnels`.
    pub fn tunnel(&self, name: &str) -> Option<(usize, &TunnelConfig)> {
        self.tunnels
            .iter()
            .enumerate()
            .find(|(_, t)| t.name == name)
    }

    /// The port facing the gateway, with its index in `dataplane.ports`.
    pub fn gateway_port(&self) -> Option<(usize, &PortConfig)> {
        let gw = self.gateway.as_ref()?;
        self.dataplane
            .ports
            .iter()
            .enumerate()
            .find(|(_, p)| p.device == gw.port)
    }

    /// The MTU of the link tunnel packets leave on: the gateway port's, else
    /// [`DEFAULT_LINK_MTU`].
    pub fn uplink_mtu(&self) -> u16 {
        self.gateway_port()
            .map_or(DEFAULT_LINK_MTU, |(_, p)| p.link_mtu())
    }

    /// The largest MTU of any port (unset ones count as [`DEFAULT_LINK_MTU`]): what one packet
    /// buffer must hold.
    pub fn largest_port_mtu(&self) -> u16 {
        self.dataplane
            .ports
            .iter()
            .map(PortConfig::link_mtu)
            .max()
            .unwrap_or(DEFAULT_LINK_MTU)
    }

    /// Mbufs that the rings, bursts and caches can hold at once.
    pub fn min_mbufs(&self) -> u32 {
        let dp = &self.dataplane;
        let ports = dp.ports.len() as u32;
        let workers = dp.workers.len() as u32;
        ports * workers * (dp.rx_desc as u32 + dp.tx_desc as u32 + dp.burst as u32)
            + workers * dp.mbuf_cache
    }

    /// The pool size to create: the configured one, or the minimum plus slack rounded up to
    /// 2^n - 1 (the most efficient size for DPDK's ring-backed pools).
    pub fn pool_size(&self) -> u32 {
        self.dataplane.mbufs.unwrap_or_else(|| {
            let want = (self.min_mbufs() + 1024).max(8191);
            (want + 1).next_power_of_two() - 1
        })
    }
}
