"""Operations while the appliance runs: the Prometheus endpoint (parsed with prometheus_client's
own parsers, in the text format 0.0.4 and in OpenMetrics) and the DPDK telemetry commands (queried with DPDK's dpdk-telemetry.py) report what
the control plane decided, in the live tap lab of test_failover.py: traffic flows, one primary
is silenced, and both interfaces must show it down, the other primary healthy with measured
RTTs, and the table generation that the failover published.
"""

import json
import pathlib
import shutil
import subprocess
import time

import pytest
import yaml
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families)
from prometheus_client.parser import text_string_to_metric_families

from taplab import final_mbufs_ok, needs_netns, taplab  # noqa: F401

HERE = pathlib.Path(__file__).resolve().parent
LISTEN = "127.0.0.1:9464"  # inside the lab's network namespace: no clash with the host


def config() -> str:
    cfg = yaml.safe_load((HERE / "failover.yaml").read_text())
    cfg["stats"] = {"interval_ms": 0, "prometheus_listen": LISTEN}
    return yaml.safe_dump(cfg, sort_keys=False)


OPENMETRICS = "application/openmetrics-text;version=1.0.0"


def scrape(lab, accept="text/plain;version=0.0.4") -> dict:
    """Every sample of /metrics as {(name, frozenset(labels)): value}, in the format `accept`
    asks for, parsed by prometheus_client's parser of that format."""
    code = (f"import urllib.request,sys;"
            f"r=urllib.request.urlopen(urllib.request.Request('http://{LISTEN}/metrics',"
            f"headers={{'Accept':'{accept}'}}),timeout=5);"
            f"sys.stdout.write(r.headers['Content-Type']+'\\n'+r.read().decode())")
    out = subprocess.run(["ip", "netns", "exec", lab.ns, "python3", "-c", code],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    ctype, text = out.stdout.split("\n", 1)
    openmetrics = accept.startswith("application/openmetrics-text")
    assert ctype.startswith("application/openmetrics-text" if openmetrics else "text/plain"), ctype
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    samples = {}
    for family in parse(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def telemetry(lab, command: str) -> dict:
    out = subprocess.run(["dpdk-telemetry.py", "-f", lab.prefix], input=command + "\n",
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    # The script prints the connection banner, then one JSON object per command.
    replies = [json.loads(line[line.index("{"):]) for line in out.stdout.splitlines()
               if "{" in line and command.split(",")[0] in line]
    assert replies, out.stdout
    return replies[-1][command.split(",")[0]]


def state(samples, tunnel) -> str:
    on = [dict(k[1])["state"] for k, v in samples.items()
          if k[0] == "conduit_tunnel_state" and dict(k[1]).get("tunnel") == tunnel and v == 1]
    assert len(on) == 1, (tunnel, on)
    return on[0]


def wait_for(lab, predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(lab)
        if predicate(samples):
            return samples
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s\n{lab.log()[-3000:]}"
        time.sleep(0.5)


@needs_netns
@pytest.mark.skipif(shutil.which("dpdk-telemetry.py") is None, reason="needs dpdk-telemetry.py")
def test_metrics_and_telemetry_follow_a_failover(taplab):
    lab = taplab.start(config(), per_prefix=16, rate=200.0)
    lab.cmd("traffic start")
    s = wait_for(lab, lambda s: all(state(s, t) == "healthy" for t in ("prim-a", "prim-b", "backup"))
                 and s.get(("conduit_tunnel_rtt_seconds_count", frozenset({("tunnel", "prim-b")})), 0) >= 3,
                 "every tunnel healthy with RTT samples")
    assert s[("conduit_tunnel_penalty", frozenset({("tunnel", "prim-a")}))] == 0
    generation_before = s[("conduit_table_generation", frozenset())]

    lab.cmd("silence prim-a")
    s = wait_for(lab, lambda s: state(s, "prim-a") == "down", "prim-a down in /metrics")
    time.sleep(1.0)  # the snapshot refreshes every 0.5 s: let the counters move on
    s = scrape(lab)
    lab.cmd("traffic stop")

    assert state(s, "prim-b") == "healthy" and state(s, "backup") == "healthy"
    assert s[("conduit_tunnel_penalty", frozenset({("tunnel", "prim-a")}))] == 1_000_000
    assert s[("conduit_table_generation", frozenset())] > generation_before
    # RTT histogram: every reply of prim-b measured, and more than half within a second.
    count = s[("conduit_tunnel_rtt_seconds_count", frozenset({("tunnel", "prim-b")}))]
    within_1s = s[("conduit_tunnel_rtt_seconds_bucket",
                   frozenset({("tunnel", "prim-b"), ("le", "1.0")}))]
    assert count >= 3 and within_1s > count / 2, (count, within_1s)
    changed = s[("conduit_tunnel_last_state_change_timestamp_seconds",
                 frozenset({("tunnel", "prim-a")}))]
    assert abs(changed - time.time()) < 60, changed
    lost = s[("conduit_tunnel_probes_lost_total", frozenset({("tunnel", "prim-a")}))]
    assert lost >= 3, lost
    # Traffic was encapsulated into the primaries, and the workers' counters reach the scrape.
    tx_b = s[("conduit_tunnel_tx_packets_total", frozenset({("tunnel", "prim-b")}))]
    assert tx_b > 0
    rx = sum(v for k, v in s.items() if k[0] == "conduit_core_rx_packets_total")
    assert rx >= tx_b
    # The same endpoint in OpenMetrics, through the OpenMetrics parser: the same series.
    om = scrape(lab, OPENMETRICS)
    assert set(om) == set(s), set(om) ^ set(s)
    assert om[("conduit_tunnel_penalty", frozenset({("tunnel", "prim-a")}))] == 1_000_000

    t = telemetry(lab, "/conduit/tunnel,prim-a")
    assert t["name"] == "prim-a" and t["state"] == "down" and t["penalty"] == 1_000_000, t
    t = telemetry(lab, "/conduit/tunnel,prim-b")
    assert t["state"] == "healthy" and t["rtt_p50_us"] > 0, t
    info = telemetry(lab, "/conduit/info")
    assert info["table_generation"] >= s[("conduit_table_generation", frozenset())], info
    listed = telemetry(lab, "/conduit/tunnels")
    assert listed["names"] == ["prim-a", "prim-b", "backup"], listed

    rc, log = lab.stop_appliance()
    assert rc == 0, log
    assert final_mbufs_ok(log), log
