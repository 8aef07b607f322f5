//! Benchmarks of `lb-core`; see `benches/` and `BENCHMARKS.md`.
