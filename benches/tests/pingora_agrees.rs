//! lb-core's nginx mode and pingora-ketama (a port of the same nginx scheme) pick the
//! same node for every key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lb_benches::{keys, node_addr, node_name};
use lb_core::{HashRing, Nginx, NodeId};

#[test]
fn nginx_mode_matches_pingora_ketama() {
    for (n, weight) in [(3usize, 1u32), (25, 2), (200, 1)] {
        let ring = HashRing::from_nodes(
            Nginx,
            160,
            (0..n).map(|i| (NodeId::new(node_name(i)).unwrap(), weight)),
        )
        .unwrap();
        let buckets: Vec<_> = (0..n)
            .map(|i| pingora_ketama::Bucket::new(node_addr(i), weight))
            .collect();
        let continuum = pingora_ketama::Continuum::new(&buckets);
        let mut differ = 0;
        for key in keys(50_000, 16) {
            let ours = ring.lookup(&key).map(|id| id.to_string());
            let theirs = continuum.node(&key).map(|a| a.to_string());
            differ += usize::from(ours != theirs);
        }
        eprintln!("N = {n}: {differ} of 50000 keys differ");
        // Only a collided point (equal CRC-32 of two nodes), where the two may break
        // ties differently, could disagree; these node sets have none.
        assert_eq!(differ, 0, "keys differ at N = {n}");
    }
}
