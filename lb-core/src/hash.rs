//! Hash functions that place points and keys on a ring.
//!
//! Every function maps bytes to a `u64` the same way in every process and on every
//! machine; none is seeded at random.
//!
//! | function | how the `u64` is made |
//! |---|---|
//! | [`Xxh3`] (default) | `xxh3_64(bytes)` with seed 0 (XXH3, Yann Collet) |
//! | [`Sha256`] | the first 8 bytes of the SHA-256 digest (FIPS 180-4), read big-endian |
//! | [`Md5`] | the first 8 bytes of the MD5 digest (RFC 1321), read big-endian |
//!
//! Reading the leading digest bytes big-endian means the point equals
//! `int(hashlib.sha256(b).hexdigest()[:16], 16)` in Python (and likewise for MD5), so a
//! mapping can be checked from a shell.

use md5::Digest as _;

/// A deterministic hash from bytes to a point on the ring (`u64`).
///
/// Implementations must return the same value for the same bytes in every process and
/// on every machine.
pub trait HashFunction {
    /// Hashes `bytes` to a point.
    fn hash(&self, bytes: &[u8]) -> u64;
}

/// XXH3, 64-bit, seed 0: the default, and the fastest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Xxh3;

impl HashFunction for Xxh3 {
    #[inline]
    fn hash(&self, bytes: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64(bytes)
    }
}

/// SHA-256, first 8 digest bytes big-endian (what the Python balancer used for keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sha256;

impl HashFunction for Sha256 {
    fn hash(&self, bytes: &[u8]) -> u64 {
        leading_u64(&sha2::Sha256::digest(bytes))
    }
}

/// MD5, first 8 digest bytes big-endian (what the Python balancer used for virtual nodes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Md5;

impl HashFunction for Md5 {
    fn hash(&self, bytes: &[u8]) -> u64 {
        leading_u64(&md5::Md5::digest(bytes))
    }
}

fn leading_u64(digest: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head)
}

/// One of this crate's hash functions, chosen at run time (from a config file, say).
///
/// Dispatches with a `match`, so it costs a predictable branch over the named function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// [`Xxh3`].
    #[default]
    Xxh3,
    /// [`Sha256`].
    Sha256,
    /// [`Md5`].
    Md5,
}

impl HashAlgorithm {
    /// The lowercase name used in config files: `"xxh3"`, `"sha256"` or `"md5"`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Xxh3 => "xxh3",
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Md5 => "md5",
        }
    }
}

impl std::str::FromStr for HashAlgorithm {
    type Err = crate::Error;

    /// Parses `"xxh3"`, `"sha256"` or `"md5"`.
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        match s {
            "xxh3" => Ok(HashAlgorithm::Xxh3),
            "sha256" => Ok(HashAlgorithm::Sha256),
            "md5" => Ok(HashAlgorithm::Md5),
            _ => Err(crate::Error::InvalidSetting {
                name: "hash",
                reason: "expected one of \"xxh3\", \"sha256\", \"md5\"",
            }),
        }
    }
}

impl HashFunction for HashAlgorithm {
    #[inline]
    fn hash(&self, bytes: &[u8]) -> u64 {
        match self {
            HashAlgorithm::Xxh3 => Xxh3.hash(bytes),
            HashAlgorithm::Sha256 => Sha256.hash(bytes),
            HashAlgorithm::Md5 => Md5.hash(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_read_big_endian_from_their_first_bytes() {
        // sha256("abc") = ba7816bf8f01cfea..., md5("abc") = 900150983cd24fb0...
        assert_eq!(Sha256.hash(b"abc"), 0xba78_16bf_8f01_cfea);
        assert_eq!(Md5.hash(b"abc"), 0x9001_5098_3cd2_4fb0);
        // XXH3-64 of the empty input with seed 0, from the reference implementation.
        assert_eq!(Xxh3.hash(b""), 0x2d06_8005_38d3_94c2);
    }

    #[test]
    fn names_round_trip() {
        for algo in [
            HashAlgorithm::Xxh3,
            HashAlgorithm::Sha256,
            HashAlgorithm::Md5,
        ] {
            assert_eq!(algo.name().parse::<HashAlgorithm>(), Ok(algo));
        }
        assert!("crc32".parse::<HashAlgorithm>().is_err());
    }
}
