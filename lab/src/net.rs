//! The lab's network and processes on one host.
//!
//! ```text
//!   <lab>-gw (gateway namespace: a kernel router)           <lab>-sNN (site NN)           <lab>-lNN
//!   conduit on net_tap: <lab>-tap ── kernel 192.0.2.1 ─┬─ <lab>-sNNg ══ <lab>-sNNu ─ OVS ─ <lab>-sNNl ══ <lab>-lNN
//!   generator (raw socket)                            └─ ... one veth pair per site   bridge <lab>-sNNb
//! ```
//!
//! The appliance runs under `ip netns exec <lab>-gw`, so net_tap creates its interface inside
//! the gateway namespace, whose kernel is the appliance's gateway and routes between it and the
//! sites. Each site is an Open vSwitch userspace datapath (`datapath_type=netdev`, its own
//! ovsdb-server and ovs-vswitchd with a private run directory) that terminates the GRE tunnel,
//! bounces or answers the appliance's health probes with OpenFlow rules and hands customer
//! traffic to a LAN namespace, where nftables counts it per flow. Faults are nftables rules and
//! tbf qdiscs in the gateway namespace.
//!
//! Everything is named after the lab: namespaces `<lab>-*`, links inside them `<lab>-*`, the
//! run directory `/run/conduit-lab/<lab>/` (pid files, OVS databases and sockets, logs), the
//! EAL file prefix `<lab>-app`. `down` finds all of it by name: every process in a lab
//! namespace is killed, the namespaces (and with them every link) deleted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::schedule::FaultState;
use crate::spec::{Generator, Lab, ProbeStyle, Site};

/// The appliance's port MAC (net_tap's `mac=`) and the gateway kernel's MAC on the tap.
pub const APP_MAC: &str = "02:00:00:00:c0:01";
pub const GW_MAC: &str = "02:00:00:00:00:01";
/// UDP source port of flow 0; flow `i` uses `FLOW_PORT_BASE + i`.
pub const FLOW_PORT_BASE: u16 = 20000;
pub const FLOW_DST_PORT: u16 = 9;

pub fn run_dir(lab: &str) -> PathBuf {
    PathBuf::from("/run/conduit-lab").join(lab)
}
pub fn gw_ns(lab: &str) -> String {
    format!("{lab}-gw")
}
pub fn site_ns(lab: &str, i: usize) -> String {
    format!("{lab}-s{i:02}")
}
pub fn lan_ns(lab: &str, i: usize) -> String {
    format!("{lab}-l{i:02}")
}
pub fn tap(lab: &str) -> String {
    format!("{lab}-tap")
}
/// The gateway's end of site `i`'s link.
pub fn gw_link(lab: &str, i: usize) -> String {
    format!("{lab}-s{i:02}g")
}
fn uplink(lab: &str, i: usize) -> String {
    format!("{lab}-s{i:02}u")
}
fn lan_port(lab: &str, i: usize) -> String {
    format!("{lab}-s{i:02}l")
}
fn bridge(lab: &str, i: usize) -> String {
    format!("{lab}-s{i:02}b")
}
pub fn eal_prefix(lab: &str) -> String {
    format!("{lab}-app")
}
fn link_net(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    let i = i as u8;
    (Ipv4Addr::new(100, 64, i, 1), Ipv4Addr::new(100, 64, i, 2))
}
fn mac(i: usize, last: u8) -> String {
    format!("02:00:00:fe:{:02x}:{last:02x}", i as u8)
}

/// Runs a command; its stdout, or an error with its stderr.
pub fn cmd(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside a namespace.
pub fn ns_cmd(ns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    cmd(&all)
}

fn ns_ovs(ns: &str, dir: &Path, args: &[&str]) -> Result<String> {
    let d = dir.to_string_lossy();
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .env("OVS_RUNDIR", &*d)
        .env("OVS_DBDIR", &*d)
        .env("OVS_LOGDIR", &*d)
        .env("OVS_SYSCONFDIR", &*d)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` in {ns} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What this host lacks for a lab sending with `generator`, each with what to install; empty
/// when all is there.
pub fn missing_tools(generator: Generator) -> Vec<String> {
    let mut v = Vec::new();
    let have = |p: &str| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"]
            .iter()
            .any(|d| Path::new(d).join(p).exists())
    };
    for (tool, pkg) in [
        ("ip", "iproute2"),
        ("tc", "iproute2"),
        ("nft", "nftables"),
        ("ovs-vswitchd", "openvswitch-switch"),
        ("ovsdb-server", "openvswitch-switch"),
        ("ovs-vsctl", "openvswitch-switch"),
        ("ovs-ofctl", "openvswitch-common"),
        ("ovsdb-tool", "openvswitch-common"),
    ]
    .into_iter()
    .chain(match generator {
        Generator::Builtin => None,
        Generator::Trafgen => Some(("trafgen", "netsniff-ng")),
        Generator::Tcpreplay => Some(("tcpreplay", "tcpreplay")),
    }) {
        if !have(tool) {
            v.push(format!("{tool} (Debian package {pkg})"));
        }
    }
    if !Path::new("/usr/share/openvswitch/vswitch.ovsschema").exists() {
        v.push("/usr/share/openvswitch/vswitch.ovsschema (openvswitch-common)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        v.push("/dev/net/tun (the tun module) for net_tap".into());
    }
    v
}

/// Namespaces of the lab that exist now.
pub fn lab_namespaces(lab: &str) -> Vec<String> {
    let out = cmd(&["ip", "netns", "list"]).unwrap_or_default();
    let prefix = format!("{lab}-");
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

fn ns_pids(ns: &str) -> Vec<i32> {
    cmd(&["ip", "netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Processes whose command line names the lab's run directory or EAL prefix (in any
/// namespace), besides this process.
pub fn lab_processes(lab: &str) -> Vec<(i32, String)> {
    let dir = format!("{}/", run_dir(lab).display());
    let prefix = format!("--file-prefix\0{}\0", eal_prefix(lab));
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let c = String::from_utf8_lossy(&raw).into_owned();
        if c.contains(&dir) || c.contains(&prefix) {
            out.push((pid, c.replace('\0', " ").trim().to_string()));
        }
    }
    out
}

fn kill(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Removes everything of the lab `lab`: the runner of a `run` in progress, every process in
/// its namespaces or naming its run directory, the namespaces (and their links), the run
/// directory and the appliance's EAL runtime directory. Returns what it removed.
pub fn down(lab: &str) -> Vec<String> {
    let mut done = Vec::new();
    let dir = run_dir(lab);
    let me = std::process::id() as i32;
    if let Ok(p) = std::fs::read_to_string(dir.join("runner.pid")) {
        if let Ok(pid) = p.trim().parse::<i32>() {
            if pid != me && alive(pid) {
                kill(pid, "-TERM");
                let until = Instant::now() + Duration::from_secs(5);
                while alive(pid) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50));
                }
                done.push(format!("runner {pid}"));
            }
        }
    }
    let namespaces = lab_namespaces(lab);
    let mut pids: Vec<i32> = namespaces.iter().flat_map(|n| ns_pids(n)).collect();
    pids.extend(lab_processes(lab).into_iter().map(|p| p.0));
    pids.retain(|&p| p != me);
    pids.sort_unstable();
    pids.dedup();
    for &p in &pids {
        kill(p, "-TERM");
    }
    let until = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &p in &pids {
        if alive(p) {
            kill(p, "-KILL");
        }
    }
    if !pids.is_empty() {
        done.push(format!("{} processes", pids.len()));
    }
    for n in &namespaces {
        if cmd(&["ip", "netns", "del", n]).is_ok() {
            done.push(format!("netns {n}"));
        }
    }
    for d in [dir, PathBuf::from("/var/run/dpdk").join(eal_prefix(lab))] {
        if d.exists() && std::fs::remove_dir_all(&d).is_ok() {
            done.push(d.display().to_string());
        }
    }
    done
}

fn add_ns(name: &str) -> Result<()> {
    cmd(&["ip", "netns", "add", name])?;
    cmd(&["ip", "-n", name, "link", "set", "lo", "up"])?;
    for k in ["default", "all"] {
        ns_cmd(
            name,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
            ],
        )?;
    }
    Ok(())
}

/// The EAL memory arguments: hugepages in memory-only mode when 256 MiB of them are free and
/// mounted, otherwise ordinary memory (as scripts/eal-mem.sh chooses); `CONDUIT_EAL_MEM`
/// overrides.
fn eal_mem_args() -> Vec<String> {
    if let Ok(v) = std::env::var("CONDUIT_EAL_MEM") {
        return v.split_whitespace().map(str::to_string).collect();
    }
    let free = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("HugePages_Free:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    let mounted = Command::new("mountpoint")
        .args(["-q", "/dev/hugepages"])
        .status()
        .is_ok_and(|s| s.success());
    if free >= 128 && mounted {
        vec!["--in-memory".into()]
    } else {
        ["--no-huge", "-m", "512", "--no-shconf"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

/// The running appliance.
pub struct Appliance {
    pub child: Child,
    pub log: PathBuf,
}

/// The appliance binary: the lab's `binary`, `$CONDUIT_BIN`, or `conduit` next to this binary.
pub fn appliance_binary(lab: &Lab) -> Result<PathBuf> {
    if let Some(b) = &lab.spec.appliance.binary {
        return Ok(b.clone());
    }
    if let Ok(b) = std::env::var("CONDUIT_BIN") {
        return Ok(PathBuf::from(b));
    }
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name("conduit");
    if sibling.exists() {
        return Ok(sibling);
    }
    Err(anyhow!(
        "no appliance binary: build it (`cargo build --bin conduit`), set CONDUIT_BIN or the \
         lab's appliance.binary"
    ))
}

/// Starts the appliance in the gateway namespace and makes the namespace its gateway: the tap
/// gets the gateway's MAC and address (quickly: the appliance asks for the gateway with ARP for
/// 5 s), routes to the local endpoints and customer prefixes point at the appliance.
pub fn start_appliance(lab: &Lab, run_no: u32) -> Result<Appliance> {
    let name = &lab.spec.name;
    let dir = run_dir(name);
    let ns = gw_ns(name);
    let cfg = &lab.appliance;
    let (_, port) = cfg
        .gateway_port()
        .ok_or_else(|| anyhow!("no gateway port"))?;
    let gw = cfg.gateway.as_ref().ok_or_else(|| anyhow!("no gateway"))?;
    let app_net = port
        .ipv4
        .ok_or_else(|| anyhow!("the gateway port has no ipv4 address"))?;
    let config_path = dir.join("appliance.yaml");
    let bin = appliance_binary(lab)?;
    let log = dir.join(format!("conduit-{run_no}.log"));
    let workers: Vec<String> = cfg
        .dataplane
        .workers
        .iter()
        .map(|w| w.to_string())
        .collect();
    let lcores = format!("0,{}", workers.join(","));
    let mut args: Vec<String> = vec![
        "netns".into(),
        "exec".into(),
        ns.clone(),
        bin.to_string_lossy().into_owned(),
        "-l".into(),
        lcores,
    ];
    args.extend(eal_mem_args());
    args.extend(
        [
            "--file-prefix",
            &eal_prefix(name),
            "--no-pci",
            "--log-level",
            "lib.eal:warning",
            "--vdev",
            &format!("{},iface={},mac={APP_MAC}", port.device, tap(name)),
            "--",
            "--config",
            &config_path.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let out = std::fs::File::create(&log)?;
    let err = out.try_clone()?;
    use std::os::unix::process::CommandExt;
    let child = Command::new("ip")
        .args(&args)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: a terminal's Ctrl-C reaches the runner, which stops it.
        .process_group(0)
        .spawn()
        .context("cannot start the appliance")?;
    std::fs::write(dir.join("conduit.pid"), child.id().to_string())?;
    let mut app = Appliance { child, log };
    let t = tap(name);
    let until = Instant::now() + Duration::from_secs(30);
    while cmd(&["ip", "-n", &ns, "link", "show", &t]).is_err() {
        if let Some(st) = app.child.try_wait()? {
            bail!(
                "the appliance exited ({st}) before its tap appeared:\n{}",
                app.tail(30)
            );
        }
        if Instant::now() > until {
            bail!("no {t} in {ns} after 30 s:\n{}", app.tail(30));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let gw_cidr = format!("{}/{}", gw.ipv4, app_net.prefix_len());
    // The kernel's side of the tap must not share the appliance's MAC (net_tap gives it the
    // same one), or the appliance would resolve the gateway to itself.
    cmd(&["ip", "-n", &ns, "link", "set", &t, "address", GW_MAC])?;
    cmd(&["ip", "-n", &ns, "addr", "add", &gw_cidr, "dev", &t])?;
    cmd(&[
        "ip",
        "-n",
        &ns,
        "link",
        "set",
        &t,
        "up",
        "txqueuelen",
        "10000",
    ])?;
    let app_ip = app_net.addr().to_string();
    let mut prefixes: Vec<String> = cfg
        .local_endpoints
        .iter()
        .map(|e| format!("{e}/32"))
        .collect();
    prefixes.extend(
        cfg.routes
            .iter()
            .map(|r| format!("{}/{}", r.prefix.network(), r.prefix.prefix_len())),
    );
    prefixes.sort();
    prefixes.dedup();
    for p in prefixes {
        cmd(&[
            "ip", "-n", &ns, "route", "replace", &p, "via", &app_ip, "dev", &t,
        ])?;
    }
    app.wait_log("forwarding table:", Duration::from_secs(30))?;
    Ok(app)
}

impl Appliance {
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn tail(&self, n: usize) -> String {
        let t = self.text();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn wait_log(&mut self, text: &str, timeout: Duration) -> Result<()> {
        let until = Instant::now() + timeout;
        loop {
            if self.text().contains(text) {
                return Ok(());
            }
            if let Some(st) = self.child.try_wait()? {
                bail!("the appliance exited ({st}):\n{}", self.tail(30));
            }
            if Instant::now() > until {
                bail!(
                    "no {text:?} in the appliance's log after {timeout:?}:\n{}",
                    self.tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        kill(self.child.id() as i32, sig);
    }

    /// SIGTERM (graceful stop with final statistics), SIGKILL after `timeout`.
    pub fn stop(&mut self, timeout: Duration) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        self.signal("-TERM");
        let until = Instant::now() + timeout;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > until {
                self.child.kill()?;
                self.child.wait()?;
                bail!("the appliance did not stop within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

/// The gateway namespace: forwarding on, one veth pair towards each site.
fn gateway(lab: &Lab) -> Result<()> {
    let name = &lab.spec.name;
    let ns = gw_ns(name);
    add_ns(&ns)?;
    for k in [
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    ] {
        ns_cmd(&ns, &["sysctl", "-qw", k])?;
    }
    Ok(())
}

/// One site: its namespace and link to the gateway, its OVS bridge with the GRE port and the
/// OpenFlow rules, its LAN namespace with per-flow counters.
fn site(lab: &Lab, s: &Site, flows: usize) -> Result<()> {
    let name = &lab.spec.name;
    let i = s.index;
    let (gns, sns, lns) = (gw_ns(name), site_ns(name, i), lan_ns(name, i));
    let (g, u, l, lp, br) = (
        gw_link(name, i),
        uplink(name, i),
        lan_ns(name, i),
        lan_port(name, i),
        bridge(name, i),
    );
    let (gw_ip, site_ip) = link_net(i);
    let (gmac, bmac, lmac) = (mac(i, 1), mac(i, 2), mac(i, 3));
    add_ns(&sns)?;
    add_ns(&lns)?;
    // The veths are created directly in their namespaces: nothing of the lab in the host's.
    cmd(&[
        "ip", "link", "add", &g, "netns", &gns, "address", &gmac, "type", "veth", "peer", "name",
        &u, "netns", &sns,
    ])?;
    cmd(&[
        "ip", "link", "add", &lp, "netns", &sns, "type", "veth", "peer", "name", &l, "netns", &lns,
        "address", &lmac,
    ])?;
    cmd(&[
        "ip",
        "-n",
        &gns,
        "addr",
        "add",
        &format!("{gw_ip}/30"),
        "dev",
        &g,
    ])?;
    cmd(&["ip", "-n", &gns, "link", "set", &g, "up"])?;
    let mut gw_routes = vec![format!("{}/32", s.endpoint)];
    if s.target != s.endpoint {
        gw_routes.push(format!("{}/32", s.target));
    }
    for r in &gw_routes {
        cmd(&[
            "ip",
            "-n",
            &gns,
            "route",
            "replace",
            r,
            "via",
            &site_ip.to_string(),
        ])?;
    }
    for d in [&u, &lp] {
        cmd(&["ip", "-n", &sns, "link", "set", d, "up"])?;
    }
    cmd(&["ip", "-n", &lns, "link", "set", &l, "up"])?;
    // The uplink and the LAN port belong to OVS: the site's kernel must neither answer ARP on
    // them nor take their IP packets (it has no GRE and would answer "protocol unreachable").
    for k in [
        "net.ipv4.conf.all.arp_ignore=1",
        "net.ipv4.conf.default.arp_ignore=1",
    ] {
        ns_cmd(&sns, &["sysctl", "-qw", k])?;
    }
    let ruleset = format!(
        "table inet {name}site {{\n chain pre {{\n  type filter hook prerouting priority -300; \
         policy accept;\n  iifname {{ \"{u}\", \"{lp}\" }} drop\n }}\n}}\n"
    );
    nft(&sns, &ruleset)?;

    // Open vSwitch, with private run directories inside the lab's.
    let dir = run_dir(name).join(format!("s{i:02}"));
    std::fs::create_dir_all(&dir)?;
    let d = dir.to_string_lossy().into_owned();
    let db = format!("unix:{d}/db.sock");
    ns_ovs(
        &sns,
        &dir,
        &[
            "ovsdb-tool",
            "create",
            &format!("{d}/conf.db"),
            "/usr/share/openvswitch/vswitch.ovsschema",
        ],
    )?;
    ns_ovs(
        &sns,
        &dir,
        &[
            "ovsdb-server",
            &format!("{d}/conf.db"),
            &format!("--remote=punix:{d}/db.sock"),
            &format!("--pidfile={d}/ovsdb-server.pid"),
            &format!("--unixctl={d}/ovsdb-server.ctl"),
            &format!("--log-file={d}/ovsdb-server.log"),
            "--detach",
            "--no-chdir",
        ],
    )?;
    ns_ovs(
        &sns,
        &dir,
        &["ovs-vsctl", &format!("--db={db}"), "--no-wait", "init"],
    )?;
    ns_ovs(
        &sns,
        &dir,
        &[
            "ovs-vswitchd",
            &db,
            &format!("--pidfile={d}/ovs-vswitchd.pid"),
            &format!("--unixctl={d}/ovs-vswitchd.ctl"),
            &format!("--log-file={d}/ovs-vswitchd.log"),
            "--detach",
            "--no-chdir",
        ],
    )?;
    let mut gre = vec![
        "type=gre".to_string(),
        format!("options:remote_ip={}", s.local),
        format!("options:local_ip={}", s.endpoint),
        "options:packet_type=legacy_l3".to_string(),
    ];
    if let Some(k) = s.key {
        gre.push(format!("options:key={k}"));
    }
    let mut vsctl: Vec<String> = vec![
        "ovs-vsctl".into(),
        format!("--db={db}"),
        "add-br".into(),
        br.clone(),
        "--".into(),
        "set".into(),
        "bridge".into(),
        br.clone(),
        "datapath_type=netdev".into(),
        format!("other_config:hwaddr={bmac}"),
        "fail_mode=secure".into(),
        "--".into(),
        "add-port".into(),
        br.clone(),
        u.clone(),
        "--".into(),
        "add-port".into(),
        br.clone(),
        lp.clone(),
        "--".into(),
        "add-port".into(),
        br.clone(),
        "gre0".into(),
        "--".into(),
        "set".into(),
        "interface".into(),
        "gre0".into(),
    ];
    vsctl.extend(gre);
    let refs: Vec<&str> = vsctl.iter().map(String::as_str).collect();
    ns_ovs(&sns, &dir, &refs)?;
    let until = Instant::now() + Duration::from_secs(10);
    while cmd(&["ip", "-n", &sns, "link", "show", &br]).is_err() {
        if Instant::now() > until {
            bail!("OVS did not create {br} in {sns}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cmd(&[
        "ip",
        "-n",
        &sns,
        "addr",
        "add",
        &format!("{site_ip}/30"),
        "dev",
        &br,
    ])?;
    let mut own = vec![s.endpoint];
    if s.target != s.endpoint {
        own.push(s.target);
    }
    for a in &own {
        cmd(&[
            "ip",
            "-n",
            &sns,
            "addr",
            "add",
            &format!("{a}/32"),
            "dev",
            &br,
        ])?;
    }
    cmd(&["ip", "-n", &sns, "link", "set", &br, "up"])?;
    cmd(&[
        "ip",
        "-n",
        &sns,
        "route",
        "add",
        "default",
        "via",
        &gw_ip.to_string(),
    ])?;

    let flows_text = openflow_rules(lab, s, &u, &lp, &gmac, &bmac, &lmac);
    let f = dir.join("flows.txt");
    std::fs::write(&f, flows_text)?;
    ns_ovs(
        &sns,
        &dir,
        &["ovs-ofctl", "add-flows", &br, &f.to_string_lossy()],
    )?;
    nft(&lns, &lan_counters(name, flows))?;
    Ok(())
}

/// The site's OpenFlow rules. Decapsulated packets carry zero MACs (the GRE port is an L3
/// port), so every rule from the tunnel sets both MACs itself; NORMAL switching serves the
/// plain traffic between the uplink and the bridge's own (kernel) port: ARP, and the GRE
/// packets that the datapath then decapsulates.
pub fn openflow_rules(
    lab: &Lab,
    s: &Site,
    uplink: &str,
    lan: &str,
    gw_mac: &str,
    br_mac: &str,
    lan_mac: &str,
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "priority=0,actions=NORMAL");
    if s.answers.contains(&ProbeStyle::Reply) {
        // Reply probes, unidirectional: the echo reply's destination is one of the appliance's
        // local endpoints; route it back plain, as a customer router would.
        for e in &lab.appliance.local_endpoints {
            let _ = writeln!(
                o,
                "priority=100,in_port=gre0,ip,nw_dst={e},actions=mod_dl_src:{br_mac},mod_dl_dst:{gw_mac},output:{uplink}"
            );
        }
        // Bidirectional: addressed to the appliance's interface address, back into the tunnel.
        let _ = writeln!(
            o,
            "priority=100,in_port=gre0,ip,nw_dst={},actions=in_port",
            s.our_address
        );
    }
    if s.answers.contains(&ProbeStyle::Request) {
        // Echo requests to the site's own addresses: the site's kernel answers them.
        let mut own = vec![s.endpoint];
        if s.target != s.endpoint {
            own.push(s.target);
        }
        for a in own {
            let _ = writeln!(
                o,
                "priority=100,in_port=gre0,ip,nw_dst={a},actions=mod_dl_src:{gw_mac},mod_dl_dst:{br_mac},output:LOCAL"
            );
        }
        // Answers to the appliance's interface address go back inside the tunnel.
        let _ = writeln!(
            o,
            "priority=100,in_port=LOCAL,ip,nw_dst={},actions=output:gre0",
            s.our_address
        );
    }
    for p in &s.lan {
        let _ = writeln!(
            o,
            "priority=50,in_port=gre0,ip,nw_dst={}/{},actions=mod_dl_src:{br_mac},mod_dl_dst:{lan_mac},output:{lan}",
            p.network(),
            p.prefix_len()
        );
    }
    o
}

/// A LAN's per-flow counters: one nftables rule per flow, commented with its index.
pub fn lan_counters(lab: &str, flows: usize) -> String {
    let mut o = format!(
        "table ip {lab}lan {{\n chain pre {{\n  type filter hook prerouting priority -300; policy accept;\n"
    );
    for f in 0..flows {
        let _ = writeln!(
            o,
            "  udp sport {} udp dport {FLOW_DST_PORT} counter comment \"f{f}\"",
            FLOW_PORT_BASE as usize + f
        );
    }
    o.push_str(" }\n}\n");
    o
}

/// Per-flow packet counts of a LAN namespace.
pub fn read_lan_counters(lab: &str, i: usize, flows: usize) -> Result<Vec<u64>> {
    let out = ns_cmd(
        &lan_ns(lab, i),
        &[
            "nft",
            "-j",
            "list",
            "chain",
            "ip",
            &format!("{lab}lan"),
            "pre",
        ],
    )?;
    let mut counts = vec![0u64; flows];
    for (idx, packets) in nft_counters(&out, 'f')? {
        if idx < flows {
            counts[idx] = packets;
        }
    }
    Ok(counts)
}

fn nft(ns: &str, ruleset: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("no stdin"))?
        .write_all(ruleset.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft in {ns} refused:\n{ruleset}\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The gateway's fault rules for the faults in force (replaced as a whole, atomically).
pub fn fault_ruleset(lab: &Lab, st: &FaultState) -> String {
    let name = &lab.spec.name;
    let mut o = format!(
        "table ip {name}fault {{}}\ndelete table ip {name}fault\ntable ip {name}fault {{\n chain faults {{\n  type filter hook forward priority -10; policy accept;\n"
    );
    for (site, f) in &st.sites {
        let Some(s) = lab.site(site) else { continue };
        let g = gw_link(name, s.index);
        if f.down {
            let _ = writeln!(o, "  iifname \"{g}\" drop comment \"{site}: site down\"");
            let _ = writeln!(o, "  oifname \"{g}\" drop comment \"{site}: site down\"");
        }
        if f.blackhole {
            let _ = writeln!(
                o,
                "  ip daddr {} drop comment \"{site}: blackhole\"",
                s.endpoint
            );
        }
        if let Some(p) = f.loss_percent {
            let _ = writeln!(
                o,
                "  ip daddr {} numgen random mod 10000 < {} drop comment \"{site}: loss\"",
                s.endpoint,
                (p * 100.0).round() as u32
            );
        }
    }
    o.push_str(" }\n}\n");
    o
}

/// Puts the faults in force into effect: the nftables table, and tbf on the gateway's links.
pub fn apply_faults(lab: &Lab, st: &FaultState, prev: &FaultState) -> Result<()> {
    let name = &lab.spec.name;
    let ns = gw_ns(name);
    nft(&ns, &fault_ruleset(lab, st))?;
    let rates = |f: &FaultState| -> BTreeMap<String, Option<String>> {
        f.sites
            .iter()
            .map(|(k, v)| (k.clone(), v.rate.clone()))
            .collect()
    };
    let (now, before) = (rates(st), rates(prev));
    for s in &lab.sites {
        let a = now.get(&s.name).cloned().flatten();
        let b = before.get(&s.name).cloned().flatten();
        if a == b {
            continue;
        }
        let g = gw_link(name, s.index);
        match a {
            Some(r) => {
                cmd(&[
                    "ip", "netns", "exec", &ns, "tc", "qdisc", "replace", "dev", &g, "root", "tbf",
                    "rate", &r, "burst", "16kb", "latency", "100ms",
                ])?;
            }
            None => {
                let _ = cmd(&[
                    "ip", "netns", "exec", &ns, "tc", "qdisc", "del", "dev", &g, "root",
                ]);
            }
        }
    }
    Ok(())
}

/// Brings the lab's network up (not the appliance): gateway, sites, OVS, counters.
pub fn up(lab: &Lab, flows: usize) -> Result<()> {
    let name = &lab.spec.name;
    let missing = missing_tools(lab.spec.traffic.generator);
    if !missing.is_empty() {
        bail!(
            "this host lacks what a lab needs: {} (scripts/lab.sh installs it)",
            missing.join("; ")
        );
    }
    let dir = run_dir(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("appliance.yaml"), &lab.appliance_text)?;
    gateway(lab)?;
    for s in &lab.sites {
        site(lab, s, flows).with_context(|| format!("site {}", s.name))?;
    }
    apply_faults(lab, &FaultState::default(), &FaultState::default())?;
    nft(&gw_ns(name), &gw_counters(lab))?;
    Ok(())
}

/// Offset in bits, from the outer IPv4 header, of the inner packet's protocol field in the
/// appliance's GRE packets: a 20-byte outer header (the appliance sends no options), a 4-byte
/// GRE header (8 with a key), then byte 9 of the inner header.
fn inner_protocol_bits(key: bool) -> u32 {
    (20 + if key { 8 } else { 4 } + 9) * 8
}

/// The gateway's per-site counters of data packets (anything but ICMP, so not the probes)
/// the appliance sent into each tunnel. They sit before the fault rules, in their own table,
/// so they count what the appliance sent whatever the faults drop.
pub fn gw_counters(lab: &Lab) -> String {
    let name = &lab.spec.name;
    let mut o = format!(
        "table ip {name}count {{\n chain count {{\n  type filter hook forward priority -20; policy accept;\n"
    );
    for s in &lab.sites {
        let _ = writeln!(
            o,
            "  ip daddr {} ip protocol gre @nh,{},8 != 1 counter comment \"s{}\"",
            s.endpoint,
            inner_protocol_bits(s.key.is_some()),
            s.index
        );
    }
    o.push_str(" }\n}\n");
    o
}

/// Reads the gateway's per-site data counters: site index -> packets.
pub fn read_gw_counters(lab: &str) -> Result<BTreeMap<usize, u64>> {
    let out = ns_cmd(
        &gw_ns(lab),
        &["nft", "-j", "list", "table", "ip", &format!("{lab}count")],
    )?;
    Ok(nft_counters(&out, 's')?.into_iter().collect())
}

/// The packet counters in `nft -j` output whose rule comment is `tag` followed by an index
/// (`f3`, `s12`), as (index, packets).
fn nft_counters(json: &str, tag: char) -> Result<Vec<(usize, u64)>> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    let mut out = Vec::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        let Some(idx) = rule["comment"]
            .as_str()
            .and_then(|c| c.strip_prefix(tag)?.parse::<usize>().ok())
        else {
            continue;
        };
        for e in rule["expr"].as_array().into_iter().flatten() {
            if let Some(p) = e["counter"]["packets"].as_u64() {
                out.push((idx, p));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_counters_by_comment_tag() {
        let json = r#"{"nftables": [
            {"metainfo": {"json_schema_version": 1}},
            {"rule": {"comment": "f0", "expr": [{"match": {}}, {"counter": {"packets": 7, "bytes": 700}}]}},
            {"rule": {"comment": "f12", "expr": [{"counter": {"packets": 3, "bytes": 300}}]}},
            {"rule": {"comment": "s1", "expr": [{"counter": {"packets": 9, "bytes": 900}}]}},
            {"rule": {"expr": [{"counter": {"packets": 1, "bytes": 1}}]}}
        ]}"#;
        assert_eq!(nft_counters(json, 'f').unwrap(), vec![(0, 7), (12, 3)]);
        assert_eq!(nft_counters(json, 's').unwrap(), vec![(1, 9)]);
        assert!(nft_counters("not json", 'f').is_err());
    }
}
