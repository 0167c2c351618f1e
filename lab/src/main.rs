//! `conduit-lab`: YAML-driven labs around a running Conduit.
//!
//! `conduit-lab run LAB.yaml` brings the lab up in network namespaces on this host (the
//! appliance on net_tap behind a kernel gateway, customer sites terminated by Open vSwitch),
//! waits for every tunnel to be healthy, sends the lab's traffic, applies its fault schedule
//! while showing per-tunnel state and rate, prints a report (timeline, detection and steer
//! times, loss per flow class, ECMP spread, a PNG plot) and takes everything down again.
//! `up`, `status` and `down` do the parts by hand; `down` removes a lab by its name even after
//! a crash. `check` only validates the file.

mod applog;
mod font;
mod gen;
mod net;
mod report;
mod schedule;
mod spec;
mod telemetry;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};

use report::{Measurements, Report, Sample, TunnelSample};
use schedule::FaultState;
use spec::{FaultKind, Lab};
use telemetry::Telemetry;

#[derive(Parser)]
#[command(
    name = "conduit-lab",
    about = "YAML-driven labs around a running Conduit"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validates a lab file.
    Check { lab: PathBuf },
    /// Brings a lab up (network, sites, appliance) and leaves it running.
    Up { lab: PathBuf },
    /// Brings a lab up, runs its traffic and schedule, reports, and takes it down.
    Run {
        lab: PathBuf,
        /// Leave the lab up afterwards.
        #[arg(long)]
        keep: bool,
        /// Where report.json and pps.png go (default target/lab/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Shows a lab's namespaces, processes and tunnels.
    Status { lab: PathBuf },
    /// Removes everything of a lab (by the name in the file, or a bare name).
    Down { lab: PathBuf },
    /// The traffic generator (run by `run` inside the gateway namespace).
    #[command(hide = true)]
    Gen { spec: PathBuf, out: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Check { lab } => Lab::load(&lab).map_err(anyhow::Error::from).map(|l| {
            check_summary(&lab, &l);
            true
        }),
        Cmd::Up { lab } => load(&lab).and_then(|l| cmd_up(&l)).map(|_| true),
        Cmd::Run { lab, keep, out } => load(&lab).and_then(|l| cmd_run(&l, keep, out)),
        Cmd::Status { lab } => cmd_status(&lab).map(|_| true),
        Cmd::Down { lab } => {
            let name = lab_name(&lab);
            let done = net::down(&name);
            if done.is_empty() {
                println!("lab {name}: nothing to remove");
            } else {
                println!("lab {name}: removed {}", done.join(", "));
            }
            Ok(true)
        }
        Cmd::Gen { spec, out } => cmd_gen(&spec, &out).map(|_| true),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("conduit-lab: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn check_summary(path: &Path, l: &Lab) {
    println!(
        "{}: lab {:?}, appliance config {}, {} sites, {} flows, {} schedule steps: ok",
        path.display(),
        l.spec.name,
        l.appliance_path
            .as_ref()
            .map_or("inline".to_string(), |p| p.display().to_string()),
        l.sites.len(),
        gen::plan(l).flows.len(),
        schedule::steps(&l.spec.schedule).len()
    );
    for s in &l.sites {
        println!(
            "  site {:<12} tunnel {:<16} {:?} endpoint {} key {} probes {:?} {} answers {:?}",
            s.name,
            s.tunnel,
            s.kind,
            s.endpoint,
            s.key.map_or("-".to_string(), |k| k.to_string()),
            s.probe,
            if s.bidirectional {
                "bidirectional"
            } else {
                "unidirectional"
            },
            s.answers
        );
    }
    for st in schedule::steps(&l.spec.schedule) {
        println!("  at {:>6.2}s  {}", st.at, st.describe());
    }
}

fn load(path: &Path) -> Result<Lab> {
    if !nix_root() {
        bail!("a lab needs root (network namespaces, nftables, raw sockets)");
    }
    Ok(Lab::load(path)?)
}

fn nix_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false)
}

/// The lab's name: from the file if it parses that far, else the argument itself.
fn lab_name(arg: &Path) -> String {
    if let Ok(text) = std::fs::read_to_string(arg) {
        if let Ok(v) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) {
            if let Some(n) = v.get("name").and_then(|n| n.as_str()) {
                return n.to_string();
            }
        }
    }
    arg.to_string_lossy().into_owned()
}

fn cmd_up(lab: &Lab) -> Result<()> {
    let name = &lab.spec.name;
    if !net::lab_namespaces(name).is_empty() {
        bail!("lab {name} is up already (`conduit-lab down` removes it)");
    }
    let plan = gen::plan(lab);
    let r = (|| -> Result<()> {
        net::up(lab, plan.flows.len())?;
        let app = net::start_appliance(lab, 0)?;
        println!(
            "lab {name} is up: appliance pid {} (log {})",
            app.child.id(),
            app.log.display()
        );
        Ok(())
    })();
    if r.is_err() {
        net::down(name);
    }
    r
}

fn cmd_status(arg: &Path) -> Result<()> {
    let name = lab_name(arg);
    let nss = net::lab_namespaces(&name);
    if nss.is_empty() {
        println!("lab {name}: down");
        return Ok(());
    }
    println!("lab {name}: namespaces {}", nss.join(" "));
    for (pid, c) in net::lab_processes(&name) {
        println!("  {pid:>7}  {}", c.chars().take(110).collect::<String>());
    }
    match Telemetry::connect(&net::eal_prefix(&name)) {
        Ok(mut t) => {
            let rows = sample_tunnels(&mut t)?;
            for (n, (s, tx, replies)) in rows {
                println!("  tunnel {n:<20} {s:<9} tx {tx:>9}  probe replies {replies}");
            }
        }
        Err(e) => println!("  appliance telemetry: {e:#}"),
    }
    Ok(())
}

fn cmd_gen(spec: &Path, out: &Path) -> Result<()> {
    let spec: gen::GenSpec = serde_json::from_str(&std::fs::read_to_string(spec)?)?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    let res = gen::run(&spec, stop)?;
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string(&res)?)?;
    std::fs::rename(tmp, out)?;
    Ok(())
}

/// Per tunnel: state, packets sent into it, probe replies.
fn sample_tunnels(t: &mut Telemetry) -> Result<BTreeMap<String, (String, u64, u64)>> {
    let list = t.query("/conduit/tunnels")?;
    let names: Vec<String> = list["names"]
        .as_array()
        .ok_or_else(|| anyhow!("/conduit/tunnels: no names in {list}"))?
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    let mut out = BTreeMap::new();
    for n in names {
        let v = t.query(&format!("/conduit/tunnel,{n}"))?;
        out.insert(
            n,
            (
                v["state"].as_str().unwrap_or("?").to_string(),
                v["tx_packets"].as_u64().unwrap_or(0),
                v["probe_replies"].as_u64().unwrap_or(0),
            ),
        );
    }
    Ok(out)
}

/// The appliance's drops by reason (only reasons with packets).
fn drops(t: &mut Telemetry) -> BTreeMap<String, u64> {
    t.query("/conduit/drops")
        .ok()
        .and_then(|v| {
            v.as_object().map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                    .filter(|(_, n)| *n > 0)
                    .collect()
            })
        })
        .unwrap_or_default()
}

fn connect(prefix: &str, timeout: Duration) -> Result<Telemetry> {
    let until = Instant::now() + timeout;
    loop {
        match Telemetry::connect(prefix) {
            Ok(t) => return Ok(t),
            Err(e) if Instant::now() > until => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

struct Live {
    tty: bool,
    last: Option<(f64, BTreeMap<String, u64>)>,
}

impl Live {
    /// One refresh of the live view: per tunnel state and packets per second since the last.
    fn show(&mut self, t: f64, s: &Sample, faults: &FaultState, lab: &Lab, dropped: u64) {
        let tx: BTreeMap<String, u64> = s.tunnels.iter().map(|(n, v)| (n.clone(), v.tx)).collect();
        let pps = |n: &str| -> f64 {
            match &self.last {
                Some((t0, prev)) if t > *t0 => {
                    tx[n].saturating_sub(*prev.get(n).unwrap_or(&0)) as f64 / (t - t0)
                }
                _ => 0.0,
            }
        };
        let mut faults_txt: Vec<String> = faults
            .sites
            .iter()
            .map(|(site, f)| {
                let mut w = Vec::new();
                if f.down {
                    w.push("down".to_string());
                }
                if f.blackhole {
                    w.push("blackholed".to_string());
                }
                if let Some(p) = f.loss_percent {
                    w.push(format!("{p}% loss"));
                }
                if let Some(r) = &f.rate {
                    w.push(format!("rate {r}"));
                }
                format!("{site}: {}", w.join("+"))
            })
            .collect();
        if faults_txt.is_empty() {
            faults_txt.push("none".into());
        }
        if self.tty {
            let mut o = String::from("\x1b[H\x1b[2J");
            o.push_str(&format!(
                "lab {}  t = {t:5.1} s of {:.0} s   appliance drops {dropped}   faults: {}\n\n",
                lab.spec.name,
                lab.spec.duration.0,
                faults_txt.join(", ")
            ));
            o.push_str(&format!(
                "  {:<20} {:<10} {:>8} {:>10}\n",
                "tunnel", "state", "pps", "tx"
            ));
            for (n, v) in &s.tunnels {
                o.push_str(&format!(
                    "  {n:<20} {:<10} {:>8.0} {:>10}\n",
                    v.state,
                    pps(n),
                    v.tx
                ));
            }
            print!("{o}");
        } else {
            let mut cols: Vec<String> = s
                .tunnels
                .iter()
                .map(|(n, v)| format!("{n} {} {:.0}pps", v.state, pps(n)))
                .collect();
            if cols.len() > 6 {
                // Many tunnels: counts by state and the total rate, one line still.
                let mut by: BTreeMap<&str, usize> = BTreeMap::new();
                for v in s.tunnels.values() {
                    *by.entry(v.state.as_str()).or_default() += 1;
                }
                let total: f64 = s.tunnels.keys().map(|n| pps(n)).sum();
                cols = vec![format!("{by:?}, {total:.0} pps in all")];
            }
            println!(
                "t={t:5.1}s  {}  | faults: {}",
                cols.join(" | "),
                faults_txt.join(", ")
            );
        }
        self.last = Some((t, tx));
    }
}

fn cmd_run(lab: &Lab, keep: bool, out: Option<PathBuf>) -> Result<bool> {
    let name = lab.spec.name.clone();
    let started = Instant::now();
    let leftovers = net::down(&name);
    if !leftovers.is_empty() {
        println!(
            "lab {name}: removed leftovers of an earlier run: {}",
            leftovers.join(", ")
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    let out_dir = out.unwrap_or_else(|| {
        std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from("target"))
            .join("lab")
            .join(&name)
    });
    std::fs::create_dir_all(&out_dir)?;
    // Takes the lab down however run_inner ends, a panic included.
    let mut guard = DownGuard {
        name: &name,
        armed: true,
    };
    let r = run_inner(lab, &stop, &out_dir, started, keep);
    keep_logs(&name, &out_dir);
    if keep && r.is_ok() {
        guard.armed = false;
        println!("lab {name} left up (`conduit-lab down` removes it)");
    }
    drop(guard);
    let (report, measured_s) = r?;
    println!("{}", report.text());
    println!(
        "lab {name}: {:.1} s from start to report (traffic {:.0} s)",
        started.elapsed().as_secs_f64(),
        measured_s
    );
    Ok(report.violations.is_empty())
}

struct DownGuard<'a> {
    name: &'a str,
    armed: bool,
}

impl Drop for DownGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            net::down(self.name);
        }
    }
}

/// Per tunnel, the tunnels that share one of its route prefixes (routes via the gateway have
/// no tunnel and are left out).
fn alternatives(lab: &Lab) -> BTreeMap<String, Vec<String>> {
    let routes: Vec<(&str, _)> = lab
        .appliance
        .routes
        .iter()
        .filter_map(|r| Some((r.tunnel.as_deref()?, r.prefix)))
        .collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for &(a, pa) in &routes {
        for &(b, pb) in &routes {
            if a != b && pa == pb {
                let v = out.entry(a.to_string()).or_default();
                if !v.iter().any(|x| x == b) {
                    v.push(b.to_string());
                }
            }
        }
        out.entry(a.to_string()).or_default();
    }
    out
}

/// A running generator: the builtin one, or trafgen or tcpreplay for the flows of one class.
struct GenProc {
    child: std::process::Child,
    /// For trafgen and tcpreplay: its output file and the flows of its class.
    trafgen: Option<(PathBuf, Vec<usize>)>,
}

fn start_generators(
    lab: &Lab,
    plan: &gen::GenSpec,
    spec_path: &Path,
    gen_out: &Path,
) -> Result<Vec<GenProc>> {
    let ns = net::gw_ns(&lab.spec.name);
    if lab.spec.traffic.generator == spec::Generator::Builtin {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(std::env::current_exe()?)
            .arg("gen")
            .arg(spec_path)
            .arg(gen_out)
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start the traffic generator")?;
        return Ok(vec![GenProc {
            child,
            trafgen: None,
        }]);
    }
    start_tap_generators(lab, plan, plan.duration_s, 0)
}

/// Starts trafgen or tcpreplay, one per flow class, sending onto the appliance's tap for
/// `duration_s`; `part` numbers their files (a restarted appliance brings a new tap, and the
/// generators bound to the old one are started again).
fn start_tap_generators(
    lab: &Lab,
    plan: &gen::GenSpec,
    duration_s: f64,
    part: u32,
) -> Result<Vec<GenProc>> {
    let name = &lab.spec.name;
    let ns = net::gw_ns(name);
    let dir = net::run_dir(name);
    let mut procs = Vec::new();
    for (c, class) in plan.classes.iter().enumerate() {
        if class.flows.is_empty() {
            continue;
        }
        let n = gen::trafgen_count(class.rate, duration_s, class.flows.len());
        let (tool, mut command) = match lab.spec.traffic.generator {
            spec::Generator::Builtin => unreachable!("the builtin generator has no tap process"),
            spec::Generator::Trafgen => {
                let cfg = dir.join(format!("trafgen-{c}.cfg"));
                std::fs::write(
                    &cfg,
                    gen::trafgen_config(plan, &class.flows, net::GW_MAC, net::APP_MAC),
                )?;
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", &ns, "trafgen", "--cpus", "1", "-i"])
                    .arg(&cfg)
                    .args(["-o", &net::tap(name), "-n", &n.to_string(), "-t"])
                    // An inter-packet gap: trafgen's `-b RATEpps` sends in bursts.
                    .arg(format!("{}us", (1e6 / class.rate).round() as u64));
                ("trafgen", command)
            }
            spec::Generator::Tcpreplay => {
                let pcap = dir.join(format!("tcpreplay-{c}.pcap"));
                std::fs::write(
                    &pcap,
                    gen::tcpreplay_pcap(plan, &class.flows, class.rate, net::GW_MAC, net::APP_MAC),
                )?;
                // The pcap holds one frame per flow: played as many times as trafgen's count
                // needs, both generators send the same packets.
                let loops = n / class.flows.len() as u64;
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", &ns, "tcpreplay", "--preload-pcap"])
                    .arg(format!("--intf1={}", net::tap(name)))
                    .arg(format!("--pps={}", class.rate))
                    .arg(format!("--loop={loops}"))
                    .arg(&pcap);
                ("tcpreplay", command)
            }
        };
        let suffix = if part == 0 {
            String::new()
        } else {
            format!(".{part}")
        };
        let out = dir.join(format!("{tool}-{c}{suffix}.log"));
        let f = std::fs::File::create(&out)?;
        let pkg = if tool == "trafgen" {
            "netsniff-ng"
        } else {
            "tcpreplay"
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .with_context(|| format!("cannot start {tool} (Debian package {pkg})"))?;
        procs.push(GenProc {
            child,
            trafgen: Some((out, class.flows.clone())),
        });
    }
    Ok(procs)
}

/// After an appliance restart: trafgen and tcpreplay send through a packet socket bound to
/// the old tap, which is gone (every send fails with ENXIO), so they are stopped (they report
/// what they sent) and started again on the new tap for the rest of the traffic.
fn restart_tap_generators(
    lab: &Lab,
    plan: &gen::GenSpec,
    gens: &mut Vec<GenProc>,
    remaining_s: f64,
    part: u32,
) -> Result<()> {
    if lab.spec.traffic.generator == spec::Generator::Builtin {
        return Ok(());
    }
    for g in gens.iter_mut() {
        if g.child.try_wait()?.is_none() {
            let _ = Command::new("kill")
                .args(["-INT", &g.child.id().to_string()])
                .status();
            g.child.wait()?;
        }
    }
    if remaining_s > 0.05 {
        gens.extend(start_tap_generators(lab, plan, remaining_s, part)?);
    }
    Ok(())
}

/// Waits for the generators (SIGTERM after 5 s) and returns what was sent per flow.
fn finish_generators(
    mut gens: Vec<GenProc>,
    generator: spec::Generator,
    plan: &gen::GenSpec,
    gen_out: &Path,
) -> Result<Vec<u64>> {
    let until = Instant::now() + Duration::from_secs(5);
    for g in &mut gens {
        while g.child.try_wait()?.is_none() {
            if Instant::now() > until {
                let _ = Command::new("kill")
                    .args(["-INT", &g.child.id().to_string()])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut sent = vec![0u64; plan.flows.len()];
    for g in &gens {
        match &g.trafgen {
            None => {
                let r: gen::GenResult = serde_json::from_str(
                    &std::fs::read_to_string(gen_out).context("the generator left no result")?,
                )?;
                sent = r.sent;
            }
            Some((out, flows)) => {
                let text = std::fs::read_to_string(out)?;
                let (tool, per) = match generator {
                    spec::Generator::Tcpreplay => {
                        ("tcpreplay", gen::tcpreplay_sent(&text, flows.len()))
                    }
                    _ => ("trafgen", gen::trafgen_sent(&text, flows.len())),
                };
                let per =
                    per.ok_or_else(|| anyhow!("{tool} said nothing about what it sent:\n{text}"))?;
                // Summed: a restarted appliance means a second process per class.
                for (i, n) in flows.iter().zip(per) {
                    sent[*i] += n;
                }
            }
        }
    }
    Ok(sent)
}

/// Copies the lab's logs (appliance, OVS) out of its run directory, which `down` removes.
fn keep_logs(name: &str, out_dir: &Path) {
    let logs = out_dir.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    let run = net::run_dir(name);
    let mut dirs = vec![run.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                let rel = p.strip_prefix(&run).unwrap_or(&p);
                let dst = logs.join(rel.to_string_lossy().replace('/', "-"));
                let _ = std::fs::create_dir_all(&logs);
                let _ = std::fs::copy(&p, dst);
            }
        }
    }
}

fn run_inner(
    lab: &Lab,
    stop: &Arc<AtomicBool>,
    out_dir: &Path,
    started: Instant,
    keep: bool,
) -> Result<(Report, f64)> {
    let name = &lab.spec.name;
    let plan = gen::plan(lab);
    net::up(lab, plan.flows.len())?;
    std::fs::write(
        net::run_dir(name).join("runner.pid"),
        std::process::id().to_string(),
    )?;
    let mut app = net::start_appliance(lab, 0)?;
    let prefix = net::eal_prefix(name);
    let mut tel = connect(&prefix, Duration::from_secs(10))?;
    println!(
        "lab {name}: up in {:.1} s ({} sites, OVS userspace GRE); waiting for healthy tunnels",
        started.elapsed().as_secs_f64(),
        lab.sites.len()
    );

    // Health stage: every site's tunnel healthy and answering, before traffic starts.
    let site_tunnels: Vec<String> = lab.sites.iter().map(|s| s.tunnel.clone()).collect();
    let ready_until = Instant::now() + Duration::from_secs_f64(lab.spec.appliance.ready_timeout.0);
    loop {
        let rows = sample_tunnels(&mut tel)?;
        let ready = site_tunnels.iter().all(|t| {
            rows.get(t).is_some_and(|r| {
                // Admin-down and unchecked tunnels are never probed: as ready as they get.
                (r.0 == "healthy" && r.2 >= 3) || r.0 == "disabled" || r.0 == "admin-down"
            })
        });
        if ready {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        if Instant::now() > ready_until {
            bail!(
                "tunnels not healthy after {} s: {:?}\n{}",
                lab.spec.appliance.ready_timeout.0,
                rows,
                app.tail(20)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "lab {name}: every tunnel healthy after {:.1} s; traffic starts",
        started.elapsed().as_secs_f64()
    );

    let dir = net::run_dir(name);
    let spec_path = dir.join("gen.json");
    let gen_out = dir.join("gen-result.json");
    std::fs::write(&spec_path, serde_json::to_string(&plan)?)?;
    let mut gens = start_generators(lab, &plan, &spec_path, &gen_out)?;
    let t0 = Instant::now();
    let t0_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let site_of: BTreeMap<String, usize> = lab
        .sites
        .iter()
        .map(|s| (s.tunnel.clone(), s.index))
        .collect();
    let mut logs = Vec::new();
    let mut notes = Vec::new();
    let mut appliance_drops = BTreeMap::new();

    let steps = schedule::steps(&lab.spec.schedule);
    let mut applied = Vec::new();
    let mut next_step = 0;
    let mut faults = FaultState::default();
    let mut samples: Vec<Sample> = Vec::new();
    let mut live = Live {
        tty: std::io::stdout().is_terminal(),
        last: None,
    };
    let mut next_view = 0.0;
    let mut run_no = 0;
    let duration = lab.spec.duration.0;
    loop {
        let t = t0.elapsed().as_secs_f64();
        while next_step < steps.len() && steps[next_step].at <= t {
            let mut st = steps[next_step].clone();
            next_step += 1;
            // The step's time is when its command starts: the earliest it can take effect, so
            // a busy machine's slow command makes detection look slower, never faster.
            st.at = t0.elapsed().as_secs_f64();
            match st.fault {
                FaultKind::Reload => app.signal("-HUP"),
                FaultKind::Restart => {
                    for (k, v) in drops(&mut tel) {
                        *appliance_drops.entry(k).or_insert(0) += v;
                    }
                    app.stop(Duration::from_secs(20))?;
                    logs.push(app.text());
                    run_no += 1;
                    app = net::start_appliance(lab, run_no)?;
                    restart_tap_generators(
                        lab,
                        &plan,
                        &mut gens,
                        duration - t0.elapsed().as_secs_f64(),
                        run_no,
                    )?;
                    tel = connect(&prefix, Duration::from_secs(10))?;
                    notes.push(report::TimelineEntry {
                        t: t0.elapsed().as_secs_f64(),
                        what: "note   the appliance forwards again".into(),
                    });
                }
                _ => {
                    let before = faults.clone();
                    faults.apply(&st);
                    net::apply_faults(lab, &faults, &before)?;
                }
            }
            if !live.tty {
                println!("t={:5.1}s  {}", st.at, st.describe());
            }
            applied.push(st);
        }
        let rows = match sample_tunnels(&mut tel) {
            Ok(r) => r,
            Err(e) => {
                if let Some(st) = app.child.try_wait()? {
                    bail!("the appliance exited ({st}):\n{}", app.tail(30));
                }
                return Err(e);
            }
        };
        // The gateway counts each sample; the appliance's own counters only twice a second.
        // The sample's time is the middle of the counters' read (a process of its own, which a
        // busy machine may delay), so that rates derived from it stay right.
        let before = t0.elapsed().as_secs_f64();
        let gw = net::read_gw_counters(name).unwrap_or_default();
        let ts = (before + t0.elapsed().as_secs_f64()) / 2.0;
        let sample = Sample {
            t: ts,
            tunnels: rows
                .into_iter()
                .map(|(n, (state, tx, _))| {
                    let tx = site_of
                        .get(&n)
                        .and_then(|i| gw.get(i))
                        .copied()
                        .unwrap_or(tx);
                    (n, TunnelSample { state, tx })
                })
                .collect(),
        };
        if ts >= next_view {
            let dropped = drops(&mut tel).values().sum();
            live.show(ts, &sample, &faults, lab, dropped);
            next_view += 1.0;
        }
        samples.push(sample);
        if ts >= duration {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted at t={ts:.1}s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The generators stop on their own at the end of the duration.
    let sent = finish_generators(gens, lab.spec.traffic.generator, &plan, &gen_out)?;
    // Packets in flight reach the LANs.
    std::thread::sleep(Duration::from_millis(500));
    let mut received = BTreeMap::new();
    for s in &lab.sites {
        received.insert(
            s.name.clone(),
            net::read_lan_counters(name, s.index, plan.flows.len())?,
        );
    }
    for (k, v) in drops(&mut tel) {
        *appliance_drops.entry(k).or_insert(0) += v;
    }
    // The appliance stops gracefully (its final statistics and buffer check go to its log),
    // unless the lab stays up.
    if !keep {
        app.stop(Duration::from_secs(20))?;
    }
    logs.push(app.text());
    let changes = logs
        .iter()
        .flat_map(|l| applog::changes(l, t0_unix_ms))
        .filter(|c| c.t >= 0.0)
        .collect();
    let m = Measurements {
        samples,
        changes,
        notes,
        appliance_drops,
        steps: applied,
        flow_class: plan.flows.iter().map(|f| f.class.clone()).collect(),
        sent,
        received,
        site_tunnel: lab
            .sites
            .iter()
            .map(|s| (s.name.clone(), s.tunnel.clone()))
            .collect(),
        alternatives: alternatives(lab),
        duration_s: duration,
    };
    let ecmp = lab.spec.expect.ecmp_tunnels.clone().unwrap_or_default();
    let mut report = Report::compute(&m, &lab.spec.expect, &ecmp);
    let png = out_dir.join("pps.png");
    match report::plot(&m, &png) {
        Ok(()) => report.plot = Some(png.display().to_string()),
        Err(e) => eprintln!("conduit-lab: no plot: {e:#}"),
    }
    let json = serde_json::json!({ "lab": name, "report": report, "measurements": m });
    std::fs::write(
        out_dir.join("report.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("report: {}", out_dir.join("report.json").display());
    let log = app.text();
    if !keep && !log.contains("mbufs in use after shutdown: 0 of") {
        eprintln!(
            "conduit-lab: the appliance's final check did not pass:\n{}",
            app.tail(20)
        );
    }
    Ok((report, duration))
}
