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
///
/// With feature `serde` it (de)serializes as a string, checked as by [`NodeId::new`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
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

impl TryFrom<String> for NodeId {
    type Error = Error;

    fn try_from(id: String) -> Result<Self, Error> {
        Self::new(id)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
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
/// the node stays a member but owns no point, so no key maps to it. With feature
/// `serde` it is `{"id": "server1", "weight": 1}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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

/// `nodes` sorted by id, as the ring and Maglev hold their members.
///
/// # Errors
/// [`Error::DuplicateNode`] naming an id given twice.
pub(crate) fn sorted_members(
    nodes: impl IntoIterator<Item = (NodeId, u32)>,
) -> Result<Vec<Node>, Error> {
    let mut list: Vec<Node> = nodes.into_iter().map(|(id, w)| Node::new(id, w)).collect();
    list.sort_by(|a, b| a.id().cmp(b.id()));
    match list.windows(2).find(|p| p[0].id() == p[1].id()) {
        Some(pair) => Err(Error::DuplicateNode(pair[0].id().to_string())),
        None => Ok(list),
    }
}

/// Heap bytes `members` holds: the list and the ids' text.
pub(crate) fn members_heap_bytes(members: &Vec<Node>) -> usize {
    members.capacity() * std::mem::size_of::<Node>()
        + members.iter().map(|n| n.id().as_str().len()).sum::<usize>()
}

/// Where `id` stands in `members` (sorted by id).
///
/// # Errors
/// [`Error::UnknownNode`] when no member has this id.
pub(crate) fn member_rank(members: &[Node], id: &str) -> Result<usize, Error> {
    members
        .binary_search_by(|n| n.id().as_str().cmp(id))
        .map_err(|_| Error::UnknownNode(id.to_string()))
}

/// Where a new member `id` goes in `members` (sorted by id).
///
/// # Errors
/// [`Error::DuplicateNode`] when a member has this id already.
pub(crate) fn new_member_rank(members: &[Node], id: &NodeId) -> Result<usize, Error> {
    match members.binary_search_by(|n| n.id().cmp(id)) {
        Ok(_) => Err(Error::DuplicateNode(id.to_string())),
        Err(rank) => Ok(rank),
    }
}
