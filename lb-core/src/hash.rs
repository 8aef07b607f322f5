//! Hash functions that place points and keys on a ring.

/// A deterministic hash from bytes to a position on the ring, and the placement of a
/// node's points.
///
/// Every function maps bytes to a `u64` the same way in every process and on every
/// machine; none is seeded at random.
///
/// | function | key → `u64` | point `j` of node `n` |
/// |---|---|---|
/// | [`Xxh3`] (default) | `xxh3_64(key)`, seed 0 (XXH3, Yann Collet) | `xxh3_64_with_seed(n, j × 0x9E3779B97F4A7C15)`: the id's UTF-8 bytes, seed `j` spread by the golden-ratio multiplier |
/// | [`Sha256`] | first 8 bytes of SHA-256(key) (FIPS 180-4), big-endian | the same of the string `"{n}-{j}"` |
/// | [`Md5`] | first 8 bytes of MD5(key) (RFC 1321), big-endian | the same of the string `"{n}-{j}"` |
/// | [`Nginx`](crate::Nginx) | CRC-32 (IEEE) of the key | nginx's chained CRC-32 (see [`Nginx`](crate::Nginx)) |
///
/// `"{n}-{j}"` is the node id's UTF-8 bytes, an ASCII `-`, then `j` in decimal ASCII
/// with no padding: point 0 of `server1` hashes the 9 bytes `server1-0`. XXH3 takes `j`
/// as its seed instead, which gives independent positions without formatting a string
/// per point (4× faster ring builds). The seed is `j` times the 64-bit golden-ratio
/// constant (Knuth's multiplicative hashing): XXH3 adds the seed to a secret and XORs
/// the input over it, so for inputs of 1–8 bytes seeds `0, 1, 2, …` would give ids that
/// differ in one low byte (`py1`, `py2`) the same few positions, shifted, and their
/// points would coincide (one of three such nodes owned 98 % of the ring).
///
/// Reading the leading digest bytes big-endian means the point equals
/// `int(hashlib.sha256(b).hexdigest()[:16], 16)` in Python (and likewise for MD5), so a
/// mapping can be checked from a shell.
///
/// Implementations must return the same values for the same input in every process
/// and on every machine.
pub trait HashFunction {
    /// Hashes a key (or any bytes) to a position in `0 .. 2^BITS`.
    fn hash(&self, bytes: &[u8]) -> u64;

    /// How many low bits of [`hash`](Self::hash) carry information: 64, or 32 for
    /// CRC-32. The ring's lookup index uses the top bits of this range.
    fn bits(&self) -> u32 {
        64
    }

    /// Appends the positions of points `0 .. count` of node `id` to `out`.
    ///
    /// The default places point `j` at `hash("{id}-{j}")`: the id's UTF-8 bytes, an
    /// ASCII `-`, and `j` in decimal ASCII. [`Nginx`](crate::Nginx) overrides it with
    /// nginx's chained CRC-32 scheme.
    fn points(&self, id: &str, count: u32, out: &mut Vec<u64>) {
        let mut label = Vec::with_capacity(id.len() + 11);
        label.extend_from_slice(id.as_bytes());
        label.push(b'-');
        let prefix = label.len();
        out.reserve(count as usize);
        for j in 0..count {
            label.truncate(prefix);
            push_decimal(&mut label, j);
            out.push(self.hash(&label));
        }
    }
}

/// Appends `n` in decimal ASCII, without allocating.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The 64-bit golden-ratio constant, `2^64 / φ`: point `j`'s XXH3 seed is `j` times it,
/// so consecutive points' seeds differ in every bit range.
const SEED_SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// XXH3, 64-bit, seed 0: the default, and the fastest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Xxh3;

impl HashFunction for Xxh3 {
    #[inline]
    fn hash(&self, bytes: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64(bytes)
    }

    /// Point `j` is `xxh3_64_with_seed(id, j × SEED_SPREAD)`.
    fn points(&self, id: &str, count: u32, out: &mut Vec<u64>) {
        out.reserve(count as usize);
        out.extend((0..u64::from(count)).map(|j| {
            xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), j.wrapping_mul(SEED_SPREAD))
        }));
    }
}

/// SHA-256, first 8 digest bytes big-endian (what the Python balancer used for keys).
/// Feature `sha256`.
#[cfg(feature = "sha256")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sha256;

#[cfg(feature = "sha256")]
impl HashFunction for Sha256 {
    fn hash(&self, bytes: &[u8]) -> u64 {
        use sha2::Digest as _;
        leading_u64(&sha2::Sha256::digest(bytes))
    }
}

/// MD5, first 8 digest bytes big-endian (what the Python balancer used for virtual nodes).
/// Feature `md5`.
#[cfg(feature = "md5")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Md5;

#[cfg(feature = "md5")]
impl HashFunction for Md5 {
    fn hash(&self, bytes: &[u8]) -> u64 {
        use md5::Digest as _;
        leading_u64(&md5::Md5::digest(bytes))
    }
}

#[cfg(any(feature = "sha256", feature = "md5"))]
fn leading_u64(digest: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head)
}

/// One of this crate's hash functions, chosen at run time (from a config file, say).
///
/// Dispatches with a `match`, so it costs a predictable branch over the named function.
/// A variant exists when its feature is on (`Xxh3` always). With feature `serde` it
/// (de)serializes as its [`name`](Self::name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum HashAlgorithm {
    /// [`Xxh3`].
    #[default]
    Xxh3,
    /// [`Sha256`] (feature `sha256`).
    #[cfg(feature = "sha256")]
    Sha256,
    /// [`Md5`] (feature `md5`).
    #[cfg(feature = "md5")]
    Md5,
    /// [`Nginx`](crate::Nginx): nginx's `hash ... consistent` placement (use 160
    /// points per unit of weight to match nginx; feature `nginx`).
    #[cfg(feature = "nginx")]
    Nginx,
}

impl HashAlgorithm {
    /// The lowercase name used in config files: `"xxh3"`, `"sha256"`, `"md5"` or `"nginx"`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Xxh3 => "xxh3",
            #[cfg(feature = "sha256")]
            HashAlgorithm::Sha256 => "sha256",
            #[cfg(feature = "md5")]
            HashAlgorithm::Md5 => "md5",
            #[cfg(feature = "nginx")]
            HashAlgorithm::Nginx => "nginx",
        }
    }
}

impl std::str::FromStr for HashAlgorithm {
    type Err = crate::Error;

    /// Parses `"xxh3"`, `"sha256"`, `"md5"` or `"nginx"`; a name whose feature is off
    /// is refused, naming the feature.
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        match s {
            "xxh3" => Ok(HashAlgorithm::Xxh3),
            #[cfg(feature = "sha256")]
            "sha256" => Ok(HashAlgorithm::Sha256),
            #[cfg(feature = "md5")]
            "md5" => Ok(HashAlgorithm::Md5),
            #[cfg(feature = "nginx")]
            "nginx" => Ok(HashAlgorithm::Nginx),
            #[cfg(not(feature = "sha256"))]
            "sha256" => Err(without_feature("lb-core was built without feature sha256")),
            #[cfg(not(feature = "md5"))]
            "md5" => Err(without_feature("lb-core was built without feature md5")),
            #[cfg(not(feature = "nginx"))]
            "nginx" => Err(without_feature("lb-core was built without feature nginx")),
            _ => Err(crate::Error::InvalidSetting {
                name: "hash",
                reason: "expected one of \"xxh3\", \"sha256\", \"md5\", \"nginx\"",
            }),
        }
    }
}

/// The refusal of a hash function whose feature is off.
#[cfg(not(all(feature = "sha256", feature = "md5", feature = "nginx")))]
fn without_feature(reason: &'static str) -> crate::Error {
    crate::Error::InvalidSetting {
        name: "hash",
        reason,
    }
}

impl HashFunction for HashAlgorithm {
    #[inline]
    fn hash(&self, bytes: &[u8]) -> u64 {
        match self {
            HashAlgorithm::Xxh3 => Xxh3.hash(bytes),
            #[cfg(feature = "sha256")]
            HashAlgorithm::Sha256 => Sha256.hash(bytes),
            #[cfg(feature = "md5")]
            HashAlgorithm::Md5 => Md5.hash(bytes),
            #[cfg(feature = "nginx")]
            HashAlgorithm::Nginx => crate::Nginx.hash(bytes),
        }
    }

    fn bits(&self) -> u32 {
        match self {
            #[cfg(feature = "nginx")]
            HashAlgorithm::Nginx => 32,
            _ => 64,
        }
    }

    fn points(&self, id: &str, count: u32, out: &mut Vec<u64>) {
        match self {
            HashAlgorithm::Xxh3 => Xxh3.points(id, count, out),
            #[cfg(feature = "sha256")]
            HashAlgorithm::Sha256 => Sha256.points(id, count, out),
            #[cfg(feature = "md5")]
            HashAlgorithm::Md5 => Md5.points(id, count, out),
            #[cfg(feature = "nginx")]
            HashAlgorithm::Nginx => crate::Nginx.points(id, count, out),
        }
    }
}

#[cfg(all(test, feature = "sha256", feature = "md5"))]
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
    fn xxh3_points_are_seeded_by_index_and_digests_use_labels() {
        let mut points = Vec::new();
        Xxh3.points("server1", 3, &mut points);
        let seeded: Vec<u64> = (0..3u64)
            .map(|j| xxhash_rust::xxh3::xxh3_64_with_seed(b"server1", j.wrapping_mul(SEED_SPREAD)))
            .collect();
        assert_eq!(points, seeded);
        points.clear();
        Md5.points("server1", 2, &mut points);
        assert_eq!(points, vec![Md5.hash(b"server1-0"), Md5.hash(b"server1-1")]);
    }

    #[test]
    fn decimal_labels_match_format() {
        for n in [0u32, 7, 10, 159, 160, 4_294_967_295] {
            let mut out = b"x-".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x-{n}").into_bytes());
        }
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
