//! ESP through the pipeline: encapsulation checked by an independent AES-GCM (the `aes-gcm`
//! crate, never part of the product), decapsulation of frames sealed by it, a known answer,
//! round trips between two appliances, every rejection rule with its counter, the replay window
//! untouched by rejected packets, NAT-T, session and sequence-number exhaustion, the runtime's
//! reuse of sessions across table swaps, and no allocation per packet.

use std::sync::atomic::{AtomicUsize, Ordering};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};

use super::*;
use crate::esp::cipher::{Cipher, CipherFactory};
use crate::esp::iv::IvPrefix;
use crate::esp::runtime::EspRuntime;
use crate::esp::sa::{
    InboundSa, IpsecConfig, OutboundSa, SaCounter, SaDirection, SaKey, SaShared, TunnelSas,
};
use crate::route::ForwardingTable;
use crate::testing::{check_esp_frame, OracleCipher};

/// T3's remote (the IPsec peer); T3's local endpoint is E2.
const R3: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 30);
const OUT_SPI: u32 = 0x2000;
const IN_SPI: u32 = 0x1000;
const PREFIX: IvPrefix = IvPrefix {
    instance_id: 7,
    epoch: 3,
};

fn key(b: u8) -> SaKey {
    SaKey {
        key: [b; 32],
        salt: [b ^ 0x55; 4],
    }
}

// ---- the independent AES-GCM ----

/// Makes [`Gcm`] sessions and counts them.
#[derive(Clone, Default)]
struct GcmFactory(Arc<AtomicUsize>);

impl CipherFactory for GcmFactory {
    fn session(&mut self, key: &SaKey, _: SaDirection) -> Result<Box<dyn Cipher>, String> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(OracleCipher::new(key)?))
    }
}

/// A device that refuses every session.
struct Refusing;

impl CipherFactory for Refusing {
    fn session(&mut self, _: &SaKey, _: SaDirection) -> Result<Box<dyn Cipher>, String> {
        Err("no queue pair".into())
    }
}

fn gcm_state() -> WorkerState {
    let mut s = state();
    s.set_esp(EspRuntime::new(0, Box::new(GcmFactory::default())));
    s
}

// ---- contexts ----

struct Esp {
    ctx: Context,
    out: Arc<SaShared>,
    inb: Arc<SaShared>,
}

fn sas(out: &Arc<SaShared>, inb: &Arc<SaShared>, window: u32, nat_t: bool) -> TunnelSas {
    TunnelSas {
        outbound: Some(OutboundSa {
            spi: OUT_SPI,
            key: key(1),
            shared: Arc::clone(out),
        }),
        inbound: vec![InboundSa {
            spi: IN_SPI,
            key: key(2),
            replay_window: window,
            shared: Arc::clone(inb),
        }],
        nat_t,
    }
}

/// The shared test context with SAs on T3 (E2 ↔ R3): outbound 0x2000 under key 1, inbound
/// 0x1000 under key 2.
fn esp_ctx(window: u32, nat_t: bool) -> Esp {
    let (out, inb) = (SaShared::new(2), SaShared::new(2));
    let mut c = config(false);
    c.ipsec = IpsecConfig {
        iv_prefix: PREFIX,
        tunnels: vec![(T3, sas(&out, &inb, window, nat_t))],
    };
    Esp {
        ctx: Context::new(&c, table()).unwrap(),
        out,
        inb,
    }
}

/// The peer's side of T3: local R3, remote E2, accepting our outbound SA; no routes, so what
/// it decapsulates leaves plain to its gateway.
fn peer_ctx(nat_t: bool) -> Context {
    let mut c = config(false);
    c.local_endpoints = vec![R3];
    c.tunnels = vec![(T3, Tunnel::ipsec(R3, E2, a("10.200.0.10"), a("10.200.0.9")))];
    c.ipsec = IpsecConfig {
        iv_prefix: IvPrefix::default(),
        tunnels: vec![(
            T3,
            TunnelSas {
                outbound: None,
                inbound: vec![InboundSa {
                    spi: OUT_SPI,
                    key: key(1),
                    replay_window: 64,
                    shared: SaShared::new(1),
                }],
                nat_t,
            },
        )],
    };
    let table = ForwardingTable::builder()
        .tunnels([(T3, Health::Healthy)])
        .build()
        .unwrap();
    Context::new(&c, Arc::new(table)).unwrap()
}

// ---- the oracle's ESP, written from RFC 4303 / 4106 independently of the pipeline ----

/// The plaintext ESP encrypts: `inner`, padding 1, 2, 3, ... to 4 bytes, pad length, next
/// header.
fn with_trailer(inner: &[u8], next_header: u8) -> Vec<u8> {
    let pad = (4 - (inner.len() + 2) % 4) % 4;
    let mut v = inner.to_vec();
    v.extend((1..=pad).map(|i| i as u8));
    v.extend([pad as u8, next_header]);
    v
}

/// SPI ‖ sequence ‖ IV ‖ AES-GCM(plaintext) ‖ ICV.
fn seal(spi: u32, seq: u32, k: &SaKey, iv: [u8; 8], plaintext: &[u8]) -> Vec<u8> {
    let mut esp = [spi.to_be_bytes(), seq.to_be_bytes()].concat();
    let aad = esp.clone();
    let nonce = [&k.salt[..], &iv[..]].concat();
    let mut body = plaintext.to_vec();
    let tag = Aes256Gcm::new_from_slice(&k.key)
        .unwrap()
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut body)
        .unwrap();
    esp.extend_from_slice(&iv);
    esp.extend_from_slice(&body);
    esp.extend_from_slice(&tag);
    esp
}

/// `esp` from `src` to `dst`: plain ESP, or in UDP 4500 → 4500 with a zero checksum.
fn esp_frame(src: Ipv4Addr, dst: Ipv4Addr, esp: &[u8], nat_t: bool) -> Vec<u8> {
    if nat_t {
        let mut udp = [4500u16.to_be_bytes(), 4500u16.to_be_bytes()].concat();
        udp.extend(((8 + esp.len()) as u16).to_be_bytes());
        udp.extend([0, 0]);
        udp.extend_from_slice(esp);
        plain(&ip_packet(src, dst, IpProtocol::Udp, 64, 0, false, &udp))
    } else {
        plain(&ip_packet(src, dst, IpProtocol::Esp, 64, 0, false, esp))
    }
}

/// A genuine inbound frame (R3 → E2, SPI 0x1000, key 2) carrying `inner`.
fn inbound(seq: u32, inner: &[u8]) -> Vec<u8> {
    let iv = [9, 9, 9, 9, 0, 0, 0, seq as u8];
    esp_frame(
        R3,
        E2,
        &seal(IN_SPI, seq, &key(2), iv, &with_trailer(inner, 4)),
        false,
    )
}

/// Opens an ESP frame of T3 with `k`: checks its outer headers, decrypts, checks the trailer;
/// returns (SPI, sequence number, IV, inner packet).
fn open(frame: &[u8], tunnel: &Tunnel, k: &SaKey) -> (u32, u32, [u8; 8], Vec<u8>) {
    let esp = check_esp_frame(frame, tunnel);
    let spi = u32::from_be_bytes(esp[..4].try_into().unwrap());
    let seq = u32::from_be_bytes(esp[4..8].try_into().unwrap());
    let iv: [u8; 8] = esp[8..16].try_into().unwrap();
    let (body, tag) = esp[16..].split_at(esp.len() - 16 - 16);
    let mut body = body.to_vec();
    let nonce = [&k.salt[..], &iv[..]].concat();
    Aes256Gcm::new_from_slice(&k.key)
        .unwrap()
        .decrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &esp[..8],
            &mut body,
            Tag::from_slice(tag),
        )
        .expect("the ICV verifies");
    let [.., pad, next] = body[..] else {
        panic!("no trailer")
    };
    assert_eq!(next, 4, "next header IPv4");
    let inner_len = body.len() - 2 - usize::from(pad);
    assert!(usize::from(pad) < 4, "minimal padding");
    assert_eq!(body.len() % 4, 0);
    for (i, &b) in body[inner_len..body.len() - 2].iter().enumerate() {
        assert_eq!(usize::from(b), i + 1, "RFC 4303 default padding");
    }
    body.truncate(inner_len);
    (spi, seq, iv, body)
}

fn t3(ctx: &Context) -> Tunnel {
    *ctx.tunnel(T3).unwrap()
}

fn customer_to_t3(data: &[u8]) -> Vec<u8> {
    ip_packet(
        HOST,
        a("10.50.1.1"),
        IpProtocol::Udp,
        64,
        0,
        true,
        &udp(HOST, a("10.50.1.1"), 4000, 53, data),
    )
}

// ---- known answer ----

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// An ESP packet of RFC 4106 AES-256-GCM whose answer came from OpenSSL (Python's
/// `cryptography`), as in the cryptodev known-answer tests: SPI 0x4321, sequence 1, salt
/// cafebabe, explicit IV 0000000100000001 (instance 0, epoch 1), an IPv4/UDP packet, 2 bytes of
/// padding, next header 4. Its inner header checksum is not valid (f9c2 where 8e9b is), so the
/// pipeline, having authenticated and decrypted it, must drop it as `ipv4_bad_checksum`; with the
/// checksum repaired, encapsulation must give the same ciphertext but for those two bytes (GCM
/// encrypts by XOR with a keystream that depends only on key and nonce).
#[test]
fn known_answer_both_ways() {
    let k = SaKey {
        key: hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .try_into()
            .unwrap(),
        salt: [0xca, 0xfe, 0xba, 0xbe],
    };
    let mut inner = hex("4500001c000000004011f9c2c0000201c633640104d2162e00080000");
    let mut sealed = hex("998dced38ff0c42dd1a3432cc9d53d86a2cce0b25b5bf9dae64cf2ca5d1f4498");
    let icv = hex("dbbcbcc156e4bd9344c7fad95edca76a");
    let header = hex("00004321000000010000000100000001");
    let (out, inb) = (SaShared::new(1), SaShared::new(1));
    let mut c = config(false);
    c.ipsec = IpsecConfig {
        iv_prefix: IvPrefix {
            instance_id: 0,
            epoch: 1,
        },
        tunnels: vec![(
            T3,
            TunnelSas {
                outbound: Some(OutboundSa {
                    spi: 0x4321,
                    key: k.clone(),
                    shared: Arc::clone(&out),
                }),
                inbound: vec![InboundSa {
                    spi: 0x4321,
                    key: k.clone(),
                    replay_window: 0,
                    shared: Arc::clone(&inb),
                }],
                nat_t: false,
            },
        )],
    };
    let ctx = Context::new(&c, table()).unwrap();
    let mut s = gcm_state();

    let known = [&header[..], &sealed, &icv].concat();
    assert_eq!(
        send(&ctx, &mut s, &esp_frame(R3, E2, &known, false)),
        drop_(wire::Error::Ipv4BadChecksum)
    );
    assert_eq!(inb.total(SaCounter::Packets), 1, "authenticated");
    assert_eq!(inb.total(SaCounter::Bytes), 28, "trailer parsed");
    assert_eq!(inb.total(SaCounter::AuthFailures), 0);

    inner[10..12].copy_from_slice(&[0x8e, 0x9b]);
    sealed[10] ^= 0xf9 ^ 0x8e;
    sealed[11] ^= 0xc2 ^ 0x9b;
    let mut b = VecBuf::with_tailroom(HEADROOM, &inner, 64);
    encapsulate(&ctx, T3, &mut b, &mut s).unwrap();
    let esp = check_esp_frame(b.data(), &t3(&ctx)).to_vec();
    assert_eq!(&esp[..16], &header[..]);
    assert_eq!(&esp[16..48], &sealed[..]);
    assert_eq!(open(b.data(), &t3(&ctx), &k).3, inner);
    assert_eq!(out.total(SaCounter::Packets), 1);
    assert_eq!(out.total(SaCounter::Bytes), 28);
    assert_eq!(out.total(SaCounter::LastSeq), 1);

    // Back in from the peer: decapsulated and routed (no customer route for 198.51.100.1:
    // plain to the gateway, TTL − 1).
    let (o, b) = run_with(&ctx, 0, &esp_frame(R3, E2, &esp, false), &mut s, 0);
    assert_eq!(o.verdict, forward(None));
    assert_eq!(o.rx_tunnel, Some(T3));
    let mut want = inner.clone();
    want[8] -= 1;
    Ipv4Packet::new_checked(&mut want[..])
        .unwrap()
        .fill_checksum();
    assert_eq!(&b.data()[14..], &want[..]);
}

// ---- encapsulation ----

#[test]
fn routed_packets_are_sealed_with_fresh_sequence_numbers_and_ivs() {
    let e = esp_ctx(0, false);
    let mut s = gcm_state();
    let t = t3(&e.ctx);
    for seq in 1..=3u32 {
        let inner = customer_to_t3(&vec![seq as u8; seq as usize * 7]);
        let frame = plain(&inner);
        let mut b = VecBuf::with_tailroom(HEADROOM, &frame, 64);
        let o = process(&e.ctx, 0, &mut b, &mut s, 0);
        assert_eq!(o.verdict, forward(Some(T3)));
        check_outcome(&e.ctx, 0, HEADROOM + frame.len() + 64, &o, &b);
        let (spi, got_seq, iv, got) = open(b.data(), &t, &key(1));
        assert_eq!((spi, got_seq), (OUT_SPI, seq));
        assert_eq!(iv, PREFIX.iv(seq));
        assert_eq!(got, forwarded(&inner, &L4Kind::Udp, 0));
        let outer = Ipv4Packet::new_checked(&b.data()[14..]).unwrap();
        assert!(outer.dont_frag(), "DF copied from the inner packet");
        assert_eq!(outer.protocol(), IpProtocol::Esp);
    }
    assert_eq!(e.out.total(SaCounter::Packets), 3);
    assert_eq!(e.out.total(SaCounter::LastSeq), 3);
}

#[test]
fn without_tailroom_nothing_is_sent_and_no_number_is_used() {
    let e = esp_ctx(0, false);
    let mut s = gcm_state();
    let frame = plain(&customer_to_t3(b"x"));
    let mut b = VecBuf::new(HEADROOM, &frame);
    let o = process(&e.ctx, 0, &mut b, &mut s, 0);
    assert_eq!(o.verdict, drop_(DropReason::Headroom));
    assert_eq!(e.out.seq().last(), 0);
}

#[test]
fn syns_are_clamped_and_too_big_packets_are_handled_as_for_gre() {
    let e = esp_ctx(0, false);
    let mut s = gcm_state();
    let t = t3(&e.ctx);
    let dst = a("10.50.2.2");
    let syn = ip_packet(
        HOST,
        dst,
        IpProtocol::Tcp,
        64,
        0,
        true,
        &tcp(HOST, dst, 4000, 443, 0x02, Some(1460), false, b""),
    );
    let (o, b) = {
        let mut b = VecBuf::with_tailroom(HEADROOM, &plain(&syn), 64);
        (process(&e.ctx, 0, &mut b, &mut s, 0), b)
    };
    assert_eq!(o.verdict, forward(Some(T3)));
    let (_, _, _, got) = open(b.data(), &t, &key(1));
    let kind = L4Kind::Tcp {
        flags: 0x02,
        mss: Some(1460),
        odd: false,
    };
    assert_eq!(got, forwarded(&syn, &kind, t.mss));

    // 1401 bytes with DF: fragmentation needed, MTU 1400; without DF: fragments, each sealed.
    let big = |df| {
        let data = udp(HOST, dst, 1, 2, &[7; 1373]);
        ip_packet(HOST, dst, IpProtocol::Udp, 64, 0, df, &data)
    };
    let (o, _) = run_with(&e.ctx, 0, &plain(&big(true)), &mut s, 0);
    assert!(
        matches!(
            o.verdict,
            Verdict::IcmpError {
                reason: DropReason::MtuExceeded,
                ..
            }
        ),
        "{o:?}"
    );
    let mut b = VecBuf::new(HEADROOM, &plain(&big(false)));
    let o = process(&e.ctx, 0, &mut b, &mut s, 0);
    let Verdict::NeedsFragmentation { tunnel, mtu, .. } = o.verdict else {
        panic!("{o:?}")
    };
    assert_eq!((tunnel, mtu), (T3, 1400));
    let mut payload = 0;
    for f in FragmentPlan::new(b.data(), mtu).unwrap() {
        let mut room = [0u8; 1500];
        let n = write_fragment(b.data(), &f, &mut room).unwrap();
        let mut fb = VecBuf::with_tailroom(HEADROOM, &room[..n], 64);
        encapsulate(&e.ctx, T3, &mut fb, &mut s).unwrap();
        let (_, _, _, got) = open(fb.data(), &t, &key(1));
        assert_eq!(got, &room[..n]);
        payload += f.len;
    }
    assert_eq!(payload, 8 + 1373);
}

// ---- decapsulation ----

#[test]
fn esp_from_the_remote_is_decapsulated_and_routed_like_gre() {
    let e = esp_ctx(64, false);
    let mut s = gcm_state();
    let inner = customer_udp("172.16.9.9", b"through the SA");
    let frame = inbound(1, &inner);
    let mut b = VecBuf::new(HEADROOM, &frame);
    let o = process(&e.ctx, 0, &mut b, &mut s, 0);
    assert_eq!(o.verdict, forward(Some(T0)));
    assert_eq!(o.rx_tunnel, Some(T3));
    check_outcome(&e.ctx, 0, HEADROOM + frame.len(), &o, &b);
    let got = check_gre_frame(b.data(), e.ctx.tunnel(T0).unwrap());
    assert_eq!(got, forwarded(&inner, &L4Kind::Udp, 0));
    assert_eq!(e.inb.total(SaCounter::Packets), 1);
    assert_eq!(e.inb.total(SaCounter::Bytes), inner.len() as u64);
    assert_eq!(e.inb.total(SaCounter::LastSeq), 1);
}

/// Sends `frame` through `ctx` and returns the verdict.
fn send(ctx: &Context, s: &mut WorkerState, frame: &[u8]) -> Verdict {
    run_with(ctx, 0, frame, s, 0).0.verdict
}

#[test]
fn rejections_are_counted_and_never_move_the_window() {
    let e = esp_ctx(64, false);
    let mut s = gcm_state();
    let inner = customer_udp("172.16.9.9", b"payload");
    let ok = forward(Some(T0));
    let sealed = |spi, seq, k: &SaKey, plaintext: &[u8]| {
        esp_frame(R3, E2, &seal(spi, seq, k, [1; 8], plaintext), false)
    };
    let good = |seq| sealed(IN_SPI, seq, &key(2), &with_trailer(&inner, 4));

    assert_eq!(send(&e.ctx, &mut s, &good(10)), ok);
    assert_eq!(
        send(&e.ctx, &mut s, &good(10)),
        drop_(DropReason::EspReplay)
    );
    // A forged packet far ahead: refused, and the window does not slide to it.
    let mut forged = good(1000);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        send(&e.ctx, &mut s, &forged),
        drop_(DropReason::EspAuthFailed)
    );
    let mut wrong_salt = key(2);
    wrong_salt.salt[0] ^= 1;
    for (what, frame, reason) in [
        (
            "unknown SPI",
            sealed(IN_SPI + 1, 2000, &key(2), &with_trailer(&inner, 4)),
            DropReason::EspUnknownSpi,
        ),
        (
            "our outbound SPI is not an inbound one",
            sealed(OUT_SPI, 2000, &key(1), &with_trailer(&inner, 4)),
            DropReason::EspUnknownSpi,
        ),
        (
            "SPI from another remote",
            esp_frame(
                R0,
                E2,
                &seal(IN_SPI, 2000, &key(2), [1; 8], &with_trailer(&inner, 4)),
                false,
            ),
            DropReason::EspUnknownSpi,
        ),
        (
            "SPI to the other endpoint",
            esp_frame(
                R3,
                E1,
                &seal(IN_SPI, 2000, &key(2), [1; 8], &with_trailer(&inner, 4)),
                false,
            ),
            DropReason::EspUnknownSpi,
        ),
        (
            "wrong key",
            sealed(IN_SPI, 2000, &key(3), &with_trailer(&inner, 4)),
            DropReason::EspAuthFailed,
        ),
        (
            "wrong salt",
            sealed(IN_SPI, 2000, &wrong_salt, &with_trailer(&inner, 4)),
            DropReason::EspAuthFailed,
        ),
    ] {
        assert_eq!(send(&e.ctx, &mut s, &frame), drop_(reason), "{what}");
    }
    assert_eq!(send(&e.ctx, &mut s, &good(11)), ok, "window still at 10");
    assert_eq!(send(&e.ctx, &mut s, &good(5)), ok, "5 was never accepted");
    assert_eq!(send(&e.ctx, &mut s, &good(1000)), ok);
    assert_eq!(
        send(&e.ctx, &mut s, &good(900)),
        drop_(DropReason::EspReplay),
        "too old now"
    );

    // Authenticated, but the trailer is wrong: dropped after the window accepted the number.
    let mut bad_padding = with_trailer(&inner, 4);
    let n = bad_padding.len();
    let pad = usize::from(bad_padding[n - 2]);
    assert!(pad > 0, "the test packet needs padding");
    bad_padding[n - 3] ^= 0x40;
    let mut long_pad = with_trailer(&inner, 4);
    long_pad[n - 2] = 255;
    for (seq, plaintext) in [
        (1001, bad_padding),
        (1002, with_trailer(&inner, 41)),
        (1003, long_pad),
        (1004, vec![0, 0, 0, 4, 2, 1, 2, 4]),
    ] {
        assert_eq!(
            send(&e.ctx, &mut s, &sealed(IN_SPI, seq, &key(2), &plaintext)),
            drop_(DropReason::EspBadTrailer),
            "{seq}"
        );
    }
    // The inner packet is validated like GRE's.
    let mut broken = inner.clone();
    broken[0] = 0x55;
    assert_eq!(
        send(
            &e.ctx,
            &mut s,
            &sealed(IN_SPI, 1005, &key(2), &with_trailer(&broken, 4))
        ),
        drop_(wire::Error::Ipv4BadVersion)
    );

    assert_eq!(e.inb.total(SaCounter::Replays), 2);
    assert_eq!(e.inb.total(SaCounter::AuthFailures), 3);
    // 10, 11, 5, 1000, then the five authenticated ones with bad contents.
    assert_eq!(e.inb.total(SaCounter::Packets), 9);
    assert_eq!(e.inb.total(SaCounter::LastSeq), 1005);
}

#[test]
fn truncation_at_every_offset_is_dropped_and_leaves_the_window_alone() {
    let e = esp_ctx(64, false);
    let mut s = gcm_state();
    let inner = customer_udp("172.16.9.9", b"truncate me");
    let esp = seal(IN_SPI, 50, &key(2), [2; 8], &with_trailer(&inner, 4));
    for nat_t in [false, true] {
        for n in 0..esp.len() {
            let frame = esp_frame(R3, E2, &esp[..n], nat_t);
            let expected = match n {
                0..=3 if nat_t => DropReason::LocalUnsupported,
                0..=7 => wire::Error::EspTruncated.into(),
                // SPI, sequence number, IV, ICV and the two trailer bytes at least.
                8..=33 => wire::Error::EspTruncated.into(),
                _ => DropReason::EspAuthFailed,
            };
            let o = run_with(&e.ctx, 0, &frame, &mut s, 0).0;
            assert_eq!(o.verdict, drop_(expected), "{n} bytes, NAT-T {nat_t}");
        }
    }
    // The window never moved: 50 itself and an older number are still accepted.
    assert_eq!(
        send(&e.ctx, &mut s, &esp_frame(R3, E2, &esp, false)),
        forward(Some(T0))
    );
    assert_eq!(
        send(&e.ctx, &mut s, &inbound(20, &inner)),
        forward(Some(T0))
    );
}

// ---- NAT-T ----

#[test]
fn nat_t_carries_esp_in_udp_4500_both_ways() {
    let e = esp_ctx(0, true);
    let mut s = gcm_state();
    let t = t3(&e.ctx);
    let inner = customer_to_t3(b"behind a NAT");
    let mut b = VecBuf::with_tailroom(HEADROOM, &plain(&inner), 64);
    let o = process(&e.ctx, 0, &mut b, &mut s, 0);
    assert_eq!(o.verdict, forward(Some(T3)));
    let outer = Ipv4Packet::new_checked(&b.data()[14..]).unwrap();
    assert_eq!(outer.protocol(), IpProtocol::Udp);
    let (spi, seq, _, got) = open(b.data(), &t, &key(1));
    assert_eq!((spi, seq), (OUT_SPI, 1));
    assert_eq!(got, forwarded(&inner, &L4Kind::Udp, 0));

    let back = customer_udp("172.16.9.9", b"reply");
    let esp = seal(IN_SPI, 1, &key(2), [3; 8], &with_trailer(&back, 4));
    for nat_t in [true, false] {
        let (o, _) = run_with(&e.ctx, 0, &esp_frame(R3, E2, &esp, nat_t), &mut s, 0);
        assert_eq!(o.verdict, forward(Some(T0)), "NAT-T {nat_t}");
        assert_eq!(o.rx_tunnel, Some(T3));
    }
    let udp_to = |dport: u16, payload: &[u8]| {
        let mut u = [4500u16.to_be_bytes(), dport.to_be_bytes()].concat();
        u.extend(((8 + payload.len()) as u16).to_be_bytes());
        u.extend([0, 0]);
        u.extend_from_slice(payload);
        plain(&ip_packet(R3, E2, IpProtocol::Udp, 64, 0, false, &u))
    };
    let unsupported = drop_(DropReason::LocalUnsupported);
    assert_eq!(send(&e.ctx, &mut s, &udp_to(4500, &[0xff])), unsupported);
    assert_eq!(
        send(&e.ctx, &mut s, &udp_to(4500, &[0, 0, 0, 0, 1, 2, 3, 4])),
        unsupported,
        "IKE's non-ESP marker"
    );
    assert_eq!(send(&e.ctx, &mut s, &udp_to(4501, &esp)), unsupported);
}

// ---- sessions, sequence numbers, runtime ----

#[test]
fn without_a_session_esp_is_dropped() {
    let e = esp_ctx(0, false);
    let frame_out = plain(&customer_to_t3(b"x"));
    let frame_in = inbound(1, &customer_udp("172.16.9.9", b"x"));
    let mut none = state();
    let mut refused = state();
    refused.set_esp(EspRuntime::new(0, Box::new(Refusing)));
    for s in [&mut none, &mut refused] {
        let mut b = VecBuf::with_tailroom(HEADROOM, &frame_out, 64);
        assert_eq!(
            process(&e.ctx, 0, &mut b, s, 0).verdict,
            drop_(DropReason::EspNoSession)
        );
        assert_eq!(send(&e.ctx, s, &frame_in), drop_(DropReason::EspNoSession));
    }
    assert_eq!(refused.esp.session_errors(), 2);
    assert_eq!(e.out.seq().last(), 0, "no number used");
}

#[test]
fn an_sa_stops_at_the_last_sequence_number() {
    let e = esp_ctx(0, false);
    let mut s = gcm_state();
    e.out.seq().skip_to(u32::MAX);
    let frame = plain(&customer_to_t3(b"x"));
    let mut b = VecBuf::with_tailroom(HEADROOM, &frame, 64);
    assert_eq!(
        process(&e.ctx, 0, &mut b, &mut s, 0).verdict,
        forward(Some(T3))
    );
    assert_eq!(open(b.data(), &t3(&e.ctx), &key(1)).1, u32::MAX);
    for _ in 0..2 {
        let mut b = VecBuf::with_tailroom(HEADROOM, &frame, 64);
        assert_eq!(
            process(&e.ctx, 0, &mut b, &mut s, 0).verdict,
            drop_(DropReason::EspSeqExhausted)
        );
    }
}

#[test]
fn a_reload_keeps_the_sessions_and_windows_of_the_sas_it_keeps() {
    let (out, inb) = (SaShared::new(1), SaShared::new(1));
    let build = |inb: &Arc<SaShared>, table: Arc<ForwardingTable>| {
        let mut c = config(false);
        c.ipsec = IpsecConfig {
            iv_prefix: PREFIX,
            tunnels: vec![(T3, sas(&out, inb, 64, false))],
        };
        Context::new(&c, table).unwrap()
    };
    let factory = GcmFactory::default();
    let made = Arc::clone(&factory.0);
    let mut s = state();
    s.set_esp(EspRuntime::new(0, Box::new(factory)));
    let first = build(&inb, table());
    s.esp.sync(&first);
    assert_eq!(made.load(Ordering::Relaxed), 2);
    let inner = customer_udp("172.16.9.9", b"x");
    assert_eq!(
        send(&first, &mut s, &inbound(10, &inner)),
        forward(Some(T0))
    );

    // A new table only: same generation, nothing rebuilt.
    let swapped = first.with_table(table()).unwrap();
    assert_eq!(swapped.ipsec_generation(), first.ipsec_generation());
    s.esp.sync(&swapped);
    assert_eq!(made.load(Ordering::Relaxed), 2);

    // A reload with the same SAs: a new generation, the same sessions and window.
    let reloaded = build(&inb, table());
    assert_ne!(reloaded.ipsec_generation(), first.ipsec_generation());
    assert_eq!(
        send(&reloaded, &mut s, &inbound(10, &inner)),
        drop_(DropReason::EspReplay),
        "the window survived"
    );
    assert_eq!(made.load(Ordering::Relaxed), 2);

    // A new inbound SA object: a new session and a fresh window; the outbound one is kept.
    let rekeyed = build(&SaShared::new(1), table());
    assert_eq!(
        send(&rekeyed, &mut s, &inbound(10, &inner)),
        forward(Some(T0))
    );
    assert_eq!(made.load(Ordering::Relaxed), 3);
}

// ---- round trips ----

proptest! {
    #[test]
    fn a_packet_sealed_here_is_opened_by_the_peer(
        len in 0usize..1372,
        tos in any::<u8>(),
        df in any::<bool>(),
        nat_t in any::<bool>(),
        flip in any::<Option<(prop::sample::Index, u8)>>(),
    ) {
        let e = esp_ctx(0, nat_t);
        let peer = peer_ctx(nat_t);
        let mut s = gcm_state();
        let mut peer_state = gcm_state();
        let dst = a("10.50.3.3");
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let inner = ip_packet(HOST, dst, IpProtocol::Udp, 64, tos, df, &udp(HOST, dst, 1, 2, &data));
        let frame = plain(&inner);
        let mut b = VecBuf::with_tailroom(HEADROOM, &frame, 64);
        let o = process(&e.ctx, 0, &mut b, &mut s, 0);
        prop_assert_eq!(o.verdict, forward(Some(T3)));
        check_outcome(&e.ctx, 0, HEADROOM + frame.len() + 64, &o, &b);
        let mut sent = b.data().to_vec();
        let corrupted = match flip {
            // Anything after the outer IPv4 header (whose checksum would catch it).
            // NATs rewrite the UDP source port, and its checksum is not used: neither is
            // protected.
            Some((at, bit)) if bit != 0 => {
                let i = 34 + at.index(sent.len() - 34);
                sent[i] ^= bit;
                !(nat_t && matches!(i, 34 | 35 | 40 | 41))
            }
            _ => false,
        };
        let (o, b) = run_with(&peer, 0, &sent, &mut peer_state, 0);
        if corrupted {
            prop_assert!(matches!(o.verdict, Verdict::Drop(_)), "{:?}", o.verdict);
        } else {
            prop_assert_eq!(o.verdict, forward(None));
            prop_assert_eq!(o.rx_tunnel, Some(T3));
            let once = forwarded(&inner, &L4Kind::Udp, 0);
            let mut twice = once.clone();
            Ipv4Packet::new_checked(&mut twice[..]).map(|mut p| {
                p.set_ttl(p.ttl() - 1);
                p.fill_checksum();
            }).unwrap();
            let got = &b.data()[14..];
            // The peer copies an outer CE into the inner packet (RFC 6040); the outer TOS was
            // the inner one, so only the checksum-neutral ECN bits could differ: compare all
            // but TOS and checksum, then those by the rule.
            prop_assert_eq!(got.len(), twice.len());
            prop_assert_eq!(&got[12..], &twice[12..]);
            prop_assert_eq!(&got[..1], &twice[..1]);
            prop_assert_eq!(&got[2..10], &twice[2..10]);
        }
    }
}

// ---- no allocation on the packet path ----

#[test]
fn the_packet_path_never_allocates() {
    let e = esp_ctx(64, false);
    let mut s = gcm_state();
    s.esp.sync(&e.ctx);
    let out_frame = plain(&customer_to_t3(&[5; 300]));
    let in_frames: Vec<Vec<u8>> = (1..=100)
        .map(|seq| inbound(seq, &customer_udp("172.16.9.9", &[6; 300])))
        .collect();
    let mut b = VecBuf::with_tailroom(HEADROOM, &[0; 2048], 64);
    let info = allocation_counter::measure(|| {
        for f in &in_frames {
            b.reset(HEADROOM, &out_frame);
            let sent = process(&e.ctx, 0, &mut b, &mut s, 0).verdict;
            b.reset(HEADROOM, f);
            let received = process(&e.ctx, 0, &mut b, &mut s, 0).verdict;
            assert!(sent == forward(Some(T3)) && received == forward(Some(T0)));
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
}

// ---- configuration ----

#[test]
fn sa_configurations_the_packet_path_cannot_serve_are_refused() {
    let t6 = TunnelId(6);
    let build = |tunnels: Vec<(TunnelId, TunnelSas)>| {
        let mut c = config(false);
        c.tunnels.push((
            t6,
            Tunnel::ipsec(E1, R3, a("10.200.0.20"), a("10.200.0.21")),
        ));
        c.ipsec = IpsecConfig {
            iv_prefix: PREFIX,
            tunnels,
        };
        Context::new(&c, table()).err()
    };
    let (out, inb) = (SaShared::new(1), SaShared::new(1));
    let good = sas(&out, &inb, 64, false);
    let with_inbound = |spis: &[u32], window: u32| TunnelSas {
        inbound: spis
            .iter()
            .map(|&spi| InboundSa {
                spi,
                key: key(2),
                replay_window: window,
                shared: SaShared::new(1),
            })
            .collect(),
        ..good.clone()
    };
    assert_eq!(build(vec![(T3, good.clone())]), None);
    assert_eq!(build(vec![(T3, with_inbound(&[IN_SPI], 0))]), None);
    assert_eq!(build(vec![(T3, with_inbound(&[IN_SPI], 4096))]), None);
    let cases = [
        (
            vec![(T0, good.clone())],
            ContextError::SasOnNonIpsecTunnel(T0),
        ),
        (
            vec![(TunnelId(9), good.clone())],
            ContextError::SasForUnknownTunnel(TunnelId(9)),
        ),
        (
            vec![(T3, good.clone()), (T3, good.clone())],
            ContextError::DuplicateSas(T3),
        ),
        (
            vec![(
                T3,
                with_inbound(&[0x1000, 0x1001, 0x1002, 0x1003, 0x1004], 0),
            )],
            ContextError::TooManyInboundSas {
                tunnel: T3,
                count: 5,
            },
        ),
        (
            vec![(T3, with_inbound(&[255], 0))],
            ContextError::ReservedSpi {
                tunnel: T3,
                spi: 255,
            },
        ),
        (
            vec![(T3, with_inbound(&[0x1000, 0x1000], 0))],
            ContextError::DuplicateSpi {
                tunnel: T3,
                spi: 0x1000,
            },
        ),
        (
            vec![(T3, with_inbound(&[IN_SPI], 32))],
            ContextError::InvalidReplayWindow {
                tunnel: T3,
                window: 32,
            },
        ),
        (
            vec![(T3, good.clone()), (t6, with_inbound(&[IN_SPI], 0))],
            ContextError::AmbiguousSpi {
                tunnel: T3,
                other: t6,
                spi: IN_SPI,
            },
        ),
    ];
    for (tunnels, expected) in cases {
        assert_eq!(build(tunnels), Some(expected.clone()), "{expected}");
    }
    // Different remotes may use the same SPI.
    let mut c = config(false);
    c.tunnels.push((
        t6,
        Tunnel::ipsec(E1, R0, a("10.200.0.20"), a("10.200.0.21")),
    ));
    c.ipsec = IpsecConfig {
        iv_prefix: PREFIX,
        tunnels: vec![(T3, good.clone()), (t6, with_inbound(&[IN_SPI], 0))],
    };
    assert!(Context::new(&c, table()).is_ok());
}
