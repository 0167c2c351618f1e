"""Malformed input through the real binary (docs/behaviour.md §6 and §7): several hundred
variants, each broken in one way at one layer (Ethernet, IPv4 header and options, TCP/UDP/ICMP,
GRE, the inner IPv4 packet in GRE), go through conduit in replay mode over net_pcap in one
capture, together with valid packets. None of the malformed ones may leave, and each must be
counted under the reason its first defect names; the valid ones must leave, so the test can fail.

Frames are built byte by byte (struct, not scapy's builders, which repair lengths and
checksums) and written as bytes; scapy only reads the output. Every malformed variant's innermost IPv4 source is in
100.66/16, every valid one's in 100.65/16, so any output frame derived from a malformed input
would show that source (in an IP layer or quoted in an ICMP error).

Topology: configs/replay.yaml (see test_pipeline.py): local endpoint 203.0.113.1, keyless GRE
tunnel t1 from 198.51.100.1, 172.16/16 via t1/t2, 172.17/16 via t3, no route elsewhere; ICMP
time exceeded off.
"""

import collections
import ipaddress
import socket
import struct

from scapy.layers.inet import IP, IPerror
from scapy.utils import checksum, rdpcap

from conftest import ROOT

PORT_MAC = bytes.fromhex("027063617000")
GW_MAC = bytes.fromhex("0200000000fe")
LOCAL = "203.0.113.1"
T1 = "198.51.100.1"
ROUTED, TRANSIT, NO_ROUTE, EGRESS = "172.16.1.1", "172.17.0.1", "9.9.9.9", "8.8.8.8"
BAD_NET = ipaddress.ip_network("100.66.0.0/16")
GOOD_NET = ipaddress.ip_network("100.65.0.0/16")
CONFIG = (ROOT / "configs" / "replay.yaml").read_text()

MF = 0x2000
LSRR, SSRR = 131, 137


def ipv4(src, dst, proto, payload, ttl=64, flags=0, options=b"", ihl=None, version=4,
         total=None, bad_checksum=False, ident=0x4242):
    """An IPv4 packet; lengths and checksum are right unless overridden."""
    header_len = 20 + len(options)
    ihl = header_len // 4 if ihl is None else ihl
    total = header_len + len(payload) if total is None else total
    h = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, ident, flags, ttl, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst)) + options
    ck = checksum(h) ^ (0x0101 if bad_checksum else 0)
    return h[:10] + struct.pack("!H", ck) + h[12:] + payload


def udp(data=b"u" * 12, length=None):
    return struct.pack("!HHHH", 1111, 2222, 8 + len(data) if length is None else length, 0) + data


def tcp(data=b"t" * 8, doff=5, options=b""):
    return struct.pack("!HHIIBBHHH", 3333, 443, 1, 1, doff << 4, 0x10, 512, 0, 0) + options + data


def icmp(data=b"i" * 8):
    h = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + data
    return h[:2] + struct.pack("!H", checksum(h)) + h[4:]


def gre(inner, key=None):
    flags = 0x2000 if key is not None else 0
    return struct.pack("!HH", flags, 0x0800) + (struct.pack("!I", key) if key is not None else b"") + inner


def frame(ip):
    return PORT_MAC + GW_MAC + b"\x08\x00" + ip


def via_t1(inner, **outer):
    return frame(ipv4(T1, LOCAL, 47, gre(inner), **outer))


def bad_src(i):
    return str(BAD_NET[i + 1])


PROTO = {"udp": (17, udp), "tcp": (6, tcp), "icmp": (1, icmp)}
L4_TRUNCATED = {"udp": "udp_truncated", "tcp": "tcp_truncated", "icmp": "icmp_truncated"}
L4_MIN = {"udp": 8, "tcp": 20, "icmp": 8}


def malformed():
    """(frame, expected drop reason) for every variant."""
    cases = []
    n = iter(range(60000))

    def plain(dst, proto, payload, **kw):
        return frame(ipv4(bad_src(next(n)), dst, proto, payload, **kw))

    def inner(dst, proto, payload, **kw):
        return via_t1(ipv4(bad_src(next(n)), dst, proto, payload, **kw))

    def both(reason, dsts, proto, payload, **kw):
        """Plain to each of `dsts`, and inside GRE to the internet and in transit."""
        for dst in dsts:
            cases.append((plain(dst, proto, payload, **kw), reason))
        for dst in (EGRESS, TRANSIT):
            cases.append((inner(dst, proto, payload, **kw), reason))

    # Truncated at every offset of Ethernet and the IPv4 header (the frame cut, lengths stale).
    base = plain(ROUTED, 17, udp())
    cases += [(base[:k], "ethernet_truncated") for k in range(1, 14)]
    cases += [(base[:14 + k], "ipv4_truncated") for k in range(20)]
    # ... inside the payload: the IPv4 total length now exceeds the frame.
    cases += [(base[:34 + k], "ipv4_bad_total_length") for k in range(len(udp()))]
    # ... inside the options.
    with_opts = plain(ROUTED, 17, udp(), options=bytes([0x94, 4, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0]))
    cases += [(with_opts[:34 + k], "ipv4_truncated") for k in range(12)]
    # The same cuts of the inner packet of GRE (the outer header consistent).
    inner_ip = ipv4(bad_src(next(n)), EGRESS, 17, udp())
    inner_opts = ipv4(bad_src(next(n)), EGRESS, 17, udp(), options=bytes([1] * 8))
    cases += [(via_t1(inner_ip[:k]), "ipv4_truncated") for k in range(20)]
    cases += [(via_t1(inner_opts[:20 + k]), "ipv4_truncated") for k in range(8)]
    cases += [(via_t1(inner_ip[:20 + k]), "ipv4_bad_total_length") for k in range(0, 20, 2)]
    # GRE itself truncated: the base header, and the key it announces.
    good_inner = ipv4(bad_src(next(n)), EGRESS, 17, udp())
    g = gre(good_inner, key=5)
    cases += [(frame(ipv4(T1, LOCAL, 47, g[:k])), "gre_truncated") for k in range(8)]

    # L4 headers cut short, the IPv4 lengths consistent: plain to a route, to no route and to
    # us, and in GRE.
    for name, (proto, build) in PROTO.items():
        full = build()
        for k in range(L4_MIN[name]):
            dsts = (ROUTED, NO_ROUTE, LOCAL) if k % 3 == 0 else (ROUTED,)
            both(L4_TRUNCATED[name], dsts, proto, full[:k])
    # UDP length field inconsistent.
    for length in list(range(8)) + [21, 100, 65535]:
        both("udp_bad_length", (ROUTED, NO_ROUTE), 17, udp(length=length))
    for k in range(8, 20, 3):  # consistent IP, datagram cut below its UDP length
        both("udp_bad_length", (ROUTED,), 17, udp()[:k])
    # TCP data offset below 5, or beyond the packet.
    for doff in list(range(5)) + [8, 9, 15]:  # tcp() is 28 bytes
        both("tcp_bad_data_offset", (ROUTED, NO_ROUTE), 6, tcp(doff=doff))
    tcp_opts = tcp(doff=8, options=bytes([1] * 12), data=b"")
    for k in range(20, 32, 2):
        both("tcp_bad_data_offset", (ROUTED,), 6, tcp_opts[:k])

    # IPv4 header fields.
    for ihl in range(5):
        both("ipv4_bad_ihl", (ROUTED, NO_ROUTE), 17, udp(), ihl=ihl)
    for version in (0, 1, 3, 5, 6, 15):
        both("ipv4_bad_version", (ROUTED,), 17, udp(), version=version)
    for total in (0, 19, 41, 1000):
        both("ipv4_bad_total_length", (ROUTED,), 17, udp(), total=total)
    both("ipv4_bad_checksum", (ROUTED, NO_ROUTE, LOCAL), 17, udp(), bad_checksum=True)
    # Header defects come before option defects.
    both("ipv4_bad_checksum", (ROUTED,), 17, udp(), options=bytes([LSRR, 3, 0, 0]),
         bad_checksum=True)
    cases.append((frame(ipv4(T1, LOCAL, 47, gre(good_inner), bad_checksum=True)),
                  "ipv4_bad_checksum"))

    # TTL 0 and 1 on packets to forward (valid otherwise)...
    for ttl in (0, 1):
        both("ttl_exceeded", (ROUTED,), 17, udp(), ttl=ttl)
        # ... but a malformed L4 header is the first defect.
        both("udp_bad_length", (ROUTED,), 17, udp(length=3), ttl=ttl)
        both("tcp_truncated", (ROUTED,), 6, tcp()[:10], ttl=ttl)
    # TTL is checked after the route: no route comes first (docs/behaviour.md §6).
    cases.append((plain(NO_ROUTE, 17, udp(), ttl=1), "no_route"))

    # Non-last fragments whose payload is not a multiple of 8.
    for length in (1, 3, 7, 9, 13, 15, 23, 25):
        for offset in (0, 5):
            both("ipv4_bad_fragment_length", (ROUTED,), 17, b"f" * length, flags=MF | offset)
        cases.append((plain(NO_ROUTE, 17, b"f" * length, flags=MF), "ipv4_bad_fragment_length"))
        # Outer fragments of GRE, before reassembly.
        cases.append((frame(ipv4(T1, LOCAL, 47, b"g" * length, flags=MF | 3)),
                      "ipv4_bad_fragment_length"))
    # First fragments must hold their L4 header.
    both("tcp_truncated", (ROUTED,), 6, tcp()[:8], flags=MF)
    both("udp_bad_length", (ROUTED,), 17, udp(data=b"x" * 16, length=4), flags=MF)
    both("icmp_truncated", (ROUTED,), 1, b"", flags=MF)

    # Options: malformed lengths, source routes, and any other option (dropped by default).
    bad_options = [
        bytes([0x94, 0, 0, 0]), bytes([0x94, 1, 0, 0]), bytes([0x94, 5, 0, 0]),
        bytes([1, 1, 1, 0x94]), bytes([0x94, 4, 0, 0, 7, 9, 4, 0]), bytes([LSRR, 9, 4, 0]),
        bytes([7, 40, 4, 0] + [0] * 8),
    ]
    source_routes = [
        bytes([LSRR, 7, 4, 10, 0, 0, 1, 0]), bytes([SSRR, 7, 4, 10, 0, 0, 1, 0]),
        bytes([1, LSRR, 7, 4, 10, 0, 0, 1]), bytes([1, 1, SSRR, 3, 4, 0, 0, 0]),
    ]
    other_options = [
        bytes([1, 1, 1, 1]), bytes([0, 0, 0, 0]), bytes([0x94, 4, 0, 0]),
        bytes([7, 7, 4, 0, 0, 0, 0, 0]), bytes([0x44, 8, 5, 0, 0, 0, 0, 0]),
        bytes([0x9e, 4, 1, 2]), bytes([0x88, 4, 0, 1]), bytes([1] * 39 + [0]),
    ]
    for reason, lists in (("ipv4_bad_options", bad_options),
                          ("ipv4_source_route", source_routes),
                          ("ipv4_options", other_options)):
        for opts in lists:
            both(reason, (ROUTED, NO_ROUTE, LOCAL), 17, udp(), options=opts)
            both(reason, (ROUTED,), 17, udp()[:3], options=opts)  # options before L4
            cases.append((frame(ipv4(T1, LOCAL, 47, gre(good_inner), options=opts)), reason))
    return cases


def valid():
    """Frames that must each produce exactly one output frame."""
    src = lambda i: str(GOOD_NET[i + 1])
    first = udp(data=b"x" * 16, length=32)  # 24 bytes here, 8 in the last fragment
    return [
        frame(ipv4(src(0), ROUTED, 17, udp())),
        frame(ipv4(src(1), ROUTED, 6, tcp())),
        frame(ipv4(src(2), ROUTED, 1, icmp())),
        frame(ipv4(src(3), ROUTED, 6, tcp(doff=8, options=bytes([1] * 12)))),
        frame(ipv4(src(4), ROUTED, 17, first, flags=MF)),
        frame(ipv4(src(4), ROUTED, 17, b"y" * 8, flags=3)),
        frame(ipv4(src(5), ROUTED, 17, udp(), ttl=2)),
        via_t1(ipv4(src(6), EGRESS, 17, udp())),
        via_t1(ipv4(src(7), TRANSIT, 6, tcp())),
        via_t1(ipv4(src(8), EGRESS, 1, icmp())),
        via_t1(ipv4(src(9), EGRESS, 17, b"z" * 16, flags=MF)),
    ]


def drops(log):
    out = {}
    for line in log.splitlines():
        if line.startswith("drop "):
            _, reason, count = line.split()
            out[reason] = int(count)
    return {r: c for r, c in out.items() if c}


def sources(pkt):
    """The source of every IPv4 header in `pkt`, quoted ones (ICMP errors) included."""
    out = []
    layer = pkt
    while layer:
        if isinstance(layer, (IP, IPerror)):
            out.append(ipaddress.ip_address(layer.src))
        layer = layer.payload
    return out


def test_every_malformed_variant_is_dropped_under_its_first_defect(replay):
    cases = malformed()
    good = valid()
    assert len(cases) >= 200, len(cases)
    frames = [f for f, _ in cases] + good
    # Bytes, not scapy packets: the capture holds exactly what was built.
    (out,) = replay.run(CONFIG, frames, ports=1)
    assert [bytes(p) for p in rdpcap(str(replay.tmp / "in.pcap"))] == frames
    # Every valid frame left, and nothing else did.
    assert len(out) == len(good), replay.log
    for pkt in out:
        assert not any(s in BAD_NET for s in sources(pkt)), pkt.show(dump=True)
        assert any(s in GOOD_NET for s in sources(pkt)), pkt.show(dump=True)
    # Each malformed variant counted under its reason, and nothing else dropped.
    expected = collections.Counter(reason for _, reason in cases)
    assert drops(replay.log) == dict(expected), replay.log
