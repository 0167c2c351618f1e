#!/usr/bin/env bash
# The failover demonstration: Conduit on a net_tap port in a network namespace, where a scapy
# peer (tests/interop/peer.py) plays the gateway and the customer routers of three GRE tunnels
# (tests/interop/failover.yaml: prim-a and prim-b at priority 100, backup at 200) and sends UDP
# flows. The peer silences prim-a, then prim-b, then restores both; the script prints when the
# flows moved, the appliance's health transitions and its final health summary.
# Needs root (network namespaces). Takes about 20 s after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
. "$HOME/.cargo/env" 2>/dev/null || true
cargo build --quiet --bin conduit
CONDUIT_BIN="$PWD/target/debug/conduit" python3 -m pytest -q -s -p no:cacheprovider \
    tests/interop/test_failover.py -k recovery
