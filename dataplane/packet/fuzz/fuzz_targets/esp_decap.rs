//! Fuzzes ESP decapsulation in `pipeline::process`: the pipeline unit tests' context
//! (`conduit_packet::testing`) with SAs on its IPsec tunnel T3 (local E2, remote
//! 198.51.100.30): inbound SPI 0x1000 with a replay window of 64, outbound SPI 0x2000, NAT-T
//! on; sessions from an independent AES-GCM (`aes-gcm`).
//!
//! Input: one control byte, then ESP packets, each as a big-endian `u16` length and that many
//! bytes (the last one takes what is left), sent from the remote to E2, one worker state for
//! all so the window carries over. Control bits: 0 wrap each in UDP 4500 (NAT-T), 1 seal each
//! first: the bytes after the first 8 are taken as the plaintext (inner packet and trailer,
//! unchecked) and sealed under the inbound SA's key with the first 4 bytes as the sequence
//! number, so mutations get past the ICV into the trailer and inner packet checks. Sealed
//! packets flip one bit of the result when control bit 2 is set.
//!
//! Whatever the input: no panic, every outcome passes `testing::check_outcome`, and the SA's
//! counters (authenticated, ICV failures, replays) moved by exactly what the verdicts say.
#![no_main]

use std::sync::{Arc, OnceLock};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use conduit_packet::esp::cipher::{Cipher, CipherFactory};
use conduit_packet::esp::runtime::EspRuntime;
use conduit_packet::esp::sa::{
    InboundSa, IpsecConfig, OutboundSa, SaCounter, SaDirection, SaKey, SaShared, TunnelSas,
};
use conduit_packet::pipeline::{process, Context, DropReason, TokenBucket, VecBuf, WorkerState};
use conduit_packet::testing::{check_outcome, config, table, OracleCipher, E2, T3};
use conduit_packet::wire::checksum;

const REMOTE: [u8; 4] = [198, 51, 100, 30];
const IN_SPI: u32 = 0x1000;
const IN_KEY: SaKey = SaKey {
    key: [2; 32],
    salt: [0x57; 4],
};

struct Factory;

impl CipherFactory for Factory {
    fn session(&mut self, key: &SaKey, _: SaDirection) -> Result<Box<dyn Cipher>, String> {
        OracleCipher::new(key).map(|c| Box::new(c) as Box<dyn Cipher>)
    }
}

/// The context, and the inbound SA's shared state (its counters).
fn context() -> &'static (Context, Arc<SaShared>) {
    static CTX: OnceLock<(Context, Arc<SaShared>)> = OnceLock::new();
    CTX.get_or_init(|| {
        let inbound = SaShared::new(1);
        let mut c = config(false);
        c.ipsec = IpsecConfig {
            iv_prefix: Default::default(),
            tunnels: vec![(
                T3,
                TunnelSas {
                    outbound: Some(OutboundSa {
                        spi: 0x2000,
                        key: SaKey {
                            key: [1; 32],
                            salt: [0x54; 4],
                        },
                        shared: SaShared::new(1),
                    }),
                    inbound: vec![InboundSa {
                        spi: IN_SPI,
                        key: IN_KEY,
                        replay_window: 64,
                        shared: Arc::clone(&inbound),
                    }],
                    nat_t: true,
                },
            )],
        };
        (Context::new(&c, table()).expect("context"), inbound)
    })
}

/// `input[8..]` sealed as ESP of SPI 0x1000 with sequence number `input[..4]` and IV
/// `input[..8]`.
fn seal(input: &[u8]) -> Vec<u8> {
    let mut head = [0u8; 8];
    for (d, s) in head.iter_mut().zip(input) {
        *d = *s;
    }
    let mut esp = IN_SPI.to_be_bytes().to_vec();
    esp.extend_from_slice(&head[..4]);
    let aad = esp.clone();
    let mut nonce = IN_KEY.salt.to_vec();
    nonce.extend_from_slice(&head);
    let mut body = input.get(8..).unwrap_or(&[]).to_vec();
    let tag = Aes256Gcm::new_from_slice(&IN_KEY.key)
        .expect("key")
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut body)
        .expect("seal");
    esp.extend_from_slice(&head);
    esp.extend_from_slice(&body);
    esp.extend_from_slice(&tag);
    esp
}

/// An Ethernet frame from the gateway to port 0 with `esp` from the remote to E2, in UDP 4500
/// if `nat_t`; valid outer headers.
fn frame(esp: &[u8], nat_t: bool) -> Vec<u8> {
    let p = &conduit_packet::testing::P0.0;
    let g = &conduit_packet::testing::GW.0;
    let mut payload = Vec::new();
    if nat_t {
        payload.extend_from_slice(&4500u16.to_be_bytes());
        payload.extend_from_slice(&4500u16.to_be_bytes());
        payload.extend_from_slice(&((8 + esp.len()) as u16).to_be_bytes());
        payload.extend_from_slice(&[0, 0]);
    }
    payload.extend_from_slice(esp);
    let total = (20 + payload.len()) as u16;
    let mut f = Vec::with_capacity(34 + payload.len());
    f.extend_from_slice(p);
    f.extend_from_slice(g);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, if nat_t { 17 } else { 50 }, 0, 0]);
    f.extend_from_slice(&REMOTE);
    f.extend_from_slice(&E2.octets());
    let ck = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&payload);
    f
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let (ctx, inbound) = context();
    let mut state = WorkerState::new(TokenBucket::new(10, 2, 1000, 0), 0x0100);
    state.set_esp(EspRuntime::new(0, Box::new(Factory)));
    let before = (
        inbound.total(SaCounter::Packets),
        inbound.total(SaCounter::AuthFailures),
        inbound.total(SaCounter::Replays),
    );
    let (mut accepted, mut failed, mut replayed) = (0, 0, 0);
    while !rest.is_empty() {
        let len = match rest {
            [hi, lo, tail @ ..] => {
                rest = tail;
                usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len())
            }
            _ => rest.len(),
        };
        let (packet, tail) = rest.split_at(len);
        rest = tail;
        let mut esp = if control & 2 != 0 {
            seal(packet)
        } else {
            packet.to_vec()
        };
        if control & 6 == 6 && !esp.is_empty() {
            let bit = usize::from(packet.first().copied().unwrap_or(0)) % (esp.len() * 8);
            esp[bit / 8] ^= 1 << (bit % 8);
        }
        let f = frame(&esp, control & 1 != 0);
        let mut buf = VecBuf::with_tailroom(64, &f, 64);
        let o = process(ctx, 0, &mut buf, &mut state, 0);
        check_outcome(ctx, 0, 64 + f.len() + 64, &o, &buf);
        // The SA's tunnel is known once (remote, SPI) matched; what fails after that but
        // before the ICV verified is counted as such, everything else was authenticated.
        match o.verdict.drop_reason() {
            Some(DropReason::EspAuthFailed) => failed += 1,
            Some(DropReason::EspReplay) => replayed += 1,
            Some(
                DropReason::EspNoSession
                | DropReason::Wire(conduit_packet::wire::Error::EspTruncated),
            ) => {}
            _ if o.rx_tunnel == Some(T3) => accepted += 1,
            _ => assert_eq!(o.rx_tunnel, None, "{o:?}"),
        }
    }
    // Single-threaded target: the counters moved by exactly what the verdicts say.
    assert_eq!(
        (
            inbound.total(SaCounter::Packets) - before.0,
            inbound.total(SaCounter::AuthFailures) - before.1,
            inbound.total(SaCounter::Replays) - before.2,
        ),
        (accepted, failed, replayed)
    );
});
