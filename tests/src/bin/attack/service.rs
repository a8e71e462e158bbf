//! The service the attacked server runs: one method per shape an attack needs.

use std::time::Duration;

use rpc_runtime::service;

/// Bytes in a `big` response: as close to the default 4 MiB frame limit as the envelope allows.
pub(crate) const BIG_LEN: usize = 4 * 1024 * 1024 - 64;

/// What the server under attack serves.
#[service]
pub(crate) trait Target {
    /// A cheap call: returns its argument.
    async fn echo(&self, v: u64) -> u64;
    /// A response of [`BIG_LEN`] bytes, freshly allocated each time.
    async fn big(&self) -> Vec<u8>;
    /// Sleeps `ms` milliseconds.
    async fn slow(&self, ms: u64);
    /// Fire-and-forget: sleeps `secs` seconds.
    #[oneway]
    async fn linger(&self, secs: u64);
    /// Takes a large argument and returns its length.
    async fn take(&self, data: Vec<u8>) -> u64;
    /// Panics.
    async fn boom(&self) -> u64;
}

/// The implementation of [`Target`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TargetImpl;

impl Target for TargetImpl {
    async fn echo(&self, v: u64) -> u64 {
        v
    }

    async fn big(&self) -> Vec<u8> {
        // Non-zero, so the pages are really touched (zeroed memory can stay unmapped).
        vec![0x5a; BIG_LEN]
    }

    async fn slow(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    async fn linger(&self, secs: u64) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }

    async fn take(&self, data: Vec<u8>) -> u64 {
        data.len() as u64
    }

    async fn boom(&self) -> u64 {
        panic!("boom: a handler panic requested by the log-flood attacker")
    }
}
