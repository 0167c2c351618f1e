//! The Grafana dashboard in deploy/grafana/conduit.json queries only metrics the appliance
//! exports: every metric name in its PromQL expressions (panels and template variables) must be
//! a sample name of the recorded exposition (control/src/metrics/sample_snapshot.prom, which
//! the metrics unit tests check byte for byte against the encoder).

use std::collections::BTreeSet;

use serde_json::Value;

const DASHBOARD: &str = include_str!("../../deploy/grafana/conduit.json");
const EXPOSITION: &str = include_str!("../src/metrics/sample_snapshot.prom");

/// PromQL words that are not metric names where they stand.
const KEYWORDS: [&str; 11] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
];
/// Aggregation operators, which may stand before `by (...)` rather than before `(`.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names an expression selects. Skips strings, label matchers (`{...}`), range and
/// subquery brackets (`[...]`), function names (a word before `(`), aggregation operators,
/// label lists after `by` and friends, numbers, keywords and Grafana variables (`$x`). Grafana's `label_values(metric,
/// label)` names its metric first.
fn metric_names(expr: &str) -> Vec<String> {
    if let Some(args) = expr
        .trim()
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let metric = args.split(',').next().unwrap_or("").trim();
        return metric_names(metric.split('{').next().unwrap_or(""));
    }
    let b = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    let mut pending_label_list = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                while i < b.len() && b[i] != close {
                    i += 1;
                }
                i += 1;
            }
            b'(' if pending_label_list => {
                while i < b.len() && b[i] != b')' {
                    i += 1;
                }
                i += 1;
                pending_label_list = false;
            }
            b'$' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let next = expr[i..].trim_start().chars().next();
                if LABEL_LISTS.contains(&word) {
                    pending_label_list = true;
                } else if !(KEYWORDS.contains(&word)
                    || AGGREGATIONS.contains(&word)
                    || next == Some('('))
                {
                    names.push(word.to_string());
                }
            }
            c if c.is_ascii_digit() || c == b'.' => {
                // A number, with exponent or duration letters (`1e3`, `5m`).
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every string under a key `expr`, or a template variable's `query`, in the dashboard.
fn expressions(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                expressions(v, Some(k), out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| expressions(v, key, out)),
        Value::String(s) if matches!(key, Some("expr" | "definition")) => out.push(s.clone()),
        Value::String(s) if key == Some("query") && s.contains('(') => out.push(s.clone()),
        _ => {}
    }
}

/// Sample names of the exposition.
fn exported() -> BTreeSet<String> {
    EXPOSITION
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn extractor_finds_metrics_and_only_metrics() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (tunnel, le) (rate(conduit_tunnel_rtt_seconds_bucket{instance=~"$instance",x="a{b"}[$__rate_interval])))"#
        ),
        ["conduit_tunnel_rtt_seconds_bucket"]
    );
    assert_eq!(
        metric_names("time() - a_b{x=\"y\"} / on (instance) group_left (kind) c_d > 1e3 and e"),
        ["a_b", "c_d", "e"]
    );
    assert_eq!(
        metric_names("label_values(conduit_build_info, instance)"),
        ["conduit_build_info"]
    );
    assert_eq!(metric_names("rate(x[5m] offset 1h)"), ["x"]);
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    expressions(&dashboard, None, &mut exprs);
    assert!(exprs.len() >= 20, "{} expressions", exprs.len());
    let exported = exported();
    assert!(exported.contains("conduit_tunnel_rtt_seconds_bucket"));
    let mut used = BTreeSet::new();
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "no metric in {e:?}");
        for n in names {
            assert!(exported.contains(&n), "{n} (in {e:?}) is not exported");
            used.insert(n);
        }
    }
    // What the dashboard exists for: states, traffic, drops, RTT, heartbeat, reloads, IPsec.
    for needed in [
        "conduit_tunnel_state",
        "conduit_tunnel_rx_packets_total",
        "conduit_tunnel_tx_packets_total",
        "conduit_drops_total",
        "conduit_tunnel_rtt_seconds_bucket",
        "conduit_control_loop_last_iteration_timestamp_seconds",
        "conduit_reloads_total",
        "conduit_sa_packets_total",
        "conduit_sa_auth_failures_total",
        "conduit_sa_last_sequence",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
}

#[test]
fn a_dashboard_with_an_unknown_metric_is_caught() {
    let exported = exported();
    let names = metric_names("rate(conduit_drops_total[5m]) + conduit_no_such_thing");
    assert!(names.iter().any(|n| !exported.contains(n)), "{names:?}");
}
