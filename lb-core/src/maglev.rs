//! Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//! Balancer", NSDI 2016, section 3.4): a lookup table of prime size `M` filled from
//! each node's permutation of the slots, so a lookup is one hash and one array read.

use crate::candidates::Candidates;
use crate::hash::{HashFunction, Xxh3};
use crate::node::{member_rank, members_heap_bytes, new_member_rank, sorted_members};
use crate::{Balancer, Error, Node, NodeId, fingerprint};

/// Table size when none is given: 65,537 (prime), as the paper's smaller size.
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;

/// Largest table accepted: 2²⁴ slots (64 MiB).
pub const MAX_TABLE_SIZE: u32 = 1 << 24;

/// Marks an empty table.
const NO_NODE: u32 = u32::MAX;

/// A Maglev lookup table over weighted nodes.
///
/// ```
/// use lb_core::{Maglev, NodeId};
///
/// # fn main() -> Result<(), lb_core::Error> {
/// let nodes = ["a", "b", "c"].map(|n| NodeId::new(n).map(|id| (id, 1)));
/// let table = Maglev::from_nodes(lb_core::Xxh3, 65_537, nodes.into_iter().collect::<Result<Vec<_>, _>>()?)?;
/// // Near-perfect balance: every node owns a third of the slots, give or take one.
/// for count in table.slot_counts() {
///     assert!(count.abs_diff(65_537 / 3) <= 1);
/// }
/// let owner = table.lookup(b"user-42").expect("nodes have weight");
/// assert_eq!(table.candidates(b"user-42").next().map(|n| n.id()), Some(owner));
/// # Ok(())
/// # }
/// ```
///
/// # Construction
/// Node `n`'s permutation is `offset + j × skip (mod M)` with
/// `offset = p₀ mod M` and `skip = p₁ mod (M − 1) + 1`, where `p₀`, `p₁` are the
/// positions of points 0 and 1 of `n` under the table's [`HashFunction::points`] (for
/// the default, `hash("{n}-0")` and `hash("{n}-1")`). Nodes take turns in id order,
/// each claiming its next preferred free slot; weights set how often a node takes a
/// turn (a node earns its weight in credit each round and takes one slot per
/// `max weight` of credit), so slot shares follow weights. Node order is by id, so the
/// table never depends on the order nodes were added.
///
/// # Cost
/// Lookup `O(1)`: `table[hash(key) mod M]`, no allocation. Memory: 4 bytes per slot
/// (256 KiB for the default 65,537). Build `O(M log M)` expected; every change
/// rebuilds the table (Maglev's tables are not incremental), which moves slightly more
/// keys than the ideal `1/N` — the paper's trade for perfect balance.
///
/// # Failover
/// [`Maglev::candidates`] walks the table from the key's slot and yields each node the
/// first time it appears; a key whose owner is Down goes to the next distinct node
/// there, and no other key moves.
#[derive(Debug, Clone)]
pub struct Maglev<H = Xxh3> {
    hasher: H,
    size: u32,
    nodes: Vec<Node>,
    /// Node index per slot; empty when no node has weight > 0.
    table: Vec<u32>,
    live: usize,
    total_weight: u64,
}

impl Maglev<Xxh3> {
    /// An empty table of [`DEFAULT_TABLE_SIZE`] slots hashed with [`Xxh3`].
    pub fn new() -> Self {
        Self {
            hasher: Xxh3,
            size: DEFAULT_TABLE_SIZE,
            nodes: Vec::new(),
            table: Vec::new(),
            live: 0,
            total_weight: 0,
        }
    }
}

impl Default for Maglev<Xxh3> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: HashFunction> Maglev<H> {
    /// An empty table of `size` slots.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when `size` is not a prime in `3 ..= MAX_TABLE_SIZE`.
    pub fn with_hasher(hasher: H, size: u32) -> Result<Self, Error> {
        if !(3..=MAX_TABLE_SIZE).contains(&size) || !is_prime(size) {
            return Err(Error::InvalidSetting {
                name: "table_size",
                reason: "must be a prime between 3 and 16777216",
            });
        }
        Ok(Self {
            hasher,
            size,
            nodes: Vec::new(),
            table: Vec::new(),
            live: 0,
            total_weight: 0,
        })
    }

    /// A table holding `nodes` (id, weight), built once.
    ///
    /// # Errors
    /// As [`with_hasher`](Self::with_hasher); [`Error::DuplicateNode`]; and
    /// [`Error::InvalidSetting`] when more nodes have weight > 0 than the table has slots.
    pub fn from_nodes(
        hasher: H,
        size: u32,
        nodes: impl IntoIterator<Item = (NodeId, u32)>,
    ) -> Result<Self, Error> {
        let mut maglev = Self::with_hasher(hasher, size)?;
        let list = sorted_members(nodes)?;
        maglev.nodes = list;
        maglev.rebuild()?;
        Ok(maglev)
    }

    /// Adds a node and rebuilds the table (`O(M log M)`).
    ///
    /// # Errors
    /// [`Error::DuplicateNode`]; [`Error::InvalidSetting`] if live nodes would outnumber
    /// slots. Unchanged on error.
    pub fn add(&mut self, id: NodeId, weight: u32) -> Result<(), Error> {
        let rank = new_member_rank(&self.nodes, &id)?;
        self.nodes.insert(rank, Node::new(id, weight));
        if let Err(e) = self.rebuild() {
            self.nodes.remove(rank);
            self.rebuild()?;
            return Err(e);
        }
        Ok(())
    }

    /// Removes a node and rebuilds the table.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn remove(&mut self, id: &str) -> Result<Node, Error> {
        let rank = member_rank(&self.nodes, id)?;
        let node = self.nodes.remove(rank);
        self.rebuild()?;
        Ok(node)
    }

    /// Changes a node's weight (0 drains it), rebuilds, and returns the old weight.
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; [`Error::InvalidSetting`] as for [`add`](Self::add).
    pub fn set_weight(&mut self, id: &str, weight: u32) -> Result<u32, Error> {
        let rank = member_rank(&self.nodes, id)?;
        let old = self.nodes[rank].weight();
        self.nodes[rank].set_weight(weight);
        if let Err(e) = self.rebuild() {
            self.nodes[rank].set_weight(old);
            self.rebuild()?;
            return Err(e);
        }
        Ok(old)
    }

    /// The node that owns `key`: `table[hash(key) mod M]`. `O(1)`, no allocation.
    #[inline]
    pub fn lookup(&self, key: &[u8]) -> Option<&NodeId> {
        let owner = *self.table.get(self.slot(key))?;
        Some(self.nodes[owner as usize].id())
    }

    /// The index in [`nodes`](Self::nodes) of the node that owns `key`, as
    /// [`lookup`](Self::lookup). Valid until the next change.
    #[inline]
    pub fn lookup_index(&self, key: &[u8]) -> Option<usize> {
        self.table.get(self.slot(key)).map(|&owner| owner as usize)
    }

    /// The distinct live nodes for `key`: the owner, then each node in table order
    /// from the key's slot.
    pub fn candidates(&self, key: &[u8]) -> Candidates<'_> {
        let start = if self.table.is_empty() {
            0
        } else {
            self.slot(key)
        };
        Candidates::new(&self.nodes, &self.table, start, self.live)
    }

    /// The first candidate `accept` takes; see [`candidates`](Self::candidates).
    pub fn lookup_with(&self, key: &[u8], accept: impl FnMut(&NodeId) -> bool) -> Option<&NodeId> {
        <Self as Balancer>::lookup_with(self, key, accept)
    }

    /// All nodes, drained ones included, sorted by id.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Sum of all weights.
    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }

    /// The table size `M` (prime).
    pub fn table_size(&self) -> u32 {
        self.size
    }

    /// Slots owned by each node, in [`nodes`](Self::nodes) order.
    pub fn slot_counts(&self) -> Vec<u32> {
        let mut counts = vec![0; self.nodes.len()];
        for &owner in &self.table {
            counts[owner as usize] += 1;
        }
        counts
    }

    /// The fraction of slots each node owns, in [`nodes`](Self::nodes) order: the
    /// exact share of uniformly random keys it receives.
    pub fn shares(&self) -> Vec<f64> {
        let total = self.table.len().max(1) as f64;
        self.slot_counts()
            .into_iter()
            .map(|c| f64::from(c) / total)
            .collect()
    }

    /// A fingerprint of this table's mapping, as [`HashRing::fingerprint`](crate::HashRing::fingerprint):
    /// equal for two tables that map every key alike (the algorithm, the
    /// [`table_size`](Self::table_size), the hash function, every node's id and weight).
    pub fn fingerprint(&self) -> u64 {
        fingerprint::of("maglev", self.size, &self.hasher, &self.nodes)
    }

    /// Bytes of heap memory held (table and node list).
    pub fn heap_bytes(&self) -> usize {
        self.table.capacity() * 4 + members_heap_bytes(&self.nodes)
    }

    #[inline]
    fn slot(&self, key: &[u8]) -> usize {
        (self.hasher.hash(key) % u64::from(self.size)) as usize
    }

    /// Refills the table from `self.nodes`.
    fn rebuild(&mut self) -> Result<(), Error> {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].weight() > 0)
            .collect();
        self.live = live.len();
        self.total_weight = self.nodes.iter().map(|n| u64::from(n.weight())).sum();
        if live.len() > self.size as usize {
            return Err(Error::InvalidSetting {
                name: "table_size",
                reason: "more nodes of weight > 0 than table slots",
            });
        }
        let m = u64::from(self.size);
        let mut buf = Vec::with_capacity(2);
        let perms: Vec<(u64, u64)> = live
            .iter()
            .map(|&i| {
                buf.clear();
                self.hasher.points(self.nodes[i].id().as_str(), 2, &mut buf);
                (buf[0] % m, buf[1] % (m - 1) + 1)
            })
            .collect();
        let max_weight = live
            .iter()
            .map(|&i| u64::from(self.nodes[i].weight()))
            .max()
            .unwrap_or(1);
        let mut table = vec![
            NO_NODE;
            if live.is_empty() {
                0
            } else {
                self.size as usize
            }
        ];
        let mut next = vec![0u64; live.len()];
        let mut credit = vec![0u64; live.len()];
        let mut filled = 0usize;
        'fill: while filled < table.len() {
            for (k, &i) in live.iter().enumerate() {
                credit[k] += u64::from(self.nodes[i].weight());
                while credit[k] >= max_weight {
                    credit[k] -= max_weight;
                    let (offset, skip) = perms[k];
                    let mut slot = ((offset + next[k] * skip) % m) as usize;
                    while table[slot] != NO_NODE {
                        next[k] += 1;
                        slot = ((offset + next[k] * skip) % m) as usize;
                    }
                    table[slot] = i as u32;
                    next[k] += 1;
                    filled += 1;
                    if filled == table.len() {
                        break 'fill;
                    }
                }
            }
        }
        self.table = table;
        // A node whose weight is tiny next to the largest may get no slot in a small
        // table; count only nodes that own slots, so candidates stay exact.
        self.live = self.slot_counts().iter().filter(|&&c| c > 0).count();
        Ok(())
    }
}

/// Trial division; sizes are at most 2²⁴.
fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn slots_follow_weights_and_order_does_not_matter() {
        let nodes = [("a", 1), ("b", 2), ("c", 1), ("d", 0)];
        let table =
            Maglev::from_nodes(Xxh3, 65_537, nodes.iter().map(|(n, w)| (id(n), *w))).unwrap();
        let counts = table.slot_counts();
        assert_eq!(counts.iter().sum::<u32>(), 65_537);
        assert_eq!(counts[3], 0);
        let ratio = f64::from(counts[1]) / f64::from(counts[0]);
        assert!((1.95..2.05).contains(&ratio), "{counts:?}");
        let mut incremental = Maglev::new();
        for (n, w) in nodes.iter().rev() {
            incremental.add(id(n), *w).unwrap();
        }
        assert_eq!(incremental.table, table.table);
    }

    #[test]
    fn sizes_must_be_prime_and_fit_the_nodes() {
        assert!(Maglev::with_hasher(Xxh3, 65_536).is_err());
        assert!(Maglev::with_hasher(Xxh3, 1).is_err());
        let mut small = Maglev::with_hasher(Xxh3, 3).unwrap();
        for n in ["a", "b", "c"] {
            small.add(id(n), 1).unwrap();
        }
        assert!(small.add(id("d"), 1).is_err());
        assert_eq!(small.nodes().len(), 3);
        assert!(small.lookup(b"k").is_some());
    }

    #[test]
    fn empty_and_drained_tables_have_no_owner() {
        let mut table = Maglev::new();
        assert_eq!(table.lookup(b"k"), None);
        table.add(id("a"), 0).unwrap();
        assert_eq!(table.lookup(b"k"), None);
        assert_eq!(table.candidates(b"k").count(), 0);
    }
}
