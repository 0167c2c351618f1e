//! What the pipeline's tests and its fuzz target share: one test context (two ports, six tunnels,
//! six routes) and the checks every outcome of `process` must pass, whatever the input.
//!
//! Compiled for this crate's own tests and, through the `test-support` feature, for the fuzz
//! crate; never part of a build that ships. It lives here rather than in `conduit-test-support`
//! because it speaks this crate's types, and the unit tests in `pipeline::tests` would otherwise
//! see a second copy of them. (Byte-level frame builders, which need no types, are in
//! `conduit-test-support`.)

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use crate::pipeline::{
    Context, ContextConfig, Control, Outcome, PacketBuf, PortConfig, Tunnel, TunnelKind, VecBuf,
    Verdict,
};
use crate::route::{ForwardingTable, Health, Route, TunnelId};
use crate::wire::{EtherType, EthernetAddress, EthernetFrame, GrePacket, IpProtocol, Ipv4Packet};

/// Port 0's MAC (the gateway port).
pub const P0: EthernetAddress = EthernetAddress([0x02, 0xc0, 0xd0, 0x00, 0x00, 0x01]);
/// Port 1's MAC.
pub const P1: EthernetAddress = EthernetAddress([0x02, 0xc0, 0xd0, 0x00, 0x00, 0x02]);
/// The gateway's MAC.
pub const GW: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]);

pub const T0: TunnelId = TunnelId(0);
pub const T1: TunnelId = TunnelId(1);
pub const T2: TunnelId = TunnelId(2);
pub const T3: TunnelId = TunnelId(3);
pub const T4: TunnelId = TunnelId(4);
pub const T5: TunnelId = TunnelId(5);

/// The two local (anycast) endpoints.
pub const E1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const E2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// T0's and T2's remotes.
pub const R0: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
pub const R2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);

/// Parses a dotted-quad address.
pub fn a(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// T0 and T1: plain GRE; T2: keyed (1001, MSS 1400); T3: IPsec; T4: `clear_df`, MTU 1400;
/// T5: keyed (77) on T0's endpoint pair, with no route.
pub fn tunnels() -> Vec<(TunnelId, Tunnel)> {
    vec![
        (T0, Tunnel::gre(E1, R0, a("10.200.0.0"), a("10.200.0.1"))),
        (
            T1,
            Tunnel::gre(E2, a("198.51.100.11"), a("10.200.0.2"), a("10.200.0.3")),
        ),
        (
            T2,
            Tunnel::gre(E1, R2, a("10.200.0.4"), a("10.200.0.5"))
                .with_key(1001)
                .with_mss(1400),
        ),
        (
            T3,
            Tunnel::ipsec(E2, a("198.51.100.30"), a("10.200.0.9"), a("10.200.0.10")),
        ),
        (
            T4,
            Tunnel::gre(E1, a("198.51.100.40"), a("10.200.0.12"), a("10.200.0.13"))
                .with_mtu(1400)
                .with_clear_df(true),
        ),
        (
            T5,
            Tunnel::gre(E1, R0, a("10.200.0.14"), a("10.200.0.15")).with_key(77),
        ),
    ]
}

/// 172.16/16 → T0; 172.17/16 → T0 and T1 (ECMP); 172.20/16 → T2; 10.50/16 → T3 (IPsec);
/// 172.30/16 → T4. Every tunnel healthy.
pub fn table() -> Arc<ForwardingTable> {
    let route = |p: &str, len, t| Route::new(u32::from(a(p)), len, t, 100);
    Arc::new(
        ForwardingTable::builder()
            .tunnels(tunnels().into_iter().map(|(id, _)| (id, Health::Healthy)))
            .route(route("172.16.0.0", 16, T0))
            .route(route("172.17.0.0", 16, T0))
            .route(route("172.17.0.0", 16, T1))
            .route(route("172.20.0.0", 16, T2))
            .route(route("10.50.0.0", 16, T3))
            .route(route("172.30.0.0", 16, T4))
            .build()
            .unwrap(),
    )
}

/// Port 0 (192.0.2.10, the gateway's) and port 1 (198.18.0.10), endpoints E1 and E2, the
/// [`tunnels`]; ICMP time exceeded as asked.
pub fn config(icmp_ttl_exceeded: bool) -> ContextConfig {
    ContextConfig {
        ports: vec![
            PortConfig {
                mac: P0,
                addresses: vec![a("192.0.2.10")],
            },
            PortConfig {
                mac: P1,
                addresses: vec![a("198.18.0.10")],
            },
        ],
        gateway_port: 0,
        gateway_mac: GW,
        local_endpoints: vec![E1, E2],
        tunnels: tunnels(),
        icmp_ttl_exceeded,
        ..ContextConfig::default()
    }
}

/// The shared context of [`config`] over [`table`], built once per process.
pub fn context(icmp_ttl_exceeded: bool) -> &'static Context {
    static CTX: [OnceLock<Context>; 2] = [OnceLock::new(), OnceLock::new()];
    CTX[usize::from(icmp_ttl_exceeded)]
        .get_or_init(|| Context::new(&config(icmp_ttl_exceeded), table()).unwrap())
}

/// Checks an outgoing GRE frame of `tunnel` (Ethernet to the gateway from port 0, outer IPv4,
/// GRE, inner IPv4) and every checksum in it; returns the inner packet.
pub fn check_gre_frame(frame: &[u8], tunnel: &Tunnel) -> Vec<u8> {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(
        (eth.dst_addr(), eth.src_addr(), eth.ethertype()),
        (GW, P0, EtherType::Ipv4)
    );
    let outer = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(outer.verify_checksum());
    assert_eq!(
        outer.packet().len(),
        eth.payload().len(),
        "no trailing bytes"
    );
    assert_eq!(
        (outer.src_addr(), outer.dst_addr(), outer.protocol()),
        (tunnel.local, tunnel.remote, IpProtocol::Gre)
    );
    assert_eq!(outer.ttl(), tunnel.ttl);
    assert!(!outer.is_fragment());
    let gre = GrePacket::new_checked(outer.payload()).unwrap();
    assert_eq!(gre.key(), tunnel.key);
    assert!(!gre.checksum_present() && !gre.sequence_present());
    assert_eq!(gre.protocol_type(), EtherType::Ipv4);
    let inner = Ipv4Packet::new_checked(gre.payload()).unwrap();
    assert!(inner.verify_checksum());
    assert_eq!(inner.packet().len(), gre.payload().len());
    assert_eq!(outer.tos(), inner.tos());
    assert_eq!(outer.dont_frag(), inner.dont_frag() && !tunnel.clear_df);
    assert!(inner.packet().len() <= usize::from(tunnel.mtu));
    inner.packet().to_vec()
}

/// Checks an outgoing ESP frame of `tunnel` (Ethernet to the gateway from port 0, outer IPv4 from
/// the tunnel's local to its remote endpoint with a valid checksum, ESP or ESP in UDP 4500 with a
/// zero checksum, room for IV, trailer and ICV, and a ciphertext of a multiple of 4 bytes);
/// returns the ESP packet (SPI onwards). The contents are opaque here.
pub fn check_esp_frame<'a>(frame: &'a [u8], tunnel: &Tunnel) -> &'a [u8] {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(
        (eth.dst_addr(), eth.src_addr(), eth.ethertype()),
        (GW, P0, EtherType::Ipv4)
    );
    let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(usize::from(ip.total_len()), frame.len() - 14);
    assert_eq!(
        (ip.src_addr(), ip.dst_addr()),
        (tunnel.local, tunnel.remote)
    );
    assert_eq!(ip.ttl(), tunnel.ttl);
    assert!(!ip.is_fragment());
    let at = 14 + ip.header_len();
    let esp = match ip.protocol() {
        IpProtocol::Esp => &frame[at..],
        IpProtocol::Udp => {
            let udp = &frame[at..];
            assert_eq!(&udp[..4], &[0x11, 0x94, 0x11, 0x94], "port 4500 both ways");
            assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
            assert_eq!(&udp[6..8], &[0, 0], "no UDP checksum");
            &udp[8..]
        }
        p => panic!("outer protocol {p:?}"),
    };
    assert!(esp.len() >= 8 + 8 + 20 + 2 + 16);
    assert_eq!((esp.len() - 8 - 8 - 16) % 4, 0);
    assert!(esp[..4] != [0; 4]);
    esp
}

/// Checks the invariants every outcome must satisfy, whatever the input was: buffer accounting
/// (`capacity` is headroom + frame length at the start), and that whatever is to be transmitted
/// parses with valid checksums, to the gateway MAC, in the right tunnel.
pub fn check_outcome(
    ctx: &Context,
    rx_port: u16,
    capacity: usize,
    outcome: &Outcome,
    buf: &VecBuf,
) {
    assert_eq!(buf.headroom() + buf.len() + buf.tailroom(), capacity);
    match outcome.verdict {
        Verdict::Forward { port, tunnel }
        | Verdict::IcmpError { port, tunnel, .. }
        | Verdict::Reply {
            port,
            tunnel: tunnel @ Some(_),
        } => {
            assert_eq!(port, ctx.gateway_port());
            match tunnel {
                Some(t) if ctx.tunnel(t).unwrap().kind == TunnelKind::Ipsec => {
                    check_esp_frame(buf.data(), ctx.tunnel(t).unwrap());
                }
                Some(t) => {
                    check_gre_frame(buf.data(), ctx.tunnel(t).unwrap());
                }
                None => {
                    let eth = EthernetFrame::new_checked(buf.data()).unwrap();
                    assert_eq!((eth.dst_addr(), eth.src_addr()), (GW, P0));
                    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                    assert!(ip.verify_checksum());
                    assert_eq!(ip.packet().len(), eth.payload().len());
                    assert!(ip.ttl() >= 1);
                }
            }
        }
        Verdict::Reply { port, tunnel: None } => {
            assert_eq!(port, rx_port);
            let eth = EthernetFrame::new_checked(buf.data()).unwrap();
            assert_eq!(Some(eth.src_addr()), ctx.port_mac(rx_port));
        }
        Verdict::NeedsFragmentation { mtu, tunnel, .. } => {
            let ip = Ipv4Packet::new_checked(buf.data()).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.packet().len(), buf.len());
            assert!(buf.len() > usize::from(mtu));
            assert_eq!(ctx.tunnel(tunnel).unwrap().mtu, mtu);
        }
        Verdict::ToControl(Control::Probe(t)) => {
            assert!(ctx.tunnel(t).is_some());
            let ip = Ipv4Packet::new_checked(buf.data()).unwrap();
            assert_eq!(ip.protocol(), IpProtocol::Icmp);
        }
        Verdict::ToControl(Control::Arp) | Verdict::Reassemble | Verdict::Drop(_) => {}
    }
}

/// AES-256-GCM by the `aes-gcm` crate: a [`Cipher`](crate::esp::cipher::Cipher) independent of
/// the product's (DPDK cryptodev) path, so tests check ESP against an implementation Conduit did
/// not write.
pub struct OracleCipher(aes_gcm::Aes256Gcm);

impl OracleCipher {
    /// A cipher under `key`'s 32-byte key (the salt is part of the nonce the caller passes).
    pub fn new(key: &crate::esp::sa::SaKey) -> Result<Self, String> {
        use aes_gcm::KeyInit;
        aes_gcm::Aes256Gcm::new_from_slice(&key.key)
            .map(OracleCipher)
            .map_err(|e| e.to_string())
    }
}

impl crate::esp::cipher::Cipher for OracleCipher {
    fn seal(
        &mut self,
        nonce: &[u8; crate::esp::sa::NONCE_LEN],
        aad: &[u8; crate::esp::sa::AAD_LEN],
        data: &mut [u8],
        icv: &mut [u8; crate::esp::sa::ICV_LEN],
    ) -> bool {
        use aes_gcm::aead::AeadInPlace;
        match self
            .0
            .encrypt_in_place_detached(aes_gcm::Nonce::from_slice(nonce), aad, data)
        {
            Ok(tag) => {
                icv.copy_from_slice(&tag);
                true
            }
            Err(_) => false,
        }
    }

    fn open(
        &mut self,
        nonce: &[u8; crate::esp::sa::NONCE_LEN],
        aad: &[u8; crate::esp::sa::AAD_LEN],
        data: &mut [u8],
        icv: &[u8; crate::esp::sa::ICV_LEN],
    ) -> bool {
        use aes_gcm::aead::AeadInPlace;
        self.0
            .decrypt_in_place_detached(
                aes_gcm::Nonce::from_slice(nonce),
                aad,
                data,
                aes_gcm::Tag::from_slice(icv),
            )
            .is_ok()
    }
}
