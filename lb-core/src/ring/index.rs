//! [`PointIndex`]: a direct-mapped index over the sorted points, so a lookup costs
//! one bucket read and a scan of about one point instead of a binary search.
//!
//! The hash space `0 .. 2^bits` is cut into `2^k` equal buckets, `k = ⌈log₂ P⌉` for
//! `P` points (at most 2²²). `starts[b]` is the index of the first point whose hash is
//! in bucket `b` or later, so the first point ≥ `h` lies in
//! `starts[bucket(h)] ..= starts[bucket(h) + 1]`. Memory: 4 bytes per bucket, i.e. 4–8
//! bytes per point. Build: `O(P + 2^k)`.

/// Largest index: 2²² buckets (16 MiB).
const MAX_INDEX_BITS: u32 = 22;

/// Bucket starts over a sorted list of point hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PointIndex {
    shift: u32,
    starts: Vec<u32>,
}

impl PointIndex {
    /// Indexes `hashes` (sorted ascending, each below `2^hash_bits`).
    pub(crate) fn build(hashes: &[u64], hash_bits: u32) -> Self {
        let wanted = usize::BITS - hashes.len().max(2).saturating_sub(1).leading_zeros();
        let k = wanted.clamp(1, MAX_INDEX_BITS.min(hash_bits));
        let shift = hash_bits - k;
        let buckets = 1usize << k;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut i = 0usize;
        for bucket in 0..buckets as u64 {
            while i < hashes.len() && (hashes[i] >> shift) < bucket {
                i += 1;
            }
            starts.push(i as u32);
        }
        starts.push(hashes.len() as u32);
        Self { shift, starts }
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
}
