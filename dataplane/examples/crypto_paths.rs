//! Cycles per ESP seal on each cryptodev path, for choosing between them: CPU crypto and
//! lookaside on `crypto_aesni_gcm` and `crypto_aesni_mb`, lookaside on `crypto_openssl`, at 64
//! and 1420 bytes.
//! One process, one core, a private EAL; the numbers vary with the machine and its load, so
//! compare the paths within one run rather than across machines.
//!
//! `cargo run --release -p dataplane --example crypto_paths`

use std::sync::Arc;

use conduit_packet::esp::cipher::CipherFactory;
use conduit_packet::esp::sa::{SaDirection, SaKey, ICV_LEN};
use dataplane::crypto::{CryptoDev, CryptoPath, DpdkCipherFactory};
use dataplane::eal::rdtsc;

const ROUNDS: u64 = 20_000;
const PASSES: usize = 5;

fn cycles_per_seal(factory: &mut DpdkCipherFactory, len: usize) -> u64 {
    let key = SaKey {
        key: [0x42; 32],
        salt: [1, 2, 3, 4],
    };
    let mut cipher = factory.session(&key, SaDirection::Outbound).unwrap();
    let mut data = vec![0x5a; len];
    let mut icv = [0u8; ICV_LEN];
    let mut nonce = [0u8; 12];
    let aad = [0, 0, 0x10, 0, 0, 0, 0, 1];
    for _ in 0..ROUNDS / 10 {
        assert!(cipher.seal(&nonce, &aad, &mut data, &mut icv));
    }
    let start = rdtsc();
    for i in 0..ROUNDS {
        nonce[4..].copy_from_slice(&i.to_be_bytes());
        assert!(cipher.seal(&nonce, &aad, &mut data, &mut icv));
    }
    (rdtsc() - start) / ROUNDS
}

fn main() {
    let eal = conduit_test_support::eal::init_eal("crypto-paths", &[]);
    let gcm = Arc::new(CryptoDev::open(&eal, "crypto_aesni_gcm0", 2, 8).unwrap());
    let mb = Arc::new(CryptoDev::open(&eal, "crypto_aesni_mb0", 2, 8).unwrap());
    let ossl = Arc::new(CryptoDev::open(&eal, "crypto_openssl0", 1, 8).unwrap());
    let mut runs = [
        (
            "crypto_aesni_gcm cpu_crypto",
            DpdkCipherFactory::with_path(&gcm, 0, CryptoPath::CpuCrypto).unwrap(),
        ),
        (
            "crypto_aesni_gcm lookaside ",
            DpdkCipherFactory::with_path(&gcm, 1, CryptoPath::Lookaside).unwrap(),
        ),
        (
            "crypto_aesni_mb  cpu_crypto",
            DpdkCipherFactory::with_path(&mb, 0, CryptoPath::CpuCrypto).unwrap(),
        ),
        (
            "crypto_aesni_mb  lookaside ",
            DpdkCipherFactory::with_path(&mb, 1, CryptoPath::Lookaside).unwrap(),
        ),
        (
            "crypto_openssl   lookaside ",
            DpdkCipherFactory::new(&ossl, 0).unwrap(),
        ),
    ];
    // Rounds alternate the paths, so that a slow moment of the machine (or the first run's
    // warm-up) hits every path alike; each figure is the median over the rounds.
    let mut figures = vec![Vec::new(); runs.len()];
    for _ in 0..PASSES {
        for ((_, factory), f) in runs.iter_mut().zip(&mut figures) {
            f.push((cycles_per_seal(factory, 64), cycles_per_seal(factory, 1420)));
        }
    }
    println!("cycles per seal (median of {PASSES} passes of {ROUNDS} seals, paths alternating)");
    for ((name, _), f) in runs.iter().zip(&mut figures) {
        let small = median(f.iter().map(|p| p.0).collect());
        let large = median(f.iter().map(|p| p.1).collect());
        println!("{name}  64 B: {small:>6}   1420 B: {large:>6}");
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}
