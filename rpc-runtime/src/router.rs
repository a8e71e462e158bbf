//! Several services behind one server: calls routed by service name, each checked against the
//! method's kind and signature hash before anything of the user's runs.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures::FutureExt;
use rpc_transport::framed::FrameBuf;
use rpc_transport::Peer;

use crate::call::{Call, Reply};
use crate::context::Context;
use crate::describe::{MethodDescriptor, MethodKind, ServiceDescriptor};
use crate::hello::AdvertisedService;
use crate::intercept::{Incoming, Interceptor};
use crate::introspection::{self, Health, MethodStats, MethodStatsSnapshot};
use crate::service::{Handler, ResponseBuf, Service};
use crate::{Metadata, RpcError};

/// The services one [`Server`](crate::Server) hosts, by wire name (`#[service(name = "...")]`,
/// the trait's name by default).
///
/// A server built from one service has a router of one. Each call names its service (a call
/// with an empty name goes to the only service of a router of one, for hand-written peers); a
/// name no service has is [`RpcError::UnknownService`], a method the service does not have is
/// [`RpcError::UnknownMethod`], and a call whose signature hash differs from the method's is
/// [`RpcError::SignatureMismatch`]: the handler does not run, and the connection carries on.
///
/// ```
/// use rpc_runtime::{service, transport::memory, Router, Server};
///
/// #[service]
/// trait Greeter {
///     async fn hello(&self) -> String;
/// }
/// #[service(name = "admin.Stats")]
/// trait Stats {
///     async fn calls(&self) -> u64;
/// }
///
/// struct Impl;
/// impl Greeter for Impl {
///     async fn hello(&self) -> String { "hello".into() }
/// }
/// impl Stats for Impl {
///     async fn calls(&self) -> u64 { 7 }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), rpc_runtime::RpcError> {
/// let router = Router::new().add_service(GreeterServer::new(Impl)).add_service(StatsServer::new(Impl));
/// let (listener, connector) = memory::listener();
/// let _server = Server::new(router).serve(listener);
/// let client = rpc_runtime::Client::new(connector.connect()?);
/// // Two generated clients share one connection.
/// let greeter = GreeterClient::from_client(client.clone());
/// let stats = StatsClient::from_client(client);
/// assert_eq!(greeter.hello().await?, "hello");
/// assert_eq!(stats.calls().await?, 7);
/// # Ok(()) }
/// ```
///
/// A router also answers untyped [`Call`]s in-process ([`Router::serve_call`], and as a
/// `tower::Service<Call>`): how a transport that carries calls rather than bytes (a message
/// broker) serves them, and how a test drives a service without a connection.
#[derive(Clone, Default)]
pub struct Router {
    inner: Arc<Inner>,
}

/// Services and methods are found by a scan, not a hash map: a server hosts a handful of each,
/// and comparing a few short names costs less than hashing one (SipHash) on every call.
#[derive(Clone)]
struct Inner {
    /// In the order they were added, which is the HELLO's.
    routes: Vec<(&'static str, Route)>,
    /// Run in order on every routed call, before its arguments are decoded.
    interceptors: Vec<Arc<dyn Interceptor>>,
    /// Whether the built-in `rpc.Introspection` service is hosted (see `introspection`).
    introspection: bool,
    /// Whether calls are counted (each method's `MethodStats`).
    stats: bool,
    health: Health,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            routes: Vec::new(),
            interceptors: Vec::new(),
            introspection: true,
            stats: true,
            health: Health::default(),
        }
    }
}

#[derive(Clone)]
struct Route {
    service: Arc<dyn Service>,
    methods: Vec<RouteMethod>,
}

#[derive(Clone)]
struct RouteMethod {
    name: &'static str,
    descriptor: &'static MethodDescriptor,
    /// `None` when the router records no statistics.
    stats: Option<Arc<MethodStats>>,
}

impl Router {
    /// No services; the built-in introspection service and call statistics on (see
    /// [`introspection`](crate::introspection)).
    pub fn new() -> Router {
        Router::default()
    }

    /// Does not host the built-in `rpc.Introspection` service: for servers that must not
    /// describe themselves. Calls to it then get [`RpcError::UnknownService`], and the HELLO does
    /// not list it. (The HELLO still lists the other services and their hashes.)
    #[must_use]
    pub fn without_introspection(mut self) -> Router {
        Arc::make_mut(&mut self.inner).introspection = false;
        self
    }

    /// Records no call statistics (saving two clock reads and a few atomic adds per call);
    /// the introspection service's `stats` then reports none.
    #[must_use]
    pub fn without_stats(mut self) -> Router {
        let inner = Arc::make_mut(&mut self.inner);
        inner.stats = false;
        for (_, route) in &mut inner.routes {
            route.methods.iter_mut().for_each(|m| m.stats = None);
        }
        self
    }

    /// Whether the built-in introspection service is hosted.
    pub fn hosts_introspection(&self) -> bool {
        self.inner.introspection
    }

    /// The router's health, as the introspection service reports it: set it not serving to
    /// drain a server before shutting it down. Shared by clones of the router.
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// Call statistics of every method of every service, in order (empty without stats).
    pub fn stats(&self) -> Vec<MethodStatsSnapshot> {
        let mut out = Vec::new();
        for (service, route) in &self.inner.routes {
            for m in &route.methods {
                if let Some(stats) = &m.stats {
                    out.push(stats.snapshot(service, m.name));
                }
            }
        }
        out
    }

    /// Adds `service` under its descriptor's name.
    ///
    /// # Panics
    ///
    /// Panics if a service of the same name was added already: two services cannot share a
    /// name on one server (give one another with `#[service(name = "...")]`).
    #[must_use]
    #[track_caller]
    pub fn add_service(mut self, service: impl Service) -> Router {
        let descriptor = service.descriptor();
        let name = descriptor.name();
        let inner = Arc::make_mut(&mut self.inner);
        assert!(
            !inner.routes.iter().any(|(n, _)| *n == name),
            "two services named `{name}` added to one router; rename one with `#[service(name = \"...\")]`"
        );
        let methods = Route::methods(descriptor, inner.stats);
        inner.routes.push((name, Route { service: Arc::new(service), methods }));
        self
    }

    /// Adds a check that runs on every call, after the call is routed and its signature
    /// checked, before its arguments are decoded; a refusal is the caller's error and the handler
    /// does not run (see [`crate::intercept`]). Checks run in the order added.
    #[must_use]
    pub fn intercept(mut self, interceptor: impl Interceptor) -> Router {
        Arc::make_mut(&mut self.inner).interceptors.push(Arc::new(interceptor));
        self
    }

    /// The descriptors of the services, in the order they were added.
    pub fn services(&self) -> impl Iterator<Item = &'static ServiceDescriptor> + '_ {
        self.inner.routes.iter().map(|(_, route)| route.service.descriptor())
    }

    /// What the server's HELLO says of its services: the introspection service last.
    pub(crate) fn advertise(&self) -> Vec<AdvertisedService> {
        let own = self.inner.introspection.then(introspection::descriptor);
        self.services().chain(own).map(AdvertisedService::from_descriptor).collect()
    }

    /// The built-in introspection service, made for one call.
    fn introspection_route(&self) -> Route {
        let service = introspection::IntrospectionServer::new(introspection::View(self.clone()));
        Route { service: Arc::new(service), methods: Route::methods(introspection::descriptor(), false) }
    }

    /// Checks a call against the services and prepares its handler.
    ///
    /// Names arrive as the frame's bytes: a name that matches one of ours is valid UTF-8, so only
    /// a name that matches none is checked (and reported as a protocol error if it is not text).
    #[allow(clippy::too_many_arguments)] // the frame's fields, borrowed: a struct would only repack them
    pub(crate) fn prepare(
        &self,
        service: &[u8],
        method: &[u8],
        kind: MethodKind,
        hash: u64,
        payload: &[u8],
        response: ResponseBuf,
        peer: &Peer,
        metadata: &Metadata,
    ) -> Result<Handler, RpcError> {
        let routes = &self.inner.routes;
        let built_in;
        let (service, route) = match routes.iter().find(|(name, _)| name.as_bytes() == service) {
            Some((name, route)) => (*name, route),
            // An empty name is the only service, for hand-written peers (PROTOCOL.md); the
            // built-in introspection service does not count.
            None if service.is_empty() && routes.len() == 1 => (routes[0].0, &routes[0].1),
            None if self.inner.introspection && service == introspection::SERVICE_NAME.as_bytes() => {
                built_in = self.introspection_route();
                (introspection::SERVICE_NAME, &built_in)
            }
            None => return Err(RpcError::UnknownService(text(service, "service")?.to_owned())),
        };
        let Some(found) = route.methods.iter().find(|m| m.name.as_bytes() == method) else {
            return Err(RpcError::UnknownMethod(text(method, "method")?.to_owned()));
        };
        let (method, descriptor) = (found.name, found.descriptor);
        // A one-way call of a unary method runs it and drops the result; any other difference
        // means the caller was built from another trait.
        let compatible = descriptor.kind() == kind
            || (kind == MethodKind::Oneway && descriptor.kind() == MethodKind::Unary);
        if !compatible {
            return Err(RpcError::SignatureMismatch {
                method: format!("{service}.{method}"),
                detail: format!(
                    "called as a {kind} method; the server's is {}: the caller was built from another version of the trait",
                    descriptor.kind()
                ),
            });
        }
        // 0: a caller without a schema (it read the method from the HELLO) skips the check.
        if hash != 0 && hash != descriptor.signature_hash() {
            return Err(RpcError::SignatureMismatch {
                method: format!("{service}.{method}"),
                detail: format!(
                    "the caller's signature hash is {hash:#018x}, the server's is {:#018x} for `{}`; \
                     the argument or result types differ: rebuild the older side from the newer trait",
                    descriptor.signature_hash(),
                    descriptor.signature()
                ),
            });
        }
        // Interceptors see introspection calls too: a server that requires credentials
        // requires them to describe itself.
        if !self.inner.interceptors.is_empty() {
            let incoming = Incoming { service, method, kind, peer, metadata };
            for interceptor in &self.inner.interceptors {
                interceptor.check(&incoming)?;
            }
        }
        let handler = route.service.call(method, payload, response);
        let mut handler = match &found.stats {
            None => handler?,
            Some(stats) => match handler {
                Ok(mut handler) => {
                    handler.recorder = Some(stats.start());
                    handler
                }
                Err(e) => {
                    stats.rejected();
                    return Err(e);
                }
            },
        };
        handler.service = service;
        Ok(handler)
    }
}

impl Route {
    fn methods(descriptor: &'static ServiceDescriptor, stats: bool) -> Vec<RouteMethod> {
        let stats = || stats.then(|| Arc::new(MethodStats::default()));
        descriptor
            .methods()
            .iter()
            .map(|m| RouteMethod { name: m.name(), descriptor: m, stats: stats() })
            .collect()
    }
}

/// A name that matched nothing, as text for the error that says so.
fn text<'a>(name: &'a [u8], what: &str) -> Result<&'a str, RpcError> {
    std::str::from_utf8(name).map_err(|_| RpcError::Protocol(format!("the {what} name is not valid UTF-8")))
}

impl Router {
    /// Runs one call in this process: routed and checked as a server does (service, method,
    /// kind, signature hash), within its deadline, with its metadata in the handler's
    /// [`Context`]; a panicking handler is [`RpcError::HandlerPanicked`]. `peer` is who the
    /// handler is told called.
    pub async fn serve_call(&self, call: Call, peer: Peer) -> Result<Reply, RpcError> {
        call.metadata.check()?;
        let format = call.format;
        // In-process, no frame limit applies; a transport that carries the reply checks its own.
        let response = ResponseBuf {
            buf: FrameBuf::with_capacity(64),
            max_frame_len: u32::MAX as usize,
            format,
            stream: None,
        };
        let handler = crate::codec::with_source(&call.body, || {
            self.prepare(
                call.service.as_bytes(),
                call.method.as_bytes(),
                call.kind,
                call.signature,
                &call.body,
                response,
                &peer,
                &call.metadata,
            )
        })?;
        let mut metadata = call.metadata;
        let handler = crate::trace::traced_handler(handler, &peer, 0, &mut metadata);
        let context = Context {
            request_id: 0,
            method: handler.method,
            deadline: call.deadline,
            peer: Arc::new(peer),
            metadata,
            shutdown: None,
        };
        let run = context.scope(AssertUnwindSafe(handler.future).catch_unwind());
        let outcome = match call.deadline {
            Some(deadline) if !handler.run_to_completion => tokio::time::timeout_at(deadline, run).await,
            _ => Ok(run.await),
        };
        if let Some(recorder) = handler.recorder {
            recorder.finish(matches!(outcome, Ok(Ok(Ok(_)))));
        }
        let outcome = outcome.map_err(|_| RpcError::DeadlineExceeded)?;
        match outcome {
            Ok(Ok(buf)) => Ok(Reply { format, body: Bytes::from(buf.body_to_vec()) }),
            Ok(Err(e)) => Err(e),
            Err(_panic) => Err(RpcError::HandlerPanicked),
        }
    }
}

/// [`Router::serve_call`] as a tower service, the handler told its peer is [`Peer::Memory`].
impl tower_service::Service<Call> for Router {
    type Response = Reply;
    type Error = RpcError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, RpcError>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let router = self.clone();
        Box::pin(async move { router.serve_call(call, Peer::Memory).await })
    }
}

impl<S: Service> From<S> for Router {
    fn from(service: S) -> Router {
        Router::new().add_service(service)
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.inner.routes.iter().map(|(name, _)| name).collect();
        f.debug_struct("Router")
            .field("services", &names)
            .field("interceptors", &self.inner.interceptors.len())
            .finish()
    }
}
