//! A client of DPDK's telemetry socket (`/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2`, a
//! SOCK_SEQPACKET Unix socket): the same JSON that `dpdk-telemetry.py -f PREFIX` prints, read
//! in-process so that sampling every 100 ms costs no process per sample. A Unix socket is
//! reached through the file system, so the appliance's network namespace does not matter.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;
use socket2::{Domain, SockAddr, Socket, Type};

pub struct Telemetry {
    sock: Socket,
}

/// The telemetry socket of the EAL file prefix `prefix` (DPDK's runtime directory for root,
/// which the lab needs to be).
pub fn socket_path(prefix: &str) -> PathBuf {
    PathBuf::from("/var/run/dpdk")
        .join(prefix)
        .join("dpdk_telemetry.v2")
}

impl Telemetry {
    pub fn connect(prefix: &str) -> Result<Telemetry> {
        let path = socket_path(prefix);
        let sock = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
        sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        sock.connect(&SockAddr::unix(&path)?)
            .with_context(|| format!("connect {}", path.display()))?;
        let mut t = Telemetry { sock };
        // The server greets with its version and limits.
        t.recv()?;
        Ok(t)
    }

    fn recv(&mut self) -> Result<Value> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = (&self.sock).read(&mut buf)?;
        if n == 0 {
            return Err(anyhow!("telemetry socket closed"));
        }
        Ok(serde_json::from_slice(&buf[..n])?)
    }

    /// Runs `cmd` (e.g. `/conduit/tunnels`) and returns the reply's value for that command.
    pub fn query(&mut self, cmd: &str) -> Result<Value> {
        self.sock.send(cmd.as_bytes())?;
        let v = self.recv()?;
        let key = cmd.split(',').next().unwrap_or(cmd);
        v.get(key)
            .cloned()
            .ok_or_else(|| anyhow!("telemetry: no {key} in {v}"))
    }
}
