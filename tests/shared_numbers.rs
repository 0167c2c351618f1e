//! Numbers that must stay copied because the crate that checks them cannot depend on the crate
//! that defines them (`control` has no DPDK); each copy is tied to its source here.

#[test]
fn config_burst_limit_is_the_dataplane_burst_array() {
    assert_eq!(
        usize::from(control::config::MAX_BURST),
        dataplane::mbuf::MAX_BURST
    );
}

#[test]
fn packet_buffers_hold_a_frame_and_a_reassembled_datagram_of_every_port_mtu() {
    use dataplane::mempool::DEFAULT_DATA_ROOM;
    use dataplane::port::FRAME_OVERHEAD;
    use dataplane::worker::pipeline::{data_room_for_mtu, max_datagram};
    assert_eq!(
        data_room_for_mtu(control::config::DEFAULT_LINK_MTU),
        DEFAULT_DATA_ROOM
    );
    assert_eq!(
        data_room_for_mtu(*control::config::PORT_MTU_RANGE.end()),
        9216
    );
    for mtu in control::config::PORT_MTU_RANGE {
        let room = data_room_for_mtu(mtu);
        assert!(
            usize::from(room) >= usize::from(mtu + FRAME_OVERHEAD),
            "MTU {mtu}"
        );
        assert_eq!(room % 1024, 0, "MTU {mtu}");
        // The payload of an outer datagram that filled the port's MTU is reassembled whole.
        assert!(max_datagram(room) >= usize::from(mtu) - 20, "MTU {mtu}");
    }
}
