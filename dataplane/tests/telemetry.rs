//! Telemetry commands over a real EAL, read back through DPDK's own client, `dpdk-telemetry.py`
//! (installed by Debian's `dpdk` package), which speaks the `dpdk_telemetry.v2` socket.

mod common;

use conduit_test_support::eal::file_prefix;
use dataplane::telemetry::{register_command, Array, CommandError, Dict, Reply, Value};
use serde_json::{json, Value as Json};

/// Sends each command to this process's EAL through `dpdk-telemetry.py`.
fn query(commands: &[&str]) -> Vec<Json> {
    conduit_test_support::telemetry::query(&file_prefix(common::PREFIX), commands)
}

#[test]
fn commands_answer_through_dpdk_telemetry() {
    let _eal = common::init_eal(&[]);

    register_command("/test/dict", "nested dict", |_| {
        let mut inner = Dict::new();
        inner.uint("max", u64::MAX).string("esc", "a\"b\\c\nd");
        let mut d = Dict::new();
        d.uint("n", 7)
            .int("neg", -5)
            .string("name", "gre-a.1")
            .insert("inner", Value::Dict(inner))
            .insert(
                "list",
                Value::Array(Array::String(vec!["x".into(), "y".into()])),
            );
        Ok(Reply::Dict(d))
    })
    .unwrap();
    register_command("/test/arrays", "arrays of arrays", |_| {
        Ok(Reply::Array(Array::Arrays(vec![
            Array::UInt(vec![1, 2]),
            Array::Int(vec![-1]),
            Array::String(vec![]),
        ])))
    })
    .unwrap();
    register_command("/test/echo", "echoes params", |p| {
        Ok(Reply::String(format!("v1:{}", p.unwrap_or("<none>"))))
    })
    .unwrap();
    register_command("/test/error", "always fails", |_| {
        Err(CommandError::new("no such thing"))
    })
    .unwrap();
    register_command("/test/panic", "panics", |_| panic!("handler bug")).unwrap();
    register_command("/test/badkey", "a key DPDK refuses", |_| {
        let mut d = Dict::new();
        d.uint("bad-key", 1);
        Ok(Reply::Dict(d))
    })
    .unwrap();
    register_command("/test/huge", "too big for DPDK's buffer", |_| {
        Ok(Reply::Array(Array::String(vec!["z".repeat(100); 300])))
    })
    .unwrap();

    let a = query(&[
        "/test/dict",
        "/test/arrays",
        "/test/echo,hello, world",
        "/test/echo",
        "/test/error",
        "/test/panic",
        "/test/badkey",
        "/test/huge",
        "/test/dict",
    ]);
    assert_eq!(
        a[0],
        json!({"/test/dict": {
            "n": 7, "neg": -5, "name": "gre-a.1",
            "inner": {"max": u64::MAX, "esc": "a\"b\\c\nd"},
            "list": ["x", "y"],
        }})
    );
    assert_eq!(a[1], json!({"/test/arrays": [[1, 2], [-1], []]}));
    assert_eq!(a[2], json!({"/test/echo": "v1:hello, world"}));
    assert_eq!(a[3], json!({"/test/echo": "v1:<none>"}));
    for (i, cmd) in [
        (4, "/test/error"),
        (5, "/test/panic"),
        (6, "/test/badkey"),
        (7, "/test/huge"),
    ] {
        assert_eq!(a[i], json!({ cmd: null }), "{cmd}");
    }
    // The process survived the panic and still answers.
    assert_eq!(a[8], a[0]);

    // Registering again replaces the handler; DPDK's list holds the command once.
    register_command("/test/echo", "echoes params, v2", |p| {
        Ok(Reply::String(format!("v2:{}", p.unwrap_or("<none>"))))
    })
    .unwrap();
    let a = query(&["/test/echo,x", "/", "/help,/test/echo"]);
    assert_eq!(a[0], json!({"/test/echo": "v2:x"}));
    let listed: Vec<&str> = a[1]["/"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .filter(|c| *c == "/test/echo")
        .collect();
    assert_eq!(listed, ["/test/echo"]);
    // DPDK keeps the help text of the first registration (it cannot be replaced).
    assert_eq!(a[2], json!({"/help": {"/test/echo": "echoes params"}}));
}
