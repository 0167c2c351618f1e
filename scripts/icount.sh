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
#   bash scripts/icount.sh --check    # the CI guard: fails when a path exceeds its limit in
#                                     # perf/icount-limits (instructions/packet; callgrind only)
#
# The count is deterministic for a given toolchain and source, so the guard is a test, not a
# benchmark: a change that adds instructions to the encap or decap path fails it. Raise a limit
# only with the reason in the commit message.
set -euo pipefail
cd "$(dirname "$0")/.."
PASSES=${PASSES:-5}
check=0
if [ "${1:-}" = "--check" ]; then
    check=1
    shift
fi
modes=("$@")
if [ ${#modes[@]} -eq 0 ]; then
    if [ "$check" = 1 ]; then
        mapfile -t modes < <(awk '!/^#/ && NF {print $1}' perf/icount-limits)
    else
        modes=(encap decap reset)
    fi
fi
command -v valgrind >/dev/null || { echo "icount: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
failed=0
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
    if [ -z "$ir" ] || [ "$ir" = 0 ]; then
        echo "icount $mode: callgrind measured nothing (is measured_passes still a symbol?)" >&2
        exit 1
    fi
    if [ "$check" = 1 ]; then
        limit=$(awk -v m="$mode" '$1 == m {print $2}' perf/icount-limits)
        verdict=$(awk -v ir="$ir" -v n="$packets" -v lim="$limit" \
            'BEGIN { v = ir / n; printf "%.1f %s", v, (v <= lim ? "ok" : "OVER") }')
        echo "icount $mode: ${verdict% *} instructions/packet, limit $limit: ${verdict#* }"
        [ "${verdict#* }" = ok ] || failed=1
        continue
    fi
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
exit "$failed"
