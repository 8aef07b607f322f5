//! [`PointIndex`]: a direct-mapped index over the sorted points, so a lookup costs
//! one bucket read and a scan of about one point instead of a binary search.
//!
//! The hash space `0 .. 2^bits` is cut into `2^k` equal buckets, `k = ⌈log₂ P⌉` for
//! `P` points (at most 2²²). `starts[b]` is the index of the first point whose hash is
//! in bucket `b` or later, so the first point ≥ `h` lies in
//! `starts[bucket(h)] ..= starts[bucket(h) + 1]`. Memory: 4 bytes per bucket, i.e. 4–8
//! bytes per point.
//!
//! The same buckets sort the points when a ring is built ([`PointIndex::sort`]): a
//! counting pass, a scatter, then a sort of each bucket (about one point each for a
//! good hash), `O(P + 2^k)` in all.

/// Largest index: 2²² buckets (16 MiB).
const MAX_INDEX_BITS: u32 = 22;

/// Buckets larger than this are sorted with `sort_unstable` instead of insertion.
const INSERTION_LIMIT: usize = 24;

/// Bucket starts over a sorted list of point hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PointIndex {
    shift: u32,
    starts: Vec<u32>,
}

/// `(k, shift)` for `points` points of `hash_bits`-bit hashes.
fn geometry(points: usize, hash_bits: u32) -> (u32, u32) {
    let wanted = usize::BITS - points.max(2).saturating_sub(1).leading_zeros();
    let k = wanted.clamp(1, MAX_INDEX_BITS.min(hash_bits));
    (k, hash_bits - k)
}

impl PointIndex {
    /// Indexes `hashes` (sorted ascending, each below `2^hash_bits`).
    pub(crate) fn build(hashes: &[u64], hash_bits: u32) -> Self {
        let (k, shift) = geometry(hashes.len(), hash_bits);
        let mut starts = vec![0u32; (1usize << k) + 1];
        for &h in hashes {
            starts[(h >> shift) as usize + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        Self { shift, starts }
    }

    /// Sorts `(hash, owner)` points by `(hash, owner)` into parallel arrays and returns
    /// them with their index. Hashes must be below `2^hash_bits`.
    pub(crate) fn sort(points: &[(u64, u32)], hash_bits: u32) -> (Vec<u64>, Vec<u32>, Self) {
        let (k, shift) = geometry(points.len(), hash_bits);
        let mut starts = vec![0u32; (1usize << k) + 1];
        for &(h, _) in points {
            starts[(h >> shift) as usize + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let mut hashes = vec![0u64; points.len()];
        let mut owners = vec![0u32; points.len()];
        let mut cursor: Vec<u32> = starts[..starts.len() - 1].to_vec();
        for &(hash, owner) in points {
            let slot = &mut cursor[(hash >> shift) as usize];
            hashes[*slot as usize] = hash;
            owners[*slot as usize] = owner;
            *slot += 1;
        }
        for bucket in starts.windows(2) {
            let (lo, hi) = (bucket[0] as usize, bucket[1] as usize);
            if hi - lo > INSERTION_LIMIT {
                let mut run: Vec<(u64, u32)> = hashes[lo..hi]
                    .iter()
                    .copied()
                    .zip(owners[lo..hi].iter().copied())
                    .collect();
                run.sort_unstable();
                for (i, (h, o)) in run.into_iter().enumerate() {
                    hashes[lo + i] = h;
                    owners[lo + i] = o;
                }
            } else {
                insertion_sort(&mut hashes[lo..hi], &mut owners[lo..hi]);
            }
        }
        (hashes, owners, Self { shift, starts })
    }

    /// Index of the first hash ≥ `hash` in `hashes` (the list this index was built
    /// over), or `hashes.len()` if there is none.
    #[inline]
    pub(crate) fn first_at_or_after(&self, hashes: &[u64], hash: u64) -> usize {
        let bucket = (hash >> self.shift) as usize;
        match (self.starts.get(bucket), self.starts.get(bucket + 1)) {
            (Some(&lo), Some(&hi)) => {
                let (lo, hi) = (lo as usize, hi as usize);
                lo + hashes[lo..hi].partition_point(|&p| p < hash)
            }
            // A hash above the indexed range (only for a hash function that breaks its
            // `bits()` promise): fall back to a binary search.
            _ => hashes.partition_point(|&p| p < hash),
        }
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<u32>()
    }
}

/// Sorts the parallel runs by `(hash, owner)`.
fn insertion_sort(hashes: &mut [u64], owners: &mut [u32]) {
    for i in 1..hashes.len() {
        let mut j = i;
        while j > 0 && (hashes[j - 1], owners[j - 1]) > (hashes[j], owners[j]) {
            hashes.swap(j - 1, j);
            owners.swap(j - 1, j);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_binary_search() {
        let mut hashes: Vec<u64> = (0..5000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        hashes.push(0);
        hashes.push(u64::MAX);
        hashes.sort_unstable();
        let index = PointIndex::build(&hashes, 64);
        for probe in (0..20_000u64)
            .map(|i| i.wrapping_mul(0xD1B5_4A32_D192_ED03))
            .chain([0, 1, u64::MAX])
        {
            let want = hashes.partition_point(|&p| p < probe);
            assert_eq!(
                index.first_at_or_after(&hashes, probe),
                want,
                "probe {probe}"
            );
        }
    }

    #[test]
    fn works_for_32_bit_hashes_and_tiny_lists() {
        let hashes = vec![5u64, 5, 1 << 31, u64::from(u32::MAX)];
        let index = PointIndex::build(&hashes, 32);
        assert_eq!(index.first_at_or_after(&hashes, 0), 0);
        assert_eq!(index.first_at_or_after(&hashes, 6), 2);
        assert_eq!(index.first_at_or_after(&hashes, u64::from(u32::MAX)), 3);
        let empty = PointIndex::build(&[], 64);
        assert_eq!(empty.first_at_or_after(&[], 42), 0);
    }

    #[test]
    fn sort_orders_by_hash_then_owner_even_for_skewed_hashes() {
        // Uniform hashes, and a skewed set that piles into a few buckets.
        for points in [
            (0..10_000u32)
                .map(|i| (u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15), i % 7))
                .collect::<Vec<_>>(),
            (0..3000u32)
                .map(|i| (u64::from(i % 40), 3000 - i))
                .collect(),
        ] {
            let mut want = points.clone();
            want.sort_unstable();
            let (hashes, owners, index) = PointIndex::sort(&points, 64);
            let got: Vec<(u64, u32)> = hashes.iter().copied().zip(owners.iter().copied()).collect();
            assert_eq!(got, want);
            assert_eq!(index, PointIndex::build(&hashes, 64));
        }
    }
}
