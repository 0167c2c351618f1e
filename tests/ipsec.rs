//! IPsec through the appliance binary, over net_pcap and the `crypto_aesni_gcm` cryptodev: plain
//! traffic to a customer prefix leaves as ESP that an independent AES-GCM (the `aes-gcm` crate)
//! opens to the exact inner packet; ESP sealed here under the inbound SA is decapsulated and
//! routed; a bad ICV is counted as `esp_auth_failed`; the tunnel's health probes leave as ESP,
//! and replies sealed by a live peer keep it healthy; a rekey by SIGHUP reaches the running
//! workers; the boot epoch is part of every IV and a
//! start without a persisted one is refused; the example configs with IPsec start; on
//! `crypto_openssl`, which has no CPU crypto, the same traffic goes through the lookaside path.
//! Every mbuf and every cipher session is back at shutdown.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use common::*;
use conduit_test_support::frames::{self, ethernet, udp, Ipv4, ETHERTYPE_IPV4};

/// net_pcap0's MAC (the PMD derives it from the port index) and the gateway's static one.
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const LOCAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const INSTANCE: u16 = 7;
const OUT_SPI: u32 = 0x2000;
const IN_SPI: u32 = 0x1000;
/// 32-byte key then 4-byte salt, as the config writes them.
const OUT_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fcafebabe";
const IN_KEY: &str = "f0e0d0c0b0a090807060504030201000f1e1d1c1b1a191817161514131211101deadbeef";
/// A host on the internet, and one at the customer's site (172.16.0.0/16, through site-a).
const HOST: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);
const CUSTOMER: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 10);

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn config(state_dir: &Path, health: &str) -> String {
    config_on(state_dir, health, "crypto_aesni_gcm")
}

/// [`config`] with `crypto_device: device`.
fn config_on(state_dir: &Path, health: &str, device: &str) -> String {
    format!(
        "dataplane:
  ports:
    - device: net_pcap0
      ipv4: 192.0.2.10/24
  workers: [1]
  mode: pipeline
  burst: {RX_BURST}
local_endpoints: [203.0.113.1]
gateway:
  ipv4: 192.0.2.1
  mac: \"02:00:00:00:00:fe\"
  port: net_pcap0
ipsec:
  instance_id: {INSTANCE}
  crypto_device: {device}
  state_dir: {state}
tunnels:
  - name: site-a
    kind: ipsec
    local: 203.0.113.1
    remote: 198.51.100.1
    interface_address: 10.255.0.0/31
    health_check: {health}
    ipsec:
      outbound: {{spi: {OUT_SPI}, key: 0x{OUT_KEY}}}
      inbound:
        - {{spi: {IN_SPI}, key: 0x{IN_KEY}}}
routes:
  - {{prefix: 172.16.0.0/16, tunnel: site-a, priority: 100}}
stats:
  interval_ms: 0
",
        state = state_dir.display(),
    )
}

/// An ESP packet's fields after opening.
struct Opened {
    spi: u32,
    seq: u32,
    iv: [u8; 8],
    /// The inner packet, padding and trailer removed.
    inner: Vec<u8>,
}

/// Opens the ESP payload `esp` (SPI onwards) under `keymat` with the independent AES-GCM, and
/// checks the RFC 4303 trailer: padding 1, 2, 3, ..., to 4-byte alignment, next header 4.
fn open_esp(keymat: &str, esp: &[u8]) -> Opened {
    let k = hex(keymat);
    let spi = u32::from_be_bytes(esp[0..4].try_into().unwrap());
    let seq = u32::from_be_bytes(esp[4..8].try_into().unwrap());
    let iv: [u8; 8] = esp[8..16].try_into().unwrap();
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&k[32..36]);
    nonce[4..].copy_from_slice(&iv);
    let (body, icv) = esp[16..].split_at(esp.len() - 16 - 16);
    let mut data = body.to_vec();
    Aes256Gcm::new_from_slice(&k[..32])
        .unwrap()
        .decrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &esp[..8],
            &mut data,
            Tag::from_slice(icv),
        )
        .expect("the ICV verifies under the outbound SA's key");
    assert_eq!(
        data.len() % 4,
        0,
        "payload, padding, pad length and next header end 4-byte aligned"
    );
    let next = data.pop().unwrap();
    let pad = usize::from(data.pop().unwrap());
    assert_eq!(next, 4, "next header: IPv4");
    let padding = data.split_off(data.len() - pad);
    assert_eq!(
        padding,
        (1..=pad as u8).collect::<Vec<_>>(),
        "RFC 4303 padding"
    );
    assert!(pad < 4, "the least padding that aligns");
    Opened {
        spi,
        seq,
        iv,
        inner: data,
    }
}

/// `inner` sealed under `keymat` as ESP (SPI onwards), sequence `seq`, RFC 4303 padding.
fn seal_esp(keymat: &str, spi: u32, seq: u32, inner: &[u8]) -> Vec<u8> {
    let k = hex(keymat);
    let mut data = inner.to_vec();
    let pad = (4 - (data.len() + 2) % 4) % 4;
    data.extend((1..=pad as u8).chain([pad as u8, 4]));
    let iv = [0x11, 0x22, 0x33, 0x44, 0, 0, 0, seq as u8];
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&k[32..36]);
    nonce[4..].copy_from_slice(&iv);
    let mut head = Vec::new();
    head.extend(spi.to_be_bytes());
    head.extend(seq.to_be_bytes());
    let tag = Aes256Gcm::new_from_slice(&k[..32])
        .unwrap()
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &head, &mut data)
        .unwrap();
    [&head[..], &iv, &data, tag.as_slice()].concat()
}

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// The frame the gateway sends us carrying `ip`.
fn from_gateway(ip: &[u8]) -> Vec<u8> {
    ethernet(PORT_MAC, GW_MAC, ETHERTYPE_IPV4, ip)
}

/// A test's scratch directory and the files in it: the capture net_pcap reads (`rx`: a file or
/// a FIFO), the one it writes (`tx`), the config and the IPsec state directory.
struct Files {
    dir: PathBuf,
    rx: PathBuf,
    tx: PathBuf,
    cfg: PathBuf,
    state: PathBuf,
    /// The cryptodev the config names and the arguments create.
    device: &'static str,
}

impl Files {
    /// The files of test `name`, its capture read from `rx` in the scratch directory; none is
    /// made yet.
    fn new(name: &str, rx: &str) -> Self {
        let dir = scratch(name);
        Files {
            rx: dir.join(rx),
            tx: dir.join("out.pcap"),
            cfg: dir.join("c.yaml"),
            state: dir.join("state"),
            dir,
            device: "crypto_aesni_gcm",
        }
    }

    /// [`Files::new`] with the state directory made and the config written, the tunnel's
    /// `health_check` being `health`.
    fn configured(name: &str, rx: &str, health: &str) -> Self {
        Files::configured_on(name, rx, health, "crypto_aesni_gcm")
    }

    /// [`Files::configured`] on the cryptodev `device`.
    fn configured_on(name: &str, rx: &str, health: &str, device: &'static str) -> Self {
        let f = Files {
            device,
            ..Files::new(name, rx)
        };
        std::fs::create_dir(&f.state).unwrap();
        std::fs::write(&f.cfg, config_on(&f.state, health, device)).unwrap();
        f
    }

    /// The appliance's arguments (EAL prefix `name`): `--vdev DEVICE` (the device the config
    /// names) and net_pcap over `rx`/`tx`.
    fn args(&self, name: &str, exit_when_idle: bool) -> Vec<String> {
        let mut args = appliance_args(
            name,
            &[self.device.to_string(), pcap_vdev(&self.rx, &self.tx)],
            &self.cfg,
        );
        if exit_when_idle {
            args.extend(["--exit-when-idle".to_string(), "500".to_string()]);
        }
        args
    }
}

/// The appliance running (`RUST_LOG=info`), its stderr read line by line as it comes.
struct Running {
    child: Child,
    lines: Receiver<String>,
    stderr: JoinHandle<String>,
}

impl Running {
    fn start(args: &[String]) -> Self {
        let mut child = Command::new(CONDUIT)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (lines_tx, lines) = std::sync::mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap_or_default();
                let _ = lines_tx.send(line.clone());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        Running {
            child,
            lines,
            stderr,
        }
    }

    /// Waits up to `timeout` for a line of stderr that contains `what`; `false` if none came
    /// (or stderr closed first).
    fn wait_for(&self, what: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(what) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Sends the signal `name` (`TERM`, `HUP`, ...).
    fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
    }

    /// Waits until it exits; returns its exit code and everything it printed.
    fn wait(mut self) -> (Option<i32>, String) {
        let exit = self.child.wait().unwrap();
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let log = format!("{stdout}\n--- stderr\n{}", self.stderr.join().unwrap());
        (exit.code(), log)
    }
}

/// The shutdown checks every clean run passes.
fn assert_clean_shutdown(log: &str) {
    assert!(
        log.contains("mbufs in use after shutdown: 0 of"),
        "every mbuf back in the pool\n{log}"
    );
    assert!(
        log.contains("crypto sessions in use after shutdown: 0"),
        "every cipher session freed before the cryptodev closes\n{log}"
    );
}

/// The frames the traffic tests send from the gateway: `plain` (to the customer prefix, to be
/// sealed), `inner` sealed under the inbound SA with sequence 1 (to be opened), and `inner`
/// sealed with sequence 2 and one ICV bit flipped (to be dropped as esp_auth_failed).
fn traffic_frames(plain: &[u8], inner: &[u8]) -> Vec<Vec<u8>> {
    let esp_in = Ipv4::new(REMOTE, LOCAL, frames::ESP).packet(&seal_esp(IN_KEY, IN_SPI, 1, inner));
    let mut forged = seal_esp(IN_KEY, IN_SPI, 2, inner);
    *forged.last_mut().unwrap() ^= 1;
    let esp_forged = Ipv4::new(REMOTE, LOCAL, frames::ESP).packet(&forged);
    [plain, &esp_in[..], &esp_forged[..]]
        .iter()
        .map(|ip| from_gateway(ip))
        .collect()
}

/// Runs the appliance of `f` until its input is done, checks that it exited cleanly and that its
/// start-up log has `crypto_line` (the device and the path), and returns its output.
fn run_traffic(f: &Files, name: &str, crypto_line: &str) -> String {
    let out = run(&f.args(name, true));
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_clean_shutdown(&log);
    assert!(
        log.contains(crypto_line),
        "the start-up log names the device and the path\n{log}"
    );
    log
}

#[test]
fn traffic_is_sealed_opened_and_authenticated_end_to_end() {
    let name = "ipsec-traffic";
    let f = Files::configured(name, "in.pcap", "{enabled: false}");
    let answer = udp(HOST, CUSTOMER, 53, 4000, b"answer from the internet");
    let question = udp(CUSTOMER, HOST, 4000, 53, b"a question, through the tunnel");
    // 1. Plain, from the internet to the customer prefix: leaves as ESP.
    let to_customer = Ipv4::new(HOST, CUSTOMER, frames::UDP)
        .ident(0x1234)
        .packet(&answer);
    // 2. ESP from the customer's site under the inbound SA: decapsulated, routed plain.
    let from_customer = Ipv4::new(CUSTOMER, HOST, frames::UDP)
        .ident(0x4321)
        .packet(&question);
    // 3. The same with one ICV bit flipped (sequence 2): esp_auth_failed.
    write_pcap(&f.rx, &traffic_frames(&to_customer, &from_customer));
    let log = run_traffic(
        &f,
        name,
        "IPsec: ESP sealed and opened by cryptodev crypto_aesni_gcm (cpu_crypto",
    );
    assert!(
        log.contains("IPsec: boot epoch 1"),
        "a fresh state_dir starts at 1\n{log}"
    );
    assert_eq!(
        std::fs::read_to_string(f.state.join("boot-epoch")).unwrap(),
        "1\n"
    );
    let d = drops(&log);
    assert_eq!(d.get("esp_auth_failed"), Some(&1), "{log}");
    for reason in [
        "esp_no_session",
        "esp_unknown_spi",
        "esp_no_sa",
        "esp_bad_trailer",
    ] {
        assert_eq!(d.get(reason).copied().unwrap_or(0), 0, "{reason}\n{log}");
    }

    let sent = read_pcap(&f.tx);
    assert_eq!(
        sent.len(),
        2,
        "the ESP packet and the decapsulated one\n{log}"
    );
    let mut esp_out = None;
    let mut plain_out = None;
    for frame in &sent {
        assert_eq!(&frame[..6], &GW_MAC, "to the gateway");
        assert_eq!(&frame[6..12], &PORT_MAC, "from our port");
        let ip = ip_of(frame);
        match ip[9] {
            frames::ESP => esp_out = Some(ip.to_vec()),
            frames::UDP => plain_out = Some(ip.to_vec()),
            p => panic!("unexpected protocol {p}"),
        }
    }

    // The ESP packet: from our endpoint to the remote one, under the outbound SA, sequence 1,
    // IV = instance id ‖ boot epoch ‖ sequence number; inside, the packet with TTL − 1.
    let esp_out = esp_out.expect("an ESP packet toward the remote endpoint");
    assert_eq!(
        (addr(&esp_out[12..16]), addr(&esp_out[16..20])),
        (LOCAL, REMOTE)
    );
    let o = open_esp(OUT_KEY, &esp_out[20..]);
    assert_eq!((o.spi, o.seq), (OUT_SPI, 1));
    let mut iv = [0u8; 8];
    iv[..2].copy_from_slice(&INSTANCE.to_be_bytes());
    iv[2..4].copy_from_slice(&1u16.to_be_bytes());
    iv[4..].copy_from_slice(&1u32.to_be_bytes());
    assert_eq!(o.iv, iv, "instance ‖ boot epoch ‖ sequence");
    let expected_inner = Ipv4::new(HOST, CUSTOMER, frames::UDP)
        .ident(0x1234)
        .ttl(63)
        .packet(&answer);
    assert_eq!(o.inner, expected_inner, "the exact inner packet, TTL − 1");

    // The decapsulated packet: the inner one, TTL − 1, to the internet.
    let expected_plain = Ipv4::new(CUSTOMER, HOST, frames::UDP)
        .ident(0x4321)
        .ttl(63)
        .packet(&question);
    assert_eq!(plain_out.expect("the decapsulated packet"), expected_plain);

    // A second start advances the boot epoch, so its IVs differ from the first start's.
    let out = run(&f.args(&format!("{name}-2"), true));
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("IPsec: boot epoch 2"), "{log}");
    let sent = read_pcap(&f.tx);
    let esp = sent
        .iter()
        .map(|f| ip_of(f))
        .find(|ip| ip[9] == frames::ESP)
        .unwrap();
    let o = open_esp(OUT_KEY, &esp[20..]);
    assert_eq!(&o.iv[..4], &[0, INSTANCE as u8, 0, 2]);
    let _ = std::fs::remove_dir_all(&f.dir);
}

/// A PMD without CPU crypto (`crypto_openssl`) takes the lookaside path: one operation at a time
/// enqueued on the worker's own queue pair. The same traffic as above comes out the same.
#[test]
fn the_lookaside_path_seals_and_opens_on_crypto_openssl() {
    let name = "ipsec-lookaside";
    let f = Files::configured_on(name, "in.pcap", "{enabled: false}", "crypto_openssl");
    let answer = udp(HOST, CUSTOMER, 53, 4000, b"answer, sealed by openssl");
    let question = udp(CUSTOMER, HOST, 4000, 53, b"question, opened by openssl");
    let to_customer = Ipv4::new(HOST, CUSTOMER, frames::UDP).packet(&answer);
    let from_customer = Ipv4::new(CUSTOMER, HOST, frames::UDP).packet(&question);
    write_pcap(&f.rx, &traffic_frames(&to_customer, &from_customer));
    // openssl has no CPU crypto: the lookaside path.
    let log = run_traffic(
        &f,
        name,
        "IPsec: ESP sealed and opened by cryptodev crypto_openssl (lookaside",
    );
    assert_eq!(drops(&log).get("esp_auth_failed"), Some(&1), "{log}");
    let sent: Vec<Vec<u8>> = read_pcap(&f.tx).iter().map(|f| ip_of(f).to_vec()).collect();
    assert_eq!(sent.len(), 2, "{log}");
    let esp = sent
        .iter()
        .find(|ip| ip[9] == frames::ESP)
        .expect("ESP out");
    let o = open_esp(OUT_KEY, &esp[20..]);
    assert_eq!((o.spi, o.seq), (OUT_SPI, 1));
    let forwarded = Ipv4::new(HOST, CUSTOMER, frames::UDP)
        .ttl(63)
        .packet(&answer);
    assert_eq!(o.inner, forwarded, "the exact inner packet, TTL − 1");
    let plain = sent
        .iter()
        .find(|ip| ip[9] == frames::UDP)
        .expect("plain out");
    let decapsulated = Ipv4::new(CUSTOMER, HOST, frames::UDP)
        .ttl(63)
        .packet(&question);
    assert_eq!(plain, &decapsulated, "decapsulated, TTL − 1");
    let _ = std::fs::remove_dir_all(&f.dir);
}

/// Runs the appliance until `until` appears in its stderr and `then` more time has passed,
/// then stops it with SIGTERM; returns its exit code and everything it printed.
fn run_then_stop(args: &[String], until: &str, then: Duration) -> (Option<i32>, String) {
    let app = Running::start(args);
    let seen = app.wait_for(until, Duration::from_secs(60));
    if seen {
        std::thread::sleep(then);
    }
    app.signal("TERM");
    let started = Instant::now();
    let (code, log) = app.wait();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "must stop promptly"
    );
    assert!(seen, "never logged {until:?}\n{log}");
    (code, log)
}

#[test]
fn health_probes_of_an_ipsec_tunnel_leave_as_esp() {
    let name = "ipsec-probes";
    let f = Files::configured(name, "in.pcap", "{rate: high}");
    write_pcap(&f.rx, &[]);
    let (code, log) = run_then_stop(
        &f.args(name, false),
        "pipeline over",
        Duration::from_millis(1500),
    );
    assert_eq!(code, Some(0), "{log}");
    assert_clean_shutdown(&log);
    assert!(log.contains("unbuildable 0"), "every probe sealed\n{log}");
    let sent = read_pcap(&f.tx);
    assert!(sent.len() >= 5, "a probe every 100 ms\n{log}");
    let mut seqs = Vec::new();
    for frame in &sent {
        let ip = ip_of(frame);
        assert_eq!(ip[9], frames::ESP, "every probe is ESP");
        assert_eq!((addr(&ip[12..16]), addr(&ip[16..20])), (LOCAL, REMOTE));
        let o = open_esp(OUT_KEY, &ip[20..]);
        assert_eq!(o.spi, OUT_SPI);
        seqs.push(o.seq);
        // A bidirectional reply probe (the IPsec default): from the customer side of the
        // interface subnet to our interface address, so that the customer's router sends it
        // back through the tunnel.
        let inner = &o.inner;
        assert_eq!(frames::checksum(&inner[..20]), 0, "inner header checksum");
        assert_eq!(
            (addr(&inner[12..16]), addr(&inner[16..20])),
            (Ipv4Addr::new(10, 255, 0, 1), Ipv4Addr::new(10, 255, 0, 0)),
            "probe addresses"
        );
        assert_eq!(
            usize::from(u16::from_be_bytes([inner[2], inner[3]])),
            inner.len()
        );
    }
    assert_eq!(
        seqs,
        (1..=seqs.len() as u32).collect::<Vec<_>>(),
        "the control thread numbers from the outbound SA's sequence"
    );
    let _ = std::fs::remove_dir_all(&f.dir);
}

#[test]
fn a_boot_epoch_that_cannot_be_persisted_refuses_the_start() {
    let name = "ipsec-epoch";
    let f = Files::new(name, "in.pcap");
    // A regular file where the directory should be: unwritable even for root.
    let not_a_dir = f.dir.join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    std::fs::write(&f.cfg, config(&not_a_dir.join("state"), "{enabled: false}")).unwrap();
    write_pcap(&f.rx, &[]);
    let out = run(&f.args(name, true));
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("IPsec: refusing to start without a persisted boot epoch"),
        "{log}"
    );
    assert!(!log.contains("pipeline over"), "no worker launched\n{log}");
    let _ = std::fs::remove_dir_all(&f.dir);
}

/// The shipped example configurations with IPsec start (on a null device, the state directory
/// in a scratch directory) and stop cleanly.
fn example_starts(file: &str, edit: impl Fn(String) -> String) {
    let name = format!("ipsec-example-{}", file.trim_end_matches(".yaml"));
    let dir = scratch(&name);
    // Not there yet: the appliance makes it.
    let state = dir.join("var").join("state");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs")
            .join(file),
    )
    .unwrap();
    let text = edit(text)
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("state_dir:") {
                format!("  state_dir: {}", state.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains(&state.display().to_string()));
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, text).unwrap();
    let args = appliance_args(&name, &["net_null0".to_string()], &cfg);
    let (code, log) = run_then_stop(&args, "pipeline over", Duration::from_millis(500));
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("IPsec: ESP sealed and opened by cryptodev crypto_aesni_gcm"),
        "{log}"
    );
    assert_clean_shutdown(&log);
    assert_eq!(
        std::fs::read_to_string(state.join("boot-epoch")).unwrap(),
        "1\n",
        "the missing state directory was made"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_lab_config_starts() {
    // On a null device with a static gateway (nothing answers ARP), no Prometheus port.
    example_starts("lab.yaml", |t| {
        t.replace("net_tap0", "net_null0")
            .replace("# mac: 02:00:5e:00:53:01", "mac: 02:00:5e:00:53:01")
            .lines()
            .filter(|l| !l.contains("prometheus_listen"))
            .collect::<Vec<_>>()
            .join("\n")
    });
}

#[test]
fn the_perf_config_starts() {
    example_starts("perf.yaml", |t| t);
}

/// The complete records of a pcap that is still being written (net_pcap flushes each burst).
fn pcap_records_so_far(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let len = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        if at + 16 + len > data.len() {
            break;
        }
        out.push(data[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    out
}

/// One pcap record (header and frame), written to the FIFO in one `write`.
fn pcap_record(frame: &[u8]) -> Vec<u8> {
    let mut rec = Vec::with_capacity(16 + frame.len());
    rec.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    rec.extend_from_slice(&0u32.to_le_bytes());
    rec.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    rec.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    rec.extend_from_slice(frame);
    rec
}

/// Frames the worker receives per poll (`dataplane.burst`).
const RX_BURST: usize = 32;

/// The customer's router for the probes: net_pcap reads from a FIFO that this test writes live.
/// Every probe that leaves as ESP is opened with the outbound SA and its inner packet sent
/// back sealed with the inbound SA, as the customer's router routes a bidirectional probe
/// addressed to our interface back through the tunnel; the replies keep the tunnel healthy.
/// (Frames of an unused EtherType fill each receive burst: net_pcap's read of a FIFO blocks
/// until a burst is complete.)
#[test]
fn probe_replies_sealed_by_the_peer_keep_the_tunnel_healthy() {
    use std::io::Write;
    let name = "ipsec-replies";
    let f = Files::configured(name, "in.fifo", "{rate: high}");
    mkfifo(&f.rx);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peer = {
        let (rx, tx, stop) = (f.rx.clone(), f.tx.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            // Blocks until net_pcap opens the FIFO for reading.
            let mut fifo = std::fs::OpenOptions::new().write(true).open(&rx).unwrap();
            fifo.write_all(&pcap_header()).unwrap();
            let mut answered = 0;
            let mut seq = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = pcap_records_so_far(&tx);
                let mut replies = Vec::new();
                for frame in sent.iter().skip(answered) {
                    let ip = ip_of(frame);
                    assert_eq!(ip[9], frames::ESP, "probes are ESP");
                    let o = open_esp(OUT_KEY, &ip[20..]);
                    seq += 1;
                    let back = Ipv4::new(REMOTE, LOCAL, frames::ESP)
                        .packet(&seal_esp(IN_KEY, IN_SPI, seq, &o.inner));
                    replies.push(from_gateway(&back));
                }
                answered = sent.len();
                if fifo.write_all(&burst_of(&replies)).is_err() {
                    return seq;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            // Dropping the FIFO's writer ends net_pcap's read: the worker sees its stop flag.
            seq
        })
    };
    let app = Running::start(&f.args(name, false));
    std::thread::sleep(Duration::from_millis(2500));
    app.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let replies = peer.join().unwrap();
    let (code, log) = app.wait();
    assert_eq!(code, Some(0), "{log}");
    assert_clean_shutdown(&log);
    assert!(replies >= 10, "the peer answered {replies} probes\n{log}");
    let health = log
        .lines()
        .find(|l| l.starts_with("health") && l.contains("site-a"))
        .unwrap_or_else(|| panic!("no health line\n{log}"));
    let fields: Vec<&str> = health.split_whitespace().collect();
    assert_eq!(fields[2], "healthy", "{health}\n{log}");
    assert!(health.contains("changes 0"), "{health}\n{log}");
    let got: u64 = fields[fields.iter().position(|f| *f == "replies").unwrap() + 1]
        .parse()
        .unwrap();
    assert!(got >= 10, "replies counted by the plane\n{log}");
    let _ = std::fs::remove_dir_all(&f.dir);
}

/// The pcap file header net_pcap reads first.
fn pcap_header() -> Vec<u8> {
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    hdr
}

/// `frames` and then frames of an unused EtherType up to a whole number of receive bursts (at
/// least one), as one write: net_pcap reads a whole receive burst before it returns.
fn burst_of(frames: &[Vec<u8>]) -> Vec<u8> {
    let filler = ethernet(PORT_MAC, GW_MAC, 0x88b5, &[0; 46]);
    let records = frames.len().div_ceil(RX_BURST).max(1) * RX_BURST;
    let mut batch: Vec<u8> = frames.iter().flat_map(|f| pcap_record(f)).collect();
    for _ in frames.len()..records {
        batch.extend(pcap_record(&filler));
    }
    batch
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// Waits (up to 20 s) until `path` holds at least `n` complete records.
fn wait_for_records(path: &Path, n: usize) -> Vec<Vec<u8>> {
    let start = Instant::now();
    loop {
        let got = pcap_records_so_far(path);
        if got.len() >= n || start.elapsed() > Duration::from_secs(20) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A make-before-break rekey by SIGHUP: the reload adds an inbound SA and switches the outbound
/// one; the workers pick the new SAs up from the published context (new sessions, the new
/// SPI's sequence numbers from 1), with nothing restarted.
#[test]
fn a_rekey_by_reload_takes_effect_on_the_running_workers() {
    use std::io::Write;
    const NEW_OUT_SPI: u32 = 0x2001;
    const NEW_IN_SPI: u32 = 0x1001;
    const NEW_OUT_KEY: &str =
        "aa0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0badcafe";
    const NEW_IN_KEY: &str =
        "bbe0d0c0b0a090807060504030201000f1e1d1c1b1a191817161514131211101feedf00d";
    let name = "ipsec-rekey";
    let f = Files::new(name, "in.fifo");
    let before = config(&f.state, "{enabled: false}");
    std::fs::write(&f.cfg, &before).unwrap();
    mkfifo(&f.rx);
    let opener = {
        let rx = f.rx.clone();
        std::thread::spawn(move || std::fs::OpenOptions::new().write(true).open(rx).unwrap())
    };
    let app = Running::start(&f.args(name, false));
    let mut fifo = opener.join().unwrap();
    fifo.write_all(&pcap_header()).unwrap();
    assert!(app.wait_for("pipeline over", Duration::from_secs(30)));
    let to_customer = udp(HOST, CUSTOMER, 53, 4000, b"to the customer");
    let from_customer = udp(CUSTOMER, HOST, 4000, 53, b"under the new key");
    let outbound = |ident: u16| {
        Ipv4::new(HOST, CUSTOMER, frames::UDP)
            .ident(ident)
            .packet(&to_customer)
    };

    // Before the reload: the first outbound SA.
    fifo.write_all(&burst_of(&[from_gateway(&outbound(1))]))
        .unwrap();
    let sent = wait_for_records(&f.tx, 1);
    assert_eq!(sent.len(), 1);

    // The rekey: a new inbound SA beside the old one, and a new outbound SA.
    let after = before
        .replace(
            &format!("outbound: {{spi: {OUT_SPI}, key: 0x{OUT_KEY}}}"),
            &format!("outbound: {{spi: {NEW_OUT_SPI}, key: 0x{NEW_OUT_KEY}}}"),
        )
        .replace(
            &format!("        - {{spi: {IN_SPI}, key: 0x{IN_KEY}}}\n"),
            &format!(
                "        - {{spi: {IN_SPI}, key: 0x{IN_KEY}}}\n        - {{spi: {NEW_IN_SPI}, key: 0x{NEW_IN_KEY}}}\n"
            ),
        );
    assert_ne!(after, before);
    assert!(after.contains(NEW_IN_KEY));
    std::fs::write(&f.cfg, &after).unwrap();
    app.signal("HUP");
    let reloaded = app.wait_for("reloaded", Duration::from_secs(30));
    // One burst for the worker to read the new context before the packets that need it.
    fifo.write_all(&burst_of(&[])).unwrap();
    let esp_new = Ipv4::new(REMOTE, LOCAL, frames::ESP).packet(&seal_esp(
        NEW_IN_KEY,
        NEW_IN_SPI,
        1,
        &Ipv4::new(CUSTOMER, HOST, frames::UDP).packet(&from_customer),
    ));
    fifo.write_all(&burst_of(&[
        from_gateway(&outbound(2)),
        from_gateway(&esp_new),
    ]))
    .unwrap();
    let sent = wait_for_records(&f.tx, 3);
    app.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    drop(fifo);
    let (code, log) = app.wait();
    assert!(reloaded, "{log}");
    assert_eq!(code, Some(0), "{log}");
    assert_clean_shutdown(&log);
    assert_eq!(sent.len(), 3, "{log}");

    let first = open_esp(OUT_KEY, &ip_of(&sent[0])[20..]);
    assert_eq!((first.spi, first.seq), (OUT_SPI, 1));
    assert_eq!(
        first.inner,
        Ipv4::new(HOST, CUSTOMER, frames::UDP)
            .ident(1)
            .ttl(63)
            .packet(&to_customer)
    );
    let mut esp = None;
    let mut plain = None;
    for frame in &sent[1..] {
        let ip = ip_of(frame);
        if ip[9] == frames::ESP {
            esp = Some(ip.to_vec());
        } else {
            plain = Some(ip.to_vec());
        }
    }
    let second = open_esp(NEW_OUT_KEY, &esp.expect("ESP after the rekey")[20..]);
    assert_eq!(
        (second.spi, second.seq),
        (NEW_OUT_SPI, 1),
        "the new outbound SA numbers from 1"
    );
    assert_eq!(
        second.inner,
        Ipv4::new(HOST, CUSTOMER, frames::UDP)
            .ident(2)
            .ttl(63)
            .packet(&to_customer)
    );
    assert_eq!(
        plain.expect("ESP under the new inbound SA, decapsulated"),
        Ipv4::new(CUSTOMER, HOST, frames::UDP)
            .ttl(63)
            .packet(&from_customer)
    );
    let _ = std::fs::remove_dir_all(&f.dir);
}
