//! Random sequences of add / remove / reweight / health / lookup on a ring, checked
//! against the invariants users rely on:
//! - `lookup` returns a node that is present and not drained, and `None` only when no
//!   node has weight > 0;
//! - `candidates` yields each live node exactly once, owner first;
//! - a health-aware lookup returns an Up node whenever one exists, and it is the first
//!   Up node among the candidates;
//! - refused operations leave the ring unchanged; nothing panics.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use lb_core::{HashAlgorithm, HashRing, NodeId};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Add { node: u8, weight: u8 },
    Remove { node: u8 },
    Reweight { node: u8, weight: u8 },
    Down { node: u8 },
    Up { node: u8 },
    Lookup { key: Vec<u8> },
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
    let hash = [HashAlgorithm::Xxh3, HashAlgorithm::Sha256, HashAlgorithm::Md5][usize::from(input.hash % 3)];
    let Ok(mut ring) = HashRing::with_hasher(hash, u32::from(input.points_per_weight % 16)) else {
        assert_eq!(input.points_per_weight % 16, 0);
        return;
    };
    let mut model: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut down: BTreeSet<NodeId> = BTreeSet::new();
    for op in input.ops.into_iter().take(200) {
        match op {
            Op::Add { node, weight } => {
                let id = name(node);
                let result = ring.add(id.clone(), u32::from(weight % 5));
                assert_eq!(result.is_ok(), !model.contains_key(&id));
                model.entry(id).or_insert(u32::from(weight % 5));
            }
            Op::Remove { node } => {
                let id = name(node);
                assert_eq!(ring.remove(id.as_str()).is_ok(), model.remove(&id).is_some());
            }
            Op::Reweight { node, weight } => {
                let id = name(node);
                let result = ring.set_weight(id.as_str(), u32::from(weight % 5));
                assert_eq!(result.is_ok(), model.contains_key(&id));
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
                let owner = ring.lookup(&key);
                assert_eq!(owner.is_some(), !live.is_empty());
                if let Some(owner) = owner {
                    assert!(live.contains(owner));
                }
                let candidates: Vec<&NodeId> = ring.candidates(&key).map(|n| n.id()).collect();
                assert_eq!(candidates.first().copied(), owner);
                assert_eq!(candidates.iter().copied().collect::<BTreeSet<_>>(), live);
                assert_eq!(candidates.len(), live.len());
                let healthy = ring.lookup_with(&key, |id| !down.contains(id));
                let first_up = candidates.iter().copied().find(|id| !down.contains(*id));
                assert_eq!(healthy, first_up);
            }
        }
        assert_eq!(ring.len(), model.len());
        let points: u64 = model.values().map(|w| u64::from(*w) * u64::from(ring.points_per_weight())).sum();
        assert_eq!(ring.point_count() as u64, points);
    }
});
