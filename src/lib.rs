//! The `conduit` appliance as a library: the glue between the control plane ([`control`]), the
//! DPDK layer and poll loops ([`dataplane`]) and the operator interfaces. `src/main.rs` is the
//! command line over it; `conduit-perf` builds its workers through [`workers`] too.

pub mod appliance;
pub mod cli;
pub mod console;
pub mod control_loop;
pub mod ctl;
pub mod operator;
pub mod ops;
pub mod telemetry;
pub mod trace;
pub mod workers;
