//! SIGINT and SIGTERM stop a running appliance cleanly: exit status 0, final per-port and
//! per-core statistics printed, every mbuf back in the pool.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

fn stop_with(signal: &str) {
    let dir = scratch(&format!("signal-{signal}"));
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        "dataplane:\n  ports:\n    - device: net_null0\n    - device: net_null1\n  workers: [1]\nstats:\n  interval_ms: 200\n",
    )
    .unwrap();
    let mut args = eal_args(&format!("signal-{signal}"));
    args.extend(
        [
            "--vdev",
            "net_null0",
            "--vdev",
            "net_null1",
            "--",
            "--config",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push(cfg.display().to_string());
    let mut child = Command::new(CONDUIT)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stdout on a thread; signal once the first periodic stats line shows it forwarding.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            if line.starts_with("workers rx-pps") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("conduit printed no statistics within 60 s");
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "must stop promptly"
    );
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let log = format!("{}\n--- stderr\n{stderr}", reader.join().unwrap());
    assert_eq!(exit.code(), Some(0), "{log}");
    assert!(log.contains("stopping (signal)"), "{log}");
    assert!(log.contains("workers rx-pps"), "periodic stats\n{log}");
    assert!(log.contains("final statistics"), "{log}");
    assert!(log.contains("port 0 net_null0    rx-packets"), "{log}");
    assert!(log.contains("lcore 1   rx-packets"), "{log}");
    assert!(log.contains("mbufs in use after shutdown: 0 of"), "{log}");
    let total: u64 = log
        .lines()
        .find(|l| l.starts_with("total"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(total > 0, "it forwarded packets before the signal\n{log}");
}

#[test]
fn sigterm_stops_cleanly() {
    stop_with("TERM");
}

#[test]
fn sigint_stops_cleanly() {
    stop_with("INT");
}
