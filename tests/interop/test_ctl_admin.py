"""`conduit ctl tunnel NAME admin down|up` against a live appliance under traffic (net_tap,
taplab): the flows of the tunnel set down move to its equal-cost partner and come back when it
is set up again, with one table swap each, and no packet of any flow is lost on the way. The
appliance sees only its telemetry socket being used: no signal, no file change.
"""

import subprocess
import time

from conftest import CONDUIT
from taplab import drain, final_mbufs_ok, needs_netns, runs, taplab, tunnel_at  # noqa: F401
from test_failover import assert_no_loss, no_health_checks
from test_reload import CONFIG_A

PER_PREFIX = 16


def ctl(lab, *args) -> str:
    out = subprocess.run([CONDUIT, "ctl", "--file-prefix", lab.prefix, *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"conduit ctl {' '.join(args)}: {out.stderr}"
    return out.stdout


@needs_netns
def test_admin_down_and_up_at_run_time_moves_flows_without_loss(taplab):
    lab = taplab.start(no_health_checks(CONFIG_A), flows="172.16", per_prefix=PER_PREFIX,
                       rate=400)
    lab.cmd("traffic start")
    time.sleep(1.5)
    s = lab.stats()
    on_a = [f for f in range(PER_PREFIX) if tunnel_at(s, f, s["t"]) == "prim-a"]
    assert on_a, f"no flow on prim-a to move: {[runs(s, f) for f in range(3)]}"

    out = ctl(lab, "tunnel", "prim-a", "admin", "down")
    assert "admin down" in out, out
    # `show` reads the operator snapshot, refreshed every 0.5 s.
    deadline = time.monotonic() + 3.0
    while "admin-down" not in (shown := ctl(lab, "show", "tunnels")):
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    time.sleep(1.5)
    s = lab.stats()
    assert all(tunnel_at(s, f, s["t"]) == "prim-b" for f in range(PER_PREFIX)), (
        [runs(s, f) for f in on_a[:3]])

    ctl(lab, "tunnel", "prim-a", "admin", "up")
    time.sleep(1.5)
    sent = lab.cmd("traffic stop")["sent"]
    s = drain(lab, sent)
    for f in on_a:
        seen = [r["tunnel"] for r in runs(s, f)]
        assert seen == ["prim-a", "prim-b", "prim-a"], (f, seen)
    # Every flow, moved or not, arrived whole.
    assert_no_loss(lab, s, range(PER_PREFIX), "admin down and up through conduit ctl")
    rc, log = lab.stop_appliance()
    assert rc == 0, log[-3000:]
    assert final_mbufs_ok(log), log[-3000:]
    assert "tunnel prim-a: admin down" in log and "tunnel prim-a: admin up" in log, log[-3000:]
