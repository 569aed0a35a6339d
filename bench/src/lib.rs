//! # osiris-bench
//!
//! Benchmarks of Osiris in Rust: criterion benches (`cargo bench -p osiris-bench`) and the
//! helpers the comparison harness in `bench/` uses, such as the deterministic data generator.

pub mod datagen;
