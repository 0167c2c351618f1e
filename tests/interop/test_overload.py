"""Health checking under overload, over a real EAL: conduit on a net_tap port (taplab.py; and on
net_af_packet over a veth pair, which has no per-packet signal but the same overload), peer.py
on the other side answering the probes of failover.yaml's three tunnels at a 100 ms interval,
while a process of the peer floods the appliance with plain UDP as fast as one raw-socket sender
loop can for 5 s (about 100-350k packets a second here, to an address no route covers).

What must hold (docs/operations.md, the control loop's heartbeat):

- the control loop keeps turning: its heartbeat counter moves through the flood, and probes
  reach the wire at their rate during the flood and after it (counted by the peer, per tunnel);
- a tunnel silenced in the middle of the flood is down within the usual bound (one interval
  plus three timeouts, plus a margin) and stays down.

The dataplane itself is overloaded (the tap's queue overflows), so replies of healthy tunnels
may be lost and those tunnels may flap: that is not what this test judges.
"""

import datetime
import json
import os
import re
import subprocess
import time

import pytest
import yaml

from taplab import needs_netns, taplab  # noqa: F401
from test_failover import CONFIG

INTERVAL = 0.1
TIMEOUT = 0.08
FLOOD_S = 5.0
AFTER_S = 3.0
RATE_SHARE = 0.7
MARGIN = float(os.environ.get("CONDUIT_FAILOVER_MARGIN", "0.35"))
FAILOVER_BOUND = INTERVAL + 3 * TIMEOUT + MARGIN
TUNNELS = ("prim-a", "prim-b", "backup")


def config() -> str:
    cfg = yaml.safe_load(CONFIG)
    for t in cfg["tunnels"]:
        hc = t["health_check"]
        hc["interval_ms"] = int(INTERVAL * 1000)
        hc["timeout_ms"] = int(TIMEOUT * 1000)
        hc["hold_down_ms"] = 60000  # nothing goes back to healthy during the test
    return yaml.safe_dump(cfg, sort_keys=False)


def heartbeat(lab) -> int:
    out = subprocess.run(["dpdk-telemetry.py", "-f", lab.prefix], input="/conduit/info\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = [l for l in out.stdout.splitlines() if l.startswith("{")][-1]
    return json.loads(line)["/conduit/info"]["control_loop_iterations"]


def probes_seen(lab) -> tuple:
    """(peer's clock, probes of each tunnel that reached the peer so far)."""
    s = lab.stats()
    return s["t"], {n: s["tunnels"][n]["probes_seen"] for n in TUNNELS}


def transitions(log: str, tunnel: str) -> list:
    """(wall-clock time, 'from -> to') of each state change of `tunnel` in conduit's log."""
    out = []
    for m in re.finditer(r"^\[(\S+Z) \w+\s+control::plane\] tunnel (\S+): (\w+ -> \w+) ", log,
                         re.M):
        if m.group(2) == tunnel:
            t = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
            out.append((t, m.group(3)))
    return out


def check_rate(before, after, what):
    (t0, a), (t1, b) = before, after
    want = (t1 - t0) / INTERVAL
    for n in TUNNELS:
        got = b[n] - a[n]
        assert got >= RATE_SHARE * want, (
            f"{n}: {got} probes reached the peer {what} ({t1 - t0:.2f} s), expected about "
            f"{want:.0f} (at least {RATE_SHARE:.0%})")
    return {n: b[n] - a[n] for n in TUNNELS}, round(want)


@needs_netns
@pytest.mark.parametrize("device", ["tap", "af_packet"])
def test_probes_keep_their_rate_and_failover_works_through_a_flood(taplab, device):
    lab = taplab.start(config(), device=device)
    beat0 = heartbeat(lab)
    start = probes_seen(lab)
    lab.cmd(f"flood {FLOOD_S}")
    time.sleep(FLOOD_S / 2)
    lab.cmd("silence prim-a")
    silenced_at = time.time()
    flood = lab.cmd("flood wait", timeout=FLOOD_S + 30)
    end = probes_seen(lab)
    beat1 = heartbeat(lab)
    time.sleep(AFTER_S)
    later = probes_seen(lab)
    rc, log = lab.stop_appliance()
    assert rc == 0, log[-3000:]
    print(f"flood: {flood}; control loop turns {beat0} -> {beat1}")
    stalls = re.findall(r"control loop stalled: (\d+) ms", log)
    print("control loop stalls (ms):", stalls)
    context = f"\nflood {flood}\nstalls {stalls}\n{log[-2500:]}"

    assert flood["pps"] >= 20000, f"the flood was too weak to test anything: {flood}"
    assert beat1 - beat0 >= 10 * FLOOD_S, f"the control loop stopped turning{context}"
    during, want = check_rate(start, end, "during the flood")
    print(f"probes during the flood {during} (expected about {want} each)")
    after, want = check_rate(end, later, "after the flood")
    print(f"probes after the flood {after} (expected about {want} each)")

    steps = transitions(log, "prim-a")
    state = "healthy"
    for t, step in steps:
        if t <= silenced_at:
            state = step.split(" -> ")[1]
    downs = [t for t, step in steps if t > silenced_at and step.endswith("-> down")]
    if state != "down":
        assert downs, f"prim-a never went down after its silence: {steps}{context}"
        delay = downs[0] - silenced_at
        print(f"prim-a down {delay:.3f} s after its silence (bound {FAILOVER_BOUND:.2f} s)")
        assert delay <= FAILOVER_BOUND, (
            f"prim-a went down {delay:.3f} s after its silence; bound {FAILOVER_BOUND:.2f} s"
            f"{context}")
    else:
        print("prim-a was already down when it was silenced")
    ups = [(t, step) for t, step in steps if t > silenced_at and not step.endswith("-> down")]
    assert not ups, f"prim-a came back up while silenced: {ups}{context}"
    assert "mbufs in use after shutdown: 0 of" in log, log[-2000:]
