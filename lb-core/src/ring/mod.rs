//! The ketama ring: weighted virtual nodes (points) on a hash circle.

mod index;

use crate::candidates::Candidates;
use crate::hash::{HashFunction, Xxh3};
use crate::node::{member_rank, members_heap_bytes, new_member_rank, sorted_members};
use crate::{Balancer, Error, Node, NodeId, fingerprint};
use index::PointIndex;

/// Points per unit of weight when none is given: 160, as nginx and ketama.
pub const DEFAULT_POINTS_PER_WEIGHT: u32 = 160;

/// The most points one node may own (`weight × points_per_weight`): 2²⁰.
pub const MAX_POINTS_PER_NODE: u64 = 1 << 20;

/// A consistent-hash ring of weighted nodes (ketama).
///
/// `H` is the [`HashFunction`] that places points and hashes keys ([`Xxh3`] unless
/// chosen).
///
/// # Placement
/// A node of weight `w` owns `w × points_per_weight` points `j = 0, 1, …`, placed by
/// the ring's [`HashFunction::points`] (the table on [`HashFunction`] lists each:
/// `xxh3_64_with_seed(n, j × 0x9E3779B97F4A7C15)` for [`Xxh3`], the hash of the string `"{n}-{j}"` for
/// SHA-256 and MD5). A key sits at `hash(key)`, and its owner is the node of the first point
/// at or after it, wrapping past the top of the hash space to the first point. Points
/// that collide are ordered by node id, so the ring never depends on the order nodes
/// were added. With [`Nginx`](crate::Nginx) the placement is nginx's, bit for bit.
///
/// This is ketama (Richard Jones, last.fm, 2007), as in nginx's `hash ... consistent`
/// (`ngx_http_upstream_hash_module.c`), which also places 160 points per unit of weight.
///
/// # Cost
/// Lookup: one hash of the key, one read of a direct-mapped index (`2^⌈log₂ P⌉`
/// equal buckets over the hash space, each holding where its first point is) and a
/// scan of about one point: `O(1)` expected, nearly independent of the number of points, and no
/// allocation. Memory: 12 bytes per point (8-byte hash, 4-byte owner) plus 4–8 bytes
/// of index per point. [`HashRing::from_nodes`] builds in `O(P)` (bucket sort);
/// [`add`](HashRing::add), [`remove`](HashRing::remove) and
/// [`set_weight`](HashRing::set_weight) change one node in `O(P)` by merging or
/// filtering its points, without rehashing the others.
#[derive(Debug, Clone)]
pub struct HashRing<H = Xxh3> {
    hasher: H,
    points_per_weight: u32,
    /// Sorted by id; an owner is an index here.
    nodes: Vec<Node>,
    /// Point positions, ascending; ties ordered by owner.
    hashes: Vec<u64>,
    /// `owners[i]` is the node index of point `i`.
    owners: Vec<u32>,
    index: PointIndex,
    /// Nodes of weight > 0.
    live: usize,
    total_weight: u64,
}

impl HashRing<Xxh3> {
    /// An empty ring with [`Xxh3`] and [`DEFAULT_POINTS_PER_WEIGHT`].
    pub fn new() -> Self {
        Self::empty(Xxh3, DEFAULT_POINTS_PER_WEIGHT)
    }
}

impl Default for HashRing<Xxh3> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: HashFunction> HashRing<H> {
    fn empty(hasher: H, points_per_weight: u32) -> Self {
        let index = PointIndex::build(&[], hasher.bits());
        Self {
            hasher,
            points_per_weight,
            nodes: Vec::new(),
            hashes: Vec::new(),
            owners: Vec::new(),
            index,
            live: 0,
            total_weight: 0,
        }
    }

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
        Ok(Self::empty(hasher, points_per_weight))
    }

    /// A ring holding `nodes` (id, weight), built in one pass: `O(P)` for `P` points,
    /// much faster than adding the nodes one by one.
    ///
    /// # Errors
    /// As [`with_hasher`](Self::with_hasher), plus [`Error::DuplicateNode`] and
    /// [`Error::TooManyPoints`] as for [`add`](Self::add).
    pub fn from_nodes(
        hasher: H,
        points_per_weight: u32,
        nodes: impl IntoIterator<Item = (NodeId, u32)>,
    ) -> Result<Self, Error> {
        let mut ring = Self::with_hasher(hasher, points_per_weight)?;
        let list = sorted_members(nodes)?;
        let mut total = 0usize;
        for node in &list {
            total += ring.point_count_for(node.id(), node.weight())? as usize;
        }
        let owner_limit = u32::try_from(list.len()).map_err(|_| Error::InvalidSetting {
            name: "nodes",
            reason: "a ring holds at most 2^32 nodes",
        })?;
        let mut points: Vec<(u64, u32)> = Vec::with_capacity(total);
        let mut scratch = Vec::new();
        for (owner, node) in (0..owner_limit).zip(&list) {
            let count = ring.point_count_for(node.id(), node.weight())?;
            scratch.clear();
            ring.hasher.points(node.id().as_str(), count, &mut scratch);
            points.extend(scratch.iter().map(|&h| (h, owner)));
        }
        (ring.hashes, ring.owners, ring.index) = PointIndex::sort(&points, ring.hasher.bits());
        ring.live = list.iter().filter(|n| n.weight() > 0).count();
        ring.total_weight = list.iter().map(|n| u64::from(n.weight())).sum();
        ring.nodes = list;
        Ok(ring)
    }

    /// Adds a node of the given weight (0 = drained: a member that owns no key).
    /// Only keys that move onto the new node change owner. `O(P)`.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`] if the id is on the ring; [`Error::TooManyPoints`] if
    /// `weight × points_per_weight` exceeds [`MAX_POINTS_PER_NODE`]. The ring is
    /// unchanged on error.
    pub fn add(&mut self, id: NodeId, weight: u32) -> Result<(), Error> {
        let rank = new_member_rank(&self.nodes, &id)?;
        let count = self.point_count_for(&id, weight)?;
        let owner = u32::try_from(rank).map_err(|_| Error::InvalidSetting {
            name: "nodes",
            reason: "a ring holds at most 2^32 nodes",
        })?;
        for o in &mut self.owners {
            if *o >= owner {
                *o += 1;
            }
        }
        let fresh = self.sorted_points_of(&id, owner, count);
        self.nodes.insert(rank, Node::new(id, weight));
        if weight > 0 {
            self.live += 1;
        }
        self.total_weight += u64::from(weight);
        self.merge(&fresh);
        Ok(())
    }

    /// Removes a node and its points, returning it. Only the removed node's keys move.
    /// `O(P)`.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] if no node has this id.
    pub fn remove(&mut self, id: &str) -> Result<Node, Error> {
        let rank = member_rank(&self.nodes, id)?;
        let owner = rank as u32;
        self.drop_points_of(owner);
        for o in &mut self.owners {
            if *o > owner {
                *o -= 1;
            }
        }
        let node = self.nodes.remove(rank);
        if node.weight() > 0 {
            self.live -= 1;
        }
        self.total_weight -= u64::from(node.weight());
        self.reindex();
        Ok(node)
    }

    /// Changes a node's weight and returns the old one; 0 drains the node. Only keys
    /// moving to or from this node change owner. `O(P)`.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] if no node has this id; [`Error::TooManyPoints`] as for
    /// [`add`](Self::add). The ring is unchanged on error.
    pub fn set_weight(&mut self, id: &str, weight: u32) -> Result<u32, Error> {
        let rank = member_rank(&self.nodes, id)?;
        let node_id = self.nodes[rank].id().clone();
        let count = self.point_count_for(&node_id, weight)?;
        let owner = rank as u32;
        self.drop_points_of(owner);
        let fresh = self.sorted_points_of(&node_id, owner, count);
        self.merge(&fresh);
        let old = self.nodes[rank].weight();
        self.nodes[rank].set_weight(weight);
        match (old > 0, weight > 0) {
            (false, true) => self.live += 1,
            (true, false) => self.live -= 1,
            _ => {}
        }
        self.total_weight = self.total_weight - u64::from(old) + u64::from(weight);
        Ok(old)
    }

    /// The node that owns `key`, ignoring health; `None` when no node has weight > 0.
    /// `O(1)` expected, no allocation.
    #[inline]
    pub fn lookup(&self, key: &[u8]) -> Option<&NodeId> {
        let owner = *self.owners.get(self.start(key))?;
        Some(self.nodes[owner as usize].id())
    }

    /// The index in [`nodes`](Self::nodes) of the node that owns `key`, as
    /// [`lookup`](Self::lookup): for a `Vec` of per-node values kept in `nodes()` order
    /// (or use [`NodeMap`](crate::NodeMap)). Valid until the next add or remove.
    #[inline]
    pub fn lookup_index(&self, key: &[u8]) -> Option<usize> {
        self.owners
            .get(self.start(key))
            .map(|&owner| owner as usize)
    }

    /// The first candidate for `key` that `accept` takes: the owner if accepted, else
    /// the next distinct node in ring order, and so on. `None` when none is accepted.
    ///
    /// Pass a health check (`|id| health.is_up(id)`) to skip Down nodes without
    /// rebuilding the ring: keys of accepted nodes never move.
    pub fn lookup_with(&self, key: &[u8], accept: impl FnMut(&NodeId) -> bool) -> Option<&NodeId> {
        <Self as Balancer>::lookup_with(self, key, accept)
    }

    /// The distinct nodes of weight > 0 in ring order from `key`'s point: the owner
    /// first, then the order to fail over in. Take `r` of them for a replica set.
    pub fn candidates(&self, key: &[u8]) -> Candidates<'_> {
        Candidates::new(&self.nodes, &self.owners, self.start(key), self.live)
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
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The number of nodes, drained ones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ring has no node at all.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Sum of all weights.
    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }

    /// The number of points on the ring (sum of `weight × points_per_weight`).
    pub fn point_count(&self) -> usize {
        self.hashes.len()
    }

    /// Points per unit of weight.
    pub fn points_per_weight(&self) -> u32 {
        self.points_per_weight
    }

    /// The hash function used for points and keys.
    pub fn hasher(&self) -> &H {
        &self.hasher
    }

    /// The fraction of the hash space each node owns, in [`nodes`](Self::nodes) order:
    /// the exact share of uniformly random keys it receives (sums to 1 when any node
    /// has weight > 0). `O(P)`; for balance reports, not for the request path.
    pub fn shares(&self) -> Vec<f64> {
        let mut shares = vec![0.0; self.nodes.len()];
        let space = 2f64.powi(self.hasher.bits() as i32);
        if let (Some(&first), Some(&last)) = (self.hashes.first(), self.hashes.last()) {
            // The first point also owns the wrap-around arc after the last point.
            shares[self.owners[0] as usize] += (first as f64 + (space - last as f64)) / space;
            for i in 1..self.hashes.len() {
                shares[self.owners[i] as usize] +=
                    (self.hashes[i] - self.hashes[i - 1]) as f64 / space;
            }
        }
        shares
    }

    /// A fingerprint of this ring's mapping: two rings with the same fingerprint map
    /// every key to the same node and the same failover order (up to a 2⁻⁶⁴ chance of a
    /// collision), whatever order their nodes were added in. It covers the algorithm
    /// (ketama), [`points_per_weight`](Self::points_per_weight), the hash function and
    /// every node's id and weight; it is stable across processes, machines and
    /// versions of this crate that keep the same placement. `O(nodes)`.
    ///
    /// ```
    /// use lb_core::{HashRing, NodeId};
    /// let mut a = HashRing::new();
    /// let mut b = HashRing::new();
    /// for id in ["x", "y"] {
    ///     a.add(NodeId::new(id).unwrap(), 1).unwrap();
    /// }
    /// for id in ["y", "x"] {
    ///     b.add(NodeId::new(id).unwrap(), 1).unwrap();
    /// }
    /// assert_eq!(a.fingerprint(), b.fingerprint());
    /// b.set_weight("x", 2).unwrap();
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// ```
    pub fn fingerprint(&self) -> u64 {
        fingerprint::of("ketama", self.points_per_weight, &self.hasher, &self.nodes)
    }

    /// Bytes of heap memory the ring holds (points, index and node list).
    pub fn heap_bytes(&self) -> usize {
        self.hashes.capacity() * 8
            + self.owners.capacity() * 4
            + self.index.heap_bytes()
            + members_heap_bytes(&self.nodes)
    }

    /// Index of the first point at or after `key`'s hash, wrapping to 0.
    #[inline]
    fn start(&self, key: &[u8]) -> usize {
        let i = self
            .index
            .first_at_or_after(&self.hashes, self.hasher.hash(key));
        if i == self.hashes.len() { 0 } else { i }
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

    /// The node's points as sorted `(hash, owner)` pairs, without touching the ring.
    fn sorted_points_of(&self, id: &NodeId, owner: u32, count: u32) -> Vec<(u64, u32)> {
        let mut hashes = Vec::with_capacity(count as usize);
        self.hasher.points(id.as_str(), count, &mut hashes);
        hashes.sort_unstable();
        hashes.into_iter().map(|h| (h, owner)).collect()
    }

    fn drop_points_of(&mut self, owner: u32) {
        let mut keep = 0;
        for i in 0..self.hashes.len() {
            if self.owners[i] != owner {
                self.hashes[keep] = self.hashes[i];
                self.owners[keep] = self.owners[i];
                keep += 1;
            }
        }
        self.hashes.truncate(keep);
        self.owners.truncate(keep);
    }

    /// Merges sorted `fresh` points into the ring and rebuilds the index.
    fn merge(&mut self, fresh: &[(u64, u32)]) {
        if !fresh.is_empty() {
            let total = self.hashes.len() + fresh.len();
            let (mut hashes, mut owners) = (Vec::with_capacity(total), Vec::with_capacity(total));
            let (mut i, mut j) = (0, 0);
            while i < self.hashes.len() || j < fresh.len() {
                let take_old = j == fresh.len()
                    || (i < self.hashes.len() && (self.hashes[i], self.owners[i]) <= fresh[j]);
                let (h, o) = if take_old {
                    i += 1;
                    (self.hashes[i - 1], self.owners[i - 1])
                } else {
                    j += 1;
                    fresh[j - 1]
                };
                hashes.push(h);
                owners.push(o);
            }
            self.hashes = hashes;
            self.owners = owners;
        }
        self.reindex();
    }

    fn reindex(&mut self) {
        self.index = PointIndex::build(&self.hashes, self.hasher.bits());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    #[cfg(feature = "sha256")]
    fn point_j_of_node_n_is_the_hash_of_n_dash_j() {
        let mut ring = HashRing::with_hasher(crate::Sha256, 2).unwrap();
        ring.add(id("server1"), 1).unwrap();
        let mut expected = vec![
            crate::Sha256.hash(b"server1-0"),
            crate::Sha256.hash(b"server1-1"),
        ];
        expected.sort_unstable();
        assert_eq!(ring.hashes, expected);
    }

    #[test]
    fn insertion_order_and_bulk_build_agree() {
        let names = ["c", "a", "e", "b", "d"];
        let mut forward = HashRing::new();
        let mut backward = HashRing::new();
        for (w, n) in names.iter().enumerate() {
            forward.add(id(n), w as u32).unwrap();
        }
        for (w, n) in names.iter().enumerate().rev() {
            backward.add(id(n), w as u32).unwrap();
        }
        let bulk = HashRing::from_nodes(
            Xxh3,
            160,
            names.iter().enumerate().map(|(w, n)| (id(n), w as u32)),
        )
        .unwrap();
        assert_eq!(
            (&forward.hashes, &forward.owners),
            (&backward.hashes, &backward.owners)
        );
        assert_eq!(
            (&forward.hashes, &forward.owners),
            (&bulk.hashes, &bulk.owners)
        );
        assert_eq!(forward.total_weight(), 10);
        let shares = forward.shares();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(shares[2], 0.0, "node c has weight 0");
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
        assert_eq!(
            (ring.hashes, ring.owners, ring.nodes),
            (before.hashes, before.owners, before.nodes)
        );
        assert!(HashRing::with_hasher(Xxh3, 0).is_err());
        assert!(HashRing::from_nodes(Xxh3, 160, [(id("a"), 1), (id("a"), 2)]).is_err());
    }
}
