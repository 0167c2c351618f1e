//! Helpers shared by Conduit's tests, benches and fuzz targets, so that each exists once:
//!
//! - [`frames`]: byte-level builders for Ethernet, IPv4, UDP, TCP, ICMP and GRE with valid
//!   checksums. They take and return std types only (`Ipv4Addr`, `[u8; 6]`, `Vec<u8>`) and are
//!   written independently of `conduit_packet::wire`, so the code under test never builds its
//!   own inputs, and so `conduit-packet`'s unit tests can use them without seeing a second copy
//!   of that crate's types.
//! - [`eal`]: arguments for a private, hugepage-free, PCI-free EAL instance (and, with the `eal`
//!   feature, `init_eal`).
//! - [`telemetry`]: DPDK's own telemetry client, `dpdk-telemetry.py`, driven from a test.
//! - [`pcap`]: a pcap writer and reader for net_pcap's input and output files.
//! - [`rng`]: a seeded PRNG for reproducible test inputs.
//!
//! The checks that need `conduit_packet`'s types (the test context and the outcome checker) live
//! in `conduit_packet::testing`, behind that crate's `test-support` feature.

pub mod eal;
pub mod frames;
pub mod pcap;
pub mod rng;
pub mod telemetry;
