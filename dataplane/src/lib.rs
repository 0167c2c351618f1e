//! Conduit's dataplane: the safe layer over DPDK (`eal`, `mempool`, `mbuf`, `port`, `lcore`,
//! `ring`, `telemetry`, `crypto`), which holds every `unsafe` block of the project outside `dpdk-sys` (and
//! the documented exception in `conduit_packet::publish`), and the per-core poll loops (`worker`,
//! `neighbor`) that run the pure packet logic of [`conduit_packet`] over NIC bursts.

pub mod crypto;
pub mod eal;
pub mod error;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod ring;
pub mod telemetry;

// The loops only call the safe layer above.
#[deny(unsafe_code)]
pub mod neighbor;
#[deny(unsafe_code)]
pub mod worker;
