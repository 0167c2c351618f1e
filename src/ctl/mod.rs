//! `conduit ctl`: the operator command line over a running appliance (docs/operations.md, "The
//! operator command line"). It talks to the appliance's DPDK telemetry socket ([`client`]) with
//! the `/conduit/...` commands of [`crate::telemetry`] and [`crate::operator`], and prints
//! aligned tables, or with `--json` the appliance's JSON answers, one per line.

pub mod client;

use std::fmt::Write as _;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use client::Client;

/// `conduit ctl` and its options.
#[derive(Args, Debug)]
pub struct Ctl {
    /// The appliance's EAL --file-prefix (DPDK's default: rte).
    #[arg(long, value_name = "PREFIX", default_value = "rte", global = true)]
    pub file_prefix: String,
    /// Print the appliance's JSON answers instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Show state and counters.
    #[command(subcommand)]
    Show(Show),
    /// Which prefix, routes and next hop a flow gets in the published table.
    Lookup {
        src: std::net::Ipv4Addr,
        dst: std::net::Ipv4Addr,
        /// tcp, udp, icmp or a number; with SPORT and DPORT.
        #[arg(requires_all = ["sport", "dport"])]
        proto: Option<String>,
        sport: Option<u16>,
        dport: Option<u16>,
    },
    /// Record the next N packets of every worker (at most 64 each): flow, path and verdict.
    Trace {
        n: usize,
        /// How long to wait for the packets, in seconds.
        #[arg(long, default_value_t = 5.0, value_name = "SECS")]
        wait: f64,
        /// Only packets from or to this IPv4 address (outer or plain header).
        #[arg(long, value_name = "ADDRESS")]
        host: Option<std::net::Ipv4Addr>,
    },
    /// Set a tunnel administratively up or down (kept across reloads until set again).
    Tunnel {
        name: String,
        #[command(subcommand)]
        action: TunnelAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum Show {
    /// Every tunnel: state, penalty, RTT, last change, traffic.
    Tunnels,
    /// One tunnel in detail.
    Tunnel { name: String },
    /// Routes with effective priorities; those inside PREFIX only if given.
    Routes { prefix: Option<String> },
    /// Packets dropped, by reason.
    Drops {
        /// The drops each port's device counts.
        #[arg(long, conflicts_with = "core")]
        port: bool,
        /// Per worker core (not available: see the output).
        #[arg(long)]
        core: bool,
    },
    /// Per-port counters.
    Ports,
    /// Per-worker counters.
    Cores,
    /// IPsec SAs: packets, bytes, authentication failures, replays, last sequence number.
    Sas,
}

#[derive(Subcommand, Debug)]
pub enum TunnelAction {
    /// `admin up` or `admin down`.
    Admin { state: AdminArg },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminArg {
    Up,
    Down,
}

/// Runs `ctl` and returns what to print.
pub fn run(ctl: &Ctl) -> Result<String> {
    let mut c = Client::connect_prefix(&ctl.file_prefix)?;
    let mut session = Session {
        client: &mut c,
        json: ctl.json,
        raw: String::new(),
    };
    let table = match &ctl.command {
        CtlCommand::Show(show) => session.show(show)?,
        CtlCommand::Lookup {
            src,
            dst,
            proto,
            sport,
            dport,
        } => {
            let mut cmd = format!("/conduit/lookup,{src},{dst}");
            if let (Some(p), Some(s), Some(d)) = (proto, sport, dport) {
                let p = crate::operator::protocol(p).map_err(anyhow::Error::msg)?;
                write!(cmd, ",{p},{s},{d}")?;
            }
            let r = session.call(&cmd)?;
            lookup_text(&r, &format!("{src}"), &format!("{dst}"))
        }
        CtlCommand::Trace { n, wait, host } => session.trace(*n, *host, *wait)?,
        CtlCommand::Tunnel {
            name,
            action: TunnelAction::Admin { state },
        } => {
            let state = match state {
                AdminArg::Up => "up",
                AdminArg::Down => "down",
            };
            let r = session.call(&format!("/conduit/admin,{name},{state}"))?;
            format!(
                "tunnel {name}: admin {state}, state {}, table generation {}\n",
                text(&r["state"]),
                text(&r["generation"])
            )
        }
    };
    Ok(if ctl.json { session.raw } else { table })
}

/// The connection and what `--json` prints.
struct Session<'a> {
    client: &'a mut Client,
    json: bool,
    raw: String,
}

impl Session<'_> {
    fn call(&mut self, cmd: &str) -> Result<Value> {
        let (text, r) = self.client.call_raw(cmd)?;
        if self.json {
            self.raw.push_str(text.trim_end());
            self.raw.push('\n');
        }
        Ok(r)
    }

    /// Every tunnel name, page by page.
    fn tunnel_names(&mut self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        loop {
            let r = self.call(&format!("/conduit/tunnels,{}", names.len()))?;
            let page: Vec<String> = r["names"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            let total = r["total"].as_u64().unwrap_or(0) as usize;
            let empty = page.is_empty();
            names.extend(page);
            if empty || names.len() >= total {
                return Ok(names);
            }
        }
    }

    /// Every SA's row, page by page.
    fn sa_rows(&mut self) -> Result<Vec<Vec<String>>> {
        let mut rows = Vec::new();
        loop {
            let r = self.call(&format!("/conduit/sas,{}", rows.len()))?;
            let page = sa_rows(&r, "", true);
            let total = r["total"].as_u64().unwrap_or(0) as usize;
            let empty = page.is_empty();
            rows.extend(page);
            if empty || rows.len() >= total {
                return Ok(rows);
            }
        }
    }

    fn tunnel(&mut self, name: &str) -> Result<Value> {
        // The appliance answers an unknown name with DPDK's bare `null`.
        self.call(&format!("/conduit/tunnel,{name}")).map_err(|e| {
            if e.to_string().contains(client::NULL_ANSWER) {
                anyhow::anyhow!("no tunnel {name:?}")
            } else {
                e
            }
        })
    }

    /// Arms the trace, waits until every worker recorded its packets (or `wait` seconds), and
    /// tables what was recorded.
    fn trace(&mut self, n: usize, host: Option<std::net::Ipv4Addr>, wait: f64) -> Result<String> {
        let names = self.tunnel_names()?;
        let host = host.map_or(String::new(), |h| format!(",{h}"));
        let armed = self.call(&format!("/conduit/trace,{n}{host}"))?;
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_secs_f64(wait.clamp(0.0, 3600.0));
        let target = armed["armed_per_worker"].as_u64().unwrap_or(0)
            * armed["workers"].as_u64().unwrap_or(0);
        let mut rows = loop {
            // Only the final read goes to --json.
            let (raw, first) = self.client.call_raw("/conduit/trace_read,0")?;
            let total = first["total"].as_u64().unwrap_or(0);
            if total >= target || std::time::Instant::now() >= deadline {
                if self.json {
                    self.raw.push_str(raw.trim_end());
                    self.raw.push('\n');
                }
                let mut rows = trace_rows(&first, &names);
                while (rows.len() as u64) < total {
                    let r = self.call(&format!("/conduit/trace_read,{}", rows.len()))?;
                    let page = trace_rows(&r, &names);
                    if page.is_empty() {
                        break;
                    }
                    rows.extend(page);
                }
                break rows;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let got = rows.len() as u64;
        rows.sort_by(|a, b| a[0].cmp(&b[0]));
        let mut out = table(
            &[
                "CORE", "IN_PORT", "SRC", "DST", "PROTO", "SPORT", "DPORT", "VERDICT",
            ],
            &rows,
        );
        if got < target {
            let _ = writeln!(
                out,
                "({got} of {target} packets arrived within {wait} s; the rest stay armed)"
            );
        }
        Ok(out)
    }

    fn show(&mut self, show: &Show) -> Result<String> {
        Ok(match show {
            Show::Tunnels => {
                let names = self.tunnel_names()?;
                let mut tunnels = Vec::new();
                for n in &names {
                    tunnels.push(self.tunnel(n)?);
                }
                tunnels_table(&tunnels)
            }
            Show::Tunnel { name } => {
                let r = self.tunnel(name)?;
                // In the appliance's order (a JSON object here is sorted by key), then anything
                // this client does not know yet.
                let known = DETAIL_ORDER.iter().filter_map(|&k| Some((k, r.get(k)?)));
                let extra = entries(&r)
                    .filter(|(k, _)| {
                        !DETAIL_ORDER.contains(&k.as_str()) && !k.starts_with(SA_PREFIX)
                    })
                    .map(|(k, v)| (k.as_str(), v));
                let rows: Vec<Vec<String>> = known
                    .chain(extra)
                    .map(|(k, v)| vec![format!("{k}:"), text(v)])
                    .collect();
                let mut out = table(&[], &rows);
                // An IPsec tunnel's SAs, as in `show sas`.
                if r.get(format!("{SA_PREFIX}spis")).is_some() {
                    out.push('\n');
                    out.push_str(&table(&SA_COLUMNS[1..], &sa_rows(&r, SA_PREFIX, false)));
                }
                out
            }
            Show::Routes { prefix } => {
                let mut rows = Vec::new();
                loop {
                    let mut cmd = format!("/conduit/routes,{}", rows.len());
                    if let Some(p) = prefix {
                        write!(cmd, ",{p}")?;
                    }
                    let r = self.call(&cmd)?;
                    let page = route_rows(&r);
                    let total = r["total"].as_u64().unwrap_or(0) as usize;
                    let empty = page.is_empty();
                    rows.extend(page);
                    if empty || rows.len() >= total {
                        break;
                    }
                }
                table(&ROUTE_COLUMNS, &rows)
            }
            Show::Drops { port: true, .. } => {
                let r = self.call("/conduit/ports")?;
                let rows = entries(&r)
                    .map(|(i, p)| {
                        vec![
                            i.to_string(),
                            text(&p["name"]),
                            text(&p["rx_missed"]),
                            text(&p["rx_errors"]),
                            text(&p["tx_dropped"]),
                        ]
                    })
                    .collect::<Vec<_>>();
                let mut out = table(
                    &["PORT", "NAME", "RX_MISSED", "RX_ERRORS", "TX_DROPPED"],
                    &rows,
                );
                out.push_str(
                    "(drop reasons are counted for the whole appliance, not per port: \
                     `show drops`)\n",
                );
                out
            }
            Show::Drops { core: true, .. } => bail!(
                "drops per core are not available: the appliance counts drop reasons for the \
                 whole appliance (`show drops`); per-core packets are in `show cores`"
            ),
            Show::Drops { .. } => {
                let r = self.call("/conduit/drops")?;
                let rows: Vec<Vec<String>> = entries(&r)
                    .filter(|(_, v)| v.as_u64() != Some(0))
                    .map(|(k, v)| vec![k.to_string(), text(v)])
                    .collect();
                if rows.is_empty() {
                    "no packet dropped\n".to_string()
                } else {
                    table(&["REASON", "PACKETS"], &rows)
                }
            }
            Show::Ports => {
                let r = self.call("/conduit/ports")?;
                let keys = [
                    "name",
                    "rx_packets",
                    "rx_bytes",
                    "tx_packets",
                    "tx_bytes",
                    "rx_missed",
                    "rx_errors",
                    "tx_dropped",
                ];
                let rows = keyed_rows(&r, &keys);
                table(
                    &[
                        "PORT",
                        "NAME",
                        "RX_PKTS",
                        "RX_BYTES",
                        "TX_PKTS",
                        "TX_BYTES",
                        "RX_MISSED",
                        "RX_ERRORS",
                        "TX_DROPPED",
                    ],
                    &rows,
                )
            }
            Show::Sas => {
                let rows = self.sa_rows()?;
                if rows.is_empty() {
                    "no IPsec SA\n".to_string()
                } else {
                    table(&SA_COLUMNS, &rows)
                }
            }
            Show::Cores => {
                let r = self.call("/conduit/cores")?;
                let keys = ["rx_packets", "tx_packets", "busy_cycles", "polls"];
                let rows = keyed_rows(&r, &keys);
                table(
                    &["LCORE", "RX_PKTS", "TX_PKTS", "BUSY_CYCLES", "POLLS"],
                    &rows,
                )
            }
        })
    }
}

/// The fields of `/conduit/tunnel` in the order the appliance sends them.
const DETAIL_ORDER: &[&str] = &[
    "name",
    "kind",
    "state",
    "penalty",
    "state_changes",
    "last_change_ms_ago",
    "last_change_reason",
    "probes_sent",
    "probe_replies",
    "probes_lost",
    "probe_late_replies",
    "rtt_window_s",
    "rtt_window_samples",
    "rtt_p50_us",
    "rtt_p90_us",
    "rtt_p99_us",
    "rtt_max_us",
    "rx_packets",
    "rx_bytes",
    "rx_pps",
    "tx_packets",
    "tx_bytes",
    "tx_pps",
];

/// The columns of `show tunnels`.
const TUNNEL_COLUMNS: [&str; 14] = [
    "NAME", "KIND", "STATE", "PENALTY", "RTT_P50", "RTT_P99", "CHANGED", "WHY", "RX_PKTS",
    "RX_BYTES", "RX_PPS", "TX_PKTS", "TX_BYTES", "TX_PPS",
];

/// The columns of `show sas` (`show tunnel` leaves out the first).
const SA_COLUMNS: [&str; 8] = [
    "TUNNEL",
    "DIR",
    "SPI",
    "PACKETS",
    "BYTES",
    "AUTH_FAIL",
    "REPLAYS",
    "LAST_SEQ",
];

/// What starts the names of an IPsec tunnel's SA arrays in `/conduit/tunnel`.
const SA_PREFIX: &str = "sa_";

/// The rows of the column-wise SA arrays of `r` named `<prefix>directions`, ...: `in`/`out`
/// and the SPI in hex as `ip xfrm` shows it; with the tunnel names (`tunnels`) first if
/// `with_tunnel`.
fn sa_rows(r: &Value, prefix: &str, with_tunnel: bool) -> Vec<Vec<String>> {
    let col = |k: &str| {
        r[format!("{prefix}{k}")]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let (tunnels, directions, spis) = (col("tunnels"), col("directions"), col("spis"));
    let counters = ["packets", "bytes", "auth_failures", "replays", "last_seqs"].map(col);
    (0..spis.len())
        .map(|i| {
            let mut row = Vec::with_capacity(SA_COLUMNS.len());
            if with_tunnel {
                row.push(tunnels.get(i).map(text).unwrap_or_default());
            }
            let dir = match directions.get(i).and_then(Value::as_str) {
                Some("outbound") => "out".to_string(),
                Some("inbound") => "in".to_string(),
                other => other.unwrap_or("-").to_string(),
            };
            row.push(dir);
            row.push(
                spis[i]
                    .as_u64()
                    .map_or_else(|| text(&spis[i]), |spi| format!("{spi:#010x}")),
            );
            row.extend(counters.iter().map(|c| c.get(i).map_or("-".into(), text)));
            row
        })
        .collect()
}

/// The columns of a route table (`show routes`, `lookup`).
const ROUTE_COLUMNS: [&str; 7] = [
    "PREFIX",
    "NEXT_HOP",
    "PRIORITY",
    "WEIGHT",
    "PENALTY",
    "EFFECTIVE",
    "ACTIVE",
];

/// The entries of a JSON object, in the appliance's order.
fn entries(v: &Value) -> impl Iterator<Item = (&String, &Value)> {
    v.as_object().into_iter().flatten()
}

/// One row per entry of a JSON object keyed by number (ports, cores): the key, then the named
/// fields of its value.
fn keyed_rows(v: &Value, keys: &[&str]) -> Vec<Vec<String>> {
    entries(v)
        .map(|(i, e)| {
            std::iter::once(i.to_string())
                .chain(keys.iter().map(|k| text(&e[*k])))
                .collect()
        })
        .collect()
}

/// A JSON scalar as text (strings without quotes, `-` for absent).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// `ms` as `4.2s ago`, `3m05s ago`, `2h10m ago`.
fn ago(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{:.1}s ago", ms as f64 / 1000.0)
    } else if s < 3600 {
        format!("{}m{:02}s ago", s / 60, s % 60)
    } else {
        format!("{}h{:02}m ago", s / 3600, s % 3600 / 60)
    }
}

fn us(v: &Value) -> String {
    v.as_u64().map_or("-".to_string(), |u| format!("{u}us"))
}

fn tunnel_row(t: &Value) -> Vec<String> {
    vec![
        text(&t["name"]),
        text(&t["kind"]),
        text(&t["state"]),
        text(&t["penalty"]),
        us(&t["rtt_p50_us"]),
        us(&t["rtt_p99_us"]),
        t["last_change_ms_ago"]
            .as_u64()
            .map_or("-".to_string(), ago),
        text(&t["last_change_reason"]),
        text(&t["rx_packets"]),
        text(&t["rx_bytes"]),
        text(&t["rx_pps"]),
        text(&t["tx_packets"]),
        text(&t["tx_bytes"]),
        text(&t["tx_pps"]),
    ]
}

/// `show tunnels` from the `/conduit/tunnel` answers, with a note saying what the RTT and
/// rate columns cover (the appliance states its RTT window in each answer).
fn tunnels_table(tunnels: &[Value]) -> String {
    let rows: Vec<Vec<String>> = tunnels.iter().map(tunnel_row).collect();
    let mut out = table(&TUNNEL_COLUMNS, &rows);
    if let Some(window) = tunnels.iter().find_map(|t| t["rtt_window_s"].as_u64()) {
        let _ = writeln!(
            out,
            "(RTT_P50, RTT_P99: probe replies of the last {window} s; RX_PPS, TX_PPS: packets \
             per second over the last {} s)",
            control::metrics::RATE_SPAN.as_secs()
        );
    }
    out
}

/// The rows of a `/conduit/trace_read` answer; tunnel ids named from `names`.
fn trace_rows(r: &Value, names: &[String]) -> Vec<Vec<String>> {
    let col = |k: &str| r[k].as_array().cloned().unwrap_or_default();
    let cols = [
        "cores",
        "rx_ports",
        "srcs",
        "dsts",
        "protocols",
        "sports",
        "dports",
    ]
    .map(col);
    let (verdicts, tx_ports, tunnels, reasons) = (
        col("verdicts"),
        col("tx_ports"),
        col("tunnels"),
        col("reasons"),
    );
    let absent = |v: Option<&Value>| v.and_then(Value::as_u64).filter(|&x| x != u64::MAX);
    (0..cols[0].len())
        .map(|i| {
            let mut row: Vec<String> = cols.iter().map(|c| text(&c[i])).collect();
            let port = absent(tx_ports.get(i)).map_or(String::new(), |p| format!(" out port {p}"));
            let tunnel = absent(tunnels.get(i)).map(|t| {
                names
                    .get(t as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("#{t}"))
            });
            let reason = reasons.get(i).map(text).unwrap_or_default();
            let verdict = match verdicts.get(i).and_then(Value::as_str).unwrap_or("") {
                "tunnel" => format!("tunnel {}{port}", tunnel.unwrap_or_default()),
                "plain" => format!("plain{port}"),
                "fragmented" => format!("fragmented into {}", tunnel.unwrap_or_default()),
                "drop" => format!("drop {reason}"),
                "icmp_error" => format!("drop {reason}, ICMP error{port}"),
                other => format!("{other}{port}"),
            };
            row.push(verdict);
            row
        })
        .collect()
}

/// The rows of a column-wise route answer (`/conduit/routes`, `/conduit/lookup`).
fn route_rows(r: &Value) -> Vec<Vec<String>> {
    let col = |k: &str| r[k].as_array().cloned().unwrap_or_default();
    let cols = [
        col("prefixes"),
        col("next_hops"),
        col("priorities"),
        col("weights"),
        col("penalties"),
        col("effective_priorities"),
    ];
    let active = col("active");
    (0..cols[0].len())
        .map(|i| {
            let mut row: Vec<String> = cols.iter().map(|c| text(&c[i])).collect();
            let on = active.get(i).and_then(Value::as_u64) == Some(1);
            row.push(if on { "*" } else { "" }.to_string());
            row
        })
        .collect()
}

fn lookup_text(r: &Value, src: &str, dst: &str) -> String {
    let prefix = text(&r["prefix"]);
    let generation = text(&r["generation"]);
    if prefix.is_empty() {
        return format!(
            "no route matches {dst} (table generation {generation}): a plain packet is dropped \
             as no_route, a decapsulated one goes to the gateway\n"
        );
    }
    let mut out = format!(
        "flow        {src} -> {dst} (ports {}hashed)\nprefix      {prefix} (table generation {generation})\nnext hop    {}\n\n",
        if r["ports_hashed"] == "yes" { "" } else { "not " },
        text(&r["chosen"]),
    );
    out.push_str(&table(&ROUTE_COLUMNS, &route_rows(r)));
    let shown = route_rows(r).len() as u64;
    if let Some(n) = r["candidates"].as_u64().filter(|&n| n > shown) {
        let _ = writeln!(out, "({} more routes for this prefix not shown)", n - shown);
    }
    out
}

/// Aligned columns, two spaces apart; no header line when `headers` is empty.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = rows
        .iter()
        .map(Vec::len)
        .chain([headers.len()])
        .max()
        .unwrap_or(0);
    let mut width = vec![0; n];
    let all = std::iter::once(headers.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        .filter(|h| !h.is_empty())
        .chain(rows.iter().cloned())
        .collect::<Vec<_>>();
    for row in &all {
        for (i, c) in row.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &all {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = width[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_ages_read_well() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["long-name".into(), "1".into()],
                vec!["x".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A          BB\nlong-name  1\nx          22\n");
        assert_eq!(ago(4_200), "4.2s ago");
        assert_eq!(ago(185_000), "3m05s ago");
        assert_eq!(ago(7_800_000), "2h10m ago");
    }

    #[test]
    fn sas_table_shows_spis_in_hex() {
        let page = serde_json::json!({
            "total": 3, "offset": 0,
            "tunnels": ["site-c", "site-c", "site-d"],
            "directions": ["outbound", "inbound", "inbound"],
            "spis": [0x2000, 0x1000, 0xdead_beef_u32],
            "packets": [15, 7, 0], "bytes": [1420, 700, 0], "auth_failures": [0, 2, 0],
            "replays": [0, 1, 0], "last_seqs": [15, 40, 0],
        });
        let t = table(&SA_COLUMNS, &sa_rows(&page, "", true));
        assert_eq!(
            t,
            "TUNNEL  DIR  SPI         PACKETS  BYTES  AUTH_FAIL  REPLAYS  LAST_SEQ\n\
             site-c  out  0x00002000  15       1420   0          0        15\n\
             site-c  in   0x00001000  7        700    2          1        40\n\
             site-d  in   0xdeadbeef  0        0      0          0        0\n"
        );
        // The same arrays inside `/conduit/tunnel`, prefixed, without tunnel names.
        let detail = serde_json::json!({
            "name": "site-c", "sa_directions": ["inbound"], "sa_spis": [0x1001],
            "sa_packets": [1], "sa_bytes": [2], "sa_auth_failures": [3], "sa_replays": [4],
            "sa_last_seqs": [5],
        });
        assert_eq!(
            sa_rows(&detail, SA_PREFIX, false),
            [["in", "0x00001001", "1", "2", "3", "4", "5"].map(String::from)]
        );
        assert!(sa_rows(&serde_json::json!({"total": 0}), "", true).is_empty());
    }

    #[test]
    fn tunnels_show_recent_rtt_and_rates_with_their_spans() {
        let measured = serde_json::json!({
            "name": "t1", "kind": "gre", "state": "healthy", "penalty": 0,
            "rtt_window_s": 60, "rtt_window_samples": 59, "rtt_p50_us": 812, "rtt_p99_us": 1930,
            "rx_packets": 10, "rx_bytes": 640, "rx_pps": 5,
            "tx_packets": 20, "tx_bytes": 1280, "tx_pps": 7,
        });
        // Before the first reply and the first rate: dashes.
        let fresh = serde_json::json!({
            "name": "t2", "kind": "gre", "state": "healthy", "penalty": 0, "rtt_window_s": 60,
            "rx_packets": 0, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 0,
        });
        let t = tunnels_table(&[measured, fresh]);
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], TUNNEL_COLUMNS, "{t}");
        assert_eq!(
            lines[1],
            [
                "t1", "gre", "healthy", "0", "812us", "1930us", "-", "-", "10", "640", "5", "20",
                "1280", "7"
            ],
            "{t}"
        );
        assert_eq!(
            lines[2],
            ["t2", "gre", "healthy", "0", "-", "-", "-", "-", "0", "0", "-", "0", "0", "-"],
            "{t}"
        );
        assert_eq!(
            t.lines().nth(3),
            Some(
                "(RTT_P50, RTT_P99: probe replies of the last 60 s; RX_PPS, TX_PPS: packets \
                 per second over the last 1 s)"
            ),
            "{t}"
        );
        assert_eq!(
            tunnels_table(&[]),
            format!("{}\n", TUNNEL_COLUMNS.join("  "))
        );
    }
}
