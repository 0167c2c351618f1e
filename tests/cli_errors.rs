//! Start-up failures: each gives one clear message and a non-zero exit, and none leaves a
//! half-started dataplane behind.

mod common;

use common::*;

fn config(dir: &std::path::Path, body: &str) -> String {
    let p = dir.join("c.yaml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

const RING_CONFIG: &str =
    "dataplane:\n  ports:\n    - device: net_ring0\n  workers: [1]\nstats:\n  interval_ms: 0\n";

fn with_app(mut eal: Vec<String>, app: &[&str]) -> Vec<String> {
    eal.push("--".into());
    eal.extend(app.iter().map(|s| s.to_string()));
    eal
}

#[test]
fn bad_eal_arguments() {
    let dir = scratch("bad-eal");
    let cfg = config(&dir, RING_CONFIG);
    let mut eal = eal_args("bad-eal");
    eal.push("--no-such-eal-option".into());
    let out = run(&with_app(eal, &["--config", &cfg]));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("conduit: error: EAL initialisation failed"),
        "{log}"
    );
}

#[test]
fn vdev_that_fails_to_probe() {
    let dir = scratch("bad-vdev");
    let cfg = config(
        &dir,
        "dataplane:\n  ports:\n    - device: net_pcap0\n  workers: [1]\n",
    );
    let mut eal = eal_args("bad-vdev");
    eal.extend([
        "--vdev".into(),
        "net_pcap0,rx_pcap=/nonexistent/in.pcap".into(),
    ]);
    let out = run(&with_app(eal, &["--config", &cfg]));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("conduit: error: port \"net_pcap0\" not found: the device failed to probe or was not given to EAL"),
        "{log}"
    );
}

#[test]
fn configured_port_missing_lists_the_available_ones() {
    let dir = scratch("no-port");
    let cfg = config(
        &dir,
        "dataplane:\n  ports:\n    - device: net_ring7\n  workers: [1]\n",
    );
    let mut eal = eal_args("no-port");
    eal.extend(["--vdev".into(), "net_ring0".into()]);
    let out = run(&with_app(eal, &["--config", &cfg]));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("port \"net_ring7\" not found"), "{log}");
    assert!(log.contains("available ports: net_ring0"), "{log}");
}

#[test]
fn missing_config() {
    let out = run(&with_app(
        eal_args("missing"),
        &["--config", "/nonexistent/conduit.yaml"],
    ));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("conduit: error: /nonexistent/conduit.yaml: cannot read config: No such file or directory"),
        "{log}"
    );
    assert!(
        !log.contains("EAL: Detected"),
        "EAL must not start without a config\n{log}"
    );
}

#[test]
fn unreadable_config() {
    // Root reads any file regardless of mode bits, so "unreadable" is a directory here.
    let dir = scratch("unreadable");
    let path = dir.display().to_string();
    let out = run(&with_app(eal_args("unreadable"), &["--config", &path]));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("{path}: cannot read config: Is a directory")),
        "{log}"
    );
}

#[test]
fn invalid_config_names_file_line_and_field() {
    let dir = scratch("invalid");
    let cfg = config(
        &dir,
        &RING_CONFIG.replace("workers: [1]", "workers: [1]\n  burst: lots"),
    );
    let out = run(&with_app(eal_args("invalid"), &["--config", &cfg]));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains(&format!("conduit: error: {cfg}:5:")), "{log}");
    assert!(log.contains("dataplane.burst: invalid type"), "{log}");
}

#[test]
fn worker_not_enabled_in_eal() {
    let dir = scratch("lcore");
    let cfg = config(
        &dir,
        &RING_CONFIG.replace("workers: [1]", "workers: [1, 5]"),
    );
    let mut eal = eal_args("lcore");
    eal.extend(["--vdev".into(), "net_ring0".into()]);
    let out = run(&with_app(eal, &["--config", &cfg]));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("worker lcore5 is not enabled in EAL"), "{log}");
}

#[test]
fn check_config_needs_no_eal() {
    let dir = scratch("check");
    let cfg = config(&dir, RING_CONFIG);
    let out = run(&["check-config".to_string(), cfg.clone()]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!("{cfg}: ok (1 ports, 1 workers, mode Io)")),
        "{log}"
    );
    assert!(!log.contains("EAL:"), "{log}");

    let bad = config(&dir, &RING_CONFIG.replace("net_ring0", ""));
    let out = run(&["check-config".to_string(), bad.clone()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("dataplane.ports[0].device: empty device name"),
        "{log}"
    );
}

#[test]
fn no_config_argument() {
    let out = run(&with_app(eal_args("noarg"), &[]));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("no configuration given"), "{log}");
}

#[test]
fn default_config_is_valid() {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/default.yaml");
    let out = run(&["check-config".to_string(), cfg.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A Prometheus listen address already in use is a start-up error like any other: it is found
/// before the workers launch, so the appliance exits at once instead of polling forever.
#[test]
fn prometheus_address_in_use() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = scratch("prom-in-use");
    let cfg = config(
        &dir,
        &format!(
            "dataplane:\n  ports:\n    - device: net_null0\n  workers: [1]\n  mode: io\nstats:\n  interval_ms: 0\n  prometheus_listen: {addr}\n"
        ),
    );
    let mut eal = eal_args("prom-in-use");
    eal.extend(["--vdev".into(), "net_null0".into()]);
    let mut child = Command::new(CONDUIT)
        .args(with_app(eal, &["--config", &cfg]))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after 10 s\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "conduit: error: serving Prometheus metrics on {addr}: "
        )),
        "{log}"
    );
    assert!(!log.contains("io forwarding"), "no worker launched\n{log}");
    drop(taken);
}
