//! docs/operations.md's table of Prometheus families against the exposition: every family the
//! appliance exports (those of the recorded sample, control/src/metrics/sample_snapshot.prom,
//! which the metrics unit tests check byte for byte against the encoder) is documented, and the
//! table names nothing else.
//!
//! A row's first cell names families in backticks; a name that starts with `_` continues the
//! first name's `conduit_<group>` (`conduit_sa_packets_total`, `_bytes_total`), and what
//! follows a `(` lists sample suffixes, not families.

use std::collections::BTreeSet;

const DOC: &str = include_str!("../../docs/operations.md");
const EXPOSITION: &str = include_str!("../src/metrics/sample_snapshot.prom");

/// The family names (0.0.4 spelling) of the documentation's metrics table.
fn documented(doc: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in doc.lines() {
        let Some(cell) = line
            .strip_prefix("| `")
            .map(|_| line.split('|').nth(1).unwrap_or(""))
        else {
            continue;
        };
        let cell = cell.split('(').next().unwrap_or("");
        let tokens: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        let Some(first) = tokens.first() else {
            continue;
        };
        if !(first.starts_with("conduit_") || first.starts_with("process_")) {
            continue;
        }
        let group: String = first.split('_').take(2).collect::<Vec<_>>().join("_");
        for t in tokens {
            if t.starts_with('_') {
                names.insert(format!("{group}{t}"));
            } else {
                names.insert(t.to_string());
            }
        }
    }
    names
}

/// The family names of the exposition (`# TYPE` lines).
fn exported() -> BTreeSet<String> {
    EXPOSITION
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_exported_family_is_documented_and_nothing_else() {
    let doc = documented(DOC);
    let exp = exported();
    assert!(exp.contains("conduit_sa_last_sequence"), "{exp:?}");
    let undocumented: Vec<_> = exp.difference(&doc).collect();
    let unknown: Vec<_> = doc.difference(&exp).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/operations.md's metrics table: undocumented families {undocumented:?}; \
         documented but not exported {unknown:?}"
    );
}

#[test]
fn the_table_reader_expands_suffixes_and_skips_sample_suffixes() {
    let doc = "| family | type |\n|---|---|\n\
               | `conduit_sa_packets_total`, `_bytes_total` | counter |\n\
               | `conduit_tunnel_rtt_seconds` (`_bucket`, `_sum`) | histogram |\n\
               | `process_open_fds` | gauge |\n\
               | `/conduit/sas` | not a metric |\n";
    let got: Vec<String> = documented(doc).into_iter().collect();
    assert_eq!(
        got,
        [
            "conduit_sa_bytes_total",
            "conduit_sa_packets_total",
            "conduit_tunnel_rtt_seconds",
            "process_open_fds"
        ]
    );
}
