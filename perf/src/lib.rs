//! `conduit-perf`, the testpmd-style harness: traffic profiles ([`profile`]), the arithmetic
//! and output of a run ([`report`]) and the profile's traffic as a capture for same-core
//! replay ([`capture`]) with the same job as OpenFlow rules for OVS-DPDK ([`ovs`]). The binary (`src/main.rs`) runs a generator and a sink on EAL's main
//! lcore and the real pipeline worker on its own lcore, joined by ring ports.
pub mod capture;
pub mod ovs;
pub mod profile;
pub mod report;
