//! Build glue for the `conduit` binary: records the git revision for `--version`.
//! DPDK's link flags come from `dpdk-sys` (its `links = "dpdk"` build script), so the binary
//! needs no link arguments of its own.

use std::process::Command;

/// `git ARGS` in the crate's directory, trimmed; `None` outside a git checkout.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let rev = git(&["describe", "--always", "--dirty", "--abbrev=12"])
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CONDUIT_GIT_REVISION={rev}");
    // Where HEAD and the index really are: in a worktree `.git` is a file, and a path that
    // does not exist would make cargo rerun this script (and rebuild the crate) every time.
    for file in ["HEAD", "index"] {
        match git(&["rev-parse", "--path-format=absolute", "--git-path", file]) {
            Some(path) => println!("cargo:rerun-if-changed={path}"),
            None => println!("cargo:rerun-if-changed=build.rs"),
        }
    }
}
