//! The control thread's state: per-tunnel health monitors and RTT histograms, the forwarding
//! context publication, failover and reload. No DPDK call and no clock read: the caller (the
//! appliance's control loop on EAL's main lcore) passes time in, sends the probes that
//! [`ControlPlane::poll_probes`] asks for, feeds back the replies the workers queued, and calls
//! [`ControlPlane::update`] to turn state changes into a newly published table. Tests drive it
//! on a simulated clock.
//!
//! # Decisions where the behaviour is not prescribed
//!
//! - **Probe addresses** (docs/behaviour.md §4). `reply` probes: inner source = the customer side
//!   of the tunnel's interface subnet, inner destination = the tunnel's local endpoint
//!   (unidirectional: the customer router routes it back plain) or our interface address
//!   (bidirectional: it comes back through the tunnel). `request` probes: source = the local
//!   endpoint (unidirectional) or our interface address (bidirectional), destination = the
//!   target (default: the customer endpoint). Inner TTL 64.
//! - **First probes** of the tunnels are staggered evenly over one interval from start-up, so
//!   a config with many tunnels does not send them all in the same millisecond.
//! - **IPsec tunnels** are probed like GRE tunnels, through ESP: the control loop seals each
//!   probe with the tunnel's outbound SA (as writer [`ControlPlane::sa_writer`], on a cryptodev
//!   queue pair of its own), and a bidirectional reply comes back through an inbound SA. A
//!   tunnel whose probes cannot be sealed (no outbound SA, sequence numbers used up, no cipher
//!   session) gets no reply and goes down, which is true: it cannot carry traffic either.
//! - **Publication**: a new context is built (off the packet path) whenever a tunnel changes
//!   state or a reload succeeds; it is published with one atomic swap. If the retire list is
//!   full because a worker has not passed a quiescent point, the publication is retried on the
//!   next update, never waited for on a worker.
//! - **Reload** re-reads the file given at start-up. Sections that shape the running dataplane
//!   (`dataplane`, `gateway`, `reassembly`, `stats`) must be unchanged (the reload is refused
//!   and names them); tunnels, routes, local endpoints, ECMP and ICMP settings take effect.
//!   A tunnel keeps its health state and RTT history across a reload when its name, its
//!   position in the list (its id) and its health-check settings are unchanged; any other
//!   tunnel starts healthy, as at start-up.
//! - **Probe replies are authenticated** (docs/behaviour.md §4): the probes carry a MAC under a
//!   key drawn from the OS's random source at start-up (kept across reloads, never logged or
//!   exported), and each tunnel's sequence numbers start at a random value. A reply counts only
//!   if its MAC verifies (else `probe_reply_forged`), it came the way its probe style implies
//!   (else `probe_reply_wrong_path`: bidirectional replies through the probed tunnel's own GRE,
//!   unidirectional ones plain, both with the inner source and destination the style gives)
//!   and its probe is still outstanding (else `probe_reply_stale`: late, replayed or unknown).
//!   The RTT comes from the authenticated send timestamp.
//! - **Admin state** (docs/behaviour.md §2). An admin-down tunnel's routes carry the down
//!   penalty ([`AdminState::routing_health`]); its monitor is not polled (no probes, no
//!   timeouts) and keeps the state it had. Set admin up again, it gets a fresh monitor, healthy
//!   and probed from then on, as a tunnel at start-up: the probes in flight when it went down say
//!   nothing about the tunnel now. [`ControlPlane::set_admin`] changes one at run time and
//!   keeps that state for the name across reloads until it is set again; a reload sets every
//!   other tunnel to its file's `admin`.
//! - **Tunnel ids** are positions in the config file, also for the per-tunnel counters; a reload
//!   that reorders tunnels re-labels their counters from then on.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::net::Ipv4Addr;

use conduit_packet::esp::sa::IpsecConfig;
use conduit_packet::pipeline::{
    Context, ProbeKey, ProbeKind, ProbeReply, ProbeSpec, TunnelId, PROBE_KEY_LEN,
};
use conduit_packet::publish::{Publisher, Reader};
use conduit_packet::route::{AdminState, Health};
use conduit_packet::wire::EthernetAddress;
use hdrhistogram::Histogram;

use crate::config::{Config, ProbeDirection, ProbeType, TunnelConfig};
use crate::health::{
    HealthConfig, HealthCounters, ReplyStatus, Timestamp, Transition, TunnelHealth,
};
use crate::ipsec::SaRegistry;
use crate::metrics::{RttWindow, TunnelStatus, RTT_WINDOW, RTT_WINDOW_SAMPLES};
use crate::tables::{self, TablesError};

/// Inner TTL of probes.
pub const PROBE_TTL: u8 = 64;
/// Highest RTT the histograms record (longer ones are clamped), in microseconds.
const MAX_RTT_US: u64 = 60_000_000;
/// How long `update` retries a publication on this thread before leaving it for the next one.
const PUBLISH_WAIT: Duration = Duration::from_millis(50);

/// Why the control plane could not start or a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Tables(#[from] TablesError),
    #[error("{path}: changing {sections} needs a restart; nothing was applied")]
    NeedsRestart { path: String, sections: String },
    #[error("{path}: {tunnels} tunnels exceed the {capacity} this process was started for; nothing was applied")]
    TooManyTunnels {
        path: String,
        tunnels: usize,
        capacity: usize,
    },
    #[error("tunnel {name}: {message}")]
    Health { name: String, message: String },
    #[error("the workers did not pass a quiescent point in time; the previous table stays")]
    PublishStalled,
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
    #[error("no tunnel is called {0:?}")]
    UnknownTunnel(String),
}

/// Fills `buf` from the operating system's random source.
fn os_random(buf: &mut [u8]) -> Result<(), PlaneError> {
    getrandom::fill(buf).map_err(|e| PlaneError::Random(e.to_string()))
}

/// How the reply to a tunnel's probe must arrive (docs/behaviour.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedReply {
    /// Through the probed tunnel (bidirectional), or plain (unidirectional).
    pub through_tunnel: bool,
    /// Inner source and destination of the reply.
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

/// The reply a tunnel's health-check settings call for: a bounced `reply` probe keeps its
/// addresses, the answer to a `request` swaps them.
pub fn expected_reply(t: &TunnelConfig) -> ExpectedReply {
    let spec = probe_spec(t);
    let (src, dst) = match spec.kind {
        ProbeKind::Reply => (spec.src, spec.dst),
        ProbeKind::Request => (spec.dst, spec.src),
    };
    ExpectedReply {
        through_tunnel: t.health_direction() == ProbeDirection::Bidirectional,
        src,
        dst,
    }
}

/// A probe the caller must build and send through `tunnel` now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeToSend {
    pub tunnel: TunnelId,
    pub seq: u16,
    pub spec: ProbeSpec,
}

/// The control plane's view of one tunnel.
pub struct TunnelRuntime {
    pub name: String,
    /// `None` when health checks are disabled (the tunnel counts as healthy).
    health: Option<TunnelHealth>,
    health_config: HealthConfig,
    pub spec: ProbeSpec,
    /// How its replies must arrive.
    pub reply: ExpectedReply,
    /// Round-trip times in microseconds, every reply since the tunnel was configured.
    pub rtt: Histogram<u64>,
    /// The same replies, those of the last minute only (for operators' percentiles).
    pub recent_rtt: RttWindow,
    /// State changes since start (or since the tunnel appeared in a reload), admin changes
    /// included.
    pub state_changes: u64,
    admin: AdminState,
    /// The latest state change (health or admin), for operators.
    last_change: Option<StateChange>,
}

/// When and why a tunnel last changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub at: Timestamp,
    /// e.g. `healthy -> down: 3 consecutive probes failed`, `admin down`.
    pub reason: String,
}

impl fmt::Debug for TunnelRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelRuntime")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("admin", &self.admin)
            .field("rtt_samples", &self.rtt.len())
            .finish()
    }
}

impl TunnelRuntime {
    fn new(t: &TunnelConfig, first_probe_at: Timestamp) -> Result<Self, PlaneError> {
        let health_config = t.health();
        let health = monitor(&t.name, &health_config, first_probe_at)?;
        let recent_rtt = recent_rtt(&health_config);
        Ok(TunnelRuntime {
            name: t.name.clone(),
            health,
            health_config,
            spec: probe_spec(t),
            reply: expected_reply(t),
            rtt: Histogram::new_with_bounds(1, MAX_RTT_US, 3).expect("valid histogram bounds"),
            recent_rtt,
            state_changes: 0,
            admin: t.admin,
            last_change: None,
        })
    }

    /// The latest state change since start (or since the tunnel appeared in a reload).
    pub fn last_change(&self) -> Option<&StateChange> {
        self.last_change.as_ref()
    }

    /// The administrative state (config `admin`, or [`ControlPlane::set_admin`]).
    pub fn admin(&self) -> AdminState {
        self.admin
    }

    /// The health route selection uses: [`Self::state`], or down while admin-down.
    pub fn routing_health(&self) -> Health {
        self.admin.routing_health(self.state())
    }

    /// What operators see: admin-down, checks disabled, or the monitor's state.
    pub fn status(&self) -> TunnelStatus {
        TunnelStatus::new(self.admin, self.state(), self.checked())
    }

    /// Whether the monitor runs (checks enabled and admin up).
    fn probing(&self) -> Option<&TunnelHealth> {
        self.health
            .as_ref()
            .filter(|_| self.admin == AdminState::Up)
    }

    /// The state the tunnel will have after [`Self::set_admin`]`(admin)`.
    fn state_after_admin(&self, admin: AdminState) -> Health {
        if self.admin == AdminState::Down && admin == AdminState::Up {
            Health::Healthy
        } else {
            self.state()
        }
    }

    /// Sets the admin state; returns whether it changed. Going up restarts the monitor at `now`
    /// (healthy, see the module docs).
    fn set_admin(&mut self, admin: AdminState, now: Timestamp) -> bool {
        if admin == self.admin {
            return false;
        }
        if admin == AdminState::Up {
            // The settings made a monitor before, so they make one again.
            if let Ok(h) = monitor(&self.name, &self.health_config, now) {
                self.health = h;
            }
        }
        self.admin = admin;
        self.state_changes += 1;
        self.last_change = Some(StateChange {
            at: now,
            reason: format!("admin {}", admin.as_str()),
        });
        let penalty = self.routing_health().penalty();
        match admin {
            AdminState::Down => log::warn!(
                "tunnel {}: admin down, routed as down, no probes (penalty {penalty})",
                self.name
            ),
            AdminState::Up => log::info!(
                "tunnel {}: admin up, {} (penalty {penalty})",
                self.name,
                self.state()
            ),
        }
        true
    }

    /// Current health (healthy when checks are disabled).
    pub fn state(&self) -> Health {
        self.health
            .as_ref()
            .map_or(Health::Healthy, TunnelHealth::state)
    }

    /// Whether health checks run for this tunnel.
    pub fn checked(&self) -> bool {
        self.health.is_some()
    }

    /// The monitor's counters (all zero when checks are disabled).
    pub fn counters(&self) -> HealthCounters {
        self.health
            .as_ref()
            .map(|h| *h.counters())
            .unwrap_or_default()
    }

    /// The latest round-trip time.
    pub fn last_rtt(&self) -> Option<Duration> {
        self.health.as_ref().and_then(TunnelHealth::last_rtt)
    }
}

/// The recent-RTT ring of a tunnel: allocated once, and empty without health checks (no
/// probes, no replies).
fn recent_rtt(config: &HealthConfig) -> RttWindow {
    let capacity = if config.enabled {
        RTT_WINDOW_SAMPLES
    } else {
        0
    };
    RttWindow::new(RTT_WINDOW, capacity)
}

/// A health monitor for the settings, first probe at `first_probe_at`; `None` when checks are
/// disabled.
fn monitor(
    name: &str,
    config: &HealthConfig,
    first_probe_at: Timestamp,
) -> Result<Option<TunnelHealth>, PlaneError> {
    if !config.enabled {
        return Ok(None);
    }
    // A random first sequence number: nobody can predict which ones are in flight.
    let mut seq = [0u8; 2];
    os_random(&mut seq)?;
    TunnelHealth::new(config.clone(), first_probe_at)
        .map(|h| Some(h.with_first_seq(u16::from_be_bytes(seq))))
        .map_err(|e| PlaneError::Health {
            name: name.to_string(),
            message: e.to_string(),
        })
}

/// The probe a tunnel's health-check settings call for (see the module docs).
pub fn probe_spec(t: &TunnelConfig) -> ProbeSpec {
    let bidirectional = t.health_direction() == ProbeDirection::Bidirectional;
    let ours = if bidirectional {
        t.our_address()
    } else {
        t.local
    };
    match t.health_check.probe {
        ProbeType::Reply => ProbeSpec {
            kind: ProbeKind::Reply,
            src: t.customer_address(),
            dst: ours,
            ttl: PROBE_TTL,
        },
        ProbeType::Request => ProbeSpec {
            kind: ProbeKind::Request,
            src: ours,
            dst: t.health_target(),
            ttl: PROBE_TTL,
        },
    }
}

/// Counters of the control plane itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlaneCounters {
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// Tables published (state changes and reloads).
    pub publications: u64,
    /// Probe replies naming a tunnel id this config does not have.
    pub replies_unknown_tunnel: u64,
    /// Probe replies for a probe that was not in flight (late, duplicate, unknown sequence).
    pub replies_unmatched: u64,
    /// Probe replies whose MAC did not verify (ignored).
    pub probe_reply_forged: u64,
    /// Authentic probe replies that came another way than their probe style implies (ignored).
    pub probe_reply_wrong_path: u64,
    /// Authentic probe replies whose probe was no longer outstanding: late, replayed or
    /// duplicated (ignored; also in `replies_unmatched`).
    pub probe_reply_stale: u64,
    /// When the latest successful reload happened; `None` before the first.
    pub last_reload_ok: Option<Timestamp>,
}

/// Swap-to-effect latency: publication until every online worker has read the new generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwapLatency {
    pub last: Option<Duration>,
    pub max: Option<Duration>,
    pub samples: u64,
}

/// The control thread's state (see the module docs).
pub struct ControlPlane {
    path: PathBuf,
    config: Config,
    port_macs: Vec<EthernetAddress>,
    gateway_mac: EthernetAddress,
    tunnels: Vec<TunnelRuntime>,
    tunnel_capacity: usize,
    publisher: Publisher<Context>,
    /// The probes' MAC key, drawn at start-up; never logged or exported.
    probe_key: ProbeKey,
    /// Health changed or a reload succeeded but the publication is still to be done.
    dirty: bool,
    /// A publication whose swap-to-effect latency is being measured: generation and when.
    pending_swap: Option<(u64, Timestamp)>,
    swap: SwapLatency,
    counters: PlaneCounters,
    /// Reads the time at the moment of a publication (for swap-to-effect latency, which must
    /// not include building the table); `None`: the `now` of the call that published.
    publish_clock: Option<fn() -> Timestamp>,
    /// Admin states set at run time ([`ControlPlane::set_admin`]) by tunnel name: they win over
    /// the file's `admin` across reloads until set again.
    admin_overrides: HashMap<String, AdminState>,
    /// The IPsec SAs handed to the packet path, kept across reloads.
    sas: SaRegistry,
    /// This start's boot epoch; `None`: IPsec tunnels get no SAs.
    boot_epoch: Option<u16>,
    /// The SAs of the running config (those of the last context built).
    ipsec: IpsecConfig,
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("path", &self.path)
            .field("tunnels", &self.tunnels)
            .field("generation", &self.publisher.generation())
            .finish()
    }
}

impl ControlPlane {
    /// Builds the first forwarding context from `config` (all tunnels healthy) and a publisher
    /// with one reader per worker. `tunnel_capacity` is the number of tunnel ids the workers'
    /// counters cover (reloads may not go beyond it). `path` is re-read on reload.
    /// `boot_epoch` is this start's [`next_boot_epoch`](crate::ipsec::next_boot_epoch), which
    /// the IPsec tunnels' SAs need (without it they get none). SA counters have `workers + 1`
    /// writers: the workers by index, and this thread (probes) as writer `workers`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_boot_epoch(
        path: &Path,
        config: Config,
        port_macs: Vec<EthernetAddress>,
        gateway_mac: EthernetAddress,
        workers: usize,
        tunnel_capacity: usize,
        now: Timestamp,
        boot_epoch: Option<u16>,
    ) -> Result<(Self, Vec<Reader<Context>>), PlaneError> {
        if config.tunnels.len() > tunnel_capacity {
            return Err(PlaneError::TooManyTunnels {
                path: path.display().to_string(),
                tunnels: config.tunnels.len(),
                capacity: tunnel_capacity,
            });
        }
        let tunnels: Vec<TunnelRuntime> = plan_runtimes(&config, now, &[])?
            .into_iter()
            .flatten()
            .collect();
        let health: Vec<Health> = tunnels.iter().map(TunnelRuntime::routing_health).collect();
        let mut sas = SaRegistry::new(workers);
        if boot_epoch.is_none() && config.has_ipsec_tunnels() {
            log::warn!("no boot epoch: the IPsec tunnels get no SAs and carry nothing");
        }
        let (ctx, ipsec) = build_context(
            &config,
            &port_macs,
            gateway_mac,
            &health,
            &mut sas,
            boot_epoch,
        )?;
        let publisher = Publisher::with_capacity(
            ctx,
            workers.max(1),
            conduit_packet::publish::DEFAULT_RETIRE_CAPACITY,
        );
        let readers = (0..workers)
            .map(|_| publisher.reader().expect("one slot per worker"))
            .collect();
        let mut key = [0u8; PROBE_KEY_LEN];
        os_random(&mut key)?;
        Ok((
            ControlPlane {
                path: path.to_path_buf(),
                config,
                port_macs,
                gateway_mac,
                tunnels,
                tunnel_capacity,
                publisher,
                probe_key: ProbeKey::new(key),
                dirty: false,
                pending_swap: None,
                swap: SwapLatency::default(),
                counters: PlaneCounters::default(),
                publish_clock: None,
                admin_overrides: HashMap::new(),
                sas,
                boot_epoch,
                ipsec,
            },
            readers,
        ))
    }

    /// The running configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The IPsec tunnels' SAs in the running config (for their counters: `shared.total(..)`),
    /// the same objects as in the published context.
    pub fn ipsec(&self) -> &IpsecConfig {
        &self.ipsec
    }

    /// This start's boot epoch, as given to [`ControlPlane::with_boot_epoch`].
    pub fn boot_epoch(&self) -> Option<u16> {
        self.boot_epoch
    }

    /// The SA counters' writer index of this thread (after the workers').
    pub fn sa_writer(&self) -> usize {
        self.sas.control_writer()
    }

    /// The context the workers currently read (the last one published).
    pub fn context(&self) -> &Context {
        self.publisher.current()
    }

    /// Per-tunnel state, indexed by tunnel id.
    pub fn tunnels(&self) -> &[TunnelRuntime] {
        &self.tunnels
    }

    /// Generation of the published context (0 = the initial one).
    pub fn generation(&self) -> u64 {
        self.publisher.generation()
    }

    pub fn counters(&self) -> PlaneCounters {
        self.counters
    }

    /// The key the probes are MAC'ed under.
    pub fn probe_key(&self) -> &ProbeKey {
        &self.probe_key
    }

    pub fn swap_latency(&self) -> SwapLatency {
        self.swap
    }

    /// The earliest time at which `poll_probes` has work (a probe to send or a deadline).
    pub fn next_poll_at(&self) -> Option<Timestamp> {
        self.tunnels
            .iter()
            .filter_map(|t| t.probing()?.next_poll_at())
            .min()
    }

    /// Advances every monitor to `now` (timeouts) and appends the probes to send to `out`.
    pub fn poll_probes(&mut self, now: Timestamp, out: &mut Vec<ProbeToSend>) {
        for (i, t) in self.tunnels.iter_mut().enumerate() {
            if t.admin == AdminState::Down {
                continue;
            }
            let Some(h) = t.health.as_mut() else {
                continue;
            };
            // `poll` hands out at most one probe per call; a retry may follow a timeout at once.
            while let Some(req) = h.poll(now) {
                out.push(ProbeToSend {
                    tunnel: TunnelId(i as u32),
                    seq: req.seq,
                    spec: t.spec,
                });
            }
        }
    }

    /// Feeds a probe reply queued by a worker, received at `now`, after authenticating it
    /// (see the module docs). `rtt(sent_tsc)`, the caller's measurement from the probe's own
    /// (then authenticated) send timestamp, goes into the tunnel's histogram when it has one;
    /// otherwise the monitor's send-to-drain time does.
    pub fn on_reply(
        &mut self,
        reply: &ProbeReply,
        now: Timestamp,
        rtt: impl FnOnce(u64) -> Option<Duration>,
    ) {
        let Some(t) = self.tunnels.get_mut(reply.tunnel.0 as usize) else {
            self.counters.replies_unknown_tunnel += 1;
            return;
        };
        if !self.probe_key.verify(reply.tunnel, &reply.echo) {
            self.counters.probe_reply_forged += 1;
            return;
        }
        let expected_via = t.reply.through_tunnel.then_some(reply.tunnel);
        if reply.via != expected_via
            || reply.echo.src != t.reply.src
            || reply.echo.dst != t.reply.dst
        {
            self.counters.probe_reply_wrong_path += 1;
            return;
        }
        let Some(h) = t.health.as_mut() else {
            self.counters.replies_unmatched += 1;
            return;
        };
        match h.on_reply(reply.echo.seq, now) {
            ReplyStatus::Accepted { rtt: monitor_rtt } => {
                let us = rtt(reply.echo.sent_tsc).unwrap_or(monitor_rtt).as_micros();
                let us = u64::try_from(us).unwrap_or(MAX_RTT_US).clamp(1, MAX_RTT_US);
                let _ = t.rtt.record(us);
                t.recent_rtt.record(now, us);
            }
            _ => {
                self.counters.replies_unmatched += 1;
                self.counters.probe_reply_stale += 1;
            }
        }
    }

    /// Logs and counts the tunnels' state changes and, if any happened (or a publication is
    /// pending), publishes a new context. Returns the new generation when one was published.
    pub fn update(&mut self, now: Timestamp) -> Result<Option<u64>, PlaneError> {
        for t in &mut self.tunnels {
            let Some(h) = t.health.as_mut() else {
                continue;
            };
            let changes: Vec<Transition> = h.take_transitions().collect();
            for tr in changes {
                t.state_changes += 1;
                t.last_change = Some(StateChange {
                    at: tr.at,
                    reason: format!("{} -> {}: {}", tr.from, tr.to, tr.reason),
                });
                self.dirty = true;
                let penalty = tr.to.penalty();
                if tr.to == Health::Healthy {
                    log::info!("tunnel {}: {tr} (penalty {penalty})", t.name);
                } else {
                    log::warn!("tunnel {}: {tr} (penalty {penalty})", t.name);
                }
            }
        }
        self.publisher.reclaim();
        if !self.dirty {
            return Ok(None);
        }
        self.publish_current(now).map(Some)
    }

    /// Builds the context of the running config with the tunnels' routing health, and
    /// publishes it.
    fn publish_current(&mut self, now: Timestamp) -> Result<u64, PlaneError> {
        let health: Vec<Health> = self
            .tunnels
            .iter()
            .map(TunnelRuntime::routing_health)
            .collect();
        let (ctx, ipsec) = build_context(
            &self.config,
            &self.port_macs,
            self.gateway_mac,
            &health,
            &mut self.sas,
            self.boot_epoch,
        )?;
        self.ipsec = ipsec;
        self.publish(ctx, now)
    }

    /// Sets tunnel `name` administratively up or down at run time (docs/behaviour.md §2) and,
    /// if that changed it, publishes the new table. Returns the generation in force afterwards.
    /// The one call an operator command needs. The state is kept as an override of the file's
    /// `admin` for that name: reloads keep it until it is set again.
    pub fn set_admin(
        &mut self,
        name: &str,
        admin: AdminState,
        now: Timestamp,
    ) -> Result<u64, PlaneError> {
        let t = self
            .tunnels
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| PlaneError::UnknownTunnel(name.to_string()))?;
        self.admin_overrides.insert(name.to_string(), admin);
        if !t.set_admin(admin, now) {
            return Ok(self.generation());
        }
        self.dirty = true;
        self.publish_current(now)
    }

    fn publish(&mut self, ctx: Context, now: Timestamp) -> Result<u64, PlaneError> {
        match self.publisher.publish_wait(ctx, PUBLISH_WAIT) {
            Ok(generation) => {
                self.dirty = false;
                self.counters.publications += 1;
                let at = self.publish_clock.map_or(now, |clock| clock());
                self.pending_swap = Some((generation, at));
                log::debug!("published forwarding context generation {generation}");
                Ok(generation)
            }
            Err(_) => {
                self.dirty = true;
                Err(PlaneError::PublishStalled)
            }
        }
    }

    /// Dates publications with `clock` (read right after the pointer swap) instead of the `now`
    /// passed to the call that published, so that swap-to-effect latency excludes the table
    /// build that preceded it.
    pub fn with_publish_clock(mut self, clock: fn() -> Timestamp) -> Self {
        self.publish_clock = Some(clock);
        self
    }

    /// Whether the last publication's swap-to-effect latency is still being measured.
    pub fn swap_pending(&self) -> bool {
        self.pending_swap.is_some()
    }

    /// Measures the swap-to-effect latency of the last publication: call it often (each control
    /// loop turn); once every online worker has read the new generation it records `now −
    /// published`. Returns the latency when it completes at this call.
    pub fn track_swap(&mut self, now: Timestamp) -> Option<Duration> {
        let (generation, at) = self.pending_swap?;
        let seen = self.publisher.min_seen_generation();
        if seen.is_some_and(|g| g < generation) {
            return None;
        }
        // No online reader (None) means nobody can still use the old table either.
        self.pending_swap = None;
        let d = now.saturating_duration_since(at);
        self.swap.last = Some(d);
        self.swap.max = Some(self.swap.max.map_or(d, |m| m.max(d)));
        self.swap.samples += 1;
        Some(d)
    }

    /// Re-reads the config file and applies it (see the module docs for what may change). On
    /// any error the running configuration and table stay, and the error says why.
    pub fn reload(&mut self, now: Timestamp) -> Result<u64, PlaneError> {
        let loaded = Config::load(&self.path).map_err(|e| e.to_string());
        self.reload_loaded(loaded, now)
    }

    /// The file [`reload`](Self::reload) reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`reload`](Self::reload) with the file already read and parsed (or the error doing so),
    /// e.g. on another thread so that parsing a large file does not stall probing.
    pub fn reload_loaded(
        &mut self,
        loaded: Result<Config, String>,
        now: Timestamp,
    ) -> Result<u64, PlaneError> {
        let result = loaded
            .map_err(PlaneError::Config)
            .and_then(|cfg| self.apply(cfg, now));
        match &result {
            Ok(g) => {
                self.counters.reloads_ok += 1;
                self.counters.last_reload_ok = Some(now);
                log::info!(
                    "reloaded {}: {} tunnels, {} routes, generation {g}",
                    self.path.display(),
                    self.config.tunnels.len(),
                    self.config.routes.len()
                );
            }
            Err(e) => {
                self.counters.reloads_failed += 1;
                log::error!("reload refused, the running configuration stays: {e}");
            }
        }
        result
    }

    /// The admin states set at run time, by tunnel name (see [`Self::set_admin`]).
    pub fn admin_overrides(&self) -> &HashMap<String, AdminState> {
        &self.admin_overrides
    }

    /// Applies an already loaded config (the work of [`reload`](Self::reload)); run-time admin
    /// states override the file's.
    pub fn apply(&mut self, mut config: Config, now: Timestamp) -> Result<u64, PlaneError> {
        for t in &mut config.tunnels {
            if let Some(&admin) = self.admin_overrides.get(&t.name) {
                t.admin = admin;
            }
        }
        let path = self.path.display().to_string();
        let mut changed = Vec::new();
        if config.dataplane != self.config.dataplane {
            changed.push("dataplane");
        }
        if config.gateway != self.config.gateway {
            changed.push("gateway");
        }
        if config.reassembly != self.config.reassembly {
            changed.push("reassembly");
        }
        if config.stats != self.config.stats {
            changed.push("stats");
        }
        // The cryptodev, the instance id and the boot epoch are taken at start; the keys file
        // is re-read.
        let fixed = |c: &Config| {
            c.ipsec.as_ref().map(|s| {
                let mut s = s.clone();
                s.keys_file = None;
                s
            })
        };
        if fixed(&config) != fixed(&self.config) {
            changed.push("ipsec");
        }
        if !changed.is_empty() {
            return Err(PlaneError::NeedsRestart {
                path,
                sections: changed.join(", "),
            });
        }
        if config.tunnels.len() > self.tunnel_capacity {
            return Err(PlaneError::TooManyTunnels {
                path,
                tunnels: config.tunnels.len(),
                capacity: self.tunnel_capacity,
            });
        }
        let plan = plan_runtimes(&config, now, &self.tunnels)?;
        let health: Vec<Health> = plan
            .iter()
            .zip(0..)
            .zip(&config.tunnels)
            .map(|((p, i), t): ((&Option<TunnelRuntime>, usize), _)| {
                let state = match p {
                    Some(rt) => rt.state(),
                    None => self.tunnels[i].state_after_admin(t.admin),
                };
                t.admin.routing_health(state)
            })
            .collect();
        // On a clone, so that a refused config leaves the registry as it was.
        let mut sas = self.sas.clone();
        let (ctx, ipsec) = build_context(
            &config,
            &self.port_macs,
            self.gateway_mac,
            &health,
            &mut sas,
            self.boot_epoch,
        )?;
        // Nothing can fail from here on: commit.
        self.sas = sas;
        self.ipsec = ipsec;
        let mut old: Vec<Option<TunnelRuntime>> = std::mem::take(&mut self.tunnels)
            .into_iter()
            .map(Some)
            .collect();
        let mut tunnels = Vec::with_capacity(plan.len());
        for ((p, i), t) in plan.into_iter().zip(0..).zip(&config.tunnels) {
            match p.or_else(|| old.get_mut(i).and_then(Option::take)) {
                Some(mut rt) => {
                    rt.spec = probe_spec(t);
                    rt.reply = expected_reply(t);
                    rt.set_admin(t.admin, now);
                    tunnels.push(rt);
                }
                // `plan_runtimes` keeps only existing positions, so this is unreachable; a
                // disabled runtime keeps ids aligned regardless.
                None => tunnels.push(disabled_runtime(t)),
            }
        }
        self.tunnels = tunnels;
        self.config = config;
        self.publish(ctx, now)
    }
}

/// For each tunnel of `config`: `None` where the running runtime at the same position is kept
/// (same name and health settings), else a fresh runtime. Changes nothing in `running`.
fn plan_runtimes(
    config: &Config,
    now: Timestamp,
    running: &[TunnelRuntime],
) -> Result<Vec<Option<TunnelRuntime>>, PlaneError> {
    let n = config.tunnels.len().max(1) as u32;
    config
        .tunnels
        .iter()
        .zip(0u32..)
        .map(|(t, i)| {
            let keep = running
                .get(i as usize)
                .is_some_and(|o| o.name == t.name && o.health_config == t.health());
            if keep {
                return Ok(None);
            }
            let stagger = t.health().probe_interval() * i / n;
            TunnelRuntime::new(t, now.saturating_add(stagger)).map(Some)
        })
        .collect()
}

fn disabled_runtime(t: &TunnelConfig) -> TunnelRuntime {
    TunnelRuntime {
        name: t.name.clone(),
        health: None,
        health_config: HealthConfig::disabled(),
        spec: probe_spec(t),
        reply: expected_reply(t),
        rtt: Histogram::new_with_bounds(1, MAX_RTT_US, 3).expect("valid histogram bounds"),
        recent_rtt: RttWindow::new(RTT_WINDOW, 0),
        state_changes: 0,
        admin: t.admin,
        last_change: None,
    }
}

fn build_context(
    config: &Config,
    port_macs: &[EthernetAddress],
    gateway_mac: EthernetAddress,
    health: &[Health],
    sas: &mut SaRegistry,
    boot_epoch: Option<u16>,
) -> Result<(Context, IpsecConfig), PlaneError> {
    let table = Arc::new(tables::forwarding_table(config, health)?);
    let ipsec = sas.build(config, boot_epoch);
    let ctx = tables::context_with_ipsec(config, port_macs, gateway_mac, table, ipsec.clone())?;
    Ok((ctx, ipsec))
}

#[cfg(test)]
mod tests;
