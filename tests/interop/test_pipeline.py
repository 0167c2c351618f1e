"""The packet pipeline against scapy: inputs built by scapy (thousands of flows, GRE with and
without key/checksum/sequence, fragments, MSS, too-big, malformed), run through conduit in
pipeline mode over net_pcap, outputs decoded by scapy and checked packet by packet, and by
tshark for malformed frames.

Topology: configs/replay.yaml (one port, which faces the gateway, as on an edge appliance with
one uplink):
  local endpoint 203.0.113.1; gateway 192.0.2.1 (static MAC); port address 192.0.2.10/24.
  t1: GRE to 198.51.100.1, no key, interface 10.255.0.0/31; t2: GRE key 42 to 198.51.100.2.
  t3: GRE to 198.51.100.3, backup (priority 200). Routes: 172.16.0.0/16 via t1 and t2 at
  priority 100 and t3 at 200; 172.17.0.0/16 via t3 only.
"""

import collections

import pytest
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP, fragment
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from conftest import ROOT, tshark_malformed

PORT_MAC = "02:00:00:00:00:0a"  # the port's configured MAC (net_pcap0's own is 02:70:63:61:70:00)
GW_MAC = "02:00:00:00:00:fe"
LOCAL = "203.0.113.1"
REMOTES = {"t1": "198.51.100.1", "t2": "198.51.100.2", "t3": "198.51.100.3"}

CONFIG = (ROOT / "configs" / "replay.yaml").read_text()


def eth():
    return Ether(src=GW_MAC, dst=PORT_MAC)


def tunnel_of(pkt):
    """The tunnel an output packet went into, by outer destination (None if plain)."""
    if not pkt.haslayer(GRE):
        return None
    for name, ip in REMOTES.items():
        if pkt[IP].dst == ip:
            return name
    return "?"


def drops(log):
    out = {}
    for line in log.splitlines():
        if line.startswith("drop "):
            _, reason, n = line.split()
            out[reason] = int(n)
    return out


def check_outer(pkt, tunnel):
    outer = pkt[IP]
    assert outer.src == LOCAL and outer.dst == REMOTES[tunnel]
    assert outer.proto == 47 and outer.ttl == 64
    assert pkt[Ether].src == PORT_MAC and pkt[Ether].dst == GW_MAC
    # scapy recomputes the checksum when told to forget it: the emitted one must match.
    chk = outer.chksum
    del outer.chksum
    assert IP(bytes(outer)).chksum == chk
    gre = pkt[GRE]
    assert gre.proto == 0x0800 and gre.version == 0 and gre.routing_present == 0
    if tunnel == "t2":
        assert gre.key_present == 1 and gre.key == 42
    else:
        assert gre.key_present == 0


def test_encap_thousands_of_flows_ecmp(replay):
    pkts = []
    for i in range(3000):
        dst = f"172.16.{(i * 7) % 256}.{i % 250 + 1}"
        if i % 3 == 0:
            l4 = TCP(sport=10000 + i, dport=443, flags="A") / Raw(b"t" * (i % 50))
        elif i % 3 == 1:
            l4 = UDP(sport=20000 + i, dport=40000) / Raw(b"u" * (i % 50))
        else:
            l4 = ICMP(id=i, seq=1) / Raw(b"i" * 8)
        flags = "DF" if i % 2 else 0
        pkts.append(eth() / IP(src=f"192.0.2.{100 + i % 50}", dst=dst, ttl=20, flags=flags) / l4)
    # A second packet of the first 500 flows must take the same tunnel.
    pkts += pkts[:500]
    (out,) = replay.run(CONFIG, pkts, ports=1)
    assert len(out) == len(pkts), replay.log
    per_tunnel = collections.Counter()
    first_choice = {}
    for i, (sent, got) in enumerate(zip(pkts, out)):
        t = tunnel_of(got)
        assert t in ("t1", "t2"), f"packet {i}: {got.summary()}"
        check_outer(got, t)
        inner = got[GRE].payload
        exp = sent[IP].copy()
        exp.ttl -= 1
        del exp.chksum
        assert bytes(inner) == bytes(IP(bytes(exp))), f"packet {i}: inner differs"
        assert bool(got[IP].flags.DF) == bool(sent[IP].flags.DF), "DF copied from the inner packet"
        key = i % 3000
        first_choice.setdefault(key, t)
        assert first_choice[key] == t, f"flow {key} changed tunnel"
        if i < 3000:
            per_tunnel[t] += 1
    # Two equal-cost tunnels: the split is even within a few percent.
    assert abs(per_tunnel["t1"] - per_tunnel["t2"]) < 0.1 * 3000, per_tunnel
    assert tshark_malformed(replay.outputs[0]) == []


def test_backup_only_prefix_and_no_route(replay):
    pkts = [eth() / IP(src="192.0.2.100", dst="172.17.1.1") / UDP(sport=1, dport=40000)]
    pkts += [eth() / IP(src="192.0.2.100", dst="8.8.8.8") / UDP(sport=1, dport=40000)]
    (out,) = replay.run(CONFIG, pkts, ports=1)
    assert len(out) == 1
    assert tunnel_of(out[0]) == "t3"
    assert drops(replay.log).get("no_route") == 1, replay.log


@pytest.mark.parametrize("variant", ["plain", "key", "checksum", "sequence", "all"])
def test_decap_gre_variants_to_internet_egress(replay, variant):
    remote, key = ("198.51.100.2", 42) if variant in ("key", "all") else ("198.51.100.1", None)
    pkts = []
    for i in range(200):
        inner = IP(src=f"172.16.5.{i % 200 + 1}", dst=f"93.184.{i % 200}.1", ttl=30) / UDP(sport=50000 + i, dport=40000) / Raw(b"d" * 30)
        gre = GRE(
            key_present=1 if key is not None else 0, key=key,
            chksum_present=1 if variant in ("checksum", "all") else 0,
            seqnum_present=1 if variant in ("sequence", "all") else 0, sequence_number=i,
        )
        pkts.append(eth() / IP(src=remote, dst=LOCAL) / gre / inner)
    (out,) = replay.run(CONFIG, pkts, ports=1)
    assert len(out) == 200, replay.log
    for sent, got in zip(pkts, out):
        assert not got.haslayer(GRE)
        assert got[Ether].dst == GW_MAC and got[Ether].src == PORT_MAC
        exp = sent[GRE].payload.copy()
        exp.ttl -= 1
        del exp.chksum
        assert bytes(got[IP]) == bytes(IP(bytes(exp)))
    assert f"tunnel    {'t2' if key else 't1'}" in replay.log
    assert tshark_malformed(replay.outputs[0]) == []


def test_transit_reencapsulates(replay):
    # GRE from t1's remote carrying traffic for another customer prefix (172.17/16 via t3).
    inner = IP(src="172.16.9.9", dst="172.17.2.2", ttl=9) / TCP(sport=1234, dport=80, flags="A")
    (out,) = replay.run(CONFIG, [eth() / IP(src=REMOTES["t1"], dst=LOCAL) / GRE() / inner], ports=1)
    assert len(out) == 1
    assert tunnel_of(out[0]) == "t3"
    check_outer(out[0], "t3")
    assert out[0][GRE].payload[IP].ttl == 8


def test_gre_rejections_are_counted(replay):
    good_inner = IP(src="172.16.1.1", dst="93.184.0.1") / UDP(sport=1, dport=40000)
    cases = [
        eth() / IP(src="198.51.100.9", dst=LOCAL) / GRE() / good_inner,  # unknown remote
        eth() / IP(src=REMOTES["t2"], dst=LOCAL) / GRE() / good_inner,  # key missing
        eth() / IP(src=REMOTES["t2"], dst=LOCAL) / GRE(key_present=1, key=43) / good_inner,  # wrong key
        eth() / IP(src=REMOTES["t1"], dst=LOCAL) / GRE(version=1) / good_inner,  # version 1
        eth() / IP(src=REMOTES["t1"], dst=LOCAL) / GRE(routing_present=1) / good_inner,  # routing
        eth() / IP(src=REMOTES["t1"], dst=LOCAL) / GRE(proto=0x6558) / Raw(b"x" * 40),  # unknown proto
    ]
    bad_sum = eth() / IP(src=REMOTES["t1"], dst=LOCAL) / GRE(chksum_present=1) / good_inner
    raw = bytearray(bytes(bad_sum))
    raw[38] ^= 0xFF  # corrupt the GRE checksum
    cases.append(Ether(bytes(raw)))
    bad_ip = bytearray(bytes(eth() / IP(src="192.0.2.100", dst="172.16.0.1") / UDP()))
    bad_ip[24] ^= 0xFF  # corrupt the IPv4 header checksum
    cases.append(Ether(bytes(bad_ip)))
    cases.append(Ether(bytes(eth() / IP(src="192.0.2.100", dst="172.16.0.1") / UDP())[:25]))  # truncated
    cases.append(eth() / IP(src=REMOTES["t1"], dst=LOCAL, proto=50) / Raw(b"\x00\x00\x10\x01" + b"\x00" * 20))  # ESP
    (out,) = replay.run(CONFIG, cases, ports=1)
    assert out == [], [p.summary() for p in out]
    d = drops(replay.log)
    assert sum(d.values()) == len(cases), (d, replay.log)
    for reason in ["gre_unknown_remote", "gre_key_missing", "gre_key_mismatch", "esp_unknown_spi"]:
        assert d.get(reason, 0) >= 1, (reason, d)


def test_mss_clamp_both_directions(replay):
    syn = eth() / IP(src="192.0.2.100", dst="172.17.0.5") / TCP(sport=3333, dport=80, flags="S", options=[("MSS", 1460), ("NOP", None), ("WScale", 7)])
    synack_in = eth() / IP(src=REMOTES["t3"], dst=LOCAL) / GRE() / IP(src="172.17.0.5", dst="93.184.0.9") / TCP(sport=80, dport=3333, flags="SA", options=[("MSS", 1460)])
    (out,) = replay.run(CONFIG, [syn, synack_in], ports=1)
    assert len(out) == 2
    enc = out[0][GRE].payload
    assert dict(enc[TCP].options)["MSS"] == 1436  # t3: GRE without key, MTU 1476
    dec = out[1]
    assert not dec.haslayer(GRE)
    assert dict(dec[TCP].options)["MSS"] == 1436
    for tcp in (enc[TCP], dec[TCP]):
        chk = tcp.chksum
        ip = tcp.underlayer.copy()
        del ip[TCP].chksum
        assert IP(bytes(ip))[TCP].chksum == chk, "TCP checksum updated correctly"


def test_too_big_df_set_gets_icmp_and_df_clear_is_fragmented(replay):
    big_df = eth() / IP(src="192.0.2.100", dst="172.17.0.7", flags="DF") / UDP(sport=7, dport=40000) / Raw(b"B" * 1472)
    big = eth() / IP(src="192.0.2.100", dst="172.17.0.7", id=777) / UDP(sport=8, dport=40000) / Raw(b"F" * 1472)
    (out,) = replay.run(CONFIG, [big_df, big], ports=1)
    icmps = [p for p in out if p.haslayer(ICMP) and not p.haslayer(GRE)]
    assert len(icmps) == 1, [p.summary() for p in out]
    icmp = icmps[0]
    assert icmp[IP].src == LOCAL and icmp[IP].dst == "192.0.2.100"
    assert icmp[ICMP].type == 3 and icmp[ICMP].code == 4 and icmp[ICMP].nexthopmtu == 1476
    frags = [p[GRE].payload for p in out if p.haslayer(GRE)]
    assert len(frags) == 2
    for f in frags:
        assert len(f) <= 1476
        assert tunnel_of(Ether() / IP(dst=REMOTES["t3"]) / GRE()) == "t3"
    payload = b"".join(bytes(f[IP].payload) for f in sorted(frags, key=lambda f: f[IP].frag))
    assert payload == bytes(big[UDP])  # the whole UDP datagram, reassembled from the fragments
    assert tshark_malformed(replay.outputs[0]) == []


def test_outer_fragments_are_reassembled_then_decapsulated(replay):
    inner = IP(src="172.16.3.3", dst="93.184.0.3", ttl=40) / UDP(sport=9, dport=40000) / Raw(b"R" * 1400)
    outer = IP(src=REMOTES["t1"], dst=LOCAL, id=4242) / GRE() / inner
    frags = fragment(outer, fragsize=512)
    assert len(frags) >= 3
    # Out of order, plus an incomplete set that must be discarded whole.
    pkts = [eth() / f for f in reversed(frags)]
    lonely = fragment(IP(src=REMOTES["t1"], dst=LOCAL, id=99) / GRE() / inner, fragsize=512)[0]
    pkts.append(eth() / lonely)
    (out,) = replay.run(CONFIG, pkts, ports=1, idle_ms=1500)
    assert len(out) == 1, [p.summary() for p in out]
    exp = inner.copy()
    exp.ttl -= 1
    del exp.chksum
    assert bytes(out[0][IP]) == bytes(IP(bytes(exp)))
    assert "reassembled 1" in replay.log


def test_arp_and_echo_are_answered(replay):
    arp = Ether(src=GW_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=GW_MAC, psrc="192.0.2.1", pdst="192.0.2.10")
    ping_local = eth() / IP(src="192.0.2.1", dst=LOCAL) / ICMP(type=8, id=7, seq=1) / Raw(b"ping")
    ping_port = eth() / IP(src="192.0.2.1", dst="192.0.2.10") / ICMP(type=8, id=8, seq=2) / Raw(b"pong")
    (out,) = replay.run(CONFIG, [arp, ping_local, ping_port], ports=1)
    assert len(out) == 3
    a = out[0][ARP]
    assert a.op == 2 and a.psrc == "192.0.2.10" and a.hwsrc == PORT_MAC and a.pdst == "192.0.2.1"
    for got, sent in zip(out[1:], (ping_local, ping_port)):
        assert got[ICMP].type == 0 and got[ICMP].id == sent[ICMP].id
        assert got[IP].src == sent[IP].dst and got[IP].dst == sent[IP].src
        assert bytes(got[Raw]) == bytes(sent[Raw])
    assert tshark_malformed(replay.outputs[0]) == []


def test_gateway_mac_resolved_by_arp(replay):
    """Without a static gateway MAC, conduit ARPs for the gateway at start-up and uses the
    answer; the capture's first frame is the gateway's reply."""
    resolved = "02:00:00:00:00:aa"
    static = '  mac: "02:00:00:00:00:fe"'
    config = "\n".join(l for l in CONFIG.splitlines() if not l.startswith(static))
    assert config != CONFIG
    arp_reply = Ether(src=resolved, dst=PORT_MAC) / ARP(op=2, hwsrc=resolved, psrc="192.0.2.1", hwdst=PORT_MAC, pdst="192.0.2.10")
    data = eth() / IP(src="192.0.2.100", dst="172.17.0.1") / UDP(sport=50001, dport=40000)
    (out,) = replay.run(config, [arp_reply, data], ports=1)
    requests = [p for p in out if p.haslayer(ARP) and p[ARP].op == 1]
    assert requests, "an ARP request for the gateway went out"
    r = requests[0]
    assert r[Ether].dst == "ff:ff:ff:ff:ff:ff" and r[ARP].pdst == "192.0.2.1" and r[ARP].psrc == "192.0.2.10"
    forwarded = [p for p in out if p.haslayer(GRE)]
    assert len(forwarded) == 1
    assert forwarded[0][Ether].dst == resolved
    assert "gateway 192.0.2.1 is at 02:00:00:00:00:aa (ARP)" in replay.log
