//! The ESP cipher (`DpdkCipherFactory` and its `Cipher`s) through each cryptodev PMD, over a
//! real EAL: CPU crypto on `crypto_aesni_gcm` and `crypto_aesni_mb`, lookaside on
//! `crypto_openssl` (and, forced, on `crypto_aesni_gcm`). Known answers: the AES-256 ESP case
//! of the GCM ESP test cases (draft-mcgrew-gcm-test-01, test case 3: SPI 0x4a2cbfe3, sequence
//! 2) and an ESP-shaped case whose answer came from Python's `cryptography` (OpenSSL). Beyond
//! them, the IPsec-MB and OpenSSL implementations must agree with each other on every length.

use std::sync::Arc;

use conduit_packet::esp::cipher::{Cipher, CipherFactory};
use conduit_packet::esp::sa::{SaDirection, SaKey, AAD_LEN, ICV_LEN, NONCE_LEN};
use dataplane::crypto::{
    CryptoDev, CryptoPath, DpdkCipherFactory, EspCipherFactories, MAX_LOOKASIDE_DATA,
};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

struct Vector {
    /// 32-byte key then 4-byte salt, as an SA's configured key.
    keymat: &'static str,
    iv: &'static str,
    aad: &'static str,
    plaintext: &'static str,
    ciphertext: &'static str,
    icv: &'static str,
}

const VECTORS: [Vector; 2] = [
    // draft-mcgrew-gcm-test-01 §4, test case 3 (AES-256, 8-byte AAD).
    Vector {
        keymat: "abbccddef00112233445566778899aababbccddef00112233445566778899aab11223344",
        iv: "0102030405060708",
        aad: "4a2cbfe300000002",
        plaintext: "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002400020bf0000020405b40101040201020201",
        ciphertext: "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a637985771d347f0545659f14e99def842d8e",
        icv: "b335f4eecfdbf831824b4c4915956c96",
    },
    // SPI 0x4321, sequence 1, salt cafebabe, explicit IV 0000000100000001; an inner IPv4/UDP
    // packet, RFC 4303 padding, pad length 2, next header 4.
    Vector {
        keymat: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fcafebabe",
        iv: "0000000100000001",
        aad: "0000432100000001",
        plaintext: "4500001c000000004011f9c2c0000201c633640104d2162e0008000001020204",
        ciphertext: "998dced38ff0c42dd1a3432cc9d53d86a2cce0b25b5bf9dae64cf2ca5d1f4498",
        icv: "dbbcbcc156e4bd9344c7fad95edca76a",
    },
];

fn sa_key(keymat: &[u8]) -> SaKey {
    SaKey {
        key: keymat[..32].try_into().unwrap(),
        salt: keymat[32..36].try_into().unwrap(),
    }
}

/// Salt ‖ explicit IV, as the packet path builds it.
fn nonce(key: &SaKey, iv: &[u8]) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..4].copy_from_slice(&key.salt);
    n[4..].copy_from_slice(iv);
    n
}

/// Seals and opens every vector through `factory`, and checks that a wrong ICV, a wrong key,
/// a changed AAD or ciphertext fail `open`, and that a session only works its own direction.
fn known_answers(factory: &mut DpdkCipherFactory) {
    let what = format!("{} {}", factory.device().name(), factory.path().as_str());
    for v in &VECTORS {
        let key = sa_key(&hex(v.keymat));
        let nonce = nonce(&key, &hex(v.iv));
        let aad: [u8; AAD_LEN] = hex(v.aad).try_into().unwrap();
        let mut seal = factory.session(&key, SaDirection::Outbound).unwrap();
        let mut open = factory.session(&key, SaDirection::Inbound).unwrap();

        let mut data = hex(v.plaintext);
        let mut icv = [0u8; ICV_LEN];
        assert!(seal.seal(&nonce, &aad, &mut data, &mut icv), "{what}: seal");
        assert_eq!(data, hex(v.ciphertext), "{what}: ciphertext");
        assert_eq!(icv.to_vec(), hex(v.icv), "{what}: ICV");

        assert!(open.open(&nonce, &aad, &mut data, &icv), "{what}: open");
        assert_eq!(data, hex(v.plaintext), "{what}: plaintext");

        // A session works only in its own direction.
        let mut scratch = hex(v.plaintext);
        assert!(!open.seal(&nonce, &aad, &mut scratch, &mut [0; ICV_LEN]));
        assert!(!seal.open(&nonce, &aad, &mut scratch, &icv));

        let ct = hex(v.ciphertext);
        let good: [u8; ICV_LEN] = hex(v.icv).try_into().unwrap();
        let mut bad_icv = good;
        bad_icv[ICV_LEN - 1] ^= 0x80;
        let mut data = ct.clone();
        assert!(
            !open.open(&nonce, &aad, &mut data, &bad_icv),
            "{what}: a wrong ICV must not open"
        );
        let mut bad_aad = aad;
        bad_aad[7] ^= 1;
        let mut data = ct.clone();
        assert!(
            !open.open(&nonce, &bad_aad, &mut data, &good),
            "{what}: a changed sequence number must not open"
        );
        let mut data = ct.clone();
        data[3] ^= 0x10;
        assert!(
            !open.open(&nonce, &aad, &mut data, &good),
            "{what}: a changed ciphertext must not open"
        );
        let mut wrong = key.clone();
        wrong.key[0] ^= 1;
        let mut other = factory.session(&wrong, SaDirection::Inbound).unwrap();
        let mut data = ct.clone();
        assert!(
            !other.open(&nonce, &aad, &mut data, &good),
            "{what}: a wrong key must not open"
        );
        // The good session still opens after the failures (no state left behind).
        let mut data = ct.clone();
        assert!(open.open(&nonce, &aad, &mut data, &good), "{what}: reopen");
        assert_eq!(data, hex(v.plaintext));
    }
}

#[test]
fn aesni_gcm_cipher_uses_cpu_crypto_and_knows_the_answers() {
    let eal =
        conduit_test_support::eal::init_eal("esp-aesni-gcm", &["--vdev", "crypto_aesni_gcm0"]);
    let dev = Arc::new(CryptoDev::open(&eal, "crypto_aesni_gcm0", 2, 64).unwrap());
    let mut f = DpdkCipherFactory::new(&dev, 0).unwrap();
    assert_eq!(f.path(), CryptoPath::CpuCrypto);
    known_answers(&mut f);
}

#[test]
fn aesni_mb_cipher_uses_cpu_crypto_and_knows_the_answers() {
    let eal = conduit_test_support::eal::init_eal("esp-aesni-mb", &["--vdev", "crypto_aesni_mb0"]);
    let dev = Arc::new(CryptoDev::open(&eal, "crypto_aesni_mb0", 2, 64).unwrap());
    let mut f = DpdkCipherFactory::new(&dev, 1).unwrap();
    assert_eq!(f.path(), CryptoPath::CpuCrypto);
    known_answers(&mut f);
}

#[test]
fn openssl_cipher_uses_lookaside_and_knows_the_answers() {
    let eal = conduit_test_support::eal::init_eal("esp-openssl", &["--vdev", "crypto_openssl0"]);
    let dev = Arc::new(CryptoDev::open(&eal, "crypto_openssl0", 2, 64).unwrap());
    assert!(!dev.supports_cpu_crypto());
    let mut f = DpdkCipherFactory::new(&dev, 1).unwrap();
    assert_eq!(f.path(), CryptoPath::Lookaside);
    known_answers(&mut f);
}

#[test]
fn aesni_gcm_lookaside_knows_the_answers() {
    let eal = conduit_test_support::eal::init_eal("esp-gcm-lookaside", &[]);
    let dev = Arc::new(CryptoDev::open(&eal, "crypto_aesni_gcm0", 1, 64).unwrap());
    let mut f = DpdkCipherFactory::with_path(&dev, 0, CryptoPath::Lookaside).unwrap();
    assert_eq!(f.path(), CryptoPath::Lookaside);
    known_answers(&mut f);
}

/// IPsec-MB (CPU crypto and lookaside) and OpenSSL (lookaside) seal every length alike, and
/// each opens what the others sealed.
#[test]
fn the_paths_and_the_implementations_agree_on_every_length() {
    let eal = conduit_test_support::eal::init_eal("esp-agree", &[]);
    let gcm = Arc::new(CryptoDev::open(&eal, "crypto_aesni_gcm0", 2, 64).unwrap());
    let ossl = Arc::new(CryptoDev::open(&eal, "crypto_openssl0", 1, 64).unwrap());
    let mut factories = [
        DpdkCipherFactory::with_path(&gcm, 0, CryptoPath::CpuCrypto).unwrap(),
        DpdkCipherFactory::with_path(&gcm, 1, CryptoPath::Lookaside).unwrap(),
        DpdkCipherFactory::new(&ossl, 0).unwrap(),
    ];
    let key = sa_key(&(0u8..36).map(|b| b.wrapping_mul(37)).collect::<Vec<_>>());
    let mut seals: Vec<Box<dyn Cipher>> = factories
        .iter_mut()
        .map(|f| f.session(&key, SaDirection::Outbound).unwrap())
        .collect();
    let mut opens: Vec<Box<dyn Cipher>> = factories
        .iter_mut()
        .map(|f| f.session(&key, SaDirection::Inbound).unwrap())
        .collect();
    for (n, len) in [
        0usize,
        1,
        15,
        16,
        17,
        63,
        64,
        255,
        1420,
        1500,
        9000,
        MAX_LOOKASIDE_DATA,
    ]
    .into_iter()
    .enumerate()
    {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 + n) as u8).collect();
        let nonce = nonce(&key, &(n as u64).to_be_bytes());
        let aad = [0, 0, 0x10, 0, 0, 0, 0, n as u8];
        let mut sealed = Vec::new();
        for (i, s) in seals.iter_mut().enumerate() {
            let mut data = plain.clone();
            let mut icv = [0u8; ICV_LEN];
            assert!(
                s.seal(&nonce, &aad, &mut data, &mut icv),
                "seal {i} of {len}"
            );
            if len > 0 {
                assert_ne!(data, plain, "sealed {len} bytes are not the plaintext");
            }
            sealed.push((data, icv));
        }
        assert_eq!(
            sealed[0], sealed[1],
            "CPU crypto and lookaside, {len} bytes"
        );
        assert_eq!(sealed[0], sealed[2], "IPsec-MB and OpenSSL, {len} bytes");
        for (i, o) in opens.iter_mut().enumerate() {
            let (ct, icv) = &sealed[(i + 1) % sealed.len()];
            let mut data = ct.clone();
            assert!(o.open(&nonce, &aad, &mut data, icv), "open {i} of {len}");
            assert_eq!(data, plain, "open {i} of {len}");
        }
    }
    // One byte over the scratch mbuf's room: lookaside refuses it rather than overrun.
    let mut data = vec![0u8; MAX_LOOKASIDE_DATA + 1];
    let mut icv = [0u8; ICV_LEN];
    assert!(!seals[1].seal(&[0; NONCE_LEN], &[0; AAD_LEN], &mut data, &mut icv));
    assert!(!seals[2].seal(&[0; NONCE_LEN], &[0; AAD_LEN], &mut data, &mut icv));
    // CPU crypto has no such limit.
    assert!(seals[0].seal(&[0; NONCE_LEN], &[0; AAD_LEN], &mut data, &mut icv));
}

/// Every session goes back to the device's pool when its cipher is dropped: many more
/// sessions than the pool holds are made and dropped in turn, and none stays in use.
fn sessions_are_freed(pmd: &str, path: CryptoPath) {
    let eal = conduit_test_support::eal::init_eal(&format!("esp-free-{pmd}"), &[]);
    let dev = Arc::new(CryptoDev::open(&eal, &format!("{pmd}0"), 1, 8).unwrap());
    let mut f = DpdkCipherFactory::with_path(&dev, 0, path).unwrap();
    let key = sa_key(&[7u8; 36]);
    assert_eq!(dev.sessions_in_use(), 0);
    {
        let held: Vec<_> = (0..4)
            .map(|_| f.session(&key, SaDirection::Outbound).unwrap())
            .collect();
        assert_eq!(
            dev.sessions_in_use(),
            4,
            "{pmd}: one pool object per session"
        );
        drop(held);
    }
    assert_eq!(dev.sessions_in_use(), 0, "{pmd}: freed");
    for round in 0..50 {
        let mut s = f.session(&key, SaDirection::Outbound).unwrap();
        let mut data = [round as u8; 64];
        assert!(s.seal(&[0; NONCE_LEN], &[0; AAD_LEN], &mut data, &mut [0; ICV_LEN]));
        let o = f.session(&key, SaDirection::Inbound).unwrap();
        assert_eq!(dev.sessions_in_use(), 2, "{pmd}: round {round}");
        drop((s, o));
    }
    assert_eq!(dev.sessions_in_use(), 0, "{pmd}: no session leaked");
    // The pool is full after 8: the factory says so instead of failing later.
    let held: Vec<_> = (0..8)
        .map(|_| f.session(&key, SaDirection::Inbound).unwrap())
        .collect();
    let err = f
        .session(&key, SaDirection::Inbound)
        .err()
        .expect("the ninth session does not fit");
    assert!(err.contains(pmd), "{err}");
    drop(held);
    assert_eq!(dev.sessions_in_use(), 0);
}

#[test]
fn aesni_gcm_sessions_are_freed() {
    sessions_are_freed("crypto_aesni_gcm", CryptoPath::CpuCrypto);
}

#[test]
fn openssl_sessions_are_freed() {
    sessions_are_freed("crypto_openssl", CryptoPath::Lookaside);
}

#[test]
fn a_queue_pair_has_one_owner() {
    let eal = conduit_test_support::eal::init_eal("esp-qp", &[]);
    let dev = Arc::new(CryptoDev::open(&eal, "crypto_openssl0", 2, 8).unwrap());
    assert_eq!(dev.queue_pairs(), 2);
    let a = DpdkCipherFactory::new(&dev, 0).unwrap();
    let err = DpdkCipherFactory::new(&dev, 0).expect_err("queue pair 0 is taken");
    assert!(err.to_string().contains("already in use"), "{err}");
    let err = DpdkCipherFactory::new(&dev, 2).expect_err("there is no queue pair 2");
    assert!(err.to_string().contains("queue pair 2"), "{err}");
    let err = DpdkCipherFactory::with_path(&dev, 1, CryptoPath::CpuCrypto)
        .expect_err("openssl has no CPU crypto");
    assert!(err.to_string().contains("no CPU crypto"), "{err}");
    // The failed claim above did not keep queue pair 1.
    let b = DpdkCipherFactory::new(&dev, 1).unwrap();
    assert_eq!((a.queue_pair(), b.queue_pair()), (0, 1));
    drop(a);
    let again = DpdkCipherFactory::new(&dev, 0).unwrap();
    assert_eq!(again.queue_pair(), 0);
}

#[test]
fn more_queue_pairs_than_the_device_has_is_a_clear_error() {
    let eal = conduit_test_support::eal::init_eal("esp-qp-max", &[]);
    let err = CryptoDev::open(&eal, "crypto_aesni_gcm0,max_nb_queue_pairs=2", 3, 8)
        .expect_err("3 queue pairs on a device of 2");
    assert!(err.to_string().contains("max_nb_queue_pairs"), "{err}");
}

/// The appliance's constructor on `device`: a factory per worker plus the control thread's,
/// each on its own queue pair, usable from its own thread at the same time, and all sealing
/// alike (what one worker seals, any other opens).
fn appliance_factories(device: &str, workers: usize, path: CryptoPath) {
    let eal = conduit_test_support::eal::init_eal(&format!("esp-factories-{device}"), &[]);
    let f = EspCipherFactories::open(&eal, device, workers, 4).unwrap();
    assert_eq!(f.device.name(), device);
    assert_eq!(usize::from(f.device.queue_pairs()), workers + 1);
    assert_eq!(f.workers.len(), workers);
    let mut queue_pairs: Vec<u16> = f.workers.iter().map(|w| w.queue_pair()).collect();
    queue_pairs.push(f.control.queue_pair());
    assert_eq!(queue_pairs, (0..=workers as u16).collect::<Vec<_>>());
    assert_eq!(f.control.path(), path);

    let v = &VECTORS[0];
    let key = sa_key(&hex(v.keymat));
    let nonce = nonce(&key, &hex(v.iv));
    let aad: [u8; AAD_LEN] = hex(v.aad).try_into().unwrap();
    let device_ref = Arc::clone(&f.device);
    let EspCipherFactories {
        workers: factories,
        mut control,
        ..
    } = f;
    let threads: Vec<_> = factories
        .into_iter()
        .map(|mut factory| {
            let key = key.clone();
            std::thread::spawn(move || {
                assert_eq!(factory.path(), path);
                let mut seal = factory.session(&key, SaDirection::Outbound).unwrap();
                let mut open = factory.session(&key, SaDirection::Inbound).unwrap();
                for _ in 0..200 {
                    let mut data = hex(v.plaintext);
                    let mut icv = [0u8; ICV_LEN];
                    assert!(seal.seal(&nonce, &aad, &mut data, &mut icv));
                    assert_eq!(data, hex(v.ciphertext));
                    assert_eq!(icv.to_vec(), hex(v.icv));
                    assert!(open.open(&nonce, &aad, &mut data, &icv));
                    assert_eq!(data, hex(v.plaintext));
                }
            })
        })
        .collect();
    let mut probe = control.session(&key, SaDirection::Outbound).unwrap();
    let mut data = hex(v.plaintext);
    let mut icv = [0u8; ICV_LEN];
    assert!(probe.seal(&nonce, &aad, &mut data, &mut icv));
    assert_eq!(data, hex(v.ciphertext));
    for t in threads {
        t.join().unwrap();
    }
    drop(probe);
    assert_eq!(device_ref.sessions_in_use(), 0);
}

#[test]
fn appliance_factories_on_aesni_gcm_created_by_name() {
    appliance_factories("crypto_aesni_gcm", 2, CryptoPath::CpuCrypto);
}

#[test]
fn appliance_factories_on_openssl_beyond_the_default_queue_pairs() {
    // Software PMDs default to 8 queue pairs; 10 workers need 11.
    appliance_factories("crypto_openssl", 10, CryptoPath::Lookaside);
}

#[test]
fn a_vdev_created_without_arguments_has_the_default_queue_pairs() {
    let eal = conduit_test_support::eal::init_eal("esp-default-qps", &[]);
    let err = CryptoDev::open(&eal, "crypto_openssl0", 11, 8).expect_err("8 by default");
    assert!(err.to_string().contains("has 8 queue pairs"), "{err}");
}

#[test]
fn appliance_factories_on_an_existing_vdev_with_too_few_queue_pairs() {
    let eal = conduit_test_support::eal::init_eal(
        "esp-factories-existing",
        &["--vdev", "crypto_aesni_mb0,max_nb_queue_pairs=2"],
    );
    let err = EspCipherFactories::open(&eal, "crypto_aesni_mb0", 2, 4).expect_err("3 > 2");
    assert!(err.to_string().contains("crypto_aesni_mb0"), "{err}");
    let f = EspCipherFactories::open(&eal, "crypto_aesni_mb0", 1, 4).unwrap();
    assert_eq!(f.control.path(), CryptoPath::CpuCrypto);
}
