//! The boundary between the planes, as ARCHITECTURE.md states it: the data plane reaches
//! the control plane only through `RoutingView` (snapshot reads and passive outcomes)
//! and through `App` (admin and observation paths that arrive on a proxy worker, handed
//! to the control plane's runtime). A new `use crate::control_plane::...` in the data
//! plane fails this test and has to be argued for in ARCHITECTURE.md first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The only control-plane paths the data plane may name.
const ALLOWED: [&str; 2] = [
    "crate::control_plane::pool::RoutingView",
    "crate::control_plane::admin_listener::App",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::control_plane::...` path named in code (doc comments included, since
/// an intra-doc link is a dependency a reader follows too).
fn control_plane_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::control_plane::") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        found.push(tail[..end].trim_end_matches(':').to_string());
        rest = &tail[end..];
    }
    found
}

#[test]
fn the_data_plane_names_only_the_routing_view_and_the_admin_app() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/data_plane");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 10, "the data plane moved: {root:?}");
    let mut named = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for path in control_plane_paths(&text) {
            assert!(
                ALLOWED.contains(&path.as_str()),
                "{} names {path}; the data plane may name only {ALLOWED:?}",
                file.display()
            );
            named.push(path);
        }
    }
    // The test sees the imports it is about (a rename would otherwise pass silently).
    for allowed in ALLOWED {
        assert!(
            named.iter().any(|p| p == allowed),
            "{allowed} is no longer used"
        );
    }
}

#[test]
fn the_scanner_finds_paths() {
    assert_eq!(
        control_plane_paths(
            "use crate::control_plane::pool::ReplicaPool;\n[`x`](crate::control_plane::prober)"
        ),
        [
            "crate::control_plane::pool::ReplicaPool",
            "crate::control_plane::prober"
        ]
    );
}
