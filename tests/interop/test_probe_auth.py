"""Probe replies are authenticated (docs/behaviour.md §4), over a real EAL: conduit on a net_tap
port (taplab.py) with failover.yaml's three tunnels probed every 100 ms; peer.py answers them
and keeps the last real replies of each tunnel, as an eavesdropper on the path would.

prim-a (reply probes, unidirectional: answered plain) and backup (request probes,
bidirectional: answered inside its GRE) are silenced and go down. Then, for 4 s, the peer throws
at both everything it can build from the captured replies (`attack` in peer.py): a sweep of
sequence numbers with made-up MACs by the replies' own path, replays of the real replies long
after their deadline, the real replies inside the other tunnel's GRE, and plain with another
inner source. Both tunnels must stay down, and each kind must show in its counter
(`probe_reply_forged`, `probe_reply_stale`, `probe_reply_wrong_path`).
"""

import json
import re
import subprocess
import time

import yaml

from taplab import final_mbufs_ok, needs_netns, taplab  # noqa: F401
from test_failover import CONFIG

INTERVAL_MS = 100
ATTACK_S = 4.0
# Attack frames the appliance may lose (its tap queue overflows under the burst) before the
# counters' lower bounds fail.
DELIVERED = 0.5


def config() -> str:
    cfg = yaml.safe_load(CONFIG)
    for t in cfg["tunnels"]:
        hc = t["health_check"]
        hc["interval_ms"] = INTERVAL_MS
        hc["timeout_ms"] = 80
        # Short, so that a start-up stall of a busy machine (every tunnel down at once) heals
        # before the attack; the attack's tunnels must stay down, which no hold-down decides.
        hc["hold_down_ms"] = 1000
    return yaml.safe_dump(cfg, sort_keys=False)


def telemetry(lab, command: str) -> dict:
    out = subprocess.run(["dpdk-telemetry.py", "-f", lab.prefix], input=command + "\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = [l for l in out.stdout.splitlines() if l.startswith("{")][-1]
    return json.loads(line)[command.split(",")[0]]


def wait_state(lab, tunnel: str, state: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        t = telemetry(lab, f"/conduit/tunnel,{tunnel}")
        if t["state"] == state:
            return t
        assert time.monotonic() < deadline, f"{tunnel} not {state}: {t}\n{lab.log()[-2000:]}"
        time.sleep(0.2)


@needs_netns
def test_forged_replayed_and_misrouted_replies_keep_no_tunnel_up(taplab):
    lab = taplab.start(config())
    for name in ("prim-a", "prim-b", "backup"):
        wait_state(lab, name, "healthy", timeout=15.0)
    time.sleep(1.0)  # some real replies captured
    before = telemetry(lab, "/conduit/info")
    assert before["probe_reply_forged"] == before["probe_reply_wrong_path"] == 0, before
    lab.cmd("silence prim-a")
    lab.cmd("silence backup")
    silenced_log = len(lab.log().splitlines())
    for name in ("prim-a", "backup"):
        wait_state(lab, name, "down")

    sent = {"sweep": 0, "replay": 0, "wrong_tunnel": 0, "wrong_source": 0}
    end = time.monotonic() + ATTACK_S
    rounds = 0
    while time.monotonic() < end:
        for name in ("prim-a", "backup"):
            for k, v in lab.cmd(f"attack {name}", timeout=60)["sent"].items():
                sent[k] += v
        rounds += 1
    time.sleep(0.6)  # the snapshot (0.5 s) catches up
    after = telemetry(lab, "/conduit/info")
    a = telemetry(lab, "/conduit/tunnel,prim-a")
    b = telemetry(lab, "/conduit/tunnel,backup")
    rc, log = lab.stop_appliance()
    print(f"attack rounds {rounds}, sent {sent}; appliance counted forged "
          f"{after['probe_reply_forged']}, wrong path {after['probe_reply_wrong_path']}, stale "
          f"{after['probe_reply_stale']}")
    assert rc == 0, log[-3000:]
    assert final_mbufs_ok(log), log[-2000:]

    for t in (a, b):
        assert t["state"] == "down", t
    since = "\n".join(log.splitlines()[silenced_log:])
    back = re.findall(r"tunnel (prim-a|backup): down -> \w+", since)
    assert not back, f"a silenced tunnel came back under the attack: {back}\n{since[-3000:]}"
    # No forged timestamp reached an RTT histogram: the worst RTT is a real one.
    for t in (a, b):
        assert t.get("rtt_max_us", 0) < 1_000_000, t

    forged = after["probe_reply_forged"] - before["probe_reply_forged"]
    wrong = after["probe_reply_wrong_path"] - before["probe_reply_wrong_path"]
    stale = after["probe_reply_stale"] - before["probe_reply_stale"]
    assert forged >= DELIVERED * sent["sweep"], (forged, sent)
    assert wrong >= DELIVERED * (sent["wrong_tunnel"] + sent["wrong_source"]), (wrong, sent)
    assert stale >= DELIVERED * sent["replay"], (stale, sent)
    # Nothing the attack sent was taken for something else.
    assert forged <= sent["sweep"] and wrong <= sent["wrong_tunnel"] + sent["wrong_source"], (
        forged, wrong, sent)
