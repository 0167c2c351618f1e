//! The AEAD the packet path calls, as a trait: the worker implements it over DPDK's cryptodev
//! (`dataplane::crypto`), tests over an independent AES-GCM implementation. The pipeline never
//! implements a cipher.
//!
//! A [`Cipher`] is one SA's session in one direction on one worker; a [`CipherFactory`] makes
//! them when a worker first sees an SA (on a table swap, never per packet).

use super::sa::{SaDirection, SaKey, AAD_LEN, ICV_LEN, NONCE_LEN};

/// One SA's AES-GCM session in one direction.
pub trait Cipher: Send {
    /// Encrypts `data` in place and writes the ICV. `false` if the device failed.
    fn seal(
        &mut self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8; AAD_LEN],
        data: &mut [u8],
        icv: &mut [u8; ICV_LEN],
    ) -> bool;

    /// Verifies `icv` over `aad` and `data`, then decrypts `data` in place. `false` if the ICV
    /// did not verify (or the device failed); `data` is then unspecified.
    fn open(
        &mut self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8; AAD_LEN],
        data: &mut [u8],
        icv: &[u8; ICV_LEN],
    ) -> bool;
}

/// Makes sessions.
pub trait CipherFactory: Send {
    /// A session for `key` in `direction`, or why not (a message without key material).
    fn session(&mut self, key: &SaKey, direction: SaDirection) -> Result<Box<dyn Cipher>, String>;
}
