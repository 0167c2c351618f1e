//! Every example config shipped in `configs/` must parse and validate.

use std::path::Path;

use control::config::{Config, ForwardMode};

#[test]
fn every_shipped_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("configs/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            if let Err(e) = Config::load(&path) {
                panic!("{e}");
            }
            checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    checked.sort();
    for name in ["default.yaml", "lab.yaml", "perf.yaml"] {
        assert!(
            checked.iter().any(|c| c == name),
            "{name} missing: {checked:?}"
        );
    }
}

#[test]
fn default_is_the_io_demo() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let c = Config::load(&dir.join("default.yaml")).unwrap();
    assert_eq!(c.dataplane.mode, ForwardMode::Io);
    assert!(c.tunnels.is_empty());
}

#[test]
fn lab_has_the_documented_topology() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let c = Config::load(&dir.join("lab.yaml")).unwrap();
    assert_eq!(c.dataplane.mode, ForwardMode::Pipeline);
    assert_eq!(c.local_endpoints.len(), 2);
    let kinds: Vec<_> = c.tunnels.iter().map(|t| t.kind).collect();
    use control::config::TunnelKind::{Gre, Ipsec};
    assert_eq!(kinds.iter().filter(|k| **k == Gre).count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == Ipsec).count(), 1);
    for t in &c.tunnels {
        let health = t.health();
        assert_eq!(
            health.probe_interval(),
            std::time::Duration::from_millis(100),
            "{}",
            t.name
        );
        assert_eq!(
            health.hold_down,
            std::time::Duration::from_secs(5),
            "{}",
            t.name
        );
    }
    let priorities: Vec<u32> = c.routes.iter().map(|r| r.priority).collect();
    assert!(priorities.contains(&100) && priorities.contains(&200));

    let perf = Config::load(&dir.join("perf.yaml")).unwrap();
    assert_eq!(perf.dataplane.mode, ForwardMode::Pipeline);
    assert_eq!(perf.dataplane.workers.len(), 1);
}
