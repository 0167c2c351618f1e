//! Shared set-up for tests that start a real EAL. Each test runs in its own process under
//! cargo-nextest (EAL initialises once per process), with `--no-huge`, no PCI scan and a
//! private file prefix so tests can run in parallel.

use dataplane::eal::Eal;

pub fn init_eal(extra: &[&str]) -> Eal {
    let prefix = format!("conduit-test-{}", std::process::id());
    let mut args: Vec<String> = [
        "conduit-test",
        "--no-huge",
        "-m",
        "256",
        "--no-shconf",
        "--no-pci",
        "--log-level",
        "lib.eal:warning",
        "--file-prefix",
        &prefix,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra.contains(&"-l") {
        args.extend(["-l".to_string(), "0".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Eal::init(&args).expect("EAL init")
}
