//! What a handler can learn about the call it is serving.

use std::sync::Arc;

use rpc_transport::Peer;

use crate::Metadata;
use tokio::time::Instant;

tokio::task_local! {
    static CURRENT: Context;
}

/// The context of the call a handler is serving: its deadline, request id, method, peer and
/// metadata.
///
/// Nothing here is marshalled with the arguments; the server sets it around each handler, and
/// [`Context::current`] reads it from anywhere inside the handler's task. A client call made from
/// inside a handler inherits the remaining deadline (see [`crate::Client`]), and since the inner
/// call's future lives inside the handler's, cancelling the outer call cancels the inner one.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) request_id: u64,
    pub(crate) method: &'static str,
    pub(crate) deadline: Option<Instant>,
    pub(crate) peer: Arc<Peer>,
    pub(crate) metadata: Metadata,
    /// Cancelled when the server's shutdown begins (`None` in-process); shared, because cloning
    /// a token per call locks its tree.
    pub(crate) shutdown: Option<std::sync::Arc<tokio_util::sync::CancellationToken>>,
}

impl Context {
    /// The context of the call being served by the current task, or `None` outside a handler.
    pub fn current() -> Option<Context> {
        CURRENT.try_with(Context::clone).ok()
    }

    /// The request id the client chose for this call.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// The method's wire name.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// When the caller stops waiting (clamped to the server's maximum), if it set a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Who called: the peer's address, or for a Unix socket its uid, gid and pid.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The metadata the caller sent with the call (trace context, credentials): see
    /// [`Client::with_metadata`](crate::Client::with_metadata).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Whether the server has begun a graceful shutdown: a long-lived call (a stream) should
    /// end soon, cleanly, before the grace period runs out and the call is cut off.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.as_ref().is_some_and(|s| s.is_cancelled())
    }

    /// Completes when the server begins a graceful shutdown (never, for a call served
    /// in-process). A streaming handler can select on it to end its stream cleanly:
    ///
    /// ```
    /// # use rpc_runtime::{Context, Streaming};
    /// # use futures::StreamExt;
    /// # #[allow(dead_code)]
    /// pub fn ticks(ctx: Context) -> Streaming<u64> {
    ///     let stop = Box::pin(async move { ctx.shutdown_started().await });
    ///     Streaming::new(futures::stream::iter(0..).take_until(stop))
    /// }
    /// # let _ = ticks;
    /// ```
    pub async fn shutdown_started(&self) {
        match &self.shutdown {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    }

    /// Runs `fut` with this context as the current one.
    pub(crate) async fn scope<F: std::future::Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }

    /// `f` of the context of the call the current task serves, if any, without cloning it.
    pub(crate) fn with_current<T>(f: impl FnOnce(&Context) -> T) -> Option<T> {
        CURRENT.try_with(f).ok()
    }

    /// The deadline of the call being served by the current task, if any.
    pub(crate) fn inherited_deadline() -> Option<Instant> {
        CURRENT.try_with(|c| c.deadline).ok().flatten()
    }
}
