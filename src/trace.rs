//! The packet trace's telemetry commands (`conduit ctl trace`, docs/operations.md): arm every
//! worker's [`TraceBuffer`] for its next N packets, and read what they recorded.
//!
//! | command | answer |
//! |---|---|
//! | `/conduit/trace,N[,HOST]` | `armed_per_worker`, `workers`: each worker records its next N packets (from or to HOST only, if given) (at most
//! [`TRACE_CAPACITY`](conduit_packet::pipeline::trace::TRACE_CAPACITY)) |
//! | `/conduit/trace_read[,OFFSET]` | `armed`, `total`, `offset`, and column-wise records (up to [`RECORDS_PAGE`]) |
//!
//! Records name tunnels by id (their position in `/conduit/tunnels`), so that the answer stays
//! small; the client turns ids into names.

use std::net::Ipv4Addr;
use std::sync::Arc;

use conduit_packet::pipeline::trace::{TraceBuffer, TraceRecord, TraceVerdict};
use dataplane::error::DpdkError;
use dataplane::lcore::LcoreId;
use dataplane::telemetry::{self, Array, CommandError, Dict, Reply, Value};

/// Records per `/conduit/trace_read` answer (about 11 KiB).
pub const RECORDS_PAGE: usize = 100;

/// Registers the commands over the workers' traces (`traces[i]` is the worker on `lcores[i]`).
pub fn register(traces: Vec<Arc<TraceBuffer>>, lcores: Vec<LcoreId>) -> Result<(), DpdkError> {
    let traces = Arc::new(traces.into_iter().zip(lcores).collect::<Vec<_>>());
    let t = Arc::clone(&traces);
    telemetry::register_command(
        "/conduit/trace",
        "Records the next N packets of every worker (at most 64). Params: N[,host address].",
        move |params| arm(&t, params),
    )?;
    telemetry::register_command(
        "/conduit/trace_read",
        "The packets the trace recorded, column-wise. Param: offset (pages of 100).",
        move |params| read(&traces, params),
    )
}

fn arm(
    traces: &[(Arc<TraceBuffer>, LcoreId)],
    params: Option<&str>,
) -> Result<Reply, CommandError> {
    let p = params.map(str::trim).unwrap_or("");
    let (count, host) = match p.split_once(',') {
        Some((n, h)) => (n.trim(), Some(h.trim())),
        None => (p, None),
    };
    let n: usize = count
        .parse()
        .map_err(|_| CommandError::new(format!("needs a packet count, got {count:?}")))?;
    let host = host
        .map(|h| {
            h.parse::<Ipv4Addr>()
                .map(u32::from)
                .map_err(|_| CommandError::new(format!("host {h:?} is not an IPv4 address")))
        })
        .transpose()?;
    let armed = traces
        .iter()
        .map(|(t, _)| t.arm(n, host))
        .max()
        .unwrap_or(0);
    let mut d = Dict::new();
    d.uint("armed_per_worker", armed as u64)
        .uint("workers", traces.len() as u64);
    Ok(Reply::Dict(d))
}

/// The verdict's kind, output port, tunnel id (or none) and reason, as text and numbers.
fn verdict_fields(v: TraceVerdict) -> (&'static str, Option<u16>, Option<u32>, &'static str) {
    match v {
        TraceVerdict::Forward { port, tunnel } => (
            if tunnel.is_some() { "tunnel" } else { "plain" },
            Some(port),
            tunnel.map(|t| t.0),
            "",
        ),
        TraceVerdict::Reply { port } => ("reply", Some(port), None, ""),
        TraceVerdict::IcmpError { reason, port } => {
            ("icmp_error", Some(port), None, reason.as_str())
        }
        TraceVerdict::ToControl => ("to_control", None, None, ""),
        TraceVerdict::Fragmented { tunnel } => ("fragmented", None, Some(tunnel.0), ""),
        TraceVerdict::Reassemble => ("reassemble", None, None, ""),
        TraceVerdict::Drop(reason) => ("drop", None, None, reason.as_str()),
    }
}

fn read(
    traces: &[(Arc<TraceBuffer>, LcoreId)],
    params: Option<&str>,
) -> Result<Reply, CommandError> {
    let offset = match params.map(str::trim) {
        None | Some("") => 0,
        Some(p) => p
            .parse::<usize>()
            .map_err(|_| CommandError::new(format!("offset {p:?} is not a number")))?,
    };
    let mut armed = 0;
    let mut all: Vec<(u32, TraceRecord)> = Vec::new();
    for (t, lcore) in traces {
        let (target, records) = t.read();
        armed += target;
        all.extend(records.into_iter().map(|r| (lcore.0, r)));
    }
    if offset > all.len() {
        return Err(CommandError::new(format!(
            "offset {offset} beyond {} records",
            all.len()
        )));
    }
    let page = &all[offset..(offset + RECORDS_PAGE).min(all.len())];
    let uints = |f: &dyn Fn(&(u32, TraceRecord)) -> u64| {
        Value::Array(Array::UInt(page.iter().map(f).collect()))
    };
    let strings = |f: &dyn Fn(&(u32, TraceRecord)) -> String| {
        Value::Array(Array::String(page.iter().map(f).collect()))
    };
    let mut d = Dict::new();
    d.uint("armed", armed as u64)
        .uint("total", all.len() as u64)
        .uint("offset", offset as u64)
        .insert("cores", uints(&|(c, _)| u64::from(*c)))
        .insert("rx_ports", uints(&|(_, r)| u64::from(r.flow.rx_port)))
        .insert(
            "srcs",
            strings(&|(_, r)| Ipv4Addr::from(r.flow.src).to_string()),
        )
        .insert(
            "dsts",
            strings(&|(_, r)| Ipv4Addr::from(r.flow.dst).to_string()),
        )
        .insert("protocols", uints(&|(_, r)| u64::from(r.flow.protocol)))
        .insert("sports", uints(&|(_, r)| u64::from(r.flow.src_port)))
        .insert("dports", uints(&|(_, r)| u64::from(r.flow.dst_port)))
        .insert(
            "verdicts",
            strings(&|(_, r)| verdict_fields(r.verdict).0.to_string()),
        )
        // Absent values are u64::MAX: DPDK arrays hold one kind of scalar.
        .insert(
            "tx_ports",
            uints(&|(_, r)| verdict_fields(r.verdict).1.map_or(u64::MAX, u64::from)),
        )
        .insert(
            "tunnels",
            uints(&|(_, r)| verdict_fields(r.verdict).2.map_or(u64::MAX, u64::from)),
        )
        .insert(
            "reasons",
            strings(&|(_, r)| verdict_fields(r.verdict).3.to_string()),
        );
    Ok(Reply::Dict(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use conduit_packet::pipeline::trace::{TraceFlow, TRACE_CAPACITY};
    use conduit_packet::pipeline::DropReason;
    use conduit_packet::route::TunnelId;

    #[test]
    fn a_full_page_fits_dpdk_and_pages_follow() {
        let t = Arc::new(TraceBuffer::default());
        let traces = vec![
            (Arc::clone(&t), LcoreId(1)),
            (Arc::new(TraceBuffer::default()), LcoreId(2)),
        ];
        let d = match arm(&traces, Some("1000")).unwrap() {
            Reply::Dict(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            d.get("armed_per_worker"),
            Some(&Value::UInt(TRACE_CAPACITY as u64))
        );
        for i in 0..TRACE_CAPACITY {
            let verdict = if i % 2 == 0 {
                TraceVerdict::Drop(DropReason::ReassemblyBadFragment)
            } else {
                TraceVerdict::Forward {
                    port: u16::MAX,
                    tunnel: Some(TunnelId(u32::MAX - 1)),
                }
            };
            let r = TraceRecord {
                flow: TraceFlow {
                    rx_port: u16::MAX,
                    src: u32::MAX,
                    dst: u32::MAX,
                    protocol: 255,
                    src_port: u16::MAX,
                    dst_port: u16::MAX,
                },
                verdict,
            };
            t.record(&r);
            traces[1].0.record(&r);
        }
        let page = read(&traces, None).unwrap();
        page.validate("/conduit/trace_read").unwrap();
        let Reply::Dict(d) = page else { panic!() };
        assert_eq!(
            d.get("total"),
            Some(&Value::UInt(2 * TRACE_CAPACITY as u64))
        );
        match d.get("srcs") {
            Some(Value::Array(Array::String(s))) => assert_eq!(s.len(), RECORDS_PAGE),
            other => panic!("{other:?}"),
        }
        let Reply::Dict(rest) = read(&traces, Some("100")).unwrap() else {
            panic!()
        };
        match rest.get("cores") {
            Some(Value::Array(Array::UInt(c))) => assert_eq!(c.len(), 28),
            other => panic!("{other:?}"),
        }
        assert!(read(&traces, Some("129")).is_err());
        assert!(arm(&traces, Some("x")).is_err());
        assert!(arm(&traces, Some("5,nohost")).is_err());
        assert!(arm(&traces, Some("5,10.0.0.1")).is_ok());
    }
}
