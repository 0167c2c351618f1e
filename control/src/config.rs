//! The appliance's YAML configuration.
//!
//! Parsing is strict: unknown fields are errors, and every error names the file, the line and
//! the field path (`dataplane.ports[1].mtu`), so an operator can go straight to the mistake.
//! Syntax and type errors come from serde with their location; semantic checks done after
//! parsing find the line of the offending field with [`locate`].
//!
//! So far the file describes the dataplane (ports, worker lcores, burst and pool sizes, the
//! forwarding mode) and the console statistics; tunnels, routes and health checks join it with
//! the control plane.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub dataplane: DataplaneConfig,
    #[serde(default)]
    pub stats: StatsConfig,
}

/// Ports, lcores and the poll loop.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// Ports by DPDK device name (a vdev name such as `net_ring0`, or a PCI address), in the
    /// order that defines port pairing for `io` mode.
    pub ports: Vec<PortConfig>,
    /// Worker lcore ids. Each owns one RX/TX queue pair on every port.
    pub workers: Vec<u32>,
    #[serde(default)]
    pub mode: ForwardMode,
    /// Packets per receive burst (1..=256).
    #[serde(default = "default_burst")]
    pub burst: u16,
    /// Mbufs in the packet pool; default: enough for every descriptor ring, burst and cache.
    #[serde(default)]
    pub mbufs: Option<u32>,
    #[serde(default = "default_mbuf_cache")]
    pub mbuf_cache: u32,
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
}

/// One port.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub device: String,
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Spread load over the workers' RX queues by RSS where the device supports it.
    #[serde(default = "default_true")]
    pub rss: bool,
}

/// What the workers do with packets.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// testpmd's io mode: forward unchanged to the paired port (a diagnostic mode).
    #[default]
    Io,
}

/// Console statistics.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Print per-port and per-core rates every this many milliseconds; 0 turns it off.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            interval_ms: default_interval(),
        }
    }
}

fn default_burst() -> u16 {
    32
}
fn default_mbuf_cache() -> u32 {
    256
}
fn default_desc() -> u16 {
    1024
}
fn default_true() -> bool {
    true
}
fn default_interval() -> u64 {
    1000
}

/// The largest burst a worker accepts (the dataplane's fixed burst array).
pub const MAX_BURST: u16 = 256;

/// A configuration that could not be used.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    /// Syntax, type or semantic error at a place in the file.
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        field: String,
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, error } => {
                write!(f, "{}: cannot read config: {error}", file.display())
            }
            ConfigError::Invalid {
                file,
                line,
                column,
                field,
                message,
            } => {
                write!(f, "{}", file.display())?;
                if let Some(l) = line {
                    write!(f, ":{l}")?;
                    if let Some(c) = column {
                        write!(f, ":{c}")?;
                    }
                }
                if field.is_empty() || field == "." {
                    write!(f, ": {message}")
                } else {
                    write!(f, ": {field}: {message}")
                }
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { error, .. } => Some(error),
            ConfigError::Invalid { .. } => None,
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            file: path.to_path_buf(),
            error,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let loc = inner.location();
            // serde_yaml_ng appends " at line L column C" to its messages; the location is
            // reported separately, so strip it.
            let mut message = inner.to_string();
            if let Some(i) = message.find(" at line ") {
                message.truncate(i);
            }
            ConfigError::Invalid {
                file: file.to_path_buf(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                field,
                message,
            }
        })?;
        cfg.validate(text, file)?;
        Ok(cfg)
    }

    fn validate(&self, text: &str, file: &Path) -> Result<(), ConfigError> {
        let err = |field: String, message: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            line: locate(text, &field),
            column: None,
            field,
            message,
        };
        let dp = &self.dataplane;
        if dp.ports.is_empty() {
            return Err(err(
                "dataplane.ports".into(),
                "at least one port is needed".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (i, p) in dp.ports.iter().enumerate() {
            if p.device.trim().is_empty() {
                return Err(err(
                    format!("dataplane.ports[{i}].device"),
                    "empty device name".into(),
                ));
            }
            if !seen.insert(p.device.as_str()) {
                return Err(err(
                    format!("dataplane.ports[{i}].device"),
                    format!("port {:?} is listed twice", p.device),
                ));
            }
            if let Some(mtu) = p.mtu {
                if !(68..=9600).contains(&mtu) {
                    return Err(err(
                        format!("dataplane.ports[{i}].mtu"),
                        format!("MTU {mtu} is outside 68..=9600"),
                    ));
                }
            }
        }
        if dp.workers.is_empty() {
            return Err(err(
                "dataplane.workers".into(),
                "at least one worker lcore is needed".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (i, w) in dp.workers.iter().enumerate() {
            if !seen.insert(*w) {
                return Err(err(
                    format!("dataplane.workers[{i}]"),
                    format!("lcore {w} is listed twice"),
                ));
            }
        }
        if dp.burst == 0 || dp.burst > MAX_BURST {
            return Err(err(
                "dataplane.burst".into(),
                format!("burst {} is outside 1..={MAX_BURST}", dp.burst),
            ));
        }
        if dp.rx_desc == 0 || dp.tx_desc == 0 {
            let f = if dp.rx_desc == 0 {
                "rx_desc"
            } else {
                "tx_desc"
            };
            return Err(err(format!("dataplane.{f}"), "must be at least 1".into()));
        }
        if let Some(n) = dp.mbufs {
            let need = self.min_mbufs();
            if n < need {
                return Err(err(
                    "dataplane.mbufs".into(),
                    format!("{n} mbufs cannot fill the descriptor rings and bursts; at least {need} are needed"),
                ));
            }
        }
        Ok(())
    }

    /// Mbufs that the rings, bursts and caches can hold at once.
    pub fn min_mbufs(&self) -> u32 {
        let dp = &self.dataplane;
        let ports = dp.ports.len() as u32;
        let workers = dp.workers.len() as u32;
        ports * workers * (dp.rx_desc as u32 + dp.tx_desc as u32 + dp.burst as u32)
            + workers * dp.mbuf_cache
    }

    /// The pool size to create: the configured one, or the minimum plus slack rounded up to
    /// 2^n - 1 (the most efficient size for DPDK's ring-backed pools).
    pub fn pool_size(&self) -> u32 {
        self.dataplane.mbufs.unwrap_or_else(|| {
            let want = (self.min_mbufs() + 1024).max(8191);
            (want + 1).next_power_of_two() - 1
        })
    }
}

/// Finds the line (1-based) of a field path such as `dataplane.ports[1].mtu` in block-style
/// YAML: keys are matched at increasing indentation, `[i]` selects the i-th `- ` item. Returns
/// the deepest line found, so a path into a missing field points at its parent.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let mut segments: Vec<Segment> = Vec::new();
    for part in path.split('.') {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            segments.push(Segment::Key(key));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            segments.push(Segment::Index(idx.trim_end_matches(']').parse().ok()?));
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    let mut start = 0usize;
    let mut min_indent = 0usize;
    // Inside a sequence item, the next "- " at the item's indentation starts its sibling.
    let mut item_indent: Option<usize> = None;
    'seg: for seg in segments {
        let mut item = 0usize;
        for (n, raw) in lines.iter().enumerate().skip(start) {
            let content = raw.split(" #").next().unwrap_or("");
            let trimmed = content.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = content.len() - trimmed.len();
            if n > start && indent < min_indent {
                break;
            }
            if n > start && item_indent == Some(indent) && trimmed.starts_with('-') {
                break;
            }
            match seg {
                Segment::Key(k) => {
                    let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
                    if body.starts_with(k) && body[k.len()..].trim_start().starts_with(':') {
                        found = Some(n + 1);
                        start = n + 1;
                        min_indent = indent + 1;
                        item_indent = None;
                        continue 'seg;
                    }
                }
                Segment::Index(i) => {
                    if trimmed.starts_with("- ") || trimmed == "-" {
                        if item == i {
                            found = Some(n + 1);
                            // The item's own keys may sit on this line ("- device: x").
                            start = n;
                            min_indent = indent;
                            item_indent = Some(indent);
                            continue 'seg;
                        }
                        item += 1;
                    }
                }
            }
        }
        break;
    }
    found
}

#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
dataplane:
  ports:
    - device: net_ring0
    - device: net_ring1
      mtu: 1500
  workers: [1]
stats:
  interval_ms: 0
";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.yaml"))
    }

    #[test]
    fn parses_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.dataplane.ports.len(), 2);
        assert_eq!(c.dataplane.ports[1].mtu, Some(1500));
        assert!(c.dataplane.ports[0].rss);
        assert_eq!(c.dataplane.burst, 32);
        assert_eq!(c.dataplane.mode, ForwardMode::Io);
        assert_eq!(c.stats.interval_ms, 0);
        let size = c.pool_size();
        assert!(size >= c.min_mbufs());
        assert!((size + 1).is_power_of_two());
    }

    #[test]
    fn unknown_field_has_line_and_path() {
        let text = GOOD.replace("      mtu: 1500", "      mtu: 1500\n      speed: 10");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:6:"), "{e}");
        assert!(e.contains("dataplane.ports[1]"), "{e}");
        assert!(e.contains("unknown field `speed`"), "{e}");
    }

    #[test]
    fn wrong_type_has_line_and_path() {
        let text = GOOD.replace("mtu: 1500", "mtu: big");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:5:"), "{e}");
        assert!(e.contains("dataplane.ports[1].mtu"), "{e}");
    }

    #[test]
    fn semantic_errors_have_line_and_path() {
        let text = GOOD.replace("mtu: 1500", "mtu: 20");
        let e = parse(&text).unwrap_err().to_string();
        assert_eq!(
            e,
            "test.yaml:5: dataplane.ports[1].mtu: MTU 20 is outside 68..=9600"
        );

        let text = GOOD.replace("net_ring1", "net_ring0");
        let e = parse(&text).unwrap_err().to_string();
        assert_eq!(
            e,
            "test.yaml:4: dataplane.ports[1].device: port \"net_ring0\" is listed twice"
        );

        let text = GOOD.replace("workers: [1]", "workers: []");
        let e = parse(&text).unwrap_err().to_string();
        assert_eq!(
            e,
            "test.yaml:6: dataplane.workers: at least one worker lcore is needed"
        );

        let text = GOOD.replace("workers: [1]", "workers: [1]\n  burst: 300");
        let e = parse(&text).unwrap_err().to_string();
        assert_eq!(
            e,
            "test.yaml:7: dataplane.burst: burst 300 is outside 1..=256"
        );
    }

    #[test]
    fn missing_section_is_reported() {
        let e = parse("stats:\n  interval_ms: 5\n").unwrap_err().to_string();
        assert!(e.contains("missing field `dataplane`"), "{e}");
    }

    #[test]
    fn unreadable_file_is_reported() {
        let e = Config::load(Path::new("/nonexistent/conduit.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/conduit.yaml: cannot read config:"),
            "{e}"
        );
    }

    #[test]
    fn locate_finds_nested_fields() {
        assert_eq!(locate(GOOD, "dataplane"), Some(1));
        assert_eq!(locate(GOOD, "dataplane.ports"), Some(2));
        assert_eq!(locate(GOOD, "dataplane.ports[0].device"), Some(3));
        assert_eq!(locate(GOOD, "dataplane.ports[1]"), Some(4));
        assert_eq!(locate(GOOD, "dataplane.ports[1].mtu"), Some(5));
        assert_eq!(locate(GOOD, "dataplane.workers"), Some(6));
        assert_eq!(locate(GOOD, "stats.interval_ms"), Some(8));
        // A field that is absent points at its closest parent.
        assert_eq!(locate(GOOD, "dataplane.ports[0].mtu"), Some(3));
    }
}
