#!/usr/bin/env bash
# Installs what Conduit needs on a Debian 12 machine and reserves hugepages when it can.
# Idempotent and quiet when everything is already there. Sourced or run; prints one summary line.
#
#   CONDUIT_HUGEPAGES=N   2 MiB hugepages to reserve (default 512; 0 = do not try)
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

need_apt=()
for p in libdpdk-dev dpdk dpdk-dev pkg-config clang libclang-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ "$want_test" = 1 ]; then
    # Open vSwitch, nftables, trafgen (netsniff-ng) and a font for the plot: the lab test;
    # dpkg-dev: the package test.
    for p in tshark iproute2 valgrind openvswitch-switch nftables netsniff-ng fonts-dejavu-core dpkg-dev; do
        dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
    done
fi
if ((${#need_apt[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing Debian packages (${need_apt[*]}); run as root or: sudo apt-get install -y ${need_apt[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# PyYAML: the live failover tests read their configs; prometheus_client: the metrics endpoint's
# interop test parses it with the official parser.
if [ "$want_test" = 1 ] && ! python3 -c "import scapy, cryptography, pytest, yaml, prometheus_client" 2>/dev/null; then
    echo "setup: installing scapy, cryptography, pytest, PyYAML and prometheus_client from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check scapy cryptography pytest pyyaml prometheus-client 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
            scapy cryptography pytest pyyaml prometheus-client
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust (rustup) first" >&2
    exit 1
fi

# Hugepages: DPDK runs about twice as fast with them. Reserve them if we may; otherwise
# callers fall back to --no-huge (see scripts/eal-mem.sh).
want=${CONDUIT_HUGEPAGES:-512}
if [ "$want" -gt 0 ] && [ "$(id -u)" = 0 ]; then
    have=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
    if [ "$have" -lt "$want" ]; then
        echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
    fi
    mkdir -p /dev/hugepages
    mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
fi
