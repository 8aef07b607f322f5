//! The crate's error type.

use std::fmt;

/// Why an operation on a [`HashRing`](crate::HashRing), a [`NodeId`](crate::NodeId) or a
/// [`HealthConfig`](crate::HealthConfig) was refused.
///
/// Every failing operation leaves its receiver unchanged. Messages are lowercase and
/// name the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A node id was empty, longer than [`NodeId::MAX_LEN`](crate::NodeId::MAX_LEN)
    /// bytes, or held whitespace or a control character.
    InvalidNodeId {
        /// The rejected id, as given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The node is already on the ring.
    DuplicateNode(String),
    /// The node is not on the ring.
    UnknownNode(String),
    /// `weight × points_per_weight` exceeds [`MAX_POINTS_PER_NODE`](crate::MAX_POINTS_PER_NODE).
    TooManyPoints {
        /// The node whose weight was refused.
        node: String,
        /// The number of points that weight would need.
        points: u64,
    },
    /// A setting was outside its allowed range.
    InvalidSetting {
        /// The setting's name, e.g. `"rise"`.
        name: &'static str,
        /// What the allowed range is.
        reason: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidNodeId { id, reason } => write!(f, "invalid node id {id:?}: {reason}"),
            Error::DuplicateNode(id) => write!(f, "node {id:?} is already on the ring"),
            Error::UnknownNode(id) => write!(f, "node {id:?} is not on the ring"),
            Error::TooManyPoints { node, points } => write!(
                f,
                "node {node:?} would need {points} points, more than the limit of {}",
                crate::MAX_POINTS_PER_NODE
            ),
            Error::InvalidSetting { name, reason } => write!(f, "invalid {name}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}
