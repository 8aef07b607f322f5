//! Random sequences of add / remove / reweight / health / lookup on a ring and a
//! Maglev table side by side, checked against the invariants users rely on:
//! - `lookup` returns a node that is present and not drained, and `None` only when no
//!   node has weight > 0;
//! - `candidates` yields each live node exactly once, owner first;
//! - a health-aware lookup returns an Up node whenever one exists, and it is the first
//!   Up node among the candidates;
//! - a bounded-load selection picks an Up node below its capacity;
//! - refused operations leave the ring unchanged; nothing panics.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use lb_core::{Balancer, BoundedLoad, HashAlgorithm, HashRing, Maglev, Node, NodeId};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Add { node: u8, weight: u8 },
    Remove { node: u8 },
    Reweight { node: u8, weight: u8 },
    Down { node: u8 },
    Up { node: u8 },
    Lookup { key: Vec<u8> },
    Place { key: Vec<u8>, epsilon: u8 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    hash: u8,
    points_per_weight: u8,
    ops: Vec<Op>,
}

fn name(node: u8) -> NodeId {
    // 40 distinct names, so operations often hit existing nodes.
    NodeId::new(format!("node-{}", node % 40)).expect("valid id")
}

fuzz_target!(|input: Input| {
    let hash = [HashAlgorithm::Xxh3, HashAlgorithm::Sha256, HashAlgorithm::Md5, HashAlgorithm::Nginx][usize::from(input.hash % 4)];
    let Ok(mut ring) = HashRing::with_hasher(hash, u32::from(input.points_per_weight % 16)) else {
        assert_eq!(input.points_per_weight % 16, 0);
        return;
    };
    // 401 slots (prime) hold the at most 40 nodes this target names.
    let mut maglev = Maglev::with_hasher(hash, 401).expect("401 is prime");
    let mut loads: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut model: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut down: BTreeSet<NodeId> = BTreeSet::new();
    for op in input.ops.into_iter().take(200) {
        match op {
            Op::Add { node, weight } => {
                let id = name(node);
                let result = ring.add(id.clone(), u32::from(weight % 5));
                assert_eq!(result.is_ok(), !model.contains_key(&id));
                assert_eq!(maglev.add(id.clone(), u32::from(weight % 5)).is_ok(), result.is_ok());
                model.entry(id).or_insert(u32::from(weight % 5));
            }
            Op::Remove { node } => {
                let id = name(node);
                let present = model.remove(&id).is_some();
                assert_eq!(ring.remove(id.as_str()).is_ok(), present);
                assert_eq!(maglev.remove(id.as_str()).is_ok(), present);
                loads.remove(&id);
            }
            Op::Reweight { node, weight } => {
                let id = name(node);
                let result = ring.set_weight(id.as_str(), u32::from(weight % 5));
                assert_eq!(result.is_ok(), model.contains_key(&id));
                assert_eq!(maglev.set_weight(id.as_str(), u32::from(weight % 5)).is_ok(), result.is_ok());
                if let Some(w) = model.get_mut(&id) {
                    *w = u32::from(weight % 5);
                }
            }
            Op::Down { node } => {
                down.insert(name(node));
            }
            Op::Up { node } => {
                down.remove(&name(node));
            }
            Op::Lookup { key } => {
                let live: BTreeSet<&NodeId> = model.iter().filter(|(_, w)| **w > 0).map(|(id, _)| id).collect();
                check_lookup(&ring, &key, &live, &down);
                check_lookup(&maglev, &key, &live, &down);
            }
            Op::Place { key, epsilon } => {
                let Ok(rule) = BoundedLoad::new(f64::from(epsilon % 100 + 1) / 50.0) else { continue };
                let eligible = |n: &Node| n.weight() > 0 && !down.contains(n.id());
                let total: u64 = ring.nodes().iter().filter(|n| eligible(n)).map(|n| loads.get(n.id()).copied().unwrap_or(0)).sum();
                let weight: u64 = ring.nodes().iter().filter(|n| eligible(n)).map(|n| u64::from(n.weight())).sum();
                let chosen = rule.select(&ring, &key, total, weight, |n| eligible(n).then(|| loads.get(n.id()).copied().unwrap_or(0)));
                assert_eq!(chosen.is_some(), weight > 0, "a consistent load view always has room");
                if let Some(id) = chosen {
                    let node = ring.node(id.as_str()).expect("chosen node is on the ring");
                    assert!(eligible(node));
                    let load = loads.entry(id.clone()).or_insert(0);
                    assert!(*load < rule.capacity(total + 1, node.weight(), weight));
                    *load += 1;
                }
            }
        }
        assert_eq!(ring.len(), model.len());
        assert_eq!(maglev.nodes().len(), model.len());
        let points: u64 = model.values().map(|w| u64::from(*w) * u64::from(ring.points_per_weight())).sum();
        assert_eq!(ring.point_count() as u64, points);
    }
});

/// Owner present and live, candidates distinct and complete, health-aware lookup = first Up candidate.
fn check_lookup<B: Balancer>(balancer: &B, key: &[u8], live: &BTreeSet<&NodeId>, down: &BTreeSet<NodeId>) {
    let owner = balancer.lookup(key);
    assert_eq!(owner.is_some(), !live.is_empty());
    if let Some(owner) = owner {
        assert!(live.contains(owner));
    }
    let candidates: Vec<&NodeId> = balancer.candidates(key).map(|n| n.id()).collect();
    assert_eq!(candidates.first().copied(), owner);
    assert_eq!(candidates.iter().copied().collect::<BTreeSet<_>>(), *live);
    assert_eq!(candidates.len(), live.len());
    let healthy = balancer.lookup_with(key, |id| !down.contains(id));
    let first_up = candidates.iter().copied().find(|id| !down.contains(*id));
    assert_eq!(healthy, first_up);
}
