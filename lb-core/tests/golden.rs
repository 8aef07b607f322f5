//! Golden vectors: the key → node mapping is frozen in `tests/data/golden.tsv`, so no
//! refactor can silently move keys. Regenerate on purpose with
//! `LB_CORE_BLESS=1 cargo test -p lb-core --test golden` and say why in the commit.
//!
//! Needs every hash function: `cargo test -p lb-core --all-features` (the workspace's
//! test run has them all).
#![cfg(all(feature = "sha256", feature = "md5", feature = "nginx"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lb_core::{HashAlgorithm, HashRing, NodeId};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden.tsv");

/// One line per (hash, key): `hash<TAB>key<TAB>owner<TAB>second<TAB>third`.
fn current() -> String {
    let mut out = String::from("# hash\tkey\towner\tsecond\tthird\n");
    for algo in [
        HashAlgorithm::Xxh3,
        HashAlgorithm::Sha256,
        HashAlgorithm::Md5,
    ] {
        let mut ring = HashRing::with_hasher(algo, 160).unwrap();
        for (name, weight) in [
            ("server1", 1),
            ("server2", 1),
            ("server3", 2),
            ("Server-4f2a", 1),
            ("10.0.0.7:8080", 3),
        ] {
            ring.add(NodeId::new(name).unwrap(), weight).unwrap();
        }
        for i in 0..64 {
            let key = format!("user-{i}");
            let top: Vec<&str> = ring
                .candidates(key.as_bytes())
                .take(3)
                .map(|n| n.id().as_str())
                .collect();
            out.push_str(&format!("{}\t{key}\t{}\n", algo.name(), top.join("\t")));
        }
    }
    out
}

#[test]
fn mapping_matches_the_golden_vectors() {
    let now = current();
    if std::env::var_os("LB_CORE_BLESS").is_some() {
        std::fs::write(PATH, &now).unwrap();
    }
    let frozen = std::fs::read_to_string(PATH).expect("tests/data/golden.tsv is committed");
    for (line, (want, got)) in frozen.lines().zip(now.lines()).enumerate() {
        assert_eq!(got, want, "golden vector line {} changed", line + 1);
    }
    assert_eq!(frozen.lines().count(), now.lines().count());
}

/// The mapping a real nginx produced (see `examples/tests/nginx_compat.rs`), checked
/// without nginx.
#[test]
fn nginx_mode_matches_the_vectors_nginx_produced() {
    let frozen = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/nginx_golden.tsv"
    ))
    .expect("tests/data/nginx_golden.tsv is committed");
    let servers = [
        ("127.0.0.1:47301", 1),
        ("127.0.0.1:47302", 3),
        ("127.0.0.1:47303", 1),
        ("127.0.0.1:47304", 2),
    ];
    let ring = HashRing::from_nodes(
        lb_core::Nginx,
        160,
        servers.map(|(a, w)| (NodeId::new(a).unwrap(), w)),
    )
    .unwrap();
    let mut checked = 0;
    for line in frozen.lines().filter(|l| !l.starts_with('#')) {
        let (key, server) = line.split_once('\t').unwrap();
        assert_eq!(
            ring.lookup(key.as_bytes()).map(NodeId::as_str),
            Some(server),
            "key {key}"
        );
        checked += 1;
    }
    assert_eq!(checked, 10_000);
}

/// The SHA-256 and MD5 positions are what Python's hashlib gives, as the docs claim:
/// `int(hashlib.sha256(b).hexdigest()[:16], 16)`.
#[test]
fn sha256_and_md5_positions_match_python_hashlib() {
    use lb_core::{HashFunction, Md5, Sha256};
    let script = "import hashlib\nfor k in ['user-1', 'server1-0', '']:\n    \
                  print(int(hashlib.sha256(k.encode()).hexdigest()[:16], 16), int(hashlib.md5(k.encode()).hexdigest()[:16], 16))";
    let out = match std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap(),
        _ => {
            assert!(
                std::env::var_os("LB_REQUIRE_PEERS").is_none(),
                "python3 is needed"
            );
            eprintln!("skipped: python3 is not available");
            return;
        }
    };
    let want: Vec<String> = ["user-1", "server1-0", ""]
        .iter()
        .map(|k| format!("{} {}", Sha256.hash(k.as_bytes()), Md5.hash(k.as_bytes())))
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

/// Ring fingerprints are compared between processes, machines and versions (two
/// daemons agree when theirs are equal), so they are frozen too: a change of the
/// encoding is a change daemons of two versions would disagree over.
#[test]
fn fingerprints_are_frozen() {
    let mut got = Vec::new();
    for (algo, points) in [
        (HashAlgorithm::Xxh3, 160),
        (HashAlgorithm::Sha256, 160),
        (HashAlgorithm::Md5, 160),
        (HashAlgorithm::Nginx, 160),
        (HashAlgorithm::Xxh3, 100),
    ] {
        let ring = HashRing::from_nodes(
            algo,
            points,
            [("server1", 1), ("server2", 1), ("server3", 2)]
                .map(|(n, w)| (NodeId::new(n).unwrap(), w)),
        )
        .unwrap();
        got.push(format!("{:016x}", ring.fingerprint()));
    }
    let empty = HashRing::new();
    got.push(format!("{:016x}", empty.fingerprint()));
    assert_eq!(
        got,
        [
            "04de3a32abf25f80",
            "7dbc37209e8b53e0",
            "8b1da2dc9f25614a",
            "bbe75edaf688584f",
            "ef54cb46cd528eef",
            "66ee423b6e6b79d5",
        ]
    );
}
