"""Interop tests: packets built by scapy go through the real `conduit` binary (a real EAL over
net_pcap vdevs, replay mode) and what comes out is decoded by scapy and tshark, implementations
Conduit did not write.

The binary is target/debug/conduit unless CONDUIT_BIN says otherwise; scripts/test.sh builds it
(cargo nextest builds the workspace binaries) before running pytest.
"""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONDUIT = os.environ.get("CONDUIT_BIN", str(ROOT / "target" / "debug" / "conduit"))


class Replay:
    """Runs conduit over pcap vdevs: port 0 reads `rx`, every port writes its own tx capture."""

    def __init__(self, tmp: pathlib.Path):
        self.tmp = tmp

    def run(self, config_text: str, packets, ports=2, idle_ms=400, timeout=120):
        from scapy.utils import wrpcap, rdpcap

        cfg = self.tmp / "conduit.yaml"
        cfg.write_text(config_text)
        rx = self.tmp / "in.pcap"
        wrpcap(str(rx), packets)
        args = [CONDUIT, "-l", "0,1", "--no-huge", "-m", "256", "--no-shconf", "--no-pci",
                "--file-prefix", f"interop-{os.getpid()}-{self.tmp.name}",
                "--log-level", "lib.eal:warning"]
        outs = []
        for i in range(ports):
            out = self.tmp / f"out{i}.pcap"
            outs.append(out)
            if i == 0:
                args += ["--vdev", f"net_pcap{i},rx_pcap={rx},tx_pcap={out}"]
            else:
                empty = self.tmp / f"empty{i}.pcap"
                wrpcap(str(empty), [])
                args += ["--vdev", f"net_pcap{i},rx_pcap={empty},tx_pcap={out}"]
        args += ["--", "--config", str(cfg), "--exit-when-idle", str(idle_ms)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        self.log = proc.stdout + proc.stderr
        assert proc.returncode == 0, self.log
        assert "mbufs in use after shutdown: 0 of" in self.log, self.log
        self.outputs = [self.tmp / f"out{i}.pcap" for i in range(ports)]
        return [list(rdpcap(str(o))) for o in outs]


@pytest.fixture
def replay(tmp_path):
    return Replay(tmp_path)


def tshark_malformed(pcap: pathlib.Path) -> list:
    """Frames tshark flags as malformed (or with expert errors) in a capture."""
    proc = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", "_ws.malformed || _ws.expert.severity == error",
         "-T", "fields", "-e", "frame.number", "-e", "_ws.col.Info"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [l for l in proc.stdout.splitlines() if l.strip()]
