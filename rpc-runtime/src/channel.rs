//! What a generated client sends its calls through: a [`Client`] directly (the fast path), or any
//! tower service of [`Call`]s wrapped in [`Layered`].

use std::fmt;
use std::future::Future;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower_service::Service;

use crate::call::{Call, MethodRef, Reply};
use crate::codec::{self, Format};
use crate::{trace, Client, RpcError};

/// Carries a generated client's calls. `{Trait}Client<C>` works over any `C: Channel`:
///
/// - [`Client`], the default: a connection of this crate's transports, encoding each call
///   straight into its frame.
/// - [`Layered<S>`] for any tower `S: Service<Call, Response = Reply>`: a [`Client`] wrapped in
///   tower layers (timeouts, retries, concurrency limits, load balancing), or a transport that
///   is not a byte stream (a message broker). Build one with `{Trait}Client::from_service`.
///
/// The futures are `Send` whenever the channel's and the arguments' types allow.
pub trait Channel: Clone + Send + Sync + 'static {
    /// Makes a call and decodes its result.
    fn call<A, R>(&self, method: &'static MethodRef, args: A) -> impl Future<Output = Result<R, RpcError>>
    where
        A: Serialize,
        R: DeserializeOwned + 'static;

    /// Sends a one-way call.
    fn notify<A>(&self, method: &'static MethodRef, args: A) -> impl Future<Output = Result<(), RpcError>>
    where
        A: Serialize;

    /// Opens a server-streaming or bidirectional call (see [`Client::open_stream`]). Only a
    /// [`Client`] carries streams: any other channel fails with [`RpcError::Protocol`] saying so.
    fn open_stream<A, U, T>(
        &self,
        method: &'static MethodRef,
        args: A,
        upload: Option<crate::Streaming<U>>,
    ) -> impl Future<Output = Result<crate::Streaming<T>, RpcError>>
    where
        A: Serialize,
        U: Serialize + Send + 'static,
        T: DeserializeOwned + Send + 'static,
    {
        drop((args, upload));
        std::future::ready(Err(crate::stream::unsupported(method)))
    }

    /// Calls a client-streaming method (see [`Client::call_with_stream`]); only a [`Client`]
    /// carries streams, as for [`open_stream`](Channel::open_stream).
    fn call_with_stream<A, U, R>(
        &self,
        method: &'static MethodRef,
        args: A,
        upload: crate::Streaming<U>,
    ) -> impl Future<Output = Result<R, RpcError>>
    where
        A: Serialize,
        U: Serialize + Send + 'static,
        R: DeserializeOwned + 'static,
    {
        drop((args, upload));
        std::future::ready(Err(crate::stream::unsupported(method)))
    }
}

impl Channel for Client {
    #[inline]
    async fn call<A, R>(&self, method: &'static MethodRef, args: A) -> Result<R, RpcError>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        match trace::client_call(method.service(), method.method()) {
            None => Client::call(self, method, &args).await,
            // Boxed: the untraced path's future stays as small as before.
            Some(traced) => {
                Box::pin(async move {
                    let client = traced_client(self, &traced)?;
                    trace::recorded(traced.span, async { Client::call(&client, method, &args).await }).await
                })
                .await
            }
        }
    }

    #[inline]
    async fn notify<A>(&self, method: &'static MethodRef, args: A) -> Result<(), RpcError>
    where
        A: Serialize,
    {
        match trace::client_call(method.service(), method.method()) {
            None => Client::notify(self, method, &args).await,
            // Boxed: the untraced path's future stays as small as before.
            Some(traced) => {
                Box::pin(async move {
                    let client = traced_client(self, &traced)?;
                    trace::recorded(traced.span, async { Client::notify(&client, method, &args).await }).await
                })
                .await
            }
        }
    }

    async fn open_stream<A, U, T>(
        &self,
        method: &'static MethodRef,
        args: A,
        upload: Option<crate::Streaming<U>>,
    ) -> Result<crate::Streaming<T>, RpcError>
    where
        A: Serialize,
        U: Serialize + Send + 'static,
        T: DeserializeOwned + Send + 'static,
    {
        Client::open_stream(self, method, &args, upload).await
    }

    async fn call_with_stream<A, U, R>(
        &self,
        method: &'static MethodRef,
        args: A,
        upload: crate::Streaming<U>,
    ) -> Result<R, RpcError>
    where
        A: Serialize,
        U: Serialize + Send + 'static,
        R: DeserializeOwned + 'static,
    {
        Client::call_with_stream(self, method, &args, upload).await
    }
}

/// A handle on `client`'s connection whose calls also carry the trace context.
fn traced_client(client: &Client, traced: &trace::ClientTrace) -> Result<Client, RpcError> {
    let mut metadata = client.metadata().clone();
    traced.context.inject(&mut metadata);
    client.with_metadata(metadata)
}

/// A tower service of [`Call`]s, as a [`Channel`] for generated clients.
///
/// Each call waits for the service to be ready (its backpressure), then calls a clone of it, as
/// tower's `ServiceExt::oneshot` does: clone-per-call is tower's convention for shared services.
/// Arguments are encoded in [`Format::Postcard`] unless [`Layered::with_format`] says otherwise.
/// A layer's error that is an [`RpcError`] comes out as itself; any other is
/// [`RpcError::Layer`].
///
/// ```
/// use rpc_runtime::{service, transport::memory, Server};
///
/// #[service]
/// trait Echo {
///     async fn echo(&self, text: String) -> String;
/// }
///
/// struct Impl;
/// impl Echo for Impl {
///     async fn echo(&self, text: String) -> String {
///         text
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), rpc_runtime::RpcError> {
/// let (listener, connector) = memory::listener();
/// let _server = Server::new(EchoServer::new(Impl)).serve(listener);
/// let client = rpc_runtime::Client::new(connector.connect()?);
/// // Any tower layer fits between the generated client and the connection.
/// let layered = tower::ServiceBuilder::new().concurrency_limit(8).service(client);
/// let echo = EchoClient::from_service(layered);
/// assert_eq!(echo.echo("hi".into()).await?, "hi");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Layered<S> {
    service: S,
    format: Format,
}

impl<S> Layered<S> {
    /// Wraps `service`; calls are encoded in postcard.
    pub fn new(service: S) -> Layered<S> {
        Layered { service, format: Format::Postcard }
    }

    /// Encodes calls in `format` (the server must speak it).
    pub fn with_format(mut self, format: Format) -> Layered<S> {
        self.format = format;
        self
    }

    /// The service underneath.
    pub fn get_ref(&self) -> &S {
        &self.service
    }

    /// Encodes `args` and sends the call through a ready clone of the service.
    async fn send<A: Serialize>(&self, method: &'static MethodRef, args: &A) -> Result<Reply, RpcError>
    where
        S: Service<Call, Response = Reply> + Clone,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let body = codec::encode_to_vec(self.format, args)?;
        let mut call = Call::new(method, self.format, Bytes::from(body));
        call.deadline = crate::context::Context::inherited_deadline();
        let traced = trace::client_call(method.service(), method.method());
        if let Some(traced) = &traced {
            traced.context.inject(&mut call.metadata);
        }
        let mut service = self.service.clone();
        let send = async move {
            std::future::poll_fn(|cx| service.poll_ready(cx)).await.map_err(layer_error)?;
            service.call(call).await.map_err(layer_error)
        };
        match traced {
            None => send.await,
            Some(traced) => trace::recorded(traced.span, send).await,
        }
    }
}

fn layer_error<E: Into<Box<dyn std::error::Error + Send + Sync>>>(e: E) -> RpcError {
    RpcError::from_layer(e.into())
}

impl<S: fmt::Debug> fmt::Debug for Layered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layered").field("service", &self.service).field("format", &self.format).finish()
    }
}

impl<S> Channel for Layered<S>
where
    S: Service<Call, Response = Reply> + Clone + Send + Sync + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn call<A, R>(&self, method: &'static MethodRef, args: A) -> Result<R, RpcError>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        let reply = self.send(method, &args).await?;
        codec::decode_from::<codec::Decoded<R>>(reply.format, &reply.body).map(|d| d.0)
    }

    async fn notify<A>(&self, method: &'static MethodRef, args: A) -> Result<(), RpcError>
    where
        A: Serialize,
    {
        self.send(method, &args).await.map(drop)
    }
}
