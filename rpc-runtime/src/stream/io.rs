//! What a server hands a streaming call through its [`ResponseBuf`]: the items the client
//! sends (a client or bidirectional stream), and a place for the items the handler returns (a
//! server or bidirectional stream), which the connection then sends within the client's credit.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{Stream, StreamExt};
use rpc_transport::framed::FrameBuf;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use super::credit::grant_batch;
use super::Streaming;
use crate::codec::{self, Format};
use crate::service::ResponseBuf;
use crate::{protocol, RpcError};

/// A handler's outgoing items, each already encoded into its `ITEM` frame.
pub(crate) type ItemFrames = Pin<Box<dyn Stream<Item = Result<FrameBuf, RpcError>> + Send + 'static>>;

/// One streaming call's channels between the connection and the handler.
pub(crate) struct StreamIo {
    pub(crate) id: u64,
    incoming: Mutex<Option<Incoming>>,
    output: Mutex<Option<ItemFrames>>,
}

impl std::fmt::Debug for StreamIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIo").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The client's items as they arrive: at most a window of them is ever queued, since the client
/// sends only within the credit granted as the handler takes them.
pub(crate) struct Incoming {
    pub(crate) items: mpsc::Receiver<Bytes>,
    /// The window the client was given (our HELLO's `stream_window`).
    pub(crate) window: u64,
    /// Grants the client `n` more items (sends a `CREDIT` frame).
    pub(crate) grant: Box<dyn Fn(u64) + Send + Sync>,
}

impl StreamIo {
    pub(crate) fn new(id: u64, incoming: Option<Incoming>) -> Self {
        StreamIo { id, incoming: Mutex::new(incoming), output: Mutex::new(None) }
    }

    /// The items the handler returned, once it has returned them.
    pub(crate) fn take_output(&self) -> Option<ItemFrames> {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl ResponseBuf {
    /// The call's incoming items, decoded: taken once (a second take, by a composite service
    /// that offers the call twice, gets a stream that fails).
    pub(crate) fn incoming<T: DeserializeOwned + Send + 'static>(&self) -> Streaming<T> {
        let incoming =
            self.stream.as_ref().and_then(|io| io.incoming.lock().unwrap_or_else(|e| e.into_inner()).take());
        match incoming {
            Some(incoming) => {
                let format = self.format;
                Streaming::from_results(IncomingItems { incoming, consumed: 0 }.map(move |bytes| decode::<T>(format, &bytes)))
            }
            None => Streaming::error(RpcError::Protocol(
                "this call carries no stream of arguments (a streaming method is served only over a connection)".into(),
            )),
        }
    }

    /// Hands the handler's items to the connection, which sends them within the client's credit
    /// and then `END` (or `ERROR` at the first `Err`). The returned frame is empty: a streaming
    /// call has no `REPLY`.
    pub(crate) fn stream<T: Serialize + Send + 'static>(
        self,
        items: Streaming<T>,
    ) -> Result<FrameBuf, RpcError> {
        let Some(io) = &self.stream else {
            return Err(RpcError::Protocol(
                "a streaming method is served only over a connection, not in-process".into(),
            ));
        };
        let (id, format, max) = (io.id, self.format, self.max_frame_len);
        let frames = items.map(move |item| {
            let item = item?;
            let mut buf = protocol::item_header(id);
            codec::encode_into(format, &mut buf, &codec::Arg(&item), max)?;
            Ok(buf)
        });
        *io.output.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::pin(frames));
        Ok(FrameBuf::with_capacity(0))
    }
}

fn decode<T: DeserializeOwned + 'static>(format: Format, bytes: &[u8]) -> Result<T, RpcError> {
    codec::decode::<codec::Decoded<T>>(format, bytes).map(|d| d.0)
}

/// The raw incoming items; grants credit back half a window at a time as they are taken.
struct IncomingItems {
    incoming: Incoming,
    /// Items taken since the last grant.
    consumed: u64,
}

impl Stream for IncomingItems {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = &mut *self;
        let item = futures::ready!(this.incoming.items.poll_recv(cx));
        if item.is_some() {
            this.consumed += 1;
            if this.consumed >= grant_batch(this.incoming.window) {
                (this.incoming.grant)(this.consumed);
                this.consumed = 0;
            }
        }
        Poll::Ready(item)
    }
}
