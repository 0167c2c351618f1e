#!/usr/bin/env bash
# Runs a lab (default: the three-tunnel lab) on this machine: installs what labs need on Debian 12
# (scripts/setup.sh, then Open vSwitch, nftables, trafgen, tcpreplay and a font for the plot),
# builds the appliance and the lab runner, and runs `conduit-lab run`. It ends with the report and the plot's path.
# Needs root: network namespaces, nftables, raw sockets.
#
#   scripts/lab.sh [LAB.yaml] [conduit-lab run options: --keep, --out DIR]
#   CONDUIT_LAB_PROFILE=release   build the appliance optimised (debug is enough at lab rates)
set -euo pipefail
cd "$(dirname "$0")/.."
lab=configs/labs/three-tunnels.yaml
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    lab=$1
    shift
fi
if [ "$(id -u)" != 0 ]; then
    echo "lab: needs root (network namespaces, nftables, raw sockets); try: sudo $0 $*" >&2
    exit 1
fi
bash scripts/setup.sh
need_apt=()
# The Open vSwitch packages bring ovsdb-server and ovs-vswitchd; a lab starts its own per site,
# with private run directories, and never uses a system-wide instance.
for p in openvswitch-switch openvswitch-common nftables iproute2 netsniff-ng tcpreplay fonts-dejavu-core; do
    dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if ((${#need_apt[@]})); then
    echo "lab: installing ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
. "$HOME/.cargo/env" 2>/dev/null || true
profile=${CONDUIT_LAB_PROFILE:-debug}
flags=()
[ "$profile" = release ] && flags=(--release)
cargo build --quiet "${flags[@]}" -p conduit -p conduit-lab
exec "target/$profile/conduit-lab" run "$lab" "$@"
