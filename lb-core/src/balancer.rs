//! [`Balancer`]: the one selection interface every algorithm implements, so callers
//! (health-aware lookup, [`BoundedLoad`](crate::BoundedLoad), replica sets) work over
//! the ring and Maglev alike.

use crate::{Candidates, Error, HashFunction, HashRing, Maglev, Node, NodeId};

/// A deterministic, no-I/O mapping from keys to nodes with a failover order.
pub trait Balancer {
    /// The iterator of [`candidates`](Self::candidates).
    type Candidates<'a>: Iterator<Item = &'a Node>
    where
        Self: 'a;

    /// The node that owns `key`; `None` when no node has weight > 0.
    fn lookup(&self, key: &[u8]) -> Option<&NodeId>;

    /// The owner's index in [`nodes`](Self::nodes); `None` when no node has weight > 0.
    fn lookup_index(&self, key: &[u8]) -> Option<usize>;

    /// Distinct nodes of weight > 0 for `key`, owner first, then the failover order.
    fn candidates(&self, key: &[u8]) -> Self::Candidates<'_>;

    /// All nodes, drained ones included, sorted by id.
    fn nodes(&self) -> &[Node];

    /// Sum of all weights.
    fn total_weight(&self) -> u64;

    /// Equal for two balancers that map every key alike (see
    /// [`HashRing::fingerprint`]).
    fn fingerprint(&self) -> u64;

    /// The first candidate `accept` takes (e.g. the first Up node). Keys whose owner is
    /// accepted never move, whatever happens to other nodes.
    fn lookup_with(&self, key: &[u8], mut accept: impl FnMut(&NodeId) -> bool) -> Option<&NodeId> {
        self.candidates(key).map(Node::id).find(|id| accept(id))
    }
}

/// `Balancer` for a type whose inherent methods of the same names do the work.
macro_rules! balancer_by_inherent_methods {
    ($table:ident) => {
        impl<H: HashFunction> Balancer for $table<H> {
            type Candidates<'a>
                = Candidates<'a>
            where
                H: 'a;

            #[inline]
            fn lookup(&self, key: &[u8]) -> Option<&NodeId> {
                $table::lookup(self, key)
            }

            #[inline]
            fn lookup_index(&self, key: &[u8]) -> Option<usize> {
                $table::lookup_index(self, key)
            }

            fn candidates(&self, key: &[u8]) -> Candidates<'_> {
                $table::candidates(self, key)
            }

            fn nodes(&self) -> &[Node] {
                $table::nodes(self)
            }

            fn total_weight(&self) -> u64 {
                $table::total_weight(self)
            }

            fn fingerprint(&self) -> u64 {
                $table::fingerprint(self)
            }
        }

        impl<H: HashFunction> Membership for $table<H> {
            fn add(&mut self, id: NodeId, weight: u32) -> Result<(), Error> {
                $table::add(self, id, weight)
            }

            fn remove(&mut self, id: &str) -> Result<Node, Error> {
                $table::remove(self, id)
            }

            fn set_weight(&mut self, id: &str, weight: u32) -> Result<u32, Error> {
                $table::set_weight(self, id, weight)
            }
        }
    };
}

/// A [`Balancer`] whose membership changes in place: what [`NodeMap`](crate::NodeMap)
/// needs. Each method is the inherent one of the same name on [`HashRing`] and
/// [`Maglev`].
pub trait Membership: Balancer {
    /// Adds a node.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`], or a weight the table refuses; unchanged then.
    fn add(&mut self, id: NodeId, weight: u32) -> Result<(), Error>;

    /// Removes a node and returns it.
    ///
    /// # Errors
    /// [`Error::UnknownNode`].
    fn remove(&mut self, id: &str) -> Result<Node, Error>;

    /// Sets a node's weight (0 drains it) and returns the old one.
    ///
    /// # Errors
    /// [`Error::UnknownNode`], or a weight the table refuses; unchanged then.
    fn set_weight(&mut self, id: &str, weight: u32) -> Result<u32, Error>;
}

balancer_by_inherent_methods!(HashRing);
balancer_by_inherent_methods!(Maglev);
