//! `lbctl analyze` against a running daemon: the distribution, scaling and
//! hash-functions charts count every request, and the first two put the same replicas
//! back; the failover chart kills a replica for real
//! (`fuser -k`, from psmisc, installed by `.ci/run`) and sees it respawned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Daemon, base_config, call, lbctl};

/// The numbers after each `serverK ` in a summary line like
/// `server1 210, server2 190, server3 200 (max/mean 1.050)`.
fn counts(line: &str) -> Vec<u64> {
    line.split(", ")
        .filter_map(|part| part.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `lbctl analyze --out <target tmp>/<stem> <chart...>` that must succeed; the output
/// directory and stdout.
fn analyze_ok(daemon: &Daemon, stem: &str, chart: &[&str]) -> (std::path::PathBuf, String) {
    let dir = out_dir(&format!("analyze-{stem}"));
    let mut args = vec!["analyze", "--out", dir.to_str().unwrap()];
    args.extend_from_slice(chart);
    let (code, out, err) = lbctl(&daemon.url(""), &args);
    assert_eq!(code, 0, "{out}{err}");
    (dir, out)
}

fn assert_charts(dir: &std::path::Path, stem: &str) {
    let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
    assert!(svg.contains("<svg"));
}

#[test]
fn distribution_online_counts_every_request_and_restores_the_replica_count() {
    let daemon = Daemon::start(&base_config(2));
    let (dir, out) = analyze_ok(
        &daemon,
        "distribution",
        &["distribution", "--replicas", "3", "--requests", "600"],
    );
    let first = out.lines().next().unwrap();
    let got = counts(first);
    assert_eq!(got.len(), 3, "{first}");
    assert_eq!(got.iter().sum::<u64>(), 600, "{first}");
    assert!(got.iter().all(|&n| n > 100), "{first}");
    assert_charts(&dir, "distribution");
    assert_eq!(daemon.replicas(), ["server1", "server2"], "put back to 2");
}

#[test]
fn scaling_online_measures_each_n_and_restores_the_same_replicas() {
    let daemon = Daemon::start(&base_config(3));
    let (dir, out) = analyze_ok(
        &daemon,
        "scaling",
        &["scaling", "--from", "1", "--to", "4", "--requests", "200"],
    );
    for n in 1..=4 {
        let prefix = format!("N = {n}: ");
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no line for N = {n} in {out}"));
        let got = counts(line);
        assert_eq!(got.len(), n, "{line}");
        assert_eq!(got.iter().sum::<u64>(), 200, "{line}");
    }
    assert_charts(&dir, "scaling");
    // Scaling to 1 removed server2 and server3; restoring brings back those names.
    let mut after = daemon.replicas();
    after.sort();
    assert_eq!(after, ["server1", "server2", "server3"]);
}

#[test]
fn hash_functions_online_counts_the_daemons_replicas() {
    let daemon = Daemon::start(&base_config(3));
    let (dir, out) = analyze_ok(
        &daemon,
        "hash-functions",
        &["hash-functions", "--requests", "300"],
    );
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("xxh3: "))
        .unwrap_or_else(|| panic!("no xxh3 line in {out}"));
    let got = counts(line);
    assert_eq!(got.len(), 3, "{line}");
    assert_eq!(got.iter().sum::<u64>(), 300, "{line}");
    assert!(line.contains("lookup"), "{line}");
    assert_charts(&dir, "hash-functions");
}

#[test]
fn failover_online_kills_a_replica_and_sees_it_respawned() {
    let daemon = Daemon::start(&base_config(3));
    let (dir, out) = analyze_ok(
        &daemon,
        "failover",
        &[
            "failover",
            "--kill-cmd",
            "fuser -s -k -KILL {port}/tcp",
            "--rate",
            "100",
            "--seconds",
            "4",
            "--kill-at",
            "1",
        ],
    );
    assert!(out.contains("killed server2"), "{out}");
    assert!(out.contains("server2 was Up again"), "{out}");
    assert_charts(&dir, "failover");
    let (_, status) = call("GET", &daemon.url("/status"), None);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let server2 = &status["message"]["replicas"][1];
    assert_eq!(server2["name"], "server2");
    assert_eq!(server2["respawns"], 1, "{server2}");
    assert_eq!(server2["state"], "up");

    let (code, _, err) = lbctl(
        &daemon.url(""),
        &[
            "analyze",
            "failover",
            "--kill-cmd",
            "false",
            "--seconds",
            "2",
            "--kill-at",
            "1",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("exited with"), "{err}");
}
