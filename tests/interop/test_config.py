"""Configured port MAC, routes via the gateway and tunnel admin state, checked by scapy and
tshark (docs/behaviour.md §2, §3, §8):

- replay over net_pcap (configs/replay.yaml): a `0.0.0.0/0` route via the gateway forwards plain
  traffic unencapsulated, TTL - 1 with a correct checksum, from the configured port MAC (net_pcap
  keeps its own MAC), while the customer prefixes still go into their tunnels; admin-down
  tunnels get none of their prefixes' traffic;
- live over net_tap (taplab): a tunnel set admin down in the file carries nothing, a reload with
  `admin: up` brings its flows back, and a reload with `admin: down` moves them off again.
"""

import pathlib
import re
import time

from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from conftest import tshark_malformed
from taplab import drain, final_mbufs_ok, needs_netns, runs, taplab, tunnel_at  # noqa: F401
from test_pipeline import CONFIG, GW_MAC, PORT_MAC, REMOTES, drops, eth, tunnel_of
from test_reload import CONFIG_A, hup, put

COMMENTED = "  # - {prefix: 0.0.0.0/0, next_hop: gateway, priority: 100}\n"
assert COMMENTED in CONFIG
WITH_DEFAULT = CONFIG.replace(COMMENTED, COMMENTED.replace("# ", "", 1))


def admin_down(config: str, tunnel: str) -> str:
    """`config` with `admin: down` added to the tunnel called `tunnel`."""
    head = f"  - name: {tunnel}\n"
    assert config.count(head) == 1
    return config.replace(head, f"{head}    admin: down\n")


def expected_plain(sent):
    exp = sent[IP].copy()
    exp.ttl -= 1
    del exp.chksum
    return bytes(IP(bytes(exp)))


def test_default_route_via_gateway_forwards_plain(replay):
    internet = []
    for i in range(300):
        dst = f"{(i % 200) + 1}.{i % 7}.{i % 13}.{i % 250 + 1}"
        if dst.startswith(("10.", "127.", "172.", "192.", "198.", "203.")):
            dst = f"93.184.{i % 256}.9"
        l4 = [TCP(sport=10000 + i, dport=443, flags="S", options=[("MSS", 1460)]),
              UDP(sport=20000 + i, dport=40000) / Raw(b"q" * (i % 40)),
              ICMP(id=i, seq=1) / Raw(b"ping")][i % 3]
        internet.append(eth() / IP(src="192.0.2.100", dst=dst, ttl=2 + i % 60, tos=i % 256) / l4)
    customer = [eth() / IP(src="192.0.2.100", dst=f"172.16.{i}.1") / UDP(sport=i, dport=40000)
                for i in range(50)]
    expiring = eth() / IP(src="192.0.2.100", dst="93.184.0.1", ttl=1) / UDP(sport=1, dport=2)
    martian = eth() / IP(src="192.0.2.100", dst="127.0.0.1") / UDP(sport=1, dport=2)
    pkts = internet + customer + [expiring, martian]
    (out,) = replay.run(WITH_DEFAULT, pkts, ports=1)
    assert len(out) == len(internet) + len(customer), replay.log
    for i, (sent, got) in enumerate(zip(internet, out)):
        assert not got.haslayer(GRE), f"packet {i}: {got.summary()}"
        assert got[Ether].src == PORT_MAC and got[Ether].dst == GW_MAC, f"packet {i}"
        # TTL - 1 and a checksum equal to a full recomputation; the MSS of a plain SYN stays.
        assert bytes(got[IP]) == expected_plain(sent), f"packet {i}: {got.summary()}"
    for got in out[len(internet):]:
        assert tunnel_of(got) in ("t1", "t2"), "a longer customer prefix beats 0.0.0.0/0"
        assert got[Ether].src == PORT_MAC
    d = drops(replay.log)
    assert d.get("ttl_exceeded") == 1 and d.get("martian_destination") == 1, d
    assert d.get("no_route", 0) == 0, d
    assert "the device keeps its own mac" in replay.log
    assert tshark_malformed(replay.outputs[0]) == []


def test_admin_down_tunnels_get_no_traffic(replay):
    pkts = [eth() / IP(src=f"192.0.2.{100 + i % 50}", dst=f"172.16.{i % 256}.{i % 250 + 1}")
            / UDP(sport=1000 + i, dport=40000) for i in range(400)]
    (out,) = replay.run(admin_down(CONFIG, "t1"), pkts, ports=1)
    assert len(out) == len(pkts), replay.log
    assert {tunnel_of(p) for p in out} == {"t2"}, "t1 is admin-down: t2 carries every flow"
    # Both equal-cost tunnels admin-down: the backup (priority 200) beats their down penalty.
    (out,) = replay.run(admin_down(admin_down(CONFIG, "t1"), "t2"), pkts, ports=1)
    assert {tunnel_of(p) for p in out} == {"t3"}
    # And still decapsulates what arrives through it.
    inner = IP(src="172.16.5.5", dst="93.184.0.5", ttl=30) / UDP(sport=5, dport=6)
    (out,) = replay.run(admin_down(CONFIG, "t1"),
                        [eth() / IP(src=REMOTES["t1"], dst="203.0.113.1") / GRE() / inner],
                        ports=1)
    assert len(out) == 1 and not out[0].haslayer(GRE)
    assert bytes(out[0][IP]) == expected_plain(Ether() / inner)


PER_PREFIX = 16


@needs_netns
def test_admin_state_follows_reloads_under_traffic(taplab):
    down = admin_down(CONFIG_A, "prim-a")
    lab = taplab.start(down, flows="172.16", per_prefix=PER_PREFIX, rate=400)
    lab.cmd("traffic start")
    time.sleep(2.0)
    s = lab.stats()
    t_down = s["t"]
    for f in range(PER_PREFIX):
        assert {r["tunnel"] for r in runs(s, f)} == {"prim-b"}, (f, runs(s, f))

    put(lab, CONFIG_A)
    hup(lab, "admin up")
    lab.wait_log("tunnel prim-a: admin up", 10)
    time.sleep(2.0)
    s = lab.stats()
    t_up = s["t"]
    back = [f for f in range(PER_PREFIX) if tunnel_at(s, f, t_up) == "prim-a"]
    assert back, "no flow returned to prim-a after the reload with admin up"
    assert all(tunnel_at(s, f, t_up) in ("prim-a", "prim-b") for f in range(PER_PREFIX))

    put(lab, down)
    hup(lab, "admin down")
    lab.wait_log("tunnel prim-a: admin down", 10)
    time.sleep(2.0)
    sent = lab.cmd("traffic stop")["sent"]
    s = drain(lab, sent)
    for f in range(PER_PREFIX):
        assert tunnel_at(s, f, s["t"]) == "prim-b", (f, runs(s, f))
    # The flows that came back were on prim-b before (t_down) and after.
    for f in back:
        seen = [r["tunnel"] for r in runs(s, f)]
        assert seen == ["prim-b", "prim-a", "prim-b"], (f, seen, t_down)
    rc, log = lab.stop_appliance()
    assert rc == 0, log[-5000:]
    assert final_mbufs_ok(log), log[-5000:]
    assert re.search(r"reloads 2 ok / 0 failed", log), log[-3000:]
