//! Running one call: deadline, panic isolation, and sending the result.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;

use futures::{FutureExt, StreamExt};
use rpc_transport::framed::FrameBuf;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::log_limit::limited;
use super::outbox::{NotSent, Outbox};

use crate::context::Context;
use crate::protocol;
use crate::service::Handler;
use crate::stream::credit::SendCredit;
use crate::stream::io::{ItemFrames, StreamIo};
use crate::RpcError;

/// Everything one call's task owns.
pub(super) struct Call {
    pub(super) handler: Handler,
    pub(super) context: Context,
    pub(super) deadline: Option<Instant>,
    pub(super) oneway: bool,
    pub(super) outbox: Arc<Outbox>,
    pub(super) max_frame_len: usize,
    /// A streaming call's channels, and the client's credit for the items it returns.
    pub(super) stream: Option<(Arc<StreamIo>, Arc<SendCredit>)>,
    /// The call's slot in the connection's in-flight limit; freed when this task ends or is
    /// dropped (cancelled), never earlier.
    pub(super) _slot: OwnedSemaphorePermit,
}

/// How a call's work ended.
enum Finished {
    /// The handler returned (or failed, or panicked): one `REPLY` or `ERROR`.
    Reply(Result<Result<FrameBuf, RpcError>, Box<dyn Any + Send>>),
    /// The handler returned a stream, and it ended.
    Stream(StreamEnd),
}

/// How a stream of results ended.
enum StreamEnd {
    /// After its last item: `END`.
    End,
    /// With an error (the handler's, or an item too large): `ERROR`.
    Error(RpcError),
    /// Polling it panicked: `ERROR` code 3 for this stream only.
    Panicked(Box<dyn Any + Send>),
    /// The connection ended the stream (a cancel, a broken stream rule, the peer gone): nothing
    /// more to send.
    Gone,
}

/// Runs the handler and sends its response (or its stream of items and then `END`); returns the
/// request id for bookkeeping. The deadline covers the whole call, stream included.
pub(super) async fn run(call: Call) -> u64 {
    let Call { handler, context, deadline, oneway, outbox, max_frame_len, stream, _slot } = call;
    let id = context.request_id;
    let (method, run_to_completion, future) = (handler.method, handler.run_to_completion, handler.future);
    let work = {
        let outbox = &outbox;
        async move {
            let reply = AssertUnwindSafe(future).catch_unwind().await;
            let items = stream.as_ref().and_then(|(io, _)| io.take_output());
            match (reply, items, &stream) {
                (Ok(Ok(_)), Some(items), Some((_, credit))) => {
                    // Boxed: a stream's sending state would otherwise make every call's future
                    // (moved into its box on each call) several times larger.
                    Finished::Stream(Box::pin(send_items(items, credit, outbox, max_frame_len)).await)
                }
                (reply, _, _) => Finished::Reply(reply),
            }
        }
    };
    let fut = context.scope(work);
    let outcome = match deadline {
        Some(d) if !run_to_completion => {
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
        recorder
            .finish(matches!(outcome, Some(Finished::Reply(Ok(Ok(_))) | Finished::Stream(StreamEnd::End))));
    }
    let result = match outcome {
        None => {
            tracing::debug!(method, id, "handler stopped at its deadline");
            Err(RpcError::DeadlineExceeded)
        }
        Some(Finished::Reply(Err(panic)) | Finished::Stream(StreamEnd::Panicked(panic))) => {
            // The process's panic hook has already run (and printed, unless replaced); this line
            // is the server's own, rate-limited per connection.
            limited!(outbox.log(), error, method, id, "handler panicked: {}", panic_message(&*panic));
            Err(RpcError::HandlerPanicked)
        }
        Some(Finished::Reply(Ok(Ok(buf)))) => buf.finish(max_frame_len).map_err(|e| {
            limited!(outbox.log(), warn, method, id, "response too large: {e}");
            RpcError::FrameTooLarge { len: e.len, max: e.max }
        }),
        Some(Finished::Reply(Ok(Err(e)))) => {
            limited!(outbox.log(), warn, method, id, "could not encode the response: {e}");
            Err(e)
        }
        Some(Finished::Stream(StreamEnd::End)) => {
            crate::client::finish(protocol::end_frame(id), max_frame_len)
        }
        Some(Finished::Stream(StreamEnd::Error(e))) => Err(e),
        Some(Finished::Stream(StreamEnd::Gone)) => return id,
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

/// Sends a handler's items, each only once the client has credit for it: the stream is polled
/// for its next item only then, so a client that stops reading stops the producer after its
/// window of items.
async fn send_items(
    mut items: ItemFrames,
    credit: &SendCredit,
    outbox: &Outbox,
    max_frame_len: usize,
) -> StreamEnd {
    loop {
        if !credit.take().await {
            return StreamEnd::Gone;
        }
        let buf = match AssertUnwindSafe(items.next()).catch_unwind().await {
            Err(panic) => return StreamEnd::Panicked(panic),
            Ok(None) => return StreamEnd::End,
            Ok(Some(Err(e))) => return StreamEnd::Error(e),
            Ok(Some(Ok(buf))) => buf,
        };
        let frame = match buf.finish(max_frame_len) {
            Ok(frame) => frame,
            Err(e) => return StreamEnd::Error(RpcError::FrameTooLarge { len: e.len, max: e.max }),
        };
        match outbox.send(frame).await {
            Ok(()) => {}
            Err(NotSent::Closed) => return StreamEnd::Gone,
            Err(NotSent::NoRoom) => {
                outbox.abandon();
                return StreamEnd::Gone;
            }
        }
    }
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
