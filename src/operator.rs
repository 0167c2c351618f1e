//! The telemetry commands that need the control plane itself rather than a metrics snapshot:
//! routes with their effective priorities, a flow's lookup, and admin up/down of a tunnel
//! (docs/operations.md, "The operator command line").
//!
//! | command | answer |
//! |---|---|
//! | `/conduit/routes[,OFFSET[,PREFIX]]` | `total`, `offset`, column-wise routes (up to [`ROUTES_PAGE`]) inside PREFIX |
//! | `/conduit/lookup,SRC,DST[,PROTO,SPORT,DPORT]` | the matching prefix, its routes, the chosen next hop |
//! | `/conduit/admin,NAME,up\|down` | the tunnel's new state and the table generation in force |
//!
//! DPDK calls command handlers on its telemetry thread, while the control plane belongs to the
//! control loop's thread. So a handler hands its request over a channel that
//! [`ControlLoop::turn`](crate::control_loop::ControlLoop::turn) drains (every millisecond) and
//! waits for the answer up to [`ANSWER_TIMEOUT`]: the table read is the one the workers read,
//! and an admin change is applied and published by the thread that owns the plane, as any
//! other state change. Failures are answered `{"error": "..."}` rather than DPDK's bare `null`,
//! so that the operator sees why (an unknown tunnel, a bad address, no control loop).

use std::net::Ipv4Addr;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::time::Duration;

use conduit_packet::route::AdminState;
use control::config::Ipv4Cidr;
use control::health::Timestamp;
use control::operator::{self, Flow, RouteView};
use control::plane::ControlPlane;
use dataplane::error::DpdkError;
use dataplane::telemetry::{self, Array, Dict, Reply, Value};

use crate::telemetry::short;

/// Routes per `/conduit/routes` answer: 100 routes with 64-byte tunnel names take about 12 KiB
/// of DPDK's 16 KiB buffer.
pub const ROUTES_PAGE: usize = 100;
/// How long a command waits for the control loop.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What an operator asks the control loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Routes {
        offset: usize,
        within: Option<(Ipv4Addr, u8)>,
    },
    Lookup(Flow),
    Admin {
        name: String,
        admin: AdminState,
    },
}

/// A request with where its answer goes.
pub struct Pending {
    pub request: Request,
    answer: SyncSender<Reply>,
}

/// The commands: (name, help, parser of the parameters).
type Parse = fn(&str) -> Result<Request, String>;
pub const COMMANDS: &[(&str, &str, Parse)] = &[
    (
        "/conduit/routes",
        "Routes with effective priorities (column-wise). Params: offset (pages of 100), prefix.",
        parse_routes,
    ),
    (
        "/conduit/lookup",
        "Which route and next hop a flow takes. Params: src,dst[,proto,sport,dport].",
        parse_lookup,
    ),
    (
        "/conduit/admin",
        "Sets a tunnel administratively up or down until set again. Params: name,up|down.",
        parse_admin,
    ),
];

/// Registers [`COMMANDS`]; each hands its request to `to_control`'s receiver (see
/// [`ControlLoop::serve`](crate::control_loop::ControlLoop::serve)).
pub fn register(to_control: Sender<Pending>) -> Result<(), DpdkError> {
    for &(name, help, parse) in COMMANDS {
        let to_control = to_control.clone();
        telemetry::register_command(name, help, move |params| {
            Ok(ask(&to_control, parse(params.unwrap_or("").trim())))
        })?;
    }
    Ok(())
}

/// A channel from the telemetry commands to the control loop.
pub fn channel() -> (Sender<Pending>, Receiver<Pending>) {
    mpsc::channel()
}

fn error(msg: impl Into<String>) -> Reply {
    let mut d = Dict::new();
    d.string("error", short(&msg.into()));
    Reply::Dict(d)
}

/// Sends the parsed request to the control loop and waits for its answer.
fn ask(to_control: &Sender<Pending>, request: Result<Request, String>) -> Reply {
    let request = match request {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let (answer, rx) = mpsc::sync_channel(1);
    if to_control.send(Pending { request, answer }).is_err() {
        return error("no control loop runs (io mode has no forwarding table)");
    }
    rx.recv_timeout(ANSWER_TIMEOUT).unwrap_or_else(|_| {
        error(format!(
            "the control loop did not answer within {} s",
            ANSWER_TIMEOUT.as_secs()
        ))
    })
}

fn addr(s: &str, what: &str) -> Result<Ipv4Addr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{what} {s:?} is not an IPv4 address"))
}

fn parse_routes(params: &str) -> Result<Request, String> {
    let mut parts = params.split(',').map(str::trim);
    let offset = match parts.next() {
        None | Some("") => 0,
        Some(p) => p
            .parse()
            .map_err(|_| format!("offset {p:?} is not a number"))?,
    };
    let within = match parts.next() {
        None | Some("") => None,
        Some(p) => {
            let c: Ipv4Cidr = p.parse().map_err(|e| format!("{e}"))?;
            Some((c.addr(), c.prefix_len()))
        }
    };
    Ok(Request::Routes { offset, within })
}

/// `PROTO`: a number or `tcp`, `udp`, `icmp`.
pub fn protocol(s: &str) -> Result<u8, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        n => n
            .parse()
            .map_err(|_| format!("protocol {s:?} is not tcp, udp, icmp or a number 0-255")),
    }
}

fn parse_lookup(params: &str) -> Result<Request, String> {
    let p: Vec<&str> = params.split(',').map(str::trim).collect();
    let port = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("port {s:?} is not a number 0-65535"))
    };
    let (protocol, src_port, dst_port) = match p.len() {
        2 => (0, 0, 0),
        5 => (protocol(p[2])?, port(p[3])?, port(p[4])?),
        _ => return Err("needs src,dst or src,dst,proto,sport,dport".into()),
    };
    Ok(Request::Lookup(Flow {
        src: addr(p[0], "source")?,
        dst: addr(p[1], "destination")?,
        protocol,
        src_port,
        dst_port,
    }))
}

fn parse_admin(params: &str) -> Result<Request, String> {
    let (name, state) = params
        .rsplit_once(',')
        .ok_or("needs name,up or name,down")?;
    let admin = match state.trim() {
        "up" => AdminState::Up,
        "down" => AdminState::Down,
        s => return Err(format!("admin state {s:?} is neither up nor down")),
    };
    Ok(Request::Admin {
        name: name.trim().to_string(),
        admin,
    })
}

/// Answers every waiting request on the control loop's thread.
pub fn serve(rx: &Receiver<Pending>, plane: &mut ControlPlane, now: Timestamp) {
    while let Ok(p) = rx.try_recv() {
        let reply = answer(plane, &p.request, now);
        // The command may have given up waiting; nothing to do then.
        let _ = p.answer.try_send(reply);
    }
}

/// The answer to one request, from (and for an admin change, applied to) `plane`.
pub fn answer(plane: &mut ControlPlane, request: &Request, now: Timestamp) -> Reply {
    match request {
        Request::Routes { offset, within } => routes(plane, *offset, *within),
        Request::Lookup(flow) => lookup(plane, *flow),
        Request::Admin { name, admin } => match plane.set_admin(name, *admin, now) {
            Ok(generation) => {
                let mut d = Dict::new();
                let t = plane.tunnels().iter().find(|t| &t.name == name);
                d.string("tunnel", short(name))
                    .string("admin", admin.as_str())
                    .string("state", t.map_or("", |t| t.status().as_str()))
                    .uint("generation", generation);
                Reply::Dict(d)
            }
            Err(e) => error(e.to_string()),
        },
    }
}

fn cidr(addr: Ipv4Addr, len: u8) -> String {
    format!("{addr}/{len}")
}

/// Column-wise routes (names are values, never keys; see [`crate::telemetry`]).
fn route_columns(d: &mut Dict, routes: &[RouteView]) {
    let strings = |f: &dyn Fn(&RouteView) -> String| {
        Value::Array(Array::String(routes.iter().map(f).collect()))
    };
    let uints =
        |f: &dyn Fn(&RouteView) -> u64| Value::Array(Array::UInt(routes.iter().map(f).collect()));
    d.insert("prefixes", strings(&|r| cidr(r.prefix, r.len)))
        .insert("next_hops", strings(&|r| short(&r.next_hop)))
        .insert("priorities", uints(&|r| u64::from(r.priority)))
        .insert("weights", uints(&|r| u64::from(r.weight)))
        .insert("penalties", uints(&|r| u64::from(r.penalty)))
        .insert("effective_priorities", uints(&|r| r.effective_priority))
        .insert("active", uints(&|r| u64::from(r.active)));
}

fn routes(plane: &ControlPlane, offset: usize, within: Option<(Ipv4Addr, u8)>) -> Reply {
    let all = operator::routes(plane, within);
    if offset > all.len() {
        return error(format!("offset {offset} beyond {} routes", all.len()));
    }
    let page = &all[offset..(offset + ROUTES_PAGE).min(all.len())];
    let mut d = Dict::new();
    d.uint("total", all.len() as u64)
        .uint("offset", offset as u64)
        .uint("generation", plane.generation());
    route_columns(&mut d, page);
    Reply::Dict(d)
}

fn lookup(plane: &ControlPlane, flow: Flow) -> Reply {
    let l = operator::lookup(plane, flow);
    let mut d = Dict::new();
    d.uint("generation", l.generation)
        .string("ports_hashed", if l.ports_hashed { "yes" } else { "no" });
    let Some((addr, len)) = l.prefix else {
        d.string("prefix", "").string("chosen", "");
        return Reply::Dict(d);
    };
    d.string("prefix", cidr(addr, len))
        .string("chosen", short(l.chosen.as_deref().unwrap_or("")));
    let shown = l.candidates.len().min(ROUTES_PAGE);
    d.uint("candidates", l.candidates.len() as u64);
    route_columns(&mut d, &l.candidates[..shown]);
    Reply::Dict(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_or_say_why() {
        assert_eq!(
            parse_lookup("10.0.0.1, 172.16.1.2,udp,1000,53").unwrap(),
            Request::Lookup(Flow {
                src: Ipv4Addr::new(10, 0, 0, 1),
                dst: Ipv4Addr::new(172, 16, 1, 2),
                protocol: 17,
                src_port: 1000,
                dst_port: 53,
            })
        );
        assert!(parse_lookup("10.0.0.1").unwrap_err().contains("needs"));
        assert!(parse_lookup("10.0.0.1,x").unwrap_err().contains("\"x\""));
        assert!(parse_lookup("1.1.1.1,2.2.2.2,tcp,70000,1")
            .unwrap_err()
            .contains("70000"));
        assert_eq!(
            parse_admin("a,b,down").unwrap(),
            Request::Admin {
                name: "a,b".into(),
                admin: AdminState::Down
            }
        );
        assert!(parse_admin("t1,sideways").is_err());
        assert!(parse_admin("t1").is_err());
        assert_eq!(
            parse_routes("").unwrap(),
            Request::Routes {
                offset: 0,
                within: None
            }
        );
        assert_eq!(
            parse_routes("100,10.0.0.0/8").unwrap(),
            Request::Routes {
                offset: 100,
                within: Some((Ipv4Addr::new(10, 0, 0, 0), 8))
            }
        );
        assert!(parse_routes("x").is_err());
        for &(name, help, _) in COMMANDS {
            assert!(telemetry::valid_command(name), "{name}");
            assert!(
                help.len() <= telemetry::MAX_STRING_LEN,
                "{name}: help too long"
            );
        }
    }

    #[test]
    fn a_full_page_of_the_longest_routes_fits_dpdk() {
        let routes: Vec<RouteView> = (0..ROUTES_PAGE)
            .map(|i| RouteView {
                prefix: Ipv4Addr::new(255, 255, 255, i as u8),
                len: 32,
                next_hop: "t".repeat(64),
                priority: u32::MAX,
                weight: 256,
                penalty: 1_000_000,
                effective_priority: u64::from(u32::MAX) + 1_000_000,
                active: true,
            })
            .collect();
        let mut d = Dict::new();
        d.uint("total", u64::MAX)
            .uint("offset", u64::MAX)
            .uint("generation", u64::MAX)
            .string("prefix", "255.255.255.255/32")
            .string("chosen", "t".repeat(64))
            .string("ports_hashed", "yes")
            .uint("candidates", u64::MAX);
        route_columns(&mut d, &routes);
        Reply::Dict(d).validate("/conduit/routes").unwrap();
        Reply::Dict(Dict::new())
            .validate("/conduit/lookup")
            .unwrap();
        error("x".repeat(500)).validate("/conduit/admin").unwrap();
    }
}
