//! Profiles are checked end to end without DPDK: every template parses as what the profile
//! says, and the real pipeline, given the profile's own config, forwards it the expected way.

use std::sync::Arc;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use conduit_packet::esp::cipher::{Cipher, CipherFactory};
use conduit_packet::esp::runtime::EspRuntime;
use conduit_packet::esp::sa::{SaDirection, SaKey, ICV_LEN};
use conduit_packet::pipeline::{process, Context, TokenBucket, VecBuf, Verdict, WorkerState};
use conduit_packet::testing::OracleCipher;
use conduit_packet::wire::{
    EtherType, EthernetAddress, EthernetFrame, GrePacket, IcmpPacket, IpProtocol, Ipv4Packet,
    TcpPacket, UdpPacket,
};

use super::*;

const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x65, 0x72, 0x66, 0x00];

fn spec(kind: ProfileKind) -> ProfileSpec {
    ProfileSpec {
        kind,
        proto: Proto::Mix,
        flows: 300,
        sizes: vec![64],
        tunnels: 8,
        routes: 100,
        paths: 1,
        ecmp: Ecmp::Modulo,
        gre_key: None,
    }
}

/// Checks the L4 header and checksum of an IPv4 packet built by the profile.
fn check_l4(ip: &Ipv4Packet<&[u8]>) {
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    match ip.protocol() {
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(u.verify_checksum(src, dst));
        }
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(t.verify_checksum(src, dst));
        }
        IpProtocol::Icmp => {
            let i = IcmpPacket::new_checked(ip.payload()).unwrap();
            assert!(i.verify_checksum());
        }
        p => panic!("unexpected protocol {p:?}"),
    }
}

#[test]
fn frames_parse_as_the_profile_says() {
    for kind in [ProfileKind::Encap, ProfileKind::Decap, ProfileKind::Transit] {
        let s = spec(kind);
        for f in 0..s.flows {
            let mut frame = s.frame(f, PORT_MAC);
            stamp(&mut frame, 0x1234_5678_9abc);
            let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
            assert_eq!(eth.dst_addr().0, PORT_MAC);
            assert_eq!(eth.ethertype(), EtherType::Ipv4);
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            // The stamp keeps every checksum valid.
            match kind {
                ProfileKind::Encap => {
                    assert_eq!(frame.len(), 64);
                    check_l4(&ip);
                }
                _ => {
                    assert_eq!(frame.len(), 64 + 24, "GRE adds outer IPv4 and GRE");
                    assert_eq!(ip.protocol(), IpProtocol::Gre);
                    assert_eq!(ip.dst_addr(), ENDPOINT);
                    let gre = GrePacket::new_checked(ip.payload()).unwrap();
                    assert_eq!(gre.protocol_type(), EtherType::Ipv4);
                    check_l4(&Ipv4Packet::new_checked(gre.payload()).unwrap());
                }
            }
            assert_eq!(read_stamp(&frame), Some(0x5678_9abc));
        }
    }
}

#[test]
fn protocols_rotate_and_sizes_follow_the_list() {
    let mut s = spec(ProfileKind::Encap);
    s.sizes = parse_sizes("imix").unwrap();
    assert_eq!(s.sizes.len(), 12);
    let mut protos = std::collections::HashSet::new();
    for f in 0..36 {
        let frame = s.frame(f, PORT_MAC);
        assert_eq!(frame.len(), s.sizes[f as usize % 12] as usize);
        protos.insert(frame[14 + 9]);
    }
    assert_eq!(protos, [1u8, 6, 17].into_iter().collect());
}

#[test]
fn flows_spread_over_a_large_table() {
    let mut s = spec(ProfileKind::Encap);
    s.routes = MAX_ROUTES;
    s.flows = 10_000;
    assert_eq!(s.flow_prefix(0), 0);
    assert!(s.flow_prefix(9_999) > MAX_ROUTES - 200);
    let distinct: std::collections::HashSet<u32> = (0..s.flows).map(|f| s.flow_prefix(f)).collect();
    assert_eq!(distinct.len(), 10_000);
}

#[test]
fn config_has_the_requested_tables() {
    let mut s = spec(ProfileKind::Encap);
    s.paths = 2;
    s.gre_key = Some(9);
    s.ecmp = Ecmp::Resilient;
    let cfg = s.config("perf_ring0", &[1], 32).unwrap();
    assert_eq!(cfg.tunnels.len(), 8);
    assert_eq!(cfg.routes.len(), 200);
    assert!(cfg.tunnels.iter().all(|t| t.key == Some(9)));
    assert_eq!(cfg.dataplane.workers, vec![1]);
    // Two equal-cost tunnels per prefix.
    assert_eq!(cfg.routes[0].prefix, cfg.routes[1].prefix);
    assert_ne!(cfg.routes[0].tunnel, cfg.routes[1].tunnel);
}

#[test]
fn appliance_yaml_is_the_same_config() {
    for kind in [ProfileKind::Encap, ProfileKind::Mix] {
        let mut s = spec(kind);
        s.paths = 2;
        s.gre_key = Some(7);
        let built = s.config("net_pcap0", &[1], 32).unwrap();
        let yaml = s.config_yaml("net_pcap0", &[1], 32, None).unwrap();
        let parsed = Config::parse(&yaml, Path::new("<test>")).unwrap();
        assert_eq!(parsed, built);
        let yaml = s.config_yaml("net_pcap0", &[1], 32, Some(16383)).unwrap();
        let parsed = Config::parse(&yaml, Path::new("<test>")).unwrap();
        assert_eq!(parsed.dataplane.mbufs, Some(16383));
        assert_eq!(parsed.routes, built.routes);
    }
}

#[test]
fn invalid_specs_are_refused() {
    let mut s = spec(ProfileKind::Encap);
    s.sizes = vec![40];
    assert!(s.validate().is_err());
    let mut s = spec(ProfileKind::Encap);
    s.routes = MAX_ROUTES + 1;
    assert!(s.validate().is_err());
    let mut s = spec(ProfileKind::Encap);
    s.paths = 9;
    assert!(s.validate().is_err());
    assert!(parse_sizes("64,x").is_err());
    assert_eq!(parse_sizes("64, 128").unwrap(), vec![64, 128]);
    assert_eq!(min_size(Proto::Udp), 50);
}

#[test]
fn trailer_detects_damage() {
    let mut f = vec![0u8; 64];
    stamp(&mut f, 77);
    assert_eq!(read_stamp(&f), Some(77));
    f[60] ^= 1;
    assert_eq!(read_stamp(&f), None);
    assert_eq!(read_stamp(&[1, 2, 3]), None);
    stamp(&mut [0u8; 3], 1); // too short: no panic, nothing written
}

/// Runs every flow of `s` through the real pipeline with the profile's config and checks the
/// verdict and the sink's check of the output.
fn run_through_pipeline(s: &ProfileSpec) {
    let cfg = s.config("perf_ring0", &[1], 32).unwrap();
    let table = Arc::new(control::tables::forwarding_table(&cfg, &[]).unwrap());
    let ctx = control::tables::context(
        &cfg,
        &[EthernetAddress(PORT_MAC)],
        EthernetAddress(GATEWAY_MAC),
        table,
    )
    .unwrap();
    let mut state = WorkerState::new(TokenBucket::new(100, 50, 1_000_000, 0), 0);
    for f in 0..s.flows {
        let mut frame = s.frame(f, PORT_MAC);
        stamp(&mut frame, u64::from(f) * 7919);
        let mut buf = VecBuf::new(128, &frame);
        let out = process(&ctx, 0, &mut buf, &mut state, 1);
        match out.verdict {
            Verdict::Forward { port: 0, .. } => {}
            v => panic!("{:?} flow {f}: {v:?}", s.kind),
        }
        let data = conduit_packet::pipeline::PacketBuf::data(&buf);
        assert_eq!(check_output(s, data), Ok(()), "{:?} flow {f}", s.kind);
        assert_eq!(read_stamp(data), Some(f * 7919));
        assert_eq!(&data[..6], &GATEWAY_MAC, "sent to the gateway");
    }
}

#[test]
fn pipeline_forwards_every_profile_as_expected() {
    for kind in [
        ProfileKind::Encap,
        ProfileKind::Decap,
        ProfileKind::Transit,
        ProfileKind::Mix,
    ] {
        run_through_pipeline(&spec(kind));
        let mut s = spec(kind);
        s.gre_key = Some(42);
        s.paths = 3;
        s.sizes = parse_sizes("imix").unwrap();
        s.ecmp = Ecmp::Weighted;
        run_through_pipeline(&s);
    }
}

#[test]
fn check_output_rejects_wrong_shapes() {
    let s = spec(ProfileKind::Encap);
    // An encap profile's input is plain: as output it is the wrong shape (and TTL 64).
    let mut frame = s.frame(1, PORT_MAC);
    stamp(&mut frame, 5);
    assert_eq!(check_output(&s, &frame), Err(CheckError::WrongShape));
    assert_eq!(check_output(&s, &frame[..20]), Err(CheckError::Short));
    let d = spec(ProfileKind::Decap);
    let mut g = d.frame(1, PORT_MAC);
    stamp(&mut g, 5);
    // Outer source is the remote, not the endpoint.
    assert_eq!(
        check_output(&spec(ProfileKind::Transit), &g),
        Err(CheckError::OuterAddresses)
    );
}

// ---- the ESP profiles ----

struct GcmFactory;

impl CipherFactory for GcmFactory {
    fn session(&mut self, key: &SaKey, _: SaDirection) -> Result<Box<dyn Cipher>, String> {
        Ok(Box::new(OracleCipher::new(key)?))
    }
}

fn esp_spec(kind: ProfileKind, sizes: &str) -> ProfileSpec {
    ProfileSpec {
        proto: Proto::Udp,
        sizes: parse_sizes(sizes).unwrap(),
        ..spec(kind)
    }
}

/// The profile's context with its SAs (as the appliance builds it after persisting an epoch).
fn esp_context(s: &ProfileSpec) -> Context {
    let cfg = s.config("net_pcap0", &[1], 32).unwrap();
    let table = Arc::new(control::tables::forwarding_table(&cfg, &[]).unwrap());
    let ipsec = control::ipsec::SaRegistry::new(1).build(&cfg, Some(1));
    control::tables::context_with_ipsec(
        &cfg,
        &[EthernetAddress(PORT_MAC)],
        EthernetAddress(GATEWAY_MAC),
        table,
        ipsec,
    )
    .unwrap()
}

fn gcm_state() -> WorkerState {
    let mut state = WorkerState::new(TokenBucket::new(100, 50, 1_000_000, 0), 0);
    state.set_esp(EspRuntime::new(0, Box::new(GcmFactory)));
    state
}

/// Opens the ESP packet `ip` (outer IPv4 header first) with `sa` by the oracle; the inner
/// packet (ESP trailer removed).
fn open_esp(ip: &[u8], sa: &esp::Sa) -> Vec<u8> {
    let key: Vec<u8> = (0..36)
        .map(|i| u8::from_str_radix(&sa.key_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let esp = &ip[IP..];
    assert_eq!(esp[..4], sa.spi.to_be_bytes(), "SPI");
    let (body, icv) = esp[16..].split_at(esp.len() - 16 - ICV_LEN);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&key[32..]);
    nonce[4..].copy_from_slice(&esp[8..16]);
    let mut data = body.to_vec();
    Aes256Gcm::new_from_slice(&key[..32])
        .unwrap()
        .decrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &esp[..8],
            &mut data,
            Tag::from_slice(icv),
        )
        .expect("ICV verifies under the SA's key");
    let next_header = data.pop().unwrap();
    assert_eq!(next_header, 4, "IPv4 inside");
    let pad = data.pop().unwrap() as usize;
    data.truncate(data.len() - pad);
    data
}

#[test]
fn esp_config_has_ipsec_tunnels_and_the_yaml_is_the_same() {
    let s = esp_spec(ProfileKind::EspEncap, "64");
    let built = s.config("net_pcap0", &[1], 32).unwrap();
    let yaml = s.config_yaml("net_pcap0", &[1], 32, Some(16383)).unwrap();
    let parsed = Config::parse(&yaml, Path::new("<test>")).unwrap();
    assert_eq!(parsed.tunnels, built.tunnels);
    assert_eq!(parsed.ipsec, built.ipsec);
    let ipsec = built.ipsec.as_ref().unwrap();
    assert_eq!(ipsec.crypto_device, esp::CRYPTO_DEVICE);
    assert_eq!(ipsec.state_dir, Path::new(esp::STATE_DIR));
    assert_eq!(built.tunnels.len(), 8);
    for (i, t) in built.tunnels.iter().enumerate() {
        assert_eq!(t.kind, control::config::TunnelKind::Ipsec);
        let sas = t.ipsec.as_ref().unwrap();
        assert_eq!(
            sas.outbound.as_ref().unwrap().spi,
            esp::Sa::outbound(i as u32).spi
        );
        assert_eq!(sas.inbound[0].spi, esp::Sa::inbound(i as u32).spi);
    }
    // Every key distinct: no key serves two SAs.
    let keys: std::collections::HashSet<String> = (0..8)
        .flat_map(|i| [esp::Sa::outbound(i).key_hex, esp::Sa::inbound(i).key_hex])
        .collect();
    assert_eq!(keys.len(), 16);
    // Inner packets of 1420 bytes fit the tunnel; bigger ones and GRE keys are refused.
    assert!(esp_spec(ProfileKind::EspEncap, "1434").validate().is_ok());
    assert!(esp_spec(ProfileKind::EspEncap, "1455").validate().is_err());
    let mut keyed = esp_spec(ProfileKind::EspDecap, "64");
    keyed.gre_key = Some(1);
    assert!(keyed.validate().is_err());
}

#[test]
fn esp_encap_profile_is_sealed_with_the_outbound_sa() {
    for sizes in ["64", "78,608,1434"] {
        let s = esp_spec(ProfileKind::EspEncap, sizes);
        let ctx = esp_context(&s);
        let mut state = gcm_state();
        for f in 0..s.flows {
            let frame = s.frame(f, PORT_MAC);
            let mut buf = VecBuf::with_tailroom(128, &frame, 64);
            let out = process(&ctx, 0, &mut buf, &mut state, 1);
            assert!(
                matches!(out.verdict, Verdict::Forward { port: 0, .. }),
                "flow {f}: {:?}",
                out.verdict
            );
            let data = conduit_packet::pipeline::PacketBuf::data(&buf);
            assert_eq!(check_output(&s, data), Ok(()), "flow {f}");
            assert_eq!(&data[..6], &GATEWAY_MAC, "sent to the gateway");
            let ip = &data[ETH..];
            let tunnel = u32::from_be_bytes(ip[16..20].try_into().unwrap()) - REMOTE_BASE - 1;
            let inner = open_esp(ip, &esp::Sa::outbound(tunnel));
            // The customer packet, TTL decremented (and its checksum patched).
            let mut expect = frame[ETH..].to_vec();
            expect[8] -= 1;
            expect[10..12].fill(0);
            let c = checksum::checksum(&expect[..IP]);
            expect[10..12].copy_from_slice(&c.to_be_bytes());
            assert_eq!(inner, expect, "flow {f}");
        }
    }
    // A plain frame is not what esp-encap sends.
    let s = esp_spec(ProfileKind::EspEncap, "64");
    assert_eq!(
        check_output(&s, &s.frame(0, PORT_MAC)),
        Err(CheckError::WrongShape)
    );
}

#[test]
fn esp_decap_frames_are_sealed_with_the_inbound_sa_and_decapsulated() {
    for sizes in ["64", "78,608,1434"] {
        let s = esp_spec(ProfileKind::EspDecap, sizes);
        let mut sealer = esp::Sealer::new(&s, PORT_MAC, Box::new(GcmFactory)).unwrap();
        let ctx = esp_context(&s);
        let mut state = gcm_state();
        for f in 0..s.flows {
            let frame = sealer.frame(f).unwrap();
            let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
            assert_eq!(eth.dst_addr().0, PORT_MAC);
            assert_eq!(eth.src_addr().0, GATEWAY_MAC);
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.protocol(), IpProtocol::Esp);
            assert_eq!(ip.dst_addr(), ENDPOINT);
            let (tunnel, customer) = s.flow_packet(f);
            let tunnel = tunnel.unwrap();
            assert_eq!(ip.src_addr(), remote(tunnel));
            // The oracle opens it with the tunnel's inbound SA: the customer packet.
            assert_eq!(open_esp(eth.payload(), &esp::Sa::inbound(tunnel)), customer);
            // And the appliance's pipeline accepts and decapsulates it.
            let mut buf = VecBuf::new(128, &frame);
            let out = process(&ctx, 0, &mut buf, &mut state, 1);
            assert!(
                matches!(out.verdict, Verdict::Forward { port: 0, .. }),
                "flow {f}: {:?}",
                out.verdict
            );
            let data = conduit_packet::pipeline::PacketBuf::data(&buf);
            assert_eq!(check_output(&s, data), Ok(()), "flow {f}");
            assert_eq!(read_stamp(data), Some(0));
        }
    }
}
