//! Consistent hashing for load balancers, with no I/O.
//!
//! `lb-core` maps request keys to nodes with a ketama ring of weighted virtual nodes,
//! gives the ordered list of distinct fallback nodes for each key, and tracks each
//! node's health with a rise/fall state machine. It opens no socket, spawns no thread
//! and reads no clock: the caller feeds it check results and the current time.
//!
//! ```
//! use std::time::Instant;
//! use lb_core::{HashRing, HealthConfig, HealthState, NodeId, Outcome, Status};
//!
//! # fn main() -> Result<(), lb_core::Error> {
//! let mut ring = HashRing::new(); // xxh3, 160 points per unit of weight
//! for name in ["server1", "server2", "server3"] {
//!     ring.add(NodeId::new(name)?, 1)?;
//! }
//! let owner = ring.lookup(b"user-42").cloned().expect("the ring has nodes");
//!
//! // The owner fails three checks in a row (HAProxy's default fall) and goes Down.
//! let now = Instant::now();
//! let mut health = HealthState::new(HealthConfig::default(), Status::Up, now);
//! for _ in 0..3 {
//!     health.observe(Outcome::Failure, now);
//! }
//! assert_eq!(health.status(), Status::Down);
//!
//! // The key fails over to the next distinct node; no other key moves.
//! let fallback = ring.lookup_with(b"user-42", |id| *id != owner);
//! assert_eq!(fallback, ring.candidates(b"user-42").nth(1).map(|n| n.id()));
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`NodeId`], [`Node`]: who is on the ring, with what weight (`node`).
//! - [`HashFunction`] with [`Xxh3`], [`Sha256`], [`Md5`], [`Nginx`], and
//!   [`HashAlgorithm`] to pick one at run time (`hash`, `nginx`).
//! - [`Balancer`]: the selection interface of every algorithm, and [`Membership`], its
//!   in-place changes (`balancer`).
//! - [`NodeMap`]: a balancer holding one value per node, so a lookup returns the
//!   embedder's upstream itself (`node_map`).
//! - [`HashRing`]: ketama points with an `O(1)` lookup index, incremental
//!   add/remove/reweight (`ring`); [`Candidates`]: its failover order (`candidates`).
//! - [`Maglev`]: Maglev lookup table, `O(1)` lookup, near-perfect balance (`maglev`).
//! - [`BoundedLoad`]: consistent hashing with bounded loads over any [`Balancer`]
//!   (`bounded`).
//! - [`HealthState`]: rise/fall hysteresis (`health`).
//! - [`Error`]: why an operation was refused (`error`).
//!
//! | algorithm | lookup | balance (max/mean, N = 100) | change of one node |
//! |---|---|---|---|
//! | [`HashRing`], 160 points | `O(1)` (index) | ≈ 1.2–1.3 | `O(P)`, moves ≈ 1/N of keys |
//! | [`HashRing`], 1000+ points | `O(1)` (index) | ≤ 1.1 | `O(P)`, moves ≈ 1/N of keys |
//! | [`Maglev`], 65,537 slots | `O(1)` | ≈ 1.01 | table rebuild, moves a little more than 1/N |
//!
//! Figures and the commands that measure them are in `BENCHMARKS.md`.
//!
//! # Determinism
//! Every hash is fixed-seed, and the ring's order does not depend on the order nodes
//! were added, so the same nodes and settings give the same mapping in every process
//! and on every machine. `tests/golden.rs` freezes that mapping.

#![deny(missing_docs)]

mod balancer;
mod bounded;
mod candidates;
mod error;
mod fingerprint;
mod hash;
mod health;
mod maglev;
#[cfg(feature = "nginx")]
mod nginx;
mod node;
mod node_map;
mod ring;

pub use balancer::{Balancer, Membership};
pub use bounded::{BoundedLoad, DEFAULT_EPSILON};
pub use candidates::Candidates;
pub use error::Error;
#[cfg(feature = "md5")]
pub use hash::Md5;
#[cfg(feature = "sha256")]
pub use hash::Sha256;
pub use hash::{HashAlgorithm, HashFunction, Xxh3};
pub use health::{HealthConfig, HealthState, Outcome, Status, Transition};
pub use maglev::{DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE, Maglev};
#[cfg(feature = "nginx")]
pub use nginx::{Nginx, split_server};
pub use node::{Node, NodeId};
pub use node_map::NodeMap;
pub use ring::{DEFAULT_POINTS_PER_WEIGHT, HashRing, MAX_POINTS_PER_NODE};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
