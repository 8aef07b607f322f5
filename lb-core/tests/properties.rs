//! Properties of the ring that users rely on (proptest).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lb_core::{HashRing, NodeId};
use proptest::prelude::*;

fn ring_of(names: &[String], weights: &[u32]) -> HashRing {
    let mut ring = HashRing::new();
    for (name, weight) in names.iter().zip(weights) {
        ring.add(NodeId::new(name.as_str()).unwrap(), *weight)
            .unwrap();
    }
    ring
}

/// Between 2 and 12 distinct node names with weights 1..=4, and 300 keys.
fn setup() -> impl Strategy<Value = (Vec<String>, Vec<u32>, Vec<Vec<u8>>)> {
    (
        prop::collection::btree_set("[a-z][a-z0-9-]{0,11}", 2..12),
        prop::collection::vec(1u32..=4, 12),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 300),
    )
        .prop_map(|(names, weights, keys)| (names.into_iter().collect(), weights, keys))
}

fn owners(ring: &HashRing, keys: &[Vec<u8>]) -> Vec<NodeId> {
    keys.iter()
        .map(|k| ring.lookup(k).unwrap().clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn removing_a_node_moves_only_the_keys_it_owned((names, weights, keys) in setup(), pick in any::<prop::sample::Index>()) {
        let mut ring = ring_of(&names, &weights);
        let before = owners(&ring, &keys);
        let gone = &names[pick.index(names.len())];
        ring.remove(gone).unwrap();
        for (key, old) in keys.iter().zip(&before) {
            let new = ring.lookup(key).unwrap();
            if old.as_str() == gone {
                prop_assert_ne!(new.as_str(), gone.as_str());
            } else {
                prop_assert_eq!(new, old);
            }
        }
    }

    #[test]
    fn adding_a_node_moves_keys_only_onto_it((names, weights, keys) in setup(), weight in 1u32..=4) {
        let mut ring = ring_of(&names, &weights);
        let before = owners(&ring, &keys);
        let fresh = NodeId::new("zz-new-node").unwrap();
        ring.add(fresh.clone(), weight).unwrap();
        for (key, old) in keys.iter().zip(&before) {
            let new = ring.lookup(key).unwrap();
            prop_assert!(new == old || *new == fresh, "key moved from {old} to {new}");
        }
    }

    #[test]
    fn a_down_nodes_keys_go_to_the_next_candidate_and_no_other_key_moves((names, weights, keys) in setup(), pick in any::<prop::sample::Index>()) {
        let ring = ring_of(&names, &weights);
        let down = &names[pick.index(names.len())];
        for key in &keys {
            let owner = ring.lookup(key).unwrap();
            let chosen = ring.lookup_with(key, |id| id.as_str() != down).unwrap();
            if owner.as_str() == down {
                prop_assert_eq!(Some(chosen), ring.candidates(key).nth(1).map(|n| n.id()));
            } else {
                prop_assert_eq!(chosen, owner);
            }
        }
    }

    #[test]
    fn mapping_does_not_depend_on_insertion_order((names, weights, keys) in setup()) {
        let forward = ring_of(&names, &weights);
        let mut reversed_names = names.clone();
        let mut reversed_weights = weights[..names.len()].to_vec();
        reversed_names.reverse();
        reversed_weights.reverse();
        let backward = ring_of(&reversed_names, &reversed_weights);
        prop_assert_eq!(owners(&forward, &keys), owners(&backward, &keys));
    }

    #[test]
    fn candidates_are_distinct_and_start_with_the_owner((names, weights, keys) in setup()) {
        let ring = ring_of(&names, &weights);
        for key in keys.iter().take(20) {
            let all: Vec<&str> = ring.candidates(key).map(|n| n.id().as_str()).collect();
            let mut distinct = all.clone();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), names.len());
            prop_assert_eq!(all.len(), names.len());
            prop_assert_eq!(Some(all[0]), ring.lookup(key).map(|n| n.as_str()));
        }
    }

    #[test]
    fn reweighting_up_moves_keys_only_onto_that_node((names, weights, keys) in setup(), pick in any::<prop::sample::Index>()) {
        let mut ring = ring_of(&names, &weights);
        let before = owners(&ring, &keys);
        let grown = &names[pick.index(names.len())];
        let old = ring.node(grown).unwrap().weight();
        ring.set_weight(grown, old + 2).unwrap();
        for (key, prev) in keys.iter().zip(&before) {
            let new = ring.lookup(key).unwrap();
            prop_assert!(new == prev || new.as_str() == grown);
        }
    }
}
