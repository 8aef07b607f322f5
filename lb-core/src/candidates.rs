//! [`Candidates`]: the distinct nodes for a key, in failover order.

use crate::Node;

/// Nodes tracked without allocating; larger rings spill to the heap once per iterator.
pub(crate) const INLINE_NODES: usize = 1024;

/// An iterator over the distinct nodes of weight > 0 for one key, in ring (or Maglev
/// table) order from the key's point: the owner first, then each next node not yet
/// yielded.
///
/// Made by [`HashRing::candidates`](crate::HashRing::candidates) and
/// [`Maglev::candidates`](crate::Maglev::candidates). It yields every live
/// node exactly once (so `len()` is exact), and allocates nothing on rings of up to
/// 1024 nodes. `take(r)` is a replica set of size `r`. Each step costs `O(1)`; finding
/// all `N` nodes walks at most every point once.
///
/// ```
/// use lb_core::{HashRing, NodeId};
///
/// # fn main() -> Result<(), lb_core::Error> {
/// let mut ring = HashRing::new();
/// for name in ["a", "b", "c", "d", "e"] {
///     ring.add(NodeId::new(name)?, 1)?;
/// }
/// ring.set_weight("e", 0)?; // drained: never a candidate
/// let order: Vec<&str> = ring.candidates(b"user-42").map(|n| n.id().as_str()).collect();
/// assert_eq!(order.len(), 4);
/// assert_eq!(Some(order[0]), ring.lookup(b"user-42").map(|id| id.as_str()));
/// assert!(!order.contains(&"e"));
/// // Three replicas of the key: its first three candidates.
/// assert_eq!(ring.candidates(b"user-42").take(3).count(), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    nodes: &'a [Node],
    /// Node index of each point (ring) or slot (Maglev), in order.
    points: &'a [u32],
    /// Index of the next point to visit.
    cursor: usize,
    /// Points visited so far.
    visited: usize,
    /// Live nodes not yet yielded.
    remaining: usize,
    seen: Seen,
}

impl<'a> Candidates<'a> {
    pub(crate) fn new(nodes: &'a [Node], points: &'a [u32], start: usize, live: usize) -> Self {
        Self {
            nodes,
            points,
            cursor: start,
            visited: 0,
            remaining: if points.is_empty() { 0 } else { live },
            seen: Seen::new(nodes.len()),
        }
    }
}

impl<'a> Iterator for Candidates<'a> {
    type Item = &'a Node;

    fn next(&mut self) -> Option<&'a Node> {
        while self.remaining > 0 && self.visited < self.points.len() {
            let node = self.points[self.cursor] as usize;
            self.visited += 1;
            self.cursor += 1;
            if self.cursor == self.points.len() {
                self.cursor = 0;
            }
            if self.seen.insert(node) {
                self.remaining -= 1;
                return Some(&self.nodes[node]);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Candidates<'_> {}

impl std::iter::FusedIterator for Candidates<'_> {}

/// A set of node indexes, as a bitmap.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    Inline([u64; INLINE_NODES / 64]),
    Heap(Vec<u64>),
}

impl Seen {
    pub(crate) fn new(nodes: usize) -> Self {
        if nodes <= INLINE_NODES {
            Seen::Inline([0; INLINE_NODES / 64])
        } else {
            Seen::Heap(vec![0; nodes.div_ceil(64)])
        }
    }

    /// Marks `index`; true if it was not marked before.
    pub(crate) fn insert(&mut self, index: usize) -> bool {
        let words: &mut [u64] = match self {
            Seen::Inline(words) => words,
            Seen::Heap(words) => words,
        };
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        let fresh = words[word] & bit == 0;
        words[word] |= bit;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use crate::{HashRing, NodeId};

    #[test]
    fn yields_every_live_node_once_on_large_rings() {
        let mut ring = HashRing::with_hasher(crate::Xxh3, 4).unwrap();
        for i in 0..1300 {
            ring.add(NodeId::new(format!("n{i}")).unwrap(), u32::from(i % 7 != 0))
                .unwrap();
        }
        let live = ring.nodes().iter().filter(|n| n.weight() > 0).count();
        let got: Vec<_> = ring.candidates(b"key").map(|n| n.id().clone()).collect();
        assert_eq!(got.len(), live);
        let mut distinct = got.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), live);
        assert_eq!(Some(&got[0]), ring.lookup(b"key"));
    }

    #[test]
    fn empty_ring_has_no_candidates() {
        let ring = HashRing::new();
        assert_eq!(ring.candidates(b"k").len(), 0);
        assert_eq!(ring.candidates(b"k").next(), None);
    }
}
