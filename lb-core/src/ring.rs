//! The ketama ring: weighted virtual nodes (points) on a `u64` circle.
//!
//! # Placement
//! Point `j` of node `n` (for `j` in `0 .. weight × points_per_weight`) sits at
//! `hash(format!("{n}-{j}"))`: the node id's UTF-8 bytes, an ASCII `-`, then `j` in
//! decimal ASCII with no padding. Point 0 of `server1` is the hash of the 9 bytes
//! `server1-0`. A key sits at `hash(key)`, and its owner is the node of the first point
//! at or after it, wrapping past `u64::MAX` to the first point. Points that collide
//! are ordered by node id, so the ring does not depend on the order nodes were added.
//!
//! This is the scheme of ketama (Richard Jones, last.fm, 2007) and of nginx's
//! `hash ... consistent` (`ngx_http_upstream_hash_module.c`), which also places 160
//! points per unit of weight; the point strings and hash differ from both.

use crate::candidates::Candidates;
use crate::hash::{HashFunction, Xxh3};
use crate::{Error, Node, NodeId};

/// Points per unit of weight when none is given: 160, as nginx and ketama.
pub const DEFAULT_POINTS_PER_WEIGHT: u32 = 160;

/// The most points one node may own (`weight × points_per_weight`): 2²⁰.
pub const MAX_POINTS_PER_NODE: u64 = 1 << 20;

/// A point on the ring: its position and the index of its node in `HashRing::nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Point {
    pub(crate) hash: u64,
    pub(crate) node: u32,
}

/// A consistent-hash ring of weighted nodes (ketama).
///
/// `H` is the [`HashFunction`] for both points and keys ([`Xxh3`] unless chosen).
/// Memory: 16 bytes per point plus the node list. Lookup: one hash of the key and a
/// binary search over the points, no allocation.
///
/// Changes are incremental: adding a node merges its points into the sorted list
/// (`O(P + p log p)` for `P` points in all, `p` of the node), removing one filters
/// them out (`O(P)`).
#[derive(Debug, Clone)]
pub struct HashRing<H = Xxh3> {
    hasher: H,
    points_per_weight: u32,
    /// Sorted by id; a point's `node` is an index here.
    nodes: Vec<Node>,
    /// Sorted by `(hash, node)`, so ties go to the smaller node id.
    points: Vec<Point>,
    /// Nodes of weight > 0.
    live: usize,
}

impl HashRing<Xxh3> {
    /// An empty ring with [`Xxh3`] and [`DEFAULT_POINTS_PER_WEIGHT`].
    pub fn new() -> Self {
        Self {
            hasher: Xxh3,
            points_per_weight: DEFAULT_POINTS_PER_WEIGHT,
            nodes: Vec::new(),
            points: Vec::new(),
            live: 0,
        }
    }
}

impl Default for HashRing<Xxh3> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: HashFunction> HashRing<H> {
    /// An empty ring with the given hash function and points per unit of weight.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when `points_per_weight` is 0 or above
    /// [`MAX_POINTS_PER_NODE`].
    pub fn with_hasher(hasher: H, points_per_weight: u32) -> Result<Self, Error> {
        if points_per_weight == 0 || u64::from(points_per_weight) > MAX_POINTS_PER_NODE {
            return Err(Error::InvalidSetting {
                name: "points_per_weight",
                reason: "must be between 1 and 1048576",
            });
        }
        Ok(Self {
            hasher,
            points_per_weight,
            nodes: Vec::new(),
            points: Vec::new(),
            live: 0,
        })
    }

    /// Adds a node of the given weight (0 = drained: a member that owns no key).
    ///
    /// # Errors
    /// [`Error::DuplicateNode`] if the id is on the ring; [`Error::TooManyPoints`] if
    /// `weight × points_per_weight` exceeds [`MAX_POINTS_PER_NODE`]. The ring is
    /// unchanged on error.
    pub fn add(&mut self, id: NodeId, weight: u32) -> Result<(), Error> {
        let rank = match self.rank(id.as_str()) {
            Ok(_) => return Err(Error::DuplicateNode(id.to_string())),
            Err(rank) => rank,
        };
        let count = self.point_count_for(&id, weight)?;
        let index = u32::try_from(rank).map_err(|_| Error::InvalidSetting {
            name: "nodes",
            reason: "a ring holds at most 2^32 nodes",
        })?;
        for point in &mut self.points {
            if point.node >= index {
                point.node += 1;
            }
        }
        let fresh = self.points_of(&id, index, count);
        self.nodes.insert(rank, Node::new(id, weight));
        if weight > 0 {
            self.live += 1;
        }
        self.merge(fresh);
        Ok(())
    }

    /// Removes a node and its points, returning it. Only the removed node's keys move.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] if no node has this id.
    pub fn remove(&mut self, id: &str) -> Result<Node, Error> {
        let rank = self
            .rank(id)
            .map_err(|_| Error::UnknownNode(id.to_string()))?;
        let index = rank as u32;
        self.points.retain(|p| p.node != index);
        for point in &mut self.points {
            if point.node > index {
                point.node -= 1;
            }
        }
        let node = self.nodes.remove(rank);
        if node.weight() > 0 {
            self.live -= 1;
        }
        Ok(node)
    }

    /// Changes a node's weight and returns the old one. Weight 0 drains the node.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] if no node has this id; [`Error::TooManyPoints`] as for
    /// [`add`](Self::add). The ring is unchanged on error.
    pub fn set_weight(&mut self, id: &str, weight: u32) -> Result<u32, Error> {
        let rank = self
            .rank(id)
            .map_err(|_| Error::UnknownNode(id.to_string()))?;
        let node_id = self.nodes[rank].id().clone();
        let count = self.point_count_for(&node_id, weight)?;
        let index = rank as u32;
        self.points.retain(|p| p.node != index);
        let fresh = self.points_of(&node_id, index, count);
        self.merge(fresh);
        let old = self.nodes[rank].weight();
        self.nodes[rank].set_weight(weight);
        match (old > 0, weight > 0) {
            (false, true) => self.live += 1,
            (true, false) => self.live -= 1,
            _ => {}
        }
        Ok(old)
    }

    /// The node that owns `key`, ignoring health; `None` when no node has weight > 0.
    #[inline]
    pub fn lookup(&self, key: &[u8]) -> Option<&NodeId> {
        let point = self.points.get(self.start(key))?;
        Some(self.nodes[point.node as usize].id())
    }

    /// The first candidate for `key` that `accept` takes: the owner if it is accepted,
    /// else the next distinct node in ring order, and so on. `None` when no node is
    /// accepted.
    ///
    /// Pass a health check (`|id| health.is_up(id)`) to skip Down nodes without
    /// rebuilding the ring: keys of accepted nodes never move.
    pub fn lookup_with(
        &self,
        key: &[u8],
        mut accept: impl FnMut(&NodeId) -> bool,
    ) -> Option<&NodeId> {
        self.candidates(key).map(Node::id).find(|id| accept(id))
    }

    /// The distinct nodes of weight > 0 in ring order from `key`'s point: the owner
    /// first, then the order to fail over in. Take `r` of them for a replica set.
    pub fn candidates(&self, key: &[u8]) -> Candidates<'_> {
        Candidates::new(&self.nodes, &self.points, self.start(key), self.live)
    }

    /// The node with this id, if on the ring.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.rank(id).ok().map(|rank| &self.nodes[rank])
    }

    /// Whether a node with this id is on the ring (drained or not).
    pub fn contains(&self, id: &str) -> bool {
        self.rank(id).is_ok()
    }

    /// All nodes, drained ones included, sorted by id.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &Node> + '_ {
        self.nodes.iter()
    }

    /// The number of nodes, drained ones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ring has no node at all.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The number of points on the ring (sum of `weight × points_per_weight`).
    pub fn point_count(&self) -> usize {
        self.points.len()
    }

    /// Points per unit of weight.
    pub fn points_per_weight(&self) -> u32 {
        self.points_per_weight
    }

    /// The hash function used for points and keys.
    pub fn hasher(&self) -> &H {
        &self.hasher
    }

    /// Index of the first point at or after `key`'s hash, wrapping to 0.
    #[inline]
    fn start(&self, key: &[u8]) -> usize {
        let hash = self.hasher.hash(key);
        let index = self.points.partition_point(|p| p.hash < hash);
        if index == self.points.len() { 0 } else { index }
    }

    fn rank(&self, id: &str) -> Result<usize, usize> {
        self.nodes.binary_search_by(|n| n.id().as_str().cmp(id))
    }

    fn point_count_for(&self, id: &NodeId, weight: u32) -> Result<u32, Error> {
        let points = u64::from(weight) * u64::from(self.points_per_weight);
        if points > MAX_POINTS_PER_NODE {
            return Err(Error::TooManyPoints {
                node: id.to_string(),
                points,
            });
        }
        Ok(points as u32)
    }

    /// The node's points, sorted, without touching the ring.
    fn points_of(&self, id: &NodeId, index: u32, count: u32) -> Vec<Point> {
        let mut label = Vec::with_capacity(id.as_str().len() + 11);
        label.extend_from_slice(id.as_str().as_bytes());
        label.push(b'-');
        let prefix = label.len();
        let mut points: Vec<Point> = (0..count)
            .map(|j| {
                label.truncate(prefix);
                push_decimal(&mut label, j);
                Point {
                    hash: self.hasher.hash(&label),
                    node: index,
                }
            })
            .collect();
        points.sort_unstable();
        points
    }

    /// Merges sorted `fresh` points into the sorted ring.
    fn merge(&mut self, fresh: Vec<Point>) {
        if fresh.is_empty() {
            return;
        }
        let old = std::mem::take(&mut self.points);
        let mut merged = Vec::with_capacity(old.len() + fresh.len());
        let (mut a, mut b) = (old.into_iter().peekable(), fresh.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x <= y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        self.points = merged;
    }
}

/// Appends `n` in decimal ASCII, without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn decimal_labels_match_format() {
        for n in [0u32, 7, 10, 159, 160, 4_294_967_295] {
            let mut out = b"x-".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x-{n}").into_bytes());
        }
    }

    #[test]
    fn point_j_of_node_n_is_the_hash_of_n_dash_j() {
        let mut ring = HashRing::with_hasher(crate::Sha256, 2).unwrap();
        ring.add(id("server1"), 1).unwrap();
        let mut expected = vec![
            crate::Sha256.hash(b"server1-0"),
            crate::Sha256.hash(b"server1-1"),
        ];
        expected.sort_unstable();
        let got: Vec<u64> = ring.points.iter().map(|p| p.hash).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let names = ["c", "a", "e", "b", "d"];
        let mut forward = HashRing::new();
        let mut backward = HashRing::new();
        for n in names {
            forward.add(id(n), 1).unwrap();
        }
        for n in names.iter().rev() {
            backward.add(id(n), 1).unwrap();
        }
        assert_eq!(forward.points, backward.points);
    }

    #[test]
    fn weights_scale_points_and_zero_drains() {
        let mut ring = HashRing::new();
        ring.add(id("a"), 3).unwrap();
        ring.add(id("b"), 0).unwrap();
        assert_eq!(ring.point_count(), 480);
        assert_eq!(ring.candidates(b"k").count(), 1);
        ring.set_weight("a", 0).unwrap();
        assert_eq!(ring.lookup(b"k"), None);
        ring.set_weight("b", 1).unwrap();
        assert_eq!(ring.lookup(b"k"), Some(&id("b")));
    }

    #[test]
    fn bad_input_is_refused_and_changes_nothing() {
        let mut ring = HashRing::new();
        ring.add(id("a"), 1).unwrap();
        let before = ring.clone();
        assert_eq!(ring.add(id("a"), 1), Err(Error::DuplicateNode("a".into())));
        assert!(matches!(
            ring.add(id("b"), u32::MAX),
            Err(Error::TooManyPoints { .. })
        ));
        assert!(matches!(
            ring.set_weight("a", u32::MAX),
            Err(Error::TooManyPoints { .. })
        ));
        assert_eq!(ring.remove("zz"), Err(Error::UnknownNode("zz".into())));
        assert_eq!(ring.points, before.points);
        assert_eq!(ring.nodes, before.nodes);
        assert!(HashRing::with_hasher(Xxh3, 0).is_err());
    }
}
