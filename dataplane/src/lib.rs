//! Conduit's dataplane: a safe layer over DPDK (`eal`, `mempool`, `mbuf`, `port`, `lcore`) that
//! holds every `unsafe` block of the project outside `dpdk-sys`, and the per-core poll loops.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod eal;
pub mod error;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod neighbor;
pub mod pipeline;
pub mod port;
pub mod publish;
pub mod ring;
pub mod route;
pub mod stats;
pub mod telemetry;
pub mod wire;
pub mod worker;
