//! Properties of the ring that users rely on (proptest).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lb_core::{HashAlgorithm, HashRing, NodeId};
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
        prop_assert_eq!(forward.fingerprint(), backward.fingerprint());
    }

    #[test]
    fn any_change_that_can_move_a_key_changes_the_fingerprint(
        (names, weights, _keys) in setup(),
        pick in any::<prop::sample::Index>(),
    ) {
        let ring = ring_of(&names, &weights);
        let print = ring.fingerprint();
        let name = &names[pick.index(names.len())];
        let mut removed = ring.clone();
        removed.remove(name).unwrap();
        prop_assert_ne!(removed.fingerprint(), print);
        let mut reweighted = ring.clone();
        let weight = reweighted.node(name).unwrap().weight();
        reweighted.set_weight(name, weight + 1).unwrap();
        prop_assert_ne!(reweighted.fingerprint(), print);
        let mut renamed = removed.clone();
        renamed.add(NodeId::new(format!("{name}x")).unwrap(), weight).unwrap();
        prop_assert_ne!(renamed.fingerprint(), print);
        let others = [
            (HashAlgorithm::Xxh3, 100),
            #[cfg(feature = "md5")]
            (HashAlgorithm::Md5, 160),
        ];
        for (hash, points) in others {
            let mut other = HashRing::with_hasher(hash, points).unwrap();
            for node in ring.nodes() {
                other.add(node.id().clone(), node.weight()).unwrap();
            }
            prop_assert_ne!(other.fingerprint(), print);
        }
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

mod maglev_and_bounded {
    use lb_core::{Balancer, BoundedLoad, Maglev, NodeId, Xxh3};
    use proptest::prelude::*;

    /// Small prime tables keep the cases fast while still holding many slots per node.
    const TABLE: u32 = 4099;

    fn table_of(names: &[String], weights: &[u32]) -> Maglev {
        Maglev::from_nodes(
            Xxh3,
            TABLE,
            names
                .iter()
                .zip(weights)
                .map(|(n, w)| (NodeId::new(n.as_str()).unwrap(), *w)),
        )
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn maglev_is_order_independent_and_flaps_move_only_the_flapping_nodes_keys(
            (names, weights, keys) in super::setup(),
            pick in any::<prop::sample::Index>(),
        ) {
            let forward = table_of(&names, &weights);
            let mut backward = Maglev::with_hasher(Xxh3, TABLE).unwrap();
            for (n, w) in names.iter().zip(&weights).rev() {
                backward.add(NodeId::new(n.as_str()).unwrap(), *w).unwrap();
            }
            let down = &names[pick.index(names.len())];
            for key in &keys {
                let owner = forward.lookup(key).unwrap();
                prop_assert_eq!(Some(owner), backward.lookup(key));
                let chosen = forward.lookup_with(key, |id| id.as_str() != down).unwrap();
                if owner.as_str() == down {
                    prop_assert_eq!(Some(chosen), forward.candidates(key).nth(1).map(|n| n.id()));
                } else {
                    prop_assert_eq!(chosen, owner);
                }
                let all: Vec<&str> = forward.candidates(key).map(|n| n.id().as_str()).collect();
                let mut distinct = all.clone();
                distinct.sort_unstable();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), names.len());
                prop_assert_eq!(all.len(), names.len());
            }
        }

        #[test]
        fn maglev_removal_keeps_most_keys_in_place((names, weights, keys) in super::setup(), pick in any::<prop::sample::Index>()) {
            // Maglev trades minimal disruption for balance: keys of other nodes may
            // move, but few do (the paper's Figure 11: a few percent).
            let mut table = table_of(&names, &weights);
            let before: Vec<NodeId> = keys.iter().map(|k| table.lookup(k).unwrap().clone()).collect();
            let gone = &names[pick.index(names.len())];
            table.remove(gone).unwrap();
            let moved_others = keys
                .iter()
                .zip(&before)
                .filter(|(k, old)| old.as_str() != gone && table.lookup(k) != Some(*old))
                .count();
            prop_assert!(moved_others * 5 <= keys.len(), "{moved_others} of {} keys of other nodes moved", keys.len());
        }

        #[test]
        fn bounded_loads_never_exceed_the_cap(
            (names, weights, _) in super::setup(),
            epsilon in 0.05f64..1.0,
            hot in prop::collection::vec(any::<u8>(), 1..4),
            use_maglev in any::<bool>(),
        ) {
            let ring = super::ring_of(&names, &weights);
            let table = table_of(&names, &weights);
            let rule = BoundedLoad::new(epsilon).unwrap();
            let weight_of: std::collections::HashMap<&str, u32> =
                names.iter().map(String::as_str).zip(weights.iter().copied()).collect();
            let total_weight: u64 = names.iter().map(|n| u64::from(weight_of[n.as_str()])).sum();
            let mut loads: std::collections::HashMap<NodeId, u64> = std::collections::HashMap::new();
            // A skewed stream: most requests carry one of a few hot keys.
            for i in 0..600u32 {
                let key: Vec<u8> = if i % 4 == 0 { i.to_le_bytes().to_vec() } else { hot.clone() };
                let total: u64 = loads.values().sum();
                let load = |n: &lb_core::Node| Some(*loads.get(n.id()).unwrap_or(&0));
                let chosen = if use_maglev {
                    rule.select(&table, &key, total, total_weight, load)
                } else {
                    rule.select(&ring, &key, total, total_weight, load)
                };
                let chosen = chosen.expect("some node is always below capacity").clone();
                *loads.entry(chosen).or_insert(0) += 1;
                let placed = total + 1;
                for (node, load) in &loads {
                    let cap = rule.capacity(placed, weight_of[node.as_str()], total_weight);
                    prop_assert!(*load <= cap, "{node} holds {load} > cap {cap}");
                }
            }
        }
    }

    #[test]
    fn balancer_trait_agrees_with_inherent_lookups() {
        fn owner<B: Balancer>(b: &B, key: &[u8]) -> Option<String> {
            b.lookup(key).map(|n| n.to_string())
        }
        let names: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
        let table = table_of(&names, &[1, 1, 1, 1, 1]);
        let ring = super::ring_of(&names, &[1, 1, 1, 1, 1]);
        assert_eq!(
            owner(&table, b"k"),
            table.lookup(b"k").map(|n| n.to_string())
        );
        assert_eq!(owner(&ring, b"k"), ring.lookup(b"k").map(|n| n.to_string()));
        assert_eq!(Balancer::total_weight(&ring), 5);
    }
}

/// Short ids that differ in one byte (`a`/`b`/`c`, `py1`/`py2`/`py3`) get points of
/// their own: each of three equal nodes owns about a third of the ring. With XXH3 seeds
/// `0, 1, 2, …` their points coincided and one of `py1..3` owned 98 %.
#[test]
fn short_ids_that_differ_in_one_byte_share_the_ring_evenly() {
    for names in [
        ["a", "b", "c"],
        ["py1", "py2", "py3"],
        ["s01", "s02", "s03"],
        ["node1", "node2", "node3"],
        ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
    ] {
        {
            let algo = HashAlgorithm::Xxh3;
            let mut ring = HashRing::with_hasher(algo, 160).unwrap();
            for name in names {
                ring.add(NodeId::new(name).unwrap(), 1).unwrap();
            }
            for (name, share) in names.iter().zip(ring.shares()) {
                assert!(
                    (0.2..0.47).contains(&share),
                    "{name} owns {share:.3} of a ring of {names:?} ({algo:?})"
                );
            }
        }
    }
}
