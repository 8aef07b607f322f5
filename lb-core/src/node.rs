//! Node identity ([`NodeId`]) and the per-node settings a ring keeps ([`Node`]).

use std::borrow::Borrow;
use std::fmt;

use crate::Error;

/// The name of a node: a hostname such as `server1`, or any other stable label
/// (`10.0.0.7:8080`, `unix:/run/app.sock`).
///
/// The id is what a ring hashes to place the node's points, so a node keeps its keys
/// for as long as it keeps its id, whatever its address. Valid ids are 1 to
/// [`NodeId::MAX_LEN`] bytes of UTF-8 with no whitespace and no control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// The longest id accepted, in bytes (the DNS name limit).
    pub const MAX_LEN: usize = 253;

    /// Checks `id` and wraps it.
    ///
    /// # Errors
    /// [`Error::InvalidNodeId`] when `id` is empty, longer than [`Self::MAX_LEN`] bytes,
    /// or holds whitespace or a control character.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > Self::MAX_LEN {
            Some("it is longer than 253 bytes")
        } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("it holds whitespace or a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidNodeId { id, reason }),
            None => Ok(Self(id)),
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for NodeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for NodeId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

/// A node on a ring: its id and its weight.
///
/// A node of weight `w` owns `w × points_per_weight` points. Weight 0 means *drained*:
/// the node stays a member but owns no point, so no key maps to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    id: NodeId,
    weight: u32,
}

impl Node {
    /// A node with the given id and weight.
    pub fn new(id: NodeId, weight: u32) -> Self {
        Self { id, weight }
    }

    /// The node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The node's weight (0 = drained).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    pub(crate) fn set_weight(&mut self, weight: u32) {
        self.weight = weight;
    }
}
