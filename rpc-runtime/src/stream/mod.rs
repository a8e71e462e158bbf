//! Streams of items in a call: [`Streaming<T>`], the one type a `#[service]` trait names for a
//! stream of arguments or of results, and the credit that bounds each stream's items in flight.
//!
//! # Organization
//!
//! - [`Streaming`]: what a handler returns and reads, and what a client receives.
//! - `credit.rs`: a sender's credit (the items it may still send), shared by the connection
//!   that receives `CREDIT` frames and the task that sends `ITEM`s.
//! - `io.rs`: what the server hands a streaming call through its
//!   [`ResponseBuf`](crate::ResponseBuf): the incoming items, and a place for the outgoing ones.

pub(crate) mod credit;
pub(crate) mod io;

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{self, Stream, StreamExt};

use crate::RpcError;

/// The error a channel that carries no streams (tower layers over a [`Client`](crate::Client),
/// a broker) gives a streaming call.
pub(crate) fn unsupported(method: &crate::MethodRef) -> RpcError {
    RpcError::Protocol(format!(
        "`{}.{}` is a streaming method, and streams are carried only by a `rpc_runtime::Client` channel, \
         not through tower layers; call it through a client built on a connection",
        method.service(),
        method.method()
    ))
}

/// A stream of `T`s in a call: the results of a server-streaming method, the argument of a
/// client-streaming one, or both for a bidirectional one.
///
/// In a `#[service]` trait it stands where a stream crosses the wire:
///
/// ```
/// use rpc_runtime::{service, Streaming};
///
/// #[service]
/// trait Kv {
///     /// Server stream: one request, many results.
///     async fn watch(&self, prefix: String) -> Streaming<String>;
///     /// Client stream: many arguments, one result.
///     async fn upload(&self, chunks: Streaming<Vec<u8>>) -> u64;
///     /// Bidirectional.
///     async fn chat(&self, inbox: Streaming<String>) -> Streaming<String>;
/// }
/// ```
///
/// A handler returns any stream with [`Streaming::new`] (or [`Streaming::iter`],
/// [`Streaming::empty`]); it reads its incoming items as a `Stream` of `Result<T, RpcError>`
/// (an `Err` when an item does not decode). A client receives a `Streaming<T>` too: a `Stream`
/// of `Result<T, RpcError>` that ends after the server's last item, or with the error that ended
/// the call (the deadline, the connection, an `ERROR` from the server). Dropping it cancels the
/// call. For application errors in the middle of a stream, make the item type a `Result<T, E>`.
///
/// Each stream has its own credit (see PROTOCOL.md, Streams): a sender sends only as many items
/// as the receiver has room for, so a consumer that reads slowly pauses only its own stream.
#[must_use = "a stream does nothing unless polled"]
#[doc(alias = "stream")]
pub struct Streaming<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, RpcError>> + Send + 'static>>,
}

impl<T: Send + 'static> Streaming<T> {
    /// The items of `stream`.
    pub fn new(stream: impl Stream<Item = T> + Send + 'static) -> Self {
        Streaming { inner: Box::pin(stream.map(Ok)) }
    }

    /// The items of `stream`; an `Err` ends the stream with that error (on a server: an `ERROR`
    /// frame for the call, after the items before it).
    pub fn from_results(stream: impl Stream<Item = Result<T, RpcError>> + Send + 'static) -> Self {
        Streaming { inner: Box::pin(stream) }
    }

    /// The items of `iter`.
    pub fn iter<I>(iter: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Streaming::new(stream::iter(iter))
    }

    /// No items.
    pub fn empty() -> Self {
        Streaming::new(stream::empty())
    }

    /// A stream that fails at once with `error`.
    pub fn error(error: RpcError) -> Self {
        Streaming::from_results(stream::once(async move { Err(error) }))
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T, RpcError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming").field("item", &std::any::type_name::<T>()).finish_non_exhaustive()
    }
}
