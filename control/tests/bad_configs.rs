//! The corpus of broken configs: every `tests/bad-configs/NAME.yaml` must be rejected with
//! exactly the message in `NAME.expected` (as `ConfigError`'s `Display` prints it).
//!
//! File paths in the messages are relative to the workspace root
//! (`control/tests/bad-configs/NAME.yaml`), as `conduit check-config` prints them when run from
//! there, so the expectations do not depend on where the checkout lives.
//!
//! After a deliberate change of messages, `CONDUIT_BLESS=1 cargo test -p control --test
//! bad_configs` rewrites the `.expected` files; review the diff before committing it.

use std::path::{Path, PathBuf};

use control::config::Config;

const SHOWN_DIR: &str = "control/tests/bad-configs";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-configs")
}

fn files_with(ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/bad-configs exists")
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

fn message(yaml: &Path) -> String {
    let text = std::fs::read_to_string(yaml).expect("readable config");
    let shown = Path::new(SHOWN_DIR).join(yaml.file_name().expect("a file"));
    match Config::parse(&text, &shown) {
        Ok(_) => "<accepted>".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_bad_config_is_rejected_with_its_exact_message() {
    let configs = files_with("yaml");
    assert!(
        configs.len() >= 20,
        "the corpus has only {} files",
        configs.len()
    );
    let bless = std::env::var_os("CONDUIT_BLESS").is_some();
    let mut failures = Vec::new();
    for yaml in &configs {
        let got = message(yaml);
        let expected_path = yaml.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, format!("{got}\n")).expect("writable corpus");
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected.trim_end_matches('\n') == got => {}
            Ok(expected) => failures.push(format!(
                "{}:\n  expected: {}\n  got:      {got}",
                yaml.display(),
                expected.trim_end_matches('\n')
            )),
            Err(e) => failures.push(format!("{}: {e}", expected_path.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad configs misbehave:\n{}",
        failures.len(),
        configs.len(),
        failures.join("\n")
    );
}

#[test]
fn every_expectation_has_its_config() {
    for expected in files_with("expected") {
        assert!(
            expected.with_extension("yaml").exists(),
            "{} has no config",
            expected.display()
        );
    }
}

#[test]
fn every_message_names_its_own_file() {
    for yaml in files_with("yaml") {
        let name = yaml.file_name().unwrap().to_string_lossy().into_owned();
        let got = message(&yaml);
        assert!(got.starts_with(&format!("{SHOWN_DIR}/{name}:")), "{got}");
    }
}

#[test]
fn load_reports_the_path_it_was_given() {
    // Cargo runs integration tests in the package directory, so this relative path is the
    // corpus file; the message matches the expectation minus the "control/" prefix.
    let path = Path::new("tests/bad-configs/route-unknown-tunnel.yaml");
    let got = Config::load(path).unwrap_err().to_string();
    let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
    assert_eq!(
        got,
        expected
            .trim_end_matches('\n')
            .trim_start_matches("control/")
    );
}
