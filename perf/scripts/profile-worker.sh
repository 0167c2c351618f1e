#!/usr/bin/env bash
# Where a worker's instructions go, per packet, on the same-core harness: the appliance (release
# build) polls one net_pcap port that replays a conduit-perf capture endlessly
# (rx_pcap=CAPTURE,infinite_rx=1), under callgrind. After RUN_SECONDS the counts are dumped
# and the figures of the worker's poll loop (PipelineWorker::run and what it calls; start-up is
# outside it) are printed: instructions per packet in the poll loop, split into receive,
# transmit, the pipeline with the loop's own work and, inside it, the route lookup and the ESP cipher call.
#
#   bash perf/scripts/profile-worker.sh                         # GRE encap, 64-byte frames
#   PROFILE=esp-encap SIZE=1434 bash perf/scripts/profile-worker.sh
#   PROFILE=decap RUN_SECONDS=120 KEEP=/tmp/prof bash perf/scripts/profile-worker.sh
#
# This is the profile to use where `perf record` cannot run (a VM without a PMU). Instructions
# are deterministic; cycles are not: divide the same-core harness's cycles/pkt (same-core.sh,
# esp-vs-crypto-perf.sh) by these counts for the worker's instructions per cycle. callgrind runs
# the program some 50 times slower, so a run sees a few million packets; the per-packet counts
# do not depend on that. The full profile (callgrind.out) is kept with KEEP=DIR, for
# callgrind_annotate or kcachegrind.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
profile=${PROFILE:-encap}
size=${SIZE:-64}
secs=${RUN_SECONDS:-60}

[ "${SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh >&2
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y valgrind >&2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -p conduit -p perf --bin conduit --bin conduit-perf >&2
conduit="$CARGO_TARGET_DIR/release/conduit"
perf_bin="$CARGO_TARGET_DIR/release/conduit-perf"

work=${KEEP:-$(mktemp -d /tmp/profile-worker.XXXXXX)}
mkdir -p "$work"
pid=""
cleanup() {
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# No hugepages under valgrind: EAL's memory comes from ordinary pages.
mem="--no-huge -m 1024 --no-shconf"
# shellcheck disable=SC2086
"$perf_bin" -l 0 $mem --no-pci --file-prefix prof-gen --log-level=lib.eal:warning \
    -- --profile "$profile" --proto udp --size "$size" \
    --write-pcap "$work/capture.pcap" --write-config "$work/config.yaml" >"$work/gen.log" 2>&1 || {
    echo "conduit-perf could not write the $profile profile:" >&2; cat "$work/gen.log" >&2; exit 1; }
[ -f "$work/config.yaml" ] || { echo "profile $profile writes no appliance config" >&2; exit 1; }

out="$work/callgrind.out"
rm -f "$out" "$out".*
# --fair-sched: the poll loop never blocks, and without it the control thread may starve.
# shellcheck disable=SC2086
valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file="$out" \
    "$conduit" -l 0,1 $mem --no-pci --file-prefix prof --log-level=lib.eal:warning \
    --vdev "net_pcap0,rx_pcap=$work/capture.pcap,infinite_rx=1" \
    -- --config "$work/config.yaml" --stats-interval 0 >"$work/conduit.log" 2>&1 &
pid=$!
echo "# profiling $profile, ${size}-byte frames, for ${secs}s under callgrind (log: $work/conduit.log)" >&2
sleep "$secs"
kill -0 "$pid" 2>/dev/null || { echo "the appliance stopped early:" >&2; tail -5 "$work/conduit.log" >&2; exit 1; }
callgrind_control -d "$pid" >/dev/null
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pid=""
dump=$(ls "$out".* 2>/dev/null | tail -1)
[ -s "${dump:-}" ] || { echo "callgrind wrote no profile" >&2; exit 1; }

# Inclusive counts per function, and call counts from the caller tree.
callgrind_annotate --inclusive=yes --threshold=100 "$dump" 2>/dev/null >"$work/inclusive.txt"
callgrind_annotate --inclusive=yes --tree=calling --threshold=100 "$dump" 2>/dev/null >"$work/tree.txt"

# callgrind_annotate lists a function once per source file its inlined code came from; the
# largest of those lines is the function's own inclusive count.
incl() { # function name -> its inclusive instructions
    awk -v p="$1" 'index($0, p) && $1 ~ /^[0-9,]+$/ {gsub(",", "", $1); if ($1 + 0 > m) m = $1 + 0}
        END {printf "%.0f\n", m}' "$work/inclusive.txt"
}
# Packets: receive calls times the burst, since net_pcap's endless replay fills every burst (the
# dump may land inside one burst: at most one burst's packets off in millions).
burst=$(awk '$1 == "burst:" {print $2; exit}' "$work/config.yaml")
rx_calls=$(awk 'index($0, "> ") && index($0, "rte_eth_rx_burst__extern (") {
    match($0, /\(([0-9,]+)x\)/); s = substr($0, RSTART + 1, RLENGTH - 3); gsub(",", "", s); print s; exit}' "$work/tree.txt")
packets=$(( ${rx_calls:-0} * ${burst:-32} ))
[ "$packets" -gt 0 ] || { echo "no packet reached the worker; see $work/conduit.log" >&2; exit 1; }

row() { # label instructions ("-": no such call, e.g. inlined by this build or not on this path)
    awk -v l="$1" -v i="${2:-0}" -v n="$packets" 'BEGIN {
        if (i > 0) printf "%-46s %10.1f\n", l, i / n; else printf "%-46s %10s\n", l, "-"}'
}
run=$(incl 'dataplane::worker::pipeline::PipelineWorker::run')
rx=$(incl ':rte_eth_rx_burst__extern')
tx=$(incl ':rte_eth_tx_burst__extern')
echo "# $profile, ${size}-byte frames: $packets packets through the worker under callgrind"
printf "%-46s %10s\n" "part of the poll loop" "instr/pkt"
row "poll loop (PipelineWorker::run)" "$run"
row "  receive (rte_eth_rx_burst: net_pcap's copy)" "$rx"
row "  transmit (rte_eth_tx_burst: net_pcap frees)" "$tx"
row "  pipeline and the loop's own work" "$((run - rx - tx))"
row "    route lookup (lookup_group)" "$(incl 'ForwardingTable::lookup_group')"
row "    ESP cipher (cryptodev CPU crypto)" "$(incl ':rte_cryptodev_sym_cpu_crypto_process')"
if [ -n "${KEEP:-}" ]; then echo "# full profile: $dump"; else echo "# full profile: rerun with KEEP=DIR to keep it"; fi
