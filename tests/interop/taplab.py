"""A live lab for the interop tests: conduit on a net_tap port inside a fresh network namespace,
and peer.py (the gateway and the customer routers, plus the traffic source) on the other side of
the tap, in the same namespace.

The appliance runs under `ip netns exec`, so net_tap creates its interface directly inside the
namespace: nothing appears in the host's namespace, and net_tap's own ioctls and netlink calls
(by interface name, in the caller's namespace) keep working, which they would not if the
interface were moved into the namespace after the port started. The peer starts first (scapy's
import takes a second or two), waits for the interface and answers the appliance's start-up ARP
for the gateway.

Needs root (network namespaces, AF_PACKET). Tests skip with the reason otherwise.
"""

import json
import os
import pathlib
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import CONDUIT, ROOT

HERE = pathlib.Path(__file__).resolve().parent
PEER = HERE / "peer.py"
APP_MAC = "02:00:00:00:c0:01"  # the appliance's port (net_tap0, mac=...)
PEER_MAC = "02:00:00:00:00:01"  # the gateway's, i.e. the peer's


def skip_reason():
    if os.geteuid() != 0:
        return "needs root: network namespaces and AF_PACKET sockets"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip netns`)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns` is not usable here: {probe.stderr.strip()}"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun for net_tap"
    if not os.path.exists(CONDUIT):
        return f"no conduit binary at {CONDUIT} (build it, or set CONDUIT_BIN)"
    return None


needs_netns = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def eal_mem_args():
    """scripts/eal-mem.sh's choice (hugepages if there are enough, else --no-huge), unless
    CONDUIT_EAL_MEM gives the arguments."""
    if os.environ.get("CONDUIT_EAL_MEM"):
        return os.environ["CONDUIT_EAL_MEM"].split()
    out = subprocess.run(["bash", str(ROOT / "scripts" / "eal-mem.sh")], capture_output=True,
                         text=True, check=True).stdout
    return out.split()


class TapLab:
    _counter = 0

    def __init__(self, tmp: pathlib.Path):
        TapLab._counter += 1
        n = TapLab._counter
        self.tmp = tmp
        self.ns = f"cnd-{os.getpid()}-{n}"
        self.iface = f"ctap{os.getpid() % 100000}{n}"[:15]
        self.prefix = f"lab-{os.getpid()}-{n}"
        self.config = tmp / "conduit.yaml"
        self.log_path = tmp / "conduit.log"
        self.peer_err = tmp / "peer.stderr"
        self.app = None
        self.peer = None
        self.lines = queue.Queue()
        self.ns_made = False
        self.info = {}

    # -- set-up ------------------------------------------------------------------------------
    def _ip(self, *args):
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def start(self, config_text: str, flows="172.16", per_prefix=32, rate=400.0,
              ready_timeout=60.0, device="tap", workers=1):
        """`device`: "tap" (net_tap creates the interface the peer uses) or "af_packet"
        (net_af_packet on one end of a veth pair, the peer on the other; the config's
        `net_tap0` is renamed `net_af_packet0`). `workers` > 1 gives the device that many queue
        pairs and the appliance that many worker lcores (all on CPU 1: this checks correctness,
        not speed); the config's `workers` must list lcores 1..=workers."""
        if device == "af_packet":
            config_text = config_text.replace("net_tap0", "net_af_packet0")
        self.config.write_text(config_text)
        made = subprocess.run(["ip", "netns", "add", self.ns], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
        self.ns_made = True
        self._ip("-n", self.ns, "link", "set", "lo", "up")
        for key in ("default", "all"):
            subprocess.run(["ip", "netns", "exec", self.ns, "sysctl", "-qw",
                            f"net.ipv6.conf.{key}.disable_ipv6=1"], check=True)
        if device == "af_packet":
            app_iface = self.iface + "a"
            self.iface = self.iface[:14] + "p"
            self._ip("-n", self.ns, "link", "add", app_iface, "type", "veth", "peer", "name",
                     self.iface)
            self._ip("-n", self.ns, "link", "set", app_iface, "address", APP_MAC)
            for i in (app_iface, self.iface):
                self._ip("-n", self.ns, "link", "set", i, "up")
            vdev = f"net_af_packet0,iface={app_iface},qpairs={workers}"
        else:
            vdev = f"net_tap0,iface={self.iface},mac={APP_MAC}"
        lcores = ["-l", "0,1"] if workers == 1 else [
            "--lcores", ",".join(["0@0"] + [f"{w}@1" for w in range(1, workers + 1)])]
        # The peer runs at a higher CPU priority than the rest of a (possibly busy) machine:
        # it stands in for a router, and its latency counts against the probe timeout.
        self.peer = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "nice", "-n", "-10", sys.executable, str(PEER),
             "--iface", self.iface,
             "--config", str(self.config), "--appliance-mac", APP_MAC, "--my-mac", PEER_MAC,
             "--flows", flows, "--flows-per-prefix", str(per_prefix), "--rate", str(rate)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.peer_err, "w"),
            text=True, bufsize=1)
        threading.Thread(target=self._read_peer, daemon=True).start()
        # The appliance resolves the gateway by ARP within 5 s of starting, so the peer (the
        # gateway) must be answering by then; importing scapy alone can take longer on a busy
        # machine. On a veth pair the peer's interface exists already: wait for it to be
        # ready. net_tap's interface is made by the appliance, so there the peer (scapy
        # already imported) binds once it appears.
        if device == "af_packet":
            self.wait_peer_ready(ready_timeout)
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        self.app = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, CONDUIT, *lcores, *eal_mem_args(),
             "--file-prefix", self.prefix, "--no-pci", "--log-level", "lib.eal:warning",
             "--vdev", vdev,
             "--", "--config", str(self.config)],
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, env=env)
        if device != "af_packet":
            self.wait_peer_ready(ready_timeout)
        self.wait_log("forwarding table:", ready_timeout)
        # The tap's queue towards the appliance is the NIC ring of this lab. The kernel's default
        # (500 packets for tun) overflows when a busy shared machine does not schedule the
        # worker for ~1 s at the test's rate; 10000 rides that out. Its drops are still
        # reported (tap_counters) in every loss message.
        self._ip("-n", self.ns, "link", "set", self.iface, "txqueuelen", "10000")
        return self

    def wait_peer_ready(self, timeout: float):
        self.info = self.reply(timeout=timeout)
        assert self.info.get("ready"), f"peer did not start: {self.info}\n{self.peer_stderr()}"

    def _read_peer(self):
        for line in self.peer.stdout:
            self.lines.put(line)
        self.lines.put(None)

    # -- running -----------------------------------------------------------------------------
    def reply(self, timeout=30.0) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"peer silent for {timeout} s\n{self.peer_stderr()}")
        if line is None:
            raise AssertionError(f"peer exited\n{self.peer_stderr()}")
        return json.loads(line)

    def cmd(self, line: str, timeout=30.0) -> dict:
        self.peer.stdin.write(line + "\n")
        self.peer.stdin.flush()
        out = self.reply(timeout)
        assert "error" not in out, out
        return out

    def stats(self) -> dict:
        return self.cmd("stats", timeout=60.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def peer_stderr(self) -> str:
        try:
            return self.peer_err.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def wait_log(self, text: str, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.app.poll() is not None:
                raise AssertionError(f"conduit exited ({self.app.returncode}) before "
                                     f"{text!r}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in conduit's log after {timeout} s:\n{self.log()}")

    def tap_counters(self) -> dict:
        """The kernel's counters of the tap interface (tx = towards the appliance)."""
        out = subprocess.run(["ip", "-n", self.ns, "-s", "-j", "link", "show", self.iface],
                             capture_output=True, text=True)
        if out.returncode != 0:
            return {"error": out.stderr.strip()}
        st = json.loads(out.stdout)[0].get("stats64", {})
        return {d: {k: st.get(d, {}).get(k) for k in ("packets", "dropped", "errors")}
                for d in ("rx", "tx")}

    def diagnostics(self, stats: dict) -> str:
        """What a failure message needs to tell a slow machine from a wrong appliance."""
        keep = lambda d: {k: v[-5:] for k, v in (d or {}).items() if v}  # noqa: E731
        return (f"\n  peer answer latency max (ms) {stats.get('answer_ms_max')}; late answers "
                f"{keep(stats.get('late_answers'))}; gaps between probes (time, s) "
                f"{keep(stats.get('probe_gaps'))}; peer stalls {stats.get('peer_stalls', [])[-5:]};"
                f" peer socket drops {stats.get('socket_drops')}; tap {self.tap_counters()}")

    def alive(self) -> bool:
        return self.app is not None and self.app.poll() is None

    def vm_kib(self, field="VmRSS") -> int:
        """A memory figure of the appliance from /proc/PID/status, in KiB."""
        with open(f"/proc/{self.app.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {field}")

    def rss_kib(self) -> int:
        return self.vm_kib("VmRSS")

    def stop_appliance(self, timeout=60.0):
        """SIGINT (graceful stop with final stats); returns (exit status, log)."""
        if self.app.poll() is None:
            self.app.send_signal(signal.SIGINT)
            try:
                self.app.wait(timeout)
            except subprocess.TimeoutExpired:
                self.app.kill()
                self.app.wait()
                raise AssertionError(f"conduit did not stop within {timeout} s:\n{self.log()}")
        return self.app.returncode, self.log()

    def close(self):
        if self.app is not None and self.app.poll() is None:
            # The test ended early (failed): stop the appliance gracefully so that its final
            # statistics, health transitions and drops are in the captured output.
            try:
                _, log = self.stop_appliance(timeout=30)
            except AssertionError as e:
                log = str(e)
            keep = [l for l in log.splitlines()
                    if " WARN " in l or " ERROR " in l or "->" in l or not l.startswith("[")]
            print("conduit's log (warnings, transitions, final statistics):")
            print("\n".join(keep[-120:]))
        if self.peer is not None and self.peer.poll() is None:
            try:
                self.peer.stdin.write("quit\n")
                self.peer.stdin.flush()
                self.peer.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.peer.kill()
                self.peer.wait()
        if self.app is not None and self.app.poll() is None:
            self.app.kill()
            self.app.wait()
        if self.ns_made:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
            self.ns_made = False


@pytest.fixture
def taplab(tmp_path):
    lab = TapLab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def drain(lab, sent, timeout=5.0):
    """Stats once every packet sent has arrived (or `timeout` passed: then some are lost or
    still queued in a stalled appliance, which the caller's checks report)."""
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.3)
        s = lab.stats()
        if all(s["flows"].get(str(f), {}).get("received", 0) >= n for f, n in enumerate(sent)) \
                or time.monotonic() > deadline:
            return s


# -- reading the peer's flow report ----------------------------------------------------------

def runs(stats, flow):
    return stats["flows"].get(str(flow), {"runs": []})["runs"]


def tunnel_at(stats, flow, t):
    """The tunnel of the last packet of `flow` received at or before time t (None if none)."""
    last = None
    for r in runs(stats, flow):
        if r["t_first"] <= t:
            last = r["tunnel"]
    return last


def first_on(stats, flows, tunnels, after):
    """Earliest time after `after` at which a packet of one of `flows` arrived on one of
    `tunnels` (None if never). Runs are maximal, so a run that starts after `after` is the
    arrival of that flow on that tunnel; a run spanning `after` means it was there already."""
    best = None
    for f in flows:
        for r in runs(stats, f):
            if r["tunnel"] in tunnels and r["t_first"] > after:
                if best is None or r["t_first"] < best:
                    best = r["t_first"]
                break
    return best


def tunnels_between(stats, flow, t0, t1):
    """Tunnels that carried packets of `flow` between t0 and t1."""
    return {r["tunnel"] for r in runs(stats, flow) if r["t_last"] >= t0 and r["t_first"] <= t1}


def final_mbufs_ok(log: str) -> bool:
    return "mbufs in use after shutdown: 0 of" in log
