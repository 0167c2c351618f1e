//! DPDK's telemetry client, `dpdk-telemetry.py` (installed by Debian's `dpdk` package), which
//! speaks the `dpdk_telemetry.v2` socket: tests read Conduit's commands through a client Conduit
//! did not write.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Sends each command through `dpdk-telemetry.py -f <prefix>` (the EAL file prefix, see
/// [`crate::eal::file_prefix`]) and returns one parsed JSON answer per command, in order.
pub fn query(prefix: &str, commands: &[&str]) -> Vec<Value> {
    let mut child = Command::new("dpdk-telemetry.py")
        .args(["-f", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (Debian package dpdk) runs");
    {
        let mut stdin = child.stdin.take().unwrap();
        for c in commands {
            writeln!(stdin, "{c}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "dpdk-telemetry.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(answers.len(), commands.len(), "{stdout}");
    answers
}
