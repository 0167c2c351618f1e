"""Several workers, each with its own queue of one port: every flow is handled by one worker,
and the per-worker counters add up to what was sent.

The appliance runs two worker lcores (both on CPU 1: this is about correctness, not speed) on
net_af_packet over a veth pair with two queue pairs. The kernel spreads received packets over
the PMD's two sockets by a hash of the flow (PACKET_FANOUT_HASH), as a NIC's RSS spreads them
over its queues. The peer sends one flow at a time, in bursts; after each burst exactly one
worker's received-packet counter (`/conduit/cores`) has grown, by the burst's size. Across the
flows both workers get some, and everything sent arrives, encapsulated, at the customer routers.
"""

import time

import yaml

from taplab import needs_netns, taplab  # noqa: F401
from test_failover import CONFIG, no_health_checks
from test_ops import telemetry

WORKERS = 2
FLOWS = 24
BURST = 40


def config() -> str:
    cfg = yaml.safe_load(no_health_checks(CONFIG))
    cfg["dataplane"]["workers"] = list(range(1, WORKERS + 1))
    return yaml.safe_dump(cfg, sort_keys=False)


def per_worker(lab) -> dict:
    return {lcore: c["rx_packets"] for lcore, c in telemetry(lab, "/conduit/cores").items()}


def wait_for_total(lab, before: dict, want: int, timeout=5.0) -> dict:
    """The counters once `want` more packets were received in total (they refresh every 0.5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        now = per_worker(lab)
        got = sum(now.values()) - sum(before.values())
        if got >= want or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


@needs_netns
def test_each_flow_stays_on_one_worker_and_counters_add_up(taplab):
    lab = taplab.start(config(), device="af_packet", workers=WORKERS, rate=0.0)
    before = per_worker(lab)
    assert len(before) == WORKERS, before
    owner = {}
    for f in range(FLOWS):
        sent = lab.cmd(f"burst {f} {BURST}")["sent"]
        assert sent == BURST, sent
        after = wait_for_total(lab, before, BURST)
        grew = {w: after[w] - before[w] for w in after if after[w] != before[w]}
        assert len(grew) == 1 and list(grew.values()) == [BURST], (
            f"flow {f}: the burst of {BURST} was received as {grew} (worker: packets)")
        owner[f] = next(iter(grew))
        before = after
    print(f"flows per worker: { {w: list(owner.values()).count(w) for w in before} }")
    assert len(set(owner.values())) == WORKERS, f"every flow went to one worker: {owner}"
    # What the workers received was forwarded: the customer routers got every packet.
    stats = lab.stats()
    got = sum(v["received"] for v in stats["flows"].values())
    assert got == FLOWS * BURST, f"customer routers received {got} of {FLOWS * BURST}"
    rc, log = lab.stop_appliance()
    assert rc == 0, log[-2000:]
    assert "mbufs in use after shutdown: 0 of" in log, log[-2000:]
