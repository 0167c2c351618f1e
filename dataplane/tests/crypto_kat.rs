//! AES-256-GCM known answers through each cryptodev PMD Conduit supports with CPU crypto, over
//! a real EAL: the NIST GCM test case 16 (AES-256, 96-bit IV, 20-byte AAD) and an ESP-shaped
//! case (8-byte SPI ‖ sequence AAD, salt ‖ explicit IV nonce) whose answer came from Python's
//! `cryptography` (OpenSSL). Decryption verifies the ICV: a flipped bit anywhere fails it.

use std::sync::Arc;

use dataplane::crypto::{AeadOp, AeadSession, CryptoDev, Direction, GCM_ICV_LEN, GCM_NONCE_LEN};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

struct Vector {
    key: &'static str,
    nonce: &'static str,
    aad: &'static str,
    plaintext: &'static str,
    ciphertext: &'static str,
    icv: &'static str,
}

const VECTORS: [Vector; 2] = [
    // NIST GCM specification, test case 16.
    Vector {
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        nonce: "cafebabefacedbaddecaf888",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        icv: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
    // ESP: SPI 0x4321, sequence 1, salt cafebabe, explicit IV 0000000100000001; the payload is
    // an inner IPv4/UDP packet, 4 bytes of RFC 4303 padding, pad length 2, next header 4.
    Vector {
        key: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        nonce: "cafebabe0000000100000001",
        aad: "0000432100000001",
        plaintext: "4500001c000000004011f9c2c0000201c633640104d2162e0008000001020204",
        ciphertext: "998dced38ff0c42dd1a3432cc9d53d86a2cce0b25b5bf9dae64cf2ca5d1f4498",
        icv: "dbbcbcc156e4bd9344c7fad95edca76a",
    },
];

/// One operation through `session`: whether it succeeded (decrypt: the ICV verified).
fn run_one(
    session: &AeadSession,
    nonce: &[u8; GCM_NONCE_LEN],
    aad: &[u8],
    data: &mut [u8],
    icv: &mut [u8; GCM_ICV_LEN],
) -> bool {
    let mut ok = [false; 1];
    session
        .process(
            &mut [AeadOp {
                nonce,
                aad,
                data,
                icv,
            }],
            &mut ok,
        )
        .unwrap();
    ok[0]
}

/// Encrypts and decrypts every vector on `pmd`, and checks that a corrupted ciphertext, AAD or
/// ICV fails verification.
fn known_answers(pmd: &str) {
    let _eal = conduit_test_support::eal::init_eal(pmd, &[]);
    let dev = Arc::new(CryptoDev::open(&_eal, &format!("{pmd}0"), 1, 16).expect("open PMD"));
    assert!(dev.supports_cpu_crypto(), "{pmd} offers CPU crypto");
    for v in &VECTORS {
        let key: [u8; 32] = hex(v.key).try_into().unwrap();
        let nonce: [u8; GCM_NONCE_LEN] = hex(v.nonce).try_into().unwrap();
        let aad = hex(v.aad);
        let aad_len = aad.len() as u16;
        let enc = dev
            .aes_gcm_session(&key, Direction::Encrypt, aad_len)
            .unwrap();
        let dec = dev
            .aes_gcm_session(&key, Direction::Decrypt, aad_len)
            .unwrap();

        let mut data = hex(v.plaintext);
        let mut icv = [0u8; GCM_ICV_LEN];
        assert!(
            run_one(&enc, &nonce, &aad, &mut data, &mut icv),
            "{pmd}: encrypt"
        );
        assert_eq!(data, hex(v.ciphertext), "{pmd}: ciphertext");
        assert_eq!(icv.to_vec(), hex(v.icv), "{pmd}: ICV");

        assert!(
            run_one(&dec, &nonce, &aad, &mut data, &mut icv),
            "{pmd}: the ICV verifies"
        );
        assert_eq!(data, hex(v.plaintext), "{pmd}: plaintext");

        // One flipped bit in the ciphertext, the AAD or the ICV: verification fails.
        let ct = hex(v.ciphertext);
        let good_icv: [u8; GCM_ICV_LEN] = hex(v.icv).try_into().unwrap();
        for (what, byte) in [("ciphertext", 0usize), ("aad", 1), ("icv", 2)] {
            let mut data = ct.clone();
            let mut aad = aad.clone();
            let mut icv = good_icv;
            match byte {
                0 => {
                    let mid = data.len() / 2;
                    data[mid] ^= 0x10
                }
                1 => aad[0] ^= 0x01,
                _ => icv[GCM_ICV_LEN - 1] ^= 0x80,
            }
            assert!(
                !run_one(&dec, &nonce, &aad, &mut data, &mut icv),
                "{pmd}: a corrupted {what} must fail the ICV check"
            );
        }
    }
}

#[test]
fn aesni_gcm_known_answers() {
    known_answers("crypto_aesni_gcm");
}

#[test]
fn aesni_mb_known_answers() {
    known_answers("crypto_aesni_mb");
}

#[test]
fn a_burst_mixes_good_and_forged_packets() {
    let eal = conduit_test_support::eal::init_eal("crypto-burst", &[]);
    let dev = Arc::new(CryptoDev::open(&eal, "crypto_aesni_gcm0", 1, 16).unwrap());
    let v = &VECTORS[1];
    let key: [u8; 32] = hex(v.key).try_into().unwrap();
    let nonce: [u8; GCM_NONCE_LEN] = hex(v.nonce).try_into().unwrap();
    let aad = hex(v.aad);
    let dec = dev.aes_gcm_session(&key, Direction::Decrypt, 8).unwrap();
    let mut datas: Vec<Vec<u8>> = (0..32).map(|_| hex(v.ciphertext)).collect();
    let mut icvs: Vec<[u8; GCM_ICV_LEN]> = (0..32)
        .map(|i| {
            let mut icv: [u8; GCM_ICV_LEN] = hex(v.icv).try_into().unwrap();
            if i % 3 == 0 {
                icv[0] ^= 1;
            }
            icv
        })
        .collect();
    let mut ops: Vec<AeadOp> = datas
        .iter_mut()
        .zip(icvs.iter_mut())
        .map(|(data, icv)| AeadOp {
            nonce: &nonce,
            aad: &aad,
            data,
            icv,
        })
        .collect();
    let mut ok = [false; 32];
    dec.process(&mut ops, &mut ok).unwrap();
    for (i, ok) in ok.iter().enumerate() {
        assert_eq!(*ok, i % 3 != 0, "packet {i}");
    }
    for (i, d) in datas.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
        assert_eq!(*d, hex(v.plaintext), "packet {i}");
    }
}

#[test]
fn openssl_has_no_cpu_crypto_and_says_so() {
    let eal = conduit_test_support::eal::init_eal("crypto-openssl", &[]);
    let dev = Arc::new(CryptoDev::open(&eal, "crypto_openssl0", 1, 16).unwrap());
    assert!(!dev.supports_cpu_crypto());
    // The session is made (the lookaside path runs it); the CPU crypto call refuses it.
    let session = dev
        .aes_gcm_session(&[0; 32], Direction::Encrypt, 8)
        .unwrap();
    let (nonce, aad, mut data, mut icv) = ([0; GCM_NONCE_LEN], [0; 8], [0; 16], [0; GCM_ICV_LEN]);
    let err = session
        .process(
            &mut [AeadOp {
                nonce: &nonce,
                aad: &aad,
                data: &mut data,
                icv: &mut icv,
            }],
            &mut [false],
        )
        .expect_err("no CPU crypto on openssl");
    assert!(err.to_string().contains("no CPU crypto"), "{err}");
    assert!(!session.process_one(&nonce, &aad, &mut data, &mut icv));
}

#[test]
fn an_unknown_pmd_is_a_clear_error() {
    let eal = conduit_test_support::eal::init_eal("crypto-unknown", &[]);
    let err = CryptoDev::open(&eal, "crypto_nosuch0", 1, 16).expect_err("no such PMD");
    assert!(err.to_string().contains("crypto_nosuch0"), "{err}");
}
