//! The forwarding table: longest-prefix match, effective priority and ECMP selection.
//!
//! * [`lpm`]: an immutable IPv4 DIR-24-8 longest-prefix-match table.
//! * [`ecmp`]: the flow hash (seed rule) and modulo / weighted / resilient member selection.
//! * [`table`]: [`ForwardingTable`], built off the packet path from tunnels, their health and
//!   routes; workers call [`ForwardingTable::select`].
//!
//! Everything here is plain Rust over plain data (no DPDK types), so it is tested without EAL.

pub mod ecmp;
pub mod lpm;
pub mod table;

pub use ecmp::{flow_hash, EcmpMode, FlowKey};
pub use lpm::{Lpm, LpmError};
pub use table::{
    AdminState, BuildError, ForwardingTable, ForwardingTableBuilder, GroupId, Health, NextHop,
    Penalties, PrefixUse, Route, TableStats, TunnelId, DEGRADED_PENALTY, DOWN_PENALTY,
};
