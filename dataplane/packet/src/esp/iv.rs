//! The 8-byte explicit IV of an outbound SA (RFC 4106 §3.1), unique for a key across every
//! appliance of a fleet and across restarts.
//!
//! AES-GCM fails badly when a (key, nonce) pair repeats: the XOR of two ciphertexts leaks, and
//! the authentication key can be recovered. With static keys shared by every appliance that
//! announces an anycast endpoint, the ESP sequence number alone (what `rte_ipsec` uses) repeats
//! on every appliance and after every restart. So the IV is
//!
//! ```text
//!  0               2               4                               8
//! +---------------+---------------+-------------------------------+
//! |  instance id  |  boot epoch   |   ESP sequence number (32)    |
//! +---------------+---------------+-------------------------------+
//! ```
//!
//! - the **instance id** is configured per appliance, unique within the fleet;
//! - the **boot epoch** changes at every start of the appliance (a counter kept on disk);
//! - the **sequence number** never repeats for an SA within one boot ([`super::seq`]): an SA
//!   stops sending before it would wrap.
//!
//! Two packets under one key therefore share an IV only if they come from the same instance, in
//! the same boot epoch, with the same sequence number: never. The epoch is 16 bits, so a key
//! must be replaced before its appliance restarts 65,536 times.

/// What makes this appliance's IVs its own: the configured instance id and the boot epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IvPrefix {
    pub instance_id: u16,
    pub epoch: u16,
}

/// Explicit IV length for AES-GCM in ESP.
pub const EXPLICIT_IV_LEN: usize = 8;

impl IvPrefix {
    /// The explicit IV of the packet with sequence number `seq`.
    #[inline]
    pub fn iv(self, seq: u32) -> [u8; EXPLICIT_IV_LEN] {
        let mut iv = [0; EXPLICIT_IV_LEN];
        iv[0..2].copy_from_slice(&self.instance_id.to_be_bytes());
        iv[2..4].copy_from_slice(&self.epoch.to_be_bytes());
        iv[4..8].copy_from_slice(&seq.to_be_bytes());
        iv
    }
}

/// The 12-byte GCM nonce: the SA's 4-byte salt, then the explicit IV (RFC 4106 §4).
#[inline]
pub fn nonce(salt: [u8; 4], iv: &[u8; EXPLICIT_IV_LEN]) -> [u8; 12] {
    let mut n = [0; 12];
    n[..4].copy_from_slice(&salt);
    n[4..].copy_from_slice(iv);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn layout() {
        let p = IvPrefix {
            instance_id: 0x0102,
            epoch: 0x0304,
        };
        assert_eq!(p.iv(0x05060708), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            nonce([0xca, 0xfe, 0xba, 0xbe], &p.iv(1)),
            [0xca, 0xfe, 0xba, 0xbe, 1, 2, 3, 4, 0, 0, 0, 1]
        );
    }

    #[test]
    fn two_instances_and_a_restart_never_share_an_iv() {
        // Two appliances with the same SA, and the first restarted (next epoch): 3 × 200,000
        // packets, no IV twice.
        let sources = [
            IvPrefix {
                instance_id: 1,
                epoch: 7,
            },
            IvPrefix {
                instance_id: 2,
                epoch: 7,
            },
            IvPrefix {
                instance_id: 1,
                epoch: 8,
            },
        ];
        let mut seen = HashSet::new();
        for p in sources {
            for seq in 1..=200_000 {
                assert!(seen.insert(p.iv(seq)), "{p:?} seq {seq}");
            }
        }
    }
}
