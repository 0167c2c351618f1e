#!/usr/bin/env python3
"""A scapy "customer router" for Conduit's tunnels, and a traffic source.

It sits on the appliance's gateway-facing link (a tap interface) and plays, at once, the gateway
(it answers ARP for the gateway address) and the customer routers at the far end of every GRE
tunnel of a Conduit config:

- GRE from the appliance (outer destination = a tunnel's remote endpoint, key checked) is
  decapsulated. Data packets of the traffic source are counted per flow and per tunnel: which
  tunnel carried which sequence number of which flow, and when.
- Health-check probes (docs/behaviour.md §4: ICMP echo inside GRE, identifier 0xC0DE, payload b"CNDT" + tunnel
  index + bytes echoed unchanged) are handled like a router would:
  * an echo request addressed to the customer router (a customer-side interface address or a
    remote endpoint) is answered with an echo reply carrying the same id, sequence and payload;
  * an echo reply (or anything else) addressed elsewhere is routed on with TTL - 1.
  Whatever it sends towards the appliance is routed: to a tunnel's appliance-side interface
  address it goes back inside that GRE tunnel (outer source = remote, destination = local, key
  added), to any other address it goes plain.
- A silenced tunnel drops every ICMP packet that arrives through it (probes are neither bounced
  nor answered); data is still counted, so the test sees where flows went.
- The traffic source sends UDP flows (many source ports, one sequence number per flow in the
  payload) to customer prefixes, plain, to the appliance's MAC.

Standalone:  python3 peer.py --iface IFACE --config conduit.yaml --appliance-mac MAC [--flows ...]
It then reads commands on stdin, one per line, and answers each with one JSON line on stdout:
  silence NAME | restore NAME        stop / resume answering the probes of a tunnel
  traffic start | traffic stop       start / stop the traffic source
  attack NAME                        forge, replay and misroute replies of tunnel NAME's probes
                                     (see attack()); answers how many of each were sent
  flood SECONDS                      send one UDP frame as fast as this process can, on a
                                     socket of its own, for SECONDS (in the background)
  flood wait                         wait for the flood to end; answers the frames sent
  stats                              counters, per-tunnel probe counts and per-flow runs
  quit
The first line it prints is {"ready": ...} once its socket is bound. Times are
time.monotonic() of this process (CLOCK_MONOTONIC, so comparable with the test's own clock).

The packet logic (CustomerRouter.handle) takes and returns raw frames, so it is unit-tested
offline (test_peer.py) without any interface.
"""

import argparse
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional

PROBE_ID = 0xC0DE
PROBE_MAGIC = b"CNDT"
DATA_MAGIC = b"CFLW"
# UDP destination port of the generated flows: ephemeral range, not a well-known service.
DATA_PORT = 47001
SPORT_BASE = 49152
# The flood goes to an address no route covers (override with CONDUIT_FLOOD_DST): the appliance
# drops it (no_route), so only the appliance, not this peer, carries the load.
FLOOD_DST = os.environ.get("CONDUIT_FLOOD_DST", "192.0.2.200")

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
SO_TIMESTAMPNS = 35  # SCM_TIMESTAMPNS: kernel receive time, CLOCK_REALTIME
LATE_ANSWER_MS = 50.0
PROBE_GAP_S = 0.6
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23
CAPTURED = 64  # real probe replies kept per tunnel for the `attack` command  # Linux 4.20: this socket does not see what we send


@dataclass(frozen=True)
class Tunnel:
    """One GRE tunnel as the customer router sees it."""

    name: str
    index: int
    local: str  # the appliance's (anycast) endpoint
    remote: str  # our (customer) endpoint
    ours: str  # the appliance's interface address (the configured one)
    customer: str  # our side of the /31 or /30
    key: Optional[int] = None


def customer_side(interface_address: str) -> str:
    """The other usable host of a /31 or /30 (docs/behaviour.md §2: the configured address is the appliance's)."""
    iface = ipaddress.ip_interface(interface_address)
    a = int(iface.ip)
    if iface.network.prefixlen == 30:
        b = (a & ~3) | (3 - (a & 3))
    else:
        b = a ^ 1
    return str(ipaddress.IPv4Address(b))


def tunnels_from_config(cfg: dict) -> list:
    """The GRE tunnels of a parsed Conduit config; the index is the position in `tunnels:`."""
    out = []
    for i, t in enumerate(cfg.get("tunnels") or []):
        if t.get("kind") != "gre":
            continue
        out.append(Tunnel(
            name=t["name"], index=i, local=str(t["local"]), remote=str(t["remote"]),
            ours=str(ipaddress.ip_interface(t["interface_address"]).ip),
            customer=customer_side(t["interface_address"]), key=t.get("key"),
        ))
    return out


def data_payload(flow: int, seq: int, size: int = 32) -> bytes:
    body = DATA_MAGIC + struct.pack("!II", flow, seq)
    return body + b"\x00" * max(0, size - len(body))


class FlowLog:
    """Per flow: every (sequence, tunnel, time) seen, summarised as runs on one tunnel."""

    def __init__(self):
        self.seen = {}  # flow -> list of (seq, tunnel, t)

    def add(self, flow: int, seq: int, tunnel: str, t: float):
        self.seen.setdefault(flow, []).append((seq, tunnel, t))

    def summary(self, flow: int) -> dict:
        pkts = self.seen.get(flow, [])
        runs = []
        for seq, tun, t in pkts:
            if runs and runs[-1]["tunnel"] == tun:
                r = runs[-1]
                r["last_seq"], r["t_last"], r["count"] = seq, t, r["count"] + 1
            else:
                runs.append({"tunnel": tun, "first_seq": seq, "last_seq": seq,
                             "t_first": t, "t_last": t, "count": 1})
        seqs = [p[0] for p in pkts]
        uniq = set(seqs)
        top = max(uniq) if uniq else -1
        missing = [s for s in range(top + 1) if s not in uniq]
        reordered = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
        return {"runs": runs, "received": len(seqs), "max_seq": top,
                "missing": missing, "duplicates": len(seqs) - len(uniq), "reordered": reordered}


class CustomerRouter:
    """The packet logic: one received frame in, the frames to send back out."""

    def __init__(self, tunnels, my_mac: str, appliance_mac: str, gateway_ip: str,
                 data_port: int = DATA_PORT, extra_addresses=()):
        self.tunnels = list(tunnels)
        self.my_mac = my_mac.lower()
        self.appliance_mac = appliance_mac.lower()
        self.gateway_ip = gateway_ip
        self.data_port = data_port
        self.by_outer = {(t.remote, t.local): t for t in self.tunnels}
        self.by_ours = {t.ours: t for t in self.tunnels}
        # Addresses this router answers echo requests for.
        self.owned = {t.customer for t in self.tunnels} | {t.remote for t in self.tunnels}
        self.owned |= set(extra_addresses)
        self.silenced = set()
        self.lock = threading.Lock()
        self.flows = FlowLog()
        self.counters = {k: 0 for k in (
            "rx_frames", "arp_answered", "gre_unknown", "gre_bad_key", "gre_bad",
            "data_plain", "ttl_expired", "other")}
        self.per_tunnel = {t.name: {k: 0 for k in (
            "gre_rx", "data", "probes_seen", "probes_answered", "probes_dropped",
            "probe_index_mismatch", "requests_answered", "forwarded", "tx_into")}
            for t in self.tunnels}
        # How long answered probes waited in this process (kernel receive to hand-back), so a
        # test can tell a slow peer from a slow appliance: max per tunnel, and the late ones.
        self.answer_ms_max = {t.name: 0.0 for t in self.tunnels}
        self.late_answers = {t.name: [] for t in self.tunnels}
        self._answered_probe = None
        # Gaps longer than PROBE_GAP_S between two probes of a tunnel: the appliance (or the
        # machine) stalled; failure messages show them.
        self.probe_gaps = {t.name: [] for t in self.tunnels}
        self._last_probe = {}
        self._now = 0.0
        self.plain_probes = {"answered": 0, "forwarded": 0}
        # The last replies sent for each tunnel's probes (inner IPv4 bytes), for the `attack`
        # command: what an eavesdropper on the path would have captured.
        self.captured = {t.name: [] for t in self.tunnels}

    # -- control -----------------------------------------------------------------------------
    def silence(self, name: str):
        if name not in self.per_tunnel:
            raise KeyError(name)
        with self.lock:
            self.silenced.add(name)

    def restore(self, name: str):
        if name not in self.per_tunnel:
            raise KeyError(name)
        with self.lock:
            self.silenced.discard(name)

    def stats(self) -> dict:
        with self.lock:
            return {
                "counters": dict(self.counters),
                "tunnels": {k: dict(v) for k, v in self.per_tunnel.items()},
                "plain_probes": dict(self.plain_probes),
                "answer_ms_max": {k: round(v, 1) for k, v in self.answer_ms_max.items()},
                "late_answers": {k: list(v) for k, v in self.late_answers.items()},
                "probe_gaps": {k: list(v) for k, v in self.probe_gaps.items()},
                "silenced": sorted(self.silenced),
                "flows": {str(f): self.flows.summary(f) for f in sorted(self.flows.seen)},
            }

    # -- packet path -------------------------------------------------------------------------
    def handle(self, frame: bytes, now: Optional[float] = None, waited: float = 0.0) -> list:
        """`now`: monotonic time of the frame's arrival; `waited`: seconds it spent queued before
        this call (from the kernel's receive timestamp), counted into the answer latency."""
        now = time.monotonic() if now is None else now
        start = time.monotonic()
        with self.lock:
            self._now = now
            self.counters["rx_frames"] += 1
            if self._fast_data(frame, now):
                return []
            self._answered_probe = None
            out = self._slow(frame, now)
            if self._answered_probe is not None and out:
                name = self._answered_probe
                ms = (waited + time.monotonic() - start) * 1000
                self.answer_ms_max[name] = max(self.answer_ms_max[name], ms)
                if ms >= LATE_ANSWER_MS and len(self.late_answers[name]) < 100:
                    self.late_answers[name].append((round(now, 4), round(ms, 1)))
            return out

    def _fast_data(self, frame: bytes, now: float) -> bool:
        """Data packets of the traffic source, decoded without scapy (they are most of the load).
        Anything unusual falls through to the scapy path."""
        if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
            return False
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[0] >> 4 != 4 or ihl < 20 or len(ip) < ihl:
            return False
        if ip[6] & 0x3F or ip[7]:  # outer fragment
            return False
        if ip[9] == 17:
            l4 = ip[ihl:]
            if len(l4) >= 8 + 12 and struct.unpack("!H", l4[2:4])[0] == self.data_port \
                    and l4[8:12] == DATA_MAGIC:
                self.counters["data_plain"] += 1
                return True
            return False
        if ip[9] != 47:
            return False
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        t = self.by_outer.get((dst, src))
        if t is None:
            return False
        gre = ip[ihl:]
        if len(gre) < 4:
            return False
        flags, proto = struct.unpack("!HH", gre[:4])
        if flags & 0x4FFF or proto != 0x0800:  # routing, strict route, recursion, reserved or version bits
            return False
        off = 4
        if flags & 0x8000:
            off += 4
        key = None
        if flags & 0x2000:
            if len(gre) < off + 4:
                return False
            key = struct.unpack("!I", gre[off:off + 4])[0]
            off += 4
        if flags & 0x1000:
            off += 4
        if key != t.key:
            return False
        inner = gre[off:]
        if len(inner) < 20 or inner[0] >> 4 != 4 or inner[9] != 17:
            return False
        iihl = (inner[0] & 0x0F) * 4
        l4 = inner[iihl:]
        if len(l4) < 8 + 12 or struct.unpack("!H", l4[2:4])[0] != self.data_port \
                or l4[8:12] != DATA_MAGIC:
            return False
        flow, seq = struct.unpack("!II", l4[12:20])
        pt = self.per_tunnel[t.name]
        pt["gre_rx"] += 1
        pt["data"] += 1
        self.flows.add(flow, seq, t.name, now)
        return True

    def _slow(self, frame: bytes, now: float) -> list:
        from scapy.layers.inet import GRE, ICMP, IP, UDP
        from scapy.layers.l2 import ARP, Ether

        pkt = Ether(frame)
        if pkt.haslayer(ARP):
            arp = pkt[ARP]
            if arp.op == 1 and arp.pdst == self.gateway_ip:
                self.counters["arp_answered"] += 1
                reply = Ether(src=self.my_mac, dst=arp.hwsrc) / ARP(
                    op=2, hwsrc=self.my_mac, psrc=self.gateway_ip, hwdst=arp.hwsrc, pdst=arp.psrc)
                return [bytes(reply)]
            self.counters["other"] += 1
            return []
        if not pkt.haslayer(IP):
            self.counters["other"] += 1
            return []
        outer = pkt[IP]
        if outer.proto != 47:
            return self._route_in(None, outer)
        t = self.by_outer.get((outer.dst, outer.src))
        if t is None:
            self.counters["gre_unknown"] += 1
            return []
        if not outer.haslayer(GRE):
            self.counters["gre_bad"] += 1
            return []
        gre = outer[GRE]
        if gre.version != 0 or gre.routing_present or gre.proto != 0x0800:
            self.counters["gre_bad"] += 1
            return []
        key = gre.key if gre.key_present else None
        if key != t.key:
            self.counters["gre_bad_key"] += 1
            return []
        self.per_tunnel[t.name]["gre_rx"] += 1
        inner = gre.payload
        if not isinstance(inner, IP):
            self.counters["gre_bad"] += 1
            return []
        if inner.haslayer(UDP) and inner[UDP].dport == self.data_port:
            self.counters["other"] += 1  # a data packet the fast path refused: malformed
            return []
        return self._route_in(t, IP(bytes(inner)))

    def _route_in(self, t: Optional[Tunnel], ip) -> list:
        """A packet the customer router received (through tunnel `t`, or plain when None)."""
        from scapy.layers.inet import ICMP, IP

        if not ip.haslayer(ICMP):
            self.counters["other"] += 1
            return []
        icmp = ip[ICMP]
        payload = bytes(icmp.payload)
        is_probe = icmp.id == PROBE_ID and payload.startswith(PROBE_MAGIC)
        pt = self.per_tunnel[t.name] if t is not None else None
        if pt is not None:
            if is_probe:
                pt["probes_seen"] += 1
                last = self._last_probe.get(t.name)
                if last is not None and self._now - last > PROBE_GAP_S and len(self.probe_gaps[t.name]) < 50:
                    self.probe_gaps[t.name].append((round(self._now, 3), round(self._now - last, 3)))
                self._last_probe[t.name] = self._now
                if len(payload) >= 8 and struct.unpack("!I", payload[4:8])[0] != t.index:
                    pt["probe_index_mismatch"] += 1
            if t.name in self.silenced:
                if is_probe:
                    pt["probes_dropped"] += 1
                return []
        if icmp.type == 8 and ip.dst in self.owned:
            reply = IP(src=ip.dst, dst=ip.src, ttl=64) / ICMP(
                type=0, code=0, id=icmp.id, seq=icmp.seq) / payload
            if pt is not None:
                pt["requests_answered"] += 1
                if is_probe:
                    pt["probes_answered"] += 1
                    self._answered_probe = t.name
                    self._capture(t.name, reply)
            elif is_probe:
                self.plain_probes["answered"] += 1
            return self._route_out(reply)
        if ip.dst in self.owned:
            self.counters["other"] += 1  # e.g. an echo reply to us: nothing to do
            return []
        if ip.ttl <= 1:
            self.counters["ttl_expired"] += 1
            return []
        fwd = ip.copy()
        fwd.ttl -= 1
        del fwd.chksum
        if pt is not None:
            pt["forwarded"] += 1
            if is_probe:
                pt["probes_answered"] += 1
                self._answered_probe = t.name
                self._capture(t.name, fwd)
        elif is_probe:
            self.plain_probes["forwarded"] += 1
        return self._route_out(IP(bytes(fwd)))

    def _capture(self, name: str, ip):
        kept = self.captured[name]
        kept.append(bytes(ip))
        del kept[:-CAPTURED]

    def _route_out(self, ip) -> list:
        """Send towards the appliance: into the tunnel whose appliance-side interface address is
        the destination, plain otherwise."""
        from scapy.layers.inet import GRE, IP
        from scapy.layers.l2 import Ether

        eth = Ether(src=self.my_mac, dst=self.appliance_mac)
        t = self.by_ours.get(ip.dst)
        if t is None:
            return [bytes(eth / ip)]
        self.per_tunnel[t.name]["tx_into"] += 1
        gre = GRE(proto=0x0800, key_present=1, key=t.key) if t.key is not None else GRE(proto=0x0800)
        return [bytes(eth / IP(src=t.remote, dst=t.local, ttl=64) / gre / ip)]


# -- traffic ----------------------------------------------------------------------------------

def flow_table(prefixes, per_prefix: int, src: str = "198.18.0.1"):
    """Flows as (id, src, dst, sport): `per_prefix` flows into each /16 `prefixes` names
    ("172.16"), each with its own source port (ephemeral range) and destination."""
    flows = []
    for p in prefixes:
        for i in range(per_prefix):
            fid = len(flows)
            dst = f"{p}.{(i * 37) % 250 + 1}.{i % 200 + 1}"
            flows.append((fid, src, dst, SPORT_BASE + fid))
    return flows


class TrafficSource:
    """Sends the flows round-robin at `rate` packets per second; the payload carries the flow id
    and its next sequence number. Headers are built once with scapy; per packet only the
    payload changes (same length, so the IPv4 checksum stays; UDP checksum 0 = none)."""

    def __init__(self, send, flows, my_mac, appliance_mac, rate: float, data_port=DATA_PORT):
        from scapy.layers.inet import IP, UDP
        from scapy.layers.l2 import Ether

        self.send = send
        self.flows = flows
        self.rate = rate
        self.headers = []
        plen = len(data_payload(0, 0))
        for fid, src, dst, sport in flows:
            hdr = bytes(Ether(src=my_mac, dst=appliance_mac) / IP(src=src, dst=dst, ttl=64)
                        / UDP(sport=sport, dport=data_port, chksum=0) / (b"\x00" * plen))
            self.headers.append(hdr[:-plen])
        self.sent = [0] * len(flows)
        self.errors = 0
        self.running = threading.Event()
        self.stopped = threading.Event()
        self.thread = None

    def start(self):
        if self.thread is not None and self.thread.is_alive():
            return
        self.running.set()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self):
        self.running.clear()
        if self.thread is not None:
            self.thread.join()

    def burst(self, f: int, count: int) -> int:
        """Sends `count` packets of flow `f` at once (outside the paced loop); how many left."""
        sent = 0
        for _ in range(count):
            try:
                self.send(self.headers[f] + data_payload(f, self.sent[f]))
                self.sent[f] += 1
                sent += 1
            except OSError:
                self.errors += 1
        return sent

    def _run(self):
        n = len(self.flows)
        i = 0
        t0 = time.monotonic()
        total = 0
        while self.running.is_set():
            due = int((time.monotonic() - t0) * self.rate) - total
            for _ in range(min(due, 256)):
                f = i % n
                try:
                    self.send(self.headers[f] + data_payload(f, self.sent[f]))
                    self.sent[f] += 1
                except OSError:
                    self.errors += 1
                i += 1
                total += 1
            if due > 256:  # fell far behind (machine busy): do not burst to catch up
                total += due - 256
            time.sleep(0.002)


def icmp_with(ip: bytes, seq=None, mac=None, src=None) -> bytes:
    """A copy of the ICMP echo `ip` (IPv4 bytes) with another sequence number, probe MAC (data
    bytes 16..24) or source address; checksums fixed."""
    b = bytearray(ip)
    ihl = (b[0] & 0x0F) * 4
    if seq is not None:
        b[ihl + 6:ihl + 8] = struct.pack("!H", seq)
    if mac is not None:
        b[ihl + 8 + 16:ihl + 8 + 24] = mac
    if src is not None:
        b[12:16] = socket.inet_aton(src)
        b[10:12] = b"\x00\x00"
        b[10:12] = struct.pack("!H", inet_checksum(bytes(b[:ihl])))
    b[ihl + 2:ihl + 4] = b"\x00\x00"
    b[ihl + 2:ihl + 4] = struct.pack("!H", inet_checksum(bytes(b[ihl:])))
    return bytes(b)


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def attack(router: CustomerRouter, name: str, send, step: int = 16) -> dict:
    """Everything an off-path or on-path attacker can try to keep tunnel `name` looking alive,
    built from the real replies captured for it (its identity, tunnel id and addresses are
    right): a sweep of sequence numbers with made-up MACs, by the path the tunnel's replies
    take; replays of the captured replies (their probes are long past their deadline); the
    captured replies inside another tunnel's GRE; and, plain, with another inner source.
    Returns how many of each were sent."""
    import random

    t = next(x for x in router.tunnels if x.name == name)
    other = next(x for x in router.tunnels if x.name != name)
    kept = list(router.captured[name])
    if not kept:
        raise KeyError(f"no reply of {name} captured yet")
    from scapy.layers.l2 import Ether

    header = bytes(Ether(src=router.my_mac, dst=router.appliance_mac, type=0x0800))

    def plain(ip: bytes) -> bytes:
        return header + ip

    def through(tun: Tunnel, ip: bytes) -> bytes:
        from scapy.layers.inet import GRE, IP
        gre = GRE(proto=0x0800, key_present=1, key=tun.key) if tun.key is not None \
            else GRE(proto=0x0800)
        outer = IP(src=tun.remote, dst=tun.local, ttl=64) / gre
        return plain(bytes(outer / IP(ip)))

    # The path the real replies take: into the tunnel when addressed to its inside address.
    inside = IP_DST(kept[-1]) == t.ours
    native = (lambda ip: through(t, ip)) if inside else plain
    sent = {"sweep": 0, "replay": 0, "wrong_tunnel": 0, "wrong_source": 0}
    rnd = random.Random(1)
    for seq in range(rnd.randrange(step), 65536, step):
        send(native(icmp_with(kept[-1], seq=seq, mac=rnd.randbytes(8))))
        sent["sweep"] += 1
    for ip in kept:
        send(native(ip))
        sent["replay"] += 1
        send(through(other, ip))
        sent["wrong_tunnel"] += 1
        send(plain(icmp_with(ip, src="198.18.7.7")))
        sent["wrong_source"] += 1
    return sent


def IP_DST(ip: bytes) -> str:
    return socket.inet_ntoa(ip[16:20])


def flood_frame(my_mac: str, appliance_mac: str) -> bytes:
    """The flood's frame: plain UDP to a customer prefix (routed and encapsulated like data)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return bytes(Ether(src=my_mac, dst=appliance_mac)
                 / IP(src="198.18.255.1", dst=FLOOD_DST, ttl=64)
                 / UDP(sport=40000, dport=40001, chksum=0) / (b"F" * 18))


def flood(iface: str, frame: bytes, seconds: float) -> dict:
    """A tight sender loop on a raw socket of its own, for `seconds`: as fast as this process
    can send. Run in a process of its own (`--flood-for`), so that neither competes for the GIL
    with the packet handler."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.bind((iface, 0))
    send = sock.send
    t0 = time.monotonic()
    end = t0 + seconds
    n = errors = 0
    while True:
        for _ in range(512):
            try:
                send(frame)
                n += 1
            except OSError:  # the tap's queue is full: keep pushing
                errors += 1
        if time.monotonic() >= end:
            break
    took = time.monotonic() - t0
    return {"sent": n, "errors": errors, "seconds": round(took, 3), "pps": round(n / took)}


class Flood:
    """The background flood process of the `flood` command."""

    def __init__(self, argv: list):
        self.argv = argv
        self.proc = None

    def start(self, seconds: float):
        self.wait()
        self.proc = subprocess.Popen([sys.executable, __file__, *self.argv,
                                      "--flood-for", str(seconds)],
                                     stdout=subprocess.PIPE, text=True)

    def wait(self) -> dict:
        if self.proc is None:
            return {"sent": 0}
        out, _ = self.proc.communicate()
        self.proc = None
        return json.loads(out.strip().splitlines()[-1])


# -- standalone process -----------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iface", required=True)
    ap.add_argument("--config", required=True, help="the appliance's config (tunnels, gateway)")
    ap.add_argument("--appliance-mac", required=True)
    ap.add_argument("--my-mac", default="02:00:00:00:00:01", help="the gateway's MAC (ours)")
    ap.add_argument("--flows", default="172.16", help="comma-separated /16s, e.g. 172.16,172.18")
    ap.add_argument("--flows-per-prefix", type=int, default=32)
    ap.add_argument("--rate", type=float, default=400.0, help="packets per second, all flows")
    ap.add_argument("--wait-iface", type=float, default=30.0,
                    help="seconds to wait for the interface to appear")
    ap.add_argument("--flood-for", type=float, default=None,
                    help="only flood the appliance for this many seconds, print the count, exit")
    args = ap.parse_args(argv)
    if args.flood_for is not None:
        # The peer runs at a raised priority (it stands in for routers); the flood is just load.
        os.nice(max(0, -os.nice(0)))
        frame = flood_frame(args.my_mac, args.appliance_mac)
        print(json.dumps(flood(args.iface, frame, args.flood_for)), flush=True)
        return 0

    import yaml
    from scapy.layers.inet import GRE, IP  # noqa: F401  (import scapy before the clock starts)

    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    gw = str(cfg["gateway"]["ipv4"])
    router = CustomerRouter(tunnels_from_config(cfg), args.my_mac, args.appliance_mac, gw)

    deadline = time.monotonic() + args.wait_iface
    while not os.path.exists(f"/sys/class/net/{args.iface}"):
        if time.monotonic() > deadline:
            print(json.dumps({"error": f"interface {args.iface} did not appear"}), flush=True)
            return 1
        time.sleep(0.02)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((args.iface, 0))
    # A flood is sent on this interface too: reading our own frames back would bury the probes.
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.settimeout(0.1)
    send_lock = threading.Lock()

    def send(frame: bytes):
        with send_lock:
            sock.send(frame)

    flows = flow_table(args.flows.split(","), args.flows_per_prefix)
    traffic = TrafficSource(send, flows, args.my_mac, args.appliance_mac, args.rate)
    flood_proc = Flood(["--iface", args.iface, "--config", args.config,
                        "--appliance-mac", args.appliance_mac, "--my-mac", args.my_mac])
    stop = threading.Event()
    rx_errors = {"handler": 0, "last": ""}
    socket_drops = {"total": 0}

    def rx_loop():
        while not stop.is_set():
            try:
                frame, anc, _, addr = sock.recvmsg(65535, 64)
            except socket.timeout:
                continue
            except OSError as e:
                rx_errors["last"] = repr(e)
                time.sleep(0.01)
                continue
            if addr[2] == PACKET_OUTGOING:
                continue
            try:
                now, waited = time.monotonic(), 0.0
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                        sec, nsec = struct.unpack("qq", data[:16])
                        waited = max(0.0, time.time() - (sec + nsec / 1e9))
                        now -= waited
                for out in router.handle(frame, now, waited):
                    send(out)
            except Exception as e:  # keep running; the stats report it
                rx_errors["handler"] += 1
                rx_errors["last"] = repr(e)

    rx = threading.Thread(target=rx_loop, daemon=True)
    rx.start()
    stalls = []  # (time, seconds) this process was not scheduled for more than 50 ms

    def stall_monitor():
        while not stop.is_set():
            t0 = time.monotonic()
            time.sleep(0.01)
            over = time.monotonic() - t0 - 0.01
            if over > 0.05 and len(stalls) < 100:
                stalls.append((round(t0, 3), round(over, 3)))

    threading.Thread(target=stall_monitor, daemon=True).start()

    def reply(obj):
        obj.setdefault("t", time.monotonic())
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"ready": True, "iface": args.iface, "tunnels": [t.name for t in router.tunnels],
           "flows": [{"id": f, "src": s, "dst": d, "sport": p} for f, s, d, p in flows]})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        try:
            if cmd == "silence":
                router.silence(words[1])
                reply({"ok": cmd, "tunnel": words[1]})
            elif cmd == "restore":
                router.restore(words[1])
                reply({"ok": cmd, "tunnel": words[1]})
            elif cmd == "traffic" and words[1] == "start":
                traffic.start()
                reply({"ok": "traffic start"})
            elif cmd == "traffic" and words[1] == "stop":
                traffic.stop()
                reply({"ok": "traffic stop", "sent": list(traffic.sent)})
            elif cmd == "burst":
                reply({"ok": cmd, "sent": traffic.burst(int(words[1]), int(words[2]))})
            elif cmd == "attack":
                reply({"ok": cmd, "sent": attack(router, words[1], send)})
            elif cmd == "flood" and words[1] == "wait":
                reply({"ok": "flood wait", **flood_proc.wait()})
            elif cmd == "flood":
                flood_proc.start(float(words[1]))
                reply({"ok": "flood"})
            elif cmd == "stats":
                s = router.stats()
                s["sent"] = list(traffic.sent)
                s["send_errors"] = traffic.errors
                s["rx_errors"] = dict(rx_errors)
                s["peer_stalls"] = list(stalls)
                # Frames the kernel dropped because this socket fell behind (cleared on read).
                got, dropped = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
                socket_drops["total"] += dropped
                s["socket_drops"] = socket_drops["total"]
                reply(s)
            elif cmd == "quit":
                break
            else:
                reply({"error": f"unknown command {line.strip()!r}"})
        except (KeyError, IndexError) as e:
            reply({"error": f"{line.strip()!r}: {e!r}"})
    traffic.stop()
    stop.set()
    rx.join()
    reply({"ok": "quit"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
