//! Failures and signals at every stage of the appliance's life end the process promptly: a
//! worker that dies stops the appliance with an error, a port that cannot be set up stops the
//! start-up before any worker launches, and SIGINT/SIGTERM while the gateway is being resolved
//! stop it cleanly. Each test measures the time from the event to the exit (at most 2 s).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// The longest a process may take to exit after the event that ends it.
const EXIT_WITHIN: Duration = Duration::from_secs(2);

fn write_config(dir: &Path, body: &str) -> String {
    let p = dir.join("c.yaml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// A running `conduit` whose output lines are collected on threads, each reported with the
/// time it was read so that a test can wait for one and time what follows it.
struct Running {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    readers: Vec<JoinHandle<()>>,
    log: String,
}

impl Running {
    fn spawn(args: &[String], env: &[(&str, &str)]) -> Running {
        let mut cmd = Command::new(CONDUIT);
        cmd.args(args)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run conduit");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let readers = vec![
            forward(BufReader::new(stdout), tx.clone()),
            forward(BufReader::new(stderr), tx),
        ];
        Running {
            child,
            lines,
            readers,
            log: String::new(),
        }
    }

    /// Waits (up to 30 s) for a line containing `needle`; returns when it was read.
    fn wait_for(&mut self, needle: &str) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                    if line.contains(needle) {
                        return at;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        panic!("no line with {needle:?} within 30 s\n{}", self.log);
    }

    /// Waits (up to 30 s, then kills it) for the process to exit; returns its exit code, when it
    /// exited, and everything it printed.
    fn finish(mut self) -> (Option<i32>, Instant, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (status, exited) = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break (status, Instant::now());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let status = self.child.wait().unwrap();
                break (status, Instant::now() + Duration::from_secs(3600));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        for r in self.readers {
            r.join().unwrap();
        }
        while let Ok((_, line)) = self.lines.try_recv() {
            self.log.push_str(&line);
            self.log.push('\n');
        }
        (status.code(), exited, self.log)
    }
}

fn forward(
    r: impl BufRead + Send + 'static,
    tx: mpsc::Sender<(Instant, String)>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in r.lines() {
            let Ok(line) = line else { break };
            let _ = tx.send((Instant::now(), line));
        }
    })
}

fn app_args(mut eal: Vec<String>, vdevs: &[&str], cfg: &str) -> Vec<String> {
    for v in vdevs {
        eal.push("--vdev".into());
        eal.push(v.to_string());
    }
    eal.extend(["--".into(), "--config".into(), cfg.to_string()]);
    eal
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn worker_panic_stops_the_appliance() {
    let dir = scratch("worker-panic");
    let cfg = write_config(
        &dir,
        "dataplane:\n  ports:\n    - device: net_null0\n    - device: net_null1\n  workers: [1, 2]\n  mode: io\nstats:\n  interval_ms: 0\n",
    );
    // Two workers on the machine's first two CPUs; the first panics 500 ms after its launch,
    // the second keeps forwarding until the appliance stops it.
    let mut eal = vec!["--lcores".to_string(), "0@0,1@1,2@1".to_string()];
    eal.extend(conduit_test_support::eal::private_instance("worker-panic"));
    let args = app_args(eal, &["net_null0", "net_null1"], &cfg);
    let mut app = Running::spawn(&args, &[("CONDUIT_TEST_PANIC_WORKER", "500")]);
    let panicked = app.wait_for("panicked at");
    let (code, exited, log) = app.finish();
    let took = exited.saturating_duration_since(panicked);
    eprintln!("exit {:.3} s after the panic", took.as_secs_f64());
    assert!(took < EXIT_WITHIN, "took {took:?}\n{log}");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(
            "conduit: error: worker lcore 1 panicked: test-induced panic (CONDUIT_TEST_PANIC_WORKER)"
        ),
        "{log}"
    );
    assert!(log.contains("stopping (worker lcore 1 ended)"), "{log}");
    // The other worker was stopped and joined: its counters are in the final statistics, and
    // every mbuf came back.
    assert!(log.contains("final statistics"), "{log}");
    assert!(log.contains("lcore 2   rx-packets"), "{log}");
    assert!(log.contains("mbufs in use after shutdown: 0 of"), "{log}");
}

#[test]
fn worker_panic_stops_the_pipeline() {
    let dir = scratch("pipeline-panic");
    let cfg = write_config(
        &dir,
        // No ARP and no probes: net_ring loops what it sends back to its own RX ring, where
        // the dead worker would leave them, out of the pool, for the leak check to report.
        &PIPELINE_CONFIG
            .replace(
                "  port: net_ring0\n",
                "  port: net_ring0\n  mac: \"02:00:00:00:00:fe\"\n",
            )
            .replace(
                "interface_address: 10.255.0.0/31\n",
                "interface_address: 10.255.0.0/31\n    health_check: {enabled: false}\n",
            ),
    );
    let args = app_args(eal_args("pipeline-panic"), &["net_ring0"], &cfg);
    let mut app = Running::spawn(&args, &[("CONDUIT_TEST_PANIC_WORKER", "300")]);
    let panicked = app.wait_for("panicked at");
    let (code, exited, log) = app.finish();
    let took = exited.saturating_duration_since(panicked);
    eprintln!("exit {:.3} s after the panic", took.as_secs_f64());
    assert!(took < EXIT_WITHIN, "took {took:?}\n{log}");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("conduit: error: worker lcore 1 panicked: test-induced panic"),
        "{log}"
    );
    assert!(log.contains("stopping (worker lcore 1 ended)"), "{log}");
    assert!(log.contains("mbufs in use after shutdown: 0 of"), "{log}");
}

const PIPELINE_CONFIG: &str = "dataplane:\n  ports:\n    - device: net_ring0\n      ipv4: 192.0.2.10/24\n  workers: [1]\n  mode: pipeline\nlocal_endpoints: [203.0.113.1]\ngateway:\n  ipv4: 192.0.2.1\n  port: net_ring0\ntunnels:\n  - name: t1\n    kind: gre\n    local: 203.0.113.1\n    remote: 198.51.100.1\n    interface_address: 10.255.0.0/31\nroutes:\n  - {prefix: 172.16.0.0/16, tunnel: t1, priority: 100}\nstats:\n  interval_ms: 0\n";

/// A pipeline over a ring where nobody answers ARP: the appliance waits (up to 5 s) for the
/// gateway's MAC; `sig` during that wait stops it at once and cleanly.
fn signal_while_resolving_the_gateway(sig: &str) {
    let name = format!("arp-{sig}");
    let dir = scratch(&name);
    let cfg = write_config(&dir, PIPELINE_CONFIG);
    let args = app_args(eal_args(&name), &["net_ring0"], &cfg);
    let mut app = Running::spawn(&args, &[]);
    app.wait_for("resolving gateway 192.0.2.1 by ARP");
    // Well into the wait, and well before its 5 s run out.
    std::thread::sleep(Duration::from_millis(700));
    let sent = Instant::now();
    signal(&app.child, sig);
    let (code, exited, log) = app.finish();
    let took = exited.saturating_duration_since(sent);
    eprintln!("exit {:.3} s after SIG{sig}", took.as_secs_f64());
    assert!(took < EXIT_WITHIN, "took {took:?}\n{log}");
    assert_eq!(code, Some(0), "a requested stop is not an error\n{log}");
    assert!(
        log.contains("stopping (signal) during start-up, before any worker was launched"),
        "{log}"
    );
    assert!(!log.contains("did not answer"), "{log}");
    assert!(!log.contains("pipeline over"), "no worker launched\n{log}");
}

#[test]
fn sigterm_while_resolving_the_gateway() {
    signal_while_resolving_the_gateway("TERM");
}

#[test]
fn sigint_while_resolving_the_gateway() {
    signal_while_resolving_the_gateway("INT");
}

/// Every port failure over vdevs happens before the workers launch: a pcap that is not one, or
/// an output in a missing directory, fails the device's probe (see `cli_errors.rs`), and a bonded
/// port without members fails to configure, here. The start-up stops with the port named.
#[test]
fn port_that_cannot_be_set_up() {
    let dir = scratch("bad-port");
    let cfg = write_config(
        &dir,
        "dataplane:\n  ports:\n    - device: net_bonding0\n  workers: [1]\n  mode: io\nstats:\n  interval_ms: 0\n",
    );
    let args = app_args(eal_args("bad-port"), &["net_bonding0,mode=0"], &cfg);
    let started = Instant::now();
    let app = Running::spawn(&args, &[]);
    let (code, exited, log) = app.finish();
    let took = exited.saturating_duration_since(started);
    eprintln!("exit {:.3} s after the start", took.as_secs_f64());
    assert!(took < EXIT_WITHIN, "took {took:?}\n{log}");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("conduit: error: configuring port net_bonding0: rte_eth_dev_configure failed"),
        "{log}"
    );
    assert!(!log.contains("io forwarding"), "no worker launched\n{log}");
}
