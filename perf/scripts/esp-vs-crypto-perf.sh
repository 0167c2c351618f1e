#!/usr/bin/env bash
# ESP on one core: Conduit's appliance sealing (esp-encap) and opening (esp-decap) AES-256-GCM
# ESP, against dpdk-test-crypto-perf running the same AEAD on the same cryptodev PMD
# (crypto_aesni_gcm), the same lcore and the same sizes, alternating within each round.
#
#   bash perf/scripts/esp-vs-crypto-perf.sh                           # 64 B, 1420 B, IMIX; 3 rounds x 5 s
#   SIZES="1420" ROUNDS=5 RUN_SECONDS=8 bash perf/scripts/esp-vs-crypto-perf.sh
#   SKIP_BUILD=1 KEEP=/tmp/esp bash perf/scripts/esp-vs-crypto-perf.sh  # no cargo step; keep files and logs
#
# Sizes are INNER packet sizes: the customer IPv4 packet that ESP carries (Ethernet header not
# counted), which is what ESP encrypts (plus its 2-4 trailer bytes), and crypto-perf's
# --buffer-sz. IMIX is 64, 594 and 1420 bytes, 7:4:1, for both (crypto-perf's --imix 7,4,1).
#
# Conduit: the same-core harness of same-core.sh: the appliance (release build) polls one
# net_pcap port on lcore 1 that replays conduit-perf's capture endlessly from memory
# (rx_pcap=CAPTURE,infinite_rx=1), with conduit-perf's config of the profile (16 IPsec tunnels,
# 1,000 routes, 10,000 flows, ipsec.crypto_device crypto_aesni_gcm, state_dir under /tmp). Each
# worker packet: net_pcap's receive (mbuf allocation, copy of the frame), the pipeline with one
# synchronous AES-GCM seal or open through rte_cryptodev_sym_cpu_crypto_process, transmit (free).
# esp-decap's capture is sealed by conduit-perf with the product's encapsulation, through a
# cipher on crypto_aesni_gcm, under each tunnel's inbound SA. Figures: medians of the
# appliance's per-second worker statistics after WARMUP seconds.
#
# crypto-perf: --ptest throughput on lcore 1 (EAL's main lcore on 0), one queue pair, burst 32:
# enqueue, dequeue, nothing else (no packet I/O, no headers). Its figures are per operation.
#
# testpmd io replays the esp-encap capture on the same lcore: the harness's floor (net_pcap's
# receive, which copies each frame into a fresh mbuf, and the free), which every Conduit packet
# pays and crypto-perf's do not; "bound" says what that leaves reachable.
#
# Columns: Mpps; Gbps of inner-packet bytes (crypto-perf: of buffer bytes, the same sizes);
# cycles/pkt (Conduit: the worker's busy TSC cycles per packet; crypto-perf: its Cycles/Buf);
# ratio = Conduit Mpps / crypto-perf Mpps (encap against encrypt, decap against decrypt).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
# shellcheck source=perf/scripts/lib.sh
source perf/scripts/lib.sh
rounds=${ROUNDS:-3}
secs=${RUN_SECONDS:-5}
warm=${WARMUP:-2}
sizes=${SIZES:-64 1420 imix}
lcore=1
prefixes=(esp-conduit esp-cperf esp-gen esp-testpmd)

[ "${SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh >&2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -p conduit -p perf --bin conduit --bin conduit-perf >&2
conduit="$CARGO_TARGET_DIR/release/conduit"
perf_bin="$CARGO_TARGET_DIR/release/conduit-perf"
mem=$(bash scripts/eal-mem.sh)
command -v dpdk-test-crypto-perf >/dev/null || { echo "dpdk-test-crypto-perf not found (package dpdk)" >&2; exit 1; }

work=${KEEP:-$(mktemp -d /tmp/esp-vs-crypto-perf.XXXXXX)}
mkdir -p "$work"
current=""

cleanup() {
    stop_current
    local p
    for p in "${prefixes[@]}"; do rm -f /dev/hugepages/"$p"* 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# size -> conduit-perf --size (customer frames: inner packet + 14-byte Ethernet header)
frame_sizes() {
    case $1 in
        imix) echo "78,78,78,78,78,78,78,608,608,608,608,1434" ;;
        *) echo $(($1 + 14)) ;;
    esac
}
# size -> crypto-perf buffer options
cperf_sizes() {
    case $1 in
        imix) echo "--buffer-sz 64,594,1420 --imix 7,4,1" ;;
        *) echo "--buffer-sz $1" ;;
    esac
}
# size -> mean inner packet bytes
mean_bytes() {
    case $1 in
        imix) awk 'BEGIN {print (7 * 64 + 4 * 594 + 1420) / 12}' ;;
        *) echo "$1" ;;
    esac
}

# The captures and configs, written once.
for s in $sizes; do
    for p in esp-encap esp-decap; do
        # shellcheck disable=SC2086
        "$perf_bin" -l 0 $mem --no-pci --file-prefix esp-gen --log-level=lib.eal:warning \
            -- --profile "$p" --proto udp --size "$(frame_sizes "$s")" \
            --write-pcap "$work/$p.$s.pcap" --write-config "$work/$p.$s.yaml" >"$work/gen.log" 2>&1 || {
            echo "conduit-perf could not write the $p $s profile:" >&2; cat "$work/gen.log" >&2; exit 1; }
    done
done

run_conduit() { # profile size -> appends "Mpps cycles/pkt fwd" to $work/r.<profile>.<size>
    replay_conduit "$conduit" "$work/$1.$2.pcap" "$work/$1.$2.yaml" "$work/log.$1.$2" esp-conduit >>"$work/r.$1.$2"
}

# The harness's floor: testpmd io on the esp-encap capture (net_pcap's receive, copy and free;
# no pipeline, no cipher).
run_floor() { # size -> appends "Mpps cycles/pkt fwd" to $work/r.testpmd-io.<size>
    replay_testpmd "$work/esp-encap.$1.pcap" io "$work/log.testpmd-io.$1" esp-testpmd >>"$work/r.testpmd-io.$1"
}

run_cperf() { # encrypt|decrypt size -> appends "Mpps cycles/buf Gbps" to $work/r.cperf-<op>.<size>
    local log="$work/log.cperf-$1.$2" ops
    # About RUN_SECONDS of work at the rates a 2-3 GHz core reaches (10, 3 and 8 Mops).
    case $2 in 1420) ops=$((secs * 3000000)) ;; imix) ops=$((secs * 8000000)) ;; *) ops=$((secs * 10000000)) ;; esac
    # shellcheck disable=SC2086
    timeout -k 10 $((secs * 20 + 60)) dpdk-test-crypto-perf -l 0,$lcore $mem --no-pci --file-prefix esp-cperf \
        --vdev crypto_aesni_gcm --log-level=lib.eal:warning -- \
        --devtype crypto_aesni_gcm --optype aead --aead-algo aes-gcm --aead-op "$1" \
        --aead-key-sz 32 --aead-iv-sz 12 --aead-aad-sz 8 --digest-sz 16 $(cperf_sizes "$2") \
        --burst-sz 32 --total-ops "$ops" --ptest throughput --silent --csv-friendly >"$log" 2>&1 || {
        echo "crypto-perf failed ($1 $2), see $log:" >&2; tail -5 "$log" >&2; return 0; }
    # "lcore,Buffer Size,Burst Size,Enqueued,Dequeued,Failed Enq,Failed Deq,Ops(Millions),Throughput(Gbps),Cycles/Buf"
    awk -F, '$1 ~ /^ *[0-9]+$/ && NF >= 10 {print $8, $10, $9}' "$log" | tail -1 >>"$work/r.cperf-$1.$2"
}

for r in $(seq 1 "$rounds"); do
    for s in $sizes; do
        # The order alternates each round, so that a noisy second hits both sides.
        if [ $((r % 2)) = 1 ]; then
            run_conduit esp-encap "$s"; run_cperf encrypt "$s"; run_conduit esp-decap "$s"; run_cperf decrypt "$s"
            run_floor "$s"
        else
            run_floor "$s"
            run_cperf encrypt "$s"; run_conduit esp-encap "$s"; run_cperf decrypt "$s"; run_conduit esp-decap "$s"
        fi
    done
    echo "# round $r done" >&2
done

col() { [ -f "$2" ] && awk -v i="$1" '{print $i}' "$2" | median || echo nan; }
gbps() { echo "$1 $2" | awk '{print ($1 == "nan") ? "nan" : $1 * 1e6 * $2 * 8 / 1e9}'; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $rounds rounds x ${secs}s (after ${warm}s), lcore $lcore, EAL memory: $mem"
echo "# $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-6s %-22s %8s %8s %11s %6s %8s %6s\n" size contender Mpps Gbps cycles/pkt fwd ratio bound
for s in $sizes; do
    bytes=$(mean_bytes "$s")
    fm=$(col 1 "$work/r.testpmd-io.$s"); fc=$(col 2 "$work/r.testpmd-io.$s")
    printf "%-6s %-22s %8.2f %8.2f %11.1f %6s %8s %6s\n" "$s" "testpmd io (floor)" "$fm" "$(gbps "$fm" "$bytes")" "$fc" "" "" ""
    for pair in "esp-encap encrypt" "esp-decap decrypt"; do
        set -- $pair
        cm=$(col 1 "$work/r.$1.$s"); cc=$(col 2 "$work/r.$1.$s"); cf=$(col 3 "$work/r.$1.$s")
        pm=$(col 1 "$work/r.cperf-$2.$s"); pc=$(col 2 "$work/r.cperf-$2.$s")
        ratio=$(echo "$cm $pm" | awk '{print ($1 == "nan" || $2 == "nan" || $2 == 0) ? "nan" : sprintf("%.2f", $1 / $2)}')
        bound=$(echo "$pc $fc" | awk '{print ($1 == "nan" || $2 == "nan") ? "nan" : sprintf("%.2f", $1 / ($1 + $2))}')
        printf "%-6s %-22s %8.2f %8.2f %11.1f %6.3f %8s %6s\n" "$s" "conduit $1" "$cm" "$(gbps "$cm" "$bytes")" "$cc" "$cf" "$ratio" "$bound"
        printf "%-6s %-22s %8.2f %8.2f %11.1f %6s %8s %6s\n" "$s" "crypto-perf $2" "$pm" "$(gbps "$pm" "$bytes")" "$pc" "" "" ""
    done
done
echo "# sizes: inner packet bytes (IMIX 64/594/1420 at 7:4:1, mean $(printf %.1f "$(mean_bytes imix)")); Gbps over those bytes"
echo "# ratio: conduit Mpps / crypto-perf Mpps on the same lcore, PMD and size (target >= 0.8 at 1420)"
echo "# floor: testpmd io replaying the esp-encap capture: the harness's own receive (copy) and free per packet"
echo "# bound: the ratio a pipeline costing nothing would reach on this harness: crypto-perf's cycles over"
echo "#        those plus the floor's (each Conduit packet pays the harness's receive and the cipher)"
