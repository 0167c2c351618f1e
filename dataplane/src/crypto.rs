//! Symmetric crypto through DPDK's cryptodev: AES-GCM sessions for ESP (RFC 4106), and the
//! [`Cipher`]/[`CipherFactory`] the packet path calls, over either of cryptodev's two paths.
//!
//! Conduit never implements a cipher: a [`CryptoDev`] is a cryptodev PMD (`crypto_aesni_gcm`,
//! `crypto_aesni_mb`, `crypto_openssl`, a hardware device), an [`AeadSession`] is that device's
//! session for one key and direction, and the operations run one of two ways:
//!
//! - **CPU crypto** ([`CryptoPath::CpuCrypto`]), where the PMD advertises
//!   `RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO` (the Intel IPsec-MB PMDs `crypto_aesni_gcm` and
//!   `crypto_aesni_mb`): [`AeadSession::process`] hands (IV, AAD, data, ICV) tuples to
//!   `rte_cryptodev_sym_cpu_crypto_process`, which encrypts and writes the ICV, or verifies the
//!   ICV and decrypts, in place, on the calling core. No op, no mbuf, no ring.
//! - **Lookaside** ([`CryptoPath::Lookaside`]), for every other PMD (`crypto_openssl`, hardware):
//!   the worker's own [`QueuePair`] carries one `rte_crypto_op` and one scratch mbuf, both
//!   allocated when the queue pair is claimed. Each operation copies the packet's bytes into the
//!   scratch mbuf, enqueues the op on the worker's queue pair, polls dequeue until the op is back
//!   (same core, same loop, no other thread) and copies the result out.
//!
//! [`DpdkCipherFactory::new`] picks CPU crypto when the device offers it: with the software
//! PMDs both paths run the same GCM code, and CPU crypto skips the op set-up, the two copies and
//! the queue round trip (see [`DpdkCipherFactory`] for measured costs).
//!
//! Every worker (and the control thread, which seals probes) needs a queue pair of its own:
//! open the device with `workers + 1` queue pairs and give each factory a different index, as
//! [`EspCipherFactories::open`] does for the appliance. A queue pair's enqueue/dequeue is not
//! thread-safe; the claim ([`CryptoDev::queue_pair`]) makes sure no two factories share one.

use std::cell::UnsafeCell;
use std::ffi::{c_void, CString};
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use conduit_packet::esp::cipher::{Cipher, CipherFactory};
use conduit_packet::esp::sa::{SaDirection, SaKey, AAD_LEN};
use dpdk_sys as sys;

use crate::eal::Eal;
use crate::error::{DpdkError, Result};
use crate::mempool::Mempool;

/// AES-GCM's nonce: the 4-byte salt of the SA followed by the 8-byte explicit IV (RFC 4106 §4).
pub const GCM_NONCE_LEN: usize = 12;
/// The ICV length ESP uses with AES-GCM-256 here (RFC 4106 allows 8, 12 or 16).
pub const GCM_ICV_LEN: usize = 16;
/// AES-256.
pub const GCM_KEY_LEN: usize = 32;
/// Operations per [`AeadSession::process`] call (one receive burst).
pub const MAX_CRYPTO_BURST: usize = 64;
/// The longest data one lookaside operation takes: the scratch mbuf's room. ESP payloads are
/// bounded by the MTU (jumbo frames included); a longer one fails its operation.
pub const MAX_LOOKASIDE_DATA: usize = 16 * 1024;
/// How long a lookaside operation may stay on the device before the worker gives up on it (the
/// packet is dropped; the op is collected by the queue pair's next operation). Software PMDs
/// finish within the dequeue call; this bounds a wedged hardware device.
const LOOKASIDE_TIMEOUT_MS: u64 = 100;

// The nonce travels in the op's private area, which `rte_crypto_op_pool_create` sizes.
const OP_PRIV_SIZE: u16 = 16;
const _: () = assert!(GCM_NONCE_LEN <= OP_PRIV_SIZE as usize);
const _: () = assert!(AAD_LEN <= sys::CONDUIT_CRYPTO_SCRATCH_ICV as usize);

/// A started cryptodev.
#[derive(Debug)]
pub struct CryptoDev {
    id: u8,
    name: String,
    cpu_crypto: bool,
    socket: i32,
    queue_pairs: u16,
    /// Which queue pairs a [`QueuePair`] holds (control path only).
    claimed: Mutex<Vec<bool>>,
    sessions: NonNull<sys::rte_mempool>,
}

// SAFETY: the device id and the session pool are process-wide DPDK objects; the pool is a
// thread-safe mempool, and the device is configured only during construction. Queue pairs are
// handed out one owner at a time through the mutex-guarded claim table.
unsafe impl Send for CryptoDev {}
// SAFETY: as above: shared access reads the id, allocates from the thread-safe pool and
// claims queue pairs under the mutex.
unsafe impl Sync for CryptoDev {}

/// Encrypt (outbound) or verify-and-decrypt (inbound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

/// How a device runs operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoPath {
    /// `rte_cryptodev_sym_cpu_crypto_process`: synchronous, on the calling core.
    CpuCrypto,
    /// Enqueue one op on the worker's queue pair and poll dequeue until it is back.
    Lookaside,
}

impl CryptoPath {
    /// `cpu_crypto` / `lookaside`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CryptoPath::CpuCrypto => "cpu_crypto",
            CryptoPath::Lookaside => "lookaside",
        }
    }
}

impl CryptoDev {
    /// Opens cryptodev `name`, creating it as a vdev (`crypto_aesni_gcm0`, ...) if EAL has not
    /// (no `--vdev` needed), with `queue_pairs` queue pairs and room for `max_sessions`
    /// sessions. `name` may carry vdev arguments after a comma; they are used only when the
    /// device is created here.
    pub fn open(_eal: &Eal, name: &str, queue_pairs: u16, max_sessions: u32) -> Result<Self> {
        let dev_name = name.split(',').next().unwrap_or(name);
        let cname = CString::new(dev_name)
            .map_err(|_| DpdkError::InvalidArgument(format!("cryptodev name {name:?}")))?;
        let devargs = CString::new(name)
            .map_err(|_| DpdkError::InvalidArgument(format!("cryptodev name {name:?}")))?;
        // SAFETY: EAL is initialised; cname is a valid C string.
        let mut id = unsafe { sys::rte_cryptodev_get_dev_id(cname.as_ptr()) };
        if id < 0 {
            // SAFETY: as above; rte_dev_probe parses the devargs string and creates the vdev.
            let ret = unsafe { sys::rte_dev_probe(devargs.as_ptr()) };
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
        let queue_pairs = queue_pairs.max(1);
        if u32::from(queue_pairs) > info.max_nb_queue_pairs {
            return Err(DpdkError::InvalidArgument(format!(
                "cryptodev {dev_name} has {} queue pairs, {queue_pairs} needed (one per worker \
                 and one for the control thread; a software vdev takes max_nb_queue_pairs=N)",
                info.max_nb_queue_pairs
            )));
        }
        let cpu_crypto = info.feature_flags & u64::from(sys::RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO) != 0;
        // SAFETY: id names a cryptodev.
        let socket = unsafe { sys::rte_cryptodev_socket_id(id) };
        // SAFETY: as above.
        let session_size = unsafe { sys::rte_cryptodev_sym_get_private_session_size(id) };
        let pool_name = CString::new(format!("csess_{id}")).expect("no NUL");
        // SAFETY: pool_name is a valid C string; sizes come from the device. No per-lcore
        // cache: sessions are made on the control path, and the in-use count stays exact.
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
            name: dev_name.to_string(),
            cpu_crypto,
            socket,
            queue_pairs,
            claimed: Mutex::new(vec![false; usize::from(queue_pairs)]),
            sessions,
        };
        dev.configure(queue_pairs, socket)?;
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

    /// The device's name as opened (without vdev arguments).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the device runs operations synchronously on the calling core
    /// (`rte_cryptodev_sym_cpu_crypto_process`).
    pub fn supports_cpu_crypto(&self) -> bool {
        self.cpu_crypto
    }

    /// The path operations take unless told otherwise: CPU crypto where the device has it.
    pub fn preferred_path(&self) -> CryptoPath {
        if self.cpu_crypto {
            CryptoPath::CpuCrypto
        } else {
            CryptoPath::Lookaside
        }
    }

    /// The number of queue pairs the device was configured with.
    pub fn queue_pairs(&self) -> u16 {
        self.queue_pairs
    }

    /// Sessions currently allocated from the device's session pool (made and not yet freed).
    pub fn sessions_in_use(&self) -> u32 {
        // SAFETY: the pool lives as long as self.
        unsafe { sys::rte_mempool_in_use_count(self.sessions.as_ptr()) }
    }

    /// An AES-256-GCM session for `key` in `direction`, with an `aad_len`-byte AAD (8 for ESP,
    /// 12 with extended sequence numbers) and a 16-byte ICV. It runs on either path:
    /// [`AeadSession::process`] (CPU crypto devices) or a [`QueuePair`] (any device).
    pub fn aes_gcm_session(
        self: &Arc<Self>,
        key: &[u8; GCM_KEY_LEN],
        direction: Direction,
        aad_len: u16,
    ) -> Result<AeadSession> {
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
            // Lookaside reads the nonce at this offset of the op; CPU crypto takes it by
            // pointer per operation and uses only the length.
            iv: sys::rte_crypto_aead_xform__bindgen_ty_2 {
                offset: sys::CONDUIT_CRYPTO_IV_OFFSET as u16,
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
            raw: Arc::new(RawSession {
                dev: Arc::clone(self),
                sess,
            }),
            aad_len,
            direction,
        })
    }

    /// Claims queue pair `index` for one worker (or the control thread), with what `path`
    /// needs: for [`CryptoPath::Lookaside`], one crypto op and one scratch mbuf, allocated
    /// here so that no operation allocates. Fails if the index is out of range or already
    /// claimed, or if `path` is CPU crypto on a device without it.
    pub fn queue_pair(self: &Arc<Self>, index: u16, path: CryptoPath) -> Result<QueuePair> {
        if path == CryptoPath::CpuCrypto && !self.cpu_crypto {
            return Err(DpdkError::InvalidArgument(format!(
                "cryptodev {} has no CPU crypto (use crypto_aesni_gcm or crypto_aesni_mb, or the \
                 lookaside path)",
                self.name
            )));
        }
        {
            let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
            match claimed.get_mut(usize::from(index)) {
                None => {
                    return Err(DpdkError::InvalidArgument(format!(
                        "queue pair {index} of cryptodev {} (it has {})",
                        self.name, self.queue_pairs
                    )))
                }
                Some(true) => {
                    return Err(DpdkError::InvalidArgument(format!(
                        "queue pair {index} of cryptodev {} is already in use",
                        self.name
                    )))
                }
                Some(c) => *c = true,
            }
        }
        let lookaside = match path {
            CryptoPath::CpuCrypto => None,
            CryptoPath::Lookaside => match Lookaside::new(self, index) {
                Ok(l) => Some(l),
                Err(e) => {
                    self.release(index);
                    return Err(e);
                }
            },
        };
        Ok(QueuePair {
            dev: Arc::clone(self),
            index,
            path,
            lookaside,
        })
    }

    fn release(&self, index: u16) {
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        claimed[usize::from(index)] = false;
    }
}

impl Drop for CryptoDev {
    fn drop(&mut self) {
        // SAFETY: every session and queue pair holds an Arc of the device, so none is left; it
        // was started.
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
    raw: Arc<RawSession>,
    aad_len: u16,
    direction: Direction,
}

/// The device's session object, freed when the last holder lets go: its [`AeadSession`], or
/// a queue pair whose lookaside operation on it has not come back yet.
struct RawSession {
    dev: Arc<CryptoDev>,
    sess: NonNull<c_void>,
}

// SAFETY: a session is an immutable key schedule once created; CPU crypto keeps the
// per-operation state on the caller's stack, and lookaside only attaches the session pointer
// to the caller's op, so a session can move to and be shared between threads.
unsafe impl Send for RawSession {}
// SAFETY: as above.
unsafe impl Sync for RawSession {}

impl AeadSession {
    /// Encrypt or decrypt.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    fn no_cpu_crypto(&self) -> DpdkError {
        DpdkError::InvalidArgument(format!(
            "cryptodev {} has no CPU crypto (use crypto_aesni_gcm or crypto_aesni_mb, or a \
             queue pair)",
            self.dev.name
        ))
    }

    /// Runs `ops` (at most [`MAX_CRYPTO_BURST`]) with CPU crypto and stores each one's outcome
    /// in `ok`: `true` when it succeeded (decrypt: the ICV verified). A failed decrypt leaves
    /// its data unspecified; the caller drops that packet. Fails on a device without CPU crypto.
    pub fn process(&self, ops: &mut [AeadOp<'_>], ok: &mut [bool]) -> Result<()> {
        if !self.dev.cpu_crypto {
            return Err(self.no_cpu_crypto());
        }
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
        self.cpu_crypto_call(
            n as u32,
            sgls.as_mut_ptr(),
            ivs.as_mut_ptr(),
            aads.as_mut_ptr(),
            digests.as_mut_ptr(),
            status.as_mut_ptr(),
        );
        for (o, s) in ok.iter_mut().zip(&status[..n]) {
            *o = *s == 0;
        }
        Ok(())
    }

    /// One operation with CPU crypto, without the burst arrays of [`AeadSession::process`]
    /// (the packet path runs one packet at a time). `false` if it failed (decrypt: the ICV did
    /// not verify; the data is then unspecified), if the AAD is not the session's length or
    /// the device has no CPU crypto.
    #[inline]
    pub fn process_one(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        icv: &mut [u8; GCM_ICV_LEN],
    ) -> bool {
        if !self.dev.cpu_crypto || aad.len() != usize::from(self.aad_len) {
            return false;
        }
        let Ok(len) = u32::try_from(data.len()) else {
            return false;
        };
        let mut vec = sys::rte_crypto_vec {
            base: data.as_mut_ptr().cast(),
            iova: 0,
            len,
            tot_len: len,
        };
        let mut sgl = sys::rte_crypto_sgl {
            vec: &mut vec,
            num: 1,
        };
        let mut iv = sys::rte_crypto_va_iova_ptr {
            va: nonce.as_ptr() as *mut c_void,
            iova: 0,
        };
        let mut aad_ptr = sys::rte_crypto_va_iova_ptr {
            va: aad.as_ptr() as *mut c_void,
            iova: 0,
        };
        let mut digest = sys::rte_crypto_va_iova_ptr {
            va: icv.as_mut_ptr().cast(),
            iova: 0,
        };
        let mut status = -1i32;
        self.cpu_crypto_call(1, &mut sgl, &mut iv, &mut aad_ptr, &mut digest, &mut status);
        status == 0
    }

    /// `rte_cryptodev_sym_cpu_crypto_process` over `n` operations described by the arrays.
    #[inline]
    fn cpu_crypto_call(
        &self,
        n: u32,
        sgls: *mut sys::rte_crypto_sgl,
        ivs: *mut sys::rte_crypto_va_iova_ptr,
        aads: *mut sys::rte_crypto_va_iova_ptr,
        digests: *mut sys::rte_crypto_va_iova_ptr,
        status: *mut i32,
    ) {
        let mut vec = sys::rte_crypto_sym_vec {
            num: n,
            src_sgl: sgls,
            dest_sgl: std::ptr::null_mut(),
            iv: ivs,
            digest: digests,
            status,
            ..Default::default()
        };
        vec.__bindgen_anon_1.aad = aads;
        // The whole of each data slice is ciphered (and authenticated after the AAD).
        let ofs = sys::rte_crypto_sym_ofs { raw: 0 };
        // SAFETY: the callers pass arrays of `n` entries that point into slices they borrow
        // (mutably where written) for the call, or into their locals; the session belongs to
        // this device, which supports CPU crypto (checked by both callers).
        unsafe {
            sys::rte_cryptodev_sym_cpu_crypto_process(
                self.dev.id,
                self.raw.sess.as_ptr(),
                ofs,
                &mut vec,
            )
        };
    }
}

impl Drop for RawSession {
    fn drop(&mut self) {
        // SAFETY: the session was created on this device and no operation uses it: CPU crypto
        // is synchronous, and a lookaside operation that outlived its call holds a clone of
        // this Arc until its op is back (see `Lookaside::run`).
        unsafe { sys::rte_cryptodev_sym_session_free(self.dev.id, self.sess.as_ptr()) };
    }
}

/// One queue pair of a device, held by one worker: the only way to run lookaside operations,
/// and the proof, for CPU crypto, that the worker has a queue pair of its own. Released when
/// dropped.
pub struct QueuePair {
    dev: Arc<CryptoDev>,
    index: u16,
    path: CryptoPath,
    lookaside: Option<Lookaside>,
}

impl std::fmt::Debug for QueuePair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuePair")
            .field("device", &self.dev.name)
            .field("index", &self.index)
            .field("path", &self.path)
            .finish()
    }
}

impl QueuePair {
    /// The queue pair's index on its device.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The path this queue pair's operations take.
    pub fn path(&self) -> CryptoPath {
        self.path
    }

    /// The device.
    pub fn device(&self) -> &Arc<CryptoDev> {
        &self.dev
    }

    /// One operation of `session` (a session of this queue pair's device) on this queue pair's
    /// path: `true` if it succeeded (decrypt: the ICV verified; encrypt: `icv` written).
    /// `false` on failure, when the AAD is not the session's length, the session is another
    /// device's, or (lookaside) the data is longer than [`MAX_LOOKASIDE_DATA`].
    #[inline]
    pub fn run(
        &mut self,
        session: &AeadSession,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        icv: &mut [u8; GCM_ICV_LEN],
    ) -> bool {
        if !Arc::ptr_eq(&session.dev, &self.dev) {
            return false;
        }
        match &mut self.lookaside {
            None => session.process_one(nonce, aad, data, icv),
            Some(l) => l.run(session, nonce, aad, data, icv),
        }
    }
}

impl Drop for QueuePair {
    fn drop(&mut self) {
        // The op and the scratch mbuf go back to their pools first (Lookaside's drop), then
        // the index becomes free again.
        self.lookaside = None;
        self.dev.release(self.index);
    }
}

/// The per-queue-pair state of the lookaside path: one op and one scratch mbuf, from pools of
/// their own made when the queue pair is claimed.
struct Lookaside {
    dev_id: u8,
    qp: u16,
    op: NonNull<sys::rte_crypto_op>,
    scratch: NonNull<sys::rte_mbuf>,
    /// The op was enqueued and did not come back before the timeout: until it does, the op
    /// and scratch mbuf belong to the device, and the session it carries is kept alive here.
    in_flight: Option<Arc<RawSession>>,
    timeout_tsc: u64,
    ops: NonNull<sys::rte_mempool>,
    /// Dropped by hand, after the scratch mbuf went back to it (or never, see `drop`).
    mbufs: ManuallyDrop<Mempool>,
}

// SAFETY: the op, the scratch mbuf and the right to use the queue pair are owned by this value
// alone (the queue pair index was claimed exclusively); moving it moves that ownership.
unsafe impl Send for Lookaside {}

/// Objects in each of a lookaside queue pair's pools: it takes one op and one mbuf from them
/// for its whole life.
const LOOKASIDE_POOL_SIZE: u32 = 2;

impl Lookaside {
    fn new(dev: &CryptoDev, qp: u16) -> Result<Self> {
        let name = CString::new(format!("cop_{}_{qp}", dev.id)).expect("no NUL");
        // SAFETY: name is a valid C string; the private area holds the nonce.
        let ops = unsafe {
            sys::rte_crypto_op_pool_create(
                name.as_ptr(),
                sys::RTE_CRYPTO_OP_TYPE_SYMMETRIC,
                LOOKASIDE_POOL_SIZE,
                0,
                OP_PRIV_SIZE,
                dev.socket,
            )
        };
        let ops = NonNull::new(ops)
            .ok_or_else(|| DpdkError::from_rte_errno("rte_crypto_op_pool_create"))?;
        let free_ops = |e| {
            // SAFETY: the pool was created above and nothing was taken from it.
            unsafe { sys::rte_mempool_free(ops.as_ptr()) };
            e
        };
        let room = sys::CONDUIT_CRYPTO_SCRATCH_DATA as usize + MAX_LOOKASIDE_DATA;
        let mbufs = Mempool::new(
            &format!("cmb_{}_{qp}", dev.id),
            LOOKASIDE_POOL_SIZE,
            0,
            room as u16,
            dev.socket,
        )
        .map_err(free_ops)?;
        let scratch = mbufs
            .alloc()
            .ok_or_else(|| DpdkError::from_rte_errno("rte_pktmbuf_alloc"))
            .map_err(free_ops)?;
        // SAFETY: the pool is a symmetric op pool made above.
        let op =
            unsafe { sys::rte_crypto_op_alloc(ops.as_ptr(), sys::RTE_CRYPTO_OP_TYPE_SYMMETRIC) };
        let Some(op) = NonNull::new(op) else {
            drop(scratch);
            return Err(free_ops(DpdkError::from_rte_errno("rte_crypto_op_alloc")));
        };
        // SAFETY: EAL is initialised (a device exists).
        let hz = unsafe { sys::rte_get_tsc_hz() };
        Ok(Lookaside {
            dev_id: dev.id,
            qp,
            op,
            // SAFETY: into_raw hands over a valid mbuf, owned from now on by this value.
            scratch: unsafe { NonNull::new_unchecked(scratch.into_raw()) },
            in_flight: None,
            timeout_tsc: hz / 1000 * LOOKASIDE_TIMEOUT_MS,
            ops,
            mbufs: ManuallyDrop::new(mbufs),
        })
    }

    /// Dequeues from the queue pair; `true` if our op came back (it is the only one this
    /// queue pair ever carries).
    #[inline]
    fn dequeue(&mut self) -> bool {
        let mut out: *mut sys::rte_crypto_op = std::ptr::null_mut();
        // SAFETY: this value owns the queue pair; out has room for one op.
        let n = unsafe { sys::rte_cryptodev_dequeue_burst(self.dev_id, self.qp, &mut out, 1) };
        debug_assert!(n == 0 || out == self.op.as_ptr());
        n == 1
    }

    #[inline]
    fn run(
        &mut self,
        session: &AeadSession,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        icv: &mut [u8; GCM_ICV_LEN],
    ) -> bool {
        if self.in_flight.is_some() {
            // A previous operation timed out (its packet was dropped): its op must come back
            // before it is reused; then its session may go.
            if !self.dequeue() {
                return false;
            }
            self.in_flight = None;
        }
        if aad.len() != usize::from(session.aad_len)
            || aad.len() > sys::CONDUIT_CRYPTO_SCRATCH_ICV as usize
            || data.len() > MAX_LOOKASIDE_DATA
        {
            return false;
        }
        let op = self.op.as_ptr();
        let m = self.scratch.as_ptr();
        // SAFETY: op and m are owned by this value and not on the device (nothing in flight);
        // the session belongs to the queue pair's device (checked by QueuePair::run). The
        // scratch mbuf's room holds SCRATCH_DATA + MAX_LOOKASIDE_DATA bytes, the AAD fits
        // before SCRATCH_ICV (checked above) and the nonce fits the op's private
        // area (OP_PRIV_SIZE); no slice overlaps DPDK's memory.
        unsafe {
            sys::rte_crypto_op_attach_sym_session(op, session.raw.sess.as_ptr());
            sys::conduit_crypto_op_aead(op, m, data.len() as u32);
            std::ptr::copy_nonoverlapping(
                nonce.as_ptr(),
                sys::conduit_crypto_op_iv(op),
                GCM_NONCE_LEN,
            );
            let base = sys::conduit_pktmbuf_mtod(m);
            let aad_area = base.add(sys::CONDUIT_CRYPTO_SCRATCH_AAD as usize);
            std::ptr::copy_nonoverlapping(aad.as_ptr(), aad_area, aad.len());
            // Zero padding up to the ICV, for devices that read the AAD in 16-byte blocks.
            std::ptr::write_bytes(
                aad_area.add(aad.len()),
                0,
                sys::CONDUIT_CRYPTO_SCRATCH_ICV as usize - aad.len(),
            );
            std::ptr::copy_nonoverlapping(
                icv.as_ptr(),
                base.add(sys::CONDUIT_CRYPTO_SCRATCH_ICV as usize),
                GCM_ICV_LEN,
            );
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                base.add(sys::CONDUIT_CRYPTO_SCRATCH_DATA as usize),
                data.len(),
            );
        }
        let mut ops = [op];
        // SAFETY: this value owns the queue pair; the op is fully prepared above.
        let queued =
            unsafe { sys::rte_cryptodev_enqueue_burst(self.dev_id, self.qp, ops.as_mut_ptr(), 1) };
        if queued != 1 {
            return false;
        }
        let start = crate::eal::rdtsc();
        while !self.dequeue() {
            if crate::eal::rdtsc().wrapping_sub(start) > self.timeout_tsc {
                self.in_flight = Some(Arc::clone(&session.raw));
                return false;
            }
            std::hint::spin_loop();
        }
        // SAFETY: the op is back from the device; reading its status is a plain load.
        let status = unsafe { sys::conduit_crypto_op_status(op) };
        if u32::from(status) != sys::RTE_CRYPTO_OP_STATUS_SUCCESS {
            return false;
        }
        // SAFETY: the op is back, so the device no longer writes the scratch mbuf; the lengths
        // are those copied in above.
        unsafe {
            let base = sys::conduit_pktmbuf_mtod(m);
            std::ptr::copy_nonoverlapping(
                base.add(sys::CONDUIT_CRYPTO_SCRATCH_DATA as usize),
                data.as_mut_ptr(),
                data.len(),
            );
            if session.direction == Direction::Encrypt {
                std::ptr::copy_nonoverlapping(
                    base.add(sys::CONDUIT_CRYPTO_SCRATCH_ICV as usize),
                    icv.as_mut_ptr(),
                    GCM_ICV_LEN,
                );
            }
        }
        true
    }
}

impl Drop for Lookaside {
    fn drop(&mut self) {
        if self.in_flight.is_some() && !self.dequeue() {
            // The device still holds the op: returning it, its pools or its session would let
            // the device use freed memory. Leak them instead; this only happens with a device
            // that stopped completing operations.
            std::mem::forget(self.in_flight.take());
            log::error!(
                "cryptodev {} queue pair {}: an operation never completed; its op and scratch \
                 mbuf are leaked",
                self.dev_id,
                self.qp
            );
            return;
        }
        // SAFETY: the op and the mbuf are ours and not on the device; both came from the pools
        // freed here, which nothing else uses, and `mbufs` is not used after this.
        unsafe {
            sys::rte_crypto_op_free(self.op.as_ptr());
            sys::rte_pktmbuf_free(self.scratch.as_ptr());
            sys::rte_mempool_free(self.ops.as_ptr());
            ManuallyDrop::drop(&mut self.mbufs);
        }
    }
}

/// A queue pair shared by the ciphers one factory made (all on one worker).
struct SharedQueuePair {
    /// Set while one cipher runs an operation. The ciphers of a factory live on one worker,
    /// so this is never contended and nothing ever waits on it; it keeps the sharing sound if
    /// a caller did move them apart (the other operation then fails instead of racing).
    busy: AtomicBool,
    path: CryptoPath,
    index: u16,
    qp: UnsafeCell<QueuePair>,
}

// SAFETY: `qp` is only accessed by the thread that set `busy` (see `SharedQueuePair::run`),
// and a QueuePair may move between threads (its parts are Send).
unsafe impl Sync for SharedQueuePair {}
// SAFETY: as above.
unsafe impl Send for SharedQueuePair {}

impl SharedQueuePair {
    #[inline]
    fn run(
        &self,
        session: &AeadSession,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        icv: &mut [u8; GCM_ICV_LEN],
    ) -> bool {
        if self.busy.swap(true, Ordering::Acquire) {
            return false;
        }
        // SAFETY: `busy` was clear and is now set by this thread: no other reference to the
        // queue pair exists until it is cleared below.
        let ok = unsafe { &mut *self.qp.get() }.run(session, nonce, aad, data, icv);
        self.busy.store(false, Ordering::Release);
        ok
    }

    fn path(&self) -> CryptoPath {
        self.path
    }

    fn index(&self) -> u16 {
        self.index
    }
}

/// The [`CipherFactory`] of one worker (or of the control thread): AES-256-GCM sessions for
/// ESP (16-byte ICV, 8-byte AAD = SPI ‖ sequence number, 12-byte nonce = salt ‖ IV) on one
/// device, run on the worker's own queue pair.
///
/// Which path, and why: CPU crypto when the device offers it. It calls the PMD's GCM code
/// directly on the worker's core with pointers into the packet; lookaside adds a scratch copy
/// in and out (the packet path hands the cipher a byte slice, not an mbuf), the op set-up and
/// an enqueue/dequeue round trip. Lookaside is what devices without CPU crypto
/// (`crypto_openssl`, hardware) run.
///
/// `cargo run --release -p dataplane --example crypto_paths` measures the cycles per seal of
/// each path side by side; perf/README.md ("Which crypto path, and why") has the figures.
pub struct DpdkCipherFactory {
    dev: Arc<CryptoDev>,
    qp: Arc<SharedQueuePair>,
}

impl std::fmt::Debug for DpdkCipherFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkCipherFactory")
            .field("device", &self.dev.name)
            .field("queue_pair", &self.qp.index())
            .field("path", &self.qp.path())
            .finish()
    }
}

impl DpdkCipherFactory {
    /// A factory on `dev` that claims queue pair `queue_pair` and uses the device's preferred
    /// path ([`CryptoDev::preferred_path`]).
    pub fn new(dev: &Arc<CryptoDev>, queue_pair: u16) -> Result<Self> {
        Self::with_path(dev, queue_pair, dev.preferred_path())
    }

    /// As [`DpdkCipherFactory::new`], on `path` (lookaside works on every device; CPU crypto
    /// only where the device offers it).
    pub fn with_path(dev: &Arc<CryptoDev>, queue_pair: u16, path: CryptoPath) -> Result<Self> {
        let qp = dev.queue_pair(queue_pair, path)?;
        Ok(DpdkCipherFactory {
            dev: Arc::clone(dev),
            qp: Arc::new(SharedQueuePair {
                busy: AtomicBool::new(false),
                path: qp.path,
                index: qp.index,
                qp: UnsafeCell::new(qp),
            }),
        })
    }

    /// The path the sessions of this factory take.
    pub fn path(&self) -> CryptoPath {
        self.qp.path()
    }

    /// The queue pair this factory's sessions use.
    pub fn queue_pair(&self) -> u16 {
        self.qp.index()
    }

    /// The device.
    pub fn device(&self) -> &Arc<CryptoDev> {
        &self.dev
    }
}

impl CipherFactory for DpdkCipherFactory {
    fn session(&mut self, key: &SaKey, direction: SaDirection) -> Result<Box<dyn Cipher>, String> {
        let dir = match direction {
            SaDirection::Outbound => Direction::Encrypt,
            SaDirection::Inbound => Direction::Decrypt,
        };
        // The salt is not part of the session: the caller puts it at the head of each nonce.
        let session = self
            .dev
            .aes_gcm_session(&key.key, dir, AAD_LEN as u16)
            .map_err(|e| format!("cryptodev {}: {e}", self.dev.name))?;
        Ok(Box::new(DpdkCipher {
            session,
            qp: Arc::clone(&self.qp),
        }))
    }
}

/// One SA's session in one direction, on its worker's queue pair.
struct DpdkCipher {
    session: AeadSession,
    qp: Arc<SharedQueuePair>,
}

impl DpdkCipher {
    /// One operation, refused unless the session runs in `direction` (a cipher made for one
    /// direction never runs the other).
    #[inline]
    fn run(
        &self,
        direction: Direction,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8; AAD_LEN],
        data: &mut [u8],
        icv: &mut [u8; GCM_ICV_LEN],
    ) -> bool {
        self.session.direction == direction && self.qp.run(&self.session, nonce, aad, data, icv)
    }
}

impl Cipher for DpdkCipher {
    #[inline]
    fn seal(
        &mut self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8; AAD_LEN],
        data: &mut [u8],
        icv: &mut [u8; GCM_ICV_LEN],
    ) -> bool {
        self.run(Direction::Encrypt, nonce, aad, data, icv)
    }

    #[inline]
    fn open(
        &mut self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8; AAD_LEN],
        data: &mut [u8],
        icv: &[u8; GCM_ICV_LEN],
    ) -> bool {
        // Decryption only reads the ICV; the DPDK call takes it through a mutable pointer.
        let mut icv = *icv;
        self.run(Direction::Decrypt, nonce, aad, data, &mut icv)
    }
}

/// The cipher factories of an appliance: one per worker and one for the control thread, on the
/// configured crypto device (`ipsec.crypto_device`), each with its own queue pair.
pub struct EspCipherFactories {
    /// The device, opened (or created) with `workers + 1` queue pairs.
    pub device: Arc<CryptoDev>,
    /// Worker `i`'s factory (queue pair `i`): `EspRuntime::new(i, factory)`.
    pub workers: Vec<DpdkCipherFactory>,
    /// The control thread's factory (queue pair `workers`, writer index `workers`), for the
    /// probes it seals.
    pub control: DpdkCipherFactory,
}

impl std::fmt::Debug for EspCipherFactories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspCipherFactories")
            .field("device", &self.device.name)
            .field("path", &self.control.path())
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl EspCipherFactories {
    /// Opens cryptodev `crypto_device` by name: an existing device (a `--vdev` given to EAL,
    /// a probed hardware device), or else a software vdev created here under that name
    /// (`crypto_aesni_gcm`, `crypto_aesni_mb`, `crypto_openssl`, ...; extra vdev arguments may
    /// follow the name after a comma), with `workers + 1` queue pairs. Each factory takes the
    /// device's preferred path ([`CryptoDev::preferred_path`]).
    ///
    /// `max_sas` bounds the SAs configured at once (outbound and inbound); the session pool
    /// holds two sessions per SA per factory, so that a reload can make the sessions of new
    /// SAs while the old ones are still in use.
    ///
    /// Fails with a message naming the device when it cannot be created, has too few queue
    /// pairs, or cannot be configured.
    pub fn open(eal: &Eal, crypto_device: &str, workers: usize, max_sas: usize) -> Result<Self> {
        let queue_pairs = u16::try_from(workers + 1)
            .map_err(|_| DpdkError::InvalidArgument(format!("{workers} workers")))?;
        // A vdev created here gets enough queue pairs (software PMDs default to 8).
        let devargs = if crypto_device.contains(',') {
            crypto_device.to_string()
        } else {
            format!("{crypto_device},max_nb_queue_pairs={queue_pairs}")
        };
        let sessions = max_sas
            .saturating_mul(2)
            .saturating_mul(usize::from(queue_pairs));
        let sessions = u32::try_from(sessions).unwrap_or(u32::MAX);
        let device = Arc::new(CryptoDev::open(eal, &devargs, queue_pairs, sessions)?);
        let workers = (0..queue_pairs - 1)
            .map(|q| DpdkCipherFactory::new(&device, q))
            .collect::<Result<Vec<_>>>()?;
        let control = DpdkCipherFactory::new(&device, queue_pairs - 1)?;
        Ok(EspCipherFactories {
            device,
            workers,
            control,
        })
    }
}
