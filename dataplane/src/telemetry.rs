//! DPDK telemetry commands answered by Rust closures.
//!
//! DPDK's telemetry library serves a Unix `SOCK_SEQPACKET` socket
//! (`<runtime dir>/dpdk_telemetry.v2`, read with `dpdk-telemetry.py -f <file-prefix>`). A command
//! is a path such as `/conduit/tunnels`, optionally followed by `,params`; its callback fills an
//! opaque `rte_tel_data` that DPDK encodes as JSON: `{"/conduit/tunnels": <reply>}`.
//!
//! [`register_command`] takes a closure that returns a [`Reply`] (plain Rust values), and this
//! module converts it into `rte_tel_data` calls.
//!
//! # Decisions
//!
//! - **Routing by name.** DPDK's callback type `int (*)(const char *cmd, const char *params,
//!   struct rte_tel_data *d)` carries no user-data pointer, so every command registers the same
//!   C trampoline and a process-wide registry maps the command name to its closure. Registering
//!   a name again replaces the closure (DPDK is called once per name; it cannot unregister), so
//!   a reloading control thread can re-register its commands freely.
//! - **Threads.** DPDK calls the trampoline from its telemetry thread, one thread per connected
//!   client, so closures must be `Send + Sync`. The registry lock is held only to clone the
//!   closure's `Arc` out, never while the closure runs.
//! - **Panics** inside a closure are caught in the trampoline (unwinding into C is undefined
//!   behaviour) and answered like an error: DPDK then replies `{"<cmd>": null}`. A closure's
//!   [`CommandError`] (bad parameters, unknown tunnel, ...) gets the same answer, which is DPDK's
//!   own convention (e.g. `/ethdev/stats,99` for a missing port).
//! - **Shapes DPDK 22.11 accepts**, checked by [`Reply::validate`] before anything is handed to
//!   DPDK, so a reply is either sent whole or refused (logged, `null`), never cut short silently:
//!   - a reply is a string, a dict or an array;
//!   - dict keys are 1..=127 bytes of `[A-Za-z0-9_/]` (DPDK rejects others, e.g. a `-`);
//!     at most 256 entries per dict;
//!   - arrays hold one kind of scalar (i32, u64 or string), or (at the top level only) arrays;
//!     at most 512 entries; an array of dicts is not supported by 22.11;
//!   - containers nest one level: a top-level dict may hold dicts and arrays of scalars, a
//!     top-level array may hold arrays of scalars; nothing deeper;
//!   - strings inside dicts and arrays are at most 127 bytes (a top-level string 8191) and hold
//!     no NUL; DPDK escapes `"`, `\` and control characters itself;
//!   - the JSON encoding must fit DPDK's 16 KiB output buffer ([`MAX_OUTPUT_LEN`]); a larger
//!     reply would otherwise lose entries without notice.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use dpdk_sys::rte_tel_data;

use crate::error::{DpdkError, Result};

/// Size of DPDK 22.11's JSON output buffer (`MAX_OUTPUT_LEN` in `telemetry.c`, also reported as
/// `max_output_len` on connect). The whole answer, `{"<cmd>": ...}` included, must fit.
pub const MAX_OUTPUT_LEN: usize = 16 * 1024;
/// Longest string DPDK keeps inside a dict or an array, and longest dict key (bytes, without NUL).
pub const MAX_STRING_LEN: usize = dpdk_sys::RTE_TEL_MAX_STRING_LEN as usize - 1;
/// Longest top-level string reply.
pub const MAX_SINGLE_STRING_LEN: usize = dpdk_sys::RTE_TEL_MAX_SINGLE_STRING_LEN as usize - 1;
/// Entries of one dict.
pub const MAX_DICT_ENTRIES: usize = dpdk_sys::RTE_TEL_MAX_DICT_ENTRIES as usize;
/// Entries of one array.
pub const MAX_ARRAY_ENTRIES: usize = dpdk_sys::RTE_TEL_MAX_ARRAY_ENTRIES as usize;
/// Longest command name DPDK 22.11 registers (`MAX_CMD_LEN` 56, including the NUL).
pub const MAX_COMMAND_LEN: usize = 55;

/// The answer to a telemetry command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A bare string (`{"/cmd": "text"}`).
    String(String),
    Dict(Dict),
    Array(Array),
}

/// A value inside a [`Dict`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// DPDK's signed integers are 32-bit.
    Int(i32),
    UInt(u64),
    String(String),
    /// A nested dict (one level below the reply only).
    Dict(Dict),
    /// A nested array of scalars (one level below the reply only).
    Array(Array),
}

/// A homogeneous array (DPDK fixes the element type when the array starts).
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    Int(Vec<i32>),
    UInt(Vec<u64>),
    String(Vec<String>),
    /// Arrays of scalars; only as a top-level reply.
    Arrays(Vec<Array>),
}

/// An ordered string-keyed dict (order is kept in the JSON).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dict {
    entries: Vec<(String, Value)>,
}

impl Dict {
    pub fn new() -> Self {
        Dict::default()
    }

    /// Appends `key: value` (no de-duplication: keys are the caller's).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> &mut Self {
        self.entries.push((key.into(), value));
        self
    }

    pub fn uint(&mut self, key: impl Into<String>, v: u64) -> &mut Self {
        self.insert(key, Value::UInt(v))
    }

    pub fn int(&mut self, key: impl Into<String>, v: i32) -> &mut Self {
        self.insert(key, Value::Int(v))
    }

    pub fn string(&mut self, key: impl Into<String>, v: impl Into<String>) -> &mut Self {
        self.insert(key, Value::String(v.into()))
    }

    pub fn entries(&self) -> &[(String, Value)] {
        &self.entries
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl From<Array> for Value {
    fn from(a: Array) -> Self {
        Value::Array(a)
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Value::Dict(d)
    }
}

impl Array {
    fn len(&self) -> usize {
        match self {
            Array::Int(v) => v.len(),
            Array::UInt(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Arrays(v) => v.len(),
        }
    }
}

/// Why a [`Reply`] cannot be handed to DPDK 22.11 (see the module docs for the rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("dict key {0:?} is not 1..=127 bytes of [A-Za-z0-9_/]")]
    BadKey(String),
    #[error("string of {len} bytes at {at} is longer than {max}")]
    StringTooLong { at: String, len: usize, max: usize },
    #[error("string at {0} contains a NUL byte")]
    Nul(String),
    #[error("{what} at {at} has {len} entries, more than {max}")]
    TooManyEntries {
        what: &'static str,
        at: String,
        len: usize,
        max: usize,
    },
    #[error("container at {0} is nested deeper than DPDK 22.11 supports (one level)")]
    TooDeep(String),
    #[error(
        "the JSON answer would be about {0} bytes, more than DPDK's {MAX_OUTPUT_LEN}-byte buffer"
    )]
    TooLarge(usize),
}

/// What a command closure returns instead of a reply: DPDK then answers `{"<cmd>": null}` and
/// the message is logged at debug level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError(pub String);

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CommandError {}

impl CommandError {
    pub fn new(msg: impl Into<String>) -> Self {
        CommandError(msg.into())
    }
}

/// Whether `key` is a name DPDK 22.11 accepts in a dict.
pub fn valid_key(key: &str) -> bool {
    (1..=MAX_STRING_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/')
}

/// Whether `cmd` is a command name DPDK 22.11 registers: `/` first, then `[A-Za-z0-9_/]`.
pub fn valid_command(cmd: &str) -> bool {
    cmd.starts_with('/')
        && cmd.len() <= MAX_COMMAND_LEN
        && cmd
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/')
}

fn check_string(s: &str, at: &str, max: usize) -> std::result::Result<(), ShapeError> {
    if s.len() > max {
        return Err(ShapeError::StringTooLong {
            at: at.to_string(),
            len: s.len(),
            max,
        });
    }
    if s.as_bytes().contains(&0) {
        return Err(ShapeError::Nul(at.to_string()));
    }
    Ok(())
}

/// Bytes of `s` as a JSON string, quotes included (an upper bound of DPDK's encoding).
fn json_string_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

fn check_array(a: &Array, at: &str, top: bool) -> std::result::Result<usize, ShapeError> {
    if a.len() > MAX_ARRAY_ENTRIES {
        return Err(ShapeError::TooManyEntries {
            what: "array",
            at: at.to_string(),
            len: a.len(),
            max: MAX_ARRAY_ENTRIES,
        });
    }
    // Brackets plus a comma per element.
    let mut len = 2 + a.len();
    match a {
        Array::Int(v) => len += v.iter().map(|x| x.to_string().len()).sum::<usize>(),
        Array::UInt(v) => len += v.iter().map(|x| x.to_string().len()).sum::<usize>(),
        Array::String(v) => {
            for (i, s) in v.iter().enumerate() {
                check_string(s, &format!("{at}[{i}]"), MAX_STRING_LEN)?;
                len += json_string_len(s);
            }
        }
        Array::Arrays(v) => {
            if !top {
                return Err(ShapeError::TooDeep(at.to_string()));
            }
            for (i, inner) in v.iter().enumerate() {
                len += check_array(inner, &format!("{at}[{i}]"), false)?;
            }
        }
    }
    Ok(len)
}

fn check_dict(d: &Dict, at: &str, top: bool) -> std::result::Result<usize, ShapeError> {
    if d.len() > MAX_DICT_ENTRIES {
        return Err(ShapeError::TooManyEntries {
            what: "dict",
            at: at.to_string(),
            len: d.len(),
            max: MAX_DICT_ENTRIES,
        });
    }
    let mut len = 2 + d.len();
    for (k, v) in &d.entries {
        if !valid_key(k) {
            return Err(ShapeError::BadKey(k.clone()));
        }
        let here = format!("{at}.{k}");
        len += json_string_len(k) + 1;
        len += match v {
            Value::Int(x) => x.to_string().len(),
            Value::UInt(x) => x.to_string().len(),
            Value::String(s) => {
                check_string(s, &here, MAX_STRING_LEN)?;
                json_string_len(s)
            }
            Value::Dict(inner) => {
                if !top {
                    return Err(ShapeError::TooDeep(here));
                }
                check_dict(inner, &here, false)?
            }
            Value::Array(inner) => {
                if !top {
                    return Err(ShapeError::TooDeep(here));
                }
                check_array(inner, &here, false)?
            }
        };
    }
    Ok(len)
}

impl Reply {
    /// Checks the reply against DPDK 22.11's limits for command `cmd` and returns an upper
    /// bound of its JSON size (`{"<cmd>": ...}` included).
    pub fn validate(&self, cmd: &str) -> std::result::Result<usize, ShapeError> {
        let body = match self {
            Reply::String(s) => {
                check_string(s, "reply", MAX_SINGLE_STRING_LEN)?;
                json_string_len(s)
            }
            Reply::Dict(d) => check_dict(d, "reply", true)?,
            Reply::Array(a) => check_array(a, "reply", true)?,
        };
        // {"<cmd>": <body>}
        let total = json_string_len(cmd) + body + 4;
        if total > MAX_OUTPUT_LEN {
            return Err(ShapeError::TooLarge(total));
        }
        Ok(total)
    }
}

/// A command's closure: gets the text after the first `,` (if any) and answers.
pub type Handler =
    Arc<dyn Fn(Option<&str>) -> std::result::Result<Reply, CommandError> + Send + Sync>;

fn registry() -> &'static Mutex<HashMap<String, Handler>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Handler>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Registers (or replaces) the telemetry command `cmd` with `help` text.
///
/// `cmd` must satisfy [`valid_command`] (conventionally `/conduit/...`) and `help` be at most
/// 127 bytes. On a replacement only the closure changes: DPDK keeps the first help text. Works before or after EAL initialisation (DPDK keeps the command list either
/// way); DPDK 22.11 accepts at most 64 commands in all, its own included.
pub fn register_command<F>(cmd: &str, help: &str, handler: F) -> Result<()>
where
    F: Fn(Option<&str>) -> std::result::Result<Reply, CommandError> + Send + Sync + 'static,
{
    if !valid_command(cmd) {
        return Err(DpdkError::InvalidArgument(format!(
            "telemetry command {cmd:?} must be '/' then up to {MAX_COMMAND_LEN} bytes of [A-Za-z0-9_/]"
        )));
    }
    if help.len() > MAX_STRING_LEN || help.contains('\0') {
        return Err(DpdkError::InvalidArgument(format!(
            "telemetry help for {cmd} is longer than {MAX_STRING_LEN} bytes or has a NUL"
        )));
    }
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(slot) = reg.get_mut(cmd) {
        *slot = Arc::new(handler);
        return Ok(());
    }
    let c_cmd = CString::new(cmd).expect("checked: no NUL");
    let c_help = CString::new(help).expect("checked: no NUL");
    // The closure is in the registry before DPDK can call the trampoline for this name (the
    // lock is held across the call, and the trampoline takes it too).
    reg.insert(cmd.to_string(), Arc::new(handler));
    // SAFETY: both strings are valid NUL-terminated C strings (DPDK copies them into its own
    // table); `trampoline` has exactly the `telemetry_cb` signature and never unwinds.
    let ret = unsafe {
        dpdk_sys::rte_telemetry_register_cmd(c_cmd.as_ptr(), Some(trampoline), c_help.as_ptr())
    };
    if ret < 0 {
        reg.remove(cmd);
        return Err(DpdkError::from_ret("rte_telemetry_register_cmd", ret));
    }
    Ok(())
}

/// Runs the closure registered for `cmd` as DPDK would, without DPDK: for tests and for
/// callers that want the same answers elsewhere. `None` if no such command is registered.
pub fn call_command(
    cmd: &str,
    params: Option<&str>,
) -> Option<std::result::Result<Reply, CommandError>> {
    let handler = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(cmd)
        .cloned()?;
    Some(handler(params))
}

/// The one C callback of every command: looks the closure up by `cmd`, runs it with panics
/// caught, and writes its reply into `d`. Returns 0, or -1 for DPDK's `null` answer.
unsafe extern "C" fn trampoline(
    cmd: *const c_char,
    params: *const c_char,
    d: *mut rte_tel_data,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if cmd.is_null() || d.is_null() {
            return Err("called with a null command or data pointer".to_string());
        }
        // SAFETY: DPDK passes the NUL-terminated command it matched, valid for this call.
        let cmd = unsafe { CStr::from_ptr(cmd) }
            .to_string_lossy()
            .into_owned();
        let params = if params.is_null() {
            None
        } else {
            // SAFETY: non-null params is the NUL-terminated rest of the request, valid for
            // this call.
            Some(
                unsafe { CStr::from_ptr(params) }
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        let reply = match call_command(&cmd, params.as_deref()) {
            None => return Err(format!("{cmd}: no handler registered")),
            Some(Err(e)) => return Err(format!("{cmd}: {e}")),
            Some(Ok(reply)) => reply,
        };
        reply
            .validate(&cmd)
            .map_err(|e| format!("{cmd}: reply refused: {e}"))?;
        // SAFETY: `d` is the fresh rte_tel_data DPDK passed to this callback.
        unsafe { write_reply(d, &reply) }.map_err(|e| format!("{cmd}: {e}"))
    }));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(msg)) => {
            log::debug!("telemetry: {msg}");
            -1
        }
        Err(_) => {
            log::error!("telemetry: a command handler panicked; answered null");
            -1
        }
    }
}

fn cstring(s: &str) -> std::result::Result<CString, String> {
    CString::new(s).map_err(|_| format!("string {s:?} has a NUL byte"))
}

fn ret_ok(call: &str, ret: c_int) -> std::result::Result<(), String> {
    // DPDK returns a negative errno on failure and a positive E2BIG when it truncated a string;
    // `validate` rules both out, so either means a mismatch with DPDK's limits.
    if ret != 0 {
        Err(format!("{call} returned {ret}"))
    } else {
        Ok(())
    }
}

/// Writes a validated reply into `d`.
///
/// # Safety
/// `d` must point to an `rte_tel_data` that DPDK handed to a telemetry callback (or one from
/// `rte_tel_data_alloc`), not yet started.
unsafe fn write_reply(d: *mut rte_tel_data, reply: &Reply) -> std::result::Result<(), String> {
    match reply {
        Reply::String(s) => {
            let s = cstring(s)?;
            // SAFETY: d is valid (caller); s is NUL-terminated and copied by DPDK.
            ret_ok("rte_tel_data_string", unsafe {
                dpdk_sys::rte_tel_data_string(d, s.as_ptr())
            })
        }
        // SAFETY: forwarded caller contract.
        Reply::Dict(dict) => unsafe { write_dict(d, dict) },
        // SAFETY: forwarded caller contract.
        Reply::Array(a) => unsafe { write_array(d, a) },
    }
}

/// # Safety
/// As [`write_reply`].
unsafe fn write_dict(d: *mut rte_tel_data, dict: &Dict) -> std::result::Result<(), String> {
    // SAFETY: d is valid (caller).
    ret_ok("rte_tel_data_start_dict", unsafe {
        dpdk_sys::rte_tel_data_start_dict(d)
    })?;
    for (k, v) in &dict.entries {
        let key = cstring(k)?;
        let ret = match v {
            // SAFETY: d is a started dict; key is NUL-terminated and copied by DPDK.
            Value::Int(x) => unsafe { dpdk_sys::rte_tel_data_add_dict_int(d, key.as_ptr(), *x) },
            // SAFETY: as above.
            Value::UInt(x) => unsafe { dpdk_sys::rte_tel_data_add_dict_u64(d, key.as_ptr(), *x) },
            Value::String(s) => {
                let s = cstring(s)?;
                // SAFETY: as above; the value is copied too.
                unsafe { dpdk_sys::rte_tel_data_add_dict_string(d, key.as_ptr(), s.as_ptr()) }
            }
            Value::Dict(inner) => {
                // SAFETY: `c` is a fresh container; ownership passes to `d` on success.
                let c = unsafe { container(|c| write_dict(c, inner)) }?;
                // SAFETY: d is a started dict, c a filled container; keep=0 makes DPDK free it.
                let ret =
                    unsafe { dpdk_sys::rte_tel_data_add_dict_container(d, key.as_ptr(), c, 0) };
                if ret != 0 {
                    // SAFETY: DPDK did not take c; it came from rte_tel_data_alloc.
                    unsafe { dpdk_sys::rte_tel_data_free(c) };
                }
                ret
            }
            Value::Array(inner) => {
                // SAFETY: as for Value::Dict.
                let c = unsafe { container(|c| write_array(c, inner)) }?;
                // SAFETY: as for Value::Dict.
                let ret =
                    unsafe { dpdk_sys::rte_tel_data_add_dict_container(d, key.as_ptr(), c, 0) };
                if ret != 0 {
                    // SAFETY: as for Value::Dict.
                    unsafe { dpdk_sys::rte_tel_data_free(c) };
                }
                ret
            }
        };
        ret_ok("rte_tel_data_add_dict_*", ret)?;
    }
    Ok(())
}

/// # Safety
/// As [`write_reply`].
unsafe fn write_array(d: *mut rte_tel_data, a: &Array) -> std::result::Result<(), String> {
    let kind = match a {
        Array::Int(_) => dpdk_sys::RTE_TEL_INT_VAL,
        Array::UInt(_) => dpdk_sys::RTE_TEL_U64_VAL,
        Array::String(_) => dpdk_sys::RTE_TEL_STRING_VAL,
        Array::Arrays(_) => dpdk_sys::RTE_TEL_CONTAINER,
    };
    // SAFETY: d is valid (caller).
    ret_ok("rte_tel_data_start_array", unsafe {
        dpdk_sys::rte_tel_data_start_array(d, kind)
    })?;
    match a {
        Array::Int(v) => {
            for x in v {
                // SAFETY: d is a started int array.
                ret_ok("rte_tel_data_add_array_int", unsafe {
                    dpdk_sys::rte_tel_data_add_array_int(d, *x)
                })?;
            }
        }
        Array::UInt(v) => {
            for x in v {
                // SAFETY: d is a started u64 array.
                ret_ok("rte_tel_data_add_array_u64", unsafe {
                    dpdk_sys::rte_tel_data_add_array_u64(d, *x)
                })?;
            }
        }
        Array::String(v) => {
            for s in v {
                let s = cstring(s)?;
                // SAFETY: d is a started string array; DPDK copies the string.
                ret_ok("rte_tel_data_add_array_string", unsafe {
                    dpdk_sys::rte_tel_data_add_array_string(d, s.as_ptr())
                })?;
            }
        }
        Array::Arrays(v) => {
            for inner in v {
                // SAFETY: a fresh container; ownership passes to `d` on success.
                let c = unsafe { container(|c| write_array(c, inner)) }?;
                // SAFETY: d is a started container array; keep=0 makes DPDK free c.
                let ret = unsafe { dpdk_sys::rte_tel_data_add_array_container(d, c, 0) };
                if ret != 0 {
                    // SAFETY: DPDK did not take c; it came from rte_tel_data_alloc.
                    unsafe { dpdk_sys::rte_tel_data_free(c) };
                }
                ret_ok("rte_tel_data_add_array_container", ret)?;
            }
        }
    }
    Ok(())
}

/// Allocates a container and fills it with `fill`; frees it again if filling fails.
///
/// # Safety
/// `fill` must only start and fill the container it is given.
unsafe fn container(
    fill: impl FnOnce(*mut rte_tel_data) -> std::result::Result<(), String>,
) -> std::result::Result<*mut rte_tel_data, String> {
    // SAFETY: no preconditions; returns NULL when out of memory.
    let c = unsafe { dpdk_sys::rte_tel_data_alloc() };
    if c.is_null() {
        return Err("rte_tel_data_alloc: out of memory".to_string());
    }
    if let Err(e) = fill(c) {
        // SAFETY: c came from rte_tel_data_alloc and was not handed to DPDK.
        unsafe { dpdk_sys::rte_tel_data_free(c) };
        return Err(e);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat() -> Dict {
        let mut d = Dict::new();
        d.uint("rx_packets", 5).int("x", -3).string("name", "gre-a");
        d
    }

    #[test]
    fn keys_and_commands() {
        assert!(valid_key("rx_packets"));
        assert!(valid_key("a/b_9"));
        assert!(!valid_key("gre-a"));
        assert!(!valid_key(""));
        assert!(!valid_key(&"k".repeat(128)));
        assert!(valid_key(&"k".repeat(127)));
        assert!(valid_command("/conduit/tunnels"));
        assert!(!valid_command("conduit/tunnels"));
        assert!(!valid_command("/conduit/tun-nels"));
        assert!(!valid_command(&format!("/{}", "a".repeat(MAX_COMMAND_LEN))));
    }

    #[test]
    fn nesting_rules() {
        let mut top = Dict::new();
        top.insert("inner", Value::Dict(flat()));
        top.insert("arr", Value::Array(Array::UInt(vec![1, 2])));
        assert!(Reply::Dict(top.clone()).validate("/c").is_ok());

        let mut deeper = Dict::new();
        deeper.insert("inner", Value::Dict(flat()));
        top.insert("deep", Value::Dict(deeper));
        assert!(matches!(
            Reply::Dict(top).validate("/c"),
            Err(ShapeError::TooDeep(_))
        ));

        let arrays = Array::Arrays(vec![Array::UInt(vec![1]), Array::String(vec!["a".into()])]);
        assert!(Reply::Array(arrays.clone()).validate("/c").is_ok());
        let mut d = Dict::new();
        d.insert("a", Value::Array(arrays));
        assert!(matches!(
            Reply::Dict(d).validate("/c"),
            Err(ShapeError::TooDeep(_))
        ));
    }

    #[test]
    fn limits_are_enforced() {
        let mut d = Dict::new();
        d.string("ok", "x".repeat(MAX_STRING_LEN));
        assert!(Reply::Dict(d.clone()).validate("/c").is_ok());
        d.string("long", "x".repeat(MAX_STRING_LEN + 1));
        assert!(matches!(
            Reply::Dict(d).validate("/c"),
            Err(ShapeError::StringTooLong { .. })
        ));

        let mut d = Dict::new();
        d.uint("bad-key", 1);
        assert_eq!(
            Reply::Dict(d).validate("/c"),
            Err(ShapeError::BadKey("bad-key".into()))
        );

        let mut d = Dict::new();
        for i in 0..=MAX_DICT_ENTRIES {
            d.uint(format!("k{i}"), 1);
        }
        assert!(matches!(
            Reply::Dict(d).validate("/c"),
            Err(ShapeError::TooManyEntries { .. })
        ));

        let a = Array::UInt(vec![0; MAX_ARRAY_ENTRIES + 1]);
        assert!(matches!(
            Reply::Array(a).validate("/c"),
            Err(ShapeError::TooManyEntries { .. })
        ));

        // 200 dicts of a 100-byte string: within the entry limits, beyond 16 KiB.
        let mut d = Dict::new();
        for i in 0..200 {
            let mut inner = Dict::new();
            inner.string("s", "y".repeat(100));
            d.insert(format!("k{i}"), Value::Dict(inner));
        }
        assert!(matches!(
            Reply::Dict(d).validate("/c"),
            Err(ShapeError::TooLarge(_))
        ));

        assert!(matches!(
            Reply::String("a\0b".into()).validate("/c"),
            Err(ShapeError::Nul(_))
        ));
    }

    #[test]
    fn size_estimate_bounds_the_real_json() {
        // The estimate must never be below the real encoding (a compact JSON writer).
        let mut d = flat();
        d.string("esc", "a\"b\\c\nd\u{1}");
        d.insert("arr", Value::Array(Array::Int(vec![-1, 22, 333])));
        let est = Reply::Dict(d).validate("/c").unwrap();
        let real = r#"{"/c":{"rx_packets":5,"x":-3,"name":"gre-a","esc":"a\"b\\c\nd\u0001","arr":[-1,22,333]}}"#;
        assert!(est >= real.len(), "{est} < {}", real.len());
        assert!(
            est <= real.len() + 16,
            "estimate {est} far above {}",
            real.len()
        );
    }

    #[test]
    fn bad_names_are_refused_before_dpdk() {
        // Registering a bad name fails before DPDK is involved.
        assert!(register_command("no-slash", "h", |_| Ok(Reply::String("x".into()))).is_err());
        assert!(call_command("/test/missing", None).is_none());
    }
}
