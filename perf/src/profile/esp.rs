//! The ESP profiles' IPsec tunnels and the sealed frames of `esp-decap`.
//!
//! Every tunnel `i` has one outbound SA (SPI `0x20000 + i`) and one inbound SA (SPI
//! `0x10000 + i`), each with its own fixed key: benchmark keys, printed in the written config
//! on purpose, never for real traffic.
//!
//! `esp-decap`'s frames must be ESP that the appliance accepts: sealed with the tunnel's inbound
//! SA. [`Sealer`] makes them with the product's own encapsulation ([`encapsulate`]) run by the
//! peer side of every tunnel (a configuration mirroring the profile's: the tunnel remotes as
//! endpoints, our inbound SAs as its outbound ones), through the cipher factory it is given: in
//! `conduit-perf`, one on the cryptodev the appliance uses.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use conduit_packet::esp::cipher::CipherFactory;
use conduit_packet::esp::runtime::EspRuntime;
use conduit_packet::pipeline::{
    encapsulate, Context, PacketBuf, TokenBucket, TunnelId, VecBuf, WorkerState,
};
use conduit_packet::wire::EthernetAddress;
use control::config::Config;
use control::ipsec::SaRegistry;

use super::{remote, ProfileSpec, SpecError, ENDPOINT, ETH, GATEWAY_MAC, INTERFACE_BASE};

/// Tunnel MTU of the ESP profiles: an inner packet of 1420 bytes (and IMIX's) fits unfragmented;
/// ESP in tunnel mode adds at most 57 bytes, so 1440 still fits a 1500-byte gateway link.
pub const ESP_MTU: u16 = 1440;
/// Where the appliance keeps its boot epoch in the written config.
pub const STATE_DIR: &str = "/tmp/conduit-perf-esp";
/// The cryptodev in the written config (CPU crypto: AES-NI, no device or queue to wait on).
pub const CRYPTO_DEVICE: &str = "crypto_aesni_gcm";

const INBOUND_SPI: u32 = 0x1_0000;
const OUTBOUND_SPI: u32 = 0x2_0000;
/// The peer's port address (on the gateway's subnet), used only to build its configuration.
const PEER_PORT_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

/// One SA of a tunnel: SPI and key (72 hex digits: 32-byte key, 4-byte salt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sa {
    pub spi: u32,
    pub key_hex: String,
}

impl Sa {
    /// The SA tunnel `i` sends with.
    pub fn outbound(i: u32) -> Sa {
        Sa {
            spi: OUTBOUND_SPI + i,
            key_hex: key_hex(0x0b, i),
        }
    }

    /// The SA tunnel `i` receives with.
    pub fn inbound(i: u32) -> Sa {
        Sa {
            spi: INBOUND_SPI + i,
            key_hex: key_hex(0x1b, i),
        }
    }
}

/// A key distinct for every (direction, tunnel): `tag`, the tunnel number, then a fill.
fn key_hex(tag: u8, i: u32) -> String {
    let mut k = [0u8; 36];
    k[0] = tag;
    k[1..5].copy_from_slice(&i.to_be_bytes());
    for (n, b) in k.iter_mut().enumerate().skip(5) {
        *b = (n as u8).wrapping_mul(37) ^ tag;
    }
    k.iter().map(|b| format!("{b:02x}")).collect()
}

/// The appliance-wide `ipsec` section.
pub fn ipsec_section(instance_id: u16, state_dir: &str) -> String {
    format!(
        "ipsec: {{instance_id: {instance_id}, crypto_device: {CRYPTO_DEVICE}, state_dir: {state_dir}}}\n"
    )
}

/// One IPsec tunnel as a YAML list item (health checks off, as for the GRE profiles).
pub fn tunnel_yaml(
    name: &str,
    local: Ipv4Addr,
    remote: Ipv4Addr,
    interface: Ipv4Addr,
    outbound: Sa,
    inbound: Sa,
) -> String {
    format!(
        "  - {{name: {name}, kind: ipsec, local: {local}, remote: {remote}, interface_address: {interface}/31, mtu: {ESP_MTU}, health_check: {{enabled: false}}, \
         ipsec: {{outbound: {{spi: {:#x}, key: 0x{}}}, inbound: [{{spi: {:#x}, key: 0x{}}}]}}}}\n",
        outbound.spi, outbound.key_hex, inbound.spi, inbound.key_hex
    )
}

/// The peer side of every tunnel of `spec`: tunnel `i` from `remote(i)` to the endpoint,
/// sending with the profile's inbound SA `i` and receiving with its outbound SA `i`.
pub fn peer_config(spec: &ProfileSpec) -> Result<Config, SpecError> {
    let mut y = format!(
        "dataplane:\n  ports:\n    - {{device: peer0, ipv4: {PEER_PORT_ADDR}/24, rss: false}}\n  workers: [1]\n  mode: pipeline\n\
         gateway: {{ipv4: 192.0.2.1, mac: \"02:00:00:00:00:fe\", port: peer0}}\n"
    );
    let endpoints: Vec<String> = (0..spec.tunnels).map(|i| remote(i).to_string()).collect();
    y.push_str(&format!("local_endpoints: [{}]\n", endpoints.join(", ")));
    y.push_str(&ipsec_section(2, "/nonexistent"));
    y.push_str("tunnels:\n");
    for i in 0..spec.tunnels {
        y.push_str(&tunnel_yaml(
            &format!("p{i}"),
            remote(i),
            ENDPOINT,
            Ipv4Addr::from_bits(INTERFACE_BASE + 2 * i + 1),
            Sa::inbound(i),
            Sa::outbound(i),
        ));
    }
    Config::parse(&y, Path::new("<conduit-perf peer>"))
        .map_err(|e| SpecError::Config(e.to_string()))
}

/// Seals `esp-decap`'s frames: the peer's context, with SAs, and a worker state holding the
/// cipher factory.
pub struct Sealer {
    spec: ProfileSpec,
    ctx: Context,
    state: WorkerState,
}

impl Sealer {
    /// A sealer for `spec`'s flows, whose frames go to `port_mac` from the gateway's MAC, sealed
    /// through `factory`.
    pub fn new(
        spec: &ProfileSpec,
        port_mac: [u8; 6],
        factory: Box<dyn CipherFactory>,
    ) -> Result<Sealer, SpecError> {
        spec.validate()?;
        let peer = peer_config(spec)?;
        let err = |e: String| SpecError::Config(format!("peer: {e}"));
        let table = Arc::new(
            control::tables::forwarding_table(&peer, &[]).map_err(|e| err(e.to_string()))?,
        );
        // Epoch 1 (a persisted one): with none the registry gives the tunnels no SAs.
        let ipsec = SaRegistry::new(1).build(&peer, Some(1));
        let ctx = control::tables::context_with_ipsec(
            &peer,
            &[EthernetAddress(GATEWAY_MAC)],
            EthernetAddress(port_mac),
            table,
            ipsec,
        )
        .map_err(|e| err(e.to_string()))?;
        let mut state = WorkerState::new(TokenBucket::new(1, 1, 1, 0), 0);
        state.set_esp(EspRuntime::new(0, factory));
        Ok(Sealer {
            spec: spec.clone(),
            ctx,
            state,
        })
    }

    /// The ESP frame of flow `f`: its customer packet sealed by the peer of its tunnel with
    /// the next sequence number of the SA.
    pub fn frame(&mut self, f: u32) -> Result<Vec<u8>, SpecError> {
        let (tunnel, inner) = self.spec.flow_packet(f);
        let tunnel = tunnel.ok_or_else(|| {
            SpecError::Invalid(format!("flow {f} of {:?} is not tunnelled", self.spec.kind))
        })?;
        // Room for the outer Ethernet, IPv4 and ESP headers and for the trailer and ICV.
        let mut buf = VecBuf::with_tailroom(128, &inner, 64);
        encapsulate(&self.ctx, TunnelId(tunnel), &mut buf, &mut self.state)
            .map_err(|r| SpecError::Invalid(format!("sealing flow {f}: {r:?}")))?;
        let frame = buf.data().to_vec();
        debug_assert!(frame.len() > ETH);
        Ok(frame)
    }
}
