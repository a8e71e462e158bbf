//! Running one call: deadline, panic isolation, and sending the result.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;

use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::log_limit::limited;
use super::outbox::{NotSent, Outbox};

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
    pub(super) outbox: Arc<Outbox>,
    pub(super) max_frame_len: usize,
    /// The call's slot in the connection's in-flight limit; freed when this task ends or is
    /// dropped (cancelled), never earlier.
    pub(super) _slot: OwnedSemaphorePermit,
}

/// Runs the handler and sends its response; returns the request id for bookkeeping.
pub(super) async fn run(call: Call) -> u64 {
    let Call { handler, context, deadline, oneway, outbox, max_frame_len, _slot } = call;
    let id = context.request_id;
    let method = handler.method;
    let fut = context.scope(AssertUnwindSafe(handler.future).catch_unwind());
    let outcome = match deadline {
        Some(d) if !handler.run_to_completion => {
            // The timer is made only if the handler has to wait: most finish on their first
            // poll, and `timeout_at` would poll them first too, so the deadline behaves the same.
            let mut fut = std::pin::pin!(fut);
            match std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
                Poll::Ready(done) => Some(done),
                Poll::Pending => tokio::time::timeout_at(d, fut).await.ok(),
            }
        }
        _ => Some(fut.await),
    };
    if let Some(recorder) = handler.recorder {
        recorder.finish(matches!(outcome, Some(Ok(Ok(_)))));
    }
    let result = match outcome {
        None => {
            tracing::debug!(method, id, "handler stopped at its deadline");
            Err(RpcError::DeadlineExceeded)
        }
        Some(Err(panic)) => {
            // The process's panic hook has already run (and printed, unless replaced); this line
            // is the server's own, rate-limited per connection.
            limited!(outbox.log(), error, method, id, "handler panicked: {}", panic_message(&*panic));
            Err(RpcError::HandlerPanicked)
        }
        Some(Ok(Ok(buf))) => buf.finish(max_frame_len).map_err(|e| {
            limited!(outbox.log(), warn, method, id, "response too large: {e}");
            RpcError::FrameTooLarge { len: e.len, max: e.max }
        }),
        Some(Ok(Err(e))) => {
            limited!(outbox.log(), warn, method, id, "could not encode the response: {e}");
            Err(e)
        }
    };
    if !oneway {
        let frame = result.or_else(|e| error_frame(id, &e, max_frame_len));
        if let Ok(frame) = frame {
            match outbox.send(frame).await {
                // The connection is gone, and then nobody is waiting.
                Ok(()) | Err(NotSent::Closed) => {}
                Err(NotSent::NoRoom) => {
                    limited!(
                        outbox.log(),
                        debug,
                        method,
                        id,
                        "no room for the response within the write timeout; closing the connection"
                    );
                    outbox.abandon();
                }
            }
        }
    }
    id
}

pub(super) fn error_frame(
    id: u64,
    error: &RpcError,
    max_frame_len: usize,
) -> Result<rpc_transport::framed::Frame, RpcError> {
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
