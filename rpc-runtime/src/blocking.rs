//! Calls from code that has no async runtime (build scripts, command-line tools, tests): the
//! runtime behind every generated `{Trait}BlockingClient`.
//!
//! A [`BlockingRuntime`] is a thread running a single-threaded Tokio runtime, as reqwest's
//! blocking client has: the connection lives there, and each call blocks the calling thread
//! until its result is back. Called from inside an async runtime, where blocking would stall
//! every task on the thread, a call returns [`RpcError::BlockingInRuntime`] instead. A
//! server-streaming method's results come as a [`BlockingStream`], an iterator that blocks for
//! each item.
//!
//! ```
//! use rpc_runtime::{service, transport::tcp, Server};
//!
//! #[service]
//! trait Calculator {
//!     async fn add(&self, a: i64, b: i64) -> i64;
//! }
//! struct Calc;
//! impl Calculator for Calc {
//!     async fn add(&self, a: i64, b: i64) -> i64 { a + b }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = tokio::runtime::Runtime::new()?;
//! # let (addr, _server) = runtime.block_on(async {
//! #     let listener = tcp::bind("127.0.0.1:0").await.unwrap();
//! #     (listener.local_addr(), Server::new(CalculatorServer::new(Calc)).serve(listener))
//! # });
//! // No `#[tokio::main]`, no `.await`:
//! let client = CalculatorBlockingClient::connect(move || tcp::connect(addr))?;
//! assert_eq!(client.add(1, 2)?, 3);
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;

use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::transport::Connection;
use crate::{Client, RpcError, Streaming};

/// A background thread with a Tokio runtime that blocking clients run their connections and
/// calls on. Clones share the thread; it stops when the last clone is dropped (calls still in
/// flight then fail with [`RpcError::ConnectionClosed`]).
#[derive(Clone)]
pub struct BlockingRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    /// Dropping it ends the thread's `block_on`, and with it the runtime.
    _stop: oneshot::Sender<()>,
}

impl BlockingRuntime {
    /// Starts the thread and its runtime.
    pub fn start() -> io::Result<BlockingRuntime> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("rpc-blocking".into()).spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            });
        })?;
        Ok(BlockingRuntime { inner: Arc::new(Inner { handle, _stop: stop }) })
    }

    /// Runs `fut` to completion, blocking the calling thread; the runtime's thread drives its
    /// I/O and timers meanwhile (and runs the connection's tasks), so `fut` need not be `Send`.
    ///
    /// Returns [`RpcError::BlockingInRuntime`] when called from inside a Tokio runtime (also
    /// from `spawn_blocking`, which Tokio does not tell apart: there, use the async client with
    /// `Handle::current().block_on`).
    pub fn run<F: Future>(&self, fut: F) -> Result<F::Output, RpcError> {
        if Handle::try_current().is_ok() {
            return Err(RpcError::BlockingInRuntime);
        }
        Ok(self.inner.handle.block_on(fut))
    }

    /// Connects with `connect` on the runtime's thread and starts a [`Client`] there (with
    /// default settings; see [`connect_with`](Self::connect_with)).
    pub fn connect<F, Fut>(&self, connect: F) -> Result<Client, RpcError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = io::Result<Connection>>,
    {
        self.connect_with(crate::ClientBuilder::default(), connect)
    }

    /// [`connect`](Self::connect) with the client built by `builder`.
    pub fn connect_with<F, Fut>(&self, builder: crate::ClientBuilder, connect: F) -> Result<Client, RpcError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = io::Result<Connection>>,
    {
        self.run(async move { Ok(builder.build(connect().await?)) })?
    }
}

/// The results of a streaming call, for code without an async runtime: an iterator that blocks
/// the calling thread until the next item is back, what a blocking client's server-streaming
/// method returns.
///
/// It yields the stream's items, then ends after the server's last one, or after one `Err`: the
/// error that ended the call (the deadline, the connection, an error from the server), or
/// [`RpcError::BlockingInRuntime`] when `next` is called from inside an async runtime. Dropping
/// it cancels the call, as dropping the [`Streaming`] does.
#[must_use = "a stream does nothing unless iterated"]
pub struct BlockingStream<T> {
    stream: Streaming<T>,
    runtime: BlockingRuntime,
    ended: bool,
}

impl<T> BlockingStream<T> {
    /// Iterates `stream` (the results of a call made on `runtime`'s connection, for example
    /// through a blocking client's `as_async()`), blocking on `runtime` for each item.
    pub fn new(stream: Streaming<T>, runtime: BlockingRuntime) -> Self {
        BlockingStream { stream, runtime, ended: false }
    }

    /// The async stream underneath, to await it from a runtime instead.
    pub fn into_inner(self) -> Streaming<T> {
        self.stream
    }
}

impl<T> Iterator for BlockingStream<T> {
    type Item = Result<T, RpcError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let next = match self.runtime.run(self.stream.next()) {
            Ok(next) => next,
            Err(e) => Some(Err(e)),
        };
        // A stream that failed ends there, as the async one does; `fuse` semantics after it.
        self.ended = !matches!(next, Some(Ok(_)));
        next
    }
}

impl<T> fmt::Debug for BlockingStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingStream").field("stream", &self.stream).field("ended", &self.ended).finish()
    }
}

impl fmt::Debug for BlockingRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingRuntime").finish_non_exhaustive()
    }
}
