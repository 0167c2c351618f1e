//! IPsec: the appliance-wide `ipsec:` section, the static SAs of each IPsec tunnel
//! (`tunnels[].ipsec`), the keys file, and the hiding of key digits in error messages.
//!
//! ```yaml
//! ipsec:
//!   instance_id: 1                  # unique per appliance of a fleet (part of every IV)
//!   crypto_device: crypto_aesni_gcm
//!   keys_file: keys.yaml            # relative to the config file; mode 0600 or stricter
//!   state_dir: /var/lib/conduit     # holds boot-epoch
//! tunnels:
//!   - kind: ipsec
//!     ipsec:
//!       outbound: { spi: 0x2000, key: 0x<72 hex digits> }
//!       inbound:
//!         - { spi: 0x1000, key_ref: site-c-now }
//!       replay_window: 0
//!       nat_t: false
//! ```
//!
//! Keys are AES-256-GCM keying material as RFC 4106 and `ip xfrm` write it: 32 bytes of key then
//! 4 bytes of salt, 72 hex digits, `0x` optional. A key is never shown: the types that hold one
//! print `<redacted>`, the parse errors name positions and lengths only, and every source line
//! shown under an error has its key digits masked ([`mask_line`]).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use thiserror::Error;

pub use conduit_packet::esp::replay::{
    MAX_WINDOW as MAX_REPLAY_WINDOW, MIN_WINDOW as MIN_REPLAY_WINDOW,
};
pub use conduit_packet::esp::sa::{SaKey, MAX_INBOUND};

use super::addr::FromStrVisitor;
use super::ConfigError;

/// SPIs 1..=255 are reserved by IANA and 0 for local use (RFC 4303 §2.1).
pub const MIN_SPI: u32 = 256;
/// The anti-replay window when none is configured: off, because appliances announcing the same
/// anycast endpoint share the SAs and each sees only part of a sequence.
pub const DEFAULT_REPLAY_WINDOW: u32 = 0;
/// The cryptodev used when `crypto_device` is not set.
pub const DEFAULT_CRYPTO_DEVICE: &str = "crypto_aesni_gcm";
/// Where the boot epoch is kept when `state_dir` is not set.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/conduit";
/// The largest keys file read.
pub const MAX_KEYS_FILE_BYTES: u64 = 1024 * 1024;

/// The appliance-wide `ipsec:` section; required when any tunnel is `kind: ipsec`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpsecSection {
    /// This appliance's id within its fleet, part of every IV it sends (`conduit_packet::esp::iv`):
    /// two appliances with one id would repeat IVs under the shared keys. Required when an IPsec
    /// tunnel exists.
    #[serde(default)]
    pub instance_id: Option<u16>,
    /// The DPDK cryptodev (PMD or vdev name) that seals and opens ESP packets.
    #[serde(default = "default_crypto_device")]
    pub crypto_device: String,
    /// A YAML map `name: 0x<72 hex digits>` that `key_ref` names; relative to the config file;
    /// must not be readable by group or others.
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
    /// Holds `boot-epoch`, incremented at every start.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

impl Default for IpsecSection {
    fn default() -> Self {
        IpsecSection {
            instance_id: None,
            crypto_device: default_crypto_device(),
            keys_file: None,
            state_dir: default_state_dir(),
        }
    }
}

fn default_crypto_device() -> String {
    DEFAULT_CRYPTO_DEVICE.to_string()
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}

/// The static SAs of one IPsec tunnel (`tunnels[].ipsec`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TunnelIpsecConfig {
    /// The SA we encrypt with (the peer's inbound SA). Optional: without it the tunnel only
    /// receives, and packets routed to it are dropped.
    #[serde(default)]
    pub outbound: Option<SaConfig>,
    /// The SAs we accept, 1..=4 with distinct SPIs: more than one during a rekey.
    #[serde(default)]
    pub inbound: Vec<SaConfig>,
    /// Anti-replay window: 0 (off, the default) or 64..=4096 packets.
    #[serde(default)]
    pub replay_window: u32,
    /// ESP in UDP port 4500 both ways (RFC 3948).
    #[serde(default)]
    pub nat_t: bool,
}

/// One SA: its SPI and its key, given inline or by name from the keys file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaConfig {
    pub spi: u32,
    #[serde(default, deserialize_with = "inline_key")]
    pub key: Option<SaKey>,
    #[serde(default)]
    pub key_ref: Option<String>,
}

/// The keys of the keys file by name (resolved at load, so a reload re-reads the file).
pub type KeyStore = BTreeMap<String, SaKey>;

/// Why a text is not an SA key. The messages never quote the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("key has {0} hex digits; AES-256-GCM needs 72 (a 32-byte key, then a 4-byte salt, RFC 4106)")]
    Length(usize),
    #[error("key has a character that is not a hex digit at position {0}")]
    NotHex(usize),
}

/// Parses 72 hex digits (an optional `0x` first) into key and salt.
pub fn parse_key(text: &str) -> Result<SaKey, KeyError> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let offset = text.len() - digits.len();
    if let Some(pos) = digits.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(KeyError::NotHex(offset + pos + 1));
    }
    if digits.len() != 2 * (32 + 4) {
        return Err(KeyError::Length(digits.len()));
    }
    let mut bytes = [0u8; 36];
    for (byte, pair) in bytes.iter_mut().zip(digits.as_bytes().chunks_exact(2)) {
        let hex = std::str::from_utf8(pair).expect("ASCII hex digits");
        *byte = u8::from_str_radix(hex, 16).expect("checked hex digits");
    }
    let mut key = SaKey {
        key: [0; 32],
        salt: [0; 4],
    };
    key.key.copy_from_slice(&bytes[..32]);
    key.salt.copy_from_slice(&bytes[32..]);
    Ok(key)
}

/// A key as the deserializer reads it (through `FromStr`, so that errors carry the position).
struct KeyText(SaKey);

impl FromStr for KeyText {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        parse_key(s).map(KeyText)
    }
}

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FromStrVisitor::<Self>::new(
            "72 hex digits (AES-256-GCM key and salt)",
        ))
    }
}

fn inline_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SaKey>, D::Error> {
    KeyText::deserialize(d).map(|k| Some(k.0))
}

/// An SPI as messages show it: decimal, and hex as configs usually write it.
pub fn spi_text(spi: u32) -> String {
    format!("{spi} (0x{spi:x})")
}

/// Reads the keys file: a regular file, not readable by group or others, a YAML map of names to
/// keys. `shown` is the path as messages name it.
pub(super) fn load_keys(path: &Path, shown: &Path) -> Result<KeyStore, KeysFileError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(KeysFileError::Open)?;
    let meta = file.metadata().map_err(KeysFileError::Open)?;
    if !meta.is_file() {
        return Err(KeysFileError::NotAFile);
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeysFileError::Mode(mode));
    }
    if meta.len() > MAX_KEYS_FILE_BYTES {
        return Err(KeysFileError::TooLarge);
    }
    let mut text = String::new();
    file.take(MAX_KEYS_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(KeysFileError::Open)?;
    parse_keys(&text, shown).map_err(KeysFileError::Content)
}

/// Why the keys file cannot be used (the messages say what to do).
#[derive(Debug)]
pub(super) enum KeysFileError {
    Open(std::io::Error),
    NotAFile,
    Mode(u32),
    TooLarge,
    /// Placed in the keys file itself.
    Content(ConfigError),
}

impl KeysFileError {
    /// The message for the `ipsec.keys_file` field, naming the file as `shown` (a
    /// [`KeysFileError::Content`] error is its own message, placed in the keys file).
    pub(super) fn message(&self, shown: &Path) -> String {
        let f = shown.display();
        match self {
            KeysFileError::Open(e) => format!("cannot read {f}: {e}"),
            KeysFileError::NotAFile => format!("{f} is not a regular file"),
            KeysFileError::Mode(mode) => format!(
                "{f} has mode {mode:04o}, readable by group or others; keys must be private to the appliance's user: chmod 600 {f}"
            ),
            KeysFileError::TooLarge => format!(
                "{f} is larger than the {} KiB limit for a keys file",
                MAX_KEYS_FILE_BYTES >> 10
            ),
            KeysFileError::Content(e) => e.to_string(),
        }
    }
}

/// Parses the keys file's text; errors are placed in it (`shown` naming the file), with the
/// source line's values masked.
fn parse_keys(text: &str, shown: &Path) -> Result<KeyStore, ConfigError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let raw: UniqueKeys = match serde_path_to_error::deserialize(de) {
        Ok(m) => m,
        Err(e) => {
            let field = e.path().to_string();
            let mut d = super::diagnostic::diagnose(text, field, e.inner());
            let field = match d.field.as_str() {
                "." | "?" => String::new(),
                f => f.to_string(),
            };
            // The parser places a repeated name at the map; show its second occurrence.
            if let Some(name) = d
                .message
                .strip_prefix('`')
                .and_then(|m| m.strip_suffix("` is given twice"))
            {
                let at = format!("{name}:");
                if let Some(n) = text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| l.trim_start().starts_with(&at))
                    .nth(1)
                    .map(|(n, _)| n + 1)
                {
                    d.line = Some(n);
                    d.column = None;
                }
            }
            return Err(ConfigError::Invalid {
                file: shown.to_path_buf(),
                line: d.line,
                column: d.column,
                snippet: d
                    .line
                    .and_then(|l| keys_snippet(text, l, d.column))
                    .map(String::into_boxed_str),
                field,
                message: mask_text(&d.message),
            });
        }
    };
    Ok(raw.0)
}

/// The keys file's map, refusing a name given twice (YAML maps would keep the last silently).
struct UniqueKeys(KeyStore);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping of key names to 72 hex digits")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut keys = KeyStore::new();
                while let Some(name) = map.next_key::<String>()? {
                    let key: KeyText = map.next_value()?;
                    if keys.contains_key(&name) {
                        return Err(serde::de::Error::custom(format!("`{name}` is given twice")));
                    }
                    keys.insert(name, key.0);
                }
                Ok(UniqueKeys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// A keys file line under an error: every value is a key, so everything after the first `:`
/// is masked.
fn keys_snippet(text: &str, line: usize, column: Option<usize>) -> Option<String> {
    let src = text.lines().nth(line.checked_sub(1)?)?;
    let masked: String = match src.find(':') {
        Some(i) => {
            let (head, tail) = src.split_at(i + 1);
            let tail: String = tail
                .chars()
                .map(|c| if c.is_whitespace() { c } else { '*' })
                .collect();
            format!("{head}{tail}")
        }
        None => src.chars().map(|_| '*').collect(),
    };
    super::diagnostic::snippet(&masked, 1, column).map(|s| {
        // `snippet` numbered the masked line 1; give it its real number.
        let num = line.to_string();
        let pad = " ".repeat(num.len());
        let mut rows = s.lines().skip(1);
        let body = rows.next().unwrap_or("").trim_start_matches("1 | ");
        let caret = rows.next().unwrap_or("").trim_start_matches("  | ");
        format!("{pad} |\n{num} | {body}\n{pad} | {caret}")
    })
}

/// The shortest run of hex digits treated as key material when masking.
const MIN_MASKED_HEX: usize = 16;
/// A `key:` value longer than this is masked whatever it looks like (a GRE key, the only other
/// `key`, is a 32-bit integer: at most 10 characters).
const MAX_SHOWN_KEY_VALUE: usize = 10;

/// `line` with key material replaced by `*`, character for character so that a caret under it
/// stays in place: every run of 16 or more hex digits, and the value of a `key:` field longer
/// than a GRE key.
pub(super) fn mask_line(line: &str) -> std::borrow::Cow<'_, str> {
    let chars: Vec<char> = line.chars().collect();
    let mut mask = vec![false; chars.len()];
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_hexdigit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i - start >= MIN_MASKED_HEX {
                mask[start..i].iter_mut().for_each(|m| *m = true);
            }
        } else {
            i += 1;
        }
    }
    // `key:` preceded by the start, a blank, `{` or `,`; its value runs to `,`, `}`, ` #` or
    // the end.
    for (at, _) in line.match_indices("key:") {
        let before = line[..at].chars().next_back();
        if !matches!(before, None | Some(' ' | '\t' | '{' | ',' | '-')) {
            continue;
        }
        let start = line[..at + 4].chars().count();
        let mut end = start;
        while end < chars.len()
            && !matches!(chars[end], ',' | '}')
            && !(chars[end] == '#' && end > 0 && chars[end - 1] == ' ')
        {
            end += 1;
        }
        let value: String = chars[start..end].iter().collect();
        if value.trim().chars().count() > MAX_SHOWN_KEY_VALUE {
            for (m, c) in mask[start..end].iter_mut().zip(&chars[start..end]) {
                *m = !c.is_whitespace();
            }
        }
    }
    if !mask.contains(&true) {
        return line.into();
    }
    chars
        .iter()
        .zip(&mask)
        .map(|(&c, &m)| if m { '*' } else { c })
        .collect::<String>()
        .into()
}

/// A message with runs of hex digits that could be key material masked (a parse error may quote
/// a value the parser could not use).
pub(super) fn mask_text(message: &str) -> String {
    message
        .lines()
        .map(mask_hex_runs)
        .collect::<Vec<_>>()
        .join("\n")
}

fn mask_hex_runs(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= MIN_MASKED_HEX {
            out.push_str(&"*".repeat(run.len()));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in line.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223";

    #[test]
    fn keys_parse_with_and_without_0x() {
        let k = parse_key(KEY).unwrap();
        assert_eq!(k.key[31], 0x1f);
        assert_eq!(k.salt, [0x20, 0x21, 0x22, 0x23]);
        assert_eq!(parse_key(&format!("0x{KEY}")).unwrap(), k);
        assert_eq!(parse_key(&format!("0X{KEY}")).unwrap(), k);
        assert_eq!(parse_key(&KEY[2..]), Err(KeyError::Length(70)));
        assert_eq!(parse_key(&format!("0x{KEY}00")), Err(KeyError::Length(74)));
        assert_eq!(parse_key(""), Err(KeyError::Length(0)));
        assert_eq!(parse_key("0x"), Err(KeyError::Length(0)));
        assert_eq!(
            parse_key(&format!("0x{}g", &KEY[1..])),
            Err(KeyError::NotHex(74))
        );
        assert_eq!(parse_key(&format!("x{KEY}")), Err(KeyError::NotHex(1)));
        assert_eq!(parse_key(&"é".repeat(36)), Err(KeyError::NotHex(1)));
        for e in [KeyError::Length(3), KeyError::NotHex(9)] {
            assert!(!e.to_string().contains("0102"), "{e}");
        }
    }

    #[test]
    fn masking_hides_keys_and_keeps_columns() {
        let line = format!("        - {{ spi: 0x1000, key: 0x{KEY} }}");
        let m = mask_line(&line);
        assert_eq!(m.chars().count(), line.chars().count());
        assert!(!m.contains("0102"), "{m}");
        assert!(m.contains("spi: 0x1000, key: "), "{m}");
        assert!(m.ends_with("** }"), "{m}");
        // A broken key (a typo splits the hex run) is masked whole as a `key:` value.
        let broken = format!("      key: {}zz{}", &KEY[..5], &KEY[5..12]);
        assert_eq!(mask_line(&broken), format!("      key: {}", "*".repeat(14)));
        // A GRE key and other lines are left alone.
        assert_eq!(mask_line("    key: 42"), "    key: 42");
        assert_eq!(
            mask_line("    key_ref: site-c-next"),
            "    key_ref: site-c-next"
        );
        assert_eq!(
            mask_line("  mac: 02:00:00:00:00:01"),
            "  mac: 02:00:00:00:00:01"
        );
        // Any long hex run, wherever it is.
        assert_eq!(
            mask_line(&format!("  x: {KEY}")),
            format!("  x: {}", "*".repeat(72))
        );
        assert_eq!(
            mask_text(&format!("invalid type: string \"{KEY}\"")),
            format!("invalid type: string \"{}\"", "*".repeat(72))
        );
    }

    #[test]
    fn keys_file_content() {
        let shown = Path::new("keys.yaml");
        let keys = parse_keys(&format!("now: 0x{KEY}\nnext: {KEY}\n"), shown).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys["now"], keys["next"]);
        let err = |text: &str| parse_keys(text, shown).unwrap_err().to_string();
        let e = err(&format!("now: 0x{KEY}\nnow: 0x{KEY}\n"));
        assert!(e.starts_with("keys.yaml:2:"), "{e}");
        assert!(!e.contains("0102030405"), "{e}");
        let e = err(&format!("now: [0x{KEY}]\n"));
        assert!(e.starts_with("keys.yaml:1:"), "{e}");
        assert!(!e.contains("0102030405"), "{e}");
        let e = err(&format!("- 0x{KEY}\n"));
        assert!(!e.contains("0102030405"), "{e}");
    }

    #[test]
    fn keys_file_snippet_masks_every_value() {
        let text = format!("a: 0x{KEY}\nb: 12zz\n");
        let s = keys_snippet(&text, 2, Some(4)).unwrap();
        assert_eq!(s, "  |\n2 | b: ****\n  |    ^");
    }

    #[test]
    fn debug_of_an_sa_hides_its_key() {
        let sa: SaConfig = serde_yaml_ng::from_str(&format!("{{spi: 4096, key: {KEY}}}")).unwrap();
        let d = format!("{sa:?}");
        assert!(
            d.contains("redacted") && !d.contains("0102") && !d.contains("[0, 1, 2"),
            "{d}"
        );
    }
}
