//! `Streams`: the gRPC interop streaming cases as a `#[service]` trait, with an implementation
//! that reports what its streams do (items produced, streams dropped), observable through the
//! service itself so a server in a child process is observed like one in the test's own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::stream::StreamExt;
use rpc_runtime::{service, Streaming};
use tokio::sync::{mpsc, Notify};

use crate::panics;

/// Streaming methods of every kind.
#[service]
pub trait Streams {
    /// Client stream (interop `client_streaming`): the total size of the payloads.
    async fn streaming_input_call(&self, payloads: Streaming<Vec<u8>>) -> u64;
    /// Server stream (interop `server_streaming`): one payload of each size, in order.
    async fn streaming_output_call(&self, sizes: Vec<u32>) -> Streaming<Vec<u8>>;
    /// Bidirectional (interop `ping_pong`, `empty_stream`, `cancel_after_first_response`): a
    /// payload of each requested size, as each request arrives; reports `tag` to
    /// `next_dropped` when the stream ends or is dropped.
    async fn full_duplex_call(&self, tag: u64, sizes: Streaming<u32>) -> Streaming<Vec<u8>>;
    /// Counts from 0 to `n - 1`, counting each item produced under `tag`.
    async fn count(&self, tag: u64, n: u64) -> Streaming<u64>;
    /// Waits until at least `at_least` items were produced under `tag`, and returns how many.
    async fn produced(&self, tag: u64, at_least: u64) -> u64;
    /// Never sends an item (interop `timeout_on_sleeping_server`).
    async fn sleepy(&self) -> Streaming<u64>;
    /// Sends `0..n`, then panics.
    async fn boom_after(&self, n: u32) -> Streaming<u32>;
    /// Waits for the next `full_duplex_call` stream to be dropped and returns its tag.
    async fn next_dropped(&self) -> u64;
    /// Never reads its items and never returns: a client stream that holds its window.
    async fn hold(&self, items: Streaming<u32>) -> u64;
    /// Sends 0, then ends its stream cleanly when the server's shutdown begins.
    async fn until_shutdown(&self) -> Streaming<u64>;
}

/// The implementation of [`Streams`].
#[derive(Debug, Clone)]
pub struct StreamsImpl {
    produced: Arc<Mutex<HashMap<u64, u64>>>,
    more: Arc<Notify>,
    dropped: mpsc::UnboundedSender<u64>,
    dropped_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<u64>>>,
}

impl Default for StreamsImpl {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamsImpl {
    /// A new implementation with nothing produced yet.
    pub fn new() -> StreamsImpl {
        let (dropped, rx) = mpsc::unbounded_channel();
        StreamsImpl {
            produced: Arc::default(),
            more: Arc::default(),
            dropped,
            dropped_rx: Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }
}

/// Reports its tag when dropped.
struct DropReport(u64, mpsc::UnboundedSender<u64>);

impl Drop for DropReport {
    fn drop(&mut self) {
        let _ = self.1.send(self.0);
    }
}

impl Streams for StreamsImpl {
    async fn streaming_input_call(&self, payloads: Streaming<Vec<u8>>) -> u64 {
        payloads.fold(0u64, |n, p| async move { n + p.map_or(0, |p| p.len() as u64) }).await
    }

    async fn streaming_output_call(&self, sizes: Vec<u32>) -> Streaming<Vec<u8>> {
        Streaming::iter(sizes.into_iter().map(|n| vec![0xa5; n as usize]))
    }

    async fn full_duplex_call(&self, tag: u64, sizes: Streaming<u32>) -> Streaming<Vec<u8>> {
        let report = DropReport(tag, self.dropped.clone());
        Streaming::from_results(sizes.map(move |size| {
            let _report = &report;
            size.map(|n| vec![0x5a; n as usize])
        }))
    }

    async fn count(&self, tag: u64, n: u64) -> Streaming<u64> {
        let (produced, more) = (Arc::clone(&self.produced), Arc::clone(&self.more));
        Streaming::new(futures::stream::iter(0..n).map(move |i| {
            *produced.lock().expect("lock").entry(tag).or_default() += 1;
            more.notify_waiters();
            i
        }))
    }

    async fn produced(&self, tag: u64, at_least: u64) -> u64 {
        loop {
            let more = self.more.notified();
            let n = self.produced.lock().expect("lock").get(&tag).copied().unwrap_or(0);
            if n >= at_least {
                return n;
            }
            more.await;
        }
    }

    async fn sleepy(&self) -> Streaming<u64> {
        Streaming::new(futures::stream::pending())
    }

    async fn boom_after(&self, n: u32) -> Streaming<u32> {
        Streaming::new(futures::stream::iter(0..=n).map(move |i| {
            if i == n {
                panics::deliberate("boom mid-stream");
            }
            i
        }))
    }

    async fn next_dropped(&self) -> u64 {
        self.dropped_rx.lock().await.recv().await.expect("the sender lives in self")
    }

    async fn until_shutdown(&self) -> Streaming<u64> {
        let ctx = rpc_runtime::Context::current().expect("inside a handler");
        let shutdown = Box::pin(async move { ctx.shutdown_started().await });
        Streaming::new(futures::stream::iter([0]).chain(futures::stream::pending()).take_until(shutdown))
    }

    async fn hold(&self, items: Streaming<u32>) -> u64 {
        let _items = items;
        std::future::pending().await
    }
}
