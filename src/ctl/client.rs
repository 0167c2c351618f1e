//! A client of DPDK's telemetry socket (`dpdk_telemetry.v2`, the protocol `dpdk-telemetry.py`
//! speaks): a Unix `SOCK_SEQPACKET` socket; on connect the server sends one JSON hello with its
//! `max_output_len`; then each message sent is one command (`/conduit/tunnels,0`) and each
//! message received one JSON answer, `{"<command>": <reply>}`. No EAL is needed: it is only a
//! socket.
//!
//! The socket is `<runtime dir>/<file-prefix>/dpdk_telemetry.v2`, where the runtime dir is
//! EAL's: `/var/run/dpdk` for root, else `$XDG_RUNTIME_DIR/dpdk` or `/tmp/dpdk`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::socket::{
    connect, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use nix::sys::time::TimeVal;
use serde_json::Value;

/// The socket's name in the instance's runtime directory.
const SOCKET_NAME: &str = "dpdk_telemetry.v2";
/// How long a reply may take: the appliance's own commands wait up to 2 s for the control loop.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How a `null` answer is reported (DPDK's answer to an unknown command or bad parameters).
pub const NULL_ANSWER: &str = "with null (unknown command or parameters)";
/// Answer buffer when the hello does not say (DPDK 22.11's size).
const DEFAULT_MAX_OUTPUT: usize = 16 * 1024;

/// Where EAL puts the telemetry socket of instance `prefix`, in the order EAL would choose the
/// runtime directory (root first).
pub fn socket_paths(prefix: &str) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/var/run/dpdk")];
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR") {
        dirs.push(Path::new(&xdg).join("dpdk"));
    }
    dirs.push(PathBuf::from("/tmp/dpdk"));
    dirs.into_iter()
        .map(|d| d.join(prefix).join(SOCKET_NAME))
        .collect()
}

/// One connection to an appliance's telemetry socket.
pub struct Client {
    fd: OwnedFd,
    max_output: usize,
}

impl Client {
    /// Connects to the telemetry socket of the instance with file prefix `prefix`.
    pub fn connect_prefix(prefix: &str) -> Result<Client> {
        let paths = socket_paths(prefix);
        let Some(path) = paths.iter().find(|p| p.exists()) else {
            bail!(
                "no Conduit appliance with file prefix {prefix:?}: its telemetry socket {} does \
                 not exist (is it running? --file-prefix must be its EAL --file-prefix)",
                paths[0].display()
            );
        };
        Client::connect(path).with_context(|| {
            format!(
                "connecting to the appliance with file prefix {prefix:?} at {}",
                path.display()
            )
        })
    }

    /// Connects to the socket at `path` and reads its hello.
    pub fn connect(path: &Path) -> Result<Client> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let timeout = TimeVal::new(REPLY_TIMEOUT.as_secs() as i64, 0);
        setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
        setsockopt(&fd, sockopt::SendTimeout, &timeout)?;
        connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
        let mut client = Client {
            fd,
            max_output: DEFAULT_MAX_OUTPUT,
        };
        let (_, hello) = client.receive().context("reading the telemetry hello")?;
        if let Some(n) = hello.get("max_output_len").and_then(Value::as_u64) {
            client.max_output = usize::try_from(n).unwrap_or(DEFAULT_MAX_OUTPUT);
        }
        Ok(client)
    }

    /// One message: its text and its JSON.
    fn receive(&mut self) -> Result<(String, Value)> {
        let mut buf = vec![0u8; self.max_output + 1];
        let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())
            .context("no answer from the appliance")?;
        if n == 0 {
            bail!("the appliance closed the telemetry connection (too many clients?)");
        }
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let json = serde_json::from_str(&text).context("the answer is not JSON")?;
        Ok((text, json))
    }

    /// Sends `command` (e.g. `/conduit/tunnel,t1`) and returns its whole answer, as sent and
    /// parsed.
    pub fn raw(&mut self, command: &str) -> Result<(String, Value)> {
        send(self.fd.as_raw_fd(), command.as_bytes(), MsgFlags::empty())
            .with_context(|| format!("sending {command}"))?;
        self.receive()
    }

    /// Sends `command` and returns its reply (the value under the command's name). `null`
    /// (DPDK's answer to a failed or unknown command) and `{"error": ...}` (Conduit's) are
    /// errors.
    pub fn call(&mut self, command: &str) -> Result<Value> {
        self.call_raw(command).map(|(_, reply)| reply)
    }

    /// [`Self::call`], also returning the answer's text as the appliance sent it.
    pub fn call_raw(&mut self, command: &str) -> Result<(String, Value)> {
        let (text, answer) = self.raw(command)?;
        let name = command.split(',').next().unwrap_or(command);
        let reply = answer
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("unexpected answer to {command}: {answer}"))?;
        if reply.is_null() {
            bail!("the appliance answered {command} {NULL_ANSWER}");
        }
        if let Some(e) = reply.get("error").and_then(Value::as_str) {
            bail!("{e}");
        }
        Ok((text, reply))
    }
}
