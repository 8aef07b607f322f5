//! Where the analyses get their numbers: requests sent through a running daemon
//! (`online`), or the same keys hashed by lb-core in this process (`offline`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lb_core::{DEFAULT_POINTS_PER_WEIGHT, HashAlgorithm, HashRing, NodeId};

use super::AnalyzeError;
use crate::args::BenchArgs;
use crate::bench;

/// Requests answered per replica, in replica order.
pub type Counts = Vec<(String, u64)>;

/// Seed of the offline key stream: charts are reproducible run to run.
const SEED: u64 = 0x1b_c0de;

/// `name1..nameN` hashed on an lb-core ring with `hash` and the daemon's default
/// points per weight (160).
///
/// # Errors
/// `n` of 0 or above lb-core's limits.
pub fn ring(hash: HashAlgorithm, n: usize) -> Result<HashRing<HashAlgorithm>, AnalyzeError> {
    if n == 0 || n > 1024 {
        return Err(AnalyzeError::Usage(format!("{n} replicas: use 1 to 1024")));
    }
    let nodes = (1..=n)
        .map(|i| NodeId::new(format!("server{i}")).map(|id| (id, 1)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HashRing::from_nodes(
        hash,
        DEFAULT_POINTS_PER_WEIGHT,
        nodes,
    )?)
}

/// `requests` random keys (the ones `lbctl bench --keys random` sends) looked up on
/// `ring`: requests per node, every node listed.
pub fn offline(ring: &HashRing<HashAlgorithm>, requests: u64) -> Counts {
    let mut counts: BTreeMap<&str, u64> =
        ring.nodes().iter().map(|n| (n.id().as_str(), 0)).collect();
    let mut rng = fastrand::Rng::with_seed(SEED);
    for _ in 0..requests {
        let key = format!("{:016x}", rng.u64(..));
        if let Some(node) = ring.lookup(key.as_bytes()) {
            *counts.entry(node.as_str()).or_insert(0) += 1;
        }
    }
    sorted(
        counts
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// Nanoseconds per lookup of a random 16-byte key on `ring`: the best of 5 rounds of
/// 200,000 lookups (keys made beforehand), measured in this process.
pub fn lookup_ns(ring: &HashRing<HashAlgorithm>) -> f64 {
    let mut rng = fastrand::Rng::with_seed(SEED);
    let keys: Vec<String> = (0..200_000)
        .map(|_| format!("{:016x}", rng.u64(..)))
        .collect();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        let mut found = 0usize;
        for key in &keys {
            found += usize::from(std::hint::black_box(ring.lookup(key.as_bytes())).is_some());
        }
        std::hint::black_box(found);
        best = best.min(started.elapsed().as_nanos() as f64 / keys.len() as f64);
    }
    best
}

/// `requests` GETs of `/home` with random keys through the daemon at `url`
/// (4 connections, as fast as it answers): 2xx answers per replica.
///
/// # Errors
/// When fewer than 99 % of the requests were answered with 2xx.
pub fn online(url: &str, requests: u64) -> Result<Counts, AnalyzeError> {
    let args = BenchArgs {
        mode: "avalanche".into(),
        connections: 4,
        interval: Duration::from_millis(10),
        requests: Some(requests),
        duration: None,
        keys: "random".into(),
        path: "/home".into(),
        report: None,
    };
    let report = bench::run(url, &args)?;
    if report.ok * 100 < requests * 99 {
        return Err(AnalyzeError::TooFewAnswers {
            url: url.to_string(),
            requests,
            ok: report.ok,
            non_2xx: report.non_2xx,
            socket_errors: report.socket_errors,
        });
    }
    Ok(sorted(report.per_replica.into_iter().collect()))
}

/// Natural order: `server2` before `server10`.
fn sorted(mut counts: Counts) -> Counts {
    counts.sort_by(|(a, _), (b, _)| {
        let split = |s: &str| {
            let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            let (head, tail) = s.split_at(s.len() - digits);
            (head.to_string(), tail.parse::<u64>().unwrap_or(0))
        };
        split(a).cmp(&split(b)).then(a.cmp(b))
    });
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_counts_every_key_once_and_lists_every_node() {
        let ring = ring(HashAlgorithm::Xxh3, 10).unwrap();
        let counts = offline(&ring, 5_000);
        assert_eq!(counts.len(), 10);
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 5_000);
        assert_eq!(counts[1].0, "server2");
        assert_eq!(counts[9].0, "server10");
        assert_eq!(offline(&ring, 5_000), counts, "same seed, same counts");
    }

    #[test]
    fn ring_refuses_absurd_sizes() {
        assert!(ring(HashAlgorithm::Md5, 0).is_err());
        assert!(ring(HashAlgorithm::Md5, 5000).is_err());
    }
}
