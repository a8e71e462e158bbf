//! Runnable examples live in this package's `examples/`-style targets; see the README.

pub mod kv;
