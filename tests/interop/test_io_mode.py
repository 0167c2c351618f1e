"""io mode forwards scapy-built GRE, plain and malformed frames unchanged, and tshark decodes the
output exactly as it decodes the input."""

from scapy.layers.inet import IP, TCP, UDP, ICMP
from scapy.layers.l2 import Ether
from scapy.layers.inet import GRE

from conftest import tshark_malformed

CONFIG = """
dataplane:
  ports:
    - device: net_pcap0
    - device: net_pcap1
  workers: [1]
  mode: io
stats:
  interval_ms: 0
"""


def test_io_forwards_scapy_frames_unchanged(replay):
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    pkts = []
    for i in range(300):
        inner = IP(src=f"10.1.{i % 250}.{i % 200 + 1}", dst="192.0.2.10") / UDP(sport=30000 + i, dport=40000) / (b"x" * (i % 100))
        pkts.append(eth / IP(src="198.51.100.1", dst="203.0.113.1") / GRE(key_present=1, key=i) / inner)
        pkts.append(eth / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=i + 1, dport=80, flags="S"))
        pkts.append(eth / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(id=i, seq=i))
    out0, out1 = replay.run(CONFIG, pkts)
    assert len(out0) == 0
    assert len(out1) == len(pkts)
    for i, (a, b) in enumerate(zip(pkts, out1)):
        assert bytes(a) == bytes(b), f"packet {i} differs"
    assert sum(1 for p in out1 if p.haslayer(GRE) and p[GRE].key is not None) == 300
    assert tshark_malformed(replay.tmp / "in.pcap") == [], "the input itself must be well-formed"
    assert tshark_malformed(replay.outputs[1]) == []
