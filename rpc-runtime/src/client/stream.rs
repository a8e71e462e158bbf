//! Streaming calls on a [`Client`]: a stream of results (server or bidirectional streams), a
//! stream of arguments sent by a task of its own within the server's credit, and the cancel
//! sent when either side is dropped.
//!
//! A streaming call takes a slot in the in-flight table like any call (its id, its deadline, and
//! the connection's failure reach it there); its items wait in that slot, at most a window of
//! them, and credit goes back to the server half a window at a time as they are taken.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{Stream, StreamExt};
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::AbortHandle;

use super::in_flight::{StreamNext, StreamSlot};
use super::{finish, within, Client, Link, Shared};
use crate::call::MethodRef;
use crate::codec::{self, Format};
use crate::describe::MethodKind;
use crate::{protocol, RpcError, Streaming};

impl Client {
    /// Opens a call of a server-streaming or bidirectional method, sending `upload`'s items as
    /// its stream of arguments (bidirectional only), and returns its results as they come.
    ///
    /// Returns once the call is queued, without waiting for the server: an error the server
    /// answers with (an unknown method, a signature mismatch) is the stream's first and last
    /// item. The client's deadline covers the whole stream; with none, an idle stream stays open.
    /// Dropping the returned stream cancels the call.
    ///
    /// Arguments and items are encoded in the client's format; on a client built with
    /// [`Format::Json`], `serde_json::Value` serves as an untyped `A`, `U` and `T` (the `rpc`
    /// command-line caller calls any method this way, with signature hash 0).
    pub async fn open_stream<A, U, T>(
        &self,
        method: &MethodRef,
        args: &A,
        upload: Option<Streaming<U>>,
    ) -> Result<Streaming<T>, RpcError>
    where
        A: Serialize + ?Sized,
        U: Serialize + Send + 'static,
        T: DeserializeOwned + Send + 'static,
    {
        if !matches!(method.kind(), MethodKind::ServerStream | MethodKind::Bidi) {
            return Err(not_a(method, "server-streaming or bidirectional"));
        }
        let call = self.start_stream(method, args, upload).await?;
        let format = call.shared.format;
        let results = Results { call, finished: false };
        Ok(Streaming::from_results(
            results.map(move |item| item.and_then(|bytes| decode::<T>(format, &bytes))),
        ))
    }

    /// Calls a client-streaming method: sends `args`, then `upload`'s items within the server's
    /// credit and `END`, and waits for the one result. A reply before the items are all sent ends
    /// the call (the rest are not sent).
    pub async fn call_with_stream<A, U, R>(
        &self,
        method: &MethodRef,
        args: &A,
        upload: Streaming<U>,
    ) -> Result<R, RpcError>
    where
        A: Serialize + ?Sized,
        U: Serialize + Send + 'static,
        R: DeserializeOwned + 'static,
    {
        if method.kind() != MethodKind::ClientStream {
            return Err(not_a(method, "client-streaming"));
        }
        let mut call = self.start_stream(method, args, Some(upload)).await?;
        let (reply, expired) = call.shared.in_flight.reply(call.id).await;
        // The slot is freed; an expired call is still running on the server: dropping `call`
        // cancels it there.
        call.expired = expired;
        call.done = !expired;
        decode::<R>(call.shared.format, &reply?)
    }

    /// Registers a streaming call, queues its `CALL` and starts sending `upload`.
    async fn start_stream<A, U>(
        &self,
        method: &MethodRef,
        args: &A,
        upload: Option<Streaming<U>>,
    ) -> Result<StreamCall, RpcError>
    where
        A: Serialize + ?Sized,
        U: Serialize + Send + 'static,
    {
        let deadline = self.deadline();
        if deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
            return Err(RpcError::DeadlineExceeded);
        }
        let start = async {
            let shared: Arc<Shared> = match &self.link {
                Link::Fixed(shared) => Arc::clone(shared),
                Link::Reconnecting(r) => match r.usable() {
                    Some(shared) => shared,
                    None => Box::pin(r.connection(deadline)).await?,
                },
            };
            let slot = StreamSlot::new(method.kind(), crate::hello::DEFAULT_STREAM_WINDOW);
            let id = shared.in_flight.register_stream(deadline, slot)?;
            let mut call = StreamCall { shared, id, sent: false, done: false, expired: false, pump: None };
            let frame = call.shared.encode(id, method, args, deadline, self.metadata())?;
            call.shared.send(frame).await?;
            call.sent = true;
            if let Some(upload) = upload {
                let task = tokio::spawn(pump(Arc::clone(&call.shared), id, upload));
                call.pump = Some(task.abort_handle());
            }
            Ok(call)
        };
        within(deadline, start).await
    }
}

fn not_a(method: &MethodRef, what: &str) -> RpcError {
    RpcError::Protocol(format!(
        "`{}.{}` is a {} method, not a {what} one",
        method.service(),
        method.method(),
        method.kind()
    ))
}

fn decode<T: DeserializeOwned + 'static>(format: Format, bytes: &[u8]) -> Result<T, RpcError> {
    codec::decode::<codec::Decoded<T>>(format, bytes).map(|d| d.0)
}

/// A streaming call in flight; dropping it before it ended cancels it on the server and stops
/// sending its arguments.
struct StreamCall {
    shared: Arc<Shared>,
    id: u64,
    sent: bool,
    /// The call ended and its slot is freed: nothing to clean up.
    done: bool,
    /// The deadline passed and the slot is freed: the server should be told to stop.
    expired: bool,
    /// The task sending the stream of arguments.
    pump: Option<AbortHandle>,
}

impl Drop for StreamCall {
    fn drop(&mut self) {
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
        if self.done {
            return;
        }
        let running = self.expired || self.shared.in_flight.remove(self.id);
        if running && self.sent {
            cancel(&self.shared, self.id);
        }
    }
}

/// Tells the server to stop call `id`; past the queue's bound (one per call at most).
fn cancel(shared: &Shared, id: u64) {
    if let Ok(frame) = protocol::cancel_frame(id).finish(shared.max_frame_len) {
        let _ = shared.out.push_now(frame);
    }
}

/// The raw results of a stream, granting credit as they are taken.
struct Results {
    call: StreamCall,
    finished: bool,
}

impl Stream for Results {
    type Item = Result<Bytes, RpcError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let call = &mut self.call;
        let next = futures::ready!(call.shared.in_flight.poll_item(call.id, cx));
        Poll::Ready(match next {
            StreamNext::Item(item, grant) => {
                if grant > 0 {
                    // Bounded: one per half window of items received.
                    if let Ok(frame) =
                        protocol::credit_frame(call.id, grant).finish(call.shared.max_frame_len)
                    {
                        let _ = call.shared.out.push_now(frame);
                    }
                }
                Some(Ok(item))
            }
            StreamNext::End => {
                call.done = true;
                self.finished = true;
                None
            }
            StreamNext::Failed(err, expired) => {
                call.expired = expired;
                call.done = !expired;
                self.finished = true;
                Some(Err(err))
            }
        })
    }
}

/// Sends the items of a stream of arguments, each once the server has credit for it (the stream
/// is polled only then), then `END`. Stops when the call ends; an `Err` item, an item that
/// cannot be encoded, or a panic fails the call with that error and cancels it on the server.
async fn pump<U: Serialize + Send + 'static>(shared: Arc<Shared>, id: u64, mut items: Streaming<U>) {
    let send = async {
        loop {
            if !std::future::poll_fn(|cx| shared.in_flight.poll_send_credit(id, cx)).await {
                return Ok(());
            }
            let Some(item) = items.next().await else {
                let frame = finish(protocol::end_frame(id), shared.max_frame_len)?;
                let _ = shared.send(frame).await;
                return Ok(());
            };
            let mut buf = protocol::item_header(id);
            codec::encode_into(shared.format, &mut buf, &codec::Arg(&item?), shared.max_frame_len)?;
            let frame = finish(buf, shared.max_frame_len)?;
            if shared.send(frame).await.is_err() {
                return Ok(());
            }
        }
    };
    let failed = match AssertUnwindSafe(send).catch_unwind().await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_panic) => RpcError::Cancelled("the stream of arguments panicked".into()),
    };
    shared.in_flight.fail(id, failed);
    cancel(&shared, id);
}
