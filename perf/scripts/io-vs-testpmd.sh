#!/usr/bin/env bash
# Side-by-side: Conduit's io forwarding against dpdk-testpmd --forward-mode=io, on the same two
# net_null ports, the same worker lcore (1; lcore 0 is the main/stats thread in both), the same
# burst (32) and ring sizes, alternating runs so that machine noise hits both alike.
#
#   ROUNDS=5 RUN_SECONDS=8 WARMUP=2 perf/scripts/io-vs-testpmd.sh
#
# Each run prints rates once a second; the first WARMUP samples are dropped and the median of
# the rest is the run's figure (forwarded packets per second summed over both ports). The
# result is the median over rounds of each tool and their ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
cargo build --release --bin conduit >&2
rounds=${ROUNDS:-5}
secs=${RUN_SECONDS:-8}
warm=${WARMUP:-2}
mem=$(bash scripts/eal-mem.sh)
vdevs=(--vdev net_null0 --vdev net_null1)
out=$(mktemp -d)

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

run_conduit() {
    timeout -s INT -k 5 "$secs" target/release/conduit -l 0,1 $mem --no-pci --file-prefix bench-c \
        "${vdevs[@]}" --log-level=lib.eal:warning -- --config configs/default.yaml --stats-interval 1000 \
        >"$out/c.log" 2>&1 || true
    awk '/^workers rx-pps/ {print $3}' "$out/c.log" | tail -n +$((warm + 1)) | median
}

run_testpmd() {
    timeout -s INT -k 5 "$secs" dpdk-testpmd -l 0,1 $mem --no-pci --file-prefix bench-t \
        "${vdevs[@]}" --log-level=lib.eal:warning -- --forward-mode=io --nb-cores=1 --burst=32 \
        --rxd=1024 --txd=1024 --stats-period 1 --auto-start >"$out/t.log" 2>&1 || true
    # Rx-pps is printed per port; sum the two ports of each interval.
    awk '/Rx-pps:/ {s += $2; n++; if (n % 2 == 0) {print s; s = 0}}' "$out/t.log" |
        tail -n +$((warm + 1)) | median
}

echo "# io forwarding, 2x net_null, worker lcore 1, burst 32, EAL memory: $mem"
printf "%-6s %16s %16s %8s\n" round conduit_pps testpmd_pps ratio
: >"$out/c"; : >"$out/t"
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) = 1 ]; then c=$(run_conduit); t=$(run_testpmd); else t=$(run_testpmd); c=$(run_conduit); fi
    echo "$c" >>"$out/c"; echo "$t" >>"$out/t"
    printf "%-6s %16.0f %16.0f %8.3f\n" "$r" "$c" "$t" "$(echo "$c $t" | awk '{print $1/$2}')"
done
cm=$(median <"$out/c"); tm=$(median <"$out/t")
printf "%-6s %16.0f %16.0f %8.3f\n" median "$cm" "$tm" "$(echo "$cm $tm" | awk '{print $1/$2}')"
cyc=$(awk '/^lcore/ {for (i=1;i<=NF;i++) if ($i=="cycles/pkt") print $(i+1)}' "$out/c.log" | tail -1)
echo "# conduit worker cycles/packet (last run, busy TSC cycles / packets): ${cyc:-n/a}"
rm -rf "$out"
