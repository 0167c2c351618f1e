//! `dpdk-dumpcap` captures from a running appliance: Conduit registers DPDK's pdump server at
//! start-up, so DPDK's own capture tool, run as a secondary process with the appliance's
//! `--file-prefix`, records what a port receives and what the appliance forwards through it.
//!
//! Multi-process needs hugepages and a shared configuration, unlike the other tests' private
//! `--no-huge --no-shconf` instances: without free hugepages this test is skipped, except under
//! `CI`, where it fails.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use conduit_test_support::frames::{ethernet, udp, Ipv4};

/// The replay config's port MAC (net_pcap0) and gateway MAC.
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const FLOWS: u8 = 40;
const CAPTURE: usize = 200;

fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Plain UDP from the internet to the customer prefix 172.16.0.0/16 (ECMP over t1 and t2).
fn input_frames() -> Vec<Vec<u8>> {
    (1..=FLOWS)
        .map(|i| {
            let (src, dst) = (Ipv4Addr::new(8, 8, 8, i), Ipv4Addr::new(172, 16, 0, i));
            let ip =
                Ipv4::new(src, dst, 17).packet(&udp(src, dst, 50000 + u16::from(i), 50000, b"q"));
            ethernet(PORT_MAC, GATEWAY_MAC, 0x0800, &ip)
        })
        .collect()
}

/// One line per captured frame: outer source, destination, protocol, then (for GRE) the inner
/// source, destination and TTL, as tshark decodes them.
fn decode(capture: &Path) -> Vec<Vec<String>> {
    let out = Command::new("tshark")
        .args(["-r", &capture.display().to_string(), "-T", "fields"])
        .args([
            "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "ip.ttl",
        ])
        .args(["-e", "_ws.malformed", "-E", "separator=;"])
        .output()
        .expect("tshark (Debian package tshark)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect()
}

#[test]
fn dumpcap_captures_what_the_appliance_receives_and_forwards() {
    if free_hugepages() < 64 {
        assert!(
            std::env::var_os("CI").is_none(),
            "capture needs 64 free 2 MiB hugepages (scripts/setup.sh reserves them)"
        );
        eprintln!("skipped: no free hugepages for a multi-process EAL");
        return;
    }
    let dir = scratch("capture");
    let input = dir.join("in.pcap");
    let capture = dir.join("capture.pcapng");
    write_pcap(&input, &input_frames());
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/replay.yaml");
    // A fixed prefix: a later run removes what a crashed one left in /dev/hugepages.
    let prefix = "conduit-capture-test";
    remove_instance_files(prefix);

    // infinite_rx replays the capture endlessly; with no tx_pcap the PMD drops what is sent.
    let appliance = Command::new(CONDUIT)
        .args([
            "-l",
            "0,1",
            "-m",
            "128",
            "--no-pci",
            "--file-prefix",
            prefix,
        ])
        .arg("--vdev")
        .arg(format!(
            "net_pcap0,rx_pcap={},infinite_rx=1",
            input.display()
        ))
        .args(["--", "--config", &config.display().to_string()])
        .args(["--stats-interval", "0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start conduit");

    // dumpcap attaches once the primary's multi-process socket exists; retry until then.
    let deadline = Instant::now() + Duration::from_secs(20);
    let dumpcap = loop {
        let out = Command::new("dpdk-dumpcap")
            .arg(format!("--file-prefix={prefix}"))
            .args(["-i", "net_pcap0", "-c", &CAPTURE.to_string(), "-q"])
            .arg("-w")
            .arg(&capture)
            .output()
            .expect("dpdk-dumpcap (Debian package dpdk)");
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    // Stop as an operator would (SIGTERM); a watchdog kills a process that does not stop.
    let pid = appliance.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    });
    let finished = appliance.wait_with_output().expect("wait for conduit");
    let log = text(&finished);
    remove_instance_files(prefix);
    assert!(
        dumpcap.status.success(),
        "dpdk-dumpcap failed:\n{}\n{}\n{log}",
        String::from_utf8_lossy(&dumpcap.stdout),
        String::from_utf8_lossy(&dumpcap.stderr)
    );
    assert!(finished.status.success(), "{log}");
    assert!(log.contains("packet capture: dpdk-dumpcap"), "{log}");
    assert!(log.contains("mbufs in use after shutdown: 0 of"), "{log}");

    let frames = decode(&capture);
    // dumpcap stops at the first burst that reaches the count.
    assert!(frames.len() >= CAPTURE, "{} frames captured", frames.len());
    let (mut received, mut forwarded) = (0, 0);
    for f in &frames {
        assert!(f[4].is_empty(), "tshark: malformed frame {f:?}");
        let srcs: Vec<&str> = f[0].split(',').collect();
        let dsts: Vec<&str> = f[1].split(',').collect();
        let protos: Vec<&str> = f[2].split(',').collect();
        let ttls: Vec<&str> = f[3].split(',').collect();
        match protos.as_slice() {
            ["17"] => {
                assert!(srcs[0].starts_with("8.8.8.") && dsts[0].starts_with("172.16.0."));
                assert_eq!(ttls, ["64"]);
                received += 1;
            }
            ["47", "17"] => {
                // GRE from the local endpoint to t1 or t2, carrying an input packet, TTL − 1.
                assert_eq!(srcs[0], "203.0.113.1", "{f:?}");
                assert!(["198.51.100.1", "198.51.100.2"].contains(&dsts[0]), "{f:?}");
                assert!(srcs[1].starts_with("8.8.8.") && dsts[1].starts_with("172.16.0."));
                assert_eq!(ttls[1], "63", "{f:?}");
                forwarded += 1;
            }
            _ => panic!("unexpected frame in the capture: {f:?}"),
        }
    }
    assert!(
        received > 0 && forwarded > 0,
        "rx {received}, tx {forwarded}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Removes the hugepage files and runtime directory of EAL instance `prefix`: a multi-process
/// instance leaves them behind on purpose, for secondaries to attach.
fn remove_instance_files(prefix: &str) {
    if let Ok(entries) = std::fs::read_dir("/dev/hugepages") {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{prefix}map_"))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(prefix));
}
