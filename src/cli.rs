//! The `main` shared by Conduit's DPDK commands (`conduit`, `conduit-perf`).

use std::process::ExitCode;

/// Runs command `name`: logging to stderr (`RUST_LOG`, else `default_log`), EAL's arguments
/// split from the command's own (see [`dataplane::eal::split_args`]), the latter parsed as `C`
/// and both handed to `run`. A usage error exits with 2 (`--help` and `--version` with 0); an
/// error from `run` is printed as `NAME: error: ...` and exits with 1.
pub fn main<C, F>(name: &str, default_log: &str, run: F) -> ExitCode
where
    C: clap::Parser,
    F: FnOnce(C, Vec<String>) -> anyhow::Result<ExitCode>,
{
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_log))
        .format_timestamp_millis()
        .init();
    let argv: Vec<String> = std::env::args().collect();
    let (eal_args, app_args) = dataplane::eal::split_args(&argv, name);
    let cli = match C::try_parse_from(&app_args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli, eal_args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
