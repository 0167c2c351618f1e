#!/usr/bin/env bash
# Conduit's test suite: formatting, lints, then every test (unit, property, and integration
# tests that start a real EAL over virtual devices, one process per test under cargo-nextest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets -- -D warnings
echo "== the pure crates build with no DPDK (no libdpdk, pkg-config or libclang reachable)" >&2
PKG_CONFIG_LIBDIR=/nonexistent LIBCLANG_PATH=/nonexistent CARGO_TARGET_DIR=target/nodpdk \
    cargo check -q -p conduit-packet -p control --all-targets
echo "== cargo nextest" >&2
cargo nextest run --workspace --no-fail-fast
echo "== instruction-count guard (callgrind: encap and decap instructions/packet against perf/icount-limits)" >&2
bash scripts/icount.sh --check
echo "== fuzz, short pass (every libFuzzer target, 200,000 executions each; the long run is scripts/fuzz.sh alone)" >&2
bash scripts/fuzz.sh --runs 200000
echo "== interop (scapy builds, conduit replays over net_pcap, scapy and tshark decode)" >&2
cargo build --bin conduit
CONDUIT_BIN="$PWD/target/debug/conduit" python3 -m pytest tests/interop -q -p no:cacheprovider
echo "== Debian package (cargo deb): installs, and its service starts on net_null, reloads and stops" >&2
bash scripts/test-package.sh
echo "== conduit-perf smoke (every profile's path once: mix of encap/decap/transit, IMIX; exits non-zero on a failed output check or a leaked mbuf)" >&2
cargo build -p perf --bin conduit-perf
target/debug/conduit-perf -l 0,1 $(bash scripts/eal-mem.sh) --no-pci --file-prefix perf-smoke \
    --log-level=lib.eal:warning -- --profile mix --proto mix --size imix --flows 1000 \
    --duration 1 --warmup 0.2 --stats-interval 500
