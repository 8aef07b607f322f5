//! grpcio (Python) servers and client through the daemon, with `upstream.protocol =
//! "h2c"` and `heartbeat.kind = "grpc"`: `examples/grpc/python/grpcio_check.py` makes
//! 60 calls over 20 keys and checks that every call succeeds, each key sticks to one
//! server, and the servers' trailing metadata arrives.
//!
//! Needs Python's `grpcio` and `grpcio-health-checking`; skipped without them unless
//! `LB_REQUIRE_PEERS` is set (`.ci/run` sets it and installs them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

fn grpcio_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import grpc, grpc_health.v1.health"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn grpcio_calls_through_the_daemon_succeed_stick_and_carry_trailers() {
    if !grpcio_installed() {
        assert!(
            std::env::var_os("LB_REQUIRE_PEERS").is_none(),
            "grpcio is required (python3 -m pip install grpcio grpcio-health-checking)"
        );
        eprintln!("skipped: Python grpcio is not installed");
        return;
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/grpc/python/grpcio_check.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(common::binary("lb-daemon"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("60/60 calls succeeded"), "{stdout}");
}
