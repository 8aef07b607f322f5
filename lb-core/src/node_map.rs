//! [`NodeMap`]: a balancer that also holds one value per node, so a lookup hands back
//! the embedder's own upstream (an address, a connection pool) and no side map is kept.

use crate::{Error, HashRing, Membership, Node, NodeId};

/// A [`HashRing`] (or [`Maglev`](crate::Maglev), or any [`Membership`]) plus a value of
/// type `T` for each node, kept in step: adding a node takes its value, removing it
/// gives the value back, and [`get`](Self::get) and [`candidates`](Self::candidates)
/// return `(node, value)`.
///
/// ```
/// use std::net::SocketAddr;
/// use lb_core::{HashRing, NodeId, NodeMap};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut upstreams: NodeMap<SocketAddr> = NodeMap::new(HashRing::new())?;
/// upstreams.insert(NodeId::new("api1")?, 1, "10.0.0.1:8080".parse()?)?;
/// upstreams.insert(NodeId::new("api2")?, 2, "10.0.0.2:8080".parse()?)?;
///
/// let (node, addr) = upstreams.get(b"user-42").expect("two nodes");
/// assert_eq!(upstreams.value(node.id().as_str()), Some(addr));
/// // Failover order, each with its address: the owner first.
/// let order: Vec<&SocketAddr> = upstreams.candidates(b"user-42").map(|(_, a)| a).collect();
/// assert_eq!(order.len(), 2);
/// assert_eq!(order[0], addr);
/// # Ok(())
/// # }
/// ```
///
/// # Cost
/// [`get`](Self::get) is the table's lookup plus one index: `O(1)`, no allocation.
/// Each step of [`candidates`](Self::candidates) adds a binary search over the node ids
/// (`O(log N)`). Changes cost what the table's do, plus `O(N)` to shift values.
#[derive(Debug, Clone)]
pub struct NodeMap<T, B = HashRing> {
    table: B,
    /// One value per node, in `table.nodes()` order (sorted by id).
    values: Vec<T>,
}

impl<T, B: Membership> NodeMap<T, B> {
    /// A map over `table`, which must have no node yet (its values would be missing).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when `table` already has nodes.
    pub fn new(table: B) -> Result<Self, Error> {
        if !table.nodes().is_empty() {
            return Err(Error::InvalidSetting {
                name: "table",
                reason: "must be empty: add nodes through NodeMap::insert",
            });
        }
        Ok(Self {
            table,
            values: Vec::new(),
        })
    }

    /// Adds node `id` of `weight` with its `value`.
    ///
    /// # Errors
    /// As the table's `add` ([`Error::DuplicateNode`], a refused weight); nothing
    /// changes then.
    pub fn insert(&mut self, id: NodeId, weight: u32, value: T) -> Result<(), Error> {
        let at = match self.index_of(id.as_str()) {
            Ok(_) => return Err(Error::DuplicateNode(id.to_string())),
            Err(at) => at,
        };
        self.table.add(id, weight)?;
        self.values.insert(at, value);
        Ok(())
    }

    /// Removes node `id`; returns it and its value.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    pub fn remove(&mut self, id: &str) -> Result<(Node, T), Error> {
        let at = self
            .index_of(id)
            .map_err(|_| Error::UnknownNode(id.to_string()))?;
        let node = self.table.remove(id)?;
        Ok((node, self.values.remove(at)))
    }

    /// Sets node `id`'s weight (0 drains it: it keeps its value and owns no key);
    /// returns the old weight.
    ///
    /// # Errors
    /// As the table's `set_weight`.
    pub fn set_weight(&mut self, id: &str, weight: u32) -> Result<u32, Error> {
        self.table.set_weight(id, weight)
    }

    /// The node that owns `key`, with its value; `None` when no node has weight > 0.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<(&Node, &T)> {
        let at = self.table.lookup_index(key)?;
        Some((self.table.nodes().get(at)?, self.values.get(at)?))
    }

    /// The key's distinct nodes of weight > 0 with their values, owner first, in
    /// failover order (see [`Balancer::candidates`](crate::Balancer::candidates)).
    pub fn candidates<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = (&'a Node, &'a T)> + 'a {
        self.table.candidates(key).filter_map(move |node| {
            let at = self.index_of(node.id().as_str()).ok()?;
            Some((node, self.values.get(at)?))
        })
    }

    /// Node `id`'s value.
    pub fn value(&self, id: &str) -> Option<&T> {
        self.index_of(id).ok().and_then(|at| self.values.get(at))
    }

    /// Node `id`'s value, to change it (a new address, a pool's settings).
    pub fn value_mut(&mut self, id: &str) -> Option<&mut T> {
        self.index_of(id)
            .ok()
            .and_then(|at| self.values.get_mut(at))
    }

    /// Every node with its value, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = (&Node, &T)> {
        self.table.nodes().iter().zip(&self.values)
    }

    /// The table, for what the map does not wrap (shares, fingerprint, heap bytes).
    pub fn table(&self) -> &B {
        &self.table
    }

    /// `Ok(index)` of node `id` in `nodes()` order, or `Err(where it would go)`.
    fn index_of(&self, id: &str) -> Result<usize, usize> {
        self.table
            .nodes()
            .binary_search_by(|node| node.id().as_str().cmp(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Maglev;

    fn id(name: &str) -> NodeId {
        NodeId::new(name).unwrap()
    }

    #[test]
    fn values_follow_their_nodes_through_adds_and_removes() {
        let mut map: NodeMap<String, Maglev> = NodeMap::new(Maglev::new()).unwrap();
        for name in ["c", "a", "b"] {
            map.insert(id(name), 1, format!("value of {name}")).unwrap();
        }
        for i in 0..500 {
            let key = format!("k{i}");
            let (node, value) = map.get(key.as_bytes()).unwrap();
            assert_eq!(*value, format!("value of {}", node.id()));
            assert_eq!(Some(node.id()), map.table().lookup(key.as_bytes()));
            for (node, value) in map.candidates(key.as_bytes()) {
                assert_eq!(*value, format!("value of {}", node.id()));
            }
        }
        assert!(matches!(
            map.insert(id("a"), 1, String::new()),
            Err(Error::DuplicateNode(_))
        ));
        let (node, value) = map.remove("a").unwrap();
        assert_eq!((node.id().as_str(), value.as_str()), ("a", "value of a"));
        assert!(map.remove("a").is_err());
        map.set_weight("b", 0).unwrap();
        for i in 0..100 {
            let (node, value) = map.get(format!("k{i}").as_bytes()).unwrap();
            assert_eq!((node.id().as_str(), value.as_str()), ("c", "value of c"));
        }
        *map.value_mut("b").unwrap() = "new".into();
        assert_eq!(map.value("b").map(String::as_str), Some("new"));
        assert_eq!(map.iter().count(), 2);
        let mut full = HashRing::new();
        full.add(id("x"), 1).unwrap();
        assert!(NodeMap::<(), _>::new(full).is_err());
    }
}
