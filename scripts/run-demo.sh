#!/usr/bin/env bash
# Builds Conduit and runs the appliance on configs/default.yaml over two net_null virtual ports
# (an endless source and sink), printing per-port and per-core statistics every second, then
# the final statistics. Runs for DURATION seconds (default 10; 0 = until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --bin conduit
mem=$(bash scripts/eal-mem.sh)
duration=${DURATION:-10}
cmd=(target/release/conduit -l 0,1 $mem --no-pci --vdev net_null0 --vdev net_null1
     -- --config "${CONFIG:-configs/default.yaml}")
echo "+ ${cmd[*]}" >&2
if [ "$duration" = 0 ]; then
    exec "${cmd[@]}"
else
    exec timeout --foreground --preserve-status -s INT -k 10 "$duration" "${cmd[@]}"
fi
