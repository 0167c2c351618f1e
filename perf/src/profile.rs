//! Traffic profiles: the Conduit configuration a run uses and the frames the generator sends.
//!
//! Address plan (documentation and benchmarking ranges, none of them martian to Conduit):
//!
//! | what | addresses |
//! |---|---|
//! | customer prefixes (routes) | /24s from 64.0.0.0 up (64.0.0.0 – 79.255.255.0: at most 2^20) |
//! | internet hosts | 198.18.0.0/15 (RFC 2544 benchmarking) |
//! | tunnel remotes | 100.64.0.0/10, tunnel i at 100.64.0.0 + i + 1 |
//! | tunnel interface /31s | 10.128.0.0 + 2i |
//! | anycast endpoint | 203.0.113.1 |
//! | port address, gateway | 192.0.2.10/24, 192.0.2.1 at 02:00:00:00:00:fe |
//!
//! Route `p` is `64.0.0.0 + 256 p /24` with `paths` equal-cost routes to tunnels
//! `(p + j) % tunnels`. Flow `f` targets prefix `f * routes / flows` when there are more routes
//! than flows (so 10k flows over 1M routes touch the whole table) and `f % routes` otherwise.
//!
//! Sizes are customer frame lengths as they sit in the mbuf (Ethernet header included, no FCS),
//! as in testpmd: encap takes a frame of that size in and sends it GRE-encapsulated (24 bytes
//! more, 28 with a key); decap takes the GRE frame in and sends the customer frame out; transit
//! is GRE in and GRE out. Every frame ends in an 8-byte trailer, the generator's timestamp (TSC
//! low 32 bits) followed by its ones' complement; the pair adds nothing to the Internet
//! checksum, so stamping never invalidates the template's TCP/ICMP checksum.

use std::net::Ipv4Addr;
use std::path::Path;

use conduit_packet::wire::checksum;
use control::config::{Config, Ipv4Cidr, RouteConfig};
use serde::Serialize;

/// Largest number of /24 customer prefixes the address plan holds.
pub const MAX_ROUTES: u32 = 1 << 20;
/// Most tunnels (the remote range 100.64/10 and the /31s in 10.128/9 hold far more).
pub const MAX_TUNNELS: u32 = 65_536;
/// Bytes at the end of every frame: TSC low 32 bits, then their complement.
pub const TRAILER: usize = 8;
/// IMIX customer frame sizes, 7:4:1. 1486 is the largest customer frame that a keyed GRE tunnel
/// over a 1500-byte link carries without fragmentation (tunnel MTU 1472 + 14; 1490 unkeyed).
pub const IMIX: [(u16, u32); 3] = [(64, 7), (594, 4), (1486, 1)];

pub const ENDPOINT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const PORT_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const ROUTE_BASE: u32 = 64 << 24;
const INTERNET_BASE: u32 = (198 << 24) | (18 << 16);
const INTERNET_HOSTS: u32 = 1 << 17;
const REMOTE_BASE: u32 = (100 << 24) | (64 << 16);
const INTERFACE_BASE: u32 = (10 << 24) | (128 << 16);
const TEMPLATE_TTL: u8 = 64;

const ETH: usize = 14;
const IP: usize = 20;
const GRE: usize = 4;

/// What the traffic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// Plain IPv4 to customer prefixes in, GRE out.
    Encap,
    /// GRE from customer tunnels in, plain IPv4 to the internet out.
    Decap,
    /// GRE in, re-encapsulated into another tunnel.
    Transit,
    /// Encap, decap and transit flows in equal numbers.
    Mix,
    /// Plain IPv4 to customer prefixes in, ESP (AES-256-GCM, tunnel mode) out: IPsec tunnels.
    #[serde(rename = "esp-encap")]
    EspEncap,
    /// ESP from customer tunnels in, sealed with each tunnel's inbound SA, plain IPv4 to the
    /// internet out: IPsec tunnels.
    #[serde(rename = "esp-decap")]
    EspDecap,
}

impl ProfileKind {
    /// True for the profiles over IPsec tunnels.
    pub fn is_esp(self) -> bool {
        matches!(self, ProfileKind::EspEncap | ProfileKind::EspDecap)
    }
}

/// Transport protocol of the customer packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Udp,
    Tcp,
    Icmp,
    /// UDP, TCP and ICMP echo in turn.
    Mix,
}

/// ECMP rule, as in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Ecmp {
    Modulo,
    Weighted,
    Resilient,
}

/// Everything that shapes a run's traffic and tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileSpec {
    pub kind: ProfileKind,
    pub proto: Proto,
    pub flows: u32,
    /// Customer frame sizes, used in turn by flow (IMIX is 7×64, 4×594, 1×1486).
    pub sizes: Vec<u16>,
    pub tunnels: u32,
    /// Customer /24 prefixes.
    pub routes: u32,
    /// Equal-cost tunnels per prefix.
    pub paths: u32,
    pub ecmp: Ecmp,
    /// GRE key on every tunnel.
    pub gre_key: Option<u32>,
}

/// Why a spec cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("{0}")]
    Invalid(String),
    #[error("config: {0}")]
    Config(String),
}

/// The smallest customer frame of a protocol that still holds the trailer.
pub fn min_size(proto: Proto) -> u16 {
    let l4 = match proto {
        Proto::Udp | Proto::Icmp => 8,
        Proto::Tcp | Proto::Mix => 20,
    };
    (ETH + IP + l4 + TRAILER) as u16
}

/// Expands `imix` or a comma-separated list of sizes.
pub fn parse_sizes(text: &str) -> Result<Vec<u16>, SpecError> {
    if text.eq_ignore_ascii_case("imix") {
        return Ok(IMIX
            .iter()
            .flat_map(|&(size, n)| std::iter::repeat_n(size, n as usize))
            .collect());
    }
    text.split(',')
        .map(|s| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| SpecError::Invalid(format!("packet size {s:?} is not a number")))
        })
        .collect()
}

impl ProfileSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        let bad = |m: String| Err(SpecError::Invalid(m));
        if self.flows == 0 {
            return bad("--flows must be at least 1".into());
        }
        if self.tunnels == 0 || self.tunnels > MAX_TUNNELS {
            return bad(format!("--tunnels must be 1..={MAX_TUNNELS}"));
        }
        if self.routes == 0 || self.routes > MAX_ROUTES {
            return bad(format!("--routes must be 1..={MAX_ROUTES}"));
        }
        if self.paths == 0 || self.paths > self.tunnels.min(16) {
            return bad(format!(
                "--paths must be 1..={} (at most the tunnel count, and 16)",
                self.tunnels.min(16)
            ));
        }
        if self.sizes.is_empty() {
            return bad("no packet size".into());
        }
        let min = min_size(self.proto);
        let max = if self.kind.is_esp() {
            if self.gre_key.is_some() {
                return bad("--gre-key does not apply to the ESP profiles".into());
            }
            (ETH + esp::ESP_MTU as usize) as u16
        } else if self.gre_key.is_some() {
            1486
        } else {
            1490
        };
        for &s in &self.sizes {
            if !(min..=max).contains(&s) {
                return bad(format!(
                    "packet size {s} is outside {min}..={max} (customer frame with the {TRAILER}-byte trailer, fitting the tunnel MTU)"
                ));
            }
        }
        Ok(())
    }

    /// The Conduit configuration of this profile: one port `device`, worker lcores `workers`.
    pub fn config(&self, device: &str, workers: &[u32], burst: u16) -> Result<Config, SpecError> {
        self.validate()?;
        let y = self.config_yaml_head(device, workers, burst, None);
        let mut cfg = Config::parse(&y, Path::new("<conduit-perf>"))
            .map_err(|e| SpecError::Config(e.to_string()))?;
        // Up to a million routes: built directly rather than through YAML.
        cfg.routes.reserve((self.routes * self.paths) as usize);
        for (prefix, tunnel) in self.routes_iter() {
            cfg.routes.push(RouteConfig {
                prefix: Ipv4Cidr::new(prefix, 24)
                    .ok_or_else(|| SpecError::Invalid(format!("route {prefix}")))?,
                tunnel: Some(format!("t{tunnel}")),
                next_hop: None,
                priority: 100,
                weight: None,
            });
        }
        Ok(cfg)
    }

    /// The same configuration as [`Self::config`] as a YAML file for the `conduit` appliance,
    /// routes included, with `mbufs` in the packet pool when given. It parses to exactly what
    /// `config` builds (tested), so the appliance and conduit-perf run one definition.
    pub fn config_yaml(
        &self,
        device: &str,
        workers: &[u32],
        burst: u16,
        mbufs: Option<u32>,
    ) -> Result<String, SpecError> {
        self.validate()?;
        let mut y = self.config_yaml_head(device, workers, burst, mbufs);
        y.push_str("routes:\n");
        for (prefix, tunnel) in self.routes_iter() {
            y.push_str(&format!(
                "  - {{prefix: {prefix}/24, tunnel: t{tunnel}, priority: 100}}\n"
            ));
        }
        Ok(y)
    }

    /// Everything but the routes: port, workers, gateway, endpoint and tunnels.
    fn config_yaml_head(
        &self,
        device: &str,
        workers: &[u32],
        burst: u16,
        mbufs: Option<u32>,
    ) -> String {
        let mut y = String::new();
        let ws: Vec<String> = workers.iter().map(u32::to_string).collect();
        y.push_str(&format!(
            "dataplane:\n  ports:\n    - {{device: {device}, ipv4: {PORT_ADDR}/24, rss: false}}\n  workers: [{}]\n  mode: pipeline\n  burst: {burst}\n",
            ws.join(", ")
        ));
        if let Some(n) = mbufs {
            y.push_str(&format!("  mbufs: {n}\n"));
        }
        y.push_str(&format!(
            "local_endpoints: [{ENDPOINT}]\ngateway: {{ipv4: 192.0.2.1, mac: \"02:00:00:00:00:fe\", port: {device}}}\n"
        ));
        let mode = match self.ecmp {
            Ecmp::Modulo => "modulo",
            Ecmp::Weighted => "weighted",
            Ecmp::Resilient => "resilient",
        };
        if self.kind.is_esp() {
            y.push_str(&esp::ipsec_section(1, esp::STATE_DIR));
        }
        y.push_str(&format!("ecmp: {{mode: {mode}}}\ntunnels:\n"));
        for i in 0..self.tunnels {
            if self.kind.is_esp() {
                y.push_str(&esp::tunnel_yaml(
                    &format!("t{i}"),
                    ENDPOINT,
                    remote(i),
                    Ipv4Addr::from_bits(INTERFACE_BASE + 2 * i),
                    esp::Sa::outbound(i),
                    esp::Sa::inbound(i),
                ));
                continue;
            }
            let key = self
                .gre_key
                .map(|k| format!(", key: {k}"))
                .unwrap_or_default();
            y.push_str(&format!(
                "  - {{name: t{i}, kind: gre, local: {ENDPOINT}, remote: {}, interface_address: {}/31{key}, health_check: {{enabled: false}}}}\n",
                remote(i),
                Ipv4Addr::from_bits(INTERFACE_BASE + 2 * i)
            ));
        }
        y
    }

    /// The routes: prefix `p` (a /24) to tunnels `(p + j) % tunnels` for each of `paths`.
    pub(crate) fn routes_iter(&self) -> impl Iterator<Item = (Ipv4Addr, u32)> + '_ {
        (0..self.routes).flat_map(move |p| {
            (0..self.paths).map(move |j| {
                (
                    Ipv4Addr::from_bits(ROUTE_BASE + (p << 8)),
                    (p + j) % self.tunnels,
                )
            })
        })
    }

    /// The kind of flow `f` (only `Mix` varies).
    pub fn flow_kind(&self, f: u32) -> ProfileKind {
        match self.kind {
            ProfileKind::Mix => {
                [ProfileKind::Encap, ProfileKind::Decap, ProfileKind::Transit][(f % 3) as usize]
            }
            k => k,
        }
    }

    fn flow_proto(&self, f: u32) -> Proto {
        match self.proto {
            Proto::Mix => [Proto::Udp, Proto::Tcp, Proto::Icmp][((f / 3) % 3) as usize],
            p => p,
        }
    }

    /// The customer prefix index of flow `f`.
    pub fn flow_prefix(&self, f: u32) -> u32 {
        if self.routes > self.flows {
            (f as u64 * self.routes as u64 / self.flows as u64) as u32
        } else {
            f % self.routes
        }
    }

    /// Builds the frame of flow `f`, addressed to the port's MAC `port_mac`.
    ///
    /// For [`ProfileKind::EspDecap`] this is the customer packet before it is sealed, in an
    /// Ethernet frame: the capture's frames need a cipher, [`esp::Sealer`] makes them.
    pub fn frame(&self, f: u32, port_mac: [u8; 6]) -> Vec<u8> {
        let (tunnel, inner) = self.flow_packet(f);
        match tunnel {
            None => ethernet(port_mac, &inner),
            Some(t) => ethernet(port_mac, &gre_packet(remote(t), self.gre_key, &inner)),
        }
    }

    /// The customer IPv4 packet of flow `f` and the tunnel it arrives over (`None`: it arrives
    /// plain, to be encapsulated).
    pub fn flow_packet(&self, f: u32) -> (Option<u32>, Vec<u8>) {
        let size = self.sizes[f as usize % self.sizes.len()] as usize;
        let proto = self.flow_proto(f);
        let prefix = self.flow_prefix(f);
        let customer_host = ROUTE_BASE + (prefix << 8) + 1 + (f / self.routes.max(1)) % 254;
        let internet_host = INTERNET_BASE + f % INTERNET_HOSTS;
        let sport = 1024 + (f % 60_000) as u16;
        let dport = [80u16, 443, 53, 4789][(f % 4) as usize];
        let kind = self.flow_kind(f);
        // Customer traffic goes from the internet to a customer prefix, except decap's, which
        // comes from the customer.
        let (src, dst) = match kind {
            ProfileKind::Decap | ProfileKind::EspDecap => (customer_host, internet_host),
            _ => (internet_host, customer_host),
        };
        let inner = ip_packet(src, dst, proto, sport, dport, size - ETH);
        let tunnel = match kind {
            ProfileKind::Encap | ProfileKind::Mix | ProfileKind::EspEncap => None,
            // From the prefix's first tunnel's customer, to the internet.
            ProfileKind::Decap | ProfileKind::EspDecap => Some(prefix % self.tunnels),
            // Arrives over a tunnel that is not one of the destination prefix's paths (when
            // there are enough tunnels), and leaves by the prefix's route.
            ProfileKind::Transit => Some((prefix + self.paths) % self.tunnels),
        };
        (tunnel, inner)
    }

    /// The worker queue (software RSS) of flow `f` with `queues` workers.
    pub fn flow_queue(&self, f: u32, queues: u32) -> u32 {
        f % queues.max(1)
    }
}

/// The internet hosts decapsulated traffic goes to, as a prefix (198.18.0.0/15).
pub fn internet_prefix() -> (Ipv4Addr, u8) {
    (
        Ipv4Addr::from_bits(INTERNET_BASE),
        (32 - INTERNET_HOSTS.trailing_zeros()) as u8,
    )
}

/// Remote endpoint of tunnel `i`.
pub fn remote(i: u32) -> Ipv4Addr {
    Ipv4Addr::from_bits(REMOTE_BASE + i + 1)
}

fn ethernet(dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&GATEWAY_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4_header(src: u32, dst: u32, protocol: u8, total: usize, ttl: u8) -> [u8; IP] {
    let mut h = [0u8; IP];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[6] = 0x40; // DF, as most TCP stacks send
    h[8] = ttl;
    h[9] = protocol;
    h[12..16].copy_from_slice(&src.to_be_bytes());
    h[16..20].copy_from_slice(&dst.to_be_bytes());
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// An IPv4 packet of `total` bytes whose last `TRAILER` bytes are a zero stamp (0 and !0).
fn ip_packet(src: u32, dst: u32, proto: Proto, sport: u16, dport: u16, total: usize) -> Vec<u8> {
    let (protocol, l4_header) = match proto {
        Proto::Udp => (17u8, 8usize),
        Proto::Tcp | Proto::Mix => (6, 20),
        Proto::Icmp => (1, 8),
    };
    let mut p = vec![0u8; total];
    p[..IP].copy_from_slice(&ipv4_header(src, dst, protocol, total, TEMPLATE_TTL));
    let l4_len = total - IP;
    {
        let l4 = &mut p[IP..];
        match proto {
            Proto::Udp => {
                l4[0..2].copy_from_slice(&sport.to_be_bytes());
                l4[2..4].copy_from_slice(&dport.to_be_bytes());
                l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            }
            Proto::Tcp | Proto::Mix => {
                l4[0..2].copy_from_slice(&sport.to_be_bytes());
                l4[2..4].copy_from_slice(&dport.to_be_bytes());
                l4[4..8].copy_from_slice(&1u32.to_be_bytes());
                l4[8..12].copy_from_slice(&1u32.to_be_bytes());
                l4[12] = 5 << 4;
                l4[13] = 0x10; // ACK: established traffic, no MSS clamping
                l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
            }
            Proto::Icmp => {
                l4[0] = 8; // echo request
                l4[4..6].copy_from_slice(&sport.to_be_bytes());
                l4[6..8].copy_from_slice(&1u16.to_be_bytes());
            }
        }
        let _ = l4_header;
        let n = l4.len();
        l4[n - TRAILER + 4..].copy_from_slice(&[0xff; 4]);
    }
    let l4 = &p[IP..];
    let pseudo_checksum = || {
        let pseudo = checksum::pseudo_header_v4(
            Ipv4Addr::from_bits(src),
            Ipv4Addr::from_bits(dst),
            protocol,
            l4_len as u16,
        );
        !checksum::combine(&[pseudo, checksum::sum(l4)])
    };
    let c = match proto {
        // UDP sends a computed 0 as 0xffff (0 means "no checksum").
        Proto::Udp => match pseudo_checksum() {
            0 => 0xffff,
            c => c,
        },
        Proto::Tcp | Proto::Mix => pseudo_checksum(),
        Proto::Icmp => checksum::checksum(l4),
    };
    let at = match proto {
        Proto::Udp => IP + 6,
        Proto::Tcp | Proto::Mix => IP + 16,
        Proto::Icmp => IP + 2,
    };
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
    p
}

fn gre_packet(src: Ipv4Addr, key: Option<u32>, inner: &[u8]) -> Vec<u8> {
    let gre_len = GRE + if key.is_some() { 4 } else { 0 };
    let total = IP + gre_len + inner.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&ipv4_header(
        src.to_bits(),
        ENDPOINT.to_bits(),
        47,
        total,
        64,
    ));
    p.extend_from_slice(&[if key.is_some() { 0x20 } else { 0 }, 0]);
    p.extend_from_slice(&0x0800u16.to_be_bytes());
    if let Some(k) = key {
        p.extend_from_slice(&k.to_be_bytes());
    }
    p.extend_from_slice(inner);
    p
}

/// Writes the generator's timestamp into the frame's trailer.
#[inline]
pub fn stamp(frame: &mut [u8], tsc: u64) {
    let n = frame.len();
    if let Some(t) = frame.get_mut(n.saturating_sub(TRAILER)..) {
        if t.len() == TRAILER {
            let lo = tsc as u32;
            t[..4].copy_from_slice(&lo.to_ne_bytes());
            t[4..].copy_from_slice(&(!lo).to_ne_bytes());
        }
    }
}

/// The timestamp in a frame's trailer, if the trailer is intact.
#[inline]
pub fn read_stamp(frame: &[u8]) -> Option<u32> {
    let n = frame.len();
    let t = frame.get(n.checked_sub(TRAILER)?..)?;
    let lo = u32::from_ne_bytes(t[..4].try_into().ok()?);
    let inv = u32::from_ne_bytes(t[4..8].try_into().ok()?);
    (lo == !inv).then_some(lo)
}

/// What the sink found wrong with a frame Conduit sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckError {
    Short,
    NotIpv4,
    Trailer,
    /// GRE where plain was expected, or the reverse.
    WrongShape,
    /// GRE not from the endpoint to a tunnel remote.
    OuterAddresses,
    /// Inner destination outside the profile's ranges, or TTL not decremented.
    Inner,
}

/// Checks one output frame against the profile: GRE from the endpoint to a tunnel remote
/// (encap, transit) carrying a customer-prefix packet with TTL 63, or a plain packet to an
/// internet host (decap) with TTL 63, and an intact trailer.
pub fn check_output(spec: &ProfileSpec, frame: &[u8]) -> Result<(), CheckError> {
    if frame.len() < ETH + IP + TRAILER {
        return Err(CheckError::Short);
    }
    if frame[12..14] != [0x08, 0x00] || frame[ETH] >> 4 != 4 {
        return Err(CheckError::NotIpv4);
    }
    let ip = &frame[ETH..];
    let addr = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if spec.kind == ProfileKind::EspEncap {
        // Sealed: only the outer header can be checked (the trailer is under the cipher).
        if ip[9] != 50 {
            return Err(CheckError::WrongShape);
        }
        let r = addr(ip, 16).wrapping_sub(REMOTE_BASE + 1);
        if addr(ip, 12) != ENDPOINT.to_bits() || r >= spec.tunnels {
            return Err(CheckError::OuterAddresses);
        }
        return Ok(());
    }
    read_stamp(frame).ok_or(CheckError::Trailer)?;
    let (gre, inner) = if ip[9] == 47 {
        if addr(ip, 12) != ENDPOINT.to_bits() {
            return Err(CheckError::OuterAddresses);
        }
        let r = addr(ip, 16).wrapping_sub(REMOTE_BASE + 1);
        if r >= spec.tunnels {
            return Err(CheckError::OuterAddresses);
        }
        let ihl = ((ip[0] & 0xf) as usize) * 4;
        let gre_len = if ip.get(ihl).is_some_and(|b| b & 0x20 != 0) {
            8
        } else {
            4
        };
        match ip.get(ihl + gre_len..) {
            Some(inner) if inner.len() >= IP => (true, inner),
            _ => return Err(CheckError::Short),
        }
    } else {
        (false, ip)
    };
    let expect_gre = match spec.kind {
        ProfileKind::Encap | ProfileKind::Transit => Some(true),
        ProfileKind::Decap | ProfileKind::EspDecap => Some(false),
        ProfileKind::Mix => None,
        ProfileKind::EspEncap => Some(true),
    };
    if expect_gre.is_some_and(|e| e != gre) {
        return Err(CheckError::WrongShape);
    }
    let dst = addr(inner, 16);
    let in_range = if gre {
        dst.wrapping_sub(ROUTE_BASE) < spec.routes << 8
    } else {
        dst.wrapping_sub(INTERNET_BASE) < INTERNET_HOSTS
    };
    if !in_range || inner[8] != TEMPLATE_TTL - 1 {
        return Err(CheckError::Inner);
    }
    Ok(())
}

pub mod esp;
#[cfg(test)]
mod tests;
