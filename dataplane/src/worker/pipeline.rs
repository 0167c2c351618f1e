//! The pipeline poll loop: receive a burst on each port, run every packet through
//! [`pipeline::process`](conduit_packet::pipeline::process), act on its verdict, transmit per port.
//!
//! Per packet it does no allocation, takes no lock, makes no syscall and logs nothing. The only
//! mbufs it allocates come from the pool, for fragments it must create (DF-clear packets bigger
//! than the tunnel MTU), for reassembled outer datagrams, and for a chained packet whose first
//! segment has no room for the rest (the pipeline reads one segment, so a chain is made one
//! before it runs; a single-segment packet pays one test of its segment count). Verdicts map to
//! actions:
//!
//! | verdict | action |
//! |---|---|
//! | `Forward`, `Reply` | queue on the port's TX burst (per-tunnel out counters) |
//! | `IcmpError` | count the drop reason, queue the ICMP error like a `Forward` |
//! | `NeedsFragmentation` | cut into new mbufs, GRE-encapsulate each, queue; free the original |
//! | `Reassemble` | feed the per-core reassembler; a completed datagram is processed again |
//! | `ToControl(Probe)` | what the echo carries and the tunnel it came through pushed to the control thread's lock-free [`ProbeQueue`]; freed |
//! | `ToControl(Arp)` | counted and freed (the gateway is resolved at start-up) |
//! | `Drop` | count by reason, free in bulk at the end of the burst |
//!
//! The forwarding context is read once per loop iteration (one burst per port) through the
//! worker's [`Reader`] of the control thread's publication, and the worker passes a quiescent
//! point at the end of each iteration, so a published table takes effect at the next iteration
//! and the worker never blocks on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::eal::rdtsc;
use crate::mbuf::{Burst, LinearizeError, Mbuf, MAX_BURST};
use crate::mempool::{Mempool, DEFAULT_DATA_ROOM};
use crate::port::FRAME_OVERHEAD;
use crate::port::{RxQueue, TxQueue};
use conduit_packet::esp::runtime::EspRuntime;
use conduit_packet::pipeline::trace::{TraceBuffer, TraceFlow, TraceRecord};
use conduit_packet::pipeline::{
    encapsulate, process, read_probe_echo, write_fragment, Context, Control, DropReason,
    FragmentPlan, Outcome, ProbeReply, Reassembler, ReassemblerConfig, Reassembly, ReassemblyStats,
    TokenBucket, Verdict, WorkerState,
};
use conduit_packet::publish::Reader;
use conduit_packet::route::TunnelId;
use conduit_packet::stats::{CoreCounters, Counter, CounterArray};
use conduit_packet::wire::ipv4;

/// Length of the Ethernet header the reassembler skips and a reassembled frame gets back.
const ETHERNET_HEADER: usize = 14;

/// Room for the largest IPv4 header (with options) in front of a reassembled datagram.
const MAX_IPV4_HEADER: usize = ipv4::MAX_HEADER_LEN;
/// The largest datagram payload a worker reassembles when its mbufs hold `data_room` bytes: with
/// its Ethernet and IPv4 headers it must fit the one mbuf it is copied into (1974 bytes for the
/// default 2048-byte room, 9142 for a 9000-byte port MTU's 9216).
pub fn max_datagram(data_room: u16) -> usize {
    usize::from(data_room).saturating_sub(ETHERNET_HEADER + MAX_IPV4_HEADER)
}

/// Data room granularity: several NICs (ixgbe, igb) size receive buffers in 1 KiB steps and
/// round the pool's room down, so a room that is not a multiple would lose up to 1023 bytes.
const DATA_ROOM_STEP: usize = 1024;

/// The data room the workers' mbufs need when the largest port MTU is `mtu`: a received frame
/// ([`FRAME_OVERHEAD`] beyond the MTU) arrives in one segment, and an outer datagram of `mtu`
/// bytes is reassembled into one ([`max_datagram`] keeps room for a 60-byte IPv4 header). Rounded
/// up to 1 KiB and never below [`DEFAULT_DATA_ROOM`]: 2048 for 1500, 9216 for 9000. Tunnel
/// headers go into the headroom in front of the data, so they need no room here.
pub fn data_room_for_mtu(mtu: u16) -> u16 {
    let frame = usize::from(mtu) + usize::from(FRAME_OVERHEAD);
    let payload = usize::from(mtu).saturating_sub(ipv4::HEADER_LEN);
    let datagram = payload + ETHERNET_HEADER + MAX_IPV4_HEADER;
    let room = frame.max(datagram).div_ceil(DATA_ROOM_STEP) * DATA_ROOM_STEP;
    // A u16 MTU gives at most 66560: keep to what an mbuf's 16-bit buffer length describes.
    let largest = usize::from(u16::MAX) - dpdk_sys::RTE_PKTMBUF_HEADROOM as usize;
    room.clamp(usize::from(DEFAULT_DATA_ROOM), largest) as u16
}

/// Extra room in the reassembly output buffer beyond [`max_datagram`].
const REASSEMBLY_SLACK: usize = 64;
/// How many times a second a worker expires incomplete reassembly sets.
const EXPIRE_CHECKS_PER_SEC: u64 = 100;
/// Distance between the first IPv4 identifications of consecutive workers: worker `q` starts at
/// `q * IDENT_STRIDE`, so that workers (and the control thread, at [`CONTROL_IDENT_BASE`]) do not
/// reuse each other's identifications for a long while.
pub const IDENT_STRIDE: u16 = 0x1000;
/// Where the control thread's IPv4 identifications (health probes) start.
pub const CONTROL_IDENT_BASE: u16 = 0xF000;
/// Probe replies a worker can queue for the control thread between two control-loop turns, and
/// probes the control thread can queue for a worker to send.
pub const PROBE_QUEUE_CAPACITY: usize = 1024;

/// The settings that every pipeline worker of a dataplane shares: the one place a worker's
/// numbers come from, for the appliance and the benchmark alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Packets received per poll of a port (clamped to `1..=MAX_BURST`).
    pub burst: usize,
    /// The TSC frequency: the clock of rate limits, timeouts and timestamps.
    pub tsc_hz: u64,
    /// ICMP errors each worker may send per second, and the burst it may send at once.
    pub icmp_rate_per_sec: u32,
    pub icmp_burst: u32,
    /// Outer datagrams each worker reassembles at once, and how long a set may stay incomplete.
    pub reassembly_max_sets: usize,
    pub reassembly_timeout_ms: u64,
}

impl WorkerConfig {
    /// Per-packet state for a worker whose IPv4 identifications start at `first_ident`.
    fn state(&self, first_ident: u16) -> WorkerState {
        WorkerState::new(
            TokenBucket::new(
                self.icmp_rate_per_sec,
                self.icmp_burst,
                self.tsc_hz,
                rdtsc(),
            ),
            first_ident,
        )
    }

    fn reassembler(&self, seed: u64, max_datagram: usize) -> Reassembler {
        Reassembler::new(ReassemblerConfig {
            max_sets: self.reassembly_max_sets,
            timeout: self.tsc_hz / 1000 * self.reassembly_timeout_ms,
            max_datagram,
            seed,
        })
    }

    /// The control thread's per-packet state for building health probes: its own
    /// identification range, and no ICMP errors to rate-limit.
    pub fn control_state(&self) -> WorkerState {
        WorkerState::new(
            TokenBucket::new(0, 0, self.tsc_hz, rdtsc()),
            CONTROL_IDENT_BASE,
        )
    }
}

/// One worker's queues: `rx[i]`/`tx[i]` are its queues on port `i` (the context's port index).
#[derive(Debug, Default)]
pub struct WorkerQueues {
    pub rx: Vec<RxQueue>,
    pub tx: Vec<TxQueue>,
}

/// The counters of one pipeline worker, summed across workers on read.
#[derive(Debug)]
pub struct PipelineCounters {
    pub core: CoreCounters,
    /// Drops by [`DropReason::index`].
    pub drops: CounterArray,
    /// Per tunnel (by `TunnelId`): packets and bytes received from it / sent into it.
    pub tunnel_rx_packets: CounterArray,
    pub tunnel_rx_bytes: CounterArray,
    pub tunnel_tx_packets: CounterArray,
    pub tunnel_tx_bytes: CounterArray,
    /// ARP and ICMP echo replies sent.
    pub replies: Counter,
    /// Health-probe replies and ARP replies meant for the control thread.
    pub to_control: Counter,
    /// Probe replies lost because the control thread's queue was full (or there is none).
    pub to_control_dropped: Counter,
    /// Fragments created for DF-clear packets over the tunnel MTU.
    pub fragments_out: Counter,
    /// Outer datagrams reassembled.
    pub reassembled: Counter,
    /// Mbuf allocations that failed (pool empty): the packet they were for is lost.
    pub alloc_failed: Counter,
}

impl PipelineCounters {
    pub fn new(tunnels: usize) -> Self {
        PipelineCounters {
            core: CoreCounters::default(),
            drops: CounterArray::new(DropReason::COUNT),
            tunnel_rx_packets: CounterArray::new(tunnels),
            tunnel_rx_bytes: CounterArray::new(tunnels),
            tunnel_tx_packets: CounterArray::new(tunnels),
            tunnel_tx_bytes: CounterArray::new(tunnels),
            replies: Counter::default(),
            to_control: Counter::default(),
            to_control_dropped: Counter::default(),
            fragments_out: Counter::default(),
            reassembled: Counter::default(),
            alloc_failed: Counter::default(),
        }
    }
}

/// Bounded lock-free queue through which a worker hands probe replies to the control thread
/// (crossbeam's `ArrayQueue`: a push is a few atomic operations, never blocks, never allocates).
pub type ProbeQueue = crossbeam::queue::ArrayQueue<ProbeReply>;

/// Frames the control thread asks a worker to transmit for it (health probes), for devices on
/// which the control thread cannot have a TX queue of its own (net_tap and net_af_packet need
/// as many RX as TX queues, and an RX queue nobody polls would lose packets).
pub type ControlTxQueue = crossbeam::queue::ArrayQueue<Mbuf>;

/// Everything one pipeline worker owns.
pub struct PipelineWorker {
    /// RX queue of each port, indexed like the context's ports.
    rx: Vec<RxQueue>,
    /// The control thread's publication of the forwarding context (QSBR reader: one load per
    /// read, no read-modify-write).
    slot: Reader<Context>,
    /// Everything the per-packet path mutates (split from `slot` so that the context borrowed
    /// from the slot and the mutable worker state are disjoint borrows).
    io: WorkerIo,
    burst_size: usize,
    /// Reassembly timeouts are checked at most this often (TSC ticks).
    expire_every: u64,
    /// The operator's packet trace of this worker (off unless armed).
    trace: Arc<TraceBuffer>,
}

/// The mutable per-packet state of a worker.
struct WorkerIo {
    tx: Vec<TxQueue>,
    tx_bursts: Vec<Burst>,
    dropped: Burst,
    state: WorkerState,
    reassembler: Reassembler,
    reassembly_out: Box<[u8]>,
    /// The reassembler's counters when last folded into the drop counters.
    reassembly_seen: ReassemblyStats,
    pool: Arc<Mempool>,
    probes: Option<Arc<ProbeQueue>>,
    /// Frames to transmit for the control thread, and on which port.
    control_tx: Option<(Arc<ControlTxQueue>, u16)>,
}

impl std::fmt::Debug for PipelineWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineWorker")
            .field("ports", &self.rx.len())
            .field("generation", &self.slot.seen_generation())
            .finish()
    }
}

impl PipelineWorker {
    /// Worker number `index` (0-based: it picks the worker's IPv4 identification range and
    /// reassembly hash seed) over `queues`, reading its forwarding context from `slot` and
    /// allocating fragments and reassembled datagrams from `pool`.
    pub fn new(
        config: &WorkerConfig,
        index: usize,
        queues: WorkerQueues,
        slot: Reader<Context>,
        pool: Arc<Mempool>,
    ) -> Self {
        let WorkerQueues { rx, tx } = queues;
        let n = tx.len();
        let max_datagram = max_datagram(pool.data_room());
        PipelineWorker {
            rx,
            slot,
            io: WorkerIo {
                tx,
                tx_bursts: (0..n).map(|_| Burst::new()).collect(),
                dropped: Burst::new(),
                state: config.state((index as u16).wrapping_mul(IDENT_STRIDE)),
                reassembler: config.reassembler(index as u64, max_datagram),
                reassembly_out: vec![0u8; max_datagram + REASSEMBLY_SLACK].into_boxed_slice(),
                reassembly_seen: ReassemblyStats::default(),
                pool,
                probes: None,
                control_tx: None,
            },
            burst_size: config.burst.clamp(1, MAX_BURST),
            expire_every: (config.tsc_hz / EXPIRE_CHECKS_PER_SEC).max(1),
            trace: Arc::default(),
        }
    }

    /// This worker's packet trace, to arm and read from another thread.
    pub fn trace(&self) -> Arc<TraceBuffer> {
        Arc::clone(&self.trace)
    }

    /// Hands probe replies to the control thread through `queue` (without one they are counted
    /// in `to_control_dropped`).
    pub fn with_probe_queue(mut self, queue: Arc<ProbeQueue>) -> Self {
        self.io.probes = Some(queue);
        self
    }

    /// Seals and opens ESP with `esp` (the worker's cipher factory on its own cryptodev queue
    /// pair, counting as writer `index`); without it every ESP packet drops `esp_no_session`.
    pub fn with_esp(mut self, esp: EspRuntime) -> Self {
        self.io.state.set_esp(esp);
        self
    }

    /// Transmits the frames the control thread queues in `queue` on `port` (checked once per
    /// loop turn: one atomic load when it is empty).
    pub fn with_control_tx(mut self, queue: Arc<ControlTxQueue>, port: u16) -> Self {
        self.io.control_tx = Some((queue, port));
        self
    }

    /// Polls until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool, c: &PipelineCounters) {
        let mut inb = Burst::new();
        let mut t_start = rdtsc();
        let mut last_expire = t_start;
        while !stop.load(Ordering::Relaxed) {
            let mut rx_total = 0u64;
            let mut busy_polls = 0u64;
            let ctx = self.slot.read();
            // One compare unless the context's SAs changed: then the sessions of new SAs are
            // made here, before a packet needs them, and those of removed SAs are freed.
            self.io.state.esp.sync(ctx);
            for port in 0..self.rx.len() {
                let n = self.rx[port].rx_burst(&mut inb, self.burst_size);
                if n == 0 {
                    continue;
                }
                rx_total += n as u64;
                busy_polls += 1;
                inb.prefetch_all();
                let now = rdtsc();
                // The trace costs one load and this branch per burst while it is off.
                if self.trace.active() {
                    for m in inb.drain() {
                        self.io
                            .handle_traced(ctx, port as u16, m, now, c, &self.trace);
                    }
                } else {
                    for m in inb.drain() {
                        self.io.handle(ctx, port as u16, m, now, c);
                    }
                }
                self.io.flush(c);
            }
            self.slot.quiescent();
            self.io.control_tx(c);
            c.core.polls.add(self.rx.len() as u64);
            let t_end = rdtsc();
            if rx_total > 0 {
                c.core.rx_packets.add(rx_total);
                c.core.busy_polls.add(busy_polls);
                c.core.busy_cycles.add(t_end.wrapping_sub(t_start));
            }
            if t_end.wrapping_sub(last_expire) > self.expire_every {
                self.io.expire(t_end, c);
                last_expire = t_end;
            }
            t_start = t_end;
        }
        self.io.flush(c);
        self.slot.offline();
        // Frames still queued for transmission are freed with the queue.
    }
}

impl WorkerIo {
    #[inline]
    fn control_tx(&mut self, c: &PipelineCounters) {
        let Some((q, port)) = &self.control_tx else {
            return;
        };
        if q.is_empty() {
            return;
        }
        let (q, port) = (Arc::clone(q), *port);
        while let Some(m) = q.pop() {
            self.send(port, None, m, c);
        }
        self.flush(c);
    }

    fn expire(&mut self, now: u64, c: &PipelineCounters) {
        self.reassembler.expire(now);
        // Sets time out or are evicted both here and while fragments arrive; the
        // reassembler's own counters see every case.
        let st = self.reassembler.stats();
        c.drops.add(
            DropReason::ReassemblyTimeout.index(),
            st.timed_out - self.reassembly_seen.timed_out,
        );
        c.drops.add(
            DropReason::ReassemblyEvicted.index(),
            st.evicted - self.reassembly_seen.evicted,
        );
        self.reassembly_seen = st;
    }

    // Inlined into the poll loop: called once per packet, its prologue and epilogue cost about
    // 20 instructions per packet (perf/scripts/profile-worker.sh).
    #[inline(always)]
    fn handle(&mut self, ctx: &Context, rx_port: u16, mut m: Mbuf, now: u64, c: &PipelineCounters) {
        // The pipeline reads one segment: a chain is made one first (docs/behaviour.md §7).
        if m.is_chained() {
            match self.linearize(m, c) {
                Some(whole) => m = whole,
                None => return,
            }
        }
        let len = m.pkt_len() as u64;
        let out = process(ctx, rx_port, &mut m, &mut self.state, now);
        self.act(ctx, rx_port, m, len, out, now, c);
    }

    /// [`Self::handle`], recording the packet's flow and verdict in `trace`.
    #[cold]
    fn handle_traced(
        &mut self,
        ctx: &Context,
        rx_port: u16,
        mut m: Mbuf,
        now: u64,
        c: &PipelineCounters,
        trace: &TraceBuffer,
    ) {
        if m.is_chained() {
            match self.linearize(m, c) {
                Some(whole) => m = whole,
                None => return,
            }
        }
        let flow = TraceFlow::of_frame(rx_port, m.data());
        let len = m.pkt_len() as u64;
        let out = process(ctx, rx_port, &mut m, &mut self.state, now);
        trace.record(&TraceRecord {
            flow,
            verdict: out.verdict.into(),
        });
        self.act(ctx, rx_port, m, len, out, now, c);
    }

    /// Counts and carries out `out`, the verdict on `m` (`len` bytes as received).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn act(
        &mut self,
        ctx: &Context,
        rx_port: u16,
        m: Mbuf,
        len: u64,
        out: Outcome,
        now: u64,
        c: &PipelineCounters,
    ) {
        if let Some(TunnelId(t)) = out.rx_tunnel {
            c.tunnel_rx_packets.add(t as usize, 1);
            c.tunnel_rx_bytes.add(t as usize, len);
        }
        match out.verdict {
            Verdict::Forward { port, tunnel } => self.send(port, tunnel, m, c),
            Verdict::Reply { port, tunnel } => {
                c.replies.add(1);
                self.send(port, tunnel, m, c)
            }
            Verdict::IcmpError {
                reason,
                port,
                tunnel,
            } => {
                c.drops.add(reason.index(), 1);
                self.send(port, tunnel, m, c)
            }
            Verdict::ToControl(Control::Probe(tunnel)) => {
                c.to_control.add(1);
                self.probe_reply(tunnel, out.rx_tunnel, &m, now, c);
                self.discard(m);
            }
            Verdict::ToControl(Control::Arp) => {
                c.to_control.add(1);
                self.discard(m);
            }
            Verdict::NeedsFragmentation { port, tunnel, mtu } => {
                self.fragment(ctx, m, port, tunnel, mtu, c)
            }
            Verdict::Reassemble => self.reassemble(ctx, rx_port, m, now, c),
            Verdict::Drop(reason) => {
                c.drops.add(reason.index(), 1);
                self.discard(m);
            }
        }
    }

    /// The chained packet `m` as one segment, or `None` when it was dropped: longer than one
    /// mbuf holds (`frame_too_long`), or no mbuf to copy it into (`alloc_failed`).
    #[cold]
    fn linearize(&mut self, m: Mbuf, c: &PipelineCounters) -> Option<Mbuf> {
        match m.linearize(&self.pool) {
            Ok(whole) => Some(whole),
            Err((m, why)) => {
                match why {
                    LinearizeError::TooLong => c.drops.add(DropReason::FrameTooLong.index(), 1),
                    LinearizeError::NoMbuf => c.alloc_failed.add(1),
                }
                self.discard(m);
                None
            }
        }
    }

    /// Queues a probe reply for the control thread, which authenticates it and checks the path
    /// it came by (`via`: the tunnel it was decapsulated from): a `Copy` value into a bounded
    /// lock-free queue; when it is full the reply is counted and lost (the probe then times out).
    #[cold]
    fn probe_reply(
        &mut self,
        tunnel: TunnelId,
        via: Option<TunnelId>,
        m: &Mbuf,
        now: u64,
        c: &PipelineCounters,
    ) {
        let queued = match (read_probe_echo(m.data()), &self.probes) {
            (Some(echo), Some(q)) => q
                .push(ProbeReply {
                    tunnel,
                    echo,
                    via,
                    rx_tsc: now,
                })
                .is_ok(),
            _ => false,
        };
        if !queued {
            c.to_control_dropped.add(1);
        }
    }

    #[inline]
    fn discard(&mut self, m: Mbuf) {
        if let Err(m) = self.dropped.push(m) {
            self.dropped.clear();
            let _ = self.dropped.push(m);
        }
    }

    #[inline(always)]
    fn send(&mut self, port: u16, tunnel: Option<TunnelId>, m: Mbuf, c: &PipelineCounters) {
        let port = port as usize;
        if port >= self.tx_bursts.len() {
            c.drops.add(DropReason::UnknownPort.index(), 1);
            self.discard(m);
            return;
        }
        if let Some(TunnelId(t)) = tunnel {
            c.tunnel_tx_packets.add(t as usize, 1);
            c.tunnel_tx_bytes.add(t as usize, m.pkt_len() as u64);
        }
        if self.tx_bursts[port].len() == MAX_BURST {
            self.flush_port(port, c);
        }
        // Cannot fail: the burst was flushed if it was full.
        if let Err(m) = self.tx_bursts[port].push(m) {
            self.discard(m);
        }
    }

    fn flush_port(&mut self, port: usize, c: &PipelineCounters) {
        let b = &mut self.tx_bursts[port];
        if b.is_empty() {
            return;
        }
        let sent = self.tx[port].tx_burst(b);
        c.core.tx_packets.add(sent as u64);
        if !b.is_empty() {
            c.core.tx_dropped.add(b.len() as u64);
            b.clear();
        }
    }

    fn flush(&mut self, c: &PipelineCounters) {
        for port in 0..self.tx_bursts.len() {
            self.flush_port(port, c);
        }
        self.dropped.clear();
    }

    fn fragment(
        &mut self,
        ctx: &Context,
        m: Mbuf,
        port: u16,
        tunnel: TunnelId,
        mtu: u16,
        c: &PipelineCounters,
    ) {
        let plan = match FragmentPlan::new(m.data(), mtu) {
            Ok(plan) => plan,
            Err(reason) => {
                c.drops.add(reason.index(), 1);
                self.discard(m);
                return;
            }
        };
        for f in plan {
            let Some(mut fm) = self.pool.alloc() else {
                c.alloc_failed.add(1);
                break;
            };
            let room = fm.tailroom();
            let written = match fm.append(room) {
                Some(buf) => write_fragment(m.data(), &f, buf),
                None => Err(DropReason::Headroom),
            };
            let result = written.and_then(|n| {
                fm.trim(room - n as u16);
                encapsulate(ctx, tunnel, &mut fm, &mut self.state)
            });
            match result {
                Ok(()) => {
                    c.fragments_out.add(1);
                    self.send(port, Some(tunnel), fm, c);
                }
                Err(reason) => {
                    c.drops.add(reason.index(), 1);
                    self.discard(fm);
                }
            }
        }
        self.discard(m);
    }

    fn reassemble(&mut self, ctx: &Context, rx_port: u16, m: Mbuf, now: u64, c: &PipelineCounters) {
        let data = m.data();
        let mut ethernet = [0u8; ETHERNET_HEADER];
        if let Some(h) = data.get(..ETHERNET_HEADER) {
            ethernet.copy_from_slice(h);
        }
        let Some(fragment) = data.get(ETHERNET_HEADER..) else {
            c.drops.add(DropReason::ReassemblyBadFragment.index(), 1);
            self.discard(m);
            return;
        };
        match self
            .reassembler
            .insert(fragment, now, &mut self.reassembly_out)
        {
            Ok(Reassembly::Pending) => self.discard(m),
            Ok(Reassembly::Complete(len)) => {
                let Some(mut whole) = self.pool.alloc() else {
                    c.alloc_failed.add(1);
                    self.discard(m);
                    return;
                };
                let total = ETHERNET_HEADER + len;
                let ok = match u16::try_from(total).ok().and_then(|n| whole.append(n)) {
                    Some(buf) => {
                        buf[..ETHERNET_HEADER].copy_from_slice(&ethernet);
                        buf[ETHERNET_HEADER..].copy_from_slice(&self.reassembly_out[..len]);
                        true
                    }
                    None => false,
                };
                self.discard(m);
                if ok {
                    c.reassembled.add(1);
                    self.handle(ctx, rx_port, whole, now, c);
                } else {
                    c.drops.add(DropReason::ReassemblyTooBig.index(), 1);
                    self.discard(whole);
                }
            }
            Err(reason) => {
                c.drops.add(reason.index(), 1);
                self.discard(m);
            }
        }
    }
}
