//! A bounded packet trace: an operator arms it for the next N packets of a worker, the worker
//! records each one's flow and verdict, the operator reads the records (`conduit ctl trace`,
//! docs/operations.md).
//!
//! One [`TraceBuffer`] per worker, shared with the telemetry thread. Only its worker writes
//! records; the operator arms and reads. Everything is atomics, so recording takes no lock and
//! no allocation. While the trace is off the worker pays one relaxed load and one branch per
//! burst ([`TraceBuffer::active`]): it then runs the untraced loop over the burst.
//!
//! The state is one word, `target << 32 | written`: arming swaps in `(n, 0)`; the worker fills
//! slot `written` and then moves the word from `(target, written)` to `(target, written + 1)`
//! with a compare-and-swap (release), so that a reader that sees `written` (acquire) sees the
//! slots below it complete, and a re-arm in between wins over the stale record.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{Control, DropReason, Verdict};
use crate::route::TunnelId;

/// Records per worker and arming.
pub const TRACE_CAPACITY: usize = 64;

/// A packet's flow as it arrived (zeros where the frame is not IPv4, or not TCP/UDP for ports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceFlow {
    pub rx_port: u16,
    pub src: u32,
    pub dst: u32,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

impl TraceFlow {
    /// The flow of an Ethernet frame received on `rx_port` (untagged IPv4; else addresses zero).
    pub fn of_frame(rx_port: u16, frame: &[u8]) -> TraceFlow {
        let mut f = TraceFlow {
            rx_port,
            ..TraceFlow::default()
        };
        let Some(ip) = frame
            .get(14..)
            .filter(|_| frame.get(12..14) == Some(&[8, 0]))
        else {
            return f;
        };
        let (Some(header), Some(&ver_ihl)) = (ip.get(..20), ip.first()) else {
            return f;
        };
        let word = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        f.src = word(12);
        f.dst = word(16);
        f.protocol = header[9];
        let ihl = usize::from(ver_ihl & 0xf) * 4;
        let fragment = u16::from_be_bytes([header[6], header[7]]) & 0x1fff != 0;
        if matches!(f.protocol, 6 | 17) && !fragment {
            if let Some(p) = ip.get(ihl..ihl + 4) {
                f.src_port = u16::from_be_bytes([p[0], p[1]]);
                f.dst_port = u16::from_be_bytes([p[2], p[3]]);
            }
        }
        f
    }
}

/// What the worker did with a traced packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceVerdict {
    /// Sent on `port`, into `tunnel` (`None`: plain).
    Forward {
        port: u16,
        tunnel: Option<TunnelId>,
    },
    /// An ARP or ICMP echo reply sent on `port`.
    Reply {
        port: u16,
    },
    /// Dropped for `reason`, with an ICMP error sent on `port`.
    IcmpError {
        reason: DropReason,
        port: u16,
    },
    /// To the control thread (a probe reply or an ARP reply).
    ToControl,
    /// Fragmented into `tunnel`.
    Fragmented {
        tunnel: TunnelId,
    },
    /// An outer fragment, held for reassembly.
    Reassemble,
    Drop(DropReason),
}

impl From<Verdict> for TraceVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Forward { port, tunnel } => TraceVerdict::Forward { port, tunnel },
            Verdict::Reply { port, .. } => TraceVerdict::Reply { port },
            Verdict::IcmpError { reason, port, .. } => TraceVerdict::IcmpError { reason, port },
            Verdict::ToControl(Control::Probe(_) | Control::Arp) => TraceVerdict::ToControl,
            Verdict::NeedsFragmentation { tunnel, .. } => TraceVerdict::Fragmented { tunnel },
            Verdict::Reassemble => TraceVerdict::Reassemble,
            Verdict::Drop(r) => TraceVerdict::Drop(r),
        }
    }
}

/// One recorded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRecord {
    pub flow: TraceFlow,
    pub verdict: TraceVerdict,
}

const NO_TUNNEL: u32 = u32::MAX;

impl TraceRecord {
    fn encode(&self) -> [u64; 3] {
        let f = &self.flow;
        let (kind, port, value): (u64, u16, u32) = match self.verdict {
            TraceVerdict::Forward { port, tunnel } => (0, port, tunnel.map_or(NO_TUNNEL, |t| t.0)),
            TraceVerdict::Reply { port } => (1, port, 0),
            TraceVerdict::IcmpError { reason, port } => (2, port, reason.index() as u32),
            TraceVerdict::ToControl => (3, 0, 0),
            TraceVerdict::Fragmented { tunnel } => (4, 0, tunnel.0),
            TraceVerdict::Reassemble => (5, 0, 0),
            TraceVerdict::Drop(reason) => (6, 0, reason.index() as u32),
        };
        [
            u64::from(f.src) << 32 | u64::from(f.dst),
            u64::from(f.rx_port)
                | u64::from(f.protocol) << 16
                | u64::from(f.src_port) << 24
                | u64::from(f.dst_port) << 40,
            kind | u64::from(port) << 8 | u64::from(value) << 24,
        ]
    }

    fn decode(w: [u64; 3]) -> Option<TraceRecord> {
        let flow = TraceFlow {
            src: (w[0] >> 32) as u32,
            dst: w[0] as u32,
            rx_port: w[1] as u16,
            protocol: (w[1] >> 16) as u8,
            src_port: (w[1] >> 24) as u16,
            dst_port: (w[1] >> 40) as u16,
        };
        let port = (w[2] >> 8) as u16;
        let value = (w[2] >> 24) as u32;
        let reason = || DropReason::from_index(value as usize);
        let verdict = match w[2] & 0xff {
            0 => TraceVerdict::Forward {
                port,
                tunnel: (value != NO_TUNNEL).then_some(TunnelId(value)),
            },
            1 => TraceVerdict::Reply { port },
            2 => TraceVerdict::IcmpError {
                reason: reason()?,
                port,
            },
            3 => TraceVerdict::ToControl,
            4 => TraceVerdict::Fragmented {
                tunnel: TunnelId(value),
            },
            5 => TraceVerdict::Reassemble,
            6 => TraceVerdict::Drop(reason()?),
            _ => return None,
        };
        Some(TraceRecord { flow, verdict })
    }
}

/// One worker's trace (see the module docs).
#[derive(Debug)]
pub struct TraceBuffer {
    /// `target << 32 | written`.
    state: AtomicU64,
    /// `1 << 32 | address`: only packets from or to the address are recorded; 0: every packet.
    host: AtomicU64,
    slots: [[AtomicU64; 3]; TRACE_CAPACITY],
}

impl Default for TraceBuffer {
    fn default() -> Self {
        TraceBuffer {
            state: AtomicU64::new(0),
            host: AtomicU64::new(0),
            slots: core::array::from_fn(|_| Default::default()),
        }
    }
}

impl TraceBuffer {
    /// Records the next `n` packets (at most [`TRACE_CAPACITY`]) from or to `host` (host
    /// order; `None`: every packet), forgetting earlier records. Returns the number armed.
    pub fn arm(&self, n: usize, host: Option<u32>) -> usize {
        let n = n.min(TRACE_CAPACITY);
        self.host.store(
            host.map_or(0, |h| 1 << 32 | u64::from(h)),
            Ordering::Relaxed,
        );
        self.state.store((n as u64) << 32, Ordering::Release);
        n
    }

    /// Whether packets are to be recorded: once per burst on the worker.
    #[inline(always)]
    pub fn active(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        (s as u32) < (s >> 32) as u32
    }

    /// Records one packet if the trace still wants one (worker only).
    pub fn record(&self, r: &TraceRecord) {
        let s = self.state.load(Ordering::Acquire);
        let (target, written) = ((s >> 32) as u32, s as u32);
        if written >= target {
            return;
        }
        let host = self.host.load(Ordering::Relaxed);
        let wanted = |a: u32| host == 1 << 32 | u64::from(a);
        if host != 0 && !wanted(r.flow.src) && !wanted(r.flow.dst) {
            return;
        }
        for (slot, word) in self.slots[written as usize].iter().zip(r.encode()) {
            slot.store(word, Ordering::Relaxed);
        }
        // Fails only if the trace was re-armed meanwhile: the record belongs to the old one.
        let _ = self
            .state
            .compare_exchange(s, s + 1, Ordering::Release, Ordering::Relaxed);
    }

    /// Packets armed for, and the records so far.
    pub fn read(&self) -> (usize, Vec<TraceRecord>) {
        let s = self.state.load(Ordering::Acquire);
        let (target, written) = ((s >> 32) as usize, s as u32 as usize);
        let records = self.slots[..written.min(TRACE_CAPACITY)]
            .iter()
            .filter_map(|slot| {
                TraceRecord::decode([0, 1, 2].map(|i| slot[i].load(Ordering::Relaxed)))
            })
            .collect();
        (target, records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u32, verdict: TraceVerdict) -> TraceRecord {
        TraceRecord {
            flow: TraceFlow {
                rx_port: 1,
                src: 0x0a00_0000 + i,
                dst: 0xac10_0000 + i,
                protocol: 17,
                src_port: 1000 + i as u16,
                dst_port: 53,
            },
            verdict,
        }
    }

    #[test]
    fn records_the_next_n_only_and_round_trips_every_verdict() {
        let t = TraceBuffer::default();
        assert!(!t.active());
        t.record(&record(0, TraceVerdict::ToControl));
        assert_eq!(t.read(), (0, vec![]), "nothing while off");
        assert_eq!(t.arm(1000, None), TRACE_CAPACITY, "bounded");
        assert_eq!(t.arm(7, None), 7);
        let verdicts = [
            TraceVerdict::Forward {
                port: 2,
                tunnel: Some(TunnelId(1023)),
            },
            TraceVerdict::Forward {
                port: 0,
                tunnel: None,
            },
            TraceVerdict::Reply { port: 3 },
            TraceVerdict::IcmpError {
                reason: DropReason::TtlExceeded,
                port: 1,
            },
            TraceVerdict::ToControl,
            TraceVerdict::Fragmented {
                tunnel: TunnelId(5),
            },
            TraceVerdict::Reassemble,
            TraceVerdict::Drop(DropReason::NoRoute),
        ];
        let recs: Vec<TraceRecord> = (0..8).map(|i| record(i, verdicts[i as usize])).collect();
        for r in &recs {
            assert_eq!(t.active(), r != &recs[7]);
            t.record(r);
        }
        assert_eq!(t.read(), (7, recs[..7].to_vec()));
        // Re-arming starts afresh.
        t.arm(1, None);
        assert!(t.active());
        t.record(&recs[7]);
        assert_eq!(t.read(), (1, vec![recs[7]]));
        assert!(!t.active());
        // With a host: only its packets, from or to it.
        t.arm(2, Some(recs[3].flow.dst));
        for r in &recs {
            t.record(r);
        }
        assert_eq!(t.read(), (2, vec![recs[3]]));
        t.arm(2, Some(recs[5].flow.src));
        t.record(&recs[4]);
        t.record(&recs[5]);
        assert_eq!(t.read(), (2, vec![recs[5]]));
    }

    #[test]
    fn flows_of_frames() {
        let mut frame = vec![0u8; 14];
        frame[12..14].copy_from_slice(&[8, 0]);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[172, 16, 0, 2]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&[0x03, 0xe8, 0, 53, 0, 8, 0, 0]);
        let f = TraceFlow::of_frame(3, &frame);
        assert_eq!(
            f,
            TraceFlow {
                rx_port: 3,
                src: 0x0a00_0001,
                dst: 0xac10_0002,
                protocol: 17,
                src_port: 1000,
                dst_port: 53
            }
        );
        // A later fragment has no ports; ARP and short frames have no addresses.
        frame[14 + 6] = 0x00;
        frame[14 + 7] = 0x10;
        assert_eq!(TraceFlow::of_frame(3, &frame).src_port, 0);
        assert_eq!(TraceFlow::of_frame(0, &frame[..20]).src, 0);
        frame[12..14].copy_from_slice(&[8, 6]);
        assert_eq!(TraceFlow::of_frame(0, &frame).dst, 0);
    }
}
