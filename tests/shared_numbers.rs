//! Numbers that must stay copied because the crate that checks them cannot depend on the crate
//! that defines them (`control` has no DPDK); each copy is tied to its source here.

#[test]
fn config_burst_limit_is_the_dataplane_burst_array() {
    assert_eq!(
        usize::from(control::config::MAX_BURST),
        dataplane::mbuf::MAX_BURST
    );
}
