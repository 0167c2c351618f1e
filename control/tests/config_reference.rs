//! `docs/config.md` against the config types: every field the parser accepts is documented in
//! its section's table, and every documented field is one the parser accepts, so the reference
//! cannot drift from the code.
//!
//! The accepted fields come from the types themselves: each is `deny_unknown_fields`, and serde
//! names the fields it expects when it meets one it does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use control::config::{
    Config, DataplaneConfig, EcmpConfig, GatewayConfig, HealthCheckConfig, IcmpConfig,
    IpsecSection, PortConfig, ReassemblyConfig, RouteConfig, SaConfig, StatsConfig, TunnelConfig,
    TunnelIpsecConfig,
};
use serde::de::DeserializeOwned;

/// The field names `T` accepts, as serde lists them for an unknown one.
fn accepted<T: DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
    let err = serde_yaml_ng::from_str::<T>("zz_not_a_field: 0\n")
        .expect_err("an unknown field is refused");
    let msg = err.to_string();
    let expected = msg
        .find("expected")
        .map(|i| &msg[i..])
        .unwrap_or_else(|| panic!("no field list in {msg:?}"));
    let fields: BTreeSet<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(!fields.is_empty(), "{msg}");
    fields
}

/// Section (the backticked name of a `##`/`###` heading, or `dataplane.ports[]`) → the fields
/// in the first column of its `| field |` table.
fn documented() -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md");
    let text = std::fs::read_to_string(&path).expect("docs/config.md");
    let mut top = BTreeSet::new();
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section: Option<String> = None;
    let mut in_field_table = false;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ").or(line.strip_prefix("### ")) {
            section = heading.split('`').nth(1).map(str::to_string);
            if line.starts_with("## ") {
                top.extend(section.clone());
            }
            in_field_table = false;
            continue;
        }
        if line.starts_with("| field |") {
            in_field_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_field_table = false;
            continue;
        }
        let (Some(sec), true) = (&section, in_field_table) else {
            continue;
        };
        let first = line.split('|').nth(1).unwrap_or("");
        for name in first.split('`').skip(1).step_by(2) {
            let (sec, field) = match name.split_once("[].") {
                Some((list, field)) => (format!("{sec}.{list}[]"), field),
                None => (sec.clone(), name),
            };
            sections.entry(sec).or_default().insert(field.to_string());
        }
    }
    (top, sections)
}

#[test]
fn every_field_is_documented_and_every_documented_field_exists() {
    let (top, docs) = documented();
    assert_eq!(
        top,
        accepted::<Config>(),
        "top-level sections (`## ` headings)"
    );
    let types: [(&str, BTreeSet<String>); 14] = [
        ("dataplane", accepted::<DataplaneConfig>()),
        ("dataplane.ports[]", accepted::<PortConfig>()),
        ("gateway", accepted::<GatewayConfig>()),
        ("ipsec", accepted::<IpsecSection>()),
        ("tunnels", accepted::<TunnelConfig>()),
        ("tunnels[].health_check", accepted::<HealthCheckConfig>()),
        ("tunnels[].ipsec", accepted::<TunnelIpsecConfig>()),
        ("tunnels[].ipsec.outbound", accepted::<SaConfig>()),
        ("tunnels[].ipsec.inbound[]", accepted::<SaConfig>()),
        ("routes", accepted::<RouteConfig>()),
        ("ecmp", accepted::<EcmpConfig>()),
        ("icmp", accepted::<IcmpConfig>()),
        ("reassembly", accepted::<ReassemblyConfig>()),
        ("stats", accepted::<StatsConfig>()),
    ];
    for (section, fields) in &types {
        let doc = docs.get(*section).cloned().unwrap_or_default();
        let missing: Vec<_> = fields.difference(&doc).collect();
        let unknown: Vec<_> = doc.difference(fields).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "docs/config.md, section `{section}`: undocumented fields {missing:?}; documented \
             fields the parser does not accept {unknown:?}"
        );
    }
    let covered: BTreeSet<&str> = types.iter().map(|(s, _)| *s).collect();
    let extra: Vec<_> = docs
        .keys()
        .filter(|s| !covered.contains(s.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "field tables of unchecked sections: {extra:?}"
    );
}

#[test]
fn the_extraction_sees_a_missing_and_an_invented_field() {
    // The check above can fail: serde lists every field, and the docs parser finds rows.
    let fields = accepted::<StatsConfig>();
    assert_eq!(
        fields,
        BTreeSet::from(["interval_ms".to_string(), "prometheus_listen".to_string()])
    );
    let (_, docs) = documented();
    assert!(docs["dataplane.ports[]"].contains("mac"));
    assert!(!docs["stats"].contains("no_such_field"));
}
