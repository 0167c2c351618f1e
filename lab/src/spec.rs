//! The lab file: schema, loading and validation.
//!
//! A lab is one YAML file: the appliance's config (inline, or a path relative to the lab file),
//! customer sites (each one terminating one of the appliance's tunnels), traffic and a schedule
//! of faults. Parsing is strict (unknown fields are errors) and every error names the file, the
//! line and the field, like the appliance's own config errors. An inline appliance config is
//! checked by the appliance's parser, with its line numbers mapped back into the lab file.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use control::config::{locate, Config, ConfigError, Ipv4Cidr, ProbeType, TunnelKind};
use serde::{Deserialize, Deserializer};

/// Longest lab name: link names are `<lab>-s<NN><x>` and Linux allows 15 bytes.
pub const LAB_NAME_MAX: usize = 6;
/// Most sites in one lab (two digits in link names).
pub const MAX_SITES: usize = 99;

/// A duration written as `250ms`, `1.5s`, `2m` or a plain number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Secs(pub f64);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n >= 0.0 && n.is_finite() => Ok(Secs(n)),
            Raw::N(n) => Err(serde::de::Error::custom(format!("{n}: not a duration"))),
            Raw::S(s) => parse_secs(&s).map(Secs).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `250ms`, `1.5s`, `2m`, `3` (seconds).
pub fn parse_secs(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v * scale),
        _ => Err(format!("{s:?}: not a duration (e.g. 250ms, 1.5s, 2m)")),
    }
}

/// The whole lab file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// Prefix of every namespace, link, process and run directory of the lab.
    pub name: String,
    /// How long traffic runs, from the moment every tunnel was healthy.
    pub duration: Secs,
    pub appliance: ApplianceSpec,
    /// Values every site inherits unless it (or its kind) sets its own.
    #[serde(default)]
    pub defaults: SiteDefaults,
    /// Values the sites of one tunnel kind (`gre`, `ipsec`) inherit, over `defaults`.
    #[serde(default)]
    pub kinds: std::collections::BTreeMap<String, SiteDefaults>,
    pub sites: Vec<SiteSpec>,
    #[serde(default)]
    pub traffic: TrafficSpec,
    #[serde(default)]
    pub schedule: Vec<EventSpec>,
    /// Bounds the report is checked against (`conduit-lab run` exits 1 when one is missed).
    #[serde(default)]
    pub expect: ExpectSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceSpec {
    /// A path (relative to the lab file) or the config itself, inline.
    pub config: ConfigRef,
    /// The appliance binary; default `$CONDUIT_BIN`, else target/release or target/debug.
    #[serde(default)]
    pub binary: Option<PathBuf>,
    /// Seconds to wait for every tunnel to be healthy before traffic starts (health stage).
    #[serde(default = "default_ready")]
    pub ready_timeout: Secs,
}

fn default_ready() -> Secs {
    Secs(30.0)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ConfigRef {
    Path(PathBuf),
    Inline(serde_yaml_ng::Value),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteDefaults {
    #[serde(default)]
    pub answers: Option<Vec<ProbeStyle>>,
    #[serde(default)]
    pub lan: Option<Vec<Ipv4Cidr>>,
}

/// Probe types a site answers; a site that does not answer its tunnel's type sees it go down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStyle {
    /// Bounce `reply` probes: decapsulate and route the echo reply back to the appliance.
    Reply,
    /// Answer `request` probes with an echo reply (plain or inside the tunnel, per direction).
    Request,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    pub name: String,
    /// The appliance tunnel this site terminates (its remote is the site's endpoint).
    pub tunnel: String,
    /// Optional cross-checks against the appliance's tunnel.
    #[serde(default)]
    pub kind: Option<TunnelKind>,
    #[serde(default)]
    pub endpoint: Option<Ipv4Addr>,
    #[serde(default)]
    pub key: Option<u32>,
    /// Customer prefixes behind the site (where its LAN receives traffic).
    #[serde(default)]
    pub lan: Option<Vec<Ipv4Cidr>>,
    #[serde(default)]
    pub answers: Option<Vec<ProbeStyle>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSpec {
    /// What sends the flows.
    #[serde(default)]
    pub generator: Generator,
    #[serde(default)]
    pub flows: Vec<FlowSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Generator {
    /// conduit-lab's own paced sender (a raw IPv4 socket in the gateway namespace, routed by
    /// the gateway's kernel to the appliance).
    #[default]
    Builtin,
    /// trafgen (netsniff-ng), one process per flow class, sending Ethernet frames straight
    /// onto the appliance's tap.
    Trafgen,
    /// tcpreplay, one process per flow class, playing a pcap of the same frames trafgen would
    /// send, paced by `--pps` (one frame per interval, no bursts: exact pacing).
    Tcpreplay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Udp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// Name of the flow class in the report.
    pub class: String,
    /// Destination prefix; flows take addresses spread evenly over it.
    pub dst: Ipv4Cidr,
    /// Number of flows (distinct 5-tuples) in the class.
    pub count: u32,
    /// Packets per second, summed over the class.
    pub rate: f64,
    /// UDP payload bytes.
    #[serde(default = "default_size")]
    pub size: u16,
    #[serde(default = "default_proto")]
    pub protocol: Protocol,
}

fn default_size() -> u16 {
    64
}
fn default_proto() -> Protocol {
    Protocol::Udp
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Everything to and from the site is dropped at the gateway.
    SiteDown,
    /// The tunnel's packets towards the site are dropped (probes and data).
    Blackhole,
    /// `percent` % of the tunnel's packets towards the site are dropped at random.
    Loss,
    /// The gateway's link towards the site is shaped to `rate` (tbf).
    RateLimit,
    /// Clears every fault of the site (or of all sites when none is named).
    Restore,
    /// SIGHUP to the appliance (re-reads its config file).
    Reload,
    /// SIGTERM to the appliance, then a fresh start.
    Restart,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Time since traffic started.
    pub at: Secs,
    pub fault: FaultKind,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub percent: Option<f64>,
    /// tc rate, e.g. `200kbit`, `1mbit`.
    #[serde(default)]
    pub rate: Option<String>,
    /// Clears the fault after this long (a `restore` of the site).
    #[serde(default, rename = "for")]
    pub for_: Option<Secs>,
}

/// Bounds on the report's figures.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Longest time from a fault to the last packet the appliance sent into the faulty tunnel.
    #[serde(default)]
    pub max_steer_s: Option<f64>,
    /// Highest loss of any flow class, in percent of what was sent.
    #[serde(default)]
    pub max_loss_percent: Option<f64>,
    /// Smallest share of any ECMP member before the first fault, in percent.
    #[serde(default)]
    pub min_ecmp_share_percent: Option<f64>,
    /// The tunnels that should share traffic before the first fault.
    #[serde(default)]
    pub ecmp_tunnels: Option<Vec<String>>,
}

/// A lab error, formatted `file:line: field: message`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for LabError {}

/// A site with its defaults applied and its tunnel resolved.
#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub index: usize,
    pub tunnel: String,
    pub kind: TunnelKind,
    /// The site's tunnel endpoint (the tunnel's remote).
    pub endpoint: Ipv4Addr,
    /// The appliance's endpoint of the tunnel (the tunnel's local).
    pub local: Ipv4Addr,
    pub key: Option<u32>,
    /// The appliance's side of the tunnel interface.
    pub our_address: Ipv4Addr,
    pub probe: ProbeType,
    /// Where `request` probes go (the endpoint unless the tunnel names another target).
    pub target: Ipv4Addr,
    pub bidirectional: bool,
    pub lan: Vec<Ipv4Cidr>,
    pub answers: Vec<ProbeStyle>,
}

/// A loaded, validated lab.
#[derive(Debug, Clone)]
pub struct Lab {
    pub spec: LabSpec,
    /// The appliance's config text (the file, or the inline block dedented).
    pub appliance_text: String,
    pub appliance_path: Option<PathBuf>,
    pub appliance: Config,
    pub sites: Vec<Site>,
}

impl Lab {
    pub fn load(path: &Path) -> Result<Lab, LabError> {
        let text = std::fs::read_to_string(path).map_err(|e| LabError {
            file: path.to_path_buf(),
            line: None,
            field: String::new(),
            message: format!("cannot read lab: {e}"),
        })?;
        Lab::parse(&text, path)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Lab, LabError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let spec: LabSpec = serde_path_to_error::deserialize(de).map_err(|e| {
            let mut field = e.path().to_string();
            while let Some(parent) = field.strip_suffix(".?") {
                field.truncate(parent.len());
            }
            if field == "." {
                field.clear();
            }
            let inner = e.into_inner();
            let line = inner.location().map(|l| l.line());
            let mut message = inner.to_string();
            if let Some(i) = message.find(" at line ") {
                message.truncate(i);
            }
            if let Some((head, rest)) = message.split_once(": ") {
                if !head.is_empty() && !head.contains(' ') && field.starts_with(head) {
                    message = rest.to_string();
                }
            }
            LabError {
                file: file.to_path_buf(),
                line,
                field,
                message,
            }
        })?;
        let err = |field: &str, message: String| LabError {
            file: file.to_path_buf(),
            line: locate(text, field),
            field: field.to_string(),
            message,
        };

        // The appliance's config, checked by the appliance's own parser.
        let (appliance_text, appliance_path, appliance) = match &spec.appliance.config {
            ConfigRef::Path(p) => {
                let full = file.parent().unwrap_or(Path::new(".")).join(p);
                let cfg = Config::load(&full).map_err(|e| config_error(e, &full, 0))?;
                let t = std::fs::read_to_string(&full).unwrap_or_default();
                (t, Some(full), cfg)
            }
            ConfigRef::Inline(serde_yaml_ng::Value::Mapping(_)) => {
                let at = locate(text, "appliance.config").unwrap_or(1);
                let block = inline_block(text, at);
                let cfg = Config::parse(&block, file).map_err(|e| config_error(e, file, at))?;
                (block, None, cfg)
            }
            ConfigRef::Inline(_) => {
                return Err(err(
                    "appliance.config",
                    "a path or a mapping (the appliance config inline)".into(),
                ))
            }
        };

        if spec.name.is_empty()
            || spec.name.len() > LAB_NAME_MAX
            || !spec
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            || !spec.name.as_bytes()[0].is_ascii_lowercase()
        {
            return Err(err(
                "name",
                format!(
                    "{:?}: 1 to {LAB_NAME_MAX} lowercase letters and digits, starting with a \
                     letter (it prefixes every namespace, link and process of the lab)",
                    spec.name
                ),
            ));
        }
        if spec.duration.0 <= 0.0 {
            return Err(err("duration", "must be positive".into()));
        }
        let gw_port = appliance
            .gateway_port()
            .map(|(_, p)| p.device.clone())
            .unwrap_or_default();
        if !gw_port.starts_with("net_tap") {
            return Err(err(
                "appliance.config",
                format!(
                    "the gateway port is {gw_port:?}: a lab attaches the appliance with a \
                     net_tap device (e.g. net_tap0)"
                ),
            ));
        }

        for k in spec.kinds.keys() {
            if k != "gre" && k != "ipsec" {
                return Err(err(
                    &format!("kinds.{k}"),
                    "a tunnel kind: gre or ipsec".into(),
                ));
            }
        }
        if spec.sites.is_empty() {
            return Err(err("sites", "a lab needs at least one site".into()));
        }
        if spec.sites.len() > MAX_SITES {
            return Err(err("sites", format!("at most {MAX_SITES} sites")));
        }
        let mut names = BTreeSet::new();
        let mut tunnels = BTreeSet::new();
        let mut sites = Vec::new();
        for (i, s) in spec.sites.iter().enumerate() {
            let f = |k: &str| format!("sites[{i}].{k}");
            if s.name.is_empty() || s.name.len() > 32 || s.name.contains(char::is_whitespace) {
                return Err(err(&f("name"), "1 to 32 characters, no spaces".into()));
            }
            if !names.insert(s.name.clone()) {
                return Err(err(&f("name"), format!("{:?} is already a site", s.name)));
            }
            let Some((_, t)) = appliance.tunnel(&s.tunnel) else {
                let known: Vec<&str> = appliance.tunnels.iter().map(|t| t.name.as_str()).collect();
                return Err(err(
                    &f("tunnel"),
                    format!(
                        "{:?} is not a tunnel of the appliance config (tunnels: {})",
                        s.tunnel,
                        known.join(", ")
                    ),
                ));
            };
            if !tunnels.insert(s.tunnel.clone()) {
                return Err(err(
                    &f("tunnel"),
                    format!("{:?} is terminated by another site already", s.tunnel),
                ));
            }
            if t.kind != TunnelKind::Gre {
                return Err(err(
                    &f("tunnel"),
                    format!(
                        "{:?} is an IPsec tunnel: the appliance carries no ESP yet, and labs \
                         terminate GRE tunnels only",
                        s.tunnel
                    ),
                ));
            }
            if let Some(k) = s.kind {
                if k != t.kind {
                    return Err(err(
                        &f("kind"),
                        format!("{k:?} differs from the tunnel's kind {:?}", t.kind),
                    ));
                }
            }
            if let Some(e) = s.endpoint {
                if e != t.remote {
                    return Err(err(
                        &f("endpoint"),
                        format!("{e} differs from the tunnel's remote {}", t.remote),
                    ));
                }
            }
            if s.key.is_some() && s.key != t.key {
                return Err(err(
                    &f("key"),
                    format!("{:?} differs from the tunnel's key {:?}", s.key, t.key),
                ));
            }
            // Inheritance: the site's own value, else its kind's, else the defaults'.
            let kind = spec.kinds.get(match t.kind {
                TunnelKind::Gre => "gre",
                TunnelKind::Ipsec => "ipsec",
            });
            let lan = s
                .lan
                .clone()
                .or_else(|| kind.and_then(|k| k.lan.clone()))
                .or_else(|| spec.defaults.lan.clone())
                .unwrap_or_default();
            let answers = s
                .answers
                .clone()
                .or_else(|| kind.and_then(|k| k.answers.clone()))
                .or_else(|| spec.defaults.answers.clone())
                .unwrap_or_else(|| vec![ProbeStyle::Reply, ProbeStyle::Request]);
            sites.push(Site {
                name: s.name.clone(),
                index: i,
                tunnel: s.tunnel.clone(),
                kind: t.kind,
                endpoint: t.remote,
                local: t.local,
                key: t.key,
                our_address: t.our_address(),
                probe: t.health_check.probe,
                target: t.health_target(),
                bidirectional: t.health_direction()
                    == control::config::ProbeDirection::Bidirectional,
                lan,
                answers,
            });
        }
        let endpoints: BTreeSet<Ipv4Addr> = sites.iter().map(|s| s.endpoint).collect();
        if endpoints.len() != sites.len() {
            return Err(err(
                "sites",
                "two sites share an endpoint: every site is its own host".into(),
            ));
        }

        let mut classes = BTreeSet::new();
        let mut total_flows = 0u64;
        for (i, fl) in spec.traffic.flows.iter().enumerate() {
            let f = |k: &str| format!("traffic.flows[{i}].{k}");
            if !classes.insert(fl.class.clone()) {
                return Err(err(
                    &f("class"),
                    format!("{:?} is already a class", fl.class),
                ));
            }
            let hosts = if fl.dst.prefix_len() >= 31 {
                1u64
            } else {
                (1u64 << (32 - fl.dst.prefix_len())) - 2
            };
            if fl.count == 0 || u64::from(fl.count) > hosts.max(1) * 1000 {
                return Err(err(
                    &f("count"),
                    "1 or more flows, at most 1000 per address".into(),
                ));
            }
            if !(fl.rate > 0.0 && fl.rate <= 100_000.0) {
                return Err(err(
                    &f("rate"),
                    "packets per second, 0 < rate <= 100000".into(),
                ));
            }
            if !(8..=1400).contains(&fl.size) {
                return Err(err(&f("size"), "UDP payload bytes, 8 to 1400".into()));
            }
            if !sites
                .iter()
                .any(|s| s.lan.iter().any(|p| p.overlaps(&fl.dst)))
            {
                return Err(err(
                    &f("dst"),
                    format!(
                        "{}/{}: no site's LAN holds it",
                        fl.dst.addr(),
                        fl.dst.prefix_len()
                    ),
                ));
            }
            total_flows += u64::from(fl.count);
        }
        if total_flows > 4096 {
            return Err(err("traffic.flows", "at most 4096 flows in all".into()));
        }

        for (i, ev) in spec.schedule.iter().enumerate() {
            let f = |k: &str| format!("schedule[{i}].{k}");
            if ev.at.0 > spec.duration.0 {
                return Err(err(
                    &f("at"),
                    format!(
                        "{} s is after the end of the lab ({} s)",
                        ev.at.0, spec.duration.0
                    ),
                ));
            }
            let needs_site = matches!(
                ev.fault,
                FaultKind::SiteDown | FaultKind::Blackhole | FaultKind::Loss | FaultKind::RateLimit
            );
            match &ev.site {
                Some(s) if !names.contains(s) => {
                    return Err(err(&f("site"), format!("{s:?} is not a site of this lab")))
                }
                Some(_) if matches!(ev.fault, FaultKind::Reload | FaultKind::Restart) => {
                    return Err(err(
                        &f("site"),
                        "reload and restart concern the appliance".into(),
                    ))
                }
                None if needs_site => {
                    return Err(err(&f("fault"), format!("{:?} needs a site", ev.fault)))
                }
                _ => {}
            }
            match ev.fault {
                FaultKind::Loss => match ev.percent {
                    Some(p) if p > 0.0 && p <= 100.0 => {}
                    _ => return Err(err(&f("percent"), "loss needs 0 < percent <= 100".into())),
                },
                FaultKind::RateLimit => match &ev.rate {
                    Some(r) if valid_rate(r) => {}
                    _ => {
                        return Err(err(
                            &f("rate"),
                            "rate_limit needs a tc rate such as 200kbit or 1mbit".into(),
                        ))
                    }
                },
                _ => {
                    if ev.percent.is_some() {
                        return Err(err(&f("percent"), "only for loss".into()));
                    }
                    if ev.rate.is_some() {
                        return Err(err(&f("rate"), "only for rate_limit".into()));
                    }
                }
            }
            if ev.for_.is_some() && !needs_site {
                return Err(err(
                    &f("for"),
                    "only faults of a site can be cleared".into(),
                ));
            }
        }
        Ok(Lab {
            spec,
            appliance_text,
            appliance_path,
            appliance,
            sites,
        })
    }

    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name == name)
    }
}

fn valid_rate(r: &str) -> bool {
    let digits = r.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &r[digits.len()..];
    !digits.is_empty()
        && digits.parse::<f64>().is_ok_and(|v| v > 0.0)
        && ["bit", "kbit", "mbit", "gbit", "bps", "kbps", "mbps"].contains(&unit)
}

/// The lines under `key:` at line `at` (1-based) that are indented deeper, dedented: the text
/// of an inline mapping, keeping its comments, so the appliance's parser can check it.
fn inline_block(text: &str, at: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = lines.get(at - 1).map(|l| indent(l)).unwrap_or(0);
    let mut body: Vec<&str> = Vec::new();
    for l in lines.iter().skip(at) {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            body.push(l);
            continue;
        }
        if indent(l) <= base {
            break;
        }
        body.push(l);
    }
    while body.last().is_some_and(|l| l.trim().is_empty()) {
        body.pop();
    }
    let cut = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| indent(l))
        .min()
        .unwrap_or(0);
    // A blank line keeps its place (and so every line number) even when it is short.
    let mut out = String::new();
    for l in body {
        out.push_str(l.get(cut..).unwrap_or("").trim_end());
        out.push('\n');
    }
    out
}

/// The appliance's config error in the lab's terms: an inline block's lines are offset by the
/// line of `config:` (`offset`), its fields prefixed by `appliance.config`.
fn config_error(e: ConfigError, file: &Path, offset: usize) -> LabError {
    match e {
        ConfigError::Read { file, error } => LabError {
            file,
            line: None,
            field: String::new(),
            message: format!("cannot read the appliance config: {error}"),
        },
        ConfigError::Invalid {
            line,
            field,
            message,
            file: cfile,
            ..
        } => {
            if offset == 0 {
                LabError {
                    file: cfile,
                    line,
                    field,
                    message,
                }
            } else {
                LabError {
                    file: file.to_path_buf(),
                    line: line.map(|l| l + offset),
                    field: if field.is_empty() || field == "." {
                        "appliance.config".into()
                    } else {
                        format!("appliance.config.{field}")
                    },
                    message,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
name: t1
duration: 10s
appliance:
  config:
    dataplane:
      ports:
        - device: net_tap0
          ipv4: 192.0.2.10/24
      workers: [1]
      mode: pipeline
    local_endpoints: [203.0.113.1]
    gateway:
      ipv4: 192.0.2.1
      port: net_tap0
    tunnels:
      - name: a
        kind: gre
        local: 203.0.113.1
        remote: 198.51.100.10
        interface_address: 10.200.0.0/31
      - name: b
        kind: gre
        local: 203.0.113.1
        remote: 198.51.100.11
        interface_address: 10.200.0.2/31
        key: 7
    routes:
      - {prefix: 172.16.0.0/16, tunnel: a, priority: 100}
      - {prefix: 172.16.0.0/16, tunnel: b, priority: 100}
defaults:
  lan: [172.16.0.0/16]
sites:
  - name: sa
    tunnel: a
  - name: sb
    tunnel: b
    answers: [request]
traffic:
  flows:
    - {class: c, dst: 172.16.0.0/24, count: 4, rate: 100}
schedule:
  - {at: 2s, fault: loss, site: sa, percent: 5, for: 1500ms}
  - {at: 4, fault: reload}
";

    fn parse(text: &str) -> Result<Lab, LabError> {
        Lab::parse(text, Path::new("lab.yaml"))
    }

    /// GOOD with the first occurrence of `from` replaced by `to`.
    fn with(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from}");
        GOOD.replacen(from, to, 1)
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn a_good_lab_resolves_sites_and_defaults() {
        let lab = parse(GOOD).unwrap();
        assert_eq!(lab.sites.len(), 2);
        let b = &lab.sites[1];
        assert_eq!(b.endpoint, Ipv4Addr::new(198, 51, 100, 11));
        assert_eq!(b.local, Ipv4Addr::new(203, 0, 113, 1));
        assert_eq!(b.key, Some(7));
        assert_eq!(b.our_address, Ipv4Addr::new(10, 200, 0, 2));
        assert_eq!(b.answers, vec![ProbeStyle::Request]);
        assert_eq!(
            lab.sites[0].answers,
            vec![ProbeStyle::Reply, ProbeStyle::Request]
        );
        assert_eq!(lab.sites[0].lan.len(), 1);
        assert_eq!(lab.spec.duration, Secs(10.0));
        assert_eq!(lab.spec.schedule[0].for_, Some(Secs(1.5)));
        assert_eq!(lab.spec.schedule[1].at, Secs(4.0));
        // The inline block keeps its own lines: it parses by itself.
        assert!(lab.appliance_text.starts_with("dataplane:\n"));
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let text = with("    answers: [request]", "    answer: [request]");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(line_of(&text, "answer: [request]")));
        assert_eq!(e.field, "sites[1].answer");
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn inline_appliance_errors_point_into_the_lab_file() {
        let text = with("        key: 7", "        key: seven");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.file, Path::new("lab.yaml"));
        assert_eq!(e.line, Some(line_of(&text, "key: seven")), "{e}");
        assert!(e.field.starts_with("appliance.config.tunnels[1]"), "{e}");
        // Semantic errors of the appliance's validation too.
        let text = with("tunnel: b, priority", "tunnel: zz, priority");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(line_of(&text, "tunnel: zz")), "{e}");
    }

    #[test]
    fn semantic_errors_name_their_field() {
        let cases = [
            (with("name: t1", "name: Too-Long"), "name", "name: Too-Long"),
            (
                with("    tunnel: b", "    tunnel: nope"),
                "sites[1].tunnel",
                "tunnel: nope",
            ),
            (
                with("    tunnel: b", "    tunnel: a # twice"),
                "sites[1].tunnel",
                "a # twice",
            ),
            (
                with("site: sa, percent: 5", "site: zz, percent: 5"),
                "schedule[0].site",
                "site: zz",
            ),
            (
                with(", percent: 5", ""),
                "schedule[0].percent",
                "fault: loss",
            ),
            (
                with("at: 4, fault", "at: 40, fault"),
                "schedule[1].at",
                "at: 40",
            ),
            (
                with("dst: 172.16.0.0/24", "dst: 10.9.0.0/24"),
                "traffic.flows[0].dst",
                "10.9.0.0/24",
            ),
            (
                GOOD.replace("net_tap0", "net_null0"),
                "appliance.config",
                "  config:",
            ),
        ];
        for (text, field, needle) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            let first = needle.lines().next().unwrap();
            assert_eq!(e.line, Some(line_of(&text, first)), "{e}");
            assert!(e
                .to_string()
                .starts_with(&format!("lab.yaml:{}: {field}: ", e.line.unwrap())));
        }
    }

    #[test]
    fn kinds_sit_between_defaults_and_sites() {
        let text = with(
            "defaults:\n",
            "kinds:\n  gre: {answers: [reply]}\ndefaults:\n",
        );
        let lab = parse(&text).unwrap();
        assert_eq!(lab.sites[0].answers, vec![ProbeStyle::Reply]);
        assert_eq!(lab.sites[1].answers, vec![ProbeStyle::Request]);
        let text = with("defaults:\n", "kinds:\n  vxlan: {}\ndefaults:\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "kinds.vxlan", "{e}");
        assert_eq!(e.line, Some(line_of(&text, "vxlan")), "{e}");
    }

    #[test]
    fn generators_parse_and_unknown_ones_name_their_line() {
        assert_eq!(
            parse(GOOD).unwrap().spec.traffic.generator,
            Generator::Builtin
        );
        for (word, g) in [
            ("builtin", Generator::Builtin),
            ("trafgen", Generator::Trafgen),
            ("tcpreplay", Generator::Tcpreplay),
        ] {
            let text = with("traffic:\n", &format!("traffic:\n  generator: {word}\n"));
            assert_eq!(parse(&text).unwrap().spec.traffic.generator, g, "{word}");
        }
        let text = with("traffic:\n", "traffic:\n  generator: tcpreply\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "traffic.generator", "{e}");
        assert_eq!(e.line, Some(line_of(&text, "tcpreply")), "{e}");
        assert!(e.message.contains("tcpreplay"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_secs("250ms"), Ok(0.25));
        assert_eq!(parse_secs("1.5s"), Ok(1.5));
        assert_eq!(parse_secs("2m"), Ok(120.0));
        assert_eq!(parse_secs("3"), Ok(3.0));
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("-1s").is_err());
    }
}
