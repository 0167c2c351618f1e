"""IPsec ESP (tunnel mode, AES-GCM-256, RFC 4303/4106/3948) against implementations Conduit did
not write: scapy's SecurityAssociation encrypts what customers send and decrypts what Conduit
sends, the `cryptography` package's AES-GCM checks every byte of the ESP trailer, and tshark
(with the SAs in its ESP preferences) decodes and authenticates every frame Conduit emits.

Topology (one port facing the gateway, as in configs/replay.yaml), local endpoint 203.0.113.1:
  s1  ipsec to 198.51.100.3, outbound SPI 0x2000, inbound 0x1000   routes 172.16.0.0/16
  s2  ipsec to 198.51.100.4, outbound SPI 0x3000, inbound 0x1000,  routes 172.18.0.0/16
      NAT-T (ESP in UDP 4500); the same inbound SPI as s1 under another key: the packet path
      looks SAs up by (remote, SPI)
  g1  GRE to 198.51.100.1                                           routes 172.17.0.0/16
  everything else goes to the gateway (0.0.0.0/0 next_hop gateway).
"""

import struct

import pytest
from cryptography.exceptions import InvalidTag
from scapy.layers.inet import GRE, IP, TCP, UDP
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap

import subprocess

from conftest import tshark_malformed
from esp_common import ipsec_tunnel_yaml, key, open_esp, pad_for, seal
from test_pipeline import drops

PORT_MAC = "02:00:00:00:00:0a"
GW_MAC = "02:00:00:00:00:fe"
LOCAL = "203.0.113.1"
S1, S2, G1 = "198.51.100.3", "198.51.100.4", "198.51.100.1"
K_S1_OUT, K_S1_IN = key("s1-out"), key("s1-in")
K_S2_OUT, K_S2_IN = key("s2-out"), key("s2-in")
NAT_T_PORT = 4500


def config(state_dir, instance_id=1, s1_replay_window=0, s1_outbound=(0x2000, K_S1_OUT),
           s1_inbound=((0x1000, K_S1_IN),)):
    return f"""
dataplane:
  ports:
    - device: net_pcap0
      ipv4: 192.0.2.10/24
      mac: "{PORT_MAC}"
  workers: [1]
  mode: pipeline

local_endpoints: [{LOCAL}]

gateway:
  ipv4: 192.0.2.1
  mac: "{GW_MAC}"
  port: net_pcap0

ipsec:
  instance_id: {instance_id}
  crypto_device: crypto_aesni_gcm
  state_dir: {state_dir}

tunnels:
{ipsec_tunnel_yaml("s1", LOCAL, S1, "10.100.0.0/31", s1_outbound, list(s1_inbound),
                   replay_window=s1_replay_window)}
{ipsec_tunnel_yaml("s2", LOCAL, S2, "10.100.0.2/31", (0x3000, K_S2_OUT), [(0x1000, K_S2_IN)],
                   nat_t=True)}
  - name: g1
    kind: gre
    local: {LOCAL}
    remote: {G1}
    interface_address: 10.255.0.0/31
    health_check: {{enabled: false}}

routes:
  - {{prefix: 172.16.0.0/16, tunnel: s1, priority: 100}}
  - {{prefix: 172.18.0.0/16, tunnel: s2, priority: 100}}
  - {{prefix: 172.17.0.0/16, tunnel: g1, priority: 100}}
  - {{prefix: 0.0.0.0/0, next_hop: gateway, priority: 100}}

stats:
  interval_ms: 0
"""


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    return d


def eth():
    return Ether(src=GW_MAC, dst=PORT_MAC)


def scapy_sa(spi, k, remote, nat_t=False, src=None, dst=None):
    """scapy's SA for a tunnel's traffic from `src` to `dst` (default: customer to us)."""
    src = remote if src is None else src
    dst = LOCAL if dst is None else dst
    return SecurityAssociation(
        ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=k, auth_algo=None,
        tunnel_header=IP(src=src, dst=dst),
        nat_t_header=UDP(sport=NAT_T_PORT, dport=NAT_T_PORT) if nat_t else None)


def expected_forwarded(inner):
    exp = IP(bytes(inner))
    exp.ttl -= 1
    del exp.chksum
    return bytes(IP(bytes(exp)))


def esp_bytes(pkt, nat_t):
    """The ESP part (SPI onwards) of an emitted frame, after checking the outer headers."""
    assert pkt[Ether].src == PORT_MAC and pkt[Ether].dst == GW_MAC
    outer = IP(bytes(pkt[IP]))
    chk = outer.chksum
    del outer.chksum
    assert IP(bytes(outer)).chksum == chk, "outer IPv4 checksum"
    raw = bytes(pkt[IP])
    ihl = (raw[0] & 0x0F) * 4
    assert struct.unpack("!H", raw[2:4])[0] == len(raw), "outer total length"
    body = raw[ihl:]
    if nat_t:
        assert raw[9] == 17, "NAT-T: ESP in UDP"
        sport, dport, ulen, usum = struct.unpack("!HHHH", body[:8])
        assert (sport, dport) == (NAT_T_PORT, NAT_T_PORT)
        assert ulen == len(body), "UDP length"
        assert usum == 0, "RFC 3948: UDP checksum 0"
        body = body[8:]
        assert body[:4] != b"\x00\x00\x00\x00", "non-ESP marker where the SPI belongs"
    else:
        assert raw[9] == 50, "ESP"
    return body


def check_outbound(out, sent_inner, remote, spi, k, nat_t, instance_id=1, epoch=1, first_seq=1):
    """Every emitted frame is sent_inner[i] (TTL - 1) in ESP to `remote`, byte-exact, decrypted
    by both scapy and the AES-GCM oracle; returns the IVs."""
    assert len(out) == len(sent_inner), [p.summary() for p in out]
    sa = scapy_sa(spi, k, remote, nat_t, src=LOCAL, dst=remote)
    ivs = []
    for i, (got, inner) in enumerate(zip(out, sent_inner)):
        assert got[IP].src == LOCAL and got[IP].dst == remote, got.summary()
        esp = esp_bytes(got, nat_t)
        want = expected_forwarded(inner)
        # The oracle: SPI, sequence, IV layout, padding bytes, next header, ICV.
        o_spi, seq, iv, plain, padding, nh = open_esp(k, esp)
        assert o_spi == spi
        assert seq == first_seq + i, f"packet {i}: sequence {seq}"
        assert iv == struct.pack("!HHI", instance_id, epoch, seq), f"packet {i}: IV {iv.hex()}"
        assert nh == 4, "next header IPv4"
        assert padding == pad_for(len(plain)), f"packet {i}: padding {padding.hex()}"
        assert plain == want, f"packet {i}: inner packet differs"
        assert len(esp) == 8 + 8 + len(plain) + len(padding) + 2 + 16
        # scapy, from the frame as captured.
        outer = IP(bytes(got[IP]))
        dec = sa.decrypt(outer)
        assert bytes(dec) == want, f"packet {i}: scapy's decryption differs"
        ivs.append(iv)
    return ivs


def test_encap_scapy_decrypts_exact_inner(replay, state_dir):
    inner = []
    for i in range(300):
        size = i % 97  # every padding length, and 0..96-byte payloads
        if i % 3 == 0:
            l4 = TCP(sport=10000 + i, dport=443, flags="A") / Raw(b"t" * size)
        else:
            l4 = UDP(sport=20000 + i, dport=40000) / Raw(b"u" * size)
        inner.append(IP(src=f"192.0.2.{100 + i % 50}", dst=f"172.16.{i % 256}.{i % 250 + 1}",
                        ttl=20, id=i) / l4)
    (out,) = replay.run(config(state_dir), [eth() / p for p in inner], ports=1)
    check_outbound(out, inner, S1, 0x2000, K_S1_OUT, nat_t=False)
    assert drops(replay.log) == {}, replay.log


def test_encap_nat_t(replay, state_dir):
    inner = [IP(src="192.0.2.100", dst=f"172.18.0.{i + 1}", ttl=9) / UDP(sport=5000 + i, dport=53)
             / Raw(b"n" * i) for i in range(40)]
    (out,) = replay.run(config(state_dir), [eth() / p for p in inner], ports=1)
    check_outbound(out, inner, S2, 0x3000, K_S2_OUT, nat_t=True)


def test_decap_scapy_encrypted_to_gateway(replay, state_dir):
    sa = scapy_sa(0x1000, K_S1_IN, S1)
    inner, pkts = [], []
    for i in range(200):
        p = IP(src=f"172.16.5.{i % 200 + 1}", dst=f"93.184.{i % 200}.1", ttl=30) \
            / UDP(sport=50000 + i, dport=40000) / Raw(b"d" * (i % 61))
        inner.append(p)
        pkts.append(eth() / sa.encrypt(p, seq_num=i + 1))
    (out,) = replay.run(config(state_dir), pkts, ports=1)
    assert len(out) == len(pkts), replay.log
    for i, (got, p) in enumerate(zip(out, inner)):
        assert not got.haslayer(ESP)
        assert got[Ether].dst == GW_MAC and got[Ether].src == PORT_MAC
        assert bytes(got[IP]) == expected_forwarded(p), f"packet {i}"
    assert drops(replay.log) == {}, replay.log
    assert "tunnel    s1" in replay.log
    assert tshark_malformed(replay.outputs[0]) == []


def test_decap_nat_t(replay, state_dir):
    sa = scapy_sa(0x1000, K_S2_IN, S2, nat_t=True)
    inner = [IP(src="172.18.1.1", dst=f"93.184.0.{i + 1}", ttl=5) / UDP(sport=1, dport=2)
             / Raw(b"x" * i) for i in range(30)]
    pkts = [eth() / sa.encrypt(p, seq_num=i + 1) for i, p in enumerate(inner)]
    assert pkts[0][UDP].dport == NAT_T_PORT
    (out,) = replay.run(config(state_dir), pkts, ports=1)
    assert [bytes(g[IP]) for g in out] == [expected_forwarded(p) for p in inner], replay.log


def test_transit_reencapsulated_per_routes(replay, state_dir):
    """ESP from s1 whose inner destination is routed to g1 (GRE) or s2 (ESP, NAT-T)."""
    sa = scapy_sa(0x1000, K_S1_IN, S1)
    to_gre = IP(src="172.16.9.9", dst="172.17.2.2", ttl=9) / TCP(sport=1234, dport=80, flags="A")
    to_s2 = [IP(src="172.16.9.9", dst=f"172.18.2.{i}", ttl=9) / UDP(sport=1, dport=9)
             / Raw(b"s" * i) for i in range(1, 6)]
    pkts = [eth() / sa.encrypt(to_gre, seq_num=1)]
    pkts += [eth() / sa.encrypt(p, seq_num=i + 2) for i, p in enumerate(to_s2)]
    (out,) = replay.run(config(state_dir), pkts, ports=1)
    assert len(out) == 6, (replay.log, [p.summary() for p in out])
    assert out[0].haslayer(GRE) and out[0][IP].dst == G1
    assert bytes(out[0][GRE].payload) == expected_forwarded(to_gre)
    check_outbound(out[1:], to_s2, S2, 0x3000, K_S2_OUT, nat_t=True)


def run_rejections(replay, state_dir, cases, **cfg):
    (out,) = replay.run(config(state_dir, **cfg), [eth() / c for c in cases], ports=1)
    return out, drops(replay.log)


GOOD_INNER = IP(src="172.16.1.1", dst="93.184.0.1", ttl=30) / UDP(sport=1, dport=40000) / Raw(b"p" * 20)


def outer(remote=S1):
    return IP(src=remote, dst=LOCAL, proto=50)


def test_wrong_key_is_auth_failure_and_nothing_forwarded(replay, state_dir):
    cases = [outer() / Raw(seal(key("not-s1"), 0x1000, i + 1, bytes(8), bytes(GOOD_INNER)))
             for i in range(5)]
    # s2's inbound SPI is also 0x1000: its key is wrong for s1's remote.
    cases.append(outer() / Raw(seal(K_S2_IN, 0x1000, 9, bytes(8), bytes(GOOD_INNER))))
    out, d = run_rejections(replay, state_dir, cases)
    assert out == [], [p.summary() for p in out]
    assert d == {"esp_auth_failed": 6}, (d, replay.log)


def test_bad_icv_and_bad_ciphertext_are_auth_failures(replay, state_dir):
    good = seal(K_S1_IN, 0x1000, 1, b"\x00\x07" + bytes(6), bytes(GOOD_INNER))
    cases = []
    for pos in (len(good) - 1, len(good) - 16, 16, 20, 8):  # ICV last/first byte, data, IV
        b = bytearray(good)
        b[pos] ^= 0x01
        cases.append(outer() / Raw(bytes(b)))
    b = bytearray(good)
    b[7] ^= 0x02  # the sequence number is authenticated (AAD)
    cases.append(outer() / Raw(bytes(b)))
    out, d = run_rejections(replay, state_dir, cases + [outer() / Raw(good)])
    # Only the untouched packet gets through, and the oracle confirms it was a valid one.
    assert len(out) == 1 and bytes(out[0][IP]) == expected_forwarded(GOOD_INNER), replay.log
    assert d == {"esp_auth_failed": 6}, (d, replay.log)


def test_unknown_spi(replay, state_dir):
    cases = [
        outer() / Raw(seal(K_S1_IN, 0x1234, 1, bytes(8), bytes(GOOD_INNER))),
        outer() / Raw(seal(K_S1_OUT, 0x2000, 1, bytes(8), bytes(GOOD_INNER))),  # our outbound SPI
        outer("198.51.100.99") / Raw(seal(K_S1_IN, 0x1000, 1, bytes(8), bytes(GOOD_INNER))),
    ]
    out, d = run_rejections(replay, state_dir, cases)
    assert out == [], [p.summary() for p in out]
    assert d == {"esp_unknown_spi": 3}, (d, replay.log)


def test_replay_window_drops_duplicates_and_old(replay, state_dir):
    sa = scapy_sa(0x1000, K_S1_IN, S1)
    p = lambda n: sa.encrypt(GOOD_INNER, seq_num=n)  # noqa: E731
    seqs = [1, 1, 2, 300, 300, 237, 236, 299, 100]
    # 1 ok, 1 replay, 2 ok, 300 ok, 300 replay, 237 ok (inside the 64-window), 236 too old,
    # 299 ok, 100 too old
    out, d = run_rejections(replay, state_dir, [p(n) for n in seqs], s1_replay_window=64)
    assert len(out) == 5, (replay.log, [g.summary() for g in out])
    assert d == {"esp_replay": 4}, (d, replay.log)
    for g in out:
        assert bytes(g[IP]) == expected_forwarded(GOOD_INNER)


def test_replay_window_off_forwards_duplicates(replay, state_dir):
    """Window 0 (the default: an anycast fleet shares SAs): duplicates are forwarded."""
    sa = scapy_sa(0x1000, K_S1_IN, S1)
    pkts = [sa.encrypt(GOOD_INNER, seq_num=7)] * 3
    out, d = run_rejections(replay, state_dir, pkts)
    assert len(out) == 3 and d == {}, (d, replay.log)


def test_bad_trailer_after_authentication(replay, state_dir):
    inner = bytes(GOOD_INNER)
    cases = [
        seal(K_S1_IN, 0x1000, 1, bytes(8), inner, next_header=41),  # IPv6 inside: not ours
        seal(K_S1_IN, 0x1000, 2, bytes(8), inner, padding=b"\x09\x09"),  # padding not 1, 2
        seal(K_S1_IN, 0x1000, 3, bytes(8), b"", padding=b"\x01\x02"),  # pad length past the data
    ]
    # The third: the plaintext is just "01 02 | 02 04"; a pad length of 200 overruns it.
    cases.append(seal(K_S1_IN, 0x1000, 4, bytes(8), b"\x01\x02", padding=b"",
                      next_header=4)[:-18] + b"")  # truncated: shorter than IV + ICV + trailer
    out, d = run_rejections(replay, state_dir, [outer() / Raw(c) for c in cases])
    assert out == [], [p.summary() for p in out]
    assert sum(d.values()) == len(cases), (d, replay.log)
    assert d.get("esp_bad_trailer", 0) + d.get("esp_bad_padding", 0) >= 2, (d, replay.log)


def test_nat_t_ike_and_keepalive_are_not_ours(replay, state_dir):
    u = lambda payload: IP(src=S2, dst=LOCAL) / UDP(sport=NAT_T_PORT, dport=NAT_T_PORT) / Raw(payload)  # noqa: E731
    cases = [
        u(b"\x00\x00\x00\x00" + b"\x11" * 40),  # non-ESP marker: IKE
        u(b"\xff"),  # NAT keepalive
    ]
    out, d = run_rejections(replay, state_dir, cases)
    assert out == [], [p.summary() for p in out]
    assert d == {"local_unsupported": 2}, (d, replay.log)


def test_iv_unique_across_instances_and_restart(tmp_path):
    """Two appliances of a fleet (instance ids 1 and 2) share the SA; one restarts (epoch + 1,
    sequence numbers start again at 1). No IV repeats under the shared key."""
    from conftest import Replay

    n = 200
    inner = [IP(src="192.0.2.100", dst=f"172.16.0.{i % 250 + 1}", id=i) / UDP(sport=i, dport=9)
             for i in range(n)]
    pkts = [eth() / p for p in inner]
    ivs = []
    runs = [(1, "a", 1), (2, "b", 1), (1, "a", 2)]  # (instance id, state dir, expected epoch)
    for k, (iid, sd, epoch) in enumerate(runs):
        d = tmp_path / f"state-{sd}"
        d.mkdir(exist_ok=True)
        work = tmp_path / f"run{k}"
        work.mkdir()
        r = Replay(work)
        (out,) = r.run(config(d, instance_id=iid), pkts, ports=1)
        ivs += check_outbound(out, inner, S1, 0x2000, K_S1_OUT, nat_t=False, instance_id=iid,
                              epoch=epoch)
    assert len(ivs) == 3 * n
    assert len(set(ivs)) == len(ivs), "an IV repeated under one key"


def tshark_esp(pcap, sas, extra=()):
    """tshark's view of every frame of `pcap` with the ESP SAs `sas` [(src, dst, spi, key)]:
    (frame, spi, seq, icv_good, next header, inner src, inner dst, expert)."""
    args = ["tshark", "-n", "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE",
            "-o", "esp.enable_authentication_check:TRUE",
            "-o", "esp.do_esp_sequence_analysis:TRUE"]
    for src, dst, spi, k in sas:
        args += ["-o", f'uat:esp_sa:"IPv4","{src}","{dst}","{spi:#010x}",'
                       f'"AES-GCM with 16 octet ICV [RFC4106]","0x{k.hex()}","NULL",""']
    args += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
             "-e", "frame.number", "-e", "esp.spi", "-e", "esp.sequence", "-e", "esp.icv_good",
             "-e", "esp.protocol", "-e", "ip.src", "-e", "ip.dst", "-e", "_ws.expert.severity",
             "-e", "_ws.malformed", *extra]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t") for line in proc.stdout.splitlines()]


# tshark's expert severities (epan/proto.h): comment 0x00100000 .. error 0x00800000.
EXPERT_WARN = 0x00600000


def test_tshark_decodes_and_authenticates_every_frame(replay, state_dir):
    s1_in = scapy_sa(0x1000, K_S1_IN, S1)
    pkts = []
    for i in range(60):
        if i % 3 == 0:  # encap to s1
            pkts.append(eth() / IP(src="192.0.2.100", dst=f"172.16.1.{i + 1}") / UDP(sport=i, dport=9) / Raw(b"a" * i))
        elif i % 3 == 1:  # encap to s2, NAT-T
            pkts.append(eth() / IP(src="192.0.2.100", dst=f"172.18.1.{i + 1}") / TCP(sport=i, dport=80) / Raw(b"b" * i))
        else:  # transit s1 -> s2
            pkts.append(eth() / s1_in.encrypt(IP(src="172.16.3.3", dst=f"172.18.9.{i}") / UDP(sport=i, dport=7), seq_num=i))
    (out,) = replay.run(config(state_dir), pkts, ports=1)
    assert len(out) == 60, replay.log
    sas = [(LOCAL, S1, 0x2000, K_S1_OUT), (LOCAL, S2, 0x3000, K_S2_OUT), (S1, LOCAL, 0x1000, K_S1_IN)]
    rows = tshark_esp(replay.outputs[0], sas)
    assert len(rows) == 60
    for frame, spi, seq, good, nh, srcs, dsts, expert, malformed in rows:
        assert spi in ("0x00002000", "0x00003000"), (frame, spi)
        assert good == "1", f"frame {frame}: tshark could not authenticate it (ICV)"
        assert nh == "0x04", (frame, nh)
        assert len(srcs.split(",")) == 2 and dsts.split(",")[1].startswith("172."), (frame, srcs, dsts)
        assert malformed == "", frame
        assert all(int(e, 0) < EXPERT_WARN for e in expert.split(",") if e), (frame, expert)
    assert tshark_malformed(replay.outputs[0]) == []
    # The same check fails with a wrong key: it is not vacuous.
    wrong = tshark_esp(replay.outputs[0], [(LOCAL, S1, 0x2000, key("wrong"))])
    assert all(r[3] != "1" for r in wrong if r[1] == "0x00002000")
    # And the input (scapy's ESP) authenticates too.
    rows_in = tshark_esp(replay.tmp / "in.pcap", sas)
    assert {r[3] for r in rows_in if r[1] == "0x00001000"} == {"1"}
