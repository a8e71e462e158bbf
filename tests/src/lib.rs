//! Shared helpers for the integration and reliability tests.
//!
//! # Organization
//!
//! - [`alloc`]: a counting global allocator, so a test can state and check a memory budget.
//! - [`probe`]: the `Probe` service every reliability test serves, with counters a test can watch
//!   (handlers running, finished, dropped unfinished).
//! - [`fixture`]: starts a `Probe` server over TCP, a Unix socket or in-memory, and connects typed
//!   clients or raw peers to it.
//! - [`wire`]: the wire protocol written out by hand (preface, frames, envelopes), independent of
//!   the runtime's encoder, for byte-level tests; and [`wire::RawPeer`], a peer speaking it.
//! - [`logs`]: captures the `tracing` events of the current thread, to check logged reasons.
//! - [`fuzz`]: the bodies of the fuzz targets in `fuzz/`, shared with the tests that replay their
//!   corpus on stable.
//!
//! Tests that measure memory or rely on paused time run on a current-thread runtime, so every
//! task of the test (client and server) runs, allocates and logs on the test's own thread.

pub mod alloc;
pub mod fixture;
pub mod fuzz;
pub mod logs;
pub mod probe;
pub mod wire;

use std::future::Future;
use std::time::Duration;

/// A hang guard: fails the test if `fut` takes longer than `secs` (virtual seconds under paused
/// time, where an idle runtime jumps straight to the guard instead of hanging).
pub async fn guard<F: Future>(secs: u64, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(out) => out,
        Err(_) => panic!("hang guard: {what} did not finish within {secs} s"),
    }
}
