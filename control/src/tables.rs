//! Turns a validated [`Config`] into the immutable values the workers read: the
//! [`ForwardingTable`] (routes with health penalties and ECMP groups) and the pipeline
//! [`Context`] (MACs, addresses, the tunnel table).
//!
//! Tunnel ids are the tunnels' positions in the config file. The resilient ECMP buckets are
//! derived from tunnel ids, so a reload that keeps the tunnels' order keeps every flow where it
//! was.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use conduit_packet::esp::sa::IpsecConfig;
use conduit_packet::pipeline::{self, Context, ContextConfig, Tunnel, TunnelKind};
use conduit_packet::route::{ForwardingTable, Health, NextHop, Route, TunnelId};
use conduit_packet::wire::EthernetAddress;

use crate::config::Config;

/// Why the tables could not be built from a config that passed validation.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("forwarding table: {0}")]
    Table(#[from] conduit_packet::route::BuildError),
    #[error("pipeline context: {0}")]
    Context(#[from] pipeline::ContextError),
    #[error("pipeline mode needs `{0}` in the config")]
    Missing(&'static str),
    #[error("{0}")]
    Other(String),
}

/// Builds the forwarding table with the given per-tunnel health (indexed like
/// `config.tunnels`; missing entries count as healthy).
pub fn forwarding_table(
    config: &Config,
    health: &[Health],
) -> Result<ForwardingTable, TablesError> {
    let tunnels = config.tunnels.iter().enumerate().map(|(i, _)| {
        (
            TunnelId(i as u32),
            health.get(i).copied().unwrap_or_default(),
        )
    });
    let ids: HashMap<&str, usize> = config
        .tunnels
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut routes = Vec::with_capacity(config.routes.len());
    for r in &config.routes {
        // Validation guarantees exactly one of `tunnel` and `next_hop`.
        let next_hop = match &r.tunnel {
            Some(name) => {
                let idx = *ids
                    .get(name.as_str())
                    .ok_or_else(|| TablesError::Other(format!("route to unknown tunnel {name}")))?;
                NextHop::Tunnel(TunnelId(idx as u32))
            }
            None => NextHop::Gateway,
        };
        let mut route = Route::new(
            u32::from(r.prefix.addr()),
            r.prefix.prefix_len(),
            next_hop,
            r.priority,
        );
        route.weight = r.weight();
        routes.push(route);
    }
    Ok(ForwardingTable::builder()
        .mode(config.ecmp.mode)
        .buckets(config.ecmp.buckets as usize)
        .tunnels(tunnels)
        .routes(routes)
        .build()?)
}

/// The pipeline's view of one configured tunnel.
fn tunnel_of(t: &crate::config::TunnelConfig) -> Result<Tunnel, TablesError> {
    let base = match t.kind {
        TunnelKind::Gre => Tunnel::gre(t.local, t.remote, t.our_address(), t.customer_address()),
        TunnelKind::Ipsec => {
            Tunnel::ipsec(t.local, t.remote, t.our_address(), t.customer_address())
        }
    };
    let mut tunnel = base
        .with_ttl(t.ttl)
        .with_mtu(t.mtu())
        .with_mss(t.mss())
        .with_clear_df(t.clear_df);
    if let Some(key) = t.key {
        tunnel = tunnel.with_key(key);
    }
    Ok(tunnel)
}

/// Builds the pipeline context. `port_macs` are the ports' device MAC addresses in config
/// order (a port's configured `mac` replaces its device's); `gateway_mac` is the configured static MAC or the one ARP resolved.
/// The IPsec tunnels get no SAs (see [`context_with_ipsec`]).
pub fn context(
    config: &Config,
    port_macs: &[EthernetAddress],
    gateway_mac: EthernetAddress,
    table: Arc<ForwardingTable>,
) -> Result<Context, TablesError> {
    let ipsec = crate::ipsec::SaRegistry::new(0).build(config, None);
    context_with_ipsec(config, port_macs, gateway_mac, table, ipsec)
}

/// [`context`] with the IPsec tunnels' SAs, as [`SaRegistry::build`](crate::ipsec::SaRegistry::build)
/// makes them.
pub fn context_with_ipsec(
    config: &Config,
    port_macs: &[EthernetAddress],
    gateway_mac: EthernetAddress,
    table: Arc<ForwardingTable>,
    ipsec: IpsecConfig,
) -> Result<Context, TablesError> {
    let (gateway_port, _) = config
        .gateway_port()
        .ok_or(TablesError::Missing("gateway"))?;
    let ports = config
        .dataplane
        .ports
        .iter()
        .zip(port_macs)
        .map(|(p, mac)| pipeline::PortConfig {
            // The configured MAC wins over the device's, also where the device keeps its own
            // (docs/behaviour.md §8).
            mac: p.mac.unwrap_or(*mac),
            addresses: p.ipv4.iter().map(|c| c.addr()).collect(),
        })
        .collect();
    let tunnels = config
        .tunnels
        .iter()
        .enumerate()
        .map(|(i, t)| Ok((TunnelId(i as u32), tunnel_of(t)?)))
        .collect::<Result<Vec<_>, TablesError>>()?;
    let cc = ContextConfig {
        ports,
        gateway_port: gateway_port as u16,
        gateway_mac,
        local_endpoints: config.local_endpoints.clone(),
        tunnels,
        icmp_ttl_exceeded: config.icmp.ttl_exceeded,
        ipv4_options: config.ipv4_options,
        ipsec,
        ..ContextConfig::default()
    };
    Ok(Context::new(&cc, table)?)
}

/// The configured static gateway MAC, if any.
pub fn static_gateway_mac(config: &Config) -> Option<EthernetAddress> {
    config.gateway.as_ref().and_then(|g| g.mac)
}

/// The gateway's IPv4 address and our address on its port (for ARP).
pub fn gateway_arp_addresses(config: &Config) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let g = config.gateway.as_ref()?;
    let (_, port) = config.gateway_port()?;
    Some((g.ipv4, port.ipv4?.addr()))
}
