//! The context: configurations it refuses, and its ECMP selection against the table's.

use super::*;

#[test]
fn context_rejects_bad_configurations() {
    let check = |f: &dyn Fn(&mut ContextConfig), expected: ContextError| {
        let mut c = config(false);
        f(&mut c);
        assert_eq!(Context::new(&c, table()).unwrap_err(), expected);
    };
    check(&|c| c.gateway_port = 2, ContextError::GatewayPort(2));
    check(
        &|c| c.local_endpoints.push(a("224.0.0.1")),
        ContextError::InvalidAddress {
            what: "local endpoint",
            addr: a("224.0.0.1"),
        },
    );
    check(
        &|c| c.local_endpoints.push(E1),
        ContextError::DuplicateAddress(E1),
    );
    check(
        &|c| c.ports[1].addresses.push(a("10.200.0.0")),
        ContextError::DuplicateAddress(a("10.200.0.0")),
    );
    check(
        &|c| c.tunnels.push(c.tunnels[0]),
        ContextError::DuplicateTunnel(T0),
    );
    check(
        &|c| c.tunnels[0].0 = TunnelId(1 << 20),
        ContextError::TunnelIdTooLarge(TunnelId(1 << 20)),
    );
    check(
        &|c| c.tunnels[0].1.local = a("203.0.113.7"),
        ContextError::LocalNotEndpoint {
            tunnel: T0,
            local: a("203.0.113.7"),
        },
    );
    check(
        &|c| c.tunnels[0].1.mtu = 500,
        ContextError::InvalidMtu {
            tunnel: T0,
            mtu: 500,
        },
    );
    check(
        &|c| c.tunnels[0].1.mss = 1437,
        ContextError::InvalidMss {
            tunnel: T0,
            mss: 1437,
        },
    );
    check(
        &|c| c.tunnels[0].1.ttl = 0,
        ContextError::InvalidTtl { tunnel: T0 },
    );
    check(
        &|c| c.tunnels[5].1.key = None,
        ContextError::AmbiguousGre {
            tunnel: T0,
            other: T5,
        },
    );
    check(
        &|c| {
            c.tunnels.remove(1);
        },
        ContextError::MissingTunnel(T1),
    );
    assert!(ctx().with_table(table()).is_ok());
    assert_eq!(ctx().tunnel(T2).unwrap().key, Some(1001));
    assert!(format!("{:?}", ctx()).contains("tunnels: 6"));
}

#[test]
fn context_select_equals_the_table_in_every_ecmp_mode() {
    use crate::route::{EcmpMode, GroupId};
    let ids: Vec<TunnelId> = (0..20).map(TunnelId).collect();
    let tunnels: Vec<(TunnelId, Tunnel)> = ids
        .iter()
        .map(|&id| {
            let ours = Ipv4Addr::new(10, 201, 0, 2 * id.0 as u8);
            (
                id,
                Tunnel::gre(
                    E1,
                    Ipv4Addr::new(198, 51, 101, id.0 as u8 + 1),
                    ours,
                    a("10.202.0.1"),
                ),
            )
        })
        .collect();
    for mode in [EcmpMode::Modulo, EcmpMode::Weighted, EcmpMode::Resilient] {
        // Prefix i is served by tunnels 0..=i: groups of 1 to 20 members.
        let mut builder = ForwardingTable::builder()
            .mode(mode)
            .tunnels(ids.iter().map(|&id| (id, Health::Healthy)));
        for i in 0..20u32 {
            for t in 0..=i {
                builder = builder.route(Route::new(0x6440_0000 | i << 8, 24, TunnelId(t), 1));
            }
        }
        let table = Arc::new(builder.build().unwrap());
        let config = ContextConfig {
            tunnels: tunnels.clone(),
            ..config(false)
        };
        let ctx = Context::new(&config, table.clone()).unwrap();
        let mut h = 0x1234_5678u32;
        for g in 0..table.stats().groups as u32 {
            for _ in 0..2000 {
                h = h.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                assert_eq!(
                    ctx.select(GroupId(g), || h),
                    table.select_in(GroupId(g), h),
                    "{mode:?}"
                );
            }
            assert_eq!(
                ctx.select(GroupId(g), || u32::MAX),
                table.select_in(GroupId(g), u32::MAX)
            );
        }
    }
}
