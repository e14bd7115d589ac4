//! `flags-suite`: the workspace's root package. It has no code of its own;
//! it hosts the benchmarks in `benches/` and the cross-crate tests in `tests/`.
