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
import subprocess

import pytest
from scapy.layers.inet import GRE, IP, TCP, UDP
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap

from conftest import Replay, tshark_malformed
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


ALL_KEYS = (K_S1_OUT, K_S1_IN, K_S2_OUT, K_S2_IN)


def assert_no_key_material(log):
    """Keys never appear in logs: not in hex, nor as a Rust byte array's Debug form."""
    low = log.lower()
    for k in ALL_KEYS:
        assert k[:16].hex() not in low and k[32:].hex() not in low, "key material in the log"
        assert str(list(k[:8]))[1:-1] not in log, "key bytes in the log"


def run(replay, state_dir, pkts, **cfg):
    """Runs the appliance with config(**cfg) on the IPv4 packets `pkts` (from the gateway);
    returns what it sent."""
    (out,) = replay.run(config(state_dir, **cfg), [eth() / p for p in pkts], ports=1)
    assert_no_key_material(replay.log)
    return out


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
        assert got[IP].ttl == 64 and got[IP].frag == 0 and not got[IP].flags.MF
        # As for GRE: TOS (DSCP and ECN) and DF copied from the inner packet.
        assert got[IP].tos == inner[IP].tos, f"packet {i}: outer TOS {got[IP].tos:#x}"
        assert bool(got[IP].flags.DF) == bool(inner[IP].flags.DF), f"packet {i}: DF"
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
                        ttl=20, id=i, tos=(i * 5) % 256, flags="DF" if i % 2 else 0) / l4)
    out = run(replay, state_dir, inner)
    check_outbound(out, inner, S1, 0x2000, K_S1_OUT, nat_t=False)
    assert drops(replay.log) == {}, replay.log


def test_encap_nat_t(replay, state_dir):
    inner = [IP(src="192.0.2.100", dst=f"172.18.0.{i + 1}", ttl=9) / UDP(sport=5000 + i, dport=53)
             / Raw(b"n" * i) for i in range(40)]
    out = run(replay, state_dir, inner)
    check_outbound(out, inner, S2, 0x3000, K_S2_OUT, nat_t=True)


def test_decap_scapy_encrypted_to_gateway(replay, state_dir):
    sa = scapy_sa(0x1000, K_S1_IN, S1)
    inner, pkts = [], []
    for i in range(200):
        p = IP(src=f"172.16.5.{i % 200 + 1}", dst=f"93.184.{i % 200}.1", ttl=30) \
            / UDP(sport=50000 + i, dport=40000) / Raw(b"d" * (i % 61))
        inner.append(p)
        pkts.append(sa.encrypt(p, seq_num=i + 1))
    # RFC 6040 as for GRE: an outer CE mark is copied into an ECN-capable (ECT(0)) inner packet.
    ce = SecurityAssociation(ESP, spi=0x1000, crypt_algo="AES-GCM", crypt_key=K_S1_IN,
                             tunnel_header=IP(src=S1, dst=LOCAL, tos=0x03))
    ect = IP(src="172.16.5.1", dst="93.184.7.1", ttl=30, tos=0xB8 | 0x02) / UDP(sport=1, dport=2)
    pkts.append(ce.encrypt(ect, seq_num=500))
    out = run(replay, state_dir, pkts)
    assert len(out) == len(pkts), replay.log
    marked = IP(bytes(ect))
    marked.tos = 0xB8 | 0x03
    for i, (got, p) in enumerate(zip(out, inner + [marked])):
        assert not got.haslayer(ESP)
        assert got[Ether].dst == GW_MAC and got[Ether].src == PORT_MAC
        assert bytes(got[IP]) == expected_forwarded(p), f"packet {i}"
    assert drops(replay.log) == {}, replay.log
    assert "tunnel    s1" in replay.log
    assert tshark_malformed(replay.outputs[0]) == []


def test_decap_nat_t(replay, state_dir):
    """ESP in UDP 4500 from s2 (nat_t: true), and, since a NAT can appear or vanish on the path,
    ESP in UDP from s1 (nat_t: false) and plain ESP from s2: all decrypted and forwarded."""
    s2_udp = scapy_sa(0x1000, K_S2_IN, S2, nat_t=True)
    inner = [IP(src="172.18.1.1", dst=f"93.184.0.{i + 1}", ttl=5) / UDP(sport=1, dport=2)
             / Raw(b"x" * i) for i in range(30)]
    pkts = [s2_udp.encrypt(p, seq_num=i + 1) for i, p in enumerate(inner)]
    assert pkts[0][UDP].sport == NAT_T_PORT and pkts[0][UDP].dport == NAT_T_PORT
    extra = [IP(src="172.16.1.1", dst="93.184.1.1", ttl=5) / UDP(sport=3, dport=4),
             IP(src="172.18.1.1", dst="93.184.1.2", ttl=5) / UDP(sport=5, dport=6)]
    pkts.append(scapy_sa(0x1000, K_S1_IN, S1, nat_t=True).encrypt(extra[0], seq_num=1))
    pkts.append(scapy_sa(0x1000, K_S2_IN, S2).encrypt(extra[1], seq_num=99))
    assert pkts[-1][IP].proto == 50
    out = run(replay, state_dir, pkts)
    assert [bytes(g[IP]) for g in out] == [expected_forwarded(p) for p in inner + extra], replay.log
    assert drops(replay.log) == {}, replay.log


def test_transit_reencapsulated_per_routes(replay, state_dir):
    """ESP from s1 whose inner destination is routed to g1 (GRE) or s2 (ESP, NAT-T)."""
    sa = scapy_sa(0x1000, K_S1_IN, S1)
    to_gre = IP(src="172.16.9.9", dst="172.17.2.2", ttl=9) / TCP(sport=1234, dport=80, flags="A")
    to_s2 = [IP(src="172.16.9.9", dst=f"172.18.2.{i}", ttl=9) / UDP(sport=1, dport=9)
             / Raw(b"s" * i) for i in range(1, 6)]
    pkts = [sa.encrypt(to_gre, seq_num=1)]
    pkts += [sa.encrypt(p, seq_num=i + 2) for i, p in enumerate(to_s2)]
    out = run(replay, state_dir, pkts)
    assert len(out) == 6, (replay.log, [p.summary() for p in out])
    assert out[0].haslayer(GRE) and out[0][IP].dst == G1
    assert bytes(out[0][GRE].payload) == expected_forwarded(to_gre)
    check_outbound(out[1:], to_s2, S2, 0x3000, K_S2_OUT, nat_t=True)


# The negative tests: each run also carries valid packets (`good`), which must come out, so that
# a run whose SAs were not installed at all cannot pass for one that refused the bad packets.
GOOD_INNER = IP(src="172.16.1.1", dst="93.184.0.1", ttl=30) / UDP(sport=1, dport=40000) / Raw(b"p" * 20)


def outer(remote=S1):
    return IP(src=remote, dst=LOCAL, proto=50)


def nat_t_outer(remote=S2):
    return IP(src=remote, dst=LOCAL) / UDP(sport=NAT_T_PORT, dport=NAT_T_PORT, chksum=0)


def good(seq, remote=S1, k=K_S1_IN):
    """A valid ESP packet of the inbound SA 0x1000 of `remote`, sealed by the oracle."""
    return outer(remote) / Raw(seal(k, 0x1000, seq, struct.pack("!Q", seq), bytes(GOOD_INNER)))


def test_two_inbound_sas_and_no_outbound(replay, state_dir):
    """A rekey in progress: both inbound SAs are accepted; a tunnel without an outbound SA drops
    what is routed to it (esp_no_sa) instead of sending it in the clear or under another SA."""
    k_next = key("s1-next")
    pkts = [good(1), outer() / Raw(seal(k_next, 0x1001, 1, bytes(8), bytes(GOOD_INNER))), good(2)]
    to_s1 = [IP(src="192.0.2.100", dst="172.16.0.9") / UDP(sport=1, dport=2)] * 3
    d = run_rejections(replay, state_dir, pkts + to_s1, n_good=3, s1_outbound=None,
                       s1_inbound=((0x1000, K_S1_IN), (0x1001, k_next)))
    assert d == {"esp_no_sa": 3}, (d, replay.log)


def run_rejections(replay, state_dir, cases, n_good, **cfg):
    """Runs `cases`: exactly `n_good` packets come out, each the valid packets' inner packet
    (TTL - 1). Returns the drops by reason."""
    out = run(replay, state_dir, cases, **cfg)
    assert [bytes(g[IP]) for g in out] == [expected_forwarded(GOOD_INNER)] * n_good, \
        (replay.log, [g.summary() for g in out])
    return drops(replay.log)


def test_wrong_key_or_salt_is_auth_failure(replay, state_dir):
    wrong = [
        key("not-s1"),  # another key and salt
        key("not-s1")[:32] + K_S1_IN[32:],  # the right salt, another key
        K_S1_IN[:32] + bytes(4),  # the right key, another salt
        K_S1_IN[:32] + bytes([K_S1_IN[32] ^ 0x80]) + K_S1_IN[33:],  # one salt bit off
        K_S2_IN,  # s2's inbound SPI is also 0x1000: its key is wrong for s1's remote
    ]
    cases = [outer() / Raw(seal(k, 0x1000, i + 1, bytes(8), bytes(GOOD_INNER)))
             for i, k in enumerate(wrong)]
    # scapy's own SA under the wrong salt.
    cases.append(scapy_sa(0x1000, K_S1_IN[:32] + b"salt", S1).encrypt(GOOD_INNER, seq_num=20))
    d = run_rejections(replay, state_dir, cases + [good(30)], n_good=1)
    assert d == {"esp_auth_failed": 6}, (d, replay.log)


def test_bad_icv_and_bad_ciphertext_are_auth_failures(replay, state_dir):
    good_esp = seal(K_S1_IN, 0x1000, 1, b"\x00\x07" + bytes(6), bytes(GOOD_INNER))
    cases = []
    # ICV last and first byte, ciphertext first byte and one in the middle, the IV, the
    # sequence number (authenticated as AAD).
    for pos in (len(good_esp) - 1, len(good_esp) - 16, 16, 30, 8, 15, 7):
        b = bytearray(good_esp)
        b[pos] ^= 0x01
        cases.append(outer() / Raw(bytes(b)))
    b = bytearray(good_esp)
    b[-16:] = bytes(16)  # an all-zero ICV
    cases.append(outer() / Raw(bytes(b)))
    d = run_rejections(replay, state_dir, cases + [outer() / Raw(good_esp)], n_good=1)
    assert d == {"esp_auth_failed": 8}, (d, replay.log)


def test_unknown_and_zero_spi(replay, state_dir):
    inner = bytes(GOOD_INNER)
    cases = [
        outer() / Raw(seal(K_S1_IN, 0x1234, 1, bytes(8), inner)),
        outer() / Raw(seal(K_S1_OUT, 0x2000, 1, bytes(8), inner)),  # our outbound SPI
        outer(S2) / Raw(seal(K_S1_OUT, 0x2000, 1, bytes(8), inner)),
        outer("198.51.100.99") / Raw(seal(K_S1_IN, 0x1000, 1, bytes(8), inner)),  # no tunnel
        outer(G1) / Raw(seal(K_S1_IN, 0x1000, 1, bytes(8), inner)),  # a GRE tunnel's remote
        outer() / Raw(struct.pack("!II", 0x1234, 1)),  # the SA decides before the length
        nat_t_outer() / Raw(seal(K_S2_IN, 0x1001, 1, bytes(8), inner)),
    ]
    zero = [
        outer() / Raw(seal(K_S1_IN, 0, 1, bytes(8), inner)),
        outer() / Raw(bytes(8)),
    ]
    d = run_rejections(replay, state_dir, cases + zero + [good(5)], n_good=1)
    assert d == {"esp_unknown_spi": len(cases), "esp_zero_spi": len(zero)}, (d, replay.log)


def test_truncated_esp(replay, state_dir):
    """A valid packet cut at several offsets (the outer headers' lengths agreeing): shorter than
    the ESP header, than header + IV + ICV + trailer (esp_truncated), or long enough but missing
    ciphertext or ICV bytes (esp_auth_failed); a frame shorter than its IPv4 total length."""
    g = seal(K_S1_IN, 0x1000, 1, bytes(8), bytes(GOOD_INNER))
    short = [0, 1, 4, 7, 8, 12, 16, 24, 32, 8 + 8 + 16 + 1]  # minimum is 8 + 8 + 16 + 2
    cases = [outer() / Raw(g[:n]) for n in short]
    cases += [nat_t_outer() / Raw(seal(K_S2_IN, 0x1000, 1, bytes(8), bytes(GOOD_INNER))[:n])
              for n in (5, 8, 33)]  # in UDP (a non-zero first word: ESP)
    unauth = [outer() / Raw(g[:n]) for n in (34, 40, len(g) - 16, len(g) - 1)]
    frame = bytes(eth() / outer() / Raw(g))
    d_cases = [Ether(frame[:-1]), Ether(frame[:14 + 20 + 10])]
    pkts = [eth() / c for c in cases + unauth] + d_cases + [eth() / good(2)]
    (out,) = replay.run(config(state_dir), pkts, ports=1)
    assert_no_key_material(replay.log)
    assert [bytes(o[IP]) for o in out] == [expected_forwarded(GOOD_INNER)], replay.log
    d = drops(replay.log)
    assert d == {"esp_truncated": len(cases), "esp_auth_failed": len(unauth),
                 "ipv4_bad_total_length": len(d_cases)}, (d, replay.log)


def test_replay_window_drops_duplicates_and_old(replay, state_dir):
    sa = scapy_sa(0x1000, K_S1_IN, S1)
    p = lambda n: sa.encrypt(GOOD_INNER, seq_num=n)  # noqa: E731
    # A forged packet far ahead must not move the window: 250 is still accepted after it.
    forged = outer() / Raw(seal(key("forger"), 0x1000, 5000, bytes(8), bytes(GOOD_INNER)))
    seqs = [1, 1, 2, 300, 300, 237, 236, 299, 100, 2]
    # 1 ok, 1 replay, 2 ok, 300 ok, 300 replay, 237 ok (inside the 64-window), 236 too old,
    # 299 ok, 100 too old, 2 too old
    cases = [p(n) for n in seqs] + [forged, p(250), p(250)]
    d = run_rejections(replay, state_dir, cases, n_good=6, s1_replay_window=64)
    assert d == {"esp_replay": 6, "esp_auth_failed": 1}, (d, replay.log)


def test_replay_window_off_forwards_duplicates(replay, state_dir):
    """Window 0 (the default: an anycast fleet shares SAs): duplicates and old numbers are
    forwarded."""
    sa = scapy_sa(0x1000, K_S1_IN, S1)
    pkts = [sa.encrypt(GOOD_INNER, seq_num=n) for n in (7, 7, 7, 1000, 1)]
    d = run_rejections(replay, state_dir, pkts, n_good=5)
    assert d == {}, (d, replay.log)


def test_bad_trailer_after_authentication(replay, state_dir):
    """Trailers that authenticate (the oracle seals them) but break RFC 4303's rules."""
    inner = bytes(GOOD_INNER)  # 48 bytes: default padding 01 02
    s = lambda seq, body, **kw: outer() / Raw(seal(K_S1_IN, 0x1000, seq, bytes(8), body, **kw))  # noqa: E731
    bad_trailer = [
        s(1, inner, next_header=41),  # IPv6 inside: not ours
        s(2, inner, next_header=59),  # RFC 4303 §2.6 dummy packet ("no next header")
        s(3, inner, padding=b"\x09\x09"),  # padding not 1, 2
        s(4, inner, padding=b"\x02\x01"),
        s(5, inner, padding=bytes([1, 2, 3, 4, 5, 7])),
        s(6, b"\x01\x02", padding=b"", pad_len=200),  # pad length past the payload
        s(7, b"", padding=b"\x01\x02", pad_len=3),  # pad length one past the payload
    ]
    bad_inner = [
        s(8, b"", padding=b"\x01\x02"),  # pad length = the whole payload: no inner packet
        s(9, inner[:40]),  # the inner packet's total length runs past the payload
    ]
    # Positive controls: more padding than 4-byte alignment needs (RFC 4303 allows up to 255
    # bytes), and none when the payload is aligned without it.
    long_pad = s(10, inner, padding=bytes(range(1, 11)))
    inner50 = IP(bytes(GOOD_INNER / Raw(b"qq")))  # 50 bytes + pad length + next header
    no_pad = s(11, bytes(inner50), padding=b"")
    out = run(replay, state_dir, bad_trailer + bad_inner + [long_pad, no_pad])
    assert [bytes(o[IP]) for o in out] == [expected_forwarded(GOOD_INNER),
                                            expected_forwarded(inner50)], replay.log
    d = drops(replay.log)
    assert d == {"esp_bad_trailer": len(bad_trailer), "ipv4_truncated": 1,
                 "ipv4_bad_total_length": 1}, (d, replay.log)


def test_nat_t_ike_and_keepalive_are_not_ours(replay, state_dir):
    cases = [
        nat_t_outer() / Raw(b"\x00\x00\x00\x00" + b"\x11" * 40),  # non-ESP marker: IKE
        nat_t_outer(S1) / Raw(b"\x00\x00\x00\x00" + b"\x11" * 40),
        nat_t_outer() / Raw(b"\xff"),  # NAT keepalive
        nat_t_outer(S1) / Raw(b"\xff"),
    ]
    ok = nat_t_outer() / Raw(seal(K_S2_IN, 0x1000, 1, bytes(8), bytes(GOOD_INNER)))
    d = run_rejections(replay, state_dir, cases + [ok], n_good=1)
    assert d == {"local_unsupported": len(cases)}, (d, replay.log)


def test_iv_unique_across_instances_and_restart(tmp_path):
    """Two appliances of a fleet (instance ids 1 and 2) share the SA; one restarts (epoch + 1,
    sequence numbers start again at 1). No IV repeats under the shared key."""
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
    assert (tmp_path / "state-a" / "boot-epoch").read_text().strip() == "2"


def test_unpersistable_boot_epoch_refuses_to_start(replay, tmp_path):
    """A boot epoch that cannot be written could repeat the IVs of an earlier start: the
    appliance does not start, and sends nothing."""
    not_a_dir = tmp_path / "state-file"
    not_a_dir.write_text("")
    with pytest.raises(AssertionError):
        replay.run(config(not_a_dir), [eth() / IP(src="192.0.2.100", dst="172.16.0.1") / UDP()],
                   ports=1)
    assert "refusing to start without a persisted boot epoch" in replay.log, replay.log
    out = tmp_path / "out0.pcap"
    assert not out.exists() or len(rdpcap(str(out))) == 0, "sent packets without a boot epoch"


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
    wrong = [r for r in tshark_esp(replay.outputs[0], [(LOCAL, S1, 0x2000, key("wrong"))])
             if r[1] == "0x00002000"]
    assert len(wrong) == 20 and all(r[3] != "1" for r in wrong), wrong
    # And the input (scapy's ESP) authenticates too.
    rows_in = [r for r in tshark_esp(replay.tmp / "in.pcap", sas) if r[1] == "0x00001000"]
    assert len(rows_in) == 20 and {r[3] for r in rows_in} == {"1"}, rows_in
