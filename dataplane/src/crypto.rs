//! Symmetric crypto through DPDK's cryptodev: AES-GCM sessions for ESP (RFC 4106), run with
//! the synchronous CPU-crypto call where the device offers it.
//!
//! Conduit never implements a cipher: a [`CryptoDev`] is a cryptodev PMD (`crypto_aesni_gcm`,
//! `crypto_aesni_mb`, `crypto_openssl`, a hardware device), an [`AeadSession`] is that device's
//! session for one key and direction, and [`AeadSession::process`] hands a burst of
//! (IV, AAD, data, ICV) tuples to `rte_cryptodev_sym_cpu_crypto_process`, which encrypts and
//! writes the ICV, or verifies the ICV and decrypts, in place, on the calling core. With the
//! software PMDs that is the same GCM code the lookaside path (enqueue/dequeue) runs, without the
//! op ring around it.

use std::ffi::{c_void, CString};
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys as sys;

use crate::eal::Eal;
use crate::error::{DpdkError, Result};

/// AES-GCM's nonce: the 4-byte salt of the SA followed by the 8-byte explicit IV (RFC 4106 §4).
pub const GCM_NONCE_LEN: usize = 12;
/// The ICV length ESP uses with AES-GCM-256 here (RFC 4106 allows 8, 12 or 16).
pub const GCM_ICV_LEN: usize = 16;
/// AES-256.
pub const GCM_KEY_LEN: usize = 32;
/// Operations per [`AeadSession::process`] call (one receive burst).
pub const MAX_CRYPTO_BURST: usize = 64;

/// A started cryptodev.
#[derive(Debug)]
pub struct CryptoDev {
    id: u8,
    name: String,
    cpu_crypto: bool,
    sessions: NonNull<sys::rte_mempool>,
}

// SAFETY: the device id and the session pool are process-wide DPDK objects; the pool is a
// thread-safe mempool, and the device is configured only through `&mut self`/construction.
unsafe impl Send for CryptoDev {}
// SAFETY: as above: shared access only reads the id and allocates from the thread-safe pool.
unsafe impl Sync for CryptoDev {}

/// Encrypt (outbound) or verify-and-decrypt (inbound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

impl CryptoDev {
    /// Opens cryptodev `name`, creating it as a vdev (`crypto_aesni_gcm0`, ...) if EAL has not
    /// (no `--vdev` needed), with `queue_pairs` queue pairs and room for `max_sessions`
    /// sessions.
    pub fn open(_eal: &Eal, name: &str, queue_pairs: u16, max_sessions: u32) -> Result<Self> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::InvalidArgument(format!("cryptodev name {name:?}")))?;
        // SAFETY: EAL is initialised; cname is a valid C string.
        let mut id = unsafe { sys::rte_cryptodev_get_dev_id(cname.as_ptr()) };
        if id < 0 {
            // SAFETY: as above; rte_dev_probe parses the devargs string and creates the vdev.
            let ret = unsafe { sys::rte_dev_probe(cname.as_ptr()) };
            if ret < 0 {
                return Err(DpdkError::InvalidArgument(format!(
                    "cannot create cryptodev {name:?}: {} (is its PMD installed? crypto_aesni_gcm \
                     and crypto_aesni_mb come with Debian's librte-crypto-ipsec-mb23)",
                    crate::error::strerror(-ret)
                )));
            }
            // SAFETY: as above.
            id = unsafe { sys::rte_cryptodev_get_dev_id(cname.as_ptr()) };
        }
        let id = u8::try_from(id).map_err(|_| {
            DpdkError::InvalidArgument(format!(
                "no cryptodev {name:?} (is its PMD installed? crypto_aesni_gcm and crypto_aesni_mb \
                 come with Debian's librte-crypto-ipsec-mb23)"
            ))
        })?;
        let mut info = sys::rte_cryptodev_info::default();
        // SAFETY: id names a cryptodev; info is a valid out-pointer.
        unsafe { sys::rte_cryptodev_info_get(id, &mut info) };
        let cpu_crypto = info.feature_flags & u64::from(sys::RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO) != 0;
        // SAFETY: id names a cryptodev.
        let socket = unsafe { sys::rte_cryptodev_socket_id(id) };
        // SAFETY: as above.
        let session_size = unsafe { sys::rte_cryptodev_sym_get_private_session_size(id) };
        let pool_name = CString::new(format!("csess_{id}")).expect("no NUL");
        // SAFETY: pool_name is a valid C string; sizes come from the device.
        let sessions = unsafe {
            sys::rte_cryptodev_sym_session_pool_create(
                pool_name.as_ptr(),
                max_sessions.max(2),
                session_size,
                0,
                0,
                socket,
            )
        };
        let sessions = NonNull::new(sessions)
            .ok_or_else(|| DpdkError::from_rte_errno("rte_cryptodev_sym_session_pool_create"))?;
        let mut dev = CryptoDev {
            id,
            name: name.to_string(),
            cpu_crypto,
            sessions,
        };
        dev.configure(queue_pairs.max(1), socket)?;
        Ok(dev)
    }

    fn configure(&mut self, queue_pairs: u16, socket: i32) -> Result<()> {
        let mut conf = sys::rte_cryptodev_config {
            socket_id: socket,
            nb_queue_pairs: queue_pairs,
            ..Default::default()
        };
        // SAFETY: the device is stopped; conf is a valid configuration.
        crate::error::check("rte_cryptodev_configure", unsafe {
            sys::rte_cryptodev_configure(self.id, &mut conf)
        })?;
        let qp = sys::rte_cryptodev_qp_conf {
            nb_descriptors: 2048,
            mp_session: self.sessions.as_ptr(),
        };
        for q in 0..queue_pairs {
            // SAFETY: q < nb_queue_pairs of the configuration above; qp outlives the call.
            crate::error::check("rte_cryptodev_queue_pair_setup", unsafe {
                sys::rte_cryptodev_queue_pair_setup(self.id, q, &qp, socket)
            })?;
        }
        // SAFETY: configured above.
        crate::error::check("rte_cryptodev_start", unsafe {
            sys::rte_cryptodev_start(self.id)
        })?;
        Ok(())
    }

    /// The device's name as opened.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the device runs operations synchronously on the calling core
    /// (`rte_cryptodev_sym_cpu_crypto_process`).
    pub fn supports_cpu_crypto(&self) -> bool {
        self.cpu_crypto
    }

    /// An AES-256-GCM session for `key` in `direction`, with an `aad_len`-byte AAD (8 for ESP,
    /// 12 with extended sequence numbers) and a 16-byte ICV.
    pub fn aes_gcm_session(
        self: &Arc<Self>,
        key: &[u8; GCM_KEY_LEN],
        direction: Direction,
        aad_len: u16,
    ) -> Result<AeadSession> {
        if !self.cpu_crypto {
            return Err(DpdkError::InvalidArgument(format!(
                "cryptodev {} has no CPU crypto (use crypto_aesni_gcm or crypto_aesni_mb)",
                self.name
            )));
        }
        let mut xform = sys::rte_crypto_sym_xform {
            type_: sys::RTE_CRYPTO_SYM_XFORM_AEAD,
            ..Default::default()
        };
        xform.__bindgen_anon_1.aead = sys::rte_crypto_aead_xform {
            op: match direction {
                Direction::Encrypt => sys::RTE_CRYPTO_AEAD_OP_ENCRYPT,
                Direction::Decrypt => sys::RTE_CRYPTO_AEAD_OP_DECRYPT,
            },
            algo: sys::RTE_CRYPTO_AEAD_AES_GCM,
            key: sys::rte_crypto_aead_xform__bindgen_ty_1 {
                data: key.as_ptr(),
                length: GCM_KEY_LEN as u16,
            },
            // CPU crypto takes the nonce by pointer per operation; only its length matters.
            iv: sys::rte_crypto_aead_xform__bindgen_ty_2 {
                offset: 0,
                length: GCM_NONCE_LEN as u16,
            },
            digest_length: GCM_ICV_LEN as u16,
            aad_length: aad_len,
        };
        // SAFETY: xform describes a single AEAD transform whose key outlives the call (the PMD
        // copies the expanded key into the session); the pool was made for this device.
        let sess = unsafe {
            sys::rte_cryptodev_sym_session_create(self.id, &mut xform, self.sessions.as_ptr())
        };
        let sess = NonNull::new(sess)
            .ok_or_else(|| DpdkError::from_rte_errno("rte_cryptodev_sym_session_create"))?;
        Ok(AeadSession {
            dev: Arc::clone(self),
            sess,
            aad_len,
        })
    }
}

impl Drop for CryptoDev {
    fn drop(&mut self) {
        // SAFETY: every session holds an Arc of the device, so none is left; it was started.
        unsafe {
            sys::rte_cryptodev_stop(self.id);
            sys::rte_cryptodev_close(self.id);
            sys::rte_mempool_free(self.sessions.as_ptr());
        }
    }
}

/// One AEAD operation of a burst: all slices point into the packet being processed.
pub struct AeadOp<'a> {
    /// Salt ‖ explicit IV.
    pub nonce: &'a [u8; GCM_NONCE_LEN],
    /// The AAD (ESP: SPI ‖ sequence number), exactly the session's `aad_len` bytes.
    pub aad: &'a [u8],
    /// Encrypted or decrypted in place.
    pub data: &'a mut [u8],
    /// Written on encrypt, verified on decrypt.
    pub icv: &'a mut [u8; GCM_ICV_LEN],
}

/// A session: one key, one direction, on one device.
pub struct AeadSession {
    dev: Arc<CryptoDev>,
    sess: NonNull<c_void>,
    aad_len: u16,
}

// SAFETY: a session is an immutable key schedule once created; CPU crypto keeps the
// per-operation state on the caller's stack, so a session can move to another thread.
unsafe impl Send for AeadSession {}

impl AeadSession {
    /// Runs `ops` (at most [`MAX_CRYPTO_BURST`]) and stores each one's outcome in `ok`: `true`
    /// when it succeeded (decrypt: the ICV verified). A failed decrypt leaves its data
    /// unspecified; the caller drops that packet.
    pub fn process(&self, ops: &mut [AeadOp<'_>], ok: &mut [bool]) -> Result<()> {
        let n = ops.len();
        if n > MAX_CRYPTO_BURST || ok.len() < n {
            return Err(DpdkError::InvalidArgument(format!(
                "{n} crypto operations for {} results (at most {MAX_CRYPTO_BURST})",
                ok.len()
            )));
        }
        if let Some(op) = ops
            .iter()
            .find(|op| op.aad.len() != usize::from(self.aad_len))
        {
            return Err(DpdkError::InvalidArgument(format!(
                "AAD of {} bytes on a session for {}",
                op.aad.len(),
                self.aad_len
            )));
        }
        let mut vecs = [sys::rte_crypto_vec::default(); MAX_CRYPTO_BURST];
        let mut sgls = [sys::rte_crypto_sgl::default(); MAX_CRYPTO_BURST];
        let mut ivs = [sys::rte_crypto_va_iova_ptr::default(); MAX_CRYPTO_BURST];
        let mut aads = [sys::rte_crypto_va_iova_ptr::default(); MAX_CRYPTO_BURST];
        let mut digests = [sys::rte_crypto_va_iova_ptr::default(); MAX_CRYPTO_BURST];
        let mut status = [0i32; MAX_CRYPTO_BURST];
        for (i, op) in ops.iter_mut().enumerate() {
            vecs[i] = sys::rte_crypto_vec {
                base: op.data.as_mut_ptr().cast(),
                iova: 0,
                len: op.data.len() as u32,
                tot_len: op.data.len() as u32,
            };
            ivs[i].va = op.nonce.as_ptr() as *mut c_void;
            aads[i].va = op.aad.as_ptr() as *mut c_void;
            digests[i].va = op.icv.as_mut_ptr().cast();
        }
        for (i, sgl) in sgls.iter_mut().enumerate().take(n) {
            sgl.vec = &mut vecs[i];
            sgl.num = 1;
        }
        let mut vec = sys::rte_crypto_sym_vec {
            num: n as u32,
            src_sgl: sgls.as_mut_ptr(),
            dest_sgl: std::ptr::null_mut(),
            iv: ivs.as_mut_ptr(),
            digest: digests.as_mut_ptr(),
            status: status.as_mut_ptr(),
            ..Default::default()
        };
        vec.__bindgen_anon_1.aad = aads.as_mut_ptr();
        // The whole of each data slice is ciphered (and authenticated after the AAD).
        let ofs = sys::rte_crypto_sym_ofs { raw: 0 };
        // SAFETY: every pointer in vec refers to a live slice of ops (borrowed mutably for the
        // call) or to the local arrays above, sized for n operations; the session belongs to
        // this device and supports CPU crypto.
        unsafe {
            sys::rte_cryptodev_sym_cpu_crypto_process(
                self.dev.id,
                self.sess.as_ptr(),
                ofs,
                &mut vec,
            )
        };
        for (o, s) in ok.iter_mut().zip(&status[..n]) {
            *o = *s == 0;
        }
        Ok(())
    }
}

impl Drop for AeadSession {
    fn drop(&mut self) {
        // SAFETY: the session was created on this device and no operation is in flight (CPU
        // crypto is synchronous).
        unsafe { sys::rte_cryptodev_sym_session_free(self.dev.id, self.sess.as_ptr()) };
    }
}
