//! What the operator command line asks of the control plane (`conduit ctl`, docs/operations.md):
//! the routes with their effective priorities, and which way a given flow goes and why. Both
//! read the [`ControlPlane`]'s running config, tunnel states and published context; the flow's
//! next hop comes from [`Context::next_hop`], the workers' own selection code over the table
//! they read.

use std::net::Ipv4Addr;

use conduit_packet::pipeline::Context;
use conduit_packet::route::{NextHop, TunnelId};

use crate::config::Config;
use crate::plane::ControlPlane;

/// One configured route as it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    pub prefix: Ipv4Addr,
    pub len: u8,
    /// A tunnel's name, or `gateway`.
    pub next_hop: String,
    pub priority: u32,
    pub weight: u16,
    /// The next hop's health penalty now (0 for the gateway).
    pub penalty: u32,
    /// `priority + penalty`: lowest wins.
    pub effective_priority: u64,
    /// Whether traffic to the prefix may take this route now (it is among the ECMP members).
    pub active: bool,
}

/// Which way a flow goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The longest prefix containing the destination; `None`: no route.
    pub prefix: Option<(Ipv4Addr, u8)>,
    /// The routes of that prefix.
    pub candidates: Vec<RouteView>,
    /// The next hop the workers choose: a tunnel's name or `gateway`.
    pub chosen: Option<String>,
    /// Whether the ports are part of the flow hash (TCP and UDP; docs/behaviour.md §3).
    pub ports_hashed: bool,
    /// The published table's generation the answer comes from.
    pub generation: u64,
}

/// A flow as the operator gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

fn next_hop_of(config: &Config, r: &crate::config::RouteConfig) -> (Option<TunnelId>, String) {
    match &r.tunnel {
        Some(name) => (
            config
                .tunnels
                .iter()
                .position(|t| &t.name == name)
                .map(|i| TunnelId(i as u32)),
            name.clone(),
        ),
        None => (None, "gateway".to_string()),
    }
}

fn name_of(config: &Config, hop: NextHop) -> String {
    match hop {
        NextHop::Tunnel(id) => config
            .tunnels
            .get(id.0 as usize)
            .map_or_else(|| format!("tunnel #{}", id.0), |t| t.name.clone()),
        NextHop::Gateway => "gateway".to_string(),
    }
}

/// Every configured route whose prefix is inside `within` (all with `None`), in config order.
pub fn routes(plane: &ControlPlane, within: Option<(Ipv4Addr, u8)>) -> Vec<RouteView> {
    let config = plane.config();
    let ctx: &Context = plane.context();
    config
        .routes
        .iter()
        .filter(|r| {
            within.is_none_or(|(net, len)| {
                let mask = conduit_packet::route::lpm::mask(len);
                r.prefix.prefix_len() >= len && u32::from(r.prefix.addr()) & mask == u32::from(net)
            })
        })
        .map(|r| {
            let (id, next_hop) = next_hop_of(config, r);
            let penalty = id
                .and_then(|id| plane.tunnels().get(id.0 as usize))
                .map_or(0, |t| t.routing_health().penalty());
            let hop = id.map_or(NextHop::Gateway, NextHop::Tunnel);
            let (addr, len) = (r.prefix.addr(), r.prefix.prefix_len());
            let active = ctx
                .table()
                .describe(u32::from(addr), len)
                .is_some_and(|u| u.tunnels.contains(&hop));
            RouteView {
                prefix: addr,
                len,
                next_hop,
                priority: r.priority,
                weight: r.weight(),
                penalty,
                effective_priority: u64::from(r.priority) + u64::from(penalty),
                active,
            }
        })
        .collect()
}

/// Which way `flow` goes in the published table, and the routes it chose among.
pub fn lookup(plane: &ControlPlane, flow: Flow) -> Lookup {
    let ctx: &Context = plane.context();
    let (src, dst) = (u32::from(flow.src), u32::from(flow.dst));
    let chosen = ctx
        .next_hop(src, dst, flow.protocol, flow.src_port, flow.dst_port)
        .map(|(_, hop)| name_of(plane.config(), hop));
    let prefix = ctx
        .table()
        .matching_prefix(dst)
        .map(|(p, len)| (Ipv4Addr::from(p), len));
    let candidates = prefix.map_or_else(Vec::new, |p| {
        routes(plane, Some(p))
            .into_iter()
            .filter(|r| (r.prefix, r.len) == p)
            .collect()
    });
    Lookup {
        prefix,
        candidates,
        chosen,
        ports_hashed: conduit_packet::route::ecmp::hashes_ports(flow.protocol, false),
        generation: plane.generation(),
    }
}
