//! Security associations as the packet path sees them: configured by the control side, shared
//! by every worker, immutable except for what must be shared (the outbound sequence number and
//! the per-worker counters in [`SaShared`]).
//!
//! An SA's identity across table swaps is its [`SaShared`]: the control side hands out one per
//! (tunnel, direction, SPI, key) and keeps it while a reload leaves that SA unchanged, so the
//! outbound sequence number continues (a restart from 1 under the same key would repeat IVs)
//! and the counters keep counting. Workers compare [`Arc::ptr_eq`] to know whether the cipher
//! session and replay window they hold for a slot still belong to it.

use std::fmt;
use std::sync::Arc;

use super::iv::IvPrefix;
use super::seq::OutboundSeq;
use crate::route::TunnelId;
use crate::stats::Counter;

/// AES-256 key length.
pub const KEY_LEN: usize = 32;
/// The salt that RFC 4106 appends to the key in the keying material.
pub const SALT_LEN: usize = 4;
/// The ICV length (RFC 4106 allows 8, 12 or 16; Conduit uses 16).
pub const ICV_LEN: usize = 16;
/// Salt ‖ explicit IV.
pub const NONCE_LEN: usize = 12;
/// SPI ‖ sequence number (no extended sequence numbers).
pub const AAD_LEN: usize = 8;
/// Inbound SAs per tunnel: room for a make-before-break rekey.
pub const MAX_INBOUND: usize = 4;

/// An SA's keying material: the AES-256 key and the RFC 4106 salt. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SaKey {
    pub key: [u8; KEY_LEN],
    pub salt: [u8; SALT_LEN],
}

impl fmt::Debug for SaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SaKey(<redacted>)")
    }
}

/// Which way an SA carries traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaDirection {
    /// We encrypt with it.
    Outbound,
    /// We verify and decrypt with it.
    Inbound,
}

impl SaDirection {
    /// `outbound` / `inbound`, as in metrics labels and telemetry.
    pub const fn as_str(self) -> &'static str {
        match self {
            SaDirection::Outbound => "outbound",
            SaDirection::Inbound => "inbound",
        }
    }
}

/// Per-worker counters of one SA, in the order of [`SaCounter::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaCounter {
    /// Packets encrypted (outbound) or authenticated and decrypted (inbound).
    Packets,
    /// Their ESP payload bytes (inner packets, before padding).
    Bytes,
    /// Inbound packets whose ICV did not verify.
    AuthFailures,
    /// Inbound packets refused by the anti-replay window.
    Replays,
    /// The highest sequence number sent (outbound) or authenticated (inbound) on this worker.
    LastSeq,
}

impl SaCounter {
    pub const ALL: [SaCounter; 5] = [
        SaCounter::Packets,
        SaCounter::Bytes,
        SaCounter::AuthFailures,
        SaCounter::Replays,
        SaCounter::LastSeq,
    ];

    /// snake_case name for telemetry.
    pub const fn as_str(self) -> &'static str {
        match self {
            SaCounter::Packets => "packets",
            SaCounter::Bytes => "bytes",
            SaCounter::AuthFailures => "auth_failures",
            SaCounter::Replays => "replays",
            SaCounter::LastSeq => "last_seq",
        }
    }
}

/// One worker's counters for one SA, on a cache line of its own.
#[derive(Default)]
#[repr(align(128))]
struct SaCounterBlock([Counter; SaCounter::ALL.len()]);

/// What the workers share about one SA: the outbound sequence numbers (unused on an inbound
/// SA) and a block of single-writer counters per worker.
pub struct SaShared {
    seq: OutboundSeq,
    counters: Box<[SaCounterBlock]>,
}

impl fmt::Debug for SaShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaShared")
            .field("last_seq", &self.seq.last())
            .field("packets", &self.total(SaCounter::Packets))
            .finish_non_exhaustive()
    }
}

impl SaShared {
    /// Counters for `writers` workers (worker indices `0..writers`; the control thread that
    /// sends probes is one more writer, so count it).
    pub fn new(writers: usize) -> Arc<Self> {
        Arc::new(SaShared {
            seq: OutboundSeq::new(),
            counters: (0..writers.max(1))
                .map(|_| SaCounterBlock::default())
                .collect(),
        })
    }

    /// The outbound sequence numbers.
    #[inline]
    pub fn seq(&self) -> &OutboundSeq {
        &self.seq
    }

    /// Adds `n` to `counter` of `writer` (that writer's thread only; an index out of range is
    /// ignored).
    #[inline(always)]
    pub fn add(&self, writer: usize, counter: SaCounter, n: u64) {
        if let Some(b) = self.counters.get(writer) {
            b.0[counter as usize].add(n);
        }
    }

    /// Raises `LastSeq` of `writer` to `seq` (that writer's thread only).
    #[inline(always)]
    pub fn see_seq(&self, writer: usize, seq: u32) {
        if let Some(b) = self.counters.get(writer) {
            let c = &b.0[SaCounter::LastSeq as usize];
            let seq = u64::from(seq);
            if seq > c.get() {
                c.add(seq - c.get());
            }
        }
    }

    /// `counter` over every writer: the sum, or the maximum for `LastSeq`.
    pub fn total(&self, counter: SaCounter) -> u64 {
        let values = self.counters.iter().map(|b| b.0[counter as usize].get());
        match counter {
            SaCounter::LastSeq => values.max().unwrap_or(0),
            _ => values.fold(0, u64::wrapping_add),
        }
    }
}

/// The SA a tunnel encrypts with. Equal when the SPI and key are and the shared state is the
/// same object.
#[derive(Debug, Clone)]
pub struct OutboundSa {
    pub spi: u32,
    pub key: SaKey,
    pub shared: Arc<SaShared>,
}

/// An SA a tunnel accepts. Equal as [`OutboundSa`] is.
#[derive(Debug, Clone)]
pub struct InboundSa {
    pub spi: u32,
    pub key: SaKey,
    /// Anti-replay window in sequence numbers: 0 (off) or
    /// [`MIN_WINDOW`](super::replay::MIN_WINDOW)..=[`MAX_WINDOW`](super::replay::MAX_WINDOW).
    pub replay_window: u32,
    pub shared: Arc<SaShared>,
}

impl PartialEq for OutboundSa {
    fn eq(&self, o: &Self) -> bool {
        self.spi == o.spi && self.key == o.key && Arc::ptr_eq(&self.shared, &o.shared)
    }
}
impl Eq for OutboundSa {}

impl PartialEq for InboundSa {
    fn eq(&self, o: &Self) -> bool {
        self.spi == o.spi
            && self.key == o.key
            && self.replay_window == o.replay_window
            && Arc::ptr_eq(&self.shared, &o.shared)
    }
}
impl Eq for InboundSa {}

/// The SAs of one IPsec tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelSas {
    /// `None`: the tunnel receives but does not send (packets routed to it drop `EspNoSa`).
    pub outbound: Option<OutboundSa>,
    /// At most [`MAX_INBOUND`], distinct SPIs.
    pub inbound: Vec<InboundSa>,
    /// ESP in UDP (RFC 3948, port 4500) both ways.
    pub nat_t: bool,
}

/// IPsec as the packet path needs it: what makes this appliance's IVs its own, and the SAs of
/// every IPsec tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpsecConfig {
    pub iv_prefix: IvPrefix,
    /// By tunnel id; every IPsec tunnel of the context has an entry (possibly without SAs).
    pub tunnels: Vec<(TunnelId, TunnelSas)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_never_printed() {
        let k = SaKey {
            key: [0x41; KEY_LEN],
            salt: [0x42; SALT_LEN],
        };
        let s = format!(
            "{k:?} {:?}",
            OutboundSa {
                spi: 1,
                key: k.clone(),
                shared: SaShared::new(1)
            }
        );
        assert!(
            !s.contains("65") && !s.contains("0x41") && !s.contains("AAAA"),
            "{s}"
        );
        assert!(s.contains("redacted"));
    }

    #[test]
    fn counters_sum_per_writer_and_last_seq_is_the_maximum() {
        let s = SaShared::new(3);
        s.add(0, SaCounter::Packets, 2);
        s.add(2, SaCounter::Packets, 5);
        s.add(9, SaCounter::Packets, 100);
        s.see_seq(0, 7);
        s.see_seq(1, 12);
        s.see_seq(1, 3);
        assert_eq!(s.total(SaCounter::Packets), 7);
        assert_eq!(s.total(SaCounter::LastSeq), 12);
    }
}
