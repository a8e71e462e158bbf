//! Running one call: deadline, panic isolation, and sending the result.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use rpc_transport::framed::Frame;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::context::Context;
use crate::protocol;
use crate::service::Handler;
use crate::RpcError;

/// Everything one call's task owns.
pub(super) struct Call {
    pub(super) handler: Handler,
    pub(super) context: Context,
    pub(super) deadline: Option<Instant>,
    pub(super) oneway: bool,
    pub(super) tx: mpsc::Sender<Frame>,
    pub(super) max_frame_len: usize,
    /// The call's slot in the connection's in-flight limit; freed when this task ends or is
    /// dropped (cancelled), never earlier.
    pub(super) _slot: OwnedSemaphorePermit,
}

/// Runs the handler and sends its response; returns the request id for bookkeeping.
pub(super) async fn run(call: Call) -> u64 {
    let Call { handler, context, deadline, oneway, tx, max_frame_len, _slot } = call;
    let id = context.request_id;
    let method = handler.method;
    let fut = context.scope(AssertUnwindSafe(handler.future).catch_unwind());
    let outcome = match deadline {
        Some(d) if !handler.run_to_completion => tokio::time::timeout_at(d, fut).await.ok(),
        _ => Some(fut.await),
    };
    let result = match outcome {
        None => {
            tracing::debug!(method, id, "handler stopped at its deadline");
            Err(RpcError::DeadlineExceeded)
        }
        Some(Err(panic)) => {
            tracing::error!(method, id, "handler panicked: {}", panic_message(&*panic));
            Err(RpcError::HandlerPanicked)
        }
        Some(Ok(Ok(buf))) => buf.finish(max_frame_len).map_err(|e| {
            tracing::warn!(method, id, "response too large: {e}");
            RpcError::FrameTooLarge { len: e.len, max: e.max }
        }),
        Some(Ok(Err(e))) => {
            tracing::warn!(method, id, "could not encode the response: {e}");
            Err(e)
        }
    };
    if !oneway {
        let frame = result.or_else(|e| error_frame(id, &e, max_frame_len));
        if let Ok(frame) = frame {
            // Fails only if the connection is gone, and then nobody is waiting.
            let _ = tx.send(frame).await;
        }
    }
    id
}

pub(super) fn error_frame(id: u64, error: &RpcError, max_frame_len: usize) -> Result<Frame, RpcError> {
    crate::client::finish(protocol::error_frame(id, error), max_frame_len)
}

/// The text of a panic payload, for the server's log (never for the peer).
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic payload>")
}
