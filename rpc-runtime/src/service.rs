//! The interface between generated server code and the runtime.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use rpc_transport::framed::FrameBuf;

use crate::codec::Format;
use crate::RpcError;

/// The future that runs one call and produces its encoded response frame.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<FrameBuf, RpcError>> + Send + 'static>>;

/// One decoded call, ready to run.
pub struct Handler {
    /// The service's wire name, set by the router (empty until then).
    pub(crate) service: &'static str,
    pub(crate) method: &'static str,
    pub(crate) future: HandlerFuture,
    pub(crate) run_to_completion: bool,
    /// Counts the call in its method's statistics when it ends (set by the router).
    pub(crate) recorder: Option<crate::introspection::Recorder>,
}

impl Handler {
    /// Wraps the future that serves a call to `method`.
    pub fn new(
        method: &'static str,
        future: impl Future<Output = Result<FrameBuf, RpcError>> + Send + 'static,
    ) -> Self {
        Handler { service: "", method, future: Box::pin(future), run_to_completion: false, recorder: None }
    }

    /// The method's wire name.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The service's wire name, once the [`Router`](crate::Router) has routed the call (empty
    /// before: a middleware around one service knows which it wraps).
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Replaces the handler's future with `wrap(future)`: how middleware sees a call's outcome
    /// (the encoded reply, or the error) and the time it took.
    pub fn map_future<F>(self, wrap: impl FnOnce(HandlerFuture) -> F) -> Self
    where
        F: Future<Output = Result<FrameBuf, RpcError>> + Send + 'static,
    {
        Handler {
            service: self.service,
            method: self.method,
            future: Box::pin(wrap(self.future)),
            run_to_completion: self.run_to_completion,
            recorder: self.recorder,
        }
    }

    /// Makes the handler run to completion even if the caller cancels, its deadline passes or the
    /// connection closes (its result is then discarded). Only the end of a shutdown's grace
    /// period stops it. For handlers that must not be interrupted halfway.
    pub fn run_to_completion(mut self, yes: bool) -> Self {
        self.run_to_completion = yes;
        self
    }
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("service", &self.service)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// A service the runtime can serve: implemented by the `{Trait}Server` type `#[service]`
/// generates, and by wrappers of it (middleware).
///
/// `call` decodes the arguments of `method` from `payload` and returns the future that runs the
/// user's implementation and appends the encoded result to `response` (a frame whose header the
/// runtime has already written). An unknown method is [`RpcError::UnknownMethod`]; arguments that
/// do not decode are [`RpcError::Decode`]. The [`Router`](crate::Router) has already checked
/// the service's name and the method's kind and signature hash against [`descriptor`].
///
/// A middleware wraps another `Service`, forwards `descriptor` and `call`, and wraps the
/// returned [`Handler`] with [`Handler::map_future`] to see every call's outcome.
///
/// [`descriptor`]: Service::descriptor
pub trait Service: Send + Sync + 'static {
    /// The service's name and methods, with their kinds and signature hashes.
    fn descriptor(&self) -> &'static crate::describe::ServiceDescriptor;

    /// Decodes one call and prepares its handler.
    fn call(&self, method: &str, payload: &[u8], response: ResponseBuf) -> Result<Handler, RpcError>;
}

/// The frame a handler's result is encoded into, with the runtime's maximum frame length and
/// the call's format. Cloning it lets a composite service offer the call to one service and,
/// should it refuse it, to another.
#[derive(Debug, Clone)]
pub struct ResponseBuf {
    pub(crate) buf: FrameBuf,
    pub(crate) max_frame_len: usize,
    /// The call's format: its arguments arrived in it, the result leaves in it.
    pub(crate) format: Format,
    /// A streaming call's channels to the connection (`None` for other calls).
    pub(crate) stream: Option<std::sync::Arc<crate::stream::io::StreamIo>>,
}

impl ResponseBuf {
    /// Appends `value`'s encoding and returns the finished frame buffer.
    ///
    /// A `Vec<u8>` result is written as a byte string, in one copy (see `codec::Arg`).
    pub fn encode<T: serde::Serialize + 'static>(mut self, value: &T) -> Result<FrameBuf, RpcError> {
        crate::codec::encode_into(self.format, &mut self.buf, &crate::codec::Arg(value), self.max_frame_len)?;
        Ok(self.buf)
    }

    /// [`encode`](Self::encode), taking the result by value: a `Vec<u8>` becomes a `Bytes`
    /// without a copy, so that a large one is written from its own buffer (see `codec::Arg`).
    pub(crate) fn encode_owned<T: serde::Serialize + 'static>(
        self,
        mut value: T,
    ) -> Result<FrameBuf, RpcError> {
        if let Some(vec) = (&mut value as &mut dyn std::any::Any).downcast_mut::<Vec<u8>>() {
            let bytes = bytes::Bytes::from(std::mem::take(vec));
            return self.encode(&bytes);
        }
        self.encode(&value)
    }

    /// The format the call's arguments are in and its result will be encoded in.
    pub fn format(&self) -> Format {
        self.format
    }
}
