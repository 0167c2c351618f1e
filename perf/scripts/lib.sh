# shellcheck shell=bash
# The same-core harness, shared by same-core.sh and esp-vs-crypto-perf.sh (sourced, not run):
# one contender at a time polls one net_pcap port on lcore $lcore that replays a capture
# endlessly from memory (rx_pcap=CAPTURE,infinite_rx=1; with no tx_pcap the PMD drops what is
# sent). The caller sets lcore, mem (EAL memory options), warm and secs (warm-up and measured
# seconds), and `current=""`; while a contender runs, $current is its pid, so that the caller's
# EXIT trap can stop it with stop_current.

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

# Stops the running contender, if any: SIGINT, five seconds to exit, then SIGKILL.
stop_current() {
    [ -n "$current" ] || return 0
    kill -INT "$current" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$current" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$current" 2>/dev/null || true
    current=""
}

# The capture's replaying port.
replay_vdev() { echo "net_pcap0,rx_pcap=$1,infinite_rx=1"; }

# Conduit's appliance on the capture: prints "Mpps cycles/pkt forwarded-fraction", the medians
# of its per-second worker statistics after the warm-up. With a hook, calls `hook PID` once the
# warm-up seconds have passed (in the background: same-core.sh's perf stat).
replay_conduit() { # conduit-binary capture config log file-prefix [hook]
    local bin=$1 capture=$2 config=$3 log=$4 prefix=$5 hook=${6:-} n=0 waited=0 hook_pid=""
    # shellcheck disable=SC2086
    "$bin" -l 0,$lcore $mem --no-pci --file-prefix "$prefix" --vdev "$(replay_vdev "$capture")" \
        --log-level=lib.eal:warning -- --config "$config" --stats-interval 1000 >"$log" 2>&1 &
    current=$!
    # Start-up (EAL, tables, crypto sessions) takes a while on a loaded machine: count the
    # periodic lines instead of the time, and stop once the warm-up and measured seconds are in.
    while [ "$n" -lt $((warm + secs)) ] && [ "$waited" -lt $((10 * (warm + secs + 60))) ] &&
        kill -0 "$current" 2>/dev/null; do
        sleep 0.1
        waited=$((waited + 1))
        n=$(grep -c '^workers rx-pps' "$log" || true)
        if [ -n "$hook" ] && [ -z "$hook_pid" ] && [ "$n" -ge "$warm" ]; then
            "$hook" "$current" &
            hook_pid=$!
        fi
    done
    kill -INT "$current" 2>/dev/null || true
    wait "$current" || true
    current=""
    [ -z "$hook_pid" ] || wait "$hook_pid" || true
    # Periodic lines, once a second: "workers rx-pps R tx-pps T tx-dropped D cycles/pkt C".
    local s
    s=$(awk -v w="$warm" '/^workers rx-pps/ {n++; if (n > w) print $3, $9}' "$log")
    if [ -z "$s" ]; then echo "conduit gave no statistics, see $log:" >&2; tail -5 "$log" >&2; return 0; fi
    local tx rx
    rx=$(awk '/^total/ {print $3}' "$log"); tx=$(awk '/^total/ {print $5}' "$log")
    if grep -q "^drop " "$log"; then echo "# conduit dropped packets ($log):" >&2; grep "^drop " "$log" >&2; fi
    echo "$(awk '{print $1 / 1e6}' <<<"$s" | median) $(awk '{print $2}' <<<"$s" | median) $(echo "$tx ${rx:-0}" | awk '{print ($2 > 0) ? $1 / $2 : "nan"}')"
}

# dpdk-testpmd forwarding the capture in `mode` (io, macswap): prints "Mpps cycles/pkt
# forwarded-fraction" over the measured seconds (its --record-core-cycles figure).
replay_testpmd() { # capture mode log file-prefix
    local capture=$1 mode=$2 log=$3 prefix=$4 fifo waited=0
    fifo=$(mktemp -u "${TMPDIR:-/tmp}/testpmd-in.XXXXXX")
    mkfifo "$fifo"
    # shellcheck disable=SC2086
    timeout -k 10 $((warm + secs + 120)) dpdk-testpmd -l 0,$lcore $mem --no-pci --file-prefix "$prefix" \
        --vdev "$(replay_vdev "$capture")" --log-level=lib.eal:warning -- -i --forward-mode="$mode" \
        --port-topology=loop --nb-cores=1 --burst=32 --rxd=1024 --txd=1024 --record-core-cycles \
        --total-num-mbufs=32768 <"$fifo" >"$log" 2>&1 &
    current=$!
    exec 3>"$fifo"
    # Commands go in once its prompt is up: start, warm up, stop; then the measured interval
    # (testpmd resets its forwarding statistics, cycles included, at each start).
    while ! grep -q 'testpmd>' "$log" && [ "$waited" -lt 600 ] && kill -0 "$current" 2>/dev/null; do
        sleep 0.1; waited=$((waited + 1))
    done
    { echo start; sleep "$warm"; echo stop; echo start; sleep "$secs"; echo stop; sleep 1; echo quit; } >&3 2>/dev/null || true
    exec 3>&-
    wait "$current" || true
    current=""
    rm -f "$fifo"
    # The second "Accumulated" block and "CPU cycles/packet" line are the measured interval's.
    awk -v s="$secs" '/CPU cycles\/packet=/ {split($2, a, "="); c = a[2]}
        /Accumulated forward statistics/ {acc = 1}
        acc && /RX-packets:/ {rx = $2}
        acc && /TX-packets:/ {tx = $2; acc = 0}
        END {if (c == "" || rx == 0) exit 1; printf "%s %s %s\n", rx / s / 1e6, c, tx / rx}' "$log" ||
        echo "testpmd $mode gave no statistics, see $log" >&2
}
