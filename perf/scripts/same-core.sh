#!/usr/bin/env bash
# Same-core comparison: Conduit's appliance, dpdk-testpmd (io, macswap) and OVS-DPDK, each
# polling one net_pcap port on worker lcore 1 that replays a capture endlessly from memory
# (rx_pcap=CAPTURE,infinite_rx=1: the PMD loads the capture into mbufs once and hands them out
# on the polling core; with no tx_pcap it drops what is sent). No generator, no sink, no
# cross-core traffic: the figures are the forwarding core's own cost per packet.
#
#   bash perf/scripts/same-core.sh                                  # every profile, 3 rounds x 5 s
#   PROFILES="encap decap" ROUNDS=5 RUN_SECONDS=8 bash perf/scripts/same-core.sh
#   CONTENDERS="conduit ovs" KEEP=/tmp/sc bash perf/scripts/same-core.sh   # keep captures, configs, logs
#   BASELINE=/tmp/old/release/conduit CONTENDERS="conduit conduit-base testpmd-macswap" ...
#                            # A/B: an earlier build of the appliance as one more contender
#   SKIP_SETUP=1 SKIP_BUILD=1 ...                                    # no package or cargo step
#   PERF_STAT=1 ...          # also perf stat of conduit's worker thread: cycles, instructions, misses per packet
#
# The captures, the appliance's configs and OVS's OpenFlow rules are written by conduit-perf
# from its profiles (--write-pcap, --write-config, --write-ovs-flows): the same traffic and
# tables as conduit-perf's generator. Per profile and round, the contenders run one after the
# other (rotating the order each round); the table gives medians over rounds. Installs what is
# missing (scripts/setup.sh, the openvswitch-switch-dpdk package) unless SKIP_SETUP=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
# shellcheck source=perf/scripts/lib.sh
source perf/scripts/lib.sh
rounds=${ROUNDS:-3}
secs=${RUN_SECONDS:-5}
warm=${WARMUP:-2}
profiles=${PROFILES:-encap decap transit mix}
contenders=${CONTENDERS:-conduit testpmd-io testpmd-macswap ovs}
lcore=1
ovs_vswitchd=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
netns=conduit-same-core
prefixes=(sc-conduit sc-testpmd sc-ovs)

# name | conduit-perf profile options (10,000 flows, 16 tunnels, 1,000 routes: its defaults)
profile_opts() {
    case $1 in
        encap) echo "--profile encap --size 64" ;;
        # 1M routes (OVS: as many OpenFlow rules; give CONTENDERS without ovs for a quick run).
        encap-1m) echo "--profile encap --size 64 --routes 1000000" ;;
        decap) echo "--profile decap --size 64" ;;
        transit) echo "--profile transit --size 64" ;;
        mix) echo "--profile mix --size imix --proto mix" ;;
        *) echo "unknown profile $1 (encap, encap-1m, decap, transit, mix)" >&2; return 1 ;;
    esac
}

if [ "${SKIP_SETUP:-0}" != 1 ]; then
    bash scripts/setup.sh >&2
    if [ ! -x "$ovs_vswitchd" ] && [[ " $contenders " == *" ovs "* ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y openvswitch-switch-dpdk >&2
    fi
    if [ "${PERF_STAT:-0}" = 1 ] && ! command -v perf >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y linux-perf >&2
    fi
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
# One cargo invocation for both, so that they share one build of the conduit library.
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -p conduit -p perf --bin conduit --bin conduit-perf >&2
conduit="$CARGO_TARGET_DIR/release/conduit"
perf_bin="$CARGO_TARGET_DIR/release/conduit-perf"
mem=$(bash scripts/eal-mem.sh)
tsc_mhz=""

work=${KEEP:-$(mktemp -d /tmp/same-core.XXXXXX)}
mkdir -p "$work"
ovs_dir="$work/ovs"
current=""      # pid of the running contender

stop_ovs() {
    [ -d "$ovs_dir" ] || return 0
    local p
    for p in ovs-vswitchd ovsdb-server; do
        if [ -S "$ovs_dir/$p.ctl" ]; then
            # --cleanup: ovs-vswitchd removes its ports (and closes the DPDK port) on the way out.
            OVS_RUNDIR=$ovs_dir timeout 10 ovs-appctl --target="$ovs_dir/$p.ctl" exit \
                $([ $p = ovs-vswitchd ] && echo --cleanup) >/dev/null 2>&1 || true
        fi
        if [ -f "$ovs_dir/$p.pid" ]; then
            local pid
            # The daemon removes its pid file as it exits: it may be gone by now.
            pid=$(cat "$ovs_dir/$p.pid" 2>/dev/null) || continue
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    ip netns del "$netns" 2>/dev/null || true
    rm -rf "$ovs_dir"
}

clean_hugepages() {
    local p
    for p in "${prefixes[@]}"; do rm -f /dev/hugepages/"$p"map_* /dev/hugepages/"$p"* 2>/dev/null || true; done
}

cleanup() {
    stop_current
    stop_ovs
    clean_hugepages
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Each run appends "Mpps cycles/pkt forwarded-fraction" to $work/r.<profile>.<contender>.

# PERF_STAT=1: perf stat of the worker thread over the measured seconds.
perf_events=task-clock,context-switches,cpu-migrations,cycles,instructions,cache-references,cache-misses,L1-dcache-load-misses,LLC-load-misses

perf_stat_worker() { # conduit-pid output
    local tid
    tid=$(ps -L -o tid=,comm= -p "$1" | awk -v n="rte-worker-$lcore" '$2 == n {print $1}')
    [ -n "$tid" ] || { echo "# PERF_STAT: no rte-worker-$lcore thread" >&2; return 0; }
    perf stat -x, -e "$perf_events" -t "$tid" -o "$2" -- sleep "$secs" 2>/dev/null || true
}

perf_per_packet() { # perf-output conduit-log -> "event value" lines: per packet, per second
    # Packets in the window: the periodic rx-pps samples after the warm-up (one a second).
    local pkts
    pkts=$(awk -v w="$warm" -v s="$secs" '/^workers rx-pps/ {n++; if (n > w && n <= w + s) t += $3} END {print t + 0}' "$2")
    awk -F, -v p="$pkts" -v s="$secs" '
        /^#/ || NF < 3 {next}
        $3 == "task-clock" {printf "worker-cpu-share %.3f\n", $1 / (s * 1000); next}
        $3 == "context-switches" || $3 == "cpu-migrations" {printf "%s/s %.1f\n", $3, $1 / s; next}
        $1 ~ /^[0-9.]+$/ && p > 0 {printf "%s/pkt %.2f\n", $3, $1 / p; next}
        {printf "%s/pkt nan\n", $3}' "$1"
}

# PERF_STAT=1: perf stat of the worker thread over the measured seconds (replay_conduit's hook).
perf_stat_hook() { perf_stat_worker "$1" "$work/perfstat.$stat_profile"; }

run_conduit() { # profile [contender binary]: conduit, or conduit-base with $BASELINE
    local c=${2:-conduit} bin=${3:-$conduit}
    local log="$work/log.$1.$c" hook=""
    rm -f "$work/perfstat.$1"
    if [ "${PERF_STAT:-0}" = 1 ] && [ "$c" = conduit ]; then hook=perf_stat_hook; stat_profile=$1; fi
    replay_conduit "$bin" "$work/$1.pcap" "$work/$1.yaml" "$log" sc-conduit $hook >>"$work/r.$1.$c"
    if [ -s "$work/perfstat.$1" ]; then perf_per_packet "$work/perfstat.$1" "$log" >>"$work/p.$1"; fi
    [ -n "$tsc_mhz" ] || tsc_mhz=$(awk '/ TSC [0-9.]+ GHz/ {for (i = 1; i < NF; i++) if ($i == "TSC") {print $(i + 1) * 1000; exit}}' "$log")
}

run_testpmd() { # profile mode
    local log="$work/log.$1.testpmd-$2"
    replay_testpmd "$work/$1.pcap" "$2" "$log" sc-testpmd >>"$work/r.$1.testpmd-$2"
    tsc_mhz=${tsc_mhz:-$(sed -n 's/.* at \([0-9]*\) MHz Clock.*/\1/p' "$log" | tail -1)}
}

ovs() { # program args...: an OVS tool against the private instance
    OVS_RUNDIR=$ovs_dir OVS_DBDIR=$ovs_dir OVS_LOGDIR=$ovs_dir OVS_SYSCONFDIR=$ovs_dir \
        OVS_PKGDATADIR=/usr/share/openvswitch "$@"
}

start_ovs() { # profile
    local d=$ovs_dir db="unix:$ovs_dir/db.sock"
    stop_ovs
    mkdir -p "$d"
    # A private network namespace: the bridge's own (LOCAL) interface, which holds the tunnel
    # endpoint address, and OVS's routes stay out of the host's.
    ip netns add "$netns"
    ip netns exec "$netns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ovs ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ovs ip netns exec "$netns" ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" \
        --pidfile="$d/ovsdb-server.pid" --unixctl="$d/ovsdb-server.ctl" --log-file="$d/ovsdb-server.log" \
        --detach --no-chdir
    ovs ovs-vsctl --db="$db" --no-wait init
    ovs ovs-vsctl --db="$db" --no-wait set Open_vSwitch . other_config:dpdk-init=true \
        "other_config:dpdk-extra=$mem --no-pci --file-prefix sc-ovs --vdev $(replay_vdev "$work/$1.pcap")" \
        other_config:pmd-cpu-mask=$(printf '0x%x' $((1 << lcore))) other_config:per-port-memory=true
    ovs ip netns exec "$netns" "$ovs_vswitchd" "$db" --pidfile="$d/ovs-vswitchd.pid" \
        --unixctl="$d/ovs-vswitchd.ctl" --log-file="$d/ovs-vswitchd.log" --detach --no-chdir -vconsole:off
    ovs ovs-vsctl --db="$db" add-br br0 -- set bridge br0 datapath_type=netdev fail_mode=secure \
        other_config:hwaddr=02:70:63:61:70:00 \
        -- add-port br0 dpdk0 -- set Interface dpdk0 type=dpdk options:dpdk-devargs=net_pcap0 \
        options:n_rxq_desc=1024 options:n_txq_desc=1024 \
        -- add-port br0 gre0 -- set Interface gre0 type=gre options:remote_ip=flow \
        options:local_ip=203.0.113.1 options:packet_type=legacy_l3
    ip -n "$netns" addr add 192.0.2.10/24 dev br0
    ip -n "$netns" addr add 203.0.113.1/32 dev br0
    ip -n "$netns" link set br0 up
    local a=(ovs ovs-appctl --target="$d/ovs-vswitchd.ctl")
    "${a[@]}" ovs/route/add 100.64.0.0/10 br0 192.0.2.1 >/dev/null
    "${a[@]}" tnl/neigh/set br0 192.0.2.1 02:00:00:00:00:fe >/dev/null
    if [ -s "$work/$1.groups" ]; then ovs ovs-ofctl -O OpenFlow13 add-groups br0 "$work/$1.groups"; fi
    ovs ovs-ofctl -O OpenFlow13 add-flows br0 "$work/$1.flows"
    # The PMD polls (and translates) from the moment dpdk0 is added, before the addresses,
    # route and neighbour above are all in: a datapath flow translated then lacks its tunnel
    # push. Start the datapath afresh once everything is in place (purging the flows' upcall
    # keys too: deleting the datapath flows alone makes every later upcall for them fail).
    sleep 1
    "${a[@]}" revalidator/purge >/dev/null
}

ovs_port_packets() { # -> "rx tx" of dpdk0, live
    ovs ovs-ofctl -O OpenFlow13 dump-ports br0 dpdk0 |
        awk '/rx pkts=/ {sub(/.*rx pkts=/, ""); sub(/,.*/, ""); rx = $0} /tx pkts=/ {sub(/.*tx pkts=/, ""); sub(/,.*/, ""); tx = $0} END {print rx, tx}'
}

run_ovs() { # profile
    local log="$work/log.$1.ovs"
    if ! start_ovs "$1" >"$log" 2>&1; then
        echo "OVS did not start ($1), see $log and $ovs_dir" >&2; cat "$log" >&2; stop_ovs; return 0
    fi
    local a=(ovs ovs-appctl --target="$ovs_dir/ovs-vswitchd.ctl")
    sleep "$warm"
    local before after
    before=$(ovs_port_packets)
    "${a[@]}" dpif-netdev/pmd-stats-clear >/dev/null
    sleep "$secs"
    "${a[@]}" dpif-netdev/pmd-stats-show >>"$log"
    after=$(ovs_port_packets)
    "${a[@]}" dpctl/dump-flows >>"$log" 2>&1 || true
    cp "$ovs_dir/ovs-vswitchd.log" "$log.vswitchd" 2>/dev/null || true
    stop_ovs
    clean_hugepages
    # The PMD thread on the worker core: packets received since the clear, and its processing
    # (busy) cycles per packet (with the capture replayed endlessly it is never idle).
    awk -v s="$secs" -v b="$before" -v e="$after" '
        /^pmd thread/ {pmd = 1} /^main thread/ {pmd = 0}
        pmd && /packets received:/ {rx = $3}
        pmd && /avg processing cycles per packet:/ {c = $6}
        END {split(b, x, " "); split(e, y, " "); drx = y[1] - x[1]; dtx = y[2] - x[2]
             if (rx == 0 || c == "") exit 1
             printf "%s %s %s\n", rx / s / 1e6, c, (drx > 0) ? dtx / drx : "nan"}' "$log" \
        >>"$work/r.$1.ovs" || echo "OVS gave no statistics ($1), see $log" >&2
    # What the datapath did, as a check that OVS really did the job.
    awk '/^pmd thread/ {pmd = 1} /^main thread/ {pmd = 0} pmd && /miss with failed upcall:/ && $5 > 0 {exit 1}' "$log" ||
        echo "# OVS $1: upcalls failed while measuring (slow path), see $log" >&2
    local want=(tnl_push tnl_pop) w
    case $1 in encap) want=(tnl_push) ;; decap) want=(tnl_pop) ;; esac
    for w in "${want[@]}"; do
        grep -q "$w" "$log" || echo "# OVS $1: no $w in the datapath flows, see $log" >&2
    done
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ)  same core: lcore $lcore polls one net_pcap port replaying the capture" >&2
for p in $profiles; do
    # shellcheck disable=SC2046
    "$perf_bin" -- $(profile_opts "$p") --write-pcap "$work/$p.pcap" --write-config "$work/$p.yaml" \
        --write-ovs-flows "$work/$p.flows" --replay-lcore "$lcore"
done
clean_hugepages
read -r -a order <<<"$contenders"
if [[ " $contenders " == *" conduit-base "* ]] && [ ! -x "${BASELINE:-}" ]; then
    echo "the conduit-base contender needs BASELINE=an appliance binary (e.g. an earlier build)" >&2
    exit 2
fi
for r in $(seq 1 "$rounds"); do
    for p in $profiles; do
        for c in "${order[@]}"; do
            case $c in
                conduit) run_conduit "$p" ;;
                conduit-base) run_conduit "$p" conduit-base "$BASELINE" ;;
                testpmd-io) run_testpmd "$p" io ;;
                testpmd-macswap) run_testpmd "$p" macswap ;;
                ovs) run_ovs "$p" ;;
                *) echo "unknown contender $c" >&2; exit 2 ;;
            esac
            clean_hugepages
        done
    done
    order=("${order[@]:1}" "${order[0]}")   # rotate, so no contender always runs first
    echo "# round $r of $rounds done" >&2
done

col() { [ -s "$2" ] && awk -v i="$1" '{print $i}' "$2" | median || echo nan; }
ratio() { echo "$1 $2" | awk '{if ($1 == "nan" || $2 == "nan" || $2 == 0) print "nan"; else printf "%.2f\n", $1 / $2}'; }
memnote=$mem; [[ $mem == *--no-huge* ]] && memnote="$mem (NO HUGEPAGES: 4 KiB pages, expect lower figures)"
echo "# $(date -u +%Y-%m-%dT%H:%MZ), medians of $rounds rounds x ${secs}s (after ${warm}s), worker lcore $lcore, burst 32, EAL memory: $memnote"
echo "# $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), TSC ${tsc_mhz:-?} MHz, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-8s %-16s %8s %10s %6s %9s %9s %9s %9s\n" profile contender Mpps cycles/pkt fwd cyc/msw cyc/ovs Mpps/msw Mpps/ovs
for p in $profiles; do
    mc=$(col 2 "$work/r.$p.testpmd-macswap"); oc=$(col 2 "$work/r.$p.ovs")
    mm=$(col 1 "$work/r.$p.testpmd-macswap"); om=$(col 1 "$work/r.$p.ovs")
    for c in $contenders; do
        f="$work/r.$p.$c"
        r1=""; r2=""; r3=""; r4=""
        if [ "$c" = conduit ] || [ "$c" = conduit-base ]; then
            cc=$(col 2 "$f"); cm=$(col 1 "$f")
            r1=$(ratio "$cc" "$mc"); r2=$(ratio "$cc" "$oc"); r3=$(ratio "$cm" "$mm"); r4=$(ratio "$cm" "$om")
        fi
        printf "%-8s %-16s %8.2f %10.1f %6.3f %9s %9s %9s %9s\n" "$p" "$c" "$(col 1 "$f")" "$(col 2 "$f")" \
            "$(col 3 "$f")" "$r1" "$r2" "$r3" "$r4"
    done
done
echo "# Mpps: packets the worker core received per second; cycles/pkt: its busy TSC cycles per packet"
echo "# (conduit and testpmd: cycles of polls that returned packets; OVS: the PMD's processing cycles);"
echo "# fwd: packets sent / received (the PMD drops what is sent); cyc/msw, cyc/ovs: conduit's cycles/pkt"
echo "# over testpmd macswap's and OVS's on the same capture; Mpps/msw, Mpps/ovs: the same for Mpps."
if [ "${PERF_STAT:-0}" = 1 ]; then
    echo "# perf stat of conduit's worker thread over the measured seconds, medians over rounds"
    echo "# (nan: the counter is not available on this machine, e.g. a VM without a PMU):"
    for p in $profiles; do
        [ -s "$work/p.$p" ] || continue
        for e in $(awk '{print $1}' "$work/p.$p" | awk '!seen[$0]++'); do
            printf "%-8s %-34s %10s\n" "$p" "$e" "$(awk -v e="$e" '$1 == e && $2 != "nan" {print $2}' "$work/p.$p" | median)"
        done
    done
fi
for p in $profiles; do
    for c in $contenders; do
        f=$(col 3 "$work/r.$p.$c")
        awk -v f="$f" 'BEGIN {exit !(f == "nan" || f < 0.99)}' &&
            echo "# WARNING: $c forwarded only $f of what it received on $p: see log.$p.$c (KEEP=DIR keeps it)" || true
    done
done
[ -z "${KEEP:-}" ] || echo "# captures, configs, rules and logs kept in $work"
