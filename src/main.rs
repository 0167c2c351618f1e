//! `conduit`: the appliance.
//!
//! `conduit [EAL args] -- --config FILE [options]`, the DPDK convention: everything before `--`
//! goes to the EAL (`-l`, `--vdev`, `-a`, `--no-huge`, ...), everything after to Conduit. With
//! no `--` at all, every argument is Conduit's (so `conduit --help` and
//! `conduit check-config FILE` need no EAL).
//!
//! Start-up order is chosen so that mistakes surface before anything is touched: the config is
//! read and checked first, the SIGINT/SIGTERM handlers installed, then EAL starts, then
//! [`conduit::appliance::run`] opens the ports, binds what it serves and launches the workers
//! last; SIGINT/SIGTERM (at any stage, exit 0), `--exit-when-idle`, or a worker that panics
//! (exit 1) stop them and the final statistics are printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use conduit::appliance::{self, Options, Signals};
use control::config::Config;
use dataplane::eal::Eal;

#[derive(Parser, Debug)]
#[command(
    name = "conduit",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CONDUIT_GIT_REVISION"), ")"),
    about = "DPDK dataplane terminating and steering anycast GRE and IPsec tunnels",
    override_usage = "conduit [EAL args] -- --config FILE [OPTIONS]\n       conduit check-config FILE\n       conduit ctl [--file-prefix PREFIX] [--json] COMMAND"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The YAML configuration.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Stop once no packet has been received for this many milliseconds (pcap replay).
    #[arg(long, value_name = "MS")]
    exit_when_idle: Option<u64>,
    /// Override the config's console statistics interval (0 turns periodic output off).
    #[arg(long, value_name = "MS")]
    stats_interval: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a configuration file without starting the dataplane.
    CheckConfig { file: PathBuf },
    /// Operate a running appliance through its telemetry socket (no EAL needed).
    Ctl(conduit::ctl::Ctl),
}

fn main() -> ExitCode {
    conduit::cli::main("conduit", "info", run)
}

/// The test hook `CONDUIT_TEST_PANIC_WORKER=MS` (read once, here): the first worker panics MS
/// milliseconds after its launch, so that tests can check that a dying worker stops the
/// appliance.
fn test_panic_worker_after() -> Option<std::time::Duration> {
    let ms = std::env::var("CONDUIT_TEST_PANIC_WORKER").ok()?;
    let ms = ms.trim().parse().unwrap_or(0);
    Some(std::time::Duration::from_millis(ms))
}

fn run(cli: Cli, eal_args: Vec<String>) -> Result<ExitCode> {
    if let Some(Command::Ctl(ctl)) = &cli.command {
        print!("{}", conduit::ctl::run(ctl)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(Command::CheckConfig { file }) = &cli.command {
        let cfg = Config::load(file).map_err(anyhow::Error::msg)?;
        println!(
            "{}: ok ({} ports, {} workers, mode {:?})",
            file.display(),
            cfg.dataplane.ports.len(),
            cfg.dataplane.workers.len(),
            cfg.dataplane.mode
        );
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = cli.config.as_deref() else {
        bail!("no configuration given: conduit [EAL args] -- --config FILE");
    };
    let cfg = Config::load(path).map_err(anyhow::Error::msg)?;
    let opts = Options {
        exit_when_idle: cli.exit_when_idle,
        stats_interval: cli.stats_interval.unwrap_or(cfg.stats.interval_ms),
        panic_worker_after: test_panic_worker_after(),
    };

    // Before EAL: a SIGINT/SIGTERM at any later stage is a clean stop, not a kill.
    let signals = Signals::install()?;
    let mut eal =
        Eal::init(&eal_args).context("EAL initialisation failed (see EAL's messages above)")?;
    // This thread runs the control loop: keep net_tap's per-packet signals off it (see
    // `Eal::block_realtime_signals_on_this_thread`).
    eal.block_realtime_signals_on_this_thread()
        .context("blocking real-time signals on the control thread")?;
    log::info!(
        "{} (conduit {}), {} hugepages, TSC {:.2} GHz",
        Eal::version(),
        env!("CARGO_PKG_VERSION"),
        if eal.has_hugepages() {
            "with"
        } else {
            "without"
        },
        eal.tsc_hz() as f64 / 1e9
    );
    match eal.enable_capture() {
        Ok(()) => log::info!("packet capture: dpdk-dumpcap --file-prefix=<this instance's prefix>"),
        Err(e) => log::info!(
            "packet capture unavailable ({e}): dpdk-dumpcap needs a shared EAL configuration \
             (no --in-memory or --no-shconf)"
        ),
    }
    let result = appliance::run(&eal, path, &cfg, &opts, &signals);
    drop(eal);
    result
}
