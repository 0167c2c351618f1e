//! `conduit-perf`, the testpmd-style harness (issue: perf harness). Only the side-by-side
//! io-forwarding benchmark script (`perf/scripts/io-vs-testpmd.sh`) exists so far.
