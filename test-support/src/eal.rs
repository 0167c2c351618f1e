//! EAL arguments for tests. EAL initialises once per process (cargo-nextest runs each test in its
//! own process), so every instance gets a file prefix unique to the process, no hugepages, no PCI
//! scan and no shared config: tests run in parallel and never touch real NICs.

/// `{name}-{pid}`: the file prefix of this process's instance (also what `dpdk-telemetry.py -f`
/// needs to find its socket).
pub fn file_prefix(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// The arguments that make an EAL instance private: `--no-huge -m 256 --no-shconf --no-pci
/// --file-prefix {name}-{pid}`.
pub fn private_instance(name: &str) -> Vec<String> {
    [
        "--no-huge",
        "-m",
        "256",
        "--no-shconf",
        "--no-pci",
        "--file-prefix",
        &file_prefix(name),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Arguments for `Eal::init` inside a test process: a program name, [`private_instance`], EAL's
/// own logs at warning, then `extra` (with `-l 0` unless `extra` chooses the cores).
pub fn in_process(name: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["conduit-test".to_string()];
    args.extend(private_instance(name));
    args.extend(["--log-level".to_string(), "lib.eal:warning".to_string()]);
    if !extra.contains(&"-l") {
        args.extend(["-l".to_string(), "0".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Initialises this process's EAL with [`in_process`] arguments.
#[cfg(feature = "eal")]
pub fn init_eal(name: &str, extra: &[&str]) -> dataplane::eal::Eal {
    dataplane::eal::Eal::init(in_process(name, extra)).expect("EAL init")
}
