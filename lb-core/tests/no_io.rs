//! lb-core stays free of I/O: its normal dependency tree holds no async runtime,
//! HTTP stack or event loop (`cargo tree -p lb-core -e normal`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn normal_dependencies_hold_no_tokio_hyper_or_mio() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "lb-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("xxhash-rust"), "unexpected tree:\n{tree}");
    for crate_name in ["tokio ", "hyper ", "mio ", "async-std ", "smol "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(crate_name)),
            "lb-core depends on {crate_name}:\n{tree}"
        );
    }
}
