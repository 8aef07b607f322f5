//! lb-core as a crate other projects depend on: its package holds the README and both
//! licences, and the default build pulls no hash function beyond XXH3
//! (`cargo package --list`, `cargo tree --no-default-features --features xxh3`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_package_holds_the_readme_and_both_licences() {
    let listed = cargo(&[
        "package",
        "-p",
        "lb-core",
        "--list",
        "--allow-dirty",
        "--offline",
    ]);
    let files: Vec<&str> = listed.lines().collect();
    for file in ["README.md", "LICENSE-MIT", "LICENSE-APACHE", "src/lib.rs"] {
        assert!(files.contains(&file), "{file} is not packaged: {files:?}");
    }
    assert!(
        !files.iter().any(|f| f.starts_with("tests/data")),
        "test data is packaged: {files:?}"
    );
}

#[test]
fn xxh3_alone_pulls_only_xxhash_rust() {
    let tree = cargo(&[
        "tree",
        "-p",
        "lb-core",
        "--no-default-features",
        "--features",
        "xxh3",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--offline",
    ]);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(crates, ["lb-core", "xxhash-rust"], "{tree}");
}

#[test]
fn the_manifest_names_every_algorithm_and_no_placeholder_url() {
    let manifest = include_str!("../Cargo.toml");
    assert!(!manifest.contains("example.invalid"), "{manifest}");
    let description = manifest
        .lines()
        .find(|l| l.starts_with("description"))
        .unwrap();
    for algorithm in ["ketama", "Maglev", "bounded loads", "rise/fall", "nginx"] {
        assert!(description.contains(algorithm), "{description}");
    }
}
