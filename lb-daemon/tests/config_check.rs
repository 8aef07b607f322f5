//! `lb-daemon --check`: a valid file passes, a bad key or value is named and exits 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

fn check(config: &str) -> (i32, String) {
    let path = std::env::temp_dir().join(format!("lb-check-{}.toml", common::fastrand_u64()));
    std::fs::write(&path, config).unwrap();
    let out = Command::new(common::binary("lb-daemon"))
        .arg("--check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_valid_config_passes() {
    let (code, err) = check(&common::base_config(3));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    for (text, key) in [
        ("replica = 3", "replica"),
        ("[heartbeat]\nintervall_ms = 100", "intervall_ms"),
        ("[heartbeat]\ninterval_ms = 0", "heartbeat.interval_ms"),
        ("listen = \"nowhere\"", "listen"),
        ("key = [\"header\"]", "key"),
        ("[runtime]\ncommand = []", "runtime.command"),
    ] {
        let (code, err) = check(text);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(key), "{text}: {err}");
    }
}
