#!/usr/bin/env bash
# Cross-core harness (generator and sink on lcore 0): use it for latency, drops and checked
# output. To compare per-packet cost with testpmd and OVS-DPDK, use same-core.sh, where only
# the forwarding core touches the packets.
#
# Side by side: conduit-perf's profiles against dpdk-testpmd (macswap and io) on ring ports, the
# same worker lcore (1; lcore 0 is EAL's main lcore in both), burst 32 and 1024-entry rings,
# alternating tool by tool within each round so that machine noise hits all alike.
#
#   ROUNDS=3 RUN_SECONDS=5 bash perf/scripts/vs-testpmd.sh            # every profile
#   PROFILES="encap" ROUNDS=5 bash perf/scripts/vs-testpmd.sh         # a subset
#
# conduit-perf: a generator and sink on lcore 0 feed the pipeline worker on lcore 1 through a
# ring-PMD port (net_ring driver over in-process rings). testpmd cannot use that generator, so it
# forwards between two net_ring vdevs (each a loopback ring pair) after `start tx_first 16`
# seeded them: the same PMD's rx/tx functions, the same ring size and burst. Both report busy
# TSC cycles per packet (cycles of polls that returned packets / packets received; testpmd's
# --record-core-cycles), which is the figure compared. Medians over rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "${SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh >&2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -p perf --bin conduit-perf >&2
bin="$CARGO_TARGET_DIR/release/conduit-perf"
rounds=${ROUNDS:-3}
secs=${RUN_SECONDS:-5}
mem=$(bash scripts/eal-mem.sh)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# name | conduit-perf options
all_profiles=(
    "encap|--profile encap --size 64 --flows 10000 --routes 1000"
    "encap-1M|--profile encap --size 64 --flows 10000 --routes 1000000"
    "decap|--profile decap --size 64 --flows 10000 --routes 1000"
    "transit|--profile transit --size 64 --flows 10000 --routes 1000"
    "mix-imix|--profile mix --size imix --proto mix --flows 10000 --routes 1000"
    # The same generator, ring port and sink with testpmd's forwarding on the worker instead of
    # the pipeline: what the cross-core ring I/O alone costs in this harness.
    "ring-io|--profile encap --size 64 --flows 10000 --worker io"
    "ring-macswap|--profile encap --size 64 --flows 10000 --worker macswap"
)
want=${PROFILES:-encap encap-1M decap transit mix-imix ring-io ring-macswap}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

run_conduit() { # name opts... -> appends "cpp mpps p50 p99 p999" to $out/c.<name>
    local name=$1; shift
    "$bin" -l 0,1 $mem --no-pci --file-prefix vs-c --log-level=lib.eal:warning -- "$@" \
        --duration "$secs" --warmup 1 --stats-interval 0 --json >"$out/c.json" 2>"$out/c.err" || {
        echo "conduit-perf failed ($name):" >&2; cat "$out/c.err" >&2; return 1; }
    json "$out/c.json" '"%s %s %s %s %s" % (d["cycles_per_packet"], d["total_mpps"], d["latency"]["p50_ns"], d["latency"]["p99_ns"], d["latency"]["p999_ns"])' >>"$out/c.$name"
}

run_testpmd() { # mode -> appends "cpp mpps" to $out/t.<mode>
    local mode=$1
    { sleep 2; echo "start tx_first 16"; sleep "$secs"; echo stop; sleep 1; echo quit; } |
        timeout -k 5 $((secs + 30)) dpdk-testpmd -l 0,1 $mem --no-pci --file-prefix vs-t \
            --vdev net_ring0 --vdev net_ring1 --log-level=lib.eal:warning -- -i \
            --forward-mode="$mode" --nb-cores=1 --burst=32 --rxd=1024 --txd=1024 \
            --record-core-cycles >"$out/t.log" 2>&1 || true
    awk -v s="$secs" '/CPU cycles\/packet=/ {split($2, a, "="); c = a[2]}
        /Accumulated forward statistics/ {acc = 1}
        acc && /RX-packets:/ {rx = $2; acc = 0}
        END {if (c == "") c = "nan"; printf "%s %s\n", c, rx / s / 1e6}' "$out/t.log" >>"$out/t.$mode"
}

for r in $(seq 1 "$rounds"); do
    run_testpmd macswap
    for p in "${all_profiles[@]}"; do
        name=${p%%|*}; opts=${p#*|}
        case " $want " in *" $name "*) ;; *) continue ;; esac
        # shellcheck disable=SC2086
        run_conduit "$name" $opts
    done
    run_testpmd io
    echo "# round $r done" >&2
done

col() { awk -v i="$1" '{print $i}' "$2" | median; }
tm=$(col 1 "$out/t.macswap"); ti=$(col 1 "$out/t.io")
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $rounds rounds x ${secs}s, EAL memory: $mem, $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
bm=nan; [ -f "$out/c.ring-macswap" ] && bm=$(col 1 "$out/c.ring-macswap")
printf "%-12s %9s %8s %10s %8s %11s %10s %10s %12s\n" profile cyc/pkt Mpps vs_macswap vs_io vs_ring_msw p50_ns p99_ns p999_ns
for p in "${all_profiles[@]}"; do
    name=${p%%|*}
    [ -f "$out/c.$name" ] || continue
    c=$(col 1 "$out/c.$name")
    printf "%-12s %9.1f %8.2f %10.2f %8.2f %11.2f %10.0f %10.0f %12.0f\n" "$name" "$c" "$(col 2 "$out/c.$name")" \
        "$(echo "$c $tm" | awk '{print $1/$2}')" "$(echo "$c $ti" | awk '{print $1/$2}')" \
        "$(echo "$c $bm" | awk '{print ($2 == "nan") ? "nan" : $1/$2}')" \
        "$(col 3 "$out/c.$name")" "$(col 4 "$out/c.$name")" "$(col 5 "$out/c.$name")"
done
printf "%-12s %9.1f %8.2f\n" testpmd-msw "$tm" "$(col 2 "$out/t.macswap")"
printf "%-12s %9.1f %8.2f\n" testpmd-io "$ti" "$(col 2 "$out/t.io")"
echo "# vs_macswap / vs_io: busy cycles per packet divided by testpmd's on net_ring loopbacks (single core);"
echo "# vs_ring_msw: divided by macswap on conduit-perf's own generator and ring port (same cross-core I/O)"
