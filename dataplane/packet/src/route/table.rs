//! The forwarding table a worker consults per packet: destination → next-hop group → tunnel.
//!
//! [`ForwardingTableBuilder`] takes plain inputs (tunnels with their health, routes, the ECMP mode
//! and the health penalties) and produces an immutable [`ForwardingTable`], built off the packet
//! path and published by the control thread with one pointer swap (docs/behaviour.md §5). For every
//! distinct prefix, the routes with the lowest *effective priority* (configured priority + health
//! penalty, docs/behaviour.md §3) form its next-hop group; routes are never removed, so a prefix
//! keeps a group even when all its tunnels are down. Identical groups are stored once and shared by
//! all the prefixes that use them, and the LPM maps each prefix to its group index.
//!
//! Lookup ([`ForwardingTable::select`]) is the LPM (one or two loads), the group header, a bucket
//! (weighted and resilient modes) and the member: no allocation, no lock, no branch on anything
//! but the table's own data.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use thiserror::Error;

use super::ecmp::{self, EcmpMode, BUCKETS, WEIGHT_RANGE};
use super::lpm::{mask, Lpm, LpmError};

/// Index of a configured tunnel. The control plane should keep ids stable across reloads
/// (resilient mode scores buckets by id).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TunnelId(pub u32);

impl fmt::Debug for TunnelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{}", self.0)
    }
}

impl fmt::Display for TunnelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tunnel {}", self.0)
    }
}

/// Where a route sends a packet (docs/behaviour.md §3).
///
/// The gateway has no health of its own, so a route via the gateway is never penalised: its
/// effective priority is its configured priority. In a tie it is one ECMP member like a tunnel,
/// ordered after every tunnel.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NextHop {
    /// Encapsulate into this tunnel.
    Tunnel(TunnelId),
    /// Forward plain (TTL − 1) to the gateway's MAC out of the gateway port.
    Gateway,
}

impl NextHop {
    /// The tunnel, if the next hop is one.
    #[inline(always)]
    pub const fn tunnel(self) -> Option<TunnelId> {
        match self {
            NextHop::Tunnel(t) => Some(t),
            NextHop::Gateway => None,
        }
    }

    /// The id resilient ECMP scores the next hop by: the tunnel id, or `u32::MAX` for the
    /// gateway (no tunnel id reaches it, see `MAX_TUNNEL_ID`).
    const fn score_id(self) -> u32 {
        match self {
            NextHop::Tunnel(t) => t.0,
            NextHop::Gateway => u32::MAX,
        }
    }
}

impl From<TunnelId> for NextHop {
    fn from(t: TunnelId) -> Self {
        NextHop::Tunnel(t)
    }
}

impl PartialEq<TunnelId> for NextHop {
    fn eq(&self, other: &TunnelId) -> bool {
        *self == NextHop::Tunnel(*other)
    }
}

impl fmt::Debug for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::Tunnel(t) => write!(f, "{t:?}"),
            NextHop::Gateway => f.write_str("GW"),
        }
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::Tunnel(t) => write!(f, "{t}"),
            NextHop::Gateway => f.write_str("the gateway"),
        }
    }
}

/// Index of a next-hop group inside one [`ForwardingTable`] (meaningless across tables).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u32);

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "G{}", self.0)
    }
}

/// A tunnel's health as the health checker decides it and route selection uses it
/// (docs/behaviour.md §4).
///
/// The one health enum of Conduit: the forwarding table, the control plane's health monitors,
/// telemetry and metrics all use it. Whether a tunnel's checks are enabled is configuration, not
/// a health state: a tunnel without checks is simply `Healthy` forever, and the control plane
/// keeps the `enabled` flag beside it (metrics show such a tunnel as `disabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Health {
    #[default]
    Healthy,
    Degraded,
    Down,
}

impl Health {
    /// Every state, best first.
    pub const ALL: [Health; 3] = [Health::Healthy, Health::Degraded, Health::Down];

    /// Added to the priority of every route through the tunnel with the default penalties
    /// ([`Penalties::DEFAULT`]): 0, 500,000 or 1,000,000.
    pub const fn penalty(self) -> u32 {
        Penalties::DEFAULT.of(self)
    }

    /// Lower-case name for logs, telemetry and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tunnel's administrative state, set by the operator in the config (`admin:`) or at run time
/// (docs/behaviour.md §2). Separate from [`Health`], which the health checker decides: an
/// admin-down tunnel keeps its own health but counts as [`Health::Down`] for routing
/// ([`AdminState::routing_health`]), so the one penalty rule of §3 covers both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum AdminState {
    #[default]
    Up,
    Down,
}

impl AdminState {
    /// `up` or `down`, as in the config file.
    pub const fn as_str(self) -> &'static str {
        match self {
            AdminState::Up => "up",
            AdminState::Down => "down",
        }
    }

    /// The health that route selection uses for a tunnel in this admin state whose health
    /// checker says `health`.
    pub const fn routing_health(self, health: Health) -> Health {
        match self {
            AdminState::Up => health,
            AdminState::Down => Health::Down,
        }
    }
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AdminState {
    type Err = String;

    /// `up` or `down` (for a command line).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "up" => Ok(AdminState::Up),
            "down" => Ok(AdminState::Down),
            _ => Err(format!("admin state {s:?} is neither \"up\" nor \"down\"")),
        }
    }
}

/// Route-priority penalty of a degraded tunnel (docs/behaviour.md §3).
pub const DEGRADED_PENALTY: u32 = 500_000;
/// Route-priority penalty of a down tunnel (docs/behaviour.md §3).
pub const DOWN_PENALTY: u32 = 1_000_000;

/// Added to a route's priority by its tunnel's health (docs/behaviour.md §3; lower effective
/// priority wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Penalties {
    pub degraded: u32,
    pub down: u32,
}

impl Penalties {
    /// The documented penalties (docs/behaviour.md §3), which the appliance uses.
    pub const DEFAULT: Penalties = Penalties {
        degraded: DEGRADED_PENALTY,
        down: DOWN_PENALTY,
    };

    /// The penalty for a health state.
    pub const fn of(&self, health: Health) -> u32 {
        match health {
            Health::Healthy => 0,
            Health::Degraded => self.degraded,
            Health::Down => self.down,
        }
    }
}

impl Default for Penalties {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A configured route: `prefix/len` via `next_hop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// Network address, host order, no host bits set.
    pub prefix: u32,
    /// Prefix length, 0..=32.
    pub len: u8,
    pub next_hop: NextHop,
    /// Lower wins.
    pub priority: u32,
    /// 1..=256; used by [`EcmpMode::Weighted`] and [`EcmpMode::Resilient`].
    pub weight: u16,
}

impl Route {
    /// A route with weight 1.
    pub fn new(prefix: u32, len: u8, next_hop: impl Into<NextHop>, priority: u32) -> Self {
        Self {
            prefix,
            len,
            next_hop: next_hop.into(),
            priority,
            weight: 1,
        }
    }
}

/// Why a set of tunnels and routes cannot become a table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    #[error("{0} is listed twice")]
    DuplicateTunnel(TunnelId),
    #[error("route {prefix}/{len} uses unknown {tunnel}")]
    UnknownTunnel {
        prefix: Ipv4Addr,
        len: u8,
        tunnel: TunnelId,
    },
    #[error("route {prefix}/{len} via {next_hop} is listed twice")]
    DuplicateRoute {
        prefix: Ipv4Addr,
        len: u8,
        next_hop: NextHop,
    },
    #[error("route {prefix}/{len} via {next_hop}: weight {weight} outside 1..=256")]
    InvalidWeight {
        prefix: Ipv4Addr,
        len: u8,
        next_hop: NextHop,
        weight: u16,
    },
    #[error("{0} ECMP buckets: not a power of two in {min}..={max}", min = ecmp::BUCKET_RANGE.start(), max = ecmp::BUCKET_RANGE.end())]
    InvalidBuckets(usize),
    #[error("route {prefix}/{len}: {members} equal-cost tunnels exceed the {max} buckets")]
    GroupTooLarge {
        prefix: Ipv4Addr,
        len: u8,
        members: usize,
        max: usize,
    },
    #[error(transparent)]
    Prefix(#[from] LpmError),
}

/// Sizes of a built table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStats {
    /// Distinct prefixes.
    pub prefixes: usize,
    /// Distinct next-hop groups.
    pub groups: usize,
    /// Second-level LPM groups (one per /24 holding a longer prefix).
    pub tbl8_groups: usize,
    /// Bytes of all lookup structures (LPM, groups, buckets, members, prefix index).
    pub memory_bytes: usize,
}

/// What a prefix currently resolves to (for the control plane and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixUse<'a> {
    pub group: GroupId,
    /// The next hops traffic may take: tunnels by ascending id, then the gateway.
    pub tunnels: &'a [NextHop],
    /// The winning effective priority (priority + penalty).
    pub effective_priority: u64,
}

/// Group header: a run of `members` and, for bucket modes with several members, a run of
/// the table's bucket count of member indices in `buckets`.
#[derive(Debug, Clone, Copy)]
struct Group {
    first_member: u32,
    members: u32,
    /// Start in `buckets`, or [`NO_BUCKETS`] for `hash % members`.
    first_bucket: u32,
    /// [`ecmp::fastmod_multiplier`]`(members)`, for `hash % members`.
    multiplier: u64,
}

const NO_BUCKETS: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct PrefixEntry {
    prefix: u32,
    len: u8,
    group: GroupId,
    effective_priority: u64,
}

/// The immutable forwarding table. `Send + Sync`: workers share it read-only.
#[derive(Debug)]
pub struct ForwardingTable {
    lpm: Lpm,
    groups: Box<[Group]>,
    members: Box<[NextHop]>,
    buckets: Box<[u16]>,
    /// Buckets per bucketed group (a power of two).
    bucket_count: usize,
    /// Sorted by (prefix, len); for [`ForwardingTable::describe`].
    prefixes: Box<[PrefixEntry]>,
    mode: EcmpMode,
}

/// Collects the plain inputs of a [`ForwardingTable`].
#[derive(Debug, Clone)]
pub struct ForwardingTableBuilder {
    tunnels: Vec<(TunnelId, Health)>,
    routes: Vec<Route>,
    mode: EcmpMode,
    buckets: usize,
    penalties: Penalties,
}

impl Default for ForwardingTableBuilder {
    fn default() -> Self {
        ForwardingTableBuilder {
            tunnels: Vec::new(),
            routes: Vec::new(),
            mode: EcmpMode::default(),
            buckets: BUCKETS,
            penalties: Penalties::default(),
        }
    }
}

impl ForwardingTableBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Selection among equal-cost tunnels (default [`EcmpMode::Modulo`]).
    pub fn mode(mut self, mode: EcmpMode) -> Self {
        self.mode = mode;
        self
    }

    /// Buckets per group in the weighted and resilient modes (default [`BUCKETS`]); `build`
    /// fails with [`BuildError::InvalidBuckets`] unless it is a power of two in
    /// [`ecmp::BUCKET_RANGE`].
    pub fn buckets(mut self, buckets: usize) -> Self {
        self.buckets = buckets;
        self
    }

    /// Health penalties (default +500,000 / +1,000,000).
    pub fn penalties(mut self, penalties: Penalties) -> Self {
        self.penalties = penalties;
        self
    }

    pub fn tunnel(mut self, id: TunnelId, health: Health) -> Self {
        self.tunnels.push((id, health));
        self
    }

    pub fn tunnels(mut self, tunnels: impl IntoIterator<Item = (TunnelId, Health)>) -> Self {
        self.tunnels.extend(tunnels);
        self
    }

    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    pub fn routes(mut self, routes: impl IntoIterator<Item = Route>) -> Self {
        self.routes.extend(routes);
        self
    }

    /// Builds the table. Deterministic: the same inputs, in any order, give the same table.
    pub fn build(&self) -> Result<ForwardingTable, BuildError> {
        let mut health: HashMap<TunnelId, Health> = HashMap::with_capacity(self.tunnels.len());
        for &(id, h) in &self.tunnels {
            if health.insert(id, h).is_some() {
                return Err(BuildError::DuplicateTunnel(id));
            }
        }

        // (prefix, len, next hop, effective priority, weight), validated.
        let mut routes: Vec<(u32, u8, NextHop, u64, u16)> = Vec::with_capacity(self.routes.len());
        for r in &self.routes {
            let addr = Ipv4Addr::from(r.prefix);
            if r.len > 32 {
                return Err(LpmError::InvalidLength {
                    prefix: addr,
                    len: r.len,
                }
                .into());
            }
            if r.prefix & !mask(r.len) != 0 {
                return Err(LpmError::HostBitsSet {
                    prefix: addr,
                    len: r.len,
                }
                .into());
            }
            // The gateway has no health: a route via it is never penalised.
            let h = match r.next_hop {
                NextHop::Tunnel(tunnel) => match health.get(&tunnel) {
                    Some(&h) => h,
                    None => {
                        return Err(BuildError::UnknownTunnel {
                            prefix: addr,
                            len: r.len,
                            tunnel,
                        })
                    }
                },
                NextHop::Gateway => Health::Healthy,
            };
            if !WEIGHT_RANGE.contains(&r.weight) {
                return Err(BuildError::InvalidWeight {
                    prefix: addr,
                    len: r.len,
                    next_hop: r.next_hop,
                    weight: r.weight,
                });
            }
            let effective = u64::from(r.priority) + u64::from(self.penalties.of(h));
            routes.push((r.prefix, r.len, r.next_hop, effective, r.weight));
        }
        routes.sort_unstable_by_key(|&(p, l, t, ..)| (p, l, t));

        let mut groups: Vec<Group> = Vec::new();
        let mut members: Vec<NextHop> = Vec::new();
        let mut buckets: Vec<u16> = Vec::new();
        let mut group_ids: HashMap<Box<[(NextHop, u16)]>, GroupId> = HashMap::new();
        let mut prefixes: Vec<PrefixEntry> = Vec::new();
        let mut lpm_entries: Vec<(u32, u8, u32)> = Vec::new();
        let mut key: Vec<(NextHop, u16)> = Vec::new();
        if !self.buckets.is_power_of_two() || !ecmp::BUCKET_RANGE.contains(&self.buckets) {
            return Err(BuildError::InvalidBuckets(self.buckets));
        }
        let mut bucket_scratch = vec![0u16; self.buckets];

        for run in routes.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let (prefix, len) = (run[0].0, run[0].1);
            let addr = Ipv4Addr::from(prefix);
            if let Some(w) = run.windows(2).find(|w| w[0].2 == w[1].2) {
                return Err(BuildError::DuplicateRoute {
                    prefix: addr,
                    len,
                    next_hop: w[0].2,
                });
            }
            let best = run.iter().map(|r| r.3).min().expect("runs are non-empty");
            // Members in ascending tunnel id, the gateway last (the run is sorted by next hop,
            // and `NextHop` orders tunnels before the gateway). Modulo ignores
            // weights, so they are left out of its key to share more groups.
            key.clear();
            key.extend(run.iter().filter(|r| r.3 == best).map(|r| {
                (
                    r.2,
                    if self.mode == EcmpMode::Modulo {
                        1
                    } else {
                        r.4
                    },
                )
            }));
            let group = match group_ids.get(&key[..]) {
                Some(&g) => g,
                None => {
                    let g = GroupId(groups.len() as u32);
                    let bucketed = self.mode != EcmpMode::Modulo && key.len() > 1;
                    if bucketed && key.len() > self.buckets {
                        return Err(BuildError::GroupTooLarge {
                            prefix: addr,
                            len,
                            members: key.len(),
                            max: self.buckets,
                        });
                    }
                    let first_bucket = if bucketed {
                        match self.mode {
                            EcmpMode::Weighted => {
                                let weights: Vec<u16> = key.iter().map(|m| m.1).collect();
                                ecmp::fill_weighted(&weights, &mut bucket_scratch);
                            }
                            _ => {
                                let scored: Vec<(u32, u16)> =
                                    key.iter().map(|m| (m.0.score_id(), m.1)).collect();
                                ecmp::fill_resilient(&scored, &mut bucket_scratch);
                            }
                        }
                        let start = buckets.len() as u32;
                        buckets.extend_from_slice(&bucket_scratch);
                        start
                    } else {
                        NO_BUCKETS
                    };
                    groups.push(Group {
                        first_member: members.len() as u32,
                        members: key.len() as u32,
                        first_bucket,
                        multiplier: ecmp::fastmod_multiplier(key.len() as u32),
                    });
                    members.extend(key.iter().map(|m| m.0));
                    group_ids.insert(key.clone().into_boxed_slice(), g);
                    g
                }
            };
            prefixes.push(PrefixEntry {
                prefix,
                len,
                group,
                effective_priority: best,
            });
            lpm_entries.push((prefix, len, group.0));
        }

        Ok(ForwardingTable {
            lpm: Lpm::build(&lpm_entries)?,
            groups: groups.into_boxed_slice(),
            members: members.into_boxed_slice(),
            buckets: buckets.into_boxed_slice(),
            bucket_count: self.buckets,
            prefixes: prefixes.into_boxed_slice(),
            mode: self.mode,
        })
    }
}

impl ForwardingTable {
    pub fn builder() -> ForwardingTableBuilder {
        ForwardingTableBuilder::new()
    }

    /// The next-hop group of the longest prefix containing `dst` (host order).
    #[inline]
    pub fn lookup_group(&self, dst: u32) -> Option<GroupId> {
        self.lpm.lookup(dst).map(GroupId)
    }

    /// The member of `group` that `flow_hash` ([`ecmp::flow_hash`]) selects.
    ///
    /// # Panics
    /// If `group` does not come from this table.
    #[inline]
    pub fn select_in(&self, group: GroupId, flow_hash: u32) -> NextHop {
        let g = self.groups[group.0 as usize];
        let index = if g.first_bucket == NO_BUCKETS {
            ecmp::fastmod(flow_hash, g.members, g.multiplier)
        } else {
            let b = ecmp::bucket_of(flow_hash, self.bucket_count);
            u32::from(self.buckets[g.first_bucket as usize + b])
        };
        self.members[(g.first_member + index) as usize]
    }

    /// The next hop for a packet to `dst` (host order) with flow hash `flow_hash`, or `None`
    /// when no route covers `dst`.
    #[inline]
    pub fn select(&self, dst: u32, flow_hash: u32) -> Option<NextHop> {
        self.lookup_group(dst).map(|g| self.select_in(g, flow_hash))
    }

    /// The next hops of a group: tunnels by ascending id, then the gateway.
    ///
    /// # Panics
    /// If `group` does not come from this table.
    pub fn group_tunnels(&self, group: GroupId) -> &[NextHop] {
        let g = self.groups[group.0 as usize];
        &self.members[g.first_member as usize..(g.first_member + g.members) as usize]
    }

    /// What the configured prefix `prefix/len` resolves to now, or `None` if no route has
    /// exactly that prefix.
    pub fn describe(&self, prefix: u32, len: u8) -> Option<PrefixUse<'_>> {
        let i = self
            .prefixes
            .binary_search_by_key(&(prefix, len), |e| (e.prefix, e.len))
            .ok()?;
        let e = self.prefixes[i];
        Some(PrefixUse {
            group: e.group,
            tunnels: self.group_tunnels(e.group),
            effective_priority: e.effective_priority,
        })
    }

    /// The longest configured prefix containing `dst` (host order), as `(prefix, len)`: the
    /// one [`Self::lookup_group`] matched. A scan of every prefix, for operators, not packets.
    pub fn matching_prefix(&self, dst: u32) -> Option<(u32, u8)> {
        self.prefixes
            .iter()
            .filter(|e| dst & super::lpm::mask(e.len) == e.prefix)
            .max_by_key(|e| e.len)
            .map(|e| (e.prefix, e.len))
    }

    /// The ECMP mode the table was built with.
    pub fn mode(&self) -> EcmpMode {
        self.mode
    }

    /// Buckets per group in the weighted and resilient modes.
    pub fn bucket_count(&self) -> usize {
        self.bucket_count
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            prefixes: self.prefixes.len(),
            groups: self.groups.len(),
            tbl8_groups: self.lpm.tbl8_groups(),
            memory_bytes: self.lpm.memory_bytes()
                + std::mem::size_of_val(&self.groups[..])
                + std::mem::size_of_val(&self.members[..])
                + std::mem::size_of_val(&self.buckets[..])
                + std::mem::size_of_val(&self.prefixes[..]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::ecmp::flow_hash;
    use crate::wire::IpProtocol;
    use conduit_test_support::rng::SplitMix64;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    const T1: TunnelId = TunnelId(1);
    const T2: TunnelId = TunnelId(2);
    const T3: TunnelId = TunnelId(3);

    /// Draws random TCP flows' hashes.
    struct Rng(SplitMix64);
    impl Rng {
        fn flow(&mut self) -> u32 {
            let r = self.0.next();
            flow_hash(
                r as u32,
                ip("203.0.113.10"),
                IpProtocol::Tcp,
                false,
                (r >> 32) as u16,
                (r >> 48) as u16,
            )
        }
    }

    /// The seed document's example: tunnels 1 and 2 at priority 100, tunnel 3 at 200.
    fn seed_table(h1: Health, h2: Health, h3: Health) -> ForwardingTable {
        let p = ip("203.0.113.0");
        ForwardingTable::builder()
            .tunnels([(T1, h1), (T2, h2), (T3, h3)])
            .routes([
                Route::new(p, 24, T1, 100),
                Route::new(p, 24, T2, 100),
                Route::new(p, 24, T3, 200),
            ])
            .build()
            .unwrap()
    }

    /// Fraction of `flows` sent to each tunnel of `tunnels`.
    fn shares(table: &ForwardingTable, dst: u32, flows: &[u32], tunnels: &[TunnelId]) -> Vec<f64> {
        let mut counts = vec![0usize; tunnels.len()];
        for &h in flows {
            let t = table.select(dst, h).unwrap();
            counts[tunnels
                .iter()
                .position(|&x| t == x)
                .expect("selected tunnel is a member")] += 1;
        }
        counts
            .iter()
            .map(|&c| c as f64 / flows.len() as f64)
            .collect()
    }

    fn flows(n: usize, seed: u64) -> Vec<u32> {
        let mut rng = Rng(SplitMix64::new(seed));
        (0..n).map(|_| rng.flow()).collect()
    }

    #[test]
    fn seed_failover_sequence() {
        use Health::*;
        let dst = ip("203.0.113.77");
        let f = flows(10_000, 1);
        // Normal: ECMP over tunnels 1 and 2, roughly evenly.
        let t = seed_table(Healthy, Healthy, Healthy);
        assert_eq!(
            t.describe(ip("203.0.113.0"), 24).unwrap().tunnels,
            &[T1, T2]
        );
        let s = shares(&t, dst, &f, &[T1, T2]);
        assert!((s[0] - 0.5).abs() < 0.03, "{s:?}");
        // Tunnel 2 unhealthy: everything to tunnel 1.
        let t = seed_table(Healthy, Down, Healthy);
        assert!(f.iter().all(|&h| t.select(dst, h) == Some(T1.into())));
        // Tunnels 1 and 2 unhealthy: everything to tunnel 3.
        let t = seed_table(Down, Down, Healthy);
        assert!(f.iter().all(|&h| t.select(dst, h) == Some(T3.into())));
        assert_eq!(
            t.describe(ip("203.0.113.0"), 24)
                .unwrap()
                .effective_priority,
            200
        );
        // Both healthy again: back to 1 and 2, every flow where it was.
        let back = seed_table(Healthy, Healthy, Healthy);
        let first = seed_table(Healthy, Healthy, Healthy);
        assert!(f
            .iter()
            .all(|&h| back.select(dst, h) == first.select(dst, h)));
        // Everything down: routes are never removed, the best down route still carries traffic.
        let t = seed_table(Down, Down, Down);
        assert_eq!(
            t.describe(ip("203.0.113.0"), 24).unwrap().tunnels,
            &[T1, T2]
        );
        assert_eq!(
            t.describe(ip("203.0.113.0"), 24)
                .unwrap()
                .effective_priority,
            1_000_100
        );
    }

    #[test]
    fn longest_prefix_wins_over_priority() {
        let t = ForwardingTable::builder()
            .tunnels([(T1, Health::Healthy), (T2, Health::Down)])
            .route(Route::new(ip("10.0.0.0"), 8, T1, 1))
            .route(Route::new(ip("10.1.0.0"), 16, T2, 60_000))
            .build()
            .unwrap();
        assert_eq!(t.select(ip("10.1.2.3"), 7), Some(T2.into())); // longer, worse, and down
        assert_eq!(t.select(ip("10.2.0.0"), 7), Some(T1.into()));
        assert_eq!(t.select(ip("11.0.0.0"), 7), None);
    }

    #[test]
    fn degraded_ranks_between_healthy_and_down() {
        let p = ip("192.0.2.0");
        let build = |tunnels: [(TunnelId, Health); 3]| {
            ForwardingTable::builder()
                .tunnels(tunnels)
                .routes([
                    Route::new(p, 24, T1, 100),
                    Route::new(p, 24, T2, 100),
                    Route::new(p, 24, T3, 300),
                ])
                .build()
                .unwrap()
        };
        use Health::*;
        let tunnels = |t: &ForwardingTable| t.describe(p, 24).unwrap().tunnels.to_vec();
        // A degraded tunnel loses to a healthy one of the same priority...
        assert_eq!(
            tunnels(&build([(T1, Degraded), (T2, Healthy), (T3, Healthy)])),
            [T2]
        );
        // ...and to a healthy one of worse priority...
        assert_eq!(
            tunnels(&build([(T1, Degraded), (T2, Degraded), (T3, Healthy)])),
            [T3]
        );
        // ...but beats a down one of better or equal priority.
        assert_eq!(
            tunnels(&build([(T1, Degraded), (T2, Down), (T3, Down)])),
            [T1]
        );
        assert_eq!(
            tunnels(&build([(T1, Degraded), (T2, Degraded), (T3, Down)])),
            [T1, T2]
        );
        // Penalties are configurable.
        let t = ForwardingTable::builder()
            .penalties(Penalties {
                degraded: 10,
                down: 1000,
            })
            .tunnels([(T1, Degraded), (T2, Healthy)])
            .routes([Route::new(p, 24, T1, 100), Route::new(p, 24, T2, 200)])
            .build()
            .unwrap();
        assert_eq!(t.describe(p, 24).unwrap().tunnels, &[T1]);
        assert_eq!(t.describe(p, 24).unwrap().effective_priority, 110);
    }

    #[test]
    fn admin_state_counts_as_down_for_routing_only() {
        use Health::*;
        for h in Health::ALL {
            assert_eq!(AdminState::Up.routing_health(h), h);
            assert_eq!(AdminState::Down.routing_health(h), Down);
        }
        assert_eq!(AdminState::default(), AdminState::Up);
        assert_eq!("down".parse::<AdminState>(), Ok(AdminState::Down));
        assert_eq!("up".parse::<AdminState>(), Ok(AdminState::Up));
        assert!("Down".parse::<AdminState>().is_err());
        // An admin-down tunnel 1 moves the seed example's traffic to tunnel 2 only.
        let t = seed_table(AdminState::Down.routing_health(Healthy), Healthy, Healthy);
        assert_eq!(t.describe(ip("203.0.113.0"), 24).unwrap().tunnels, &[T2]);
    }

    #[test]
    fn gateway_next_hop_orders_last_and_has_no_penalty() {
        let p = ip("10.0.0.0");
        let t = ForwardingTable::builder()
            .tunnels([(T1, Health::Down), (T2, Health::Healthy)])
            .routes([
                Route::new(p, 8, NextHop::Gateway, 100),
                Route::new(p, 8, T2, 100),
                Route::new(p, 8, T1, 0),
            ])
            .build()
            .unwrap();
        let u = t.describe(p, 8).unwrap();
        assert_eq!(u.tunnels, &[NextHop::Tunnel(T2), NextHop::Gateway]);
        assert_eq!(u.effective_priority, 100);
        assert_eq!(
            ForwardingTable::builder()
                .routes([
                    Route::new(p, 8, NextHop::Gateway, 1),
                    Route::new(p, 8, NextHop::Gateway, 2)
                ])
                .build()
                .unwrap_err()
                .to_string(),
            "route 10.0.0.0/8 via the gateway is listed twice"
        );
    }

    #[test]
    fn identical_groups_are_shared() {
        let mut b =
            ForwardingTable::builder().tunnels([(T1, Health::Healthy), (T2, Health::Healthy)]);
        for i in 0..100u32 {
            b = b
                .route(Route::new(i << 8, 24, T1, 5))
                .route(Route::new(i << 8, 24, T2, 5));
        }
        b = b.route(Route::new(ip("10.0.0.0"), 8, T2, 5));
        let t = b.build().unwrap();
        let stats = t.stats();
        assert_eq!(stats.prefixes, 101);
        assert_eq!(stats.groups, 2);
        assert!(stats.memory_bytes >= 4 << 24);
        assert_eq!(
            t.describe(0x0500, 24).unwrap().group,
            t.describe(0x6300, 24).unwrap().group
        );
        assert_eq!(t.describe(0x6400, 24), None);
    }

    #[test]
    fn build_errors() {
        let p = ip("10.0.0.0");
        let base = || ForwardingTable::builder().tunnel(T1, Health::Healthy);
        assert_eq!(
            base().tunnel(T1, Health::Down).build().unwrap_err(),
            BuildError::DuplicateTunnel(T1)
        );
        let err = base().route(Route::new(p, 8, T2, 1)).build().unwrap_err();
        assert_eq!(err.to_string(), "route 10.0.0.0/8 uses unknown tunnel 2");
        let err = base()
            .route(Route::new(p, 8, T1, 1))
            .route(Route::new(p, 8, T1, 2))
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            BuildError::DuplicateRoute {
                next_hop: NextHop::Tunnel(T1),
                len: 8,
                ..
            }
        ));
        for weight in [0, 257] {
            let err = base()
                .route(Route {
                    weight,
                    ..Route::new(p, 8, T1, 1)
                })
                .build()
                .unwrap_err();
            assert!(matches!(err, BuildError::InvalidWeight { .. }), "{err}");
        }
        let err = base()
            .route(Route::new(ip("10.0.0.1"), 8, T1, 1))
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            BuildError::Prefix(LpmError::HostBitsSet { .. })
        ));
        let err = base().route(Route::new(p, 33, T1, 1)).build().unwrap_err();
        assert!(matches!(
            err,
            BuildError::Prefix(LpmError::InvalidLength { .. })
        ));
        assert_eq!(format!("{:?}", [T1, T2]), "[T1, T2]");
    }

    /// `n` healthy tunnels 0..n sharing `0.0.0.0/0` (weights as given, 1 by default).
    fn wide(mode: EcmpMode, ids: &[u32], weights: &[u16]) -> ForwardingTable {
        let b = ForwardingTable::builder().mode(mode);
        let b = b.tunnels(ids.iter().map(|&i| (TunnelId(i), Health::Healthy)));
        b.routes(ids.iter().enumerate().map(|(k, &i)| Route {
            weight: weights.get(k).copied().unwrap_or(1),
            ..Route::new(0, 0, TunnelId(i), 10)
        }))
        .build()
        .unwrap()
    }

    #[test]
    fn the_bucket_count_is_the_builders() {
        let build = |mode: EcmpMode, n: u32, buckets: usize| {
            let b = ForwardingTable::builder().mode(mode).buckets(buckets);
            let b = b.tunnels((0..n).map(|i| (TunnelId(i), Health::Healthy)));
            b.routes((0..n).map(|i| Route {
                weight: if i == 0 { 1 } else { 3 },
                ..Route::new(0, 0, TunnelId(i), 10)
            }))
            .build()
        };
        // Weighted 1:3 over 64 buckets: exactly 16 and 48, each hash's low six bits its bucket.
        let t = build(EcmpMode::Weighted, 2, 64).unwrap();
        assert_eq!(t.bucket_count(), 64);
        let g = t.lookup_group(0).unwrap();
        let first = (0..64u32)
            .filter(|&h| t.select_in(g, h) == NextHop::Tunnel(TunnelId(0)))
            .count();
        assert_eq!(first, 16);
        assert_eq!(t.select_in(g, 5), t.select_in(g, 5 + 64 * 1001));
        // More members than buckets, and counts that are no table's.
        let err = build(EcmpMode::Resilient, 65, 64).unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::GroupTooLarge {
                    members: 65,
                    max: 64,
                    ..
                }
            ),
            "{err}"
        );
        for bad in [0, 32, 1000, 1 << 17] {
            let err = build(EcmpMode::Weighted, 2, bad).unwrap_err();
            assert_eq!(err, BuildError::InvalidBuckets(bad));
        }
        assert_eq!(
            BuildError::InvalidBuckets(1000).to_string(),
            "1000 ECMP buckets: not a power of two in 64..=65536"
        );
        assert_eq!(
            build(EcmpMode::Modulo, 2, 65536).unwrap().bucket_count(),
            65536
        );
    }

    #[test]
    fn flows_stick_across_builds_and_input_order() {
        let f = flows(20_000, 2);
        for mode in [EcmpMode::Modulo, EcmpMode::Weighted, EcmpMode::Resilient] {
            let ids: Vec<u32> = (0..7).collect();
            let a = wide(mode, &ids, &[3, 1, 4, 1, 5, 9, 2]);
            let rev: Vec<u32> = ids.iter().rev().copied().collect();
            let b = wide(mode, &rev, &[2, 9, 5, 1, 4, 1, 3]);
            for &h in &f {
                let dst = h.rotate_left(7);
                assert_eq!(a.select(dst, h), b.select(dst, h), "{mode:?}");
                assert_eq!(a.select(dst, h), a.select(dst, h));
            }
        }
    }

    #[test]
    fn spread_is_even_for_2_to_16_tunnels() {
        let f = flows(100_000, 3);
        for mode in [EcmpMode::Modulo, EcmpMode::Weighted, EcmpMode::Resilient] {
            for n in 2..=16u32 {
                let ids: Vec<u32> = (1..=n).collect();
                let t = wide(mode, &ids, &[]);
                let tunnels: Vec<TunnelId> = ids.iter().map(|&i| TunnelId(i)).collect();
                let ideal = 1.0 / f64::from(n);
                // Resilient buckets are assigned by hashing, so their shares carry the bucket
                // table's own sampling noise on top of the flows'.
                let tolerance = if mode == EcmpMode::Resilient {
                    0.12
                } else {
                    0.05
                };
                for (i, s) in shares(&t, 0, &f, &tunnels).iter().enumerate() {
                    assert!(
                        (s / ideal - 1.0).abs() <= tolerance,
                        "{mode:?} n={n} tunnel {i}: share {s:.4}, ideal {ideal:.4}"
                    );
                }
            }
        }
    }

    #[test]
    fn weighted_spreads_in_proportion_to_weights() {
        let f = flows(100_000, 4);
        let weights = [1u16, 2, 3, 10, 256];
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let ids = [1, 2, 3, 4, 5];
        let tunnels: Vec<TunnelId> = ids.iter().map(|&i| TunnelId(i)).collect();
        // Weighted buckets are exact to 1/4096, so only the flows' sampling noise remains: within
        // 15% relative even for the weight-1 member (~0.37% of flows). Resilient buckets are
        // themselves drawn by hashing (±sqrt(p(1-p)/4096) per member), so allow one percentage
        // point absolute there (~2.7 sd for the heaviest member).
        for mode in [EcmpMode::Weighted, EcmpMode::Resilient] {
            let t = wide(mode, &ids, &weights);
            let s = shares(&t, 0, &f, &tunnels);
            println!("{mode:?} weights {weights:?}: shares {s:.4?}");
            for (i, (&w, &share)) in weights.iter().zip(&s).enumerate() {
                let ideal = f64::from(w) / total;
                let ok = match mode {
                    EcmpMode::Weighted => (share / ideal - 1.0).abs() < 0.15,
                    _ => (share - ideal).abs() < 0.01,
                };
                assert!(
                    ok,
                    "{mode:?} member {i}: share {share:.4}, ideal {ideal:.4}"
                );
            }
        }
        // Modulo ignores weights.
        let t = wide(EcmpMode::Modulo, &ids, &weights);
        assert!(shares(&t, 0, &f, &tunnels)
            .iter()
            .all(|s| (s - 0.2).abs() < 0.01));
    }

    /// Fraction of flows whose tunnel differs between two tables.
    fn moved(a: &ForwardingTable, b: &ForwardingTable, flows: &[u32]) -> f64 {
        flows
            .iter()
            .filter(|&&h| a.select(0, h) != b.select(0, h))
            .count() as f64
            / flows.len() as f64
    }

    #[test]
    fn resilient_moves_only_the_leaving_tunnels_flows() {
        let f = flows(100_000, 5);
        for n in [2u32, 3, 4, 8, 16] {
            let ids: Vec<u32> = (1..=n).collect();
            let leaving = TunnelId(n / 2 + 1);
            let down_ids: Vec<u32> = ids.iter().copied().filter(|&i| i != leaving.0).collect();
            let build = |mode, ids: &[u32]| wide(mode, ids, &[]);
            let (before, after) = (
                build(EcmpMode::Resilient, &ids),
                build(EcmpMode::Resilient, &down_ids),
            );
            let resilient = moved(&before, &after, &f);
            let modulo = moved(
                &build(EcmpMode::Modulo, &ids),
                &build(EcmpMode::Modulo, &down_ids),
                &f,
            );
            println!(
                "n={n:2}: one tunnel leaves -> resilient moves {resilient:.4} of flows, modulo {modulo:.4} (1/n = {:.4})",
                1.0 / f64::from(n)
            );
            assert!(resilient <= 1.0 / f64::from(n) + 0.02, "n={n}: {resilient}");
            // Only the leaving tunnel's flows moved.
            for &h in &f {
                let was = before.select(0, h).unwrap();
                if was != leaving {
                    assert_eq!(after.select(0, h), Some(was));
                }
            }
            // Coming back takes back exactly what it owned: same table as before it left.
            let returned = build(EcmpMode::Resilient, &ids);
            assert_eq!(moved(&before, &returned, &f), 0.0);
        }
    }

    #[test]
    fn resilient_failover_through_health() {
        // The same property driven by health: tunnel 2 goes down, then recovers.
        let p = ip("198.51.100.0");
        let build = |h2| {
            ForwardingTable::builder()
                .mode(EcmpMode::Resilient)
                .tunnels([(T1, Health::Healthy), (T2, h2), (T3, Health::Healthy)])
                .routes([
                    Route::new(p, 24, T1, 1),
                    Route::new(p, 24, T2, 1),
                    Route::new(p, 24, T3, 1),
                ])
                .build()
                .unwrap()
        };
        let (up, down, recovered) = (
            build(Health::Healthy),
            build(Health::Down),
            build(Health::Healthy),
        );
        for h in flows(20_000, 6) {
            let dst = p | (h & 0xff);
            let before = up.select(dst, h).unwrap();
            let during = down.select(dst, h).unwrap();
            assert_ne!(during, T2);
            if before != T2 {
                assert_eq!(during, before);
            }
            assert_eq!(recovered.select(dst, h), Some(before));
        }
    }

    mod reference_model {
        use super::*;
        use proptest::prelude::*;

        /// Routes over a few overlapping prefixes and five tunnels in random health.
        fn inputs() -> impl Strategy<Value = (Vec<Health>, Vec<Route>, EcmpMode)> {
            let health = prop::collection::vec(
                prop_oneof![
                    Just(Health::Healthy),
                    Just(Health::Degraded),
                    Just(Health::Down)
                ],
                5,
            );
            let prefix = prop_oneof![
                Just((0u32, 0u8)),
                Just((0x0A00_0000, 8)),
                Just((0x0A01_0000, 16)),
                Just((0x0A01_0200, 24)),
                Just((0x0A01_0280, 25)),
                Just((0x0A01_0203, 32)),
            ];
            // Next hop 5 stands for the gateway.
            let route =
                (prefix, 0u32..6, 0u32..3, 1u16..=256).prop_map(|((p, l), t, prio, w)| Route {
                    weight: w,
                    ..Route::new(
                        p,
                        l,
                        if t == 5 {
                            NextHop::Gateway
                        } else {
                            NextHop::Tunnel(TunnelId(t))
                        },
                        prio * 400_000,
                    )
                });
            let mode = prop_oneof![
                Just(EcmpMode::Modulo),
                Just(EcmpMode::Weighted),
                Just(EcmpMode::Resilient)
            ];
            (health, prop::collection::vec(route, 1..20), mode).prop_map(|(h, mut routes, mode)| {
                let mut seen = std::collections::HashSet::new();
                routes.retain(|r| seen.insert((r.prefix, r.len, r.next_hop)));
                (h, routes, mode)
            })
        }

        /// The obvious answer: longest matching prefix, then its lowest effective priority.
        fn reference(health: &[Health], routes: &[Route], dst: u32) -> Vec<NextHop> {
            let Some(len) = routes
                .iter()
                .filter(|r| dst & mask(r.len) == r.prefix)
                .map(|r| r.len)
                .max()
            else {
                return Vec::new();
            };
            let cands: Vec<(u64, NextHop)> = routes
                .iter()
                .filter(|r| r.len == len && dst & mask(len) == r.prefix)
                .map(|r| {
                    // The gateway is never penalised.
                    let pen = r
                        .next_hop
                        .tunnel()
                        .map_or(0, |t| Penalties::default().of(health[t.0 as usize]));
                    (u64::from(r.priority) + u64::from(pen), r.next_hop)
                })
                .collect();
            let best = cands.iter().map(|c| c.0).min().unwrap();
            let mut out: Vec<NextHop> = cands.iter().filter(|c| c.0 == best).map(|c| c.1).collect();
            out.sort();
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            #[test]
            fn table_matches_reference((health, routes, mode) in inputs(), probes in prop::collection::vec(any::<(u8, u32)>(), 64)) {
                let table = ForwardingTable::builder()
                    .mode(mode)
                    .tunnels(health.iter().enumerate().map(|(i, &h)| (TunnelId(i as u32), h)))
                    .routes(routes.iter().copied())
                    .build()
                    .unwrap();
                for (near, h) in probes {
                    // Probe around the interesting prefixes as well as anywhere.
                    let dst = match near % 4 {
                        0 => h,
                        1 => 0x0A01_0200 | (h & 0xff),
                        2 => 0x0A01_0000 | (h & 0xffff),
                        _ => 0x0A00_0000 | (h & 0x00ff_ffff),
                    };
                    let want = reference(&health, &routes, dst);
                    match table.lookup_group(dst) {
                        None => prop_assert!(want.is_empty()),
                        Some(g) => {
                            prop_assert_eq!(table.group_tunnels(g), &want[..]);
                            let t = table.select(dst, h.rotate_left(13)).unwrap();
                            prop_assert!(want.contains(&t));
                        }
                    }
                }
            }
        }
    }

    type GoldenFlow = (
        &'static str,
        &'static str,
        IpProtocol,
        bool,
        u16,
        u16,
        u32,
        u32,
    );

    /// Documented flows and the tunnel each must take. Must never change: anycast appliances must
    /// agree, and a change moves live flows. Values computed once by this implementation.
    /// Columns: the packet, then the tunnel picked among T1..=T4 by modulo and by resilient mode.
    #[rustfmt::skip]
    const GOLDEN_FLOWS: [GoldenFlow; 6] = [
        // src            dst              protocol          fragment sport  dport  modulo resilient
        ("198.51.100.7", "203.0.113.10",  IpProtocol::Tcp,  false,   40000, 443,   3,     3),
        ("198.51.100.7", "203.0.113.10",  IpProtocol::Tcp,  false,   40001, 443,   2,     1),
        ("198.51.100.8", "203.0.113.10",  IpProtocol::Udp,  false,   53000, 53,    1,     2),
        ("192.0.2.1",    "203.0.113.200", IpProtocol::Icmp, false,   0,     0,     3,     3),
        ("192.0.2.1",    "203.0.113.200", IpProtocol::Udp,  true,    4500,  4500,  3,     3), // fragment
        ("10.9.8.7",     "203.0.113.1",   IpProtocol::Esp,  false,   0,     0,     1,     2),
    ];

    #[test]
    fn golden_flows_pick_the_same_tunnel_everywhere() {
        let ids = [1, 2, 3, 4];
        let modulo = wide(EcmpMode::Modulo, &ids, &[]);
        let resilient = wide(EcmpMode::Resilient, &ids, &[]);
        for (src, dst, proto, frag, sp, dp, want_mod, want_res) in GOLDEN_FLOWS {
            let h = flow_hash(ip(src), ip(dst), proto, frag, sp, dp);
            let got = (
                modulo.select(ip(dst), h).unwrap().tunnel().unwrap().0,
                resilient.select(ip(dst), h).unwrap().tunnel().unwrap().0,
            );
            assert_eq!(
                got,
                (want_mod, want_res),
                "{src} -> {dst} {proto:?} {sp}->{dp}"
            );
        }
    }
}
