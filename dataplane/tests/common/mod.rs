//! Shared set-up for tests that start a real EAL. Each test runs in its own process under
//! cargo-nextest (EAL initialises once per process), with `--no-huge`, no PCI scan and a
//! private file prefix so tests can run in parallel.

use dataplane::eal::Eal;

/// The EAL file prefix of this process's instance (`dpdk-telemetry.py -f` takes it).
pub const PREFIX: &str = "conduit-test";

pub fn init_eal(extra: &[&str]) -> Eal {
    conduit_test_support::eal::init_eal(PREFIX, extra)
}
