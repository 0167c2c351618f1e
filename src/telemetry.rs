//! Conduit's DPDK telemetry commands, answered from the [`MetricsHub`]'s latest snapshot.
//!
//! Read them with `dpdk-telemetry.py -f <file-prefix>` (or any client of the
//! `dpdk_telemetry.v2` socket):
//!
//! | command | answer |
//! |---|---|
//! | `/conduit/info` | version, DPDK version, config path, uptime, table generation, reloads, counts |
//! | `/conduit/tunnels[,OFFSET]` | `total`, `offset`, and parallel arrays `names`, `kinds`, `states`, `penalties` for up to [`TUNNELS_PAGE`] tunnels from OFFSET |
//! | `/conduit/tunnel,NAME` | every field of one tunnel; RTT percentiles over the replies of the last `rtt_window_s` (absent when none came), packets per second (absent until measured); for an IPsec tunnel its SAs as the `sa_`-prefixed parallel arrays of `/conduit/sas` |
//! | `/conduit/ports` | one dict per port, keyed by the port's index (`"0"`, `"1"`, ...) |
//! | `/conduit/cores` | one dict per worker, keyed by the lcore id |
//! | `/conduit/drops` | drop reason → packets |
//! | `/conduit/sas[,OFFSET]` | `total`, `offset`, and parallel arrays `tunnels`, `directions`, `spis`, `packets`, `bytes`, `auth_failures`, `replays`, `last_seqs` for up to [`SAS_PAGE`] IPsec SAs from OFFSET |
//!
//! A missing or unknown tunnel name, or a bad offset, is answered `null` (DPDK's convention).
//!
//! # Why this shape
//!
//! DPDK 22.11 accepts only `[A-Za-z0-9_/]` in dict keys and supports no array of dicts (see
//! [`dataplane::telemetry`]). Tunnel names may contain `-` and `.`, and port names `:` and `.`,
//! so names are values, never keys: the tunnel list is column-wise (arrays of the same length,
//! index *i* is one tunnel), and ports and cores are keyed by their numbers. The list is paged
//! because the whole answer must fit DPDK's 16 KiB buffer: 128 tunnels of the longest name
//! (64 bytes) take under 13 KiB, and 64 SAs with the longest names and counters near 2^64
//! about 12 KiB. SAs are column-wise too (an SPI is a number in `spis`, never a key), and no
//! answer carries an SA's key. Strings longer than DPDK's 127-byte limit (a long config path)
//! are shortened at a character boundary and end in `...`.

use std::sync::Arc;

use dataplane::error::DpdkError;
use dataplane::telemetry::{self, Array, CommandError, Dict, Reply, Value, MAX_STRING_LEN};

use control::metrics::{MetricsHub, SaMetrics, Snapshot, TunnelMetrics};

/// Tunnels per `/conduit/tunnels` answer.
pub const TUNNELS_PAGE: usize = 128;
/// SAs per `/conduit/sas` answer.
pub const SAS_PAGE: usize = 64;

/// Every command: (name, help, answer function).
type Answer = fn(&Snapshot, Option<&str>) -> Result<Reply, CommandError>;
pub const COMMANDS: &[(&str, &str, Answer)] = &[
    (
        "/conduit/info",
        "Conduit appliance: versions, config, uptime, table generation, reloads.",
        info,
    ),
    (
        "/conduit/tunnels",
        "Tunnel names, kinds, states and penalties (column-wise). Param: offset (pages of 128).",
        tunnels,
    ),
    (
        "/conduit/tunnel",
        "One tunnel's state, penalty, probes, recent RTT percentiles (us), counters, rates. Param: name.",
        tunnel,
    ),
    (
        "/conduit/ports",
        "Per-port packets, bytes, missed, errors and TX drops, keyed by port index.",
        ports,
    ),
    (
        "/conduit/cores",
        "Per-worker packets, busy cycles and polls, keyed by lcore id.",
        cores,
    ),
    ("/conduit/drops", "Packets dropped, by reason.", drops),
    (
        "/conduit/sas",
        "IPsec SAs: tunnel, direction, SPI, packets, bytes, auth failures, replays, last seq (column-wise). Param: offset (pages of 64).",
        sas,
    ),
];

/// Registers every command of [`COMMANDS`], each reading `hub`'s snapshot at request time.
/// Calling it again (after a reload, with a new hub) replaces the previous handlers.
pub fn register(hub: Arc<MetricsHub>) -> Result<(), DpdkError> {
    for &(name, help, answer) in COMMANDS {
        let hub = hub.clone();
        telemetry::register_command(name, help, move |params| answer(&hub.current(), params))?;
    }
    Ok(())
}

/// `s` cut to DPDK's string limit at a character boundary.
pub(crate) fn short(s: &str) -> String {
    if s.len() <= MAX_STRING_LEN {
        return s.to_string();
    }
    let mut end = MAX_STRING_LEN - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn no_params(params: Option<&str>) -> Result<(), CommandError> {
    match params {
        None | Some("") => Ok(()),
        Some(p) => Err(CommandError::new(format!("takes no parameter (got {p:?})"))),
    }
}

pub fn info(s: &Snapshot, params: Option<&str>) -> Result<Reply, CommandError> {
    no_params(params)?;
    let a = &s.appliance;
    let mut d = Dict::new();
    d.string("version", short(&a.version))
        .string("dpdk_version", short(&a.dpdk_version))
        .string("config_path", short(&a.config_path))
        .uint(
            "uptime_ms",
            a.uptime.as_millis().try_into().unwrap_or(u64::MAX),
        )
        .uint("table_generation", a.table_generation)
        .uint("reloads_ok", a.reloads_ok)
        .uint("reloads_failed", a.reloads_failed)
        .uint("control_loop_iterations", a.control_loop_iterations)
        .uint(
            "control_loop_last_iteration_ms",
            a.control_loop_last_iteration
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX),
        )
        .uint("control_loop_stalls", a.control_loop_stalls)
        .uint(
            "control_loop_longest_gap_us",
            a.control_loop_longest_gap
                .as_micros()
                .try_into()
                .unwrap_or(u64::MAX),
        )
        .uint("probe_reply_forged", a.probe_reply_forged)
        .uint("probe_reply_wrong_path", a.probe_reply_wrong_path)
        .uint("probe_reply_stale", a.probe_reply_stale)
        .uint("tunnels", s.tunnels.len() as u64)
        .uint("ports", s.ports.len() as u64)
        .uint("workers", s.cores.len() as u64);
    Ok(Reply::Dict(d))
}

/// The page of `items` that starts at the offset in `params` (none: 0); an offset beyond the
/// end, or not a number, is an error (the end itself gives an empty page).
fn page<'a, T>(
    items: &'a [T],
    params: Option<&str>,
    size: usize,
    what: &str,
) -> Result<(usize, &'a [T]), CommandError> {
    let offset = match params.map(str::trim) {
        None | Some("") => 0,
        Some(p) => p
            .parse::<usize>()
            .map_err(|_| CommandError::new(format!("offset {p:?} is not a number")))?,
    };
    if offset > items.len() {
        return Err(CommandError::new(format!(
            "offset {offset} beyond {} {what}",
            items.len()
        )));
    }
    Ok((offset, &items[offset..(offset + size).min(items.len())]))
}

pub fn tunnels(s: &Snapshot, params: Option<&str>) -> Result<Reply, CommandError> {
    let (offset, page) = page(&s.tunnels, params, TUNNELS_PAGE, "tunnels")?;
    let col = |f: fn(&TunnelMetrics) -> String| Array::String(page.iter().map(f).collect());
    let mut d = Dict::new();
    d.uint("total", s.tunnels.len() as u64)
        .uint("offset", offset as u64)
        .insert("names", col(|t| short(&t.name)).into())
        .insert("kinds", col(|t| t.kind.as_str().to_string()).into())
        .insert("states", col(|t| t.status.as_str().to_string()).into())
        .insert(
            "penalties",
            Value::Array(Array::UInt(
                page.iter().map(|t| u64::from(t.penalty)).collect(),
            )),
        );
    Ok(Reply::Dict(d))
}

pub fn tunnel(s: &Snapshot, params: Option<&str>) -> Result<Reply, CommandError> {
    let name = params
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| CommandError::new("needs a tunnel name: /conduit/tunnel,NAME"))?;
    let t = s
        .tunnels
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| CommandError::new(format!("no tunnel {name:?}")))?;
    let mut d = Dict::new();
    d.string("name", short(&t.name))
        .string("kind", t.kind.as_str())
        .string("state", t.status.as_str())
        .uint("penalty", u64::from(t.penalty))
        .uint("state_changes", t.state_changes)
        .uint("probes_sent", t.probes_sent)
        .uint("probe_replies", t.probe_replies)
        .uint("probes_lost", t.probes_lost)
        .uint("probe_late_replies", t.probe_late_replies)
        .uint("rtt_window_s", t.rtt_window.as_secs());
    if let Some(r) = &t.rtt {
        d.uint("rtt_window_samples", r.samples)
            .uint("rtt_p50_us", r.p50_us)
            .uint("rtt_p90_us", r.p90_us)
            .uint("rtt_p99_us", r.p99_us)
            .uint("rtt_max_us", r.max_us);
    }
    if let Some(ago) = t.last_change_ago {
        d.uint(
            "last_change_ms_ago",
            ago.as_millis().try_into().unwrap_or(u64::MAX),
        )
        .string("last_change_reason", short(&t.last_change_reason));
    }
    d.uint("rx_packets", t.rx_packets)
        .uint("rx_bytes", t.rx_bytes);
    if let Some(pps) = t.rx_pps {
        d.uint("rx_pps", pps);
    }
    d.uint("tx_packets", t.tx_packets)
        .uint("tx_bytes", t.tx_bytes);
    if let Some(pps) = t.tx_pps {
        d.uint("tx_pps", pps);
    }
    if t.kind == control::config::TunnelKind::Ipsec {
        let sas: Vec<&SaMetrics> = s.sas.iter().filter(|x| x.tunnel == t.name).collect();
        sa_columns(&mut d, "sa_", &sas);
    }
    Ok(Reply::Dict(d))
}

/// The SAs as parallel arrays named `<prefix>directions`, `<prefix>spis`, ... (everything of
/// `/conduit/sas` but the tunnel names).
fn sa_columns(d: &mut Dict, prefix: &str, sas: &[&SaMetrics]) {
    let uints =
        |f: fn(&SaMetrics) -> u64| Value::Array(Array::UInt(sas.iter().map(|x| f(x)).collect()));
    d.insert(
        format!("{prefix}directions"),
        Value::Array(Array::String(
            sas.iter()
                .map(|x| x.direction.as_str().to_string())
                .collect(),
        )),
    )
    .insert(format!("{prefix}spis"), uints(|x| u64::from(x.spi)))
    .insert(format!("{prefix}packets"), uints(|x| x.packets))
    .insert(format!("{prefix}bytes"), uints(|x| x.bytes))
    .insert(format!("{prefix}auth_failures"), uints(|x| x.auth_failures))
    .insert(format!("{prefix}replays"), uints(|x| x.replays))
    .insert(format!("{prefix}last_seqs"), uints(|x| x.last_seq));
}

pub fn sas(s: &Snapshot, params: Option<&str>) -> Result<Reply, CommandError> {
    let (offset, page) = page(&s.sas, params, SAS_PAGE, "SAs")?;
    let mut d = Dict::new();
    d.uint("total", s.sas.len() as u64)
        .uint("offset", offset as u64)
        .insert(
            "tunnels",
            Value::Array(Array::String(
                page.iter().map(|x| short(&x.tunnel)).collect(),
            )),
        );
    sa_columns(&mut d, "", &page.iter().collect::<Vec<_>>());
    Ok(Reply::Dict(d))
}

pub fn ports(s: &Snapshot, params: Option<&str>) -> Result<Reply, CommandError> {
    no_params(params)?;
    let mut d = Dict::new();
    for (i, p) in s.ports.iter().enumerate() {
        let mut e = Dict::new();
        e.string("name", short(&p.name))
            .uint("rx_packets", p.rx_packets)
            .uint("rx_bytes", p.rx_bytes)
            .uint("tx_packets", p.tx_packets)
            .uint("tx_bytes", p.tx_bytes)
            .uint("rx_missed", p.rx_missed)
            .uint("rx_errors", p.rx_errors)
            .uint("tx_dropped", p.tx_dropped);
        d.insert(i.to_string(), Value::Dict(e));
    }
    Ok(Reply::Dict(d))
}

pub fn cores(s: &Snapshot, params: Option<&str>) -> Result<Reply, CommandError> {
    no_params(params)?;
    let mut d = Dict::new();
    for c in &s.cores {
        let mut e = Dict::new();
        e.uint("rx_packets", c.rx_packets)
            .uint("tx_packets", c.tx_packets)
            .uint("busy_cycles", c.busy_cycles)
            .uint("polls", c.polls);
        d.insert(c.core.to_string(), Value::Dict(e));
    }
    Ok(Reply::Dict(d))
}

pub fn drops(s: &Snapshot, params: Option<&str>) -> Result<Reply, CommandError> {
    no_params(params)?;
    let mut d = Dict::new();
    for x in &s.drops {
        d.uint(x.reason.clone(), x.count);
    }
    Ok(Reply::Dict(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use conduit_packet::esp::sa::SaDirection;
    use control::config::TunnelKind;
    use control::metrics::{DropCount, PortMetrics, RttSummary, TunnelStatus};

    fn snap(n_tunnels: usize) -> Snapshot {
        let mut s = Snapshot::default();
        for i in 0..n_tunnels {
            let mut t = TunnelMetrics::new(
                format!("{}-{i:04}", "t".repeat(58)),
                if i % 2 == 0 {
                    TunnelKind::Gre
                } else {
                    TunnelKind::Ipsec
                },
                TunnelStatus::Checked(conduit_packet::route::Health::Down),
            );
            t.penalty = 1_000_000;
            t.probes_sent = i as u64;
            s.tunnels.push(t);
        }
        s
    }

    /// SA `k` of a tunnel: the outbound one (SPI 0x2000) first, then inbound 0x1000 + k.
    fn sa(tunnel: &str, k: usize, n: u64) -> SaMetrics {
        let (direction, spi) = match k {
            0 => (SaDirection::Outbound, 0x2000),
            k => (SaDirection::Inbound, 0x1000 + k as u32),
        };
        SaMetrics {
            tunnel: tunnel.to_string(),
            direction,
            spi,
            packets: n,
            bytes: n.saturating_mul(100),
            auth_failures: k as u64,
            replays: 2 * k as u64,
            last_seq: n.saturating_add(k as u64),
        }
    }

    fn uints(v: Option<&Value>) -> Vec<u64> {
        match v {
            Some(Value::Array(Array::UInt(x))) => x.clone(),
            other => panic!("not a uint array: {other:?}"),
        }
    }

    fn strings(v: Option<&Value>) -> Vec<String> {
        match v {
            Some(Value::Array(Array::String(x))) => x.clone(),
            other => panic!("not a string array: {other:?}"),
        }
    }

    fn uint(d: &Dict, k: &str) -> u64 {
        match d.get(k) {
            Some(Value::UInt(x)) => *x,
            other => panic!("{k}: {other:?}"),
        }
    }

    fn dict(r: Reply) -> Dict {
        match r {
            Reply::Dict(d) => d,
            other => panic!("not a dict: {other:?}"),
        }
    }

    #[test]
    fn every_answer_fits_dpdk_even_at_scale() {
        // Many tunnels with the longest names, many drop reasons, 32 ports, a long path.
        let mut s = snap(1000);
        s.appliance.config_path = "/x".repeat(200);
        for i in 0..32 {
            s.ports.push(PortMetrics {
                name: format!("0000:{i:02x}:00.0"),
                rx_packets: u64::MAX,
                ..Default::default()
            });
        }
        for r in conduit_packet::pipeline::DropReason::all() {
            s.drops.push(DropCount {
                reason: r.as_str().to_string(),
                count: u64::MAX,
            });
        }
        for t in &mut s.tunnels {
            t.rtt = Some(RttSummary {
                samples: u64::MAX,
                p50_us: u64::MAX,
                p90_us: u64::MAX,
                p99_us: u64::MAX,
                max_us: u64::MAX,
            });
            t.rx_pps = Some(u64::MAX);
            t.tx_pps = Some(u64::MAX);
        }
        // Every IPsec tunnel with the most SAs it can have, counters at their widest.
        for t in s.tunnels.iter().filter(|t| t.kind == TunnelKind::Ipsec) {
            for k in 0..=conduit_packet::esp::sa::MAX_INBOUND {
                s.sas.push(sa(&t.name, k, u64::MAX));
            }
        }
        for &(name, _, answer) in COMMANDS {
            let params = match name {
                "/conduit/tunnel" => Some(s.tunnels[999].name.as_str()),
                "/conduit/tunnels" => Some("872"),
                "/conduit/sas" => Some("640"),
                _ => None,
            };
            let reply = answer(&s, params).unwrap_or_else(|e| panic!("{name}: {e}"));
            reply
                .validate(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for &(name, help, _) in COMMANDS {
            assert!(telemetry::valid_command(name), "{name}");
            assert!(help.len() <= MAX_STRING_LEN, "{name}: help too long");
        }
    }

    #[test]
    fn tunnels_are_paged_column_wise() {
        let s = snap(300);
        let d = dict(tunnels(&s, None).unwrap());
        assert_eq!(uint(&d, "total"), 300);
        assert_eq!(uint(&d, "offset"), 0);
        let names = strings(d.get("names"));
        assert_eq!(names.len(), TUNNELS_PAGE);
        assert_eq!(names[5], s.tunnels[5].name);
        assert_eq!(strings(d.get("kinds"))[5], "ipsec");
        assert_eq!(strings(d.get("states"))[0], "down");

        let d = dict(tunnels(&s, Some("256")).unwrap());
        let names = strings(d.get("names"));
        assert_eq!(names.len(), 44);
        assert_eq!(names[0], s.tunnels[256].name);
        match d.get("penalties") {
            Some(Value::Array(Array::UInt(p))) => assert_eq!(p.len(), 44),
            other => panic!("{other:?}"),
        }
        // The end is a valid (empty) page; beyond it and garbage are errors.
        assert!(strings(dict(tunnels(&s, Some("300")).unwrap()).get("names")).is_empty());
        assert!(tunnels(&s, Some("301")).is_err());
        assert!(tunnels(&s, Some("x")).is_err());
    }

    #[test]
    fn one_tunnel_in_detail() {
        let mut s = snap(3);
        let name = s.tunnels[1].name.clone();
        let d = dict(tunnel(&s, Some(&name)).unwrap());
        assert_eq!(uint(&d, "probes_sent"), 1);
        assert_eq!(d.get("kind"), Some(&Value::String("ipsec".into())));
        assert!(d.get("rtt_p50_us").is_none(), "no RTT without samples");
        assert_eq!(uint(&d, "rtt_window_s"), 60, "the window is always stated");
        assert!(d.get("rx_pps").is_none() && d.get("tx_pps").is_none());

        s.tunnels[1].rtt = Some(RttSummary {
            samples: 4,
            p50_us: 10,
            p90_us: 20,
            p99_us: 30,
            max_us: 40,
        });
        s.tunnels[1].rx_pps = Some(0);
        s.tunnels[1].tx_pps = Some(1500);
        let d = dict(tunnel(&s, Some(&name)).unwrap());
        assert_eq!(uint(&d, "rtt_window_samples"), 4);
        assert_eq!(uint(&d, "rtt_p90_us"), 20);
        assert_eq!(uint(&d, "rtt_max_us"), 40);
        assert_eq!(uint(&d, "rx_pps"), 0);
        assert_eq!(uint(&d, "tx_pps"), 1500);
        assert!(tunnel(&s, Some("nope")).is_err());
        assert!(tunnel(&s, None).is_err());
    }

    #[test]
    fn sas_are_paged_column_wise() {
        let s = {
            let mut s = snap(40);
            for t in 0..40 {
                let name = s.tunnels[t].name.clone();
                for k in 0..3 {
                    s.sas.push(sa(&name, k, (t * 10 + k) as u64));
                }
            }
            s
        };
        let d = dict(sas(&s, None).unwrap());
        assert_eq!(uint(&d, "total"), 120);
        assert_eq!(uint(&d, "offset"), 0);
        let tunnels = strings(d.get("tunnels"));
        assert_eq!(tunnels.len(), SAS_PAGE);
        assert_eq!(tunnels[4], s.tunnels[1].name);
        assert_eq!(
            strings(d.get("directions"))[3..5],
            ["outbound".to_string(), "inbound".to_string()]
        );
        assert_eq!(uints(d.get("spis"))[3..6], [0x2000, 0x1001, 0x1002]);
        assert_eq!(uints(d.get("packets"))[5], 12);
        assert_eq!(uints(d.get("bytes"))[5], 1200);
        assert_eq!(uints(d.get("auth_failures"))[5], 2);
        assert_eq!(uints(d.get("replays"))[5], 4);
        assert_eq!(uints(d.get("last_seqs"))[5], 14);
        for k in [
            "directions",
            "spis",
            "packets",
            "bytes",
            "auth_failures",
            "replays",
            "last_seqs",
        ] {
            match d.get(k) {
                Some(Value::Array(Array::UInt(x))) => assert_eq!(x.len(), SAS_PAGE, "{k}"),
                Some(Value::Array(Array::String(x))) => assert_eq!(x.len(), SAS_PAGE, "{k}"),
                other => panic!("{k}: {other:?}"),
            }
        }
        let d = dict(sas(&s, Some("64")).unwrap());
        assert_eq!(strings(d.get("tunnels")).len(), 120 - 64);
        assert_eq!(uints(d.get("packets"))[0], s.sas[64].packets);
        assert!(strings(dict(sas(&s, Some("120")).unwrap()).get("tunnels")).is_empty());
        assert!(sas(&s, Some("121")).is_err());
        assert!(sas(&s, Some("x")).is_err());
        // Without IPsec: an empty but well-formed answer.
        let d = dict(sas(&snap(2), None).unwrap());
        assert_eq!(uint(&d, "total"), 0);
        assert!(uints(d.get("spis")).is_empty());
    }

    #[test]
    fn an_ipsec_tunnel_lists_its_own_sas() {
        let mut s = snap(4);
        let (gre, ipsec, other) = (
            s.tunnels[0].name.clone(),
            s.tunnels[1].name.clone(),
            s.tunnels[3].name.clone(),
        );
        s.sas = vec![
            sa(&other, 0, 99),
            sa(&ipsec, 0, 7),
            sa(&ipsec, 1, 5),
            sa(&other, 1, 98),
        ];
        let d = dict(tunnel(&s, Some(&ipsec)).unwrap());
        assert_eq!(
            strings(d.get("sa_directions")),
            ["outbound".to_string(), "inbound".to_string()]
        );
        assert_eq!(uints(d.get("sa_spis")), [0x2000, 0x1001]);
        assert_eq!(uints(d.get("sa_packets")), [7, 5]);
        assert_eq!(uints(d.get("sa_bytes")), [700, 500]);
        assert_eq!(uints(d.get("sa_auth_failures")), [0, 1]);
        assert_eq!(uints(d.get("sa_replays")), [0, 2]);
        assert_eq!(uints(d.get("sa_last_seqs")), [7, 6]);
        // A GRE tunnel has no SA fields; an IPsec tunnel without SAs has empty ones.
        let d = dict(tunnel(&s, Some(&gre)).unwrap());
        assert!(d.entries().iter().all(|(k, _)| !k.starts_with("sa_")));
        s.sas.clear();
        let d = dict(tunnel(&s, Some(&ipsec)).unwrap());
        assert!(uints(d.get("sa_spis")).is_empty());
    }

    #[test]
    fn long_strings_are_shortened_on_a_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let s = short(&long);
        assert!(s.len() <= MAX_STRING_LEN);
        assert!(s.ends_with("..."));
        assert_eq!(short("abc"), "abc");
    }
}
