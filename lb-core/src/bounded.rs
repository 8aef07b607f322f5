//! Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam,
//! "Consistent Hashing with Bounded Loads", SODA 2018): a key goes to the first of its
//! candidates whose load is below its capacity, so no node takes more than
//! `⌈(1 + ε) · average⌉` while keys still stay where they were whenever they can.

use crate::{Balancer, Error, Node, NodeId};

/// ε when none is given: 0.25 (capacity 125 % of the average), as Google Cloud's and
/// HAProxy's `hash-balance-factor 125`.
pub const DEFAULT_EPSILON: f64 = 0.25;

/// The bounded-load rule with a fixed ε.
///
/// lb-core does no I/O: the caller tracks loads (in-flight requests, connections) and
/// passes them in.
///
/// ```
/// use std::collections::HashMap;
/// use lb_core::{BoundedLoad, HashRing, NodeId};
///
/// # fn main() -> Result<(), lb_core::Error> {
/// let mut ring = HashRing::new();
/// for name in ["a", "b", "c", "d"] {
///     ring.add(NodeId::new(name)?, 1)?;
/// }
/// let rule = BoundedLoad::new(0.25)?; // at most 125 % of the mean
/// let mut load: HashMap<NodeId, u64> = HashMap::new();
/// // 40 requests with one hot key, all still in flight.
/// for placed in 0..40 {
///     let node = rule
///         .select(&ring, b"hot", placed, ring.total_weight(), |n| {
///             Some(load.get(n.id()).copied().unwrap_or(0))
///         })
///         .expect("some node is below capacity")
///         .clone();
///     *load.entry(node).or_insert(0) += 1;
/// }
/// // No node holds more than ⌈1.25 × 40 / 4⌉ = 13; the owner is full.
/// assert!(load.values().all(|&n| n <= 13));
/// assert_eq!(load[ring.lookup(b"hot").expect("nodes")], 13);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundedLoad {
    epsilon: f64,
}

impl Default for BoundedLoad {
    fn default() -> Self {
        Self {
            epsilon: DEFAULT_EPSILON,
        }
    }
}

impl BoundedLoad {
    /// The rule with capacity factor `1 + epsilon`.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] unless `epsilon` is finite and in `(0, 100]`.
    pub fn new(epsilon: f64) -> Result<Self, Error> {
        if !(epsilon.is_finite() && epsilon > 0.0 && epsilon <= 100.0) {
            return Err(Error::InvalidSetting {
                name: "epsilon",
                reason: "must be a number in (0, 100]",
            });
        }
        Ok(Self { epsilon })
    }

    /// ε.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// Capacity of a node of `weight` out of `total_weight` when `total_load` units are
    /// placed (counting the one being placed): `⌈(1 + ε) · total_load · weight /
    /// total_weight⌉`; 0 when either weight is 0.
    pub fn capacity(&self, total_load: u64, weight: u32, total_weight: u64) -> u64 {
        if weight == 0 || total_weight == 0 {
            return 0;
        }
        let share =
            (1.0 + self.epsilon) * total_load as f64 * f64::from(weight) / total_weight as f64;
        share.ceil() as u64
    }

    /// The first candidate of `key` that is eligible and below capacity.
    ///
    /// `load(node)` gives the node's current load, or `None` if it must not be chosen
    /// (Down). `total_load` is the sum of the eligible nodes' loads and
    /// `eligible_weight` the sum of their weights (`balancer.total_weight()` when all
    /// are Up). The new unit counts too: capacities use `total_load + 1`.
    ///
    /// Returns `None` when no node is eligible, or when the totals understate the
    /// loads so that every eligible node is full (with consistent totals some node is
    /// always below capacity). Walks candidates lazily: `O(1)` for a key whose owner
    /// has room, and no allocation on up to 1024 nodes.
    pub fn select<'a, B: Balancer>(
        &self,
        balancer: &'a B,
        key: &[u8],
        total_load: u64,
        eligible_weight: u64,
        mut load: impl FnMut(&Node) -> Option<u64>,
    ) -> Option<&'a NodeId> {
        let placed = total_load.saturating_add(1);
        balancer
            .candidates(key)
            .find(|node| match load(node) {
                Some(current) => current < self.capacity(placed, node.weight(), eligible_weight),
                None => false,
            })
            .map(Node::id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HashRing, NodeId};

    #[test]
    fn capacity_is_the_ceiling_of_the_weighted_share() {
        let rule = BoundedLoad::default();
        assert_eq!(rule.capacity(100, 1, 4), 32); // 1.25 × 25 = 31.25
        assert_eq!(rule.capacity(1, 1, 4), 1);
        assert_eq!(rule.capacity(100, 0, 4), 0);
        assert!(BoundedLoad::new(0.0).is_err());
        assert!(BoundedLoad::new(f64::NAN).is_err());
    }

    #[test]
    fn a_hot_key_spills_to_the_next_candidate_once_its_owner_is_full() {
        let ring = HashRing::from_nodes(
            crate::Xxh3,
            160,
            ["a", "b", "c", "d"].map(|n| (NodeId::new(n).unwrap(), 1)),
        )
        .unwrap();
        let rule = BoundedLoad::default();
        let mut loads = std::collections::HashMap::new();
        let mut total = 0;
        let owner = ring.lookup(b"hot").unwrap().clone();
        for _ in 0..400 {
            let chosen = rule
                .select(&ring, b"hot", total, 4, |n| {
                    Some(*loads.get(n.id()).unwrap_or(&0))
                })
                .unwrap()
                .clone();
            *loads.entry(chosen).or_insert(0u64) += 1;
            total += 1;
            let cap = rule.capacity(total, 1, 4);
            assert!(loads.values().all(|&l| l <= cap), "{loads:?} over {cap}");
        }
        assert_eq!(
            loads.len(),
            4,
            "the hot key spread over every node: {loads:?}"
        );
        assert!(loads[&owner] >= 100);
    }
}
