"""The customer-router peer (peer.py) offline: scapy-built frames in, its answers out, decoded by
scapy. No interface and no appliance: these run anywhere, and they pin down the wire behaviour the
failover tests rely on (docs/behaviour.md §4 probes, GRE with and without key, both directions)."""

import pathlib
import struct

import pytest
import yaml
from scapy.layers.inet import GRE, ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

import peer

HERE = pathlib.Path(__file__).resolve().parent
CFG = yaml.safe_load((HERE / "failover.yaml").read_text())
APP_MAC = "02:00:00:00:c0:01"
MY_MAC = "02:00:00:00:00:01"
TUNNELS = {t.name: t for t in peer.tunnels_from_config(CFG)}


@pytest.fixture
def router():
    return peer.CustomerRouter(TUNNELS.values(), MY_MAC, APP_MAC, "192.0.2.1")


def from_appliance(t, inner, key=None):
    """A frame the appliance sends into tunnel `t` (key defaults to the tunnel's)."""
    key = t.key if key is None else key
    gre = GRE(key_present=1, key=key) if key is not None else GRE()
    return bytes(Ether(src=APP_MAC, dst=MY_MAC) / IP(src=t.local, dst=t.remote, ttl=64) / gre / inner)


def probe_payload(index, stamp=b"\x01\x02\x03\x04\x05\x06\x07\x08"):
    return peer.PROBE_MAGIC + struct.pack("!I", index) + stamp


def test_config_tunnels_and_customer_sides():
    assert [t.name for t in TUNNELS.values()] == ["prim-a", "prim-b", "backup"]
    a, b, k = TUNNELS["prim-a"], TUNNELS["prim-b"], TUNNELS["backup"]
    assert (a.index, a.ours, a.customer, a.key) == (0, "10.200.0.0", "10.200.0.1", None)
    assert (b.index, b.ours, b.customer) == (1, "10.200.0.2", "10.200.0.3")
    assert (k.index, k.key, k.local, k.remote) == (2, 1001, "203.0.113.1", "198.51.100.20")
    # /30: .9 <-> .10 (network and broadcast are not hosts); /31: .0 <-> .1
    assert peer.customer_side("10.200.0.9/30") == "10.200.0.10"
    assert peer.customer_side("10.200.0.10/30") == "10.200.0.9"
    assert peer.customer_side("10.200.0.5/31") == "10.200.0.4"


def test_arp_for_the_gateway_is_answered(router):
    req = Ether(src=APP_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=APP_MAC, psrc="192.0.2.10", pdst="192.0.2.1")
    (out,) = router.handle(bytes(req))
    rep = Ether(out)
    assert rep[Ether].dst == APP_MAC and rep[Ether].src == MY_MAC
    assert rep[ARP].op == 2 and rep[ARP].psrc == "192.0.2.1" and rep[ARP].hwsrc == MY_MAC
    assert rep[ARP].pdst == "192.0.2.10" and rep[ARP].hwdst == APP_MAC
    other = Ether(src=APP_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=APP_MAC, psrc="192.0.2.10", pdst="192.0.2.77")
    assert router.handle(bytes(other)) == []


@pytest.mark.parametrize("name", ["prim-a", "backup"])
def test_reply_probe_unidirectional_is_bounced_plain(router, name):
    t = TUNNELS[name]
    pay = probe_payload(t.index)
    inner = IP(src=t.customer, dst=t.local, ttl=64) / ICMP(type=0, id=0xC0DE, seq=7) / pay
    (out,) = router.handle(from_appliance(t, inner))
    got = Ether(out)
    assert got[Ether].dst == APP_MAC and got[Ether].src == MY_MAC
    assert not got.haslayer(GRE), "unidirectional: the answer comes back plain"
    assert got[IP].src == t.customer and got[IP].dst == t.local and got[IP].ttl == 63
    assert got[ICMP].type == 0 and got[ICMP].id == 0xC0DE and got[ICMP].seq == 7
    assert bytes(got[ICMP].payload) == pay
    assert_checksums(got[IP])
    assert router.stats()["tunnels"][name]["probes_answered"] == 1


@pytest.mark.parametrize("name", ["prim-a", "backup"])
def test_reply_probe_bidirectional_returns_inside_the_tunnel(router, name):
    t = TUNNELS[name]
    pay = probe_payload(t.index, b"T" * 12)
    inner = IP(src=t.customer, dst=t.ours, ttl=64) / ICMP(type=0, id=0xC0DE, seq=65535) / pay
    (out,) = router.handle(from_appliance(t, inner))
    got = Ether(out)
    assert got[IP].src == t.remote and got[IP].dst == t.local and got[IP].proto == 47
    gre = got[GRE]
    assert gre.version == 0 and gre.proto == 0x0800
    if t.key is None:
        assert not gre.key_present
    else:
        assert gre.key_present and gre.key == t.key
    back = gre.payload
    assert back.src == t.customer and back.dst == t.ours and back.ttl == 63
    assert back[ICMP].type == 0 and back[ICMP].seq == 65535 and bytes(back[ICMP].payload) == pay
    assert_checksums(back)
    assert_checksums(got[IP])
    assert router.stats()["tunnels"][name]["tx_into"] == 1


@pytest.mark.parametrize("name", ["prim-b", "backup"])
@pytest.mark.parametrize("direction", ["unidirectional", "bidirectional"])
def test_request_probe_is_answered(router, name, direction):
    t = TUNNELS[name]
    src = t.ours if direction == "bidirectional" else t.local
    pay = probe_payload(t.index)
    for target in (t.remote, t.customer):
        inner = IP(src=src, dst=target, ttl=64) / ICMP(type=8, id=0xC0DE, seq=3) / pay
        (out,) = router.handle(from_appliance(t, inner))
        got = Ether(out)
        if direction == "bidirectional":
            assert got[IP].src == t.remote and got[IP].dst == t.local
            assert (got[GRE].key if got[GRE].key_present else None) == t.key
            rep = got[GRE].payload
        else:
            assert not got.haslayer(GRE)
            rep = got[IP]
        assert rep.src == target and rep.dst == src
        assert rep[ICMP].type == 0 and rep[ICMP].code == 0
        assert rep[ICMP].id == 0xC0DE and rep[ICMP].seq == 3 and bytes(rep[ICMP].payload) == pay
        assert_checksums(rep)
    s = router.stats()["tunnels"][name]
    assert s["probes_seen"] == 2 and s["probes_answered"] == 2 and s["requests_answered"] == 2


def test_silence_drops_probes_of_one_tunnel_only_and_restore(router):
    a, b = TUNNELS["prim-a"], TUNNELS["prim-b"]
    pa = from_appliance(a, IP(src=a.customer, dst=a.local) / ICMP(type=0, id=0xC0DE, seq=1) / probe_payload(0))
    pb = from_appliance(b, IP(src=b.local, dst=b.remote) / ICMP(type=8, id=0xC0DE, seq=1) / probe_payload(1))
    router.silence("prim-a")
    assert router.handle(pa) == []
    assert len(router.handle(pb)) == 1
    router.restore("prim-a")
    assert len(router.handle(pa)) == 1
    s = router.stats()
    assert s["tunnels"]["prim-a"]["probes_dropped"] == 1
    assert s["tunnels"]["prim-a"]["probes_answered"] == 1
    assert s["tunnels"]["prim-b"]["probes_dropped"] == 0
    with pytest.raises(KeyError):
        router.silence("nope")


def test_answer_latency_is_recorded(router):
    a = TUNNELS["prim-a"]
    probe = from_appliance(a, IP(src=a.customer, dst=a.local) / ICMP(type=0, id=0xC0DE, seq=1) / probe_payload(0))
    router.handle(probe, now=5.0, waited=0.001)
    router.handle(probe, now=6.0, waited=0.2)
    s = router.stats()
    assert s["answer_ms_max"]["prim-a"] >= 200 and s["answer_ms_max"]["prim-b"] == 0
    assert [t for t, _ in s["late_answers"]["prim-a"]] == [6.0]
    router.silence("prim-a")
    router.handle(probe, now=7.0, waited=0.5)  # dropped, not answered: not an answer latency
    assert len(router.stats()["late_answers"]["prim-a"]) == 1


def test_long_gaps_between_probes_are_recorded(router):
    a = TUNNELS["prim-a"]
    probe = from_appliance(a, IP(src=a.customer, dst=a.local) / ICMP(type=0, id=0xC0DE, seq=1) / probe_payload(0))
    for t in (1.0, 1.25, 1.5, 3.0, 3.25):
        router.handle(probe, now=t)
    assert router.stats()["probe_gaps"] == {"prim-a": [(3.0, 1.5)], "prim-b": [], "backup": []}


def test_probe_index_mismatch_is_counted(router):
    a = TUNNELS["prim-a"]
    router.handle(from_appliance(a, IP(src=a.customer, dst=a.local) / ICMP(type=0, id=0xC0DE, seq=1) / probe_payload(2)))
    assert router.stats()["tunnels"]["prim-a"]["probe_index_mismatch"] == 1


def test_gre_key_rules(router):
    k, a = TUNNELS["backup"], TUNNELS["prim-a"]
    probe = IP(src=k.ours, dst=k.remote) / ICMP(type=8, id=0xC0DE, seq=1) / probe_payload(2)
    no_key = bytes(Ether(src=APP_MAC, dst=MY_MAC) / IP(src=k.local, dst=k.remote) / GRE() / probe)
    assert router.handle(no_key) == []
    assert router.handle(from_appliance(k, probe, key=1002)) == []
    unexpected = from_appliance(a, IP(src=a.customer, dst=a.local) / ICMP(type=0, id=0xC0DE) / probe_payload(0), key=5)
    assert router.handle(unexpected) == []
    stranger = bytes(Ether(src=APP_MAC, dst=MY_MAC) / IP(src="203.0.113.1", dst="198.51.100.99") / GRE() / probe)
    assert router.handle(stranger) == []
    c = router.stats()["counters"]
    assert c["gre_bad_key"] == 3 and c["gre_unknown"] == 1


def test_data_flows_are_counted_per_tunnel_with_runs_and_gaps(router):
    a, k = TUNNELS["prim-a"], TUNNELS["backup"]

    def data(t, flow, seq, **gre_flags):
        inner = IP(src="198.18.0.1", dst="172.16.1.1", ttl=63) / UDP(sport=49152 + flow, dport=peer.DATA_PORT, chksum=0) / peer.data_payload(flow, seq)
        key = t.key
        gre = GRE(key_present=1 if key is not None else 0, key=key, **gre_flags)
        return bytes(Ether(src=APP_MAC, dst=MY_MAC) / IP(src=t.local, dst=t.remote) / gre / inner)

    for seq in range(5):
        assert router.handle(data(a, 1, seq), now=10.0 + seq) == []
    # seq 5 lost; 6..7 arrive on the backup (with GRE checksum and sequence number: still parsed)
    router.handle(data(k, 1, 6, chksum_present=1, seqnum_present=1, sequence_number=9), now=16.0)
    router.handle(data(k, 1, 7), now=17.0)
    router.handle(data(a, 2, 0), now=11.0)
    s = router.stats()
    f1 = s["flows"]["1"]
    assert [(r["tunnel"], r["first_seq"], r["last_seq"], r["count"]) for r in f1["runs"]] == [
        ("prim-a", 0, 4, 5), ("backup", 6, 7, 2)]
    assert f1["runs"][1]["t_first"] == 16.0 and f1["runs"][0]["t_last"] == 14.0
    assert f1["missing"] == [5] and f1["max_seq"] == 7 and f1["duplicates"] == 0
    assert s["tunnels"]["prim-a"]["data"] == 6 and s["tunnels"]["backup"]["data"] == 2
    assert s["flows"]["2"]["received"] == 1


def test_traffic_source_frames_and_fast_path_agree():
    sent = []
    flows = peer.flow_table(["172.16", "172.18"], 3)
    assert len({(d, p) for _, _, d, p in flows}) == 6
    src = peer.TrafficSource(sent.append, flows, MY_MAC, APP_MAC, rate=1000)
    for f in (0, 4):
        src.send(src.headers[f] + peer.data_payload(f, 9))
    for raw, f in zip(sent, (0, 4)):
        p = Ether(raw)
        assert p[Ether].dst == APP_MAC and p[IP].dst == flows[f][2] and p[UDP].sport == flows[f][3]
        assert p[UDP].dport == peer.DATA_PORT and 1024 < peer.DATA_PORT and p[UDP].chksum == 0
        assert_checksums(p[IP], l4=False)
        assert bytes(p[UDP].payload)[:12] == peer.DATA_MAGIC + struct.pack("!II", f, 9)
    # The same packet after encapsulation by the appliance is recognised by the fast path.
    a = TUNNELS["prim-a"]
    inner = Ether(sent[1])[IP]
    inner.ttl -= 1
    del inner.chksum
    r = peer.CustomerRouter(TUNNELS.values(), MY_MAC, APP_MAC, "192.0.2.1")
    r.handle(from_appliance(a, IP(bytes(inner))))
    assert r.stats()["flows"]["4"]["runs"][0]["tunnel"] == "prim-a"


def test_traffic_source_paces_and_counts_per_flow():
    sent = []
    flows = peer.flow_table(["172.16"], 4)
    src = peer.TrafficSource(sent.append, flows, MY_MAC, APP_MAC, rate=500)
    src.start()
    import time
    time.sleep(0.4)
    src.stop()
    assert 100 <= len(sent) <= 260, len(sent)
    assert sum(src.sent) == len(sent) and max(src.sent) - min(src.sent) <= 1


def assert_checksums(ip, l4=True):
    chk = ip.chksum
    c = ip.copy()
    del c.chksum
    if l4 and c.haslayer(ICMP):
        ichk = c[ICMP].chksum
        del c[ICMP].chksum
        assert IP(bytes(c))[ICMP].chksum == ichk
    assert IP(bytes(c)).chksum == chk
