//! `conduit-perf`, the testpmd-style harness: traffic profiles ([`profile`]) and the arithmetic
//! and output of a run ([`report`]). The binary (`src/main.rs`) runs a generator and a sink on
//! EAL's main lcore and the real pipeline worker on its own lcore, joined by ring ports.
pub mod profile;
pub mod report;
