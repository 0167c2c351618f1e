#!/usr/bin/env bash
# Builds the Debian package (dev profile), installs it, checks its layout and unit, then runs the
# service the way its unit does on the shipped defaults (net_null): start, reload, stop. Removes
# the package at the end. Needs root.
#
# This machine runs no systemd as PID 1, so `systemctl start` is not available: the unit is
# checked with `systemd-analyze verify`, and its ExecStartPre/ExecStart/ExecReload/KillSignal
# are carried out here with its Environment= and EnvironmentFile= settings.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "test-package: FAILED: $*" >&2; exit 1; }

deb=$(bash scripts/package.sh --profile dev | grep -o '/.*\.deb$' || true)
[ -f "$deb" ] || fail "cargo deb produced no package"
echo "test-package: built $deb" >&2
dpkg-deb --info "$deb" | grep -E '^ (Package|Version|Depends):' >&2

cleanup() {
    [ -n "${pid:-}" ] && kill -KILL "$pid" 2>/dev/null || true
    dpkg --purge conduit >/dev/null 2>&1 || true
}
trap cleanup EXIT
dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb"

for f in /usr/bin/conduit /usr/bin/conduit-perf /lib/systemd/system/conduit.service \
    /etc/default/conduit /etc/conduit/conduit.yaml /usr/share/doc/conduit/README.md \
    /usr/share/doc/conduit/config.md /usr/share/doc/conduit/deployment.md \
    /usr/share/doc/conduit/examples/replay.yaml /usr/share/doc/conduit/copyright; do
    [ -e "$f" ] || fail "$f not installed"
done
dpkg-query -W -f='${Conffiles}\n' conduit | grep -q /etc/conduit/conduit.yaml ||
    fail "/etc/conduit/conduit.yaml is not a conffile"
/usr/bin/conduit --version >&2
/usr/bin/conduit check-config /etc/conduit/conduit.yaml >&2
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/conduit.service 2>&1 | tee /tmp/conduit-unit-verify.txt >&2
    ! grep -qi 'conduit.service' /tmp/conduit-unit-verify.txt || fail "systemd-analyze verify reports the unit"
fi

# The unit's settings: its Environment= lines, then /etc/default/conduit over them.
unit=/lib/systemd/system/conduit.service
while IFS= read -r line; do export "${line#Environment=}"; done < <(grep '^Environment=' "$unit")
set -a; . /etc/default/conduit; set +a
# Without reservable hugepages the service cannot map memory; the test machine then runs it
# without them (an operator's machine reserves them in ExecStartPre).
mem_args=$(bash scripts/eal-mem.sh)
[ "$mem_args" = "--in-memory" ] && mem_args=""

# ExecStartPre (the check) and ExecStart, as the unit spells them.
start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$start" = '/usr/bin/conduit $CONDUIT_EAL_ARGS -- --config ${CONDUIT_CONFIG} $CONDUIT_ARGS' ] ||
    fail "ExecStart changed; update this test: $start"
/usr/bin/conduit check-config "$CONDUIT_CONFIG" >/dev/null
log=$(mktemp)
# shellcheck disable=SC2086 # word splitting of the EAL arguments is what systemd does too
/usr/bin/conduit $CONDUIT_EAL_ARGS $mem_args -- --config "$CONDUIT_CONFIG" $CONDUIT_ARGS >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -sf http://127.0.0.1:9100/metrics >/tmp/conduit-pkg-metrics.txt 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; fail "the service exited at start"; }
    sleep 0.1
done
grep -q '^conduit_port_rx_packets_total' /tmp/conduit-pkg-metrics.txt || { cat "$log" >&2; fail "no metrics served"; }
echo "test-package: service up, metrics served" >&2

# ExecReload: SIGHUP re-reads the file.
kill -HUP "$pid"
for _ in $(seq 50); do grep -q 'reload' "$log" && break; sleep 0.1; done
grep -qi 'reload' "$log" || { cat "$log" >&2; fail "SIGHUP did not reload"; }

# KillSignal=SIGTERM within TimeoutStopSec.
timeout_stop=$(sed -n 's/^TimeoutStopSec=//p' "$unit")
kill -TERM "$pid"
for _ in $(seq $((timeout_stop * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "still running ${timeout_stop}s after SIGTERM"
rc=0; wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || { cat "$log" >&2; fail "exit status $rc after SIGTERM"; }
grep -q 'mbufs in use after shutdown: 0' "$log" || { cat "$log" >&2; fail "no clean shutdown report"; }
echo "test-package: ok (installed, started on net_null, reloaded, stopped with status 0)" >&2
