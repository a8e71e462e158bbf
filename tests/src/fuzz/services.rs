//! The services the server and client targets run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpc_runtime::service;

use crate::probe::{Choice, RecordV1, Tree};

/// The service the server target runs: like `Probe`, minus the method that panics on purpose
/// (libFuzzer aborts on any panic, even one the runtime catches).
#[service]
pub trait Fuzzed {
    /// Returns its argument.
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    /// Adds.
    async fn add(&self, a: u64, b: u64) -> u64;
    /// Sleeps `ms` of (paused) Tokio time.
    async fn sleep(&self, ms: u64) -> u64;
    /// The depth of a recursive value.
    async fn depth(&self, tree: Tree) -> u64;
    /// A variant.
    async fn pick(&self, choice: Choice) -> u8;
    /// A map's length.
    async fn hash_map(&self, m: HashMap<u64, String>) -> u64;
    /// A record's id.
    async fn record(&self, r: RecordV1) -> u32;
    /// `len` bytes back (capped by the frame limit: an oversized response is an error frame).
    async fn blob(&self, len: u16) -> Vec<u8>;
    /// Nothing back.
    #[oneway]
    async fn note(&self, n: u64);
}

/// The implementation of [`Fuzzed`].
#[derive(Debug, Clone, Copy)]
pub struct FuzzedImpl;

impl Fuzzed for FuzzedImpl {
    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    async fn add(&self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b)
    }
    async fn sleep(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms.min(3_600_000))).await;
        ms
    }
    async fn depth(&self, tree: Tree) -> u64 {
        tree.depth()
    }
    async fn pick(&self, choice: Choice) -> u8 {
        matches!(choice, Choice::A) as u8
    }
    async fn hash_map(&self, m: HashMap<u64, String>) -> u64 {
        m.len() as u64
    }
    async fn record(&self, r: RecordV1) -> u32 {
        r.id
    }
    async fn blob(&self, len: u16) -> Vec<u8> {
        vec![1; usize::from(len)]
    }
    async fn note(&self, _n: u64) {}
}

/// The second service of the router target, under a dotted wire name.
#[service(name = "admin.Stats")]
pub trait Stats {
    /// How many calls `reset` and `bump` have seen.
    async fn calls(&self) -> u64;
    /// Returns its argument.
    async fn reset(&self, n: u32) -> u32;
    /// Counts a call, answers nothing.
    #[oneway]
    async fn bump(&self);
}

/// The implementation of [`Stats`].
#[derive(Debug, Default)]
pub struct StatsImpl {
    calls: AtomicU64,
}

impl Stats for StatsImpl {
    async fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
    async fn reset(&self, n: u32) -> u32 {
        self.calls.fetch_add(1, Ordering::Relaxed);
        n
    }
    async fn bump(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}
