//! Benchmarks of `lb-core` against its peers in the same run: `pingora-ketama` and
//! `hashring` (rings), `hrw-hash` (rendezvous), `jumpch` (jump hash) and `anchorhash`
//! (AnchorHash). The criterion bench `peers` times lookups and builds; the bench `quality`
//! prints balance and key movement. Both are described, with their figures, in
//! `BENCHMARKS.md`.
//!
//! This library holds what both share: the node sets and keys every implementation
//! is measured on.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

/// The address of node `i` of a benchmark set: `10.0.x.y:8080`.
pub fn node_addr(i: usize) -> SocketAddr {
    SocketAddr::from((
        [
            10,
            (i / 65_536) as u8,
            (i / 256 % 256) as u8,
            (i % 256) as u8,
        ],
        8080,
    ))
}

/// The id of node `i` (its address as text, so nginx-mode rings and pingora-ketama
/// hash the same strings).
pub fn node_name(i: usize) -> String {
    node_addr(i).to_string()
}

/// A virtual node for `hashring`, which has no weights or points of its own: point
/// `replica` of node `node`, hashed as the node's name and the replica number.
#[derive(Clone, Debug, PartialEq)]
pub struct VNode {
    /// The node's index in the benchmark set.
    pub node: usize,
    /// Which of the node's points.
    pub replica: u32,
}

impl Hash for VNode {
    fn hash<S: Hasher>(&self, state: &mut S) {
        node_name(self.node).hash(state);
        self.replica.hash(state);
    }
}

/// A `Hasher` that passes a `u64` through: AnchorHash and jump hash take the key
/// already hashed (with XXH3, as lb-core), so every algorithm pays the same key hash.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed through here; other input folds in, never panics.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// `count` keys of exactly `len` bytes (`len` ≥ 12): `user-` and a zero-padded number.
pub fn keys(count: usize, len: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("user-{i:0width$}", width = len.saturating_sub(5)).into_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_have_the_requested_length() {
        assert!(super::keys(10, 16).iter().all(|k| k.len() == 16));
        assert!(super::keys(10, 30).iter().all(|k| k.len() == 30));
        assert_eq!(super::node_name(257), "10.0.1.1:8080");
    }
}
