//! Fingerprints of a mapping: one `u64` that two balancers share exactly when they map
//! every key the same way, so that many processes can check that they agree without
//! comparing their tables.

use crate::hash::HashFunction;
use crate::node::Node;

/// Bytes whose hash identifies the hash function (every function of this crate maps
/// them to a different value).
const PROBE: &[u8] = b"lb-core fingerprint probe";

/// The fingerprint of a mapping built by `algorithm` (`"ketama"`, `"maglev"`) with its
/// size `setting` (points per weight, table size) and `hasher` over `nodes` (sorted by
/// id, as the ring and Maglev hold them).
///
/// It is XXH3-64 (seed 0) of, in order: the algorithm's name and a `0` byte, `setting`,
/// the hasher's width in bits and its hash of [`PROBE`] (both little-endian), then for
/// each node its id's length (u32 LE), its id and its weight (u32 LE). Everything the
/// mapping depends on is in it, and nothing else (not the order nodes were added in).
pub(crate) fn of(algorithm: &str, setting: u32, hasher: &impl HashFunction, nodes: &[Node]) -> u64 {
    let mut bytes = Vec::with_capacity(
        64 + nodes
            .iter()
            .map(|n| 8 + n.id().as_str().len())
            .sum::<usize>(),
    );
    bytes.extend_from_slice(algorithm.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&setting.to_le_bytes());
    bytes.extend_from_slice(&hasher.bits().to_le_bytes());
    bytes.extend_from_slice(&hasher.hash(PROBE).to_le_bytes());
    for node in nodes {
        let id = node.id().as_str().as_bytes();
        // Ids are at most `NodeId::MAX_LEN` (253) bytes: the cast is exact.
        bytes.extend_from_slice(&(id.len() as u32).to_le_bytes());
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(&node.weight().to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}
