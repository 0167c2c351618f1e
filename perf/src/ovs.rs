//! The profile's job as OpenFlow rules for Open vSwitch's userspace (DPDK) datapath, so that
//! OVS-DPDK can be measured doing what the appliance does on the same capture
//! (`perf/scripts/same-core.sh`).
//!
//! The bridge (`datapath_type=netdev`) holds the DPDK port [`DPDK_PORT`] facing the gateway and
//! a GRE port [`GRE_PORT`] with `options:remote_ip=flow`, `options:packet_type=legacy_l3`
//! (plain GRE carrying IPv4, as Conduit sends), the anycast endpoint on the bridge's own
//! (LOCAL) interface, a route to the tunnel remotes via the gateway and the gateway's MAC as a
//! static neighbour. Then, with OVS's native tunnelling:
//!
//! - a customer-prefix packet (from the DPDK port, or decapsulated from GRE for transit) has
//!   its TTL decremented and is pushed into the prefix's tunnel (a select group over the
//!   prefix's tunnels when it has several paths), from whichever port it came;
//! - GRE to the endpoint goes to LOCAL, which OVS turns into a tunnel pop;
//! - a decapsulated packet to an internet host has its TTL decremented and goes back out of
//!   the DPDK port to the gateway's MAC;
//! - what the bridge sends from LOCAL (the pushed tunnel packets) leaves by the DPDK port.

use std::fmt::Write as _;

use crate::capture::NET_PCAP_MAC;
use crate::profile::{self, ProfileSpec, SpecError, ENDPOINT, GATEWAY_MAC};

/// The bridge's DPDK port.
pub const DPDK_PORT: &str = "dpdk0";
/// The bridge's GRE port.
pub const GRE_PORT: &str = "gre0";

fn mac(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// Select groups, one per distinct set of equal-cost tunnels (`ovs-ofctl -O OpenFlow13
/// add-groups`); empty with one path per prefix.
pub fn groups(spec: &ProfileSpec) -> Result<String, SpecError> {
    check(spec)?;
    let mut g = String::new();
    if spec.paths > 1 {
        // Prefix p uses tunnels (p + j) % tunnels: the set depends on p % tunnels only.
        for first in 0..spec.tunnels.min(spec.routes) {
            let _ = write!(g, "group_id={},type=select", first + 1);
            for j in 0..spec.paths {
                let t = (first + j) % spec.tunnels;
                let _ = write!(
                    g,
                    ",bucket=actions=set_field:{}->tun_dst,output:{GRE_PORT}",
                    profile::remote(t)
                );
            }
            g.push('\n');
        }
    }
    Ok(g)
}

/// The rules (`ovs-ofctl -O OpenFlow13 add-flows`), for every profile kind at once: each rule
/// only matches its own kind of traffic.
pub fn flows(spec: &ProfileSpec) -> Result<String, SpecError> {
    check(spec)?;
    let (internet, len) = profile::internet_prefix();
    let mut f = String::new();
    let _ = writeln!(f, "priority=30,in_port=LOCAL,actions=output:{DPDK_PORT}");
    let _ = writeln!(
        f,
        "priority=20,in_port={DPDK_PORT},ip,nw_proto=47,nw_dst={ENDPOINT},actions=LOCAL"
    );
    let _ = writeln!(
        f,
        "priority=10,in_port={GRE_PORT},ip,nw_dst={internet}/{len},actions=dec_ttl,set_field:{}->eth_src,set_field:{}->eth_dst,output:{DPDK_PORT}",
        mac(NET_PCAP_MAC),
        mac(GATEWAY_MAC)
    );
    let mut last = None;
    for (prefix, tunnel) in spec.routes_iter() {
        if last == Some(prefix) {
            continue; // the other paths are in the prefix's group
        }
        last = Some(prefix);
        let to = if spec.paths > 1 {
            format!("group:{}", tunnel % spec.tunnels + 1)
        } else {
            format!(
                "set_field:{}->tun_dst,output:{GRE_PORT}",
                profile::remote(tunnel)
            )
        };
        // Transit arrives on the GRE port and leaves by it: OpenFlow drops output to the
        // ingress port, so the rule forgets the ingress port first.
        let _ = writeln!(
            f,
            "priority=10,ip,nw_dst={prefix}/24,actions=load:0->NXM_OF_IN_PORT[],dec_ttl,{to}"
        );
    }
    Ok(f)
}

/// OVS's side of the comparison carries plain (unkeyed) GRE only.
fn check(spec: &ProfileSpec) -> Result<(), SpecError> {
    spec.validate()?;
    if spec.gre_key.is_some() {
        return Err(SpecError::Invalid(
            "the OVS rules are for unkeyed GRE (no --gre-key)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Ecmp, ProfileKind, Proto};

    fn spec(paths: u32) -> ProfileSpec {
        ProfileSpec {
            kind: ProfileKind::Mix,
            proto: Proto::Udp,
            flows: 100,
            sizes: vec![64],
            tunnels: 4,
            routes: 10,
            paths,
            ecmp: Ecmp::Modulo,
            gre_key: None,
        }
    }

    #[test]
    fn one_rule_per_prefix_to_its_tunnel() {
        let f = flows(&spec(1)).unwrap();
        assert_eq!(f.lines().count(), 3 + 10);
        // Prefix 5 (64.0.5.0/24) goes to tunnel 5 % 4 = 1, remote 100.64.0.2.
        assert!(f.contains(
            "priority=10,ip,nw_dst=64.0.5.0/24,actions=load:0->NXM_OF_IN_PORT[],dec_ttl,set_field:100.64.0.2->tun_dst,output:gre0\n"
        ));
        assert!(f.contains("nw_dst=198.18.0.0/15,"));
        assert!(f.contains("nw_proto=47,nw_dst=203.0.113.1,actions=LOCAL"));
        assert!(f.contains("set_field:02:00:00:00:00:fe->eth_dst"));
        assert_eq!(groups(&spec(1)).unwrap(), "");
    }

    #[test]
    fn equal_cost_paths_become_select_groups() {
        let s = spec(2);
        let g = groups(&s).unwrap();
        assert_eq!(g.lines().count(), 4);
        // Group 4 holds tunnels 3 and 0 (remotes .4 and .1).
        assert!(g.contains(
            "group_id=4,type=select,bucket=actions=set_field:100.64.0.4->tun_dst,output:gre0,bucket=actions=set_field:100.64.0.1->tun_dst,output:gre0\n"
        ));
        let f = flows(&s).unwrap();
        assert_eq!(f.lines().count(), 3 + 10);
        assert!(f.contains("nw_dst=64.0.7.0/24,actions=load:0->NXM_OF_IN_PORT[],dec_ttl,group:4\n"));
    }

    #[test]
    fn keyed_gre_is_refused() {
        let mut s = spec(1);
        s.gre_key = Some(1);
        assert!(flows(&s).is_err());
    }
}
