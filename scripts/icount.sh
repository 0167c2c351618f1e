#!/usr/bin/env bash
# Deterministic per-packet cost of the pipeline: instructions per packet under callgrind for the
# pipeline bench's workload (64-byte UDP, 10,000 flows, 1,000 routes), via
# dataplane/packet/examples/encap_icount.rs. Where the VM exposes hardware counters it also prints
# user-mode instructions and core cycles per packet from `perf stat` (the difference between
# PASSES passes and zero passes, so set-up is excluded; cycles are noisy on a shared machine,
# instructions are not).
#
#   bash scripts/icount.sh            # encap, decap and reset-only, 5 passes (50,000 packets)
#   PASSES=20 bash scripts/icount.sh encap
set -euo pipefail
cd "$(dirname "$0")/.."
PASSES=${PASSES:-5}
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(encap decap reset)
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p conduit-packet --example encap_icount
bin="$target/release/examples/encap_icount"
packets=$((PASSES * 10000))
for mode in "${modes[@]}"; do
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
        --toggle-collect='*measured_passes*' "$bin" "$mode" "$PASSES" >/dev/null 2>&1
    ir=$(awk '/^summary:/ {print $2}' "$out")
    rm -f "$out"
    line=$(awk -v m="$mode" -v ir="$ir" -v n="$packets" \
        'BEGIN { printf "%-6s callgrind: %7.1f instructions/packet", m, ir / n }')
    if perf stat -x, -e instructions:u true >/dev/null 2>&1; then
        stat() { perf stat -x, -e instructions:u,cycles:u "$bin" "$mode" "$1" 2>&1 >/dev/null |
            awk -F, '/instructions/ {i=$1} /cycles/ {c=$1} END {print i, c}'; }
        read -r i0 c0 < <(stat 0)
        read -r i1 c1 < <(stat $((PASSES * 4)))
        line+=$(awk -v i0="$i0" -v i1="$i1" -v c0="$c0" -v c1="$c1" -v n=$((packets * 4)) \
            'BEGIN { printf "   perf: %7.1f instructions/packet, %6.1f cycles/packet", (i1 - i0) / n, (c1 - c0) / n }')
    fi
    echo "$line"
done
