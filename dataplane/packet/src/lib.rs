//! Conduit's packet logic, free of DPDK: zero-copy wire views ([`wire`]), the per-packet
//! classify-and-rewrite [`pipeline`], the immutable forwarding table with longest-prefix match and
//! ECMP ([`route`]), ESP's per-SA state ([`esp`]), the publication of that table to the workers ([`publish`]) and the per-core
//! counters ([`stats`]).
//!
//! Everything here works on byte slices and plain data, so it builds, is tested and is fuzzed
//! without libdpdk, pkg-config or libclang. The DPDK layer (`dataplane`) implements
//! [`pipeline::PacketBuf`] for its mbufs and runs the poll loops over this crate.
//!
//! `unsafe` is denied in this crate; the one exception is [`publish`], whose quiescent-state
//! reclamation hands out references to a value behind an atomic pointer (its module docs give the
//! memory-ordering argument, and every block carries a `// SAFETY:` comment).
#![deny(unsafe_code)]

pub mod esp;
pub mod pipeline;
#[allow(unsafe_code)]
pub mod publish;
pub mod route;
pub mod stats;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod wire;
